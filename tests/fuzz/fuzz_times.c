/*
 * fuzz_times.c - the time parser and the time arithmetic (times.c).
 *
 * The input, up to its first NUL, is given to time_parse and judged
 * against an independent reading of SPEC section 2:
 *   - accepted only if it matches the documented grammar (a POSIX regex);
 *   - a grammar match with every field in range, years 0002-9998, is
 *     accepted, and gives the instant libc's timegm gives, minus the offset;
 *   - an accepted time prints as 26 canonical characters that parse back
 *     to the same instant (parse(format(t)) == t); canonical text prints
 *     back as itself.
 * The input bytes are also read as a raw bty_time and a microsecond delta
 * for time_format (clamping), time_add_usec and time_trunc_day, whose
 * results are checked with 128-bit arithmetic.
 */
#include <regex.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "fuzz_check.h"

#define MAX_TEXT 64 /* longer than any valid time: no point mutating more */

/* SPEC section 2's forms: date, then [T| ]HH:MM, :SS, .f{1,9}, and an
 * offset; the groups are numbered for parse_oracle. */
static const char GRAMMAR[] = "^([0-9]{4})-([0-9]{2})-([0-9]{2})"
                              "([T ]([0-9]{2}):([0-9]{2})(:([0-9]{2})(\\.([0-9]{1,9}))?)?"
                              "(Z|([-+])([0-9]{2}):?([0-9]{2}))?)?$";
static const char CANONICAL[] =
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}$";

static regex_t grammar, canonical;

static int group_int(const char *s, const regmatch_t *m, int dflt)
{
    if (m->rm_so < 0)
        return dflt;
    int v = 0;
    for (regoff_t i = m->rm_so; i < m->rm_eo; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static int days_in(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* If text matches the grammar with every field in range and a year whose
 * UTC instant cannot leave 0001-9999, set *want and return 1. */
static int parse_oracle(const char *text, const regmatch_t *g, bty_time *want)
{
    int y = group_int(text, &g[1], 0), mo = group_int(text, &g[2], 0),
        d = group_int(text, &g[3], 0);
    int h = group_int(text, &g[5], 0), mi = group_int(text, &g[6], 0),
        s = group_int(text, &g[8], 0);
    int oh = group_int(text, &g[13], 0), om = group_int(text, &g[14], 0);
    if (y < 2 || y > 9998 || mo < 1 || mo > 12 || d < 1 || d > days_in(y, mo) || h > 23 ||
        mi > 59 || s > 59 || oh > 23 || om > 59)
        return 0;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    int64_t offset = (int64_t)oh * 3600 + om * 60;
    if (g[12].rm_so >= 0 && text[g[12].rm_so] == '-')
        offset = -offset;
    int32_t usec = 0;
    if (g[10].rm_so >= 0) {
        int n = 0;
        for (regoff_t i = g[10].rm_so; i < g[10].rm_eo && n < 6; i++, n++)
            usec = usec * 10 + (text[i] - '0');
        for (; n < 6; n++)
            usec *= 10;
    }
    want->sec = (int64_t)timegm(&tm) - offset;
    want->usec = usec;
    return 1;
}

static void check_parse(const char *text)
{
    regmatch_t g[15];
    int matches = regexec(&grammar, text, 15, g, 0) == 0;
    bty_time t = {-1, -1}, want;
    int rc = time_parse(text, &t);
    FUZZ_ASSERT(rc == 0 || rc == -1, "time_parse returned %d", rc);
    if (rc != 0) {
        FUZZ_ASSERT(t.sec == -1 && t.usec == -1, "'%s' refused but *out was written", text);
        FUZZ_ASSERT(!matches || !parse_oracle(text, g, &want), "'%s' refused but valid", text);
        return;
    }
    FUZZ_ASSERT(matches, "'%s' accepted but outside the documented grammar", text);
    if (parse_oracle(text, g, &want))
        FUZZ_ASSERT(t.sec == want.sec && t.usec == want.usec,
                    "'%s' parsed as %lld.%06d, expected %lld.%06d", text, (long long)t.sec,
                    (int)t.usec, (long long)want.sec, (int)want.usec);
    FUZZ_ASSERT(t.usec >= 0 && t.usec <= 999999, "'%s': usec %d", text, (int)t.usec);

    char out[BTY_TIME_LEN + 1], again[BTY_TIME_LEN + 1];
    time_format(t, out);
    FUZZ_ASSERT(regexec(&canonical, out, 0, NULL, 0) == 0, "'%s' prints as '%s'", text, out);
    bty_time back;
    FUZZ_ASSERT(time_parse(out, &back) == 0 && back.sec == t.sec && back.usec == t.usec,
                "'%s' prints as '%s', which does not parse back to the same time", text, out);
    time_format(back, again);
    FUZZ_ASSERT(strcmp(out, again) == 0, "'%s' prints back as '%s'", out, again);
    if (regexec(&canonical, text, 0, NULL, 0) == 0)
        FUZZ_ASSERT(strcmp(out, text) == 0, "canonical '%s' prints as '%s'", text, out);
}

/* 0001-01-01T00:00:00 and 9999-12-31T23:59:59 in Unix seconds. */
#define MIN_SEC (-62135596800LL)
#define MAX_SEC (253402300799LL)

static __int128 usec_of(bty_time t)
{
    return (__int128)t.sec * 1000000 + t.usec;
}

static void check_arithmetic(bty_time t, int64_t delta)
{
    char out[BTY_TIME_LEN + 1];
    time_format(t, out);
    FUZZ_ASSERT(strlen(out) == BTY_TIME_LEN && regexec(&canonical, out, 0, NULL, 0) == 0,
                "time_format(%lld, %d) gave '%s'", (long long)t.sec, (int)t.usec, out);
    bty_time parsed;
    FUZZ_ASSERT(time_parse(out, &parsed) == 0, "time_format wrote '%s', which does not parse", out);

    /* time_add_usec: exact unless it saturated at the int64 limits, on
     * the way (an unnormalised t beyond them) or at the end. */
    bty_time sum = time_add_usec(t, delta);
    FUZZ_ASSERT(sum.usec >= 0 && sum.usec <= 999999, "time_add_usec: usec %d", (int)sum.usec);
    __int128 exact = usec_of(t) + delta;
    __int128 lo = (__int128)INT64_MIN * 1000000, hi = (__int128)INT64_MAX * 1000000 + 999999;
    int t_in_range = usec_of(t) >= lo && usec_of(t) <= hi;
    if (t_in_range && exact >= lo && exact <= hi)
        FUZZ_ASSERT(usec_of(sum) == exact, "time_add_usec(%lld.%d, %lld) is off", (long long)t.sec,
                    (int)t.usec, (long long)delta);
    else if (t_in_range)
        FUZZ_ASSERT(sum.sec == INT64_MIN || sum.sec == INT64_MAX,
                    "time_add_usec overflowed without saturating");
    /* ... and where it is exact and in range, formatting agrees with the
     * normalised time. */
    if (usec_of(sum) == exact && sum.sec >= MIN_SEC && sum.sec <= MAX_SEC) {
        time_format(sum, out);
        FUZZ_ASSERT(time_parse(out, &parsed) == 0 && parsed.sec == sum.sec &&
                        parsed.usec == sum.usec,
                    "time %lld.%06d prints as '%s'", (long long)sum.sec, (int)sum.usec, out);
    }

    /* time_trunc_day: midnight of the same day, at or before t. */
    bty_time day = time_trunc_day(sum);
    FUZZ_ASSERT(day.usec == 0, "time_trunc_day: usec %d", (int)day.usec);
    if (day.sec != INT64_MIN) {
        FUZZ_ASSERT(day.sec % 86400 == 0, "time_trunc_day: %lld is not a midnight",
                    (long long)day.sec);
        FUZZ_ASSERT(day.sec <= sum.sec && sum.sec - day.sec < 86400,
                    "time_trunc_day(%lld) gave %lld", (long long)sum.sec, (long long)day.sec);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (regcomp(&grammar, GRAMMAR, REG_EXTENDED) != 0 ||
            regcomp(&canonical, CANONICAL, REG_EXTENDED | REG_NOSUB) != 0)
            abort();
        ready = 1;
    }
    if (size > MAX_TEXT)
        return 0;
    char text[MAX_TEXT + 1];
    memcpy(text, data, size);
    text[size] = '\0';
    check_parse(text);

    /* The same bytes as numbers: seconds, microseconds (any int32, as a
     * caller may pass unnormalised ones) and a delta. */
    uint8_t raw[20] = {0};
    memcpy(raw, data, size < sizeof(raw) ? size : sizeof(raw));
    bty_time t;
    int64_t delta;
    memcpy(&t.sec, raw, 8);
    memcpy(&t.usec, raw + 8, 4);
    memcpy(&delta, raw + 12, 8);
    check_arithmetic(t, delta);

    /* And a parsed time moved by the delta, the way rules.c uses them. */
    bty_time parsed;
    if (time_parse(text, &parsed) == 0)
        check_arithmetic(parsed, delta);
    return 0;
}
