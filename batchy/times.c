/*
 * times.c - points in time: lenient parsing of the date forms users write
 * in workflow files and query strings, and the one canonical form Batchy
 * writes ("YYYY-MM-DDTHH:MM:SS.ffffff", UTC, SPEC section 2).
 *
 * Pure: no clock, no locale, no libc time zone functions. Calendar
 * arithmetic is done with days-from-civil / civil-from-days on the
 * proleptic Gregorian calendar, so years before 1970 (the origin is in
 * 1776) work the same as any other.
 *
 * Times outside the years 0001-9999 cannot be written in the canonical
 * form; time_parse never produces them, time_format clamps them, and the
 * arithmetic helpers saturate at the int64 limits instead of overflowing.
 */
#include <stdint.h>
#include <string.h>

#include "batchy.h"

#define USEC_PER_SEC 1000000
#define SEC_PER_DAY  86400

/* 0001-01-01T00:00:00 and 9999-12-31T23:59:59 in Unix seconds. */
#define MIN_SEC (-62135596800LL)
#define MAX_SEC (253402300799LL)

/* Floor division and the matching non-negative remainder (d > 0). */
static int64_t floor_div(int64_t n, int64_t d)
{
    int64_t q = n / d;
    if (n % d < 0)
        q--;
    return q;
}

static int64_t floor_mod(int64_t n, int64_t d)
{
    int64_t r = n % d;
    if (r < 0)
        r += d;
    return r;
}

/* Days since 1970-01-01 of year y, month m (1-12), day d (1-31), proleptic
 * Gregorian (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;                                   /* [0, 399] */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;                                      /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && is_leap(y))
        return 29;
    return days[m - 1];
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Read exactly n ASCII digits at *p into *out and advance *p past them.
 * Returns 0, or -1 (and *p unchanged) if any of the n bytes is not a
 * digit; stops at the NUL, so it never reads past the string. */
static int read_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (!is_digit(c))
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

/* Read an offset after a time part: "Z", or a sign followed by "HH:MM" or
 * "HHMM". Sets *offset_sec to the seconds to subtract from local time to
 * get UTC. Returns 0, or -1 if the text there is not an offset. An empty
 * string is no offset (0). */
static int read_offset(const char **p, int64_t *offset_sec)
{
    const char *s = *p;
    int sign, hh, mm;

    *offset_sec = 0;
    if (*s == '\0')
        return 0;
    if (*s == 'Z') {
        *p = s + 1;
        return 0;
    }
    if (*s == '+')
        sign = 1;
    else if (*s == '-')
        sign = -1;
    else
        return -1;
    s++;
    if (read_digits(&s, 2, &hh) < 0)
        return -1;
    if (*s == ':')
        s++;
    if (read_digits(&s, 2, &mm) < 0)
        return -1;
    if (hh > 23 || mm > 59)
        return -1;
    *offset_sec = sign * (int64_t)(hh * 3600 + mm * 60);
    *p = s;
    return 0;
}

/* Read ".f{1,9}" into *usec (truncated to microseconds). No '.' is no
 * fraction (0). Returns 0, or -1 for a '.' without 1-9 digits. */
static int read_fraction(const char **p, int32_t *usec)
{
    const char *s = *p;
    int32_t v = 0;
    int n = 0;

    *usec = 0;
    if (*s != '.')
        return 0;
    s++;
    while (is_digit(s[n])) {
        if (n == 9)
            return -1;
        if (n < 6)
            v = v * 10 + (s[n] - '0');
        n++;
    }
    if (n == 0)
        return -1;
    for (int i = n; i < 6; i++)
        v *= 10;
    *usec = v;
    *p = s + n;
    return 0;
}

/* See batchy.h. The result is additionally required to fall within
 * 0001-01-01 .. 9999-12-31 after conversion to UTC, so that every parsed
 * time can be written back in the canonical form. */
int time_parse(const char *text, bty_time *out)
{
    const char *p = text;
    int year, month, day, hour = 0, minute = 0, second = 0;
    int32_t usec = 0;
    int64_t offset = 0;

    if (!p || !out)
        return -1;
    if (read_digits(&p, 4, &year) < 0 || *p++ != '-' || read_digits(&p, 2, &month) < 0 ||
        *p++ != '-' || read_digits(&p, 2, &day) < 0)
        return -1;
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month))
        return -1;

    if (*p == 'T' || *p == ' ') {
        p++;
        if (read_digits(&p, 2, &hour) < 0 || *p++ != ':' || read_digits(&p, 2, &minute) < 0)
            return -1;
        if (*p == ':') {
            p++;
            if (read_digits(&p, 2, &second) < 0 || read_fraction(&p, &usec) < 0)
                return -1;
        }
        if (hour > 23 || minute > 59 || second > 59)
            return -1;
        if (read_offset(&p, &offset) < 0)
            return -1;
    }
    if (*p != '\0')
        return -1;

    int64_t sec = days_from_civil(year, month, day) * SEC_PER_DAY + hour * 3600 + minute * 60 +
                  second - offset;
    if (sec < MIN_SEC || sec > MAX_SEC)
        return -1;
    out->sec = sec;
    out->usec = usec;
    return 0;
}

/* t with usec brought into 0..999999, carrying into sec; saturates at the
 * int64 limits. */
static bty_time normalise(bty_time t)
{
    int64_t carry = floor_div(t.usec, USEC_PER_SEC);
    int64_t usec = floor_mod(t.usec, USEC_PER_SEC);

    if (carry > 0 && t.sec > INT64_MAX - carry)
        return (bty_time){INT64_MAX, USEC_PER_SEC - 1};
    if (carry < 0 && t.sec < INT64_MIN - carry)
        return (bty_time){INT64_MIN, 0};
    return (bty_time){t.sec + carry, (int32_t)usec};
}

/* See batchy.h. A time before year 1 is written as 0001-01-01T00:00:00.000000
 * and one after year 9999 as 9999-12-31T23:59:59.999999, so out always holds
 * exactly BTY_TIME_LEN characters. */
void time_format(bty_time t, char out[BTY_TIME_LEN + 1])
{
    t = normalise(t);
    if (t.sec < MIN_SEC)
        t = (bty_time){MIN_SEC, 0};
    else if (t.sec > MAX_SEC)
        t = (bty_time){MAX_SEC, USEC_PER_SEC - 1};

    int64_t days = floor_div(t.sec, SEC_PER_DAY);
    int64_t rem = floor_mod(t.sec, SEC_PER_DAY);
    int64_t year;
    int month, day;
    civil_from_days(days, &year, &month, &day);

    int fields[7] = {(int)year,       month, day, (int)(rem / 3600), (int)(rem / 60 % 60),
                     (int)(rem % 60), t.usec};
    static const int widths[7] = {4, 2, 2, 2, 2, 2, 6};
    static const char seps[7] = {'-', '-', 'T', ':', ':', '.', '\0'};
    char *o = out;
    for (int i = 0; i < 7; i++) {
        int v = fields[i];
        for (int w = widths[i] - 1; w >= 0; w--) {
            o[w] = (char)('0' + v % 10);
            v /= 10;
        }
        o += widths[i];
        *o++ = seps[i];
    }
}

/* See batchy.h. The canonical text with a space for the 'T', cut before
 * the fraction when that is zero: what Python's str(datetime) prints. */
void time_format_python(bty_time t, char out[BTY_TIME_LEN + 1])
{
    time_format(t, out);
    out[10] = ' ';
    if (strcmp(out + 20, "000000") == 0)
        out[19] = '\0';
}

/* See batchy.h. Saturates instead of overflowing near INT64_MIN. */
bty_time time_trunc_day(bty_time t)
{
    t = normalise(t);
    int64_t rem = floor_mod(t.sec, SEC_PER_DAY);
    if (t.sec < INT64_MIN + rem)
        return (bty_time){INT64_MIN, 0};
    return (bty_time){t.sec - rem, 0};
}

/* See batchy.h. The result's usec is in 0..999999 whatever the sign of
 * usec; the seconds saturate at the int64 limits. */
bty_time time_add_usec(bty_time t, int64_t usec)
{
    t = normalise(t);
    int64_t carry = floor_div(usec, USEC_PER_SEC);
    int64_t part = t.usec + floor_mod(usec, USEC_PER_SEC); /* 0 .. 1999998 */
    if (part >= USEC_PER_SEC) {
        part -= USEC_PER_SEC;
        carry++; /* |carry| <= INT64_MAX / 10^6 + 1: no overflow */
    }
    int64_t sec;
    if (__builtin_add_overflow(t.sec, carry, &sec))
        return carry > 0 ? (bty_time){INT64_MAX, USEC_PER_SEC - 1} : (bty_time){INT64_MIN, 0};
    return (bty_time){sec, (int32_t)part};
}
