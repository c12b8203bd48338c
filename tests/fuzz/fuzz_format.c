/*
 * fuzz_format.c - the three output formats over arbitrary documents, and
 * the path a stored workflow takes to them.
 *
 * The input is JSON text, optionally after a first line "#<workflow>
 * <batch_id>" giving format_sh's other two arguments (any bytes: the
 * output must be safe whatever they hold). The document is checked as
 * parsed, whatever its shape (fuzz_check.h: json parses back the same,
 * infa one line per parameter, sh safe to eval and decoding to the
 * values). Then, as open_batch does it:
 *   - each member of an object document becomes a Redis hash field (its
 *     value as compact JSON; a repeated name is dropped, as a hash holds a
 *     field once) and doc_from_hash reads the hash back;
 *   - rules_open on that document either refuses with a 4xx naming what is
 *     unreadable, or opens every step: status open, canonical times,
 *     to_date = batch_start = now, a batch id above every previous one;
 *   - rules_end closes what was opened;
 *   - every document on the way renders in the three formats.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"

#define MAX_INPUT (64 * 1024)

/* The hash HGETALL would return for an object document: one field per
 * distinct member name. Pointers into values[], which the caller frees. */
static size_t hash_of(const cJSON *doc, bty_field *fields, char **values)
{
    size_t n = 0;
    const cJSON *member;
    cJSON_ArrayForEach(member, doc)
    {
        int seen = 0;
        for (size_t i = 0; i < n && !seen; i++)
            seen = strcmp(fields[i].name, member->string) == 0;
        if (seen)
            continue;
        values[n] = cJSON_PrintUnformatted(member);
        FUZZ_ASSERT(values[n], "out of memory");
        fields[n] =
            (bty_field){member->string, strlen(member->string), values[n], strlen(values[n])};
        n++;
    }
    return n;
}

/* doc_from_hash, rules_open and rules_end on the hash of doc. */
/* What the service writes to Redis (py_json_print) is ASCII, reads back,
 * and is written again byte for byte: reading and writing are a fixpoint,
 * so a record is never rewritten only because it was read. */
static void check_python_text(const cJSON *stored)
{
    const cJSON *step;
    cJSON_ArrayForEach(step, stored)
    {
        char *text = py_json_print(step);
        FUZZ_ASSERT(text, "py_json_print returned NULL");
        for (const char *p = text; *p; p++)
            FUZZ_ASSERT((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7F,
                        "py_json_print wrote byte 0x%02x: %s", (unsigned char)*p, text);
        bty_field f = {step->string, strlen(step->string), text, strlen(text)};
        bty_error err = {0};
        cJSON *back = doc_from_hash(&f, 1, "wf1", &err);
        FUZZ_ASSERT(back, "py_json_print output is refused: %s: %s", err.message, text);
        char *again = py_json_print(cJSON_GetObjectItemCaseSensitive(back, step->string));
        FUZZ_ASSERT(again && strcmp(text, again) == 0, "py_json_print is not stable: %s, then %s",
                    text, again ? again : "NULL");
        free(again);
        free(text);
        cJSON_Delete(back);
    }
}

static void check_stored(const cJSON *doc)
{
    size_t max = (size_t)cJSON_GetArraySize(doc);
    bty_field *fields = calloc(max ? max : 1, sizeof(*fields));
    char **values = calloc(max ? max : 1, sizeof(*values));
    FUZZ_ASSERT(fields && values, "out of memory");
    size_t n = hash_of(doc, fields, values);

    bty_error err = {0};
    cJSON *stored = doc_from_hash(fields, n, "wf1", &err);
    if (!stored) {
        check_error(&err, "doc_from_hash");
        FUZZ_ASSERT(err.status == 409, "doc_from_hash refused with %d", err.status);
        goto done;
    }
    check_formats("wf1", rules_current_batch(stored), stored);
    check_python_text(stored);

    bty_change opened, closed;
    if (rules_open("wf1", stored, FUZZ_NOW, 0, &opened, &err) != 0) {
        check_error(&err, "rules_open");
        FUZZ_ASSERT(err.status == 404 || err.status == 409, "rules_open refused with %d",
                    err.status);
        cJSON_Delete(stored);
        goto done;
    }
    check_opened("wf1", stored, &opened);
    check_formats("wf1", opened.batch_id, opened.state);

    bty_end_request close = {.status = "failed", .error_message = "it's\n$(broken)"};
    if (rules_end("wf1", opened.state, &close, FUZZ_NOW, &closed, &err) != 0)
        fuzz_fail("what was opened does not fail: %d %s", err.status, err.message);
    check_plan(&closed.plan, "wf1");
    check_formats("wf1", closed.batch_id, closed.state);
    change_free(&closed);
    change_free(&opened);
    cJSON_Delete(stored);
done:
    for (size_t i = 0; i < n; i++)
        cJSON_free(values[i]);
    free(values);
    free(fields);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    const char *text = (const char *)data;
    char workflow[160] = "wf1";
    long long batch_id = 1795413600;

    if (size && text[0] == '#') {
        const char *nl = memchr(text, '\n', size);
        size_t head = nl ? (size_t)(nl - text) : size;
        char line[200];
        size_t n = head - 1 < sizeof(line) - 1 ? head - 1 : sizeof(line) - 1;
        memcpy(line, text + 1, n);
        line[n] = '\0';
        char *sp = strrchr(line, ' ');
        if (sp) {
            *sp = '\0';
            batch_id = strtoll(sp + 1, NULL, 10);
        }
        snprintf(workflow, sizeof(workflow), "%s", line);
        size -= nl ? head + 1 : head;
        text += nl ? head + 1 : head;
    }

    cJSON *doc = cJSON_ParseWithLength(text, size);
    if (!doc)
        return 0;
    check_formats_any(workflow, batch_id, doc);
    if (cJSON_IsObject(doc)) {
        /* What the service reads from Redis has exact integers (doc.c). */
        doc_number_texts(doc);
        check_formats(workflow, batch_id, doc);
        check_stored(doc);
    }
    cJSON_Delete(doc);
    return 0;
}
