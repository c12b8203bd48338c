/*
 * test_track.c - unit tests of track.c: when what a tracked read made may
 * be trusted, fed every order in which a read's stamp, its reply, an
 * invalidation, a FLUSH and a change of connection can come. (Real
 * processes cannot be made to cross on cue; this is where the race of
 * Redis' client-side caching guide is proved.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "batchy.h"

static track_state *fresh(void)
{
    track_state *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    return s;
}

#define KEY(k) k, strlen(k)

/* The events of one read of key "wf1" and what may happen around it;
 * each order is run, and the verdict at the end compared. */
enum { STAMP, INVALIDATE, FLUSH, RECONNECT, OTHER_KEY };

static int run(const int *events, size_t n)
{
    track_state *s = fresh();
    uint64_t tracking = 7;
    track_stamp st = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        switch (events[i]) {
        case STAMP: /* the read is sent; its reply may come at any point after */
            st = track_stamp_of(s, KEY("wf1"), tracking);
            break;
        case INVALIDATE:
            track_invalidate(s, KEY("wf1"));
            break;
        case FLUSH:
            track_flush(s);
            break;
        case RECONNECT:
            tracking++;
            break;
        case OTHER_KEY: /* almost surely another slot */
            track_invalidate(s, KEY("another-workflow"));
            break;
        }
    }
    int trusted = track_trusted(s, KEY("wf1"), st, tracking);
    free(s);
    return trusted;
}

static void an_invalidation_after_the_stamp_untrusts_whatever_the_reply_order(void **state)
{
    (void)state;
    /* Whether the reply comes before or after the invalidation makes no
     * difference to the bookkeeping: both come after the stamp. */
    int after[] = {STAMP, INVALIDATE};
    assert_false(run(after, 2));
    int before[] = {INVALIDATE, STAMP};
    assert_true(run(before, 2));
    int both[] = {INVALIDATE, STAMP, INVALIDATE};
    assert_false(run(both, 3));
}

static void a_flush_or_a_new_connection_untrusts_everything(void **state)
{
    (void)state;
    int flush[] = {STAMP, FLUSH};
    assert_false(run(flush, 2));
    int reconnect[] = {STAMP, RECONNECT};
    assert_false(run(reconnect, 2));
    int before[] = {FLUSH, RECONNECT, STAMP};
    assert_true(run(before, 3));
}

static void another_keys_invalidation_does_not_untrust(void **state)
{
    (void)state;
    int other[] = {STAMP, OTHER_KEY, OTHER_KEY};
    assert_true(run(other, 3));
}

static void every_order_of_every_event_around_a_read(void **state)
{
    (void)state;
    /* Every sequence of up to 3 events from the four around one STAMP:
     * trusted exactly when nothing but other keys' invalidations follows
     * the stamp. */
    const int around[] = {INVALIDATE, FLUSH, RECONNECT, OTHER_KEY};
    for (int len = 0; len <= 3; len++) {
        int combos = 1;
        for (int i = 0; i < len; i++)
            combos *= 4;
        for (int c = 0; c < combos; c++) {
            for (int at = 0; at <= len; at++) { /* where the stamp goes */
                int events[4], n = 0, spoiled = 0, code = c;
                for (int i = 0; i < len; i++) {
                    if (i == at)
                        events[n++] = STAMP;
                    int e = around[code % 4];
                    code /= 4;
                    events[n++] = e;
                    spoiled = spoiled || (i >= at && e != OTHER_KEY);
                }
                if (at == len)
                    events[n++] = STAMP;
                if (run(events, (size_t)n) != !spoiled)
                    fail_msg("len %d combo %d stamp at %d: expected %s", len, c, at,
                             spoiled ? "untrusted" : "trusted");
            }
        }
    }
}

static void untracked_reads_are_never_trusted(void **state)
{
    (void)state;
    track_state *s = fresh();
    track_stamp st = track_stamp_of(s, KEY("wf1"), 0);
    assert_int_equal(st.epoch, 0);
    assert_false(track_trusted(s, KEY("wf1"), st, 0));
    assert_false(track_trusted(s, KEY("wf1"), st, 5)); /* tracking came later */
    track_stamp zero = {0, 0, 0};
    assert_false(track_trusted(s, KEY("wf1"), zero, 5));
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_invalidation_after_the_stamp_untrusts_whatever_the_reply_order),
        cmocka_unit_test(a_flush_or_a_new_connection_untrusts_everything),
        cmocka_unit_test(another_keys_invalidation_does_not_untrust),
        cmocka_unit_test(every_order_of_every_event_around_a_read),
        cmocka_unit_test(untracked_reads_are_never_trusted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
