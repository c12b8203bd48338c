/*
 * test_rules.c - the batch rules (SPEC section 4) on plain documents, with
 * `now` passed in: from_date after success, failure and for a never-run
 * step, trunc_start, batch ids, abandoned snapshots, close/fail guards,
 * retries, and the write plans that put it all in Redis.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "batchy.h"

/* 2026-11-23T06:00:00.250000Z */
static const bty_time NOW = {1795413600, 250000};

static cJSON *doc(const char *json)
{
    cJSON *d = cJSON_Parse(json);
    assert_non_null(d);
    return d;
}

static const char *field(const cJSON *d, const char *step, const char *name)
{
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d, step), name);
    if (cJSON_IsString(v))
        return v->valuestring;
    return cJSON_IsNull(v) ? "null" : v ? "(not a string)" : "(absent)";
}

static double number(const cJSON *d, const char *step, const char *name)
{
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d, step), name);
    double value = 0;
    assert_int_equal(doc_number(v, &value), 1); /* a number, or raw digits */
    return value;
}

/* Open `json` at NOW and return the new state's from_date of `step`. */
static void open_ok(const char *json, bty_change *out)
{
    cJSON *prev = doc(json);
    bty_error err = {0};
    int rc = rules_open("wf1", prev, NOW, 0, out, &err);
    if (rc != 0)
        fail_msg("rules_open: %d %s", err.status, err.message);
    cJSON_Delete(prev);
}

static void open_after_success_starts_at_previous_batch_start(void **state)
{
    (void)state;
    bty_change c;
    open_ok("{\"a\":{\"status\":\"success\",\"batch_start\":\"2026-11-22T06:00:00.000000\","
            "\"from_date\":\"2026-11-21T06:00:00.000000\",\"batch_id\":1795327200}}",
            &c);
    assert_string_equal(field(c.state, "a", "from_date"), "2026-11-22T06:00:00.000000");
    assert_string_equal(field(c.state, "a", "to_date"), "2026-11-23T06:00:00.250000");
    assert_string_equal(field(c.state, "a", "batch_start"), "2026-11-23T06:00:00.250000");
    assert_string_equal(field(c.state, "a", "batch_end"), "null");
    assert_string_equal(field(c.state, "a", "status"), "open");
    assert_int_equal(c.batch_id, NOW.sec);
    assert_int_equal((long long)number(c.state, "a", "batch_id"), NOW.sec);
    change_free(&c);
}

static void open_after_success_subtracts_reprocess_hours(void **state)
{
    (void)state;
    bty_change c;
    open_ok("{\"a\":{\"status\":\"success\",\"batch_start\":\"2026-11-22T01:00:00.000000\","
            "\"reprocess_hours\":2.5}}",
            &c);
    assert_string_equal(field(c.state, "a", "from_date"), "2026-11-21T22:30:00.000000");
    change_free(&c);
}

static void open_after_failure_keeps_from_date(void **state)
{
    (void)state;
    bty_change c;
    open_ok("{\"a\":{\"status\":\"failed\",\"batch_start\":\"2026-11-22T06:00:00.000000\","
            "\"from_date\":\"2026-11-21T06:00:00.000000\",\"reprocess_hours\":2}}",
            &c);
    assert_string_equal(field(c.state, "a", "from_date"), "2026-11-21T06:00:00.000000");
    change_free(&c);
}

static void open_of_never_run_step_starts_at_origin(void **state)
{
    (void)state;
    bty_change c;
    open_ok("{\"a\":{\"status\":\"new\"},\"b\":{}}", &c);
    assert_string_equal(field(c.state, "a", "from_date"), BTY_ORIGIN);
    assert_string_equal(field(c.state, "b", "from_date"), BTY_ORIGIN);
    change_free(&c);
}

static void open_normalises_a_lenient_from_date(void **state)
{
    (void)state;
    bty_change c;
    open_ok("{\"a\":{\"status\":\"new\",\"from_date\":\"2026-01-01T00:00+01:00\"}}", &c);
    assert_string_equal(field(c.state, "a", "from_date"), "2025-12-31T23:00:00.000000");
    change_free(&c);
}

static void open_with_trunc_start_truncates_to_midnight(void **state)
{
    (void)state;
    bty_change c;
    open_ok("{\"a\":{\"status\":\"success\",\"batch_start\":\"2026-11-22T06:10:00.123456\","
            "\"reprocess_hours\":1,\"trunc_start\":true},"
            "\"b\":{\"trunc_start\":true}}",
            &c);
    assert_string_equal(field(c.state, "a", "from_date"), "2026-11-22T00:00:00.000000");
    assert_string_equal(field(c.state, "b", "from_date"), "1776-07-04T00:00:00.000000");
    change_free(&c);
}

/* State written by the original is read by Python's truth: 1 and the
 * text "false" truncate; 0, "", null, [] and false do not. */
static void trunc_start_written_by_the_original_is_python_truthy(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        int truncates;
    } cases[] = {
        {"true", 1},  {"1", 1},    {"2.5", 1},       {"\"false\"", 1}, {"\"0\"", 1},
        {"\"x\"", 1}, {"[0]", 1},  {"{\"a\":0}", 1}, {"false", 0},     {"0", 0},
        {"0.0", 0},   {"\"\"", 0}, {"null", 0},      {"[]", 0},        {"{}", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char doc[200];
        snprintf(doc, sizeof(doc),
                 "{\"a\":{\"status\":\"success\",\"batch_start\":\"2026-11-22T06:10:00.000000\","
                 "\"trunc_start\":%s}}",
                 cases[i].value);
        bty_change c;
        open_ok(doc, &c);
        const char *want =
            cases[i].truncates ? "2026-11-22T00:00:00.000000" : "2026-11-22T06:10:00.000000";
        if (strcmp(field(c.state, "a", "from_date"), want) != 0)
            fail_msg("trunc_start %s: from_date %s, expected %s", cases[i].value,
                     field(c.state, "a", "from_date"), want);
        change_free(&c);
    }
}

static void open_keeps_other_fields_and_removes_error_message(void **state)
{
    (void)state;
    bty_change c;
    open_ok("{\"a\":{\"status\":\"failed\",\"error_message\":\"boom\",\"source\":\"orders\","
            "\"nested\":{\"x\":[1,2]}}}",
            &c);
    assert_string_equal(field(c.state, "a", "error_message"), "(absent)");
    assert_string_equal(field(c.state, "a", "source"), "orders");
    char *nested =
        cJSON_PrintUnformatted(cJSON_GetObjectItem(cJSON_GetObjectItem(c.state, "a"), "nested"));
    assert_string_equal(nested, "{\"x\":[1,2]}");
    free(nested);
    change_free(&c);
}

static void open_batch_id_is_strictly_increasing_within_a_second(void **state)
{
    (void)state;
    bty_change c;
    char json[200];
    snprintf(json, sizeof(json),
             "{\"a\":{\"status\":\"success\",\"batch_id\":%lld},"
             "\"b\":{\"batch_id\":\"12\"}}",
             (long long)NOW.sec);
    open_ok(json, &c);
    assert_int_equal(c.batch_id, NOW.sec + 1);
    change_free(&c);

    snprintf(json, sizeof(json), "{\"a\":{\"batch_id\":%lld}}", (long long)NOW.sec + 1000);
    open_ok(json, &c);
    assert_int_equal(c.batch_id, NOW.sec + 1001);
    change_free(&c);

    /* An id whose snapshot exists is skipped by asking for a higher one. */
    cJSON *prev = doc("{\"a\":{}}");
    bty_error err = {0};
    assert_int_equal(rules_open("wf1", prev, NOW, NOW.sec + 5, &c, &err), 0);
    assert_int_equal(c.batch_id, NOW.sec + 5);
    assert_int_equal((long long)number(c.state, "a", "batch_id"), NOW.sec + 5);
    change_free(&c);
    cJSON_Delete(prev);
}

/* The plan entry for `key`, or NULL. */
static const bty_hash_write *planned(const bty_change *c, const char *key)
{
    for (size_t i = 0; i < c->plan.n; i++)
        if (strcmp(c->plan.hashes[i].key, key) == 0)
            return &c->plan.hashes[i];
    return NULL;
}

static const char *planned_value(const bty_hash_write *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->names[i], name) == 0)
            return h->values[i];
    return NULL;
}

static void open_writes_latest_and_snapshot_alike(void **state)
{
    (void)state;
    bty_change c;
    open_ok("{\"b\":{},\"a\":{\"status\":\"success\"}}", &c);
    char key[64];
    snprintf(key, sizeof(key), "wf1-%lld", c.batch_id);
    const bty_hash_write *latest = planned(&c, "wf1"), *snap = planned(&c, key);
    assert_non_null(latest);
    assert_non_null(snap);
    assert_int_equal(c.plan.n, 2);
    assert_int_equal(latest->mode, WRITE_MERGE);
    assert_int_equal(snap->mode, WRITE_CREATE);
    assert_int_equal(latest->n, 2);
    assert_int_equal(snap->n, 2);
    for (size_t i = 0; i < latest->n; i++)
        assert_string_equal(latest->values[i], planned_value(snap, latest->names[i]));
    /* Values are compact JSON text, as redis-cli shows them. */
    assert_true(strncmp(planned_value(latest, "a"), "{\"status\": \"open\", ", 18) == 0);
    change_free(&c);
}

static void open_marks_still_open_steps_abandoned_in_their_snapshot(void **state)
{
    (void)state;
    bty_change c;
    open_ok("{\"a\":{\"status\":\"open\",\"batch_id\":1795400000,\"batch_end\":null},"
            "\"b\":{\"status\":\"success\",\"batch_id\":1795400000}}",
            &c);
    const bty_hash_write *old = planned(&c, "wf1-1795400000");
    assert_non_null(old);
    assert_int_equal(old->n, 1);
    cJSON *rec = cJSON_Parse(planned_value(old, "a"));
    assert_string_equal(cJSON_GetObjectItem(rec, "status")->valuestring, "abandoned");
    assert_string_equal(cJSON_GetObjectItem(rec, "batch_end")->valuestring,
                        "2026-11-23T06:00:00.250000");
    cJSON_Delete(rec);
    assert_null(planned_value(old, "b"));
    change_free(&c);
}

static void open_refuses_unreadable_state(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"a\":{\"from_date\":\"yesterday\"}}",
        "{\"a\":{\"status\":\"success\",\"batch_start\":\"2026-13-01\"}}",
        "{\"a\":{\"status\":\"success\",\"batch_start\":\"2026-11-01\",\"reprocess_hours\":-1}}",
        "{\"a\":{\"batch_id\":\"abc\"}}",
        "{}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cJSON *prev = doc(bad[i]);
        bty_change c;
        bty_error err = {0};
        assert_int_equal(rules_open("wf1", prev, NOW, 0, &c, &err), -1);
        assert_int_equal(err.status, i == 4 ? 404 : 409);
        assert_null(c.state);
        assert_int_equal(c.plan.n, 0);
        cJSON_Delete(prev);
    }
}

/* An id above BTY_MAX_BATCH_ID would be written and then read back as
 * unreadable, blocking the workflow: open refuses instead. */
static void open_refuses_a_batch_id_past_the_largest(void **state)
{
    (void)state;
    cJSON *prev = doc("{\"a\":{\"status\":\"success\",\"batch_id\":999999999999999}}");
    bty_change c;
    bty_error err = {0};
    assert_int_equal(rules_open("wf1", prev, NOW, 0, &c, &err), -1);
    assert_int_equal(err.status, 409);
    assert_non_null(strstr(err.message, "largest batch id"));
    assert_null(c.state);
    assert_int_equal(c.plan.n, 0);
    /* the one before the largest still opens, as the largest */
    cJSON_Delete(prev);
    prev = doc("{\"a\":{\"batch_id\":999999999999998}}");
    assert_int_equal(rules_open("wf1", prev, NOW, 0, &c, &err), 0);
    assert_int_equal(c.batch_id, 999999999999999LL);
    change_free(&c);
    /* and so is a higher id asked for (its snapshot exists) past the largest */
    assert_int_equal(rules_open("wf1", prev, NOW, BTY_MAX_BATCH_ID + 1, &c, &err), -1);
    assert_int_equal(err.status, 409);
    cJSON_Delete(prev);
}

/* ---------------------------------------------------------------- end */

static const char *OPEN_DOC = "{\"a\":{\"status\":\"open\",\"batch_id\":1795413000},"
                              "\"b\":{\"status\":\"open\",\"batch_id\":1795413000}}";

static int end(const char *json, const bty_end_request *req, bty_change *c, bty_error *err)
{
    cJSON *d = doc(json);
    int rc = rules_end("wf1", d, req, NOW, c, err);
    cJSON_Delete(d);
    return rc;
}

static void close_marks_all_steps_success_in_latest_and_snapshot(void **state)
{
    (void)state;
    bty_end_request req = {.status = "success"};
    bty_change c;
    bty_error err = {0};
    assert_int_equal(end(OPEN_DOC, &req, &c, &err), 0);
    assert_string_equal(field(c.state, "a", "status"), "success");
    assert_string_equal(field(c.state, "b", "batch_end"), "2026-11-23T06:00:00.250000");
    assert_int_equal(c.plan.n, 2);
    assert_non_null(planned(&c, "wf1"));
    assert_int_equal(planned(&c, "wf1-1795413000")->n, 2);
    change_free(&c);
}

static void close_with_step_changes_only_that_step(void **state)
{
    (void)state;
    const char *steps[] = {"b"};
    bty_end_request req = {.status = "success", .steps = steps, .nsteps = 1};
    bty_change c;
    bty_error err = {0};
    assert_int_equal(end(OPEN_DOC, &req, &c, &err), 0);
    assert_string_equal(field(c.state, "a", "status"), "open");
    assert_string_equal(field(c.state, "b", "status"), "success");
    assert_int_equal(planned(&c, "wf1")->n, 1);
    assert_string_equal(planned(&c, "wf1")->names[0], "b");
    change_free(&c);
}

static void fail_stores_error_message_and_extras_as_strings(void **state)
{
    (void)state;
    const char *names[] = {"rows_loaded"}, *values[] = {"1200"};
    bty_end_request req = {.status = "failed",
                           .error_message = "disk full",
                           .extra_names = names,
                           .extra_values = values,
                           .nextra = 1};
    bty_change c;
    bty_error err = {0};
    assert_int_equal(end(OPEN_DOC, &req, &c, &err), 0);
    assert_string_equal(field(c.state, "a", "status"), "failed");
    assert_string_equal(field(c.state, "a", "error_message"), "disk full");
    assert_string_equal(field(c.state, "b", "rows_loaded"), "1200");
    change_free(&c);
}

static void close_of_step_not_open_is_409_and_plans_nothing(void **state)
{
    (void)state;
    bty_end_request req = {.status = "success"};
    bty_change c;
    bty_error err = {0};
    assert_int_equal(end("{\"a\":{\"status\":\"new\"}}", &req, &c, &err), -1);
    assert_int_equal(err.status, 409);
    assert_non_null(strstr(err.message, "not open"));
    assert_null(c.state);
    /* Mixed: one open, one already failed in this batch. */
    assert_int_equal(end("{\"a\":{\"status\":\"open\",\"batch_id\":5},"
                         "\"b\":{\"status\":\"failed\",\"batch_id\":5}}",
                         &req, &c, &err),
                     -1);
    assert_int_equal(err.status, 409);
}

static void close_retry_answers_current_state_and_writes_nothing(void **state)
{
    (void)state;
    bty_end_request req = {.status = "success"};
    bty_change c;
    bty_error err = {0};
    const char *closed = "{\"a\":{\"status\":\"success\",\"batch_id\":1795413000,"
                         "\"batch_end\":\"2026-11-23T05:59:00.000000\"}}";
    assert_int_equal(end(closed, &req, &c, &err), 0);
    assert_int_equal(c.plan.n, 0);
    assert_string_equal(field(c.state, "a", "batch_end"), "2026-11-23T05:59:00.000000");
    change_free(&c);
    /* After a partial open, each step is in its own batch: a success in
     * a's batch is a retry there, whatever batch b is in; with a's batch
     * id it is too, with b's it is stale. */
    const char *split = "{\"a\":{\"status\":\"success\",\"batch_id\":1},"
                        "\"b\":{\"status\":\"open\",\"batch_id\":2}}";
    const char *a_only[] = {"a"};
    assert_int_equal(
        end(split, &(bty_end_request){.status = "success", .steps = a_only, .nsteps = 1}, &c, &err),
        0);
    assert_int_equal(c.plan.n, 0);
    change_free(&c);
    assert_int_equal(end(split,
                         &(bty_end_request){.status = "success",
                                            .steps = a_only,
                                            .nsteps = 1,
                                            .has_batch_id = 1,
                                            .batch_id = 2},
                         &c, &err),
                     -1);
    assert_int_equal(err.status, 409);
    /* and a close of every step is not a retry while b is open */
    assert_int_equal(end(split, &req, &c, &err), -1);
    assert_int_equal(err.status, 409);
}

static void close_with_stale_batch_id_is_409(void **state)
{
    (void)state;
    bty_end_request req = {.status = "success", .has_batch_id = 1, .batch_id = 1795412000};
    bty_change c;
    bty_error err = {0};
    assert_int_equal(end(OPEN_DOC, &req, &c, &err), -1);
    assert_int_equal(err.status, 409);
    req.batch_id = 1795413000;
    assert_int_equal(end(OPEN_DOC, &req, &c, &err), 0);
    change_free(&c);
}

static void close_refuses_reserved_fields_unknown_steps_and_error(void **state)
{
    (void)state;
    const char *reserved[] = {"status",       "from_date",       "to_date",     "batch_start",
                              "batch_end",    "reprocess_hours", "trunc_start", "error_message",
                              "infa_section", "token",           "batch_id",    ""};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        const char *v = "x";
        bty_end_request req = {
            .status = "success", .extra_names = &reserved[i], .extra_values = &v, .nextra = 1};
        bty_change c;
        bty_error err = {0};
        assert_int_equal(end(OPEN_DOC, &req, &c, &err), -1);
        assert_int_equal(err.status, 400);
    }
    const char *error_name = "error", *v = "x";
    bty_end_request req = {
        .status = "success", .extra_names = &error_name, .extra_values = &v, .nextra = 1};
    bty_change c;
    bty_error err = {0};
    assert_int_equal(end(OPEN_DOC, &req, &c, &err), -1);
    assert_int_equal(err.status, 400);
    assert_non_null(strstr(err.message, "fail_batch"));

    const char *steps[] = {"a", "nope"};
    bty_end_request unknown = {.status = "success", .steps = steps, .nsteps = 2};
    assert_int_equal(end(OPEN_DOC, &unknown, &c, &err), -1);
    assert_int_equal(err.status, 404);
    assert_non_null(strstr(err.message, "nope"));
}

/* Messages quote names cut to a number of bytes; the cut must not leave
 * half a character, since the message is sent as JSON. */
static void error_quoting_a_long_name_stays_utf8(void **state)
{
    (void)state;
    char step[1 + 2 * 150 + 1] = "x";
    for (int i = 0; i < 150; i++)
        memcpy(step + 1 + 2 * i, "\xc3\xa9", 2); /* U+00E9 */
    step[sizeof(step) - 1] = '\0';
    const char *steps[] = {step};
    bty_end_request req = {.status = "success", .steps = steps, .nsteps = 1};
    bty_change c;
    bty_error err = {0};
    assert_int_equal(end(OPEN_DOC, &req, &c, &err), -1);
    assert_int_equal(err.status, 404);
    assert_true(utf8_valid(err.message, strlen(err.message)));
    assert_non_null(strstr(err.message, "'x\xc3\xa9"));
}

static void load_adds_status_new_and_plans_replace_with_init_snapshot(void **state)
{
    (void)state;
    cJSON *d = doc("{\"a\":{},\"b\":{\"status\":\"success\"}}");
    bty_change c;
    bty_error err = {0};
    assert_int_equal(rules_load("wf1", d, NOW, &c, &err), 0);
    assert_string_equal(field(c.state, "a", "status"), "new");
    assert_string_equal(field(c.state, "b", "status"), "success");
    const bty_hash_write *latest = planned(&c, "wf1"), *init = planned(&c, "wf1-1795413600-init");
    assert_non_null(latest);
    assert_non_null(init);
    assert_int_equal(latest->mode, WRITE_REPLACE);
    assert_int_equal(init->mode, WRITE_REPLACE);
    assert_string_equal(planned_value(latest, "a"), "{\"status\": \"new\"}");
    change_free(&c);
}

static void doc_from_hash_reads_original_service_records(void **state)
{
    (void)state;
    const char *v1 = "{\"param1\": \"hello\", \"status\": \"failure\", "
                     "\"from_date\": \"2016-01-01T23:59:00\"}";
    const char *v2 = "{\"status\": \"success\"}";
    bty_field fields[] = {{"z", 1, v2, strlen(v2)}, {"job1", 4, v1, strlen(v1)}};
    bty_error err = {0};
    cJSON *d = doc_from_hash(fields, 2, "wf1", &err);
    assert_non_null(d);
    assert_string_equal(d->child->string, "job1"); /* sorted */
    assert_string_equal(field(d, "job1", "status"), "failed");
    bty_change c;
    assert_int_equal(rules_open("wf1", d, NOW, 0, &c, &err), 0);
    assert_string_equal(field(c.state, "job1", "from_date"), "2016-01-01T23:59:00.000000");
    change_free(&c);
    cJSON_Delete(d);

    const char *junk = "not json";
    bty_field bad[] = {{"job1", 4, junk, strlen(junk)}};
    assert_null(doc_from_hash(bad, 1, "wf1", &err));
    assert_int_equal(err.status, 409);
    assert_non_null(strstr(err.message, "job1"));
}

/* A record edited by hand with a key twice reads as its last copy, so
 * the rules cannot set one copy and leave a stale other. */
static void doc_from_hash_keeps_the_last_copy_of_a_repeated_key(void **state)
{
    (void)state;
    const char *v = "{\"error_message\": \"old\", \"status\": \"open\", \"p\": 1, "
                    "\"status\": \"failed\", \"error_message\": \"disk full\", \"p\": 2}";
    bty_field fields[] = {{"job1", 4, v, strlen(v)}};
    bty_error err = {0};
    cJSON *d = doc_from_hash(fields, 1, "wf1", &err);
    assert_non_null(d);
    char *text = cJSON_PrintUnformatted(d);
    assert_string_equal(text, "{\"job1\":{\"status\":\"failed\",\"error_message\":\"disk full\","
                              "\"p\":2}}");
    free(text);
    bty_change c;
    assert_int_equal(rules_open("wf1", d, NOW, 0, &c, &err), 0);
    assert_string_equal(field(c.state, "job1", "error_message"), "(absent)");
    assert_string_equal(field(c.state, "job1", "status"), "open");
    change_free(&c);
    cJSON_Delete(d);
}

/* Fail the n-th cJSON allocation from now on (-1: never). */
static long allocations_left = -1;

static void *failing_malloc(size_t size)
{
    if (allocations_left == 0)
        return NULL;
    if (allocations_left > 0)
        allocations_left--;
    return malloc(size);
}

/* Every record a successful rule plans must be whole: an allocation that
 * failed half way must give an error, never a record missing fields. */
static void out_of_memory_never_plans_a_half_set_record(void **state)
{
    (void)state;
    const char *prev_text = "{\"job1\":{\"status\":\"success\",\"batch_id\":100,"
                            "\"batch_start\":\"2026-01-01T00:00:00\",\"error_message\":\"x\"},"
                            "\"job2\":{\"status\":\"open\",\"batch_id\":100}}";
    cJSON_Hooks hooks = {failing_malloc, free};
    int failures = 0, successes = 0;
    for (long k = 0; k < 400; k++) {
        cJSON *prev = doc(prev_text);
        bty_change c;
        bty_error err = {0};
        cJSON_InitHooks(&hooks);
        allocations_left = k;
        int rc = rules_open("wf", prev, NOW, 0, &c, &err);
        allocations_left = -1;
        cJSON_InitHooks(NULL);
        cJSON_Delete(prev);
        if (rc != 0) {
            assert_int_equal(err.status, 503);
            assert_null(c.state);
            assert_int_equal(c.plan.n, 0);
            failures++;
            continue;
        }
        successes++;
        for (size_t i = 0; i < c.plan.n; i++) {
            const bty_hash_write *h = &c.plan.hashes[i];
            for (size_t j = 0; j < h->n; j++) {
                cJSON *rec = cJSON_Parse(h->values[j]);
                assert_non_null(rec);
                assert_null(cJSON_GetObjectItem(rec, ""));
                assert_non_null(cJSON_GetObjectItem(rec, "batch_end"));
                if (strcmp(h->key, "wf-100") != 0) { /* not the abandoned record */
                    assert_string_equal(cJSON_GetObjectItem(rec, "status")->valuestring, "open");
                    assert_non_null(cJSON_GetObjectItem(rec, "from_date"));
                    assert_non_null(cJSON_GetObjectItem(rec, "to_date"));
                    assert_null(cJSON_GetObjectItem(rec, "error_message"));
                }
                cJSON_Delete(rec);
            }
        }
        change_free(&c);
    }
    assert_true(failures > 10);
    assert_true(successes > 0);
}

/* close/fail parameters: step= repeated and comma-separated, batch_id,
 * error= only for fail, token= only skipped when it is authentication,
 * and the 400s that must come before any rule runs. */
static void end_params_read_sorts_out_the_parameters(void **state)
{
    (void)state;
    char *names[] = {"step", "step", "batch_id", "error", "rows", "token"};
    char *values[] = {"a,b", "c", "1795413600", "disk full", "12", "t0k"};
    bty_end_params p;
    bty_error err = {0};
    assert_int_equal(end_params_read(&p, "failed", names, values, 6, 1, &err), 0);
    assert_int_equal(p.req.nsteps, 3);
    assert_string_equal(p.req.steps[2], "c");
    assert_true(p.req.has_batch_id);
    assert_true(p.req.batch_id == 1795413600LL);
    assert_string_equal(p.req.error_message, "disk full");
    assert_int_equal(p.req.nextra, 1); /* rows; the token is skipped */
    assert_string_equal(p.req.extra_names[0], "rows");
    end_params_free(&p);

    /* a close stores error= and, without a configured token, token= as
     * extras, for rules_end to judge */
    assert_int_equal(end_params_read(&p, "success", names, values, 6, 0, &err), 0);
    assert_null(p.req.error_message);
    assert_int_equal(p.req.nextra, 3);
    end_params_free(&p);

    struct {
        char *name, *value, *says;
    } bad[] = {{"step", "", "step= is empty"},
               {"step", ",", "step= is empty"},
               {"step", "[x]", "step"},
               {"batch_id", "12a", "batch_id must be a whole number"},
               {"batch_id", "-1", "batch_id must be a whole number"},
               {"batch_id", "12345678901234567", "batch_id must be a whole number"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = (bty_error){0};
        assert_int_equal(end_params_read(&p, "success", &bad[i].name, &bad[i].value, 1, 0, &err),
                         -1);
        assert_int_equal(err.status, 400);
        assert_non_null(strstr(err.message, bad[i].says));
        end_params_free(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(open_after_success_starts_at_previous_batch_start),
        cmocka_unit_test(open_after_success_subtracts_reprocess_hours),
        cmocka_unit_test(open_after_failure_keeps_from_date),
        cmocka_unit_test(open_of_never_run_step_starts_at_origin),
        cmocka_unit_test(open_normalises_a_lenient_from_date),
        cmocka_unit_test(open_with_trunc_start_truncates_to_midnight),
        cmocka_unit_test(trunc_start_written_by_the_original_is_python_truthy),
        cmocka_unit_test(open_keeps_other_fields_and_removes_error_message),
        cmocka_unit_test(open_batch_id_is_strictly_increasing_within_a_second),
        cmocka_unit_test(open_writes_latest_and_snapshot_alike),
        cmocka_unit_test(open_marks_still_open_steps_abandoned_in_their_snapshot),
        cmocka_unit_test(open_refuses_unreadable_state),
        cmocka_unit_test(open_refuses_a_batch_id_past_the_largest),
        cmocka_unit_test(close_marks_all_steps_success_in_latest_and_snapshot),
        cmocka_unit_test(close_with_step_changes_only_that_step),
        cmocka_unit_test(fail_stores_error_message_and_extras_as_strings),
        cmocka_unit_test(close_of_step_not_open_is_409_and_plans_nothing),
        cmocka_unit_test(close_retry_answers_current_state_and_writes_nothing),
        cmocka_unit_test(close_with_stale_batch_id_is_409),
        cmocka_unit_test(close_refuses_reserved_fields_unknown_steps_and_error),
        cmocka_unit_test(error_quoting_a_long_name_stays_utf8),
        cmocka_unit_test(load_adds_status_new_and_plans_replace_with_init_snapshot),
        cmocka_unit_test(doc_from_hash_reads_original_service_records),
        cmocka_unit_test(doc_from_hash_keeps_the_last_copy_of_a_repeated_key),
        cmocka_unit_test(out_of_memory_never_plans_a_half_set_record),
        cmocka_unit_test(end_params_read_sorts_out_the_parameters),
    };
    return cmocka_run_group_tests_name("rules", tests, NULL, NULL);
}
