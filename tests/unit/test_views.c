/*
 * test_views.c - unit tests of views.c (the /workflows rows and the
 * /events events) and of the notice channel's name (keys.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "batchy.h"

static cJSON *parse(const char *json)
{
    cJSON *doc = cJSON_Parse(json);
    assert_non_null(doc);
    return doc;
}

/* The compact JSON of item, compared, and item deleted. */
static void assert_json(cJSON *item, const char *want)
{
    assert_non_null(item);
    char *got = cJSON_PrintUnformatted(item);
    assert_string_equal(got, want);
    free(got);
    cJSON_Delete(item);
}

static const char STATE[] =
    "{\"a\": {\"status\": \"success\", \"batch_id\": 7, \"batch_start\": "
    "\"2026-11-27T06:00:00.000000\", \"batch_end\": \"2026-11-27T06:10:00.000000\"},"
    " \"b\": {\"status\": \"open\", \"batch_id\": 7, \"batch_start\": "
    "\"2026-11-27T06:00:01.000000\"},"
    " \"c\": {\"status\": \"open\", \"batch_id\": 7, \"batch_start\": "
    "\"2026-11-27T06:00:02.000000\"}}";

static void an_event_is_the_workflow_its_batch_and_counts(void **state)
{
    (void)state;
    cJSON *doc = parse(STATE);
    assert_json(view_event("wf1", doc, NULL),
                "{\"workflow\":\"wf1\",\"batch_id\":7,\"counts\":{\"success\":1,\"open\":2},"
                "\"updated\":\"2026-11-27T06:10:00.000000\"}");
    cJSON_Delete(doc);
}

static void an_event_of_a_workflow_without_state_says_why(void **state)
{
    (void)state;
    assert_json(view_event("wf1", NULL, "not loaded"),
                "{\"workflow\":\"wf1\",\"error\":\"not loaded\"}");
}

static void an_event_of_a_new_workflow_has_no_batch(void **state)
{
    (void)state;
    cJSON *doc = parse("{\"a\": {\"p\": 1}, \"b\": {\"status\": \"new\"}}");
    assert_json(view_event("wf2", doc, NULL),
                "{\"workflow\":\"wf2\",\"batch_id\":0,\"counts\":{\"new\":2},\"updated\":null}");
    cJSON_Delete(doc);
}

static void the_row_and_the_event_agree(void **state)
{
    (void)state;
    cJSON *doc = parse(STATE);
    unsigned statuses = 0;
    int64_t until;
    cJSON *row = view_workflow("wf1", doc, (bty_time){0, 0}, &statuses, &until);
    cJSON *ev = view_event("wf1", doc, NULL);
    assert_non_null(row);
    assert_non_null(ev);
    assert_int_equal(statuses, view_status_bit("success") | view_status_bit("open"));
    for (const char *const *k = (const char *const[]){"batch_id", "counts", "updated", NULL}; *k;
         k++)
        assert_true(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(row, *k),
                                  cJSON_GetObjectItemCaseSensitive(ev, *k), 1));
    assert_null(cJSON_GetObjectItemCaseSensitive(ev, "late"));
    assert_null(cJSON_GetObjectItemCaseSensitive(ev, "steps"));
    cJSON_Delete(row);
    cJSON_Delete(ev);
    cJSON_Delete(doc);
}

/* 2026-11-27 (UTC) at hh:mm. */
static bty_time at(int hh, int mm)
{
    return (bty_time){1795737600 + hh * 3600 + mm * 60, 0};
}

static int late(const char *json, bty_time now, int64_t *until)
{
    cJSON *rec = parse(json);
    *until = INT64_MAX;
    int l = view_step_late(rec, now, until);
    cJSON_Delete(rec);
    return l;
}

static void a_step_is_late_after_its_time_without_a_success_that_day(void **state)
{
    (void)state;
    int64_t until, midnight = at(0, 0).sec + 86400;
    const char *open = "{\"status\": \"open\", \"expected_by\": \"06:00\"}";
    assert_false(late(open, at(5, 59), &until));
    assert_int_equal(until, at(6, 0).sec); /* it may become late then */
    assert_true(late(open, at(6, 0), &until));
    assert_int_equal(until, midnight); /* a new day: not late until 06:00 */
    assert_true(late("{\"status\": \"failed\", \"expected_by\": \"06:00\", \"batch_end\": "
                     "\"2026-11-27T05:00:00\"}",
                     at(7, 0), &until));
    /* a success that day, even after the time: not late, until the day ends */
    const char *done = "{\"status\": \"success\", \"expected_by\": \"06:00\", \"batch_end\": "
                       "\"2026-11-27T07:30:00.000000\"}";
    assert_false(late(done, at(8, 0), &until));
    assert_int_equal(until, midnight);
    /* yesterday's success does not count today */
    assert_true(late("{\"status\": \"success\", \"expected_by\": \"06:00\", \"batch_end\": "
                     "\"2026-11-26T23:59:59\"}",
                     at(6, 1), &until));
    /* without expected_by (or one that is not a time of day): never */
    assert_false(late("{\"status\": \"new\"}", at(23, 0), &until));
    assert_int_equal(until, INT64_MAX);
    assert_false(late("{\"status\": \"new\", \"expected_by\": 360}", at(23, 0), &until));
}

static void the_row_is_late_when_a_step_is(void **state)
{
    (void)state;
    cJSON *doc = parse("{\"a\": {\"status\": \"new\", \"expected_by\": \"09:00\"},"
                       " \"b\": {\"status\": \"open\", \"expected_by\": \"06:00\"}}");
    unsigned statuses;
    int64_t until;
    cJSON *row = view_workflow("wf", doc, at(7, 0), &statuses, &until);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, "late")));
    assert_int_equal(until, at(9, 0).sec); /* a becomes late then */
    cJSON_Delete(row);
    row = view_workflow("wf", doc, at(5, 0), &statuses, &until);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(row, "late")));
    assert_int_equal(until, at(6, 0).sec);
    cJSON_Delete(row);
    cJSON_Delete(doc);
}

/* The lines of family f in m. */
static char *family(const view_metrics *m, int f)
{
    size_t n = m->cut[f + 1] - m->cut[f];
    char *out = malloc(n + 1);
    assert_non_null(out);
    memcpy(out, m->text + m->cut[f], n);
    out[n] = '\0';
    return out;
}

static void step_series_group_by_family_and_escape_labels(void **state)
{
    (void)state;
    cJSON *doc = parse("{\"a\": {\"status\": \"success\", \"expected_by\": \"06:00\", "
                       "\"batch_start\": \"2026-11-27T05:00:00.000000\", "
                       "\"batch_end\": \"2026-11-27T05:30:00.500000\"},"
                       " \"q\\\"\\\\\": {\"status\": \"open\", "
                       "\"batch_start\": \"2026-11-27T05:00:00.000000\"}}");
    view_metrics m;
    assert_int_equal(view_step_metrics("wf", doc, at(7, 0), &m), 0);
    char *status = family(&m, VIEW_STEP_STATUS), *late = family(&m, VIEW_STEP_LATE);
    char *success = family(&m, VIEW_STEP_LAST_SUCCESS), *dur = family(&m, VIEW_STEP_LAST_DURATION);
    assert_string_equal(
        status, "batchy_step_status{workflow=\"wf\",step=\"a\",status=\"success\"} 1\n"
                "batchy_step_status{workflow=\"wf\",step=\"q\\\"\\\\\",status=\"open\"} 1\n");
    assert_string_equal(late, "batchy_step_late{workflow=\"wf\",step=\"a\"} 0\n");
    assert_string_equal(success,
                        "batchy_step_last_success_timestamp_seconds{workflow=\"wf\",step=\"a\"} "
                        "1795757400.500000\n");
    assert_string_equal(
        dur, "batchy_step_last_duration_seconds{workflow=\"wf\",step=\"a\"} 1800.500000\n");
    free(status);
    free(late);
    free(success);
    free(dur);
    free(m.text);
    assert_int_equal(view_step_metrics("bad", NULL, at(7, 0), &m), 0);
    char *unreadable = family(&m, VIEW_WORKFLOW_UNREADABLE);
    assert_string_equal(unreadable, "batchy_workflow_unreadable{workflow=\"bad\"} 1\n");
    assert_int_equal(m.cut[VIEW_WORKFLOW_UNREADABLE], 0); /* nothing before it */
    free(unreadable);
    free(m.text);
    cJSON_Delete(doc);
}

static void the_channel_is_per_database(void **state)
{
    (void)state;
    char buf[BTY_KEY_MAX];
    key_changes_channel(buf, 0);
    assert_string_equal(buf, "batchy:changes:0");
    key_changes_channel(buf, 15);
    assert_string_equal(buf, "batchy:changes:15");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_event_is_the_workflow_its_batch_and_counts),
        cmocka_unit_test(an_event_of_a_workflow_without_state_says_why),
        cmocka_unit_test(an_event_of_a_new_workflow_has_no_batch),
        cmocka_unit_test(the_row_and_the_event_agree),
        cmocka_unit_test(a_step_is_late_after_its_time_without_a_success_that_day),
        cmocka_unit_test(the_row_is_late_when_a_step_is),
        cmocka_unit_test(step_series_group_by_family_and_escape_labels),
        cmocka_unit_test(the_channel_is_per_database),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
