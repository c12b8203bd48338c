/*
 * ready.c - the readiness decision (SPEC sections 7 and 9) and the progress
 * line, as pure functions of a get_status document, the pages of history
 * read so far, and the target day.
 *
 * A step counts when its latest record (get_status) has status "success"
 * and the date of its batch_end is the target day, or when a batch of it
 * kept in history does. Anything else (open, failed, new, yesterday's
 * success, a success re-opened since that history does not show) is still
 * awaited. Which history pages to read, and when to stop, is decided here
 * too; reading them is main.c's. So is the wake-up between polls (SPEC
 * section 10): which workflow a held get_status waits on, its wait=, and
 * what its answer means for the next poll; the clock is main.c's, and
 * comes in here as seconds.
 *
 * Pure apart from the time zone: with `local`, dates come from localtime_r
 * and mktime, which read TZ. No clock, no I/O.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "waitsy.h"

/* At most this many waiting steps are named on a progress line, and this
 * many bytes of a name or an error message are shown. */
#define SHOW_STEPS 5
#define SHOW_BYTES 200

/* ------------------------------------------------------------ clean text */

/* Characters that change how a terminal shows what follows: C1 controls
 * (U+0080-U+009F: U+009B is a CSI), left-to-right and right-to-left marks,
 * line and paragraph separators, bidirectional embeddings, overrides and
 * isolates. */
static int invisible(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9F) || cp == 0x200E || cp == 0x200F ||
           (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

void wz_clean(const char *text, size_t max, char *out)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t j = 0;
    while (*p) {
        uint32_t cp = 0;
        /* strnlen: a sequence cut by the end of text is invalid */
        size_t n = utf8_decode(p, strnlen((const char *)p, 4), &cp);
        if (j + (n ? n : 1) > max) {
            memcpy(out + j, "...", 3);
            j += 3;
            break;
        }
        if (n == 0) { /* invalid: one byte at a time */
            out[j++] = '?';
            p++;
        } else if (n == 1) {
            out[j++] = (*p < 0x20 || *p == 0x7f) ? ' ' : (char)*p;
            p++;
        } else if (invisible(cp)) {
            out[j++] = '?';
            p += n;
        } else {
            memcpy(out + j, p, n);
            j += n;
            p += n;
        }
    }
    out[j] = '\0';
}

/* ------------------------------------------------------------ text buffer */
typedef struct wz_buf {
    char *p;
    size_t len, cap;
    int oom;
} wz_buf;

__attribute__((format(printf, 2, 3))) static void buf_printf(wz_buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 128) + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* Append text as wz_clean shows it. */
static void buf_clean(wz_buf *b, const char *text)
{
    char shown[SHOW_BYTES + 4];
    wz_clean(text, SHOW_BYTES, shown);
    buf_printf(b, "%s", shown);
}

/* The finished string, or NULL when memory ran out (freed). */
static char *buf_take(wz_buf *b)
{
    if (b->oom || !b->p) {
        free(b->p);
        return NULL;
    }
    return b->p;
}

/* ------------------------------------------------------------ dates */
static void broken_down(bty_time t, int local, struct tm *tm)
{
    time_t s = (time_t)t.sec;
    memset(tm, 0, sizeof(*tm));
    if (local)
        localtime_r(&s, tm);
    else
        gmtime_r(&s, tm);
}

/* Fields of a broken-down time, kept to their digit counts so that the
 * output always fits. */
static unsigned two(int v)
{
    return (unsigned)v % 100u;
}

void wz_date_of(bty_time t, int local, char out[11])
{
    struct tm tm;
    broken_down(t, local, &tm);
    snprintf(out, 11, "%04u-%02u-%02u", (unsigned)(tm.tm_year + 1900) % 10000u, two(tm.tm_mon + 1),
             two(tm.tm_mday));
}

void wz_clock_of(bty_time t, int local, const char *date, char out[20])
{
    struct tm tm;
    char day[11];
    broken_down(t, local, &tm);
    wz_date_of(t, local, day);
    if (date && strcmp(day, date) == 0)
        snprintf(out, 20, "%02u:%02u:%02u", two(tm.tm_hour), two(tm.tm_min), two(tm.tm_sec));
    else
        snprintf(out, 20, "%.10s %02u:%02u:%02u", day, two(tm.tm_hour), two(tm.tm_min),
                 two(tm.tm_sec));
}

/* ------------------------------------------------------------ steps */
typedef enum step_state { ST_DONE, ST_WAITING, ST_FAILED } step_state;

static const char *field_string(const cJSON *rec, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The time in a record's field, or 0 when absent or not a time. */
static int field_time(const cJSON *rec, const char *name, bty_time *out)
{
    const char *text = field_string(rec, name);
    return text && time_parse(text, out) == 0;
}

/* How one step stands; appends why it is still awaited to `why`. */
static step_state step_assess(const cJSON *rec, const char *date, int local, wz_buf *why)
{
    const char *status = field_string(rec, "status");
    bty_time end, start;
    int has_end = field_time(rec, "batch_end", &end);
    char day[11] = "", clock[20];
    if (has_end)
        wz_date_of(end, local, day);

    if (!status) {
        buf_printf(why, "no status");
        return ST_WAITING;
    }
    if (strcmp(status, "success") == 0) {
        if (has_end && strcmp(day, date) == 0)
            return ST_DONE;
        if (!has_end) {
            buf_printf(why, "success without batch_end");
        } else {
            wz_clock_of(end, local, date, clock);
            buf_printf(why, "last success %s", clock);
        }
        return ST_WAITING;
    }
    if (strcmp(status, "open") == 0) {
        if (field_time(rec, "batch_start", &start)) {
            wz_clock_of(start, local, date, clock);
            buf_printf(why, "open since %s", clock);
        } else {
            buf_printf(why, "open");
        }
        return ST_WAITING;
    }
    if (strcmp(status, "failed") == 0 && has_end) {
        wz_clock_of(end, local, date, clock);
        buf_printf(why, "failed at %s", clock);
        return strcmp(day, date) == 0 ? ST_FAILED : ST_WAITING;
    }
    buf_printf(why, "status ");
    buf_clean(why, status);
    return ST_WAITING;
}

/* ------------------------------------------------------------ workflows */
static int finish(wz_assessment *out, wz_verdict verdict, wz_buf *summary)
{
    out->verdict = verdict;
    out->summary = buf_take(summary);
    return out->summary ? 0 : -1;
}

/* "its steps: a, b, c" for an unknown-step message. */
static void list_steps(wz_buf *b, const cJSON *doc)
{
    size_t n = 0;
    const cJSON *s;
    buf_printf(b, " (its steps: ");
    cJSON_ArrayForEach(s, doc)
    {
        if (n == SHOW_STEPS * 2) {
            buf_printf(b, ", ...");
            break;
        }
        buf_printf(b, "%s", n ? ", " : "");
        buf_clean(b, s->string);
        n++;
    }
    buf_printf(b, ")");
}

/* 1 when history shows that step `name` succeeded on the day. */
static int history_done(const wz_history *h, const char *name)
{
    return h && h->succeeded && cJSON_GetObjectItemCaseSensitive(h->succeeded, name);
}

int wz_assess(const char *wf, const cJSON *doc, char *const *steps, size_t nsteps, const char *date,
              int local, wz_assessment *out)
{
    return wz_assess_history(wf, doc, NULL, steps, nsteps, date, local, out);
}

int wz_assess_history(const char *wf, const cJSON *doc, const wz_history *history,
                      char *const *steps, size_t nsteps, const char *date, int local,
                      wz_assessment *out)
{
    wz_buf summary = {0}, waiting = {0}, failure = {0};
    memset(out, 0, sizeof(*out));

    if (!cJSON_IsObject(doc)) {
        buf_printf(&summary, "%s: Batchy's answer is not a workflow document", wf);
        return finish(out, WZ_INVALID, &summary);
    }
    if (!doc->child) {
        buf_printf(&summary, "%s has no steps: load a workflow file with steps (load_cfg/%s)", wf,
                   wf);
        return finish(out, WZ_UNKNOWN, &summary);
    }
    for (size_t i = 0; i < nsteps; i++) {
        if (!cJSON_GetObjectItemCaseSensitive(doc, steps[i])) {
            buf_printf(&summary, "%s has no step '", wf);
            buf_clean(&summary, steps[i]);
            buf_printf(&summary, "'");
            list_steps(&summary, doc);
            return finish(out, WZ_UNKNOWN, &summary);
        }
    }

    size_t nwaiting = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, doc)
    {
        int awaited = nsteps == 0;
        for (size_t i = 0; i < nsteps && !awaited; i++)
            awaited = strcmp(steps[i], rec->string) == 0;
        if (!awaited)
            continue;
        if (!cJSON_IsObject(rec)) {
            free(waiting.p);
            free(failure.p);
            buf_printf(&summary, "%s: step '", wf);
            buf_clean(&summary, rec->string);
            buf_printf(&summary, "' in Batchy's answer is not a record");
            return finish(out, WZ_INVALID, &summary);
        }
        out->awaited++;

        wz_buf why = {0};
        step_state st = step_assess(rec, date, local, &why);
        if (st != ST_DONE && history_done(history, rec->string))
            st = ST_DONE;
        if (st == ST_DONE) {
            out->done++;
        } else {
            if (nwaiting < SHOW_STEPS) {
                buf_printf(&waiting, "%s", nwaiting ? ", " : "");
                buf_clean(&waiting, rec->string);
                buf_printf(&waiting, " (%s)", why.p ? why.p : "");
            }
            nwaiting++;
        }
        if (st == ST_FAILED && !failure.p) {
            const char *message = field_string(rec, "error_message");
            buf_printf(&failure, "%s: step ", wf);
            buf_clean(&failure, rec->string);
            buf_printf(&failure, " %s", why.p ? why.p : "failed");
            if (message && *message) {
                buf_printf(&failure, ": ");
                buf_clean(&failure, message);
            }
        }
        if (why.oom)
            waiting.oom = 1;
        free(why.p);
    }

    buf_printf(&summary, "%s: %zu/%zu %s done for %s", wf, out->done, out->awaited,
               out->awaited == 1 ? "step" : "steps", date);
    if (nwaiting) {
        buf_printf(&summary, "; waiting on %s", waiting.p ? waiting.p : "");
        if (nwaiting > SHOW_STEPS)
            buf_printf(&summary, " and %zu more", nwaiting - SHOW_STEPS);
    }
    if (waiting.oom)
        summary.oom = 1;
    free(waiting.p);

    wz_verdict verdict = WZ_READY;
    if (failure.p || failure.oom) {
        verdict = WZ_FAILED;
        out->failure = buf_take(&failure);
        if (!out->failure)
            summary.oom = 1;
    } else if (nwaiting) {
        verdict = WZ_WAITING;
    }
    if (finish(out, verdict, &summary) != 0) {
        wz_assessment_free(out);
        return -1;
    }
    return 0;
}

void wz_assessment_free(wz_assessment *a)
{
    free(a->summary);
    free(a->failure);
    a->summary = a->failure = NULL;
}

/* ------------------------------------------------------------ history */

/* The Unix second at which `date` begins, in UTC or in local time; -1
 * when it is not a day. */
static int day_start(const char *date, int local, long long *out)
{
    bty_time t;
    if (time_parse(date, &t) != 0)
        return -1;
    if (!local) {
        *out = t.sec;
        return 0;
    }
    struct tm tm;
    broken_down(t, 0, &tm); /* the day's fields */
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = -1; /* whatever the zone says of that midnight */
    time_t s = mktime(&tm);
    if (s == (time_t)-1)
        return -1;
    *out = (long long)s;
    return 0;
}

void wz_history_start(wz_history *h, const char *date, int local)
{
    memset(h, 0, sizeof(*h));
    snprintf(h->date, sizeof(h->date), "%s", date);
    h->local = local;
    long long start;
    if (day_start(date, local, &start) != 0)
        return;
    h->from = start - 86400;
    h->before = start + 2 * 86400; /* the day, and a day's margin */
    if (h->before > BTY_MAX_BATCH_ID)
        h->before = BTY_MAX_BATCH_ID;
    h->limit = WZ_HISTORY_FIRST_PAGE;
    h->more = h->before > 1 && h->before > h->from; /* ids are >= 1 */
}

void wz_history_free(wz_history *h)
{
    cJSON_Delete(h->succeeded);
    h->succeeded = NULL;
    h->found = 0;
    h->more = 0;
}

/* A batch id (or next_before) in an answer: a whole number >= 1. */
static int batch_id_of(const cJSON *v, long long *out)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1) || v->valuedouble > BTY_MAX_BATCH_ID ||
        (double)(long long)v->valuedouble != v->valuedouble)
        return -1;
    *out = (long long)v->valuedouble;
    return 0;
}

/* 1 when `batch` is a history row: {"batch_id": N, "steps": {name: {...}}}. */
static int is_batch_row(const cJSON *batch)
{
    long long id;
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(batch, "steps"), *step;
    if (!cJSON_IsObject(batch) ||
        batch_id_of(cJSON_GetObjectItemCaseSensitive(batch, "batch_id"), &id) != 0 ||
        !cJSON_IsObject(steps))
        return 0;
    cJSON_ArrayForEach(step, steps)
    {
        if (!cJSON_IsObject(step))
            return 0;
    }
    return 1;
}

/* How many batches the next page should ask for: those that the ids seen
 * on this page (n of them, from newest down to oldest) say lie between
 * oldest and h->from, with some to spare, so that one more page usually
 * reaches past h->from. */
static long next_limit(const wz_history *h, long long newest, long long oldest, size_t n)
{
    double want = WZ_HISTORY_MAX_PAGE;
    if (n >= 2 && newest > oldest) {
        double gap = (double)(newest - oldest) / (double)(n - 1);
        want = (double)(oldest - h->from) / gap * 1.25 + 10;
    }
    if (want < WZ_HISTORY_FIRST_PAGE)
        return WZ_HISTORY_FIRST_PAGE;
    if (want > WZ_HISTORY_MAX_PAGE)
        return WZ_HISTORY_MAX_PAGE;
    return (long)want;
}

wz_page_verdict wz_history_read(wz_history *h, const cJSON *page)
{
    const cJSON *batches = cJSON_GetObjectItemCaseSensitive(page, "batches");
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(page, "next_before");
    const cJSON *batch;
    long long next_before = 0, newest = 0, oldest = 0, id = 0;
    size_t n = 0;

    /* All of it checked first: nothing is taken from an answer that is
     * not history (a server that has another idea of /history). */
    if (!cJSON_IsObject(page) || !cJSON_IsArray(batches) ||
        !(cJSON_IsNull(next) || batch_id_of(next, &next_before) == 0))
        return WZ_PAGE_INVALID;
    cJSON_ArrayForEach(batch, batches)
    {
        if (!is_batch_row(batch))
            return WZ_PAGE_INVALID;
    }

    cJSON_ArrayForEach(batch, batches)
    {
        batch_id_of(cJSON_GetObjectItemCaseSensitive(batch, "batch_id"), &id);
        if (n == 0 || id > newest)
            newest = id;
        if (n == 0 || id < oldest)
            oldest = id;
        n++;
        const cJSON *rec;
        cJSON_ArrayForEach(rec, cJSON_GetObjectItemCaseSensitive(batch, "steps"))
        {
            const char *status = field_string(rec, "status");
            bty_time end;
            char day[11];
            if (!status || strcmp(status, "success") != 0 || !field_time(rec, "batch_end", &end))
                continue;
            wz_date_of(end, h->local, day);
            if (strcmp(day, h->date) != 0 || history_done(h, rec->string))
                continue;
            if (!h->succeeded && !(h->succeeded = cJSON_CreateObject()))
                return WZ_PAGE_OOM;
            if (!cJSON_AddTrueToObject(h->succeeded, rec->string))
                return WZ_PAGE_OOM;
            h->found++;
        }
    }

    h->pages++;
    /* Older pages are needed while this one still holds ids that may
     * concern the day, and Batchy says there are more; never the same
     * page twice. */
    h->more = n > 0 && next_before > 0 && oldest >= h->from && next_before < h->before &&
              h->pages < WZ_HISTORY_MAX_PAGES;
    if (!h->more)
        return WZ_PAGE_DONE;
    h->limit = next_limit(h, newest, oldest, n);
    h->before = next_before;
    return WZ_PAGE_MORE;
}

/* ------------------------------------------------------------ held requests */

int wz_etag_usable(const char *etag)
{
    if (!etag || strnlen(etag, WZ_MAX_ETAG + 1) > WZ_MAX_ETAG)
        return 0;
    const unsigned char *p = (const unsigned char *)etag;
    if (p[0] == 'W' && p[1] == '/') /* weak: If-None-Match compares those too */
        p += 2;
    size_t n = strlen((const char *)p);
    if (n < 2 || p[0] != '"' || p[n - 1] != '"')
        return 0;
    /* RFC 9110's etagc, without obs-text: it goes back out in a header of
     * ours exactly as it came, so nothing that is not plain ASCII. */
    for (size_t i = 1; i + 1 < n; i++)
        if (p[i] < 0x21 || p[i] > 0x7e || p[i] == '"')
            return 0;
    return 1;
}

int wz_etag_changed(const char *sent, const char *got)
{
    return wz_etag_usable(got) && (!sent || strcmp(sent, got) != 0);
}

size_t wz_hold_target(const wz_verdict *verdicts, const char *const *etags, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (verdicts[i] == WZ_READY)
            continue;
        /* Only the first: another workflow changing cannot make waitsy
         * ready while this one has not, and the next poll sees it anyway. */
        int awaited = verdicts[i] == WZ_WAITING || verdicts[i] == WZ_FAILED;
        return awaited && wz_etag_usable(etags[i]) ? i : n;
    }
    return n;
}

long wz_hold_seconds(double until_poll, double until_deadline)
{
    if (!(until_poll > 0)) /* the poll is due (or the clock said nonsense) */
        return 0;
    /* Rounded up, so that a 304 at the end of wait= finds the poll due;
     * a fractional --interval is stretched to the next second at most. */
    double s = until_poll >= WZ_HOLD_MAX ? WZ_HOLD_MAX : ceil(until_poll);
    if (until_deadline < s) /* never past --timeout: rounded down there */
        s = floor(until_deadline);
    return s >= 1 ? (long)s : 0;
}

double wz_after_hold(wz_held held, long wait, double took, double since_poll, double until_poll)
{
    double due = until_poll > 0 ? until_poll : 0;
    switch (held) {
    case WZ_HELD_CHANGED: {
        double gap = WZ_MIN_INTERVAL - since_poll;
        if (gap <= 0)
            return 0;
        return gap < due ? gap : due;
    }
    case WZ_HELD_UNCHANGED:
        /* Early: Batchy stopping, or a server that answers at once
         * whatever wait= says; polling now would make that a tight loop. */
        if (took < (double)wait - WZ_HOLD_EARLY)
            return due;
        /* The full wait=: the poll is due unless wait= was cut short. */
        return due >= 1 ? WZ_HOLD_AGAIN : due;
    case WZ_HELD_FAILED:
        break;
    }
    return due;
}
