/*
 * test_times.c - unit tests of times.c: which texts parse to which UTC
 * instant (every accepted form, offsets, calendar edges, junk), the
 * canonical 26-character form before and after 1970, truncation to the
 * day and microsecond arithmetic.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "batchy.h"

static const char *fmt(bty_time t, char buf[BTY_TIME_LEN + 1])
{
    time_format(t, buf);
    return buf;
}

static bty_time parsed(const char *text)
{
    bty_time t = {0, 0};
    if (time_parse(text, &t) != 0)
        fail_msg("\"%s\" should parse", text);
    return t;
}

struct parse_case {
    const char *in;
    const char *want; /* canonical UTC form, or NULL when invalid */
};

static void check_table(const struct parse_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char buf[BTY_TIME_LEN + 1];
        bty_time t = {12345, 678};
        int rc = time_parse(cases[i].in, &t);
        if (!cases[i].want) {
            if (rc != -1)
                fail_msg("\"%s\" should be invalid, parsed as %s", cases[i].in, fmt(t, buf));
            if (t.sec != 12345 || t.usec != 678)
                fail_msg("\"%s\" is invalid but *out was written", cases[i].in);
            continue;
        }
        if (rc != 0)
            fail_msg("\"%s\" should parse as %s", cases[i].in, cases[i].want);
        time_format(t, buf);
        if (strcmp(buf, cases[i].want) != 0)
            fail_msg("\"%s\": got %s, want %s", cases[i].in, buf, cases[i].want);
    }
}

static void parse_accepts_every_documented_form(void **state)
{
    (void)state;
    static const struct parse_case cases[] = {
        {"2026-11-23", "2026-11-23T00:00:00.000000"},
        {"2026-11-23T06:05", "2026-11-23T06:05:00.000000"},
        {"2026-11-23 06:05", "2026-11-23T06:05:00.000000"},
        {"2026-11-23T06:05:07", "2026-11-23T06:05:07.000000"},
        {"2026-11-23 06:05:07", "2026-11-23T06:05:07.000000"},
        {"2026-11-23T06:05:07.5", "2026-11-23T06:05:07.500000"},
        {"2026-11-23T06:05:07.05", "2026-11-23T06:05:07.050000"},
        {"2026-11-23T06:05:07.123", "2026-11-23T06:05:07.123000"},
        {"2026-11-23T06:05:07.123456", "2026-11-23T06:05:07.123456"},
        {"2026-11-23T06:05:07.1234567", "2026-11-23T06:05:07.123456"},
        {"2026-11-23T06:05:07.000001", "2026-11-23T06:05:07.000001"},
        {"2026-11-23T06:05Z", "2026-11-23T06:05:00.000000"},
        {"2026-11-23T06:05:07Z", "2026-11-23T06:05:07.000000"},
        {"2026-11-23T06:05:07.25Z", "2026-11-23T06:05:07.250000"},
        {"2026-11-23T06:05+02:00", "2026-11-23T04:05:00.000000"},
        {"2026-11-23T06:05+0200", "2026-11-23T04:05:00.000000"},
        {"2026-11-23T06:05-05:30", "2026-11-23T11:35:00.000000"},
        {"2026-11-23T06:05-0530", "2026-11-23T11:35:00.000000"},
        {"2026-11-23T06:05:07.5+01:00", "2026-11-23T05:05:07.500000"},
        {"2026-11-23 06:05:07-00:00", "2026-11-23T06:05:07.000000"},
        {"2026-11-23T06:05+00:00", "2026-11-23T06:05:00.000000"},
        {"2026-11-23T06:05+23:59", "2026-11-22T06:06:00.000000"},
        {"2026-11-23T06:05-23:59", "2026-11-24T06:04:00.000000"},
    };
    check_table(cases, sizeof(cases) / sizeof(cases[0]));
}

static void parse_truncates_nine_digit_fraction_to_microseconds(void **state)
{
    (void)state;
    static const struct parse_case cases[] = {
        {"2026-11-23T06:05:07.123456789", "2026-11-23T06:05:07.123456"},
        {"2026-11-23T06:05:07.999999999", "2026-11-23T06:05:07.999999"},
        {"2026-11-23T06:05:07.000000999", "2026-11-23T06:05:07.000000"},
        {"2026-11-23T06:05:07.12345678Z", "2026-11-23T06:05:07.123456"},
        {"2026-11-23T06:05:07.1234567890", NULL},
        {"2026-11-23T06:05:07.", NULL},
        {"2026-11-23T06:05:07.Z", NULL},
    };
    check_table(cases, sizeof(cases) / sizeof(cases[0]));
}

static void parse_offsets_cross_midnight_month_and_year(void **state)
{
    (void)state;
    static const struct parse_case cases[] = {
        {"2026-11-23T01:00+02:00", "2026-11-22T23:00:00.000000"},
        {"2026-11-23T22:30-03:00", "2026-11-24T01:30:00.000000"},
        {"2026-12-31T23:30-01:00", "2027-01-01T00:30:00.000000"},
        {"2027-01-01T00:30+01:00", "2026-12-31T23:30:00.000000"},
        {"2026-03-01T00:00+00:01", "2026-02-28T23:59:00.000000"},
        {"2024-03-01T00:30+01:00", "2024-02-29T23:30:00.000000"},
        {"2024-02-29T23:30-01:00", "2024-03-01T00:30:00.000000"},
        {"1970-01-01T00:00:00+00:01", "1969-12-31T23:59:00.000000"},
        {"1776-07-05T01:59+02:00", "1776-07-04T23:59:00.000000"},
    };
    check_table(cases, sizeof(cases) / sizeof(cases[0]));
}

static void parse_checks_calendar_and_clock_ranges(void **state)
{
    (void)state;
    static const struct parse_case cases[] = {
        {"2024-02-29", "2024-02-29T00:00:00.000000"},
        {"2000-02-29", "2000-02-29T00:00:00.000000"},
        {"1600-02-29", "1600-02-29T00:00:00.000000"},
        {"2023-02-29", NULL},
        {"1900-02-29", NULL},
        {"2100-02-29", NULL},
        {"2026-02-30", NULL},
        {"2026-04-31", NULL},
        {"2026-06-31", NULL},
        {"2026-09-31", NULL},
        {"2026-11-31", NULL},
        {"2026-12-31", "2026-12-31T00:00:00.000000"},
        {"2026-01-32", NULL},
        {"2026-01-00", NULL},
        {"2026-00-10", NULL},
        {"2026-13-01", NULL},
        {"0001-01-01", "0001-01-01T00:00:00.000000"},
        {"0000-12-31", NULL},
        {"9999-12-31T23:59:59.999999", "9999-12-31T23:59:59.999999"},
        {"2026-11-23T23:59:59", "2026-11-23T23:59:59.000000"},
        {"2026-11-23T24:00", NULL},
        {"2026-11-23T23:60", NULL},
        {"2026-11-23T23:59:60", NULL},
        {"2026-11-23T99:00", NULL},
        {"2026-11-23T06:05+24:00", NULL},
        {"2026-11-23T06:05+12:60", NULL},
        {"2026-11-23T06:05-9999", NULL},
    };
    check_table(cases, sizeof(cases) / sizeof(cases[0]));
}

static void parse_rejects_results_outside_years_1_to_9999(void **state)
{
    (void)state;
    static const struct parse_case cases[] = {
        {"0001-01-01T00:00+01:00", NULL},
        {"0001-01-01T01:00+01:00", "0001-01-01T00:00:00.000000"},
        {"9999-12-31T23:59-01:00", NULL},
        {"9999-12-31T22:59:59.999999-01:00", "9999-12-31T23:59:59.999999"},
    };
    check_table(cases, sizeof(cases) / sizeof(cases[0]));
}

static void parse_rejects_junk_and_missing_digits(void **state)
{
    (void)state;
    static const struct parse_case cases[] = {
        {"", NULL},
        {" ", NULL},
        {"2026", NULL},
        {"2026-11", NULL},
        {"2026-11-2", NULL},
        {"2026-1-23", NULL},
        {"26-11-23", NULL},
        {"20261123", NULL},
        {"2026/11/23", NULL},
        {"2026-11-23x", NULL},
        {"2026-11-23 ", NULL},
        {" 2026-11-23", NULL},
        {"+2026-11-23", NULL},
        {"-2026-11-23", NULL},
        {"12026-11-23", NULL},
        {"2026-11-230", NULL},
        {"2026-11-23T", NULL},
        {"2026-11-23T06", NULL},
        {"2026-11-23T06:", NULL},
        {"2026-11-23T6:05", NULL},
        {"2026-11-23T06:5", NULL},
        {"2026-11-23T06:05:", NULL},
        {"2026-11-23T06:05:7", NULL},
        {"2026-11-23T06:05.5", NULL},
        {"2026-11-23T06:05:07.5 ", NULL},
        {"2026-11-23T06:05:07Zjunk", NULL},
        {"2026-11-23T06:05:07ZZ", NULL},
        {"2026-11-23T06:05 +02:00", NULL},
        {"2026-11-23T06:05+02", NULL},
        {"2026-11-23T06:05+2:00", NULL},
        {"2026-11-23T06:05+02:0", NULL},
        {"2026-11-23T06:05+020", NULL},
        {"2026-11-23T06:05+02:000", NULL},
        {"2026-11-23T06:05+02::00", NULL},
        {"2026-11-23T06:05+", NULL},
        {"2026-11-23T06:05Z+02:00", NULL},
        {"2026-11-23Z", NULL},
        {"2026-11-23+02:00", NULL},
        {"2026-11-23t06:05", NULL},
        {"2026-11-23T06:05z", NULL},
        {"2026-11-23_06:05", NULL},
        {"2026-11-23T06:05:07,5", NULL},
        {"2026-11-23\n", NULL},
        {"yesterday", NULL},
        {"1467149783", NULL},
    };
    check_table(cases, sizeof(cases) / sizeof(cases[0]));
}

static void parse_rejects_null_arguments(void **state)
{
    (void)state;
    bty_time t;
    assert_int_equal(time_parse(NULL, &t), -1);
    assert_int_equal(time_parse("2026-11-23", NULL), -1);
}

static void origin_round_trips_before_1970(void **state)
{
    (void)state;
    char buf[BTY_TIME_LEN + 1];
    bty_time t = parsed(BTY_ORIGIN);
    assert_int_equal(t.sec, -6105974460LL);
    assert_int_equal(t.usec, 0);
    assert_string_equal(fmt(t, buf), BTY_ORIGIN);
}

static void format_writes_26_characters_around_the_epoch(void **state)
{
    (void)state;
    char buf[BTY_TIME_LEN + 1];
    memset(buf, 'x', sizeof(buf));
    time_format((bty_time){0, 0}, buf);
    assert_int_equal(strlen(buf), BTY_TIME_LEN);
    assert_string_equal(buf, "1970-01-01T00:00:00.000000");
    assert_string_equal(fmt((bty_time){-1, 0}, buf), "1969-12-31T23:59:59.000000");
    assert_string_equal(fmt((bty_time){-1, 999999}, buf), "1969-12-31T23:59:59.999999");
    assert_string_equal(fmt((bty_time){-86400, 0}, buf), "1969-12-31T00:00:00.000000");
    assert_string_equal(fmt((bty_time){-86401, 5}, buf), "1969-12-30T23:59:59.000005");
    assert_string_equal(fmt((bty_time){1467149783, 123}, buf), "2016-06-28T21:36:23.000123");
    assert_string_equal(fmt((bty_time){1795413607, 0}, buf), "2026-11-23T06:00:07.000000");
    assert_string_equal(fmt((bty_time){-62135596800LL, 0}, buf), "0001-01-01T00:00:00.000000");
    assert_string_equal(fmt((bty_time){253402300799LL, 999999}, buf), "9999-12-31T23:59:59.999999");
}

static void format_normalises_out_of_range_usec(void **state)
{
    (void)state;
    char buf[BTY_TIME_LEN + 1];
    assert_string_equal(fmt((bty_time){0, -1}, buf), "1969-12-31T23:59:59.999999");
    assert_string_equal(fmt((bty_time){0, 1500000}, buf), "1970-01-01T00:00:01.500000");
    assert_string_equal(fmt((bty_time){0, INT32_MIN}, buf), "1969-12-31T23:24:12.516352");
}

static void format_clamps_times_outside_years_1_to_9999(void **state)
{
    (void)state;
    char buf[BTY_TIME_LEN + 1];
    assert_string_equal(fmt((bty_time){INT64_MIN, 0}, buf), "0001-01-01T00:00:00.000000");
    assert_string_equal(fmt((bty_time){INT64_MIN, INT32_MIN}, buf), "0001-01-01T00:00:00.000000");
    assert_string_equal(fmt((bty_time){-62135596801LL, 0}, buf), "0001-01-01T00:00:00.000000");
    assert_string_equal(fmt((bty_time){INT64_MAX, INT32_MAX}, buf), "9999-12-31T23:59:59.999999");
    assert_string_equal(fmt((bty_time){253402300800LL, 0}, buf), "9999-12-31T23:59:59.999999");
}

/* Every day of a window around several leap-year rules, and a stride over
 * the whole range, formats and parses back to the same instant, and
 * consecutive days format in increasing order. */
static void every_day_round_trips_through_format_and_parse(void **state)
{
    (void)state;
    const int64_t first = -62135596800LL / 86400, last = 253402300799LL / 86400;
    const int64_t window_lo = -27000, window_hi = 50000; /* ~1896 .. ~2106 */
    char prev[BTY_TIME_LEN + 1] = "";
    for (int64_t d = first; d <= last; d += (d >= window_lo && d <= window_hi) ? 1 : 97) {
        char buf[BTY_TIME_LEN + 1];
        bty_time t = {d * 86400 + 3723, 456789}, back;
        time_format(t, buf);
        if (time_parse(buf, &back) != 0 || back.sec != t.sec || back.usec != t.usec)
            fail_msg("day %lld (%s) does not round-trip", (long long)d, buf);
        if (strcmp(prev, buf) >= 0)
            fail_msg("%s does not sort after %s", buf, prev);
        memcpy(prev, buf, sizeof(buf));
    }
}

static void trunc_day_gives_midnight_utc(void **state)
{
    (void)state;
    char buf[BTY_TIME_LEN + 1];
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"2026-11-23T06:05:07.5", "2026-11-23T00:00:00.000000"},
        {"2026-11-23T00:00", "2026-11-23T00:00:00.000000"},
        {"2026-11-23T23:59:59.999999", "2026-11-23T00:00:00.000000"},
        {"2026-11-23T01:00+02:00", "2026-11-22T00:00:00.000000"},
        {"1969-12-31T23:59:59.999999", "1969-12-31T00:00:00.000000"},
        {"1970-01-01T00:00:00.000001", "1970-01-01T00:00:00.000000"},
        {BTY_ORIGIN, "1776-07-04T00:00:00.000000"},
        {"0001-01-01T12:00", "0001-01-01T00:00:00.000000"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bty_time t = time_trunc_day(parsed(cases[i].in));
        assert_int_equal(t.usec, 0);
        assert_string_equal(fmt(t, buf), cases[i].want);
    }
}

static void trunc_day_does_not_overflow_at_int64_limits(void **state)
{
    (void)state;
    bty_time t = time_trunc_day((bty_time){INT64_MIN, 0});
    assert_int_equal(t.usec, 0);
    t = time_trunc_day((bty_time){INT64_MAX, 999999});
    assert_int_equal(t.usec, 0);
    assert_true(t.sec <= INT64_MAX && t.sec % 86400 == 0);
}

static void add_usec_carries_both_ways_and_keeps_usec_in_range(void **state)
{
    (void)state;
    char buf[BTY_TIME_LEN + 1];
    static const struct {
        const char *in;
        int64_t add;
        const char *want;
    } cases[] = {
        {"2026-11-23T06:00:00", 1, "2026-11-23T06:00:00.000001"},
        {"2026-11-23T06:00:00", -1, "2026-11-23T05:59:59.999999"},
        {"2026-11-23T06:00:00.5", 500000, "2026-11-23T06:00:01.000000"},
        {"2026-11-23T06:00:00.5", -500001, "2026-11-23T05:59:59.999999"},
        {"2026-11-23T00:00:01", -1500000, "2026-11-22T23:59:59.500000"},
        {"2026-11-23T06:00:00", 0, "2026-11-23T06:00:00.000000"},
        {"2026-11-23T06:00:00", -2LL * 3600 * 1000000, "2026-11-23T04:00:00.000000"},
        {"2026-11-23T01:00:00", -2LL * 3600 * 1000000, "2026-11-22T23:00:00.000000"},
        {"2026-12-31T23:59:59.999999", 1, "2027-01-01T00:00:00.000000"},
        {"1970-01-01T00:00", -1, "1969-12-31T23:59:59.999999"},
        {BTY_ORIGIN, -86400LL * 1000000, "1776-07-03T23:59:00.000000"},
        {"2024-02-28T12:00", 86400LL * 1000000, "2024-02-29T12:00:00.000000"},
        {"2026-11-23T06:00:00", 1999999, "2026-11-23T06:00:01.999999"},
        {"2026-11-23T06:00:00", -1999999, "2026-11-23T05:59:58.000001"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bty_time t = time_add_usec(parsed(cases[i].in), cases[i].add);
        assert_true(t.usec >= 0 && t.usec <= 999999);
        if (strcmp(fmt(t, buf), cases[i].want) != 0)
            fail_msg("%s %+lld us: got %s, want %s", cases[i].in, (long long)cases[i].add, buf,
                     cases[i].want);
    }
}

static void add_usec_saturates_at_int64_limits(void **state)
{
    (void)state;
    bty_time t = time_add_usec((bty_time){INT64_MAX, 999999}, INT64_MAX);
    assert_int_equal(t.sec, INT64_MAX);
    assert_int_equal(t.usec, 999999);
    t = time_add_usec((bty_time){INT64_MIN, 0}, INT64_MIN);
    assert_int_equal(t.sec, INT64_MIN);
    assert_int_equal(t.usec, 0);
    t = time_add_usec((bty_time){0, 0}, INT64_MIN);
    assert_true(t.usec >= 0 && t.usec <= 999999);
    assert_int_equal(t.sec, INT64_MIN / 1000000 - 1);
    assert_int_equal(t.usec, 1000000 + INT64_MIN % 1000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_accepts_every_documented_form),
        cmocka_unit_test(parse_truncates_nine_digit_fraction_to_microseconds),
        cmocka_unit_test(parse_offsets_cross_midnight_month_and_year),
        cmocka_unit_test(parse_checks_calendar_and_clock_ranges),
        cmocka_unit_test(parse_rejects_results_outside_years_1_to_9999),
        cmocka_unit_test(parse_rejects_junk_and_missing_digits),
        cmocka_unit_test(parse_rejects_null_arguments),
        cmocka_unit_test(origin_round_trips_before_1970),
        cmocka_unit_test(format_writes_26_characters_around_the_epoch),
        cmocka_unit_test(format_normalises_out_of_range_usec),
        cmocka_unit_test(format_clamps_times_outside_years_1_to_9999),
        cmocka_unit_test(every_day_round_trips_through_format_and_parse),
        cmocka_unit_test(trunc_day_gives_midnight_utc),
        cmocka_unit_test(trunc_day_does_not_overflow_at_int64_limits),
        cmocka_unit_test(add_usec_carries_both_ways_and_keeps_usec_in_range),
        cmocka_unit_test(add_usec_saturates_at_int64_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
