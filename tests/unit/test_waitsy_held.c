/*
 * test_waitsy_held.c - unit tests of Waitsy's wake-up between polls
 * (ready.c, SPEC section 10): which ETags it sends back, which workflow a
 * held get_status waits on, its wait=, and what each answer means for the
 * next poll.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "waitsy.h"

/* ------------------------------------------------------------ ETags */

static void quoted_etags_strong_or_weak_are_usable(void **state)
{
    (void)state;
    assert_true(wz_etag_usable("\"0123456789abcdef\""));
    assert_true(wz_etag_usable("W/\"0123456789abcdef\""));
    assert_true(wz_etag_usable("\"\"")); /* empty, but an entity tag */
    assert_true(wz_etag_usable("\"a!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\""));
}

static void missing_unquoted_or_unsafe_etags_are_not(void **state)
{
    (void)state;
    assert_false(wz_etag_usable(NULL));
    assert_false(wz_etag_usable(""));
    assert_false(wz_etag_usable("0123456789abcdef"));   /* no quotes */
    assert_false(wz_etag_usable("\"abc"));              /* unterminated */
    assert_false(wz_etag_usable("\""));                 /* one quote */
    assert_false(wz_etag_usable("W/"));                 /* weak, no tag */
    assert_false(wz_etag_usable("w/\"abc\""));          /* W/ is upper case */
    assert_false(wz_etag_usable("\"a b\""));            /* space */
    assert_false(wz_etag_usable("\"a\"b\""));           /* quote inside */
    assert_false(wz_etag_usable("\"a\r\nX-Evil: 1\"")); /* a header smuggled in */
    assert_false(wz_etag_usable("\"caf\xc3\xa9\""));    /* not ASCII */
    assert_false(wz_etag_usable("\"a\x7f\""));
}

static void etags_longer_than_the_bound_are_not_usable(void **state)
{
    (void)state;
    char tag[WZ_MAX_ETAG + 2];
    memset(tag, 'a', sizeof(tag));
    tag[0] = '"';
    tag[WZ_MAX_ETAG - 1] = '"';
    tag[WZ_MAX_ETAG] = '\0';
    assert_true(wz_etag_usable(tag)); /* exactly the bound */
    tag[WZ_MAX_ETAG - 1] = 'a';
    tag[WZ_MAX_ETAG] = '"';
    tag[WZ_MAX_ETAG + 1] = '\0';
    assert_false(wz_etag_usable(tag));
}

static void only_a_new_usable_etag_means_changed(void **state)
{
    (void)state;
    assert_true(wz_etag_changed("\"1\"", "\"2\""));
    assert_false(wz_etag_changed("\"1\"", "\"1\"")); /* If-None-Match ignored */
    assert_false(wz_etag_changed("\"1\"", ""));      /* no ETag on the 200 */
    assert_false(wz_etag_changed("\"1\"", NULL));
    assert_false(wz_etag_changed("\"1\"", "2")); /* not an entity tag */
}

/* ------------------------------------------------------------ which workflow */

static void holds_on_the_first_workflow_not_ready(void **state)
{
    (void)state;
    const wz_verdict v[] = {WZ_READY, WZ_WAITING, WZ_WAITING};
    const char *const etags[] = {"\"a\"", "\"b\"", "\"c\""};
    assert_int_equal(wz_hold_target(v, etags, 3), 1);
    const wz_verdict first[] = {WZ_WAITING, WZ_READY, WZ_WAITING};
    assert_int_equal(wz_hold_target(first, etags, 3), 0);
}

static void a_failed_workflow_is_held_on_like_a_waiting_one(void **state)
{
    (void)state;
    /* without --fail-fast a failed step may be re-run: wait for that */
    const wz_verdict v[] = {WZ_READY, WZ_FAILED, WZ_WAITING};
    const char *const etags[] = {"\"a\"", "\"b\"", "\"c\""};
    assert_int_equal(wz_hold_target(v, etags, 3), 1);
}

static void no_hold_when_all_are_ready_or_the_first_not_ready_has_no_etag(void **state)
{
    (void)state;
    const wz_verdict ready[] = {WZ_READY, WZ_READY};
    const char *const etags[] = {"\"a\"", "\"b\""};
    assert_int_equal(wz_hold_target(ready, etags, 2), 2);
    assert_int_equal(wz_hold_target(ready, etags, 0), 0);

    /* a server without ETags: sleep, as before */
    const wz_verdict waiting[] = {WZ_WAITING, WZ_WAITING};
    const char *const none[] = {NULL, NULL};
    assert_int_equal(wz_hold_target(waiting, none, 2), 2);
    /* never another workflow in its place */
    const char *const second_only[] = {NULL, "\"b\""};
    assert_int_equal(wz_hold_target(waiting, second_only, 2), 2);
    const char *const unusable[] = {"no quotes", "\"b\""};
    assert_int_equal(wz_hold_target(waiting, unusable, 2), 2);
}

/* ------------------------------------------------------------ wait= */

static void wait_is_the_time_to_the_next_poll_rounded_up(void **state)
{
    (void)state;
    assert_int_equal(wz_hold_seconds(10.0, INFINITY), 10);
    assert_int_equal(wz_hold_seconds(9.9995, INFINITY), 10);
    assert_int_equal(wz_hold_seconds(59.2, INFINITY), 60);
    assert_int_equal(wz_hold_seconds(1.0, INFINITY), 1);
    /* a fractional interval: wait= has whole seconds only */
    assert_int_equal(wz_hold_seconds(0.2, INFINITY), 1);
    assert_int_equal(wz_hold_seconds(1.5, INFINITY), 2);
}

static void wait_is_at_most_600(void **state)
{
    (void)state;
    assert_int_equal(wz_hold_seconds(600.0, INFINITY), 600);
    assert_int_equal(wz_hold_seconds(600.5, INFINITY), 600);
    assert_int_equal(wz_hold_seconds(86400.0, INFINITY), WZ_HOLD_MAX);
}

static void no_wait_when_the_poll_is_due(void **state)
{
    (void)state;
    assert_int_equal(wz_hold_seconds(0.0, INFINITY), 0);
    assert_int_equal(wz_hold_seconds(-3.0, INFINITY), 0);
    assert_int_equal(wz_hold_seconds(NAN, INFINITY), 0);
}

static void wait_never_goes_past_the_deadline(void **state)
{
    (void)state;
    assert_int_equal(wz_hold_seconds(10.0, 30.0), 10);
    assert_int_equal(wz_hold_seconds(10.0, 10.0), 10);
    assert_int_equal(wz_hold_seconds(10.0, 9.7), 9); /* rounded down there */
    assert_int_equal(wz_hold_seconds(10.0, 2.3), 2);
    assert_int_equal(wz_hold_seconds(0.2, 1.5), 1);
    assert_int_equal(wz_hold_seconds(600.0, 1e7), 600);
    /* less than a second left: sleep, as before */
    assert_int_equal(wz_hold_seconds(10.0, 0.99), 0);
    assert_int_equal(wz_hold_seconds(10.0, 0.0), 0);
    assert_int_equal(wz_hold_seconds(10.0, -1.0), 0);
}

/* ------------------------------------------------------------ after the answer */

static void a_change_polls_at_once(void **state)
{
    (void)state;
    assert_true(wz_after_hold(WZ_HELD_CHANGED, 10, 3.2, 3.3, 6.7) == 0);
    assert_true(wz_after_hold(WZ_HELD_CHANGED, 600, 0.5, 12.0, 3588.0) == 0);
}

static void a_change_right_after_a_poll_waits_for_the_shortest_interval(void **state)
{
    (void)state;
    /* a workflow changing all the time, or a server that answers every
     * held request 200 at once: no faster than --interval 0.1 */
    double pause = wz_after_hold(WZ_HELD_CHANGED, 10, 0.001, 0.03, 9.97);
    assert_true(fabs(pause - (WZ_MIN_INTERVAL - 0.03)) < 1e-9);
    /* but never past the poll that is due anyway */
    assert_true(wz_after_hold(WZ_HELD_CHANGED, 1, 0.001, 0.05, 0.01) == 0.01);
}

static void a_304_at_the_end_of_wait_polls_when_due(void **state)
{
    (void)state;
    assert_true(wz_after_hold(WZ_HELD_UNCHANGED, 10, 10.0, 10.01, -0.01) == 0);
    assert_true(wz_after_hold(WZ_HELD_UNCHANGED, 10, 9.6, 9.61, 0.38) == 0.38);
    /* wait= rounded up past a fractional interval: due already */
    assert_true(wz_after_hold(WZ_HELD_UNCHANGED, 1, 1.0, 1.0, -0.8) == 0);
}

static void a_304_that_came_early_sleeps_until_the_poll_is_due(void **state)
{
    (void)state;
    /* a server that ignores wait= (answers at once), or one stopping */
    assert_true(wz_after_hold(WZ_HELD_UNCHANGED, 10, 0.002, 0.01, 9.99) == 9.99);
    assert_true(wz_after_hold(WZ_HELD_UNCHANGED, 1, 0.002, 0.01, 0.99) == 0.99);
    assert_true(wz_after_hold(WZ_HELD_UNCHANGED, 60, 20.0, 20.0, 40.0) == 40.0);
}

static void a_304_at_the_end_of_a_capped_wait_holds_again(void **state)
{
    (void)state;
    /* --interval 3600: wait=600, then the next poll is still far */
    assert_true(wz_after_hold(WZ_HELD_UNCHANGED, 600, 600.0, 600.0, 3000.0) == WZ_HOLD_AGAIN);
    /* less than a second left: no wait= fits; sleep it */
    assert_true(wz_after_hold(WZ_HELD_UNCHANGED, 600, 600.0, 600.0, 0.7) == 0.7);
}

static void anything_else_sleeps_until_the_poll_is_due(void **state)
{
    (void)state;
    /* 503, 400, 404, unreachable: never a tight loop */
    assert_true(wz_after_hold(WZ_HELD_FAILED, 10, 0.001, 0.01, 9.99) == 9.99);
    assert_true(wz_after_hold(WZ_HELD_FAILED, 10, 2.0, 2.0, 8.0) == 8.0);
    /* a timeout at wait + margin: the poll is overdue */
    assert_true(wz_after_hold(WZ_HELD_FAILED, 10, 15.0, 15.0, -5.0) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quoted_etags_strong_or_weak_are_usable),
        cmocka_unit_test(missing_unquoted_or_unsafe_etags_are_not),
        cmocka_unit_test(etags_longer_than_the_bound_are_not_usable),
        cmocka_unit_test(only_a_new_usable_etag_means_changed),
        cmocka_unit_test(holds_on_the_first_workflow_not_ready),
        cmocka_unit_test(a_failed_workflow_is_held_on_like_a_waiting_one),
        cmocka_unit_test(no_hold_when_all_are_ready_or_the_first_not_ready_has_no_etag),
        cmocka_unit_test(wait_is_the_time_to_the_next_poll_rounded_up),
        cmocka_unit_test(wait_is_at_most_600),
        cmocka_unit_test(no_wait_when_the_poll_is_due),
        cmocka_unit_test(wait_never_goes_past_the_deadline),
        cmocka_unit_test(a_change_polls_at_once),
        cmocka_unit_test(a_change_right_after_a_poll_waits_for_the_shortest_interval),
        cmocka_unit_test(a_304_at_the_end_of_wait_polls_when_due),
        cmocka_unit_test(a_304_that_came_early_sleeps_until_the_poll_is_due),
        cmocka_unit_test(a_304_at_the_end_of_a_capped_wait_holds_again),
        cmocka_unit_test(anything_else_sleeps_until_the_poll_is_due),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
