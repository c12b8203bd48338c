/*
 * test_waitsy_history.c - unit tests of Waitsy's use of Batchy's history
 * (ready.c, SPEC section 9): which pages to read for a target day, when to
 * stop, and a step counting as done when any batch of it kept in history
 * succeeded that day.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "waitsy.h"

static long long epoch(const char *text)
{
    bty_time t;
    assert_int_equal(time_parse(text, &t), 0);
    return (long long)t.sec;
}

static void set_tz(const char *tz)
{
    if (tz)
        setenv("TZ", tz, 1);
    else
        unsetenv("TZ");
    tzset();
}

/* JSON written with ' for ", as the tests below are. */
static cJSON *parse(const char *json)
{
    char *text = strdup(json);
    assert_non_null(text);
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    cJSON *doc = cJSON_Parse(text);
    if (!doc)
        fail_msg("bad test JSON: %s", text);
    free(text);
    return doc;
}

/* Read one page written as JSON text into h. */
static wz_page_verdict read_page(wz_history *h, const char *json)
{
    cJSON *page = parse(json);
    wz_page_verdict v = wz_history_read(h, page);
    cJSON_Delete(page);
    return v;
}

/* A page of n batches with one step "a" each, ids from `newest` down by
 * `gap`, every step open; next_before the last id, or null. */
static cJSON *open_batches(long long newest, long long gap, int n, int last_page)
{
    cJSON *page = cJSON_CreateObject(), *batches = cJSON_AddArrayToObject(page, "batches");
    cJSON_AddStringToObject(page, "workflow", "wf1");
    for (int i = 0; i < n; i++) {
        cJSON *batch = cJSON_CreateObject(), *steps = cJSON_CreateObject();
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(batch, "batch_id", (double)(newest - i * gap));
        cJSON_AddStringToObject(a, "status", "open");
        cJSON_AddItemToObject(steps, "a", a);
        cJSON_AddItemToObject(batch, "steps", steps);
        cJSON_AddItemToArray(batches, batch);
    }
    if (last_page || n == 0)
        cJSON_AddNullToObject(page, "next_before");
    else
        cJSON_AddNumberToObject(page, "next_before", (double)(newest - (n - 1) * gap));
    return page;
}

/* Assess a get_status document with history h, on h's day. */
static wz_assessment assess(const char *json, const wz_history *h, char *const *steps,
                            size_t nsteps)
{
    cJSON *doc = parse(json);
    wz_assessment a;
    assert_int_equal(wz_assess_history("wf1", doc, h, steps, nsteps, h->date, h->local, &a), 0);
    cJSON_Delete(doc);
    assert_non_null(a.summary);
    return a;
}

/* ------------------------------------------------------------ the window */

static void first_page_covers_the_day_with_a_day_either_side(void **state)
{
    (void)state;
    wz_history h;
    wz_history_start(&h, "2026-11-23", 0);
    assert_string_equal(h.date, "2026-11-23");
    assert_int_equal(h.more, 1);
    assert_int_equal(h.pages, 0);
    assert_int_equal(h.limit, WZ_HISTORY_FIRST_PAGE);
    assert_true(h.from == epoch("2026-11-22T00:00:00"));
    assert_true(h.before == epoch("2026-11-25T00:00:00"));
    assert_null(h.succeeded);
    wz_history_free(&h);
}

static void local_day_window_starts_at_local_midnight(void **state)
{
    (void)state;
    wz_history h;
    set_tz("EST5"); /* UTC-5 */
    wz_history_start(&h, "2026-11-23", 1);
    assert_true(h.from == epoch("2026-11-22T05:00:00"));
    assert_true(h.before == epoch("2026-11-25T05:00:00"));
    wz_history_free(&h);
    set_tz("<+14>-14");
    wz_history_start(&h, "2026-11-23", 1);
    assert_true(h.from == epoch("2026-11-21T10:00:00"));
    wz_history_free(&h);
    set_tz(NULL);
}

static void no_page_for_a_day_no_batch_id_can_reach(void **state)
{
    (void)state;
    wz_history h;
    wz_history_start(&h, "1960-01-01", 0); /* ids are seconds since 1970, from 1 */
    assert_int_equal(h.more, 0);
    wz_history_free(&h);
    wz_history_start(&h, "not a day", 0);
    assert_int_equal(h.more, 0);
    wz_history_free(&h);
}

/* ------------------------------------------------------------ paging */

static void a_page_reaching_the_day_before_is_the_last(void **state)
{
    (void)state;
    wz_history h;
    wz_history_start(&h, "2026-11-23", 0);
    /* hourly: 100 batches span four days, past the window */
    cJSON *page = open_batches(epoch("2026-11-24T23:00:00"), 3600, 100, 0);
    assert_int_equal(wz_history_read(&h, page), WZ_PAGE_DONE);
    assert_int_equal(h.more, 0);
    assert_int_equal(h.pages, 1);
    cJSON_Delete(page);
    wz_history_free(&h);
}

static void older_pages_are_read_while_they_can_concern_the_day(void **state)
{
    (void)state;
    wz_history h;
    wz_history_start(&h, "2026-11-23", 0);
    /* every 10 minutes: 100 batches are 16.5 hours, all in the window */
    long long newest = epoch("2026-11-24T23:50:00"), oldest = newest - 99 * 600;
    cJSON *page = open_batches(newest, 600, 100, 0);
    assert_int_equal(wz_history_read(&h, page), WZ_PAGE_MORE);
    cJSON_Delete(page);
    assert_int_equal(h.more, 1);
    assert_true(h.before == oldest);
    /* the rest of the window at that pace, with a quarter and ten to
     * spare: (oldest - from) / 600 * 1.25 + 10 */
    long want = (long)((double)(oldest - h.from) / 600 * 1.25 + 10);
    assert_int_equal(h.limit, want);
    assert_true(h.limit > WZ_HISTORY_FIRST_PAGE && h.limit < WZ_HISTORY_MAX_PAGE);

    /* the next page goes past the start of the window: done */
    page = open_batches(oldest - 600, 600, (int)h.limit, 0);
    assert_int_equal(wz_history_read(&h, page), WZ_PAGE_DONE);
    cJSON_Delete(page);
    assert_int_equal(h.pages, 2);
    wz_history_free(&h);
}

static void the_page_size_stays_within_batchys_limits(void **state)
{
    (void)state;
    wz_history h;
    wz_history_start(&h, "2026-11-23", 0);
    /* one a second: a thousand, Batchy's largest page */
    cJSON *page = open_batches(epoch("2026-11-24T12:00:00"), 1, 100, 0);
    assert_int_equal(wz_history_read(&h, page), WZ_PAGE_MORE);
    cJSON_Delete(page);
    assert_int_equal(h.limit, WZ_HISTORY_MAX_PAGE);
    /* close to the start of the window: never below the first page */
    wz_history_free(&h);
    wz_history_start(&h, "2026-11-23", 0);
    page = open_batches(epoch("2026-11-22T00:00:50"), 1, 10, 0);
    assert_int_equal(wz_history_read(&h, page), WZ_PAGE_MORE);
    cJSON_Delete(page);
    assert_int_equal(h.limit, WZ_HISTORY_FIRST_PAGE);
    wz_history_free(&h);
}

static void the_last_page_an_empty_page_or_no_progress_ends_it(void **state)
{
    (void)state;
    wz_history h;
    long long noon = epoch("2026-11-23T12:00:00");
    wz_history_start(&h, "2026-11-23", 0);
    cJSON *page = open_batches(noon, 60, 5, 1); /* next_before null */
    assert_int_equal(wz_history_read(&h, page), WZ_PAGE_DONE);
    cJSON_Delete(page);
    wz_history_free(&h);

    wz_history_start(&h, "2026-11-23", 0);
    assert_int_equal(read_page(&h, "{'workflow': 'wf1', 'batches': [], 'next_before': null}"),
                     WZ_PAGE_DONE);
    wz_history_free(&h);

    /* a server that answers the same page again is not asked forever */
    wz_history_start(&h, "2026-11-23", 0);
    page = open_batches(noon, 60, 5, 0);
    assert_int_equal(wz_history_read(&h, page), WZ_PAGE_MORE);
    assert_int_equal(wz_history_read(&h, page), WZ_PAGE_DONE);
    cJSON_Delete(page);
    wz_history_free(&h);
}

static void at_most_so_many_pages(void **state)
{
    (void)state;
    wz_history h;
    wz_history_start(&h, "2026-11-23", 0);
    long long newest = epoch("2026-11-24T23:59:59");
    for (int i = 1; i <= WZ_HISTORY_MAX_PAGES; i++) {
        cJSON *page = open_batches(newest, 1, 2, 0);
        wz_page_verdict v = wz_history_read(&h, page);
        cJSON_Delete(page);
        assert_int_equal(v, i < WZ_HISTORY_MAX_PAGES ? WZ_PAGE_MORE : WZ_PAGE_DONE);
        newest -= 2;
    }
    wz_history_free(&h);
}

/* ------------------------------------------------------------ answers */

static void answers_that_are_not_history_are_invalid_and_nothing_is_taken(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "[]",
        "{}",
        "{'error': 'workflow wf1 is not loaded'}",
        "{'batches': {}, 'next_before': null}",
        "{'batches': []}",
        "{'batches': [], 'next_before': '1'}",
        "{'batches': [], 'next_before': 0}",
        "{'batches': [], 'next_before': 1.5}",
        "{'batches': [1], 'next_before': null}",
        "{'batches': [{'steps': {}}], 'next_before': null}",
        "{'batches': [{'batch_id': '1795413600', 'steps': {}}], 'next_before': null}",
        "{'batches': [{'batch_id': 1795413600, 'steps': []}], 'next_before': null}",
        /* a good batch first, then a bad one: the good one is not taken either */
        "{'batches': [{'batch_id': 1795413600, 'steps': {'a': {'status': 'success', "
        "'batch_end': '2026-11-23T06:10:00'}}}, "
        "{'batch_id': 1795413000, 'steps': {'a': 'success'}}], 'next_before': null}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wz_history h;
        wz_history_start(&h, "2026-11-23", 0);
        wz_page_verdict v = read_page(&h, bad[i]);
        if (v != WZ_PAGE_INVALID)
            fail_msg("%s: verdict %d, expected WZ_PAGE_INVALID", bad[i], v);
        assert_int_equal(h.found, 0);
        assert_null(h.succeeded);
        wz_history_free(&h);
    }
}

static void only_a_success_ended_on_the_day_is_taken(void **state)
{
    (void)state;
    wz_history h;
    wz_history_start(&h, "2026-11-23", 0);
    assert_int_equal(
        read_page(&h, "{'workflow': 'wf1', 'next_before': null, 'batches': [{"
                      "'batch_id': 1795420000, 'batch_start': null, 'batch_end': null, 'steps': {"
                      "'open': {'status': 'open', 'batch_end': '2026-11-23T06:10:00'},"
                      "'failed': {'status': 'failed', 'batch_end': '2026-11-23T06:10:00'},"
                      "'abandoned': {'status': 'abandoned', 'batch_end': '2026-11-23T06:10:00'},"
                      "'yesterday': {'status': 'success', 'batch_end': '2026-11-22T23:59:59.9'},"
                      "'tomorrow': {'status': 'success', 'batch_end': '2026-11-24T00:00:00'},"
                      "'badtime': {'status': 'success', 'batch_end': 'not a time'},"
                      "'noend': {'status': 'success'},"
                      "'nullend': {'status': 'success', 'batch_end': null},"
                      "'nostatus': {'batch_end': '2026-11-23T06:10:00'},"
                      "'first': {'status': 'success', 'batch_end': '2026-11-23T00:00:00'},"
                      "'last': {'status': 'success', 'batch_end': '2026-11-23T23:59:59.999999'},"
                      "'offset': {'status': 'success', 'batch_end': '2026-11-24T01:00:00+02:00'}"
                      "}}]}"),
        WZ_PAGE_DONE);
    assert_int_equal(h.found, 3);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(h.succeeded, "first"));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(h.succeeded, "last"));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(h.succeeded, "offset"));
    /* the same success on another page counts once */
    assert_int_equal(read_page(&h, "{'next_before': null, 'batches': [{'batch_id': 1795410000, "
                                   "'steps': {'first': {'status': 'success', "
                                   "'batch_end': '2026-11-23T00:00:00'}}}]}"),
                     WZ_PAGE_DONE);
    assert_int_equal(h.found, 3);
    wz_history_free(&h);
}

static void local_time_decides_the_day_of_a_success(void **state)
{
    (void)state;
    /* 03:00 UTC on the 23rd is 22:00 on the 22nd in UTC-5 */
    const char *page = "{'next_before': null, 'batches': [{'batch_id': 1795400000, 'steps': "
                       "{'a': {'status': 'success', 'batch_end': '2026-11-23T03:00:00.000000'}}}]}";
    set_tz("EST5");
    wz_history h;
    wz_history_start(&h, "2026-11-22", 1);
    read_page(&h, page);
    assert_int_equal(h.found, 1);
    wz_history_free(&h);
    wz_history_start(&h, "2026-11-23", 1);
    read_page(&h, page);
    assert_int_equal(h.found, 0);
    wz_history_free(&h);
    wz_history_start(&h, "2026-11-23", 0);
    read_page(&h, page);
    assert_int_equal(h.found, 1);
    wz_history_free(&h);
    set_tz(NULL);
}

/* ------------------------------------------------------------ the verdict */

static void success_in_history_counts_when_the_step_was_opened_again(void **state)
{
    (void)state;
    wz_history h;
    wz_history_start(&h, "2026-11-23", 0);
    const char *doc = "{'a': {'status': 'open', 'batch_start': '2026-11-23T07:00:00.000000', "
                      "'batch_end': null}}";
    wz_assessment a = assess(doc, &h, NULL, 0); /* no page read yet: the latest record */
    assert_int_equal(a.verdict, WZ_WAITING);
    assert_string_equal(a.summary,
                        "wf1: 0/1 step done for 2026-11-23; waiting on a (open since 07:00:00)");
    wz_assessment_free(&a);

    read_page(&h, "{'next_before': null, 'batches': ["
                  "{'batch_id': 1795417200, 'steps': {'a': {'status': 'open'}}},"
                  "{'batch_id': 1795413600, 'steps': {'a': {'status': 'success', "
                  "'batch_end': '2026-11-23T06:10:00.000000'}}}]}");
    a = assess(doc, &h, NULL, 0);
    assert_int_equal(a.verdict, WZ_READY);
    assert_int_equal(a.done, 1);
    assert_string_equal(a.summary, "wf1: 1/1 step done for 2026-11-23");
    assert_null(a.failure);
    wz_assessment_free(&a);
    wz_history_free(&h);
}

static void an_earlier_date_is_ready_from_history(void **state)
{
    (void)state;
    wz_history h;
    wz_history_start(&h, "2026-11-20", 0);
    /* today's batch succeeded too, but on another day */
    const char *doc = "{'a': {'status': 'success', 'batch_end': '2026-11-23T06:10:00'},"
                      " 'b': {'status': 'success', 'batch_end': '2026-11-23T06:10:00'}}";
    wz_assessment a = assess(doc, &h, NULL, 0);
    assert_int_equal(a.verdict, WZ_WAITING);
    wz_assessment_free(&a);

    read_page(&h, "{'next_before': null, 'batches': [{'batch_id': 1795392000, 'steps': {"
                  "'a': {'status': 'success', 'batch_end': '2026-11-20T05:00:00'},"
                  "'b': {'status': 'failed', 'batch_end': '2026-11-20T05:00:00'}}}]}");
    a = assess(doc, &h, NULL, 0);
    assert_int_equal(a.verdict, WZ_WAITING);
    assert_string_equal(a.summary, "wf1: 1/2 steps done for 2026-11-20; waiting on b "
                                   "(last success 2026-11-23 06:10:00)");
    wz_assessment_free(&a);
    char *only_a[] = {"a"};
    a = assess(doc, &h, only_a, 1);
    assert_int_equal(a.verdict, WZ_READY);
    wz_assessment_free(&a);
    wz_history_free(&h);
}

static void a_failure_on_the_day_without_a_success_that_day_stays_failed(void **state)
{
    (void)state;
    wz_history h;
    wz_history_start(&h, "2026-11-23", 0);
    const char *doc = "{'a': {'status': 'failed', 'batch_end': '2026-11-23T07:10:00.000000', "
                      "'error_message': 'disk full'}}";
    /* the failed batch itself, and a success of the day before */
    read_page(&h, "{'next_before': null, 'batches': ["
                  "{'batch_id': 1795417200, 'steps': {'a': {'status': 'failed', "
                  "'batch_end': '2026-11-23T07:10:00'}}},"
                  "{'batch_id': 1795327200, 'steps': {'a': {'status': 'success', "
                  "'batch_end': '2026-11-22T07:10:00'}}}]}");
    assert_int_equal(h.found, 0);
    wz_assessment a = assess(doc, &h, NULL, 0);
    assert_int_equal(a.verdict, WZ_FAILED);
    assert_string_equal(a.failure, "wf1: step a failed at 07:10:00: disk full");
    wz_assessment_free(&a);

    /* a success earlier that day: done, the later failure stops nothing */
    read_page(&h, "{'next_before': null, 'batches': [{'batch_id': 1795413600, 'steps': "
                  "{'a': {'status': 'success', 'batch_end': '2026-11-23T06:10:00'}}}]}");
    a = assess(doc, &h, NULL, 0);
    assert_int_equal(a.verdict, WZ_READY);
    assert_null(a.failure);
    wz_assessment_free(&a);
    wz_history_free(&h);
}

static void history_of_steps_not_awaited_changes_nothing(void **state)
{
    (void)state;
    wz_history h;
    wz_history_start(&h, "2026-11-23", 0);
    read_page(&h, "{'next_before': null, 'batches': [{'batch_id': 1795413600, 'steps': {"
                  "'b': {'status': 'success', 'batch_end': '2026-11-23T06:10:00'},"
                  "'gone': {'status': 'success', 'batch_end': '2026-11-23T06:10:00'}}}]}");
    assert_int_equal(h.found, 2);
    const char *doc = "{'a': {'status': 'open', 'batch_start': '2026-11-23T07:00:00'},"
                      " 'b': {'status': 'open'}}";
    char *only_a[] = {"a"};
    wz_assessment a = assess(doc, &h, only_a, 1);
    assert_int_equal(a.verdict, WZ_WAITING);
    assert_int_equal(a.awaited, 1);
    wz_assessment_free(&a);
    a = assess(doc, &h, NULL, 0);
    assert_string_equal(a.summary,
                        "wf1: 1/2 steps done for 2026-11-23; waiting on a (open since 07:00:00)");
    wz_assessment_free(&a);
    /* an unknown --step is still unknown, whatever history holds */
    char *gone[] = {"gone"};
    a = assess(doc, &h, gone, 1);
    assert_int_equal(a.verdict, WZ_UNKNOWN);
    wz_assessment_free(&a);
    wz_history_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_page_covers_the_day_with_a_day_either_side),
        cmocka_unit_test(local_day_window_starts_at_local_midnight),
        cmocka_unit_test(no_page_for_a_day_no_batch_id_can_reach),
        cmocka_unit_test(a_page_reaching_the_day_before_is_the_last),
        cmocka_unit_test(older_pages_are_read_while_they_can_concern_the_day),
        cmocka_unit_test(the_page_size_stays_within_batchys_limits),
        cmocka_unit_test(the_last_page_an_empty_page_or_no_progress_ends_it),
        cmocka_unit_test(at_most_so_many_pages),
        cmocka_unit_test(answers_that_are_not_history_are_invalid_and_nothing_is_taken),
        cmocka_unit_test(only_a_success_ended_on_the_day_is_taken),
        cmocka_unit_test(local_time_decides_the_day_of_a_success),
        cmocka_unit_test(success_in_history_counts_when_the_step_was_opened_again),
        cmocka_unit_test(an_earlier_date_is_ready_from_history),
        cmocka_unit_test(a_failure_on_the_day_without_a_success_that_day_stays_failed),
        cmocka_unit_test(history_of_steps_not_awaited_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
