/*
 * format.c - the output formats of a workflow document (SPEC section 5):
 *
 *   json  the document pretty-printed by cJSON;
 *   infa  an Informatica parameter file: "[section]" then "$$param=value";
 *   sh    shell assignments for eval: BATCHY_<STEP>_<PARAM>='value'.
 *
 * infa and sh render a parameter value the same way (render_value): strings
 * as they are, numbers as JSON numbers, booleans true/false, null empty,
 * arrays and objects as compact JSON, and every CR or LF turned into a
 * space so that each parameter is exactly one line.
 *
 * Both print the special fields (fields.c) after the other parameters: a
 * script that evals sh, or a reader of infa that compares names without
 * case, keeps the last of two lines of one name, and that must be the
 * real field, never a parameter that passes for it ("FROM_DATE", or in sh
 * "date" of step "a_from", printed as BATCHY_A_FROM_DATE like from_date of
 * step "a"). Close/fail parameters and workflow files refuse such names
 * (special_field_reserved); the order holds for state stored before that.
 *
 * Pure: builds strings in memory, no I/O. A document that is not the usual
 * {step: {param: value}} (an array, a step that is not an object) renders
 * as far as it makes sense and never crashes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchy.h"

/* ------------------------------------------------------------------ buffer */

typedef bty_buf out_buf;

void bty_buf_add(bty_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (n >= SIZE_MAX - b->len) {
        b->failed = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap = cap > SIZE_MAX / 2 ? b->len + n + 1 : cap * 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void bty_buf_puts(bty_buf *b, const char *s)
{
    bty_buf_add(b, s, strlen(s));
}

static void buf_putc(out_buf *b, char c)
{
    bty_buf_add(b, &c, 1);
}

/* Append s with every CR and LF replaced by a space. */
static void buf_put_line(out_buf *b, const char *s)
{
    for (const char *p = s; *p; p++)
        buf_putc(b, (*p == '\n' || *p == '\r') ? ' ' : *p);
}

/* Append s inside single quotes, each ' written as '\'' and CR/LF as
 * spaces. Inside single quotes sh gives no byte a meaning but ', so the
 * result is one literal word whatever s holds. */
static void buf_put_sh_quoted(out_buf *b, const char *s)
{
    buf_putc(b, '\'');
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            bty_buf_puts(b, "'\\''");
        else
            buf_putc(b, (*p == '\n' || *p == '\r') ? ' ' : *p);
    }
    buf_putc(b, '\'');
}

/* Append s upper-cased (ASCII), every byte outside [A-Z0-9_] as '_'. */
static void buf_put_sh_name(out_buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c >= 'a' && c <= 'z')
            c = (unsigned char)(c - 'a' + 'A');
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            c = '_';
        buf_putc(b, (char)c);
    }
}

/* Hand the finished string to the caller, or NULL if anything failed. */
static char *buf_finish(out_buf *b)
{
    if (b->failed) {
        free(b->data);
        return NULL;
    }
    if (!b->data)
        bty_buf_add(b, "", 0);
    return b->failed ? NULL : b->data;
}

/* ------------------------------------------------------------------ values */

/* A malloc'd copy of a string cJSON allocated, which is released with
 * cJSON_free (cJSON may use its own allocator). NULL if text is NULL or on
 * out of memory. extra bytes are reserved after the NUL. */
static char *copy_cjson_text(char *text, size_t extra)
{
    if (!text)
        return NULL;
    size_t n = strlen(text);
    char *out = malloc(n + 1 + extra);
    if (out)
        memcpy(out, text, n + 1);
    cJSON_free(text);
    return out;
}

/* The value of a parameter as text, before CR/LF replacement: a new string
 * the caller frees, or NULL on out of memory. Numbers go through cJSON's own
 * printer so that 1467149783 stays an integer and 1.5 stays 1.5. */
static char *render_value(const cJSON *v)
{
    if (cJSON_IsString(v) || cJSON_IsRaw(v))
        return strdup(v->valuestring ? v->valuestring : "");
    if (cJSON_IsTrue(v))
        return strdup("true");
    if (cJSON_IsFalse(v))
        return strdup("false");
    if (cJSON_IsNumber(v) || cJSON_IsArray(v) || cJSON_IsObject(v))
        return copy_cjson_text(cJSON_PrintUnformatted(v), 0);
    return strdup(""); /* null, or an invalid item */
}

static const char *name_of(const cJSON *item)
{
    return item->string ? item->string : "";
}

/* 1 when the member `param` of a step is a special field of steps (not a
 * close/fail parameter such as token, which is a plain parameter in a
 * record). */
static int is_special(const cJSON *param)
{
    const bty_special_field *f = param->string ? special_field_find(param->string) : NULL;
    return f && f->type != FIELD_PARAM;
}

/* ------------------------------------------------------------------ formats */

/* See batchy.h. A NULL document prints as an empty object. */
char *format_json(const cJSON *doc)
{
    char *text;
    if (doc) {
        text = copy_cjson_text(cJSON_Print(doc), 1);
    } else {
        cJSON *empty = cJSON_CreateObject();
        if (!empty)
            return NULL;
        text = copy_cjson_text(cJSON_Print(empty), 1);
        cJSON_Delete(empty);
    }
    if (!text)
        return NULL;
    size_t n = strlen(text);
    text[n] = '\n';
    text[n + 1] = '\0';
    return text;
}

/* A special time field (from_date, to_date, batch_start, batch_end) as the
 * original's infa output wrote it: Informatica mappings parse that form
 * (SPEC 15). NULL for anything else, or a value that is not a time. */
static char *infa_time(const cJSON *param)
{
    const bty_special_field *f = param->string ? special_field_find(param->string) : NULL;
    bty_time t;
    if (!f || f->type != FIELD_TIME || !cJSON_IsString(param) ||
        time_parse(param->valuestring, &t) != 0)
        return NULL;
    char text[BTY_TIME_LEN + 1];
    time_format_python(t, text);
    return strdup(text);
}

/* Append "$$<param>=<value>" for each member of `step` that is a special
 * field (special 1) or is not (special 0), but infa_section. */
static void infa_params(out_buf *b, const cJSON *step, int special)
{
    const cJSON *param;
    cJSON_ArrayForEach(param, step)
    {
        if (is_special(param) != special ||
            (param->string && strcmp(param->string, "infa_section") == 0))
            continue;
        char *value = infa_time(param);
        if (!value)
            value = render_value(param);
        if (!value) {
            b->failed = 1;
            return;
        }
        bty_buf_puts(b, "$$");
        buf_put_line(b, name_of(param));
        buf_putc(b, '=');
        buf_put_line(b, value);
        buf_putc(b, '\n');
        free(value);
    }
}

/* See batchy.h. For each step in document order: "[<infa_section>]" when
 * the step has a string infa_section, else "[<step name>]"; then
 * "$$<param>=<value>" for every parameter but infa_section, the special
 * fields last. */
char *format_infa(const cJSON *doc)
{
    out_buf b = {0};
    const cJSON *step;

    cJSON_ArrayForEach(step, doc)
    {
        const cJSON *section = NULL;
        if (cJSON_IsObject(step))
            section = cJSON_GetObjectItemCaseSensitive(step, "infa_section");
        buf_putc(&b, '[');
        /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): cJSON_IsString(NULL) is false */
        buf_put_line(&b, cJSON_IsString(section) && section->valuestring ? section->valuestring
                                                                         : name_of(step));
        bty_buf_puts(&b, "]\n");
        if (!cJSON_IsObject(step))
            continue;
        infa_params(&b, step, 0);
        infa_params(&b, step, 1);
    }
    return buf_finish(&b);
}

/* The two lines that open the sh output. */
static void sh_header(out_buf *b, const char *workflow, long long batch_id)
{
    char num[32];
    bty_buf_puts(b, "BATCHY_WORKFLOW=");
    buf_put_sh_quoted(b, workflow ? workflow : "");
    buf_putc(b, '\n');
    snprintf(num, sizeof(num), "%lld", batch_id);
    bty_buf_puts(b, "BATCHY_BATCH_ID=");
    bty_buf_puts(b, num);
    buf_putc(b, '\n');
}

/* Append BATCHY_<STEP>_<PARAM>='<value>' for each member of each step of
 * doc that is a special field (special 1) or is not (special 0). Returns 1
 * when a line was named as a header line (BATCHY_BATCH_ID: step "batch",
 * parameter "id"), else 0. */
static int sh_params(out_buf *b, const cJSON *doc, int special)
{
    int header = 0;
    const cJSON *step;
    cJSON_ArrayForEach(step, doc)
    {
        if (!cJSON_IsObject(step))
            continue;
        const cJSON *param;
        cJSON_ArrayForEach(param, step)
        {
            if (is_special(param) != special)
                continue;
            char *value = render_value(param);
            if (!value) {
                b->failed = 1;
                return header;
            }
            size_t start = b->len;
            bty_buf_puts(b, "BATCHY_");
            buf_put_sh_name(b, name_of(step));
            buf_putc(b, '_');
            buf_put_sh_name(b, name_of(param));
            if (!b->failed && (strcmp(b->data + start, "BATCHY_BATCH_ID") == 0 ||
                               strcmp(b->data + start, "BATCHY_WORKFLOW") == 0))
                header = 1;
            buf_putc(b, '=');
            buf_put_sh_quoted(b, value);
            buf_putc(b, '\n');
            free(value);
        }
    }
    return header;
}

/* See batchy.h. BATCHY_WORKFLOW and BATCHY_BATCH_ID, then
 * BATCHY_<STEP>_<PARAM>='<value>' for every parameter of every step
 * (infa_section included): first those that are not special fields, step
 * by step, then the special fields, step by step, so that no parameter of
 * any step overrides a special field after eval. Every line is `NAME=word`
 * with NAME made of [A-Z0-9_] only and word either digits or one
 * single-quoted literal, so the output is safe to eval. Names that map to
 * the same variable (steps "a-b" and "a_b") are all written; the last one
 * wins when evaluated. A parameter printed as a header line (step "batch",
 * parameter "id") would override it: the header lines are then written
 * again at the end. */
char *format_sh(const char *workflow, long long batch_id, const cJSON *doc)
{
    out_buf b = {0};
    sh_header(&b, workflow, batch_id);
    int header = sh_params(&b, doc, 0);
    header |= sh_params(&b, doc, 1);
    if (header)
        sh_header(&b, workflow, batch_id);
    return buf_finish(&b);
}

/* ------------------------------------------------------------------ env */

/* "NAME=value" for env, malloc'd: name as the sh format names it (when
 * step is NULL, name as it is), value as it prints it, unquoted. */
static char *env_entry(const char *step, const char *name, const char *value)
{
    out_buf b = {0};
    if (step) {
        bty_buf_puts(&b, "BATCHY_");
        buf_put_sh_name(&b, step);
        buf_putc(&b, '_');
        buf_put_sh_name(&b, name);
    } else {
        bty_buf_puts(&b, name);
    }
    buf_putc(&b, '=');
    for (const char *p = value; *p; p++)
        buf_putc(&b, (*p == '\n' || *p == '\r') ? ' ' : *p);
    return buf_finish(&b);
}

char **format_env(const char *workflow, long long batch_id, const char *step_name,
                  const cJSON *step)
{
    size_t n = 0, room = (size_t)cJSON_GetArraySize(step) + 6;
    char **env = calloc(room, sizeof(char *));
    if (!env)
        return NULL;
    int failed = 0;
    /* Parameters, then special fields, then the lines of batchy-run's own:
     * the later wins in an environment too. */
    for (int special = 0; special < 2 && !failed; special++) {
        const cJSON *param;
        cJSON_ArrayForEach(param, step)
        {
            if (is_special(param) != special)
                continue;
            char *value = render_value(param);
            failed = failed || !value || !(env[n++] = env_entry(step_name, name_of(param), value));
            free(value);
        }
    }
    char id[32];
    snprintf(id, sizeof(id), "%lld", batch_id);
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(step, "from_date");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(step, "to_date");
    const char *own[][2] = {
        {"BATCHY_WORKFLOW", workflow},
        {"BATCHY_STEP", step_name},
        {"BATCHY_BATCH_ID", id},
        {"BATCHY_FROM_DATE", cJSON_IsString(from) ? from->valuestring : ""},
        {"BATCHY_TO_DATE", cJSON_IsString(to) ? to->valuestring : ""},
    };
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]) && !failed; i++)
        failed = !(env[n++] = env_entry(NULL, own[i][0], own[i][1]));
    if (failed) {
        for (size_t i = 0; i < room; i++)
            free(env[i]);
        free(env);
        return NULL;
    }
    return env;
}
