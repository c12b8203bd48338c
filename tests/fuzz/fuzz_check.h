/*
 * fuzz_check.h - what every fuzz target checks about the output of the pure
 * core, shared as static functions (each target is one translation unit):
 *
 *   check_json   format_json's text parses back with cJSON into the same
 *                document (numbers exactly, non-finite numbers as null);
 *   check_infa   one line per section and per parameter, each line
 *                "[section]" or "$$name=value", in document order but the
 *                special fields of a step after its other parameters;
 *   check_sh     every line one assignment NAME=word that sh can eval
 *                without running anything: NAME of [A-Z0-9_], the word
 *                digits (the batch id) or one single-quoted literal in
 *                which a quote appears only as '\'' ; decoded, the word is
 *                the value the document holds; the special fields of every
 *                step after every other parameter, and the header lines
 *                again when a parameter was named as one of them, so that
 *                after eval no parameter overrides either;
 *   check_doc_*  documents as the service stores them (steps sorted,
 *                objects, valid names, UTF-8 text).
 *
 * A failed check prints what was wrong and aborts, which libFuzzer reports
 * as a crash and saves the input.
 */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fixed "now" for the rules: 2026-11-23T06:00:00.250000Z. Fuzzing a
 * clock would only make crashes harder to reproduce. */
static const bty_time FUZZ_NOW = {1795413600, 250000};

__attribute__((format(printf, 1, 2), noreturn)) static inline void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz check failed: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

#define FUZZ_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(__VA_ARGS__);                                                                \
    } while (0)

/* ------------------------------------------------------------------ errors */

/* An error the pure core returned: a status the HTTP layer can send, and
 * a message in valid UTF-8 whatever the input held, since it is sent as
 * JSON. */
static inline void check_error(const bty_error *err, const char *where)
{
    FUZZ_ASSERT(err->status >= 400 && err->status <= 599, "%s: error status %d", where,
                err->status);
    FUZZ_ASSERT(err->message[0] != '\0', "%s: error %d without a message", where, err->status);
    size_t len = strnlen(err->message, sizeof(err->message));
    FUZZ_ASSERT(len < sizeof(err->message), "%s: error message not terminated", where);
    FUZZ_ASSERT(utf8_valid(err->message, len), "%s: error message is not valid UTF-8: %s", where,
                err->message);
}

/* ------------------------------------------------------------------ json */

/* Is `back` (format_json's text parsed again) the document `doc`?
 * cJSON prints a number with 15 significant digits when that reads back
 * within its own tolerance (a relative DBL_EPSILON), so the last bits of a
 * double may change; whole numbers stay exact only below 1e15, and
 * documents the service renders turn larger ones into raw digits first
 * (doc_exact_integers). `exact` asks for that: every whole number comes
 * back exactly. Non-finite numbers print as null. */
static inline int same_number(double a, double b, int exact)
{
    if (a == b)
        return 1;
    if (exact && a == floor(a))
        return 0;
    return fabs(a - b) <= fmax(fabs(a), fabs(b)) * DBL_EPSILON;
}

static inline int same_json(const cJSON *doc, const cJSON *back, int exact)
{
    if (cJSON_IsRaw(doc))
        return cJSON_IsNumber(back) && strtod(doc->valuestring, NULL) == back->valuedouble;
    if (cJSON_IsNumber(doc)) {
        if (!isfinite(doc->valuedouble))
            return cJSON_IsNull(back);
        return cJSON_IsNumber(back) && same_number(doc->valuedouble, back->valuedouble, exact);
    }
    if ((doc->type & 0xFF) != (back->type & 0xFF))
        return 0;
    if (cJSON_IsString(doc))
        return strcmp(doc->valuestring, back->valuestring) == 0;
    const cJSON *a = doc->child, *b = back->child;
    for (; a && b; a = a->next, b = b->next) {
        if (cJSON_IsObject(doc) && strcmp(a->string, b->string) != 0)
            return 0;
        if (!same_json(a, b, exact))
            return 0;
    }
    return !a && !b;
}

static inline void check_json(const cJSON *doc, int exact)
{
    char *text = format_json(doc);
    FUZZ_ASSERT(text, "format_json returned NULL");
    size_t len = strlen(text);
    FUZZ_ASSERT(len >= 2 && text[len - 1] == '\n', "format_json: no final newline");
    cJSON *back = cJSON_ParseWithLength(text, len);
    FUZZ_ASSERT(back, "format_json output does not parse: %s", text);
    FUZZ_ASSERT(!doc || same_json(doc, back, exact), "format_json output is another document: %s",
                text);
    cJSON_Delete(back);
    free(text);
}

/* ------------------------------------------------------------------ infa */

/* The next line of text at *p (without its '\n'), or NULL at the end. A
 * last line without '\n' is a failure: every line the formats write ends
 * with one. */
static inline const char *next_line(const char **p, size_t *len, const char *format)
{
    const char *s = *p;
    if (!*s)
        return NULL;
    const char *nl = strchr(s, '\n');
    FUZZ_ASSERT(nl, "%s: last line has no newline: %s", format, s);
    *len = (size_t)(nl - s);
    *p = nl + 1;
    return s;
}

/* Does line[0..len) equal prefix followed by s with CR and LF as spaces? */
static inline int line_starts_with_text(const char *line, size_t len, const char *s, size_t *used)
{
    size_t n = strlen(s);
    if (n > len)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char want = (s[i] == '\n' || s[i] == '\r') ? ' ' : s[i];
        if (line[i] != want)
            return 0;
    }
    *used = n;
    return 1;
}

static inline int is_infa_param(const cJSON *param)
{
    return !(param->string && strcmp(param->string, "infa_section") == 0);
}

/* A special field of steps (fields.c), which infa and sh print after the
 * other parameters; token, step and error are plain parameters there. */
static inline int is_special_param(const cJSON *param)
{
    const bty_special_field *f = param->string ? special_field_find(param->string) : NULL;
    return f && f->type != FIELD_PARAM;
}

/* Walk the document and the text together: for each item of doc a
 * "[section]" line, then for each parameter of an object step (but
 * infa_section) a "$$name=value" line, the special fields last, nothing
 * else, no CR anywhere. */
static inline void check_infa(const cJSON *doc)
{
    char *text = format_infa(doc);
    FUZZ_ASSERT(text, "format_infa returned NULL");
    FUZZ_ASSERT(!strchr(text, '\r'), "format_infa: a CR in the output");
    const char *p = text, *line;
    size_t len, used;
    const cJSON *step;
    cJSON_ArrayForEach(step, doc)
    {
        line = next_line(&p, &len, "infa");
        FUZZ_ASSERT(line && len >= 2 && line[0] == '[' && line[len - 1] == ']',
                    "infa: expected a [section] line for step '%s'",
                    step->string ? step->string : "");
        if (!cJSON_IsObject(step))
            continue;
        const cJSON *param;
        for (int special = 0; special < 2; special++) {
            cJSON_ArrayForEach(param, step)
            {
                if (!is_infa_param(param) || is_special_param(param) != special)
                    continue;
                line = next_line(&p, &len, "infa");
                FUZZ_ASSERT(line && len >= 3 && line[0] == '$' && line[1] == '$',
                            "infa: expected a $$ line for parameter '%s'",
                            param->string ? param->string : "");
                /* The name as written, then '=': the value cannot be confused
                 * with it, since the line holds exactly this parameter. */
                FUZZ_ASSERT(line_starts_with_text(line + 2, len - 2,
                                                  param->string ? param->string : "", &used) &&
                                line[2 + used] == '=',
                            "infa: parameter line does not start with $$<name>=");
                if (cJSON_IsString(param)) {
                    size_t vused;
                    const char *value = line + 3 + used;
                    size_t vlen = len - 3 - used;
                    /* A special time is written as the original wrote it
                     * (Python's str(datetime)); any other text as it is. */
                    const bty_special_field *f =
                        param->string ? special_field_find(param->string) : NULL;
                    const char *want = param->valuestring;
                    char python[BTY_TIME_LEN + 1];
                    bty_time t;
                    if (f && f->type == FIELD_TIME && time_parse(want, &t) == 0) {
                        time_format_python(t, python);
                        want = python;
                    }
                    FUZZ_ASSERT(line_starts_with_text(value, vlen, want, &vused) && vused == vlen,
                                "infa: value of '%s' changed", param->string);
                }
            }
        }
    }
    FUZZ_ASSERT(!next_line(&p, &len, "infa"), "infa: stray line after the last parameter");
    free(text);
}

/* ------------------------------------------------------------------ sh */

/* Check that word[0..len) is one single-quoted sh word: ' then bytes other
 * than ' (and newline), then ', optionally followed by \'' and another such
 * run (the escaped quote). Writes the literal it stands for into out (len
 * + 1 bytes). Anything else fails: an unquoted byte could start a command
 * substitution, a glob, a second word or a comment. */
static inline void sh_unquote(const char *word, size_t len, char *out)
{
    size_t i = 0, o = 0;
    FUZZ_ASSERT(len >= 2 && word[0] == '\'', "sh: value does not start with a quote");
    i = 1;
    for (;;) {
        while (i < len && word[i] != '\'') {
            FUZZ_ASSERT(word[i] != '\n' && word[i] != '\0', "sh: newline inside quotes");
            out[o++] = word[i++];
        }
        FUZZ_ASSERT(i < len, "sh: unterminated quote");
        i++; /* the closing quote */
        if (i == len)
            break;
        FUZZ_ASSERT(len - i >= 3 && word[i] == '\\' && word[i + 1] == '\'' && word[i + 2] == '\'',
                    "sh: after a closing quote only \\'' may follow, found '%.*s'", (int)(len - i),
                    word + i);
        out[o++] = '\'';
        i += 3; /* \' then the opening quote of the next run */
    }
    out[o] = '\0';
}

/* One line "NAME=..." with NAME of [A-Z0-9_] starting with BATCHY_;
 * returns the offset of the value. */
static inline size_t sh_name_end(const char *line, size_t len)
{
    size_t i = 0;
    FUZZ_ASSERT(len > 7 && strncmp(line, "BATCHY_", 7) == 0, "sh: line does not start BATCHY_");
    while (i < len && line[i] != '=') {
        char c = line[i];
        FUZZ_ASSERT((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_',
                    "sh: byte 0x%02x in a variable name", (unsigned char)c);
        i++;
    }
    FUZZ_ASSERT(i < len, "sh: line without '='");
    return i + 1;
}

/* What the sh and infa formats say a value is, before CR/LF become spaces
 * (SPEC section 5): strings verbatim, numbers and nested values as compact
 * JSON, booleans true/false, null empty. A new string the caller frees. */
static inline char *expected_value(const cJSON *v)
{
    if (cJSON_IsString(v) || cJSON_IsRaw(v))
        return strdup(v->valuestring);
    if (cJSON_IsBool(v))
        return strdup(cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsNull(v))
        return strdup("");
    return cJSON_PrintUnformatted(v);
}

static inline void check_sh_value(const char *line, size_t len, const cJSON *param)
{
    size_t start = sh_name_end(line, len);
    char *got = malloc(len + 1);
    FUZZ_ASSERT(got, "out of memory");
    sh_unquote(line + start, len - start, got);
    char *want = expected_value(param);
    FUZZ_ASSERT(want, "out of memory");
    for (char *c = want; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    FUZZ_ASSERT(strcmp(got, want) == 0, "sh: value of '%s' is '%s', expected '%s'",
                param->string ? param->string : "", got, want);
    free(want);
    free(got);
}

static inline void check_sh(const char *workflow, long long batch_id, const cJSON *doc)
{
    char *text = format_sh(workflow, batch_id, doc);
    FUZZ_ASSERT(text, "format_sh returned NULL");
    const char *p = text, *line;
    size_t len;

    line = next_line(&p, &len, "sh");
    FUZZ_ASSERT(line && len > 16 && strncmp(line, "BATCHY_WORKFLOW=", 16) == 0,
                "sh: first line is not BATCHY_WORKFLOW=");
    char *wf = malloc(len + 1);
    FUZZ_ASSERT(wf, "out of memory");
    sh_unquote(line + 16, len - 16, wf);
    free(wf);

    line = next_line(&p, &len, "sh");
    char id[64];
    int idlen = snprintf(id, sizeof(id), "BATCHY_BATCH_ID=%lld", batch_id);
    FUZZ_ASSERT(line && (size_t)idlen == len && memcmp(line, id, len) == 0,
                "sh: second line is not %s", id);

    const cJSON *step, *param;
    int header_named = 0;
    for (int special = 0; special < 2; special++) {
        cJSON_ArrayForEach(step, doc)
        {
            if (!cJSON_IsObject(step))
                continue;
            cJSON_ArrayForEach(param, step)
            {
                if (is_special_param(param) != special)
                    continue;
                line = next_line(&p, &len, "sh");
                FUZZ_ASSERT(line, "sh: no line for parameter '%s'", param->string);
                check_sh_value(line, len, param);
                size_t name_len = sh_name_end(line, len) - 1;
                header_named |= (name_len == 15 && memcmp(line, "BATCHY_BATCH_ID", 15) == 0) ||
                                (name_len == 15 && memcmp(line, "BATCHY_WORKFLOW", 15) == 0);
            }
        }
    }
    if (header_named) {
        line = next_line(&p, &len, "sh");
        FUZZ_ASSERT(line && len > 16 && strncmp(line, "BATCHY_WORKFLOW=", 16) == 0,
                    "sh: a parameter named as a header line, and no BATCHY_WORKFLOW= after it");
        line = next_line(&p, &len, "sh");
        FUZZ_ASSERT(line && (size_t)idlen == len && memcmp(line, id, len) == 0,
                    "sh: a parameter named as a header line, and no %s after it", id);
    }
    FUZZ_ASSERT(!next_line(&p, &len, "sh"), "sh: stray line after the last parameter");
    free(text);
}

/* The three formats of a document the service renders (integers exact),
 * or of any document (check_formats_any). */
static inline void check_formats(const char *workflow, long long batch_id, const cJSON *doc)
{
    check_json(doc, 1);
    check_infa(doc);
    check_sh(workflow, batch_id, doc);
}

static inline void check_formats_any(const char *workflow, long long batch_id, const cJSON *doc)
{
    check_json(doc, 0);
    check_infa(doc);
    check_sh(workflow, batch_id, doc);
}

/* ------------------------------------------------------------------ documents */

/* Every string and key of item is valid UTF-8: what a workflow file or a
 * query can put in the state, since both are checked on the way in. */
static inline void check_utf8_tree(const cJSON *item)
{
    if (item->string)
        FUZZ_ASSERT(utf8_valid(item->string, strlen(item->string)), "key is not valid UTF-8");
    if (cJSON_IsString(item))
        FUZZ_ASSERT(utf8_valid(item->valuestring, strlen(item->valuestring)),
                    "string is not valid UTF-8");
    const cJSON *child;
    cJSON_ArrayForEach(child, item) check_utf8_tree(child);
}

/* A document as the service stores it: an object of at least one step,
 * steps in strictly increasing byte order (so no two alike), each a valid
 * step name holding an object. */
static inline void check_doc_shape(const cJSON *doc)
{
    FUZZ_ASSERT(cJSON_IsObject(doc) && doc->child, "document is not an object with steps");
    const cJSON *step, *prev = NULL;
    cJSON_ArrayForEach(step, doc)
    {
        FUZZ_ASSERT(step->string && name_step_check(step->string, NULL) == 0,
                    "invalid step name '%s'", step->string ? step->string : "");
        FUZZ_ASSERT(!prev || strcmp(prev->string, step->string) < 0,
                    "steps not in strictly increasing order: '%s' then '%s'", prev->string,
                    step->string);
        FUZZ_ASSERT(cJSON_IsObject(step), "step '%s' is not an object", step->string);
        prev = step;
    }
}

/* field of step is a canonical time: 26 characters that parse and print
 * back the same. */
static inline void check_canonical_time(const cJSON *step, const char *field)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(step, field);
    FUZZ_ASSERT(cJSON_IsString(v), "step '%s': %s is not a string", step->string, field);
    bty_time t;
    char back[BTY_TIME_LEN + 1];
    FUZZ_ASSERT(strlen(v->valuestring) == BTY_TIME_LEN && time_parse(v->valuestring, &t) == 0,
                "step '%s': %s '%s' is not a canonical time", step->string, field, v->valuestring);
    time_format(t, back);
    FUZZ_ASSERT(strcmp(back, v->valuestring) == 0, "step '%s': %s '%s' prints back as '%s'",
                step->string, field, v->valuestring, back);
}

/* Hash h of a plan read back as HGETALL would return it: a new document. */
static inline cJSON *plan_read_back(const bty_hash_write *h)
{
    bty_field *fields = calloc(h->n ? h->n : 1, sizeof(*fields));
    FUZZ_ASSERT(fields, "out of memory");
    for (size_t i = 0; i < h->n; i++)
        fields[i] =
            (bty_field){h->names[i], strlen(h->names[i]), h->values[i], strlen(h->values[i])};
    bty_error err = {0};
    cJSON *doc = doc_from_hash(fields, h->n, h->key, &err);
    FUZZ_ASSERT(doc, "doc_from_hash refuses what was planned for '%s': %s", h->key, err.message);
    free(fields);
    return doc;
}

/* Every value of a write plan is a step record Redis can hold and
 * doc_from_hash reads back: a JSON object. Returns the number of hashes. */
static inline size_t check_plan(const bty_write_plan *plan, const char *workflow)
{
    for (size_t i = 0; i < plan->n; i++) {
        const bty_hash_write *h = &plan->hashes[i];
        FUZZ_ASSERT(h->key && strncmp(h->key, workflow, strlen(workflow)) == 0,
                    "plan key '%s' is not under workflow '%s'", h->key ? h->key : "", workflow);
        for (size_t j = 0; j < h->n; j++) {
            cJSON *record = cJSON_Parse(h->values[j]);
            FUZZ_ASSERT(cJSON_IsObject(record), "plan value of '%s' in '%s' is not an object",
                        h->names[j], h->key);
            cJSON_Delete(record);
        }
    }
    return plan->n;
}

/* What rules_open must give for the workflow `prev`: every step open in a
 * new batch whose id is above every earlier one, canonical times, to_date =
 * batch_start = now, no error_message; records that read back; and what it
 * wrote opens again, with a later batch (unless it took the largest id). */
static inline void check_opened(const char *workflow, const cJSON *prev, const bty_change *c)
{
    FUZZ_ASSERT(c->batch_id >= FUZZ_NOW.sec && c->batch_id > rules_current_batch(prev) &&
                    c->batch_id <= BTY_MAX_BATCH_ID,
                "open chose batch id %lld", c->batch_id);
    FUZZ_ASSERT(cJSON_GetArraySize(c->state) == cJSON_GetArraySize(prev),
                "open changed the number of steps");
    char now[BTY_TIME_LEN + 1];
    time_format(FUZZ_NOW, now);
    const cJSON *step;
    cJSON_ArrayForEach(step, c->state)
    {
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(step, "status");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(step, "batch_id");
        FUZZ_ASSERT(cJSON_IsString(status) && strcmp(status->valuestring, "open") == 0,
                    "step '%s' not open after open", step->string);
        double id_value = 0;
        FUZZ_ASSERT(doc_number(id, &id_value) == 1 && id_value == (double)c->batch_id,
                    "step '%s' has another batch id", step->string);
        check_canonical_time(step, "from_date");
        check_canonical_time(step, "to_date");
        check_canonical_time(step, "batch_start");
        const char *to = cJSON_GetObjectItemCaseSensitive(step, "to_date")->valuestring;
        const char *start = cJSON_GetObjectItemCaseSensitive(step, "batch_start")->valuestring;
        FUZZ_ASSERT(strcmp(to, now) == 0 && strcmp(start, now) == 0,
                    "step '%s': to_date and batch_start are not now", step->string);
        FUZZ_ASSERT(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(step, "batch_end")),
                    "step '%s': batch_end is not null", step->string);
        FUZZ_ASSERT(!cJSON_GetObjectItemCaseSensitive(step, "error_message"),
                    "step '%s': error_message kept", step->string);
    }
    check_plan(&c->plan, workflow);

    cJSON *written = plan_read_back(&c->plan.hashes[0]);
    bty_change again;
    bty_error err = {0};
    int rc = rules_open(workflow, written, FUZZ_NOW, 0, &again, &err);
    if (rc != 0 && c->batch_id == BTY_MAX_BATCH_ID) {
        FUZZ_ASSERT(err.status == 409, "open after the largest id: %d", err.status);
    } else {
        FUZZ_ASSERT(rc == 0, "the state open wrote does not open again: %d %s", err.status,
                    err.message);
        FUZZ_ASSERT(again.batch_id > c->batch_id, "second open chose batch id %lld after %lld",
                    again.batch_id, c->batch_id);
        change_free(&again);
    }
    cJSON_Delete(written);
}

#endif
