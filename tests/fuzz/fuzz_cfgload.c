/*
 * fuzz_cfgload.c - workflow files, as load_cfg reads them: the input is the
 * YAML text given to cfg_parse. Whatever it holds, the parse ends with a
 * document or a 4xx error naming the file, and never crashes or leaks.
 *
 * A document that loads must be one the service can store and use:
 *   - an object of steps, sorted, valid step names, objects, UTF-8 text,
 *     special fields as SPEC section 3 requires;
 *   - rules_load accepts it, gives every step a status, writes times in
 *     the canonical form, and plans records that read back (doc_from_hash)
 *     as the same document;
 *   - whatever loads also opens (rules_open; unless it holds the largest
 *     batch id already) and then closes (rules_end);
 *   - each of these documents renders in the three formats (fuzz_check.h).
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"

#define SOURCE "fuzz.yaml"

/* Documents of more values than this (aliases make them cheaply) are
 * checked as loaded, but not rendered, opened and closed: those steps are
 * linear in the size, and the seconds they take under the sanitizers are
 * better spent on more inputs. */
#define FULL_CHECK_MAX_VALUES 2000

static int is_one_of(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

/* The special fields of a loaded step hold what SPEC section 3 allows. */
static void check_special_fields(const cJSON *step)
{
    static const char *const dates[] = {"from_date", "to_date", "batch_start", "batch_end", NULL};
    static const char *const statuses[] = {"new", "open", "success", "failed", NULL};
    const cJSON *v;
    cJSON_ArrayForEach(v, step)
    {
        const char *k = v->string;
        bty_time t;
        if (is_one_of(k, dates))
            FUZZ_ASSERT(cJSON_IsNull(v) ||
                            (cJSON_IsString(v) && time_parse(v->valuestring, &t) == 0),
                        "step '%s': %s loaded but is not a time", step->string, k);
        else if (strcmp(k, "reprocess_hours") == 0)
            FUZZ_ASSERT(cJSON_IsNumber(v) && v->valuedouble >= 0 &&
                            v->valuedouble <= BTY_MAX_REPROCESS_HOURS,
                        "step '%s': reprocess_hours loaded out of range", step->string);
        else if (strcmp(k, "trunc_start") == 0)
            FUZZ_ASSERT(cJSON_IsBool(v), "step '%s': trunc_start not a boolean", step->string);
        else if (strcmp(k, "status") == 0)
            FUZZ_ASSERT(cJSON_IsString(v) && is_one_of(v->valuestring, statuses),
                        "step '%s': bad status loaded", step->string);
        else if (strcmp(k, "batch_id") == 0)
            FUZZ_ASSERT(cJSON_IsNumber(v) && v->valuedouble >= 0 &&
                            v->valuedouble <= (double)BTY_MAX_BATCH_ID &&
                            v->valuedouble == floor(v->valuedouble),
                        "step '%s': bad batch_id loaded", step->string);
        else if (strcmp(k, "error_message") == 0 || strcmp(k, "infa_section") == 0)
            FUZZ_ASSERT(cJSON_IsString(v) || cJSON_IsNull(v), "step '%s': %s not a string",
                        step->string, k);
    }
}

/* Every number is finite, and nesting stays within CFG_MAX_DEPTH.
 * Returns the number of values. */
static long check_values(const cJSON *item, int depth)
{
    long n = 1;
    FUZZ_ASSERT(depth <= CFG_MAX_DEPTH, "document nests %d levels", depth);
    if (cJSON_IsNumber(item))
        FUZZ_ASSERT(isfinite(item->valuedouble), "a non-finite number loaded");
    const cJSON *child;
    cJSON_ArrayForEach(child, item) n += check_values(child, depth + 1);
    return n;
}

static void check_state_after_load(const cJSON *state)
{
    check_doc_shape(state);
    const cJSON *step;
    cJSON_ArrayForEach(step, state)
    {
        FUZZ_ASSERT(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(step, "status")),
                    "step '%s' has no status after load", step->string);
        static const char *const dates[] = {"from_date", "to_date", "batch_start", "batch_end"};
        for (size_t i = 0; i < 4; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(step, dates[i]);
            if (v && !cJSON_IsNull(v))
                check_canonical_time(step, dates[i]);
        }
    }
}

static void check_open_and_close(const cJSON *state)
{
    bty_change opened, closed;
    bty_error err = {0};
    int rc = rules_open("wf", state, FUZZ_NOW, 0, &opened, &err);
    /* The one exception: a file may hold the largest batch id, after which
     * there is no next one. */
    if (rc != 0 && err.status == 409 && rules_current_batch(state) == BTY_MAX_BATCH_ID)
        return;
    FUZZ_ASSERT(rc == 0, "a loaded workflow does not open: %d %s", err.status, err.message);
    check_opened("wf", state, &opened);
    check_formats("wf", opened.batch_id, opened.state);

    bty_end_request close = {.status = "success"};
    rc = rules_end("wf", opened.state, &close, FUZZ_NOW, &closed, &err);
    FUZZ_ASSERT(rc == 0, "an opened workflow does not close: %d %s", err.status, err.message);
    check_plan(&closed.plan, "wf");
    check_formats("wf", closed.batch_id, closed.state);
    change_free(&closed);
    change_free(&opened);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bty_error err = {0};
    cJSON *doc = cfg_parse((const char *)data, size, SOURCE, &err);
    if (!doc) {
        check_error(&err, "cfg_parse");
        FUZZ_ASSERT(err.status == 422 || err.status == 413, "cfg_parse failed with %d: %s",
                    err.status, err.message);
        FUZZ_ASSERT(strncmp(err.message, SOURCE, strlen(SOURCE)) == 0,
                    "error does not name the file: %s", err.message);
        return 0;
    }

    check_doc_shape(doc);
    check_utf8_tree(doc);
    int full = check_values(doc, 0) <= FULL_CHECK_MAX_VALUES;
    const cJSON *step;
    cJSON_ArrayForEach(step, doc) check_special_fields(step);
    if (full)
        check_formats_any("wf", 0, doc);

    bty_change loaded;
    if (rules_load("wf", doc, FUZZ_NOW, &loaded, &err) != 0)
        fuzz_fail("rules_load refused a parsed document: %d %s", err.status, err.message);
    check_state_after_load(loaded.state);
    FUZZ_ASSERT(check_plan(&loaded.plan, "wf") == 2, "load plans %zu hashes", loaded.plan.n);
    cJSON *back = plan_read_back(&loaded.plan.hashes[0]);
    FUZZ_ASSERT(cJSON_Compare(back, loaded.state, 1), "the stored workflow reads back changed");
    cJSON_Delete(back);
    if (full) {
        check_formats("wf", loaded.batch_id, loaded.state);
        check_open_and_close(loaded.state);
    }
    change_free(&loaded);
    return 0;
}
