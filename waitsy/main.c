/*
 * main.c - Waitsy's poll loop: read every workflow's state (get_status,
 * then history while the latest records are not enough), decide, print
 * one line, wait, again; then exit with the status that says why, or
 * replace itself with the command after `--`.
 *
 * Waiting between polls: on a held get_status of the first workflow not
 * ready (SPEC section 10), which Batchy answers as soon as it changes, when
 * Batchy sent an ETag; else, or when the held request does not hold, a
 * sleep until the next poll is due. --interval stays the longest time
 * between two polls.
 *
 * Output: progress and the final line of a normal end (ready, not ready,
 * interrupted) on stdout, which -q silences; errors (Batchy unreachable,
 * unknown workflow, failure, timeout) on stderr, always.
 *
 * Signals: SIGINT and SIGTERM set a flag and write to a pipe, which wakes
 * the sleep at once; a request in flight (a held one too) stops at
 * libcurl's next progress call. Waitsy then exits 130 or 143 without
 * running the command.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "fetch.h"

static volatile sig_atomic_t stop_signal;
static int wake_pipe[2] = {-1, -1};
/* The dispositions waitsy started with, given back to the command. */
static struct sigaction old_int, old_term;

static void on_signal(int sig)
{
    int saved = errno;
    stop_signal = sig;
    if (wake_pipe[1] >= 0) {
        ssize_t n = write(wake_pipe[1], "", 1);
        (void)n; /* a full pipe already wakes the sleeper */
    }
    errno = saved;
}

static int should_stop(void)
{
    return stop_signal != 0;
}

static double monotonic(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static bty_time wall_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (bty_time){.sec = t.tv_sec, .usec = (int32_t)(t.tv_nsec / 1000)};
}

/* ------------------------------------------------------------ output */
typedef struct run {
    wz_options *o;
    char date[11]; /* the target day */
    double started;
    int no_history; /* Batchy showed it has no history: latest records only,
                       until it is next unreachable (it may come back newer) */
} run;

/* "2026-11-23 06:05:00 " in the zone of the run (UTC, or local). */
static void stamp(const run *r, FILE *f)
{
    char day[11], clock[20];
    bty_time now = wall_now();
    wz_date_of(now, r->o->local, day);
    wz_clock_of(now, r->o->local, day, clock);
    fprintf(f, "%s %s ", day, clock);
}

/* One time-stamped line on f. */
__attribute__((format(printf, 4, 0))) static void emit(const run *r, FILE *f, const char *prefix,
                                                       const char *fmt, va_list ap)
{
    stamp(r, f);
    fputs(prefix, f);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    fflush(f);
}

/* A line on stdout, unless -q. */
__attribute__((format(printf, 2, 3))) static void info(const run *r, const char *fmt, ...)
{
    if (r->o->verbosity == WZ_QUIET)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(r, stdout, "", fmt, ap);
    va_end(ap);
}

/* A line on stderr, always. */
__attribute__((format(printf, 2, 3))) static void error(const run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(r, stderr, "waitsy: ", fmt, ap);
    va_end(ap);
}

/* A line on stderr with -v only. */
__attribute__((format(printf, 2, 3))) static void debug(const run *r, const char *fmt, ...)
{
    if (r->o->verbosity != WZ_VERBOSE)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(r, stderr, "", fmt, ap);
    va_end(ap);
}

/* "12 s", "1 h 05 min" for the final lines. */
static void duration(double seconds, char out[32])
{
    long s = (long)(seconds + 0.5);
    if (s < 120)
        snprintf(out, 32, "%ld s", s);
    else if (s < 7200)
        snprintf(out, 32, "%ld min %02ld s", s / 60, s % 60);
    else
        snprintf(out, 32, "%ld h %02ld min", s / 3600, (s / 60) % 60);
}

/* ------------------------------------------------------------ sleeping */

/* Sleep until `seconds` passed or a signal came; 1 when a signal came. */
static int sleep_for(double seconds)
{
    double until = monotonic() + seconds;
    for (;;) {
        if (stop_signal)
            return 1;
        double left = until - monotonic();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = wake_pipe[0], .events = POLLIN};
        int ms = (int)ceil(left * 1000);
        if (poll(&p, 1, ms) > 0) {
            char drain[16];
            ssize_t n = read(wake_pipe[0], drain, sizeof(drain));
            (void)n;
        }
    }
}

/* Catch SIGINT and SIGTERM, unless they were ignored: a shell starts a
 * background job (`waitsy ... &`) with SIGINT ignored, and `trap '' INT`
 * means it; both must stay so. */
static int install_signals(void)
{
    if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, NULL, &old_int);
    sigaction(SIGTERM, NULL, &old_term);
    if (old_int.sa_handler != SIG_IGN)
        sigaction(SIGINT, &sa, NULL);
    if (old_term.sa_handler != SIG_IGN)
        sigaction(SIGTERM, &sa, NULL);
    /* A closed socket or stdout must give an error, not kill us. The
     * command gets SIGPIPE back by default: exec resets caught signals,
     * not ignored ones, so restore_signals does it. */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Give the command the dispositions waitsy started with. Returns 1 when a
 * stop signal came first: then the command must not run. SIGINT and
 * SIGTERM are blocked while the flag is checked and the handlers removed,
 * so one arriving in between is not lost: it stays pending and acts when
 * unblocked, with the disposition waitsy was started with. */
static int restore_signals(void)
{
    sigset_t stop, saved;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, &saved);
    if (stop_signal) {
        sigprocmask(SIG_SETMASK, &saved, NULL);
        return 1;
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, &saved, NULL);
    return 0;
}

static int interrupted(const run *r)
{
    char took[32];
    duration(monotonic() - r->started, took);
    int code = stop_signal == SIGINT ? WZ_EXIT_SIGINT : WZ_EXIT_SIGTERM;
    info(r, "interrupted by %s after %s; exit %d", stop_signal == SIGINT ? "SIGINT" : "SIGTERM",
         took, code);
    return code;
}

/* ------------------------------------------------------------ polling */

/* What one poll found. */
typedef enum poll_result {
    POLL_READY,
    POLL_WAITING,
    POLL_FAILED, /* an awaited step failed on the target day */
    POLL_RETRY,  /* Batchy unreachable or answering oddly: try again */
    POLL_FATAL,  /* exit with `code` */
    POLL_INTERRUPTED,
    POLL_NO_TIME, /* the deadline passed before every workflow was read */
} poll_result;

typedef struct poll_state {
    char *line;    /* the progress line, owned */
    char *failure; /* first failure, owned */
    char message[1024];
    int code;
    /* Per workflow read, for the held request after the poll: */
    wz_verdict verdicts[WZ_MAX_WORKFLOWS];
    char *etags[WZ_MAX_WORKFLOWS]; /* owned; NULL: none (or out of memory) */
} poll_state;

static void poll_state_free(poll_state *p)
{
    free(p->line);
    free(p->failure);
    for (size_t i = 0; i < WZ_MAX_WORKFLOWS; i++)
        free(p->etags[i]);
    memset(p, 0, sizeof(*p));
}

/* Append s to *line with " | " between workflows. */
static int join(char **line, const char *s)
{
    size_t old = *line ? strlen(*line) : 0;
    char *p = realloc(*line, old + strlen(s) + 4);
    if (!p)
        return -1;
    if (old)
        memcpy(p + old, " | ", 3), old += 3;
    strcpy(p + old, s);
    *line = p;
    return 0;
}

/* `as` (from the latest records of `doc`) is not ready: read history
 * pages of `wf` for the target day while they can still hold a success on
 * it and some awaited step is still not done, assessing `doc` again with
 * each page that shows a new one. A server without history leaves `as` as
 * it is, silently (with -v, a line says so). Returns POLL_READY when `as`
 * now stands, whatever its verdict; else POLL_RETRY, POLL_INTERRUPTED,
 * POLL_NO_TIME (after the first page; it is asked with the get_status
 * before it) or POLL_FATAL, with `out` filled in. */
static poll_result read_history(run *r, wz_client *client, const char *wf, const cJSON *doc,
                                double deadline, wz_assessment *as, poll_state *out)
{
    wz_options *o = r->o;
    wz_history h;
    poll_result res = POLL_READY;
    wz_history_start(&h, r->date, o->local);
    while (h.more && as->verdict != WZ_READY) {
        double left = deadline - monotonic();
        if (h.pages > 0 && left <= 0) {
            res = POLL_NO_TIME;
            break;
        }
        wz_answer a;
        long long before = h.before;
        long limit = h.limit;
        wz_fetch_history(client, wf, before, limit, left, &a);
        debug(r, "GET %s/history/%s?limit=%ld&before=%lld -> %ld, %zu bytes in %.1f ms",
              wz_client_url(client), wf, limit, before, a.status, a.bytes, a.seconds * 1000);
        if (a.kind == WZ_ANSWER_INTERRUPTED) {
            res = POLL_INTERRUPTED;
            break;
        }
        if (a.kind == WZ_ANSWER_RETRY) {
            snprintf(out->message, sizeof(out->message), "%s", a.message);
            res = POLL_RETRY;
            break;
        }
        if (a.kind != WZ_ANSWER_OK) { /* no history here, or not this time */
            r->no_history = r->no_history || a.kind == WZ_ANSWER_UNKNOWN;
            debug(r, "%s; judging by the latest records only", a.message);
            break;
        }
        size_t found = h.found;
        wz_page_verdict v = wz_history_read(&h, a.doc);
        cJSON_Delete(a.doc);
        if (v == WZ_PAGE_INVALID) {
            r->no_history = 1;
            debug(r,
                  "history/%s at %s is not Batchy's history; judging by the latest records "
                  "only",
                  wf, wz_client_url(client));
            break;
        }
        if (v == WZ_PAGE_OOM) {
            res = POLL_FATAL;
            break;
        }
        if (h.found > found) { /* another step done: assess again */
            wz_assessment again;
            if (wz_assess_history(wf, doc, &h, o->steps, o->nsteps, r->date, o->local, &again) !=
                0) {
                res = POLL_FATAL;
                break;
            }
            wz_assessment_free(as);
            *as = again;
        }
    }
    if (res == POLL_FATAL) {
        snprintf(out->message, sizeof(out->message), "out of memory");
        out->code = WZ_EXIT_INTERNAL;
    }
    wz_history_free(&h);
    return res;
}

/* Read and assess every workflow. Each request gets the time left until
 * `deadline` (INFINITY: none); the first always gets a chance, so that
 * the last poll before a timeout happens, but once the time is up the
 * others are not asked. */
static poll_result poll_once(run *r, wz_client *client, double deadline, poll_state *out)
{
    wz_options *o = r->o;
    int waiting = 0, failed = 0;
    memset(out, 0, sizeof(*out));

    for (size_t i = 0; i < o->nworkflows; i++) {
        const char *wf = o->workflows[i];
        double left = deadline - monotonic();
        if (i > 0 && left <= 0)
            return POLL_NO_TIME;
        wz_answer a;
        wz_fetch_status(client, wf, left, &a);
        debug(r, "GET %s/get_status/%s -> %ld, %zu bytes in %.1f ms", wz_client_url(client), wf,
              a.status, a.bytes, a.seconds * 1000);
        switch (a.kind) {
        case WZ_ANSWER_OK:
            break;
        case WZ_ANSWER_INTERRUPTED:
            return POLL_INTERRUPTED;
        case WZ_ANSWER_RETRY:
            snprintf(out->message, sizeof(out->message), "%s", a.message);
            return POLL_RETRY;
        case WZ_ANSWER_UNKNOWN:
            snprintf(out->message, sizeof(out->message), "%s", a.message);
            out->code = WZ_EXIT_UNKNOWN;
            return POLL_FATAL;
        case WZ_ANSWER_REFUSED:
        case WZ_ANSWER_NOT_MODIFIED: /* never to a plain GET */
            snprintf(out->message, sizeof(out->message), "%s", a.message);
            out->code = WZ_EXIT_USAGE;
            return POLL_FATAL;
        }
        /* Out of memory here only costs the held request: a sleep instead. */
        out->etags[i] = a.etag[0] ? strdup(a.etag) : NULL;

        wz_assessment as;
        int rc = wz_assess(wf, a.doc, o->steps, o->nsteps, r->date, o->local, &as);
        if (rc != 0) {
            cJSON_Delete(a.doc);
            snprintf(out->message, sizeof(out->message), "out of memory");
            out->code = WZ_EXIT_INTERNAL;
            return POLL_FATAL;
        }
        if ((as.verdict == WZ_WAITING || as.verdict == WZ_FAILED) && !r->no_history) {
            poll_result res = read_history(r, client, wf, a.doc, deadline, &as, out);
            if (res != POLL_READY) {
                cJSON_Delete(a.doc);
                wz_assessment_free(&as);
                return res;
            }
        }
        cJSON_Delete(a.doc);
        out->verdicts[i] = as.verdict;
        switch (as.verdict) {
        case WZ_UNKNOWN:
            snprintf(out->message, sizeof(out->message), "%s", as.summary);
            out->code = WZ_EXIT_UNKNOWN;
            wz_assessment_free(&as);
            return POLL_FATAL;
        case WZ_INVALID: /* Batchy never answers that: not Batchy */
            snprintf(out->message, sizeof(out->message), "%s; check --url", as.summary);
            out->code = WZ_EXIT_USAGE;
            wz_assessment_free(&as);
            return POLL_FATAL;
        case WZ_FAILED:
            failed = 1;
            if (!out->failure) {
                out->failure = as.failure;
                as.failure = NULL;
            }
            waiting = 1;
            break;
        case WZ_WAITING:
            waiting = 1;
            break;
        case WZ_READY:
            break;
        }
        if (join(&out->line, as.summary) != 0) {
            wz_assessment_free(&as);
            snprintf(out->message, sizeof(out->message), "out of memory");
            out->code = WZ_EXIT_INTERNAL;
            return POLL_FATAL;
        }
        wz_assessment_free(&as);
    }
    return failed ? POLL_FAILED : waiting ? POLL_WAITING : POLL_READY;
}

static void list_workflows(const wz_options *o, char *out, size_t len)
{
    size_t j = 0;
    out[0] = '\0';
    for (size_t i = 0; i < o->nworkflows && j + 1 < len; i++) {
        int n = snprintf(out + j, len - j, "%s%s", i ? ", " : "", o->workflows[i]);
        if (n < 0 || (size_t)n >= len - j) {
            snprintf(out + len - 4, 4, "...");
            break;
        }
        j += (size_t)n;
    }
}

/* Run the command in place of waitsy, so that its exit status (and its
 * signals) are waitsy's. The caller has released the connection and
 * libcurl. Returns only when the command could not be started, or a stop
 * signal came first. */
static int exec_command(const run *r)
{
    fflush(stdout);
    fflush(stderr);
    if (restore_signals())
        return interrupted(r);
    execvp(r->o->command[0], r->o->command);
    int code = errno == ENOENT ? WZ_EXIT_NOT_FOUND : WZ_EXIT_CANNOT_EXEC;
    error(r, "cannot run %s: %s; exit %d", r->o->command[0], strerror(errno), code);
    return code;
}

/* Wait for the next poll, due at `poll_at`, on held get_status requests
 * of `wf` with If-None-Match: `etag` (what the last poll read), rather
 * than in a sleep: a change wakes waitsy at once (*changed = 1), unless
 * the last poll a change brought on began at `change_polled`, less than
 * WZ_MIN_INTERVAL ago. wz_after_hold decides what each answer means;
 * whatever happens, the next poll comes no later than `poll_at` (a held
 * request ends by then, give or take rounding to whole seconds), and
 * never in a tight loop. Never past `deadline`. Returns 1 when a signal
 * came. */
static int await_change(run *r, wz_client *client, const char *wf, const char *etag,
                        double change_polled, double poll_at, double deadline, int *changed)
{
    *changed = 0;
    for (;;) {
        double now = monotonic();
        long wait = wz_hold_seconds(poll_at - now, deadline - now);
        if (wait == 0)
            break;
        double budget = wait + WZ_HOLD_MARGIN;
        if (budget > deadline - now) /* at least `wait`: see wz_hold_seconds */
            budget = deadline - now;
        wz_answer a;
        wz_fetch_status_held(client, wf, etag, wait, budget, &a);
        debug(r, "GET %s/get_status/%s?wait=%ld -> %ld, %zu bytes in %.1f ms",
              wz_client_url(client), wf, wait, a.status, a.bytes, a.seconds * 1000);
        if (a.kind == WZ_ANSWER_INTERRUPTED)
            return 1;
        wz_held held = WZ_HELD_FAILED;
        if (a.kind == WZ_ANSWER_NOT_MODIFIED)
            held = WZ_HELD_UNCHANGED;
        else if (a.kind == WZ_ANSWER_OK && wz_etag_changed(etag, a.etag))
            held = WZ_HELD_CHANGED;
        else if (a.kind == WZ_ANSWER_OK)
            debug(r,
                  "get_status/%s?wait=%ld answered 200 without a new ETag: not held; sleeping "
                  "until the next poll",
                  wf, wait);
        else
            debug(r, "%s; sleeping until the next poll", a.message);
        now = monotonic();
        double pause = wz_after_hold(held, wait, a.seconds, now - change_polled, poll_at - now);
        *changed = held == WZ_HELD_CHANGED;
        if (pause < 0) /* WZ_HOLD_AGAIN */
            continue;
        if (pause > deadline - now)
            pause = deadline - now;
        return pause > 0 && sleep_for(pause);
    }
    double rest = (poll_at < deadline ? poll_at : deadline) - monotonic();
    return rest > 0 && sleep_for(rest);
}

static int wait_loop(run *r, wz_client *client)
{
    wz_options *o = r->o;
    double deadline = o->timeout >= 0 ? r->started + o->timeout : INFINITY;
    double backoff = 1;
    unsigned long attempt = 0;
    char names[512], took[32];
    list_workflows(o, names, sizeof(names));
    /* When the last poll that a change brought on began: the next change
     * polls at once unless it comes within WZ_MIN_INTERVAL of that. */
    double change_polled = -INFINITY;
    int changed = 0;

    for (;;) {
        poll_state p;
        if (changed)
            change_polled = monotonic();
        poll_result res = poll_once(r, client, deadline, &p);
        if (res == POLL_INTERRUPTED || stop_signal) {
            poll_state_free(&p);
            return interrupted(r);
        }
        double pause = o->interval;
        switch (res) {
        case POLL_READY:
            info(r, "%s", p.line);
            duration(monotonic() - r->started, took);
            if (o->command)
                info(r, "ready: %s done for %s after %s; running %s", names, r->date, took,
                     o->command[0]);
            else
                info(r, "ready: %s done for %s after %s", names, r->date, took);
            poll_state_free(&p);
            return WZ_EXIT_READY;
        case POLL_FATAL: {
            int code = p.code;
            error(r, "%s; exit %d", p.message, code);
            poll_state_free(&p);
            return code;
        }
        case POLL_FAILED:
            if (o->fail_fast) {
                info(r, "%s", p.line);
                error(r, "failed: %s; exit %d", p.failure, WZ_EXIT_FAILED);
                poll_state_free(&p);
                return WZ_EXIT_FAILED;
            }
            /* Without --fail-fast a failed step may still be re-run. */
            __attribute__((fallthrough));
        case POLL_WAITING:
            info(r, "%s", p.line);
            attempt = 0;
            backoff = 1;
            break;
        case POLL_RETRY:
            r->no_history = 0; /* Batchy may be another one when it is back */
            attempt++;
            pause = backoff < o->interval ? backoff : o->interval;
            if (pause < 1)
                pause = 1;
            backoff *= 2;
            if (!o->once && monotonic() + pause <= deadline)
                error(r, "%s (attempt %lu); retrying in %.0f s", p.message, attempt, pause);
            else
                error(r, "%s", p.message);
            break;
        case POLL_INTERRUPTED:
        case POLL_NO_TIME:
            break;
        }
        /* Every workflow read, some not ready: the one to hold on. */
        const char *hold_wf = NULL;
        char etag[WZ_MAX_ETAG + 1] = "";
        if (res == POLL_WAITING || res == POLL_FAILED) {
            size_t i = wz_hold_target(p.verdicts, (const char *const *)p.etags, o->nworkflows);
            if (i < o->nworkflows) {
                hold_wf = o->workflows[i];
                snprintf(etag, sizeof(etag), "%s", p.etags[i]);
            }
        }
        poll_state_free(&p);

        if (o->once) {
            info(r, "not ready (--once); exit %d", WZ_EXIT_NOT_READY);
            return WZ_EXIT_NOT_READY;
        }
        double left = deadline - monotonic();
        if (left <= 0) {
            duration(monotonic() - r->started, took);
            error(r, "timed out after %s waiting for %s on %s; exit %d", took, names, r->date,
                  WZ_EXIT_TIMEOUT);
            return WZ_EXIT_TIMEOUT;
        }
        changed = 0;
        int stopped = hold_wf ? await_change(r, client, hold_wf, etag, change_polled,
                                             monotonic() + pause, deadline, &changed)
                              : sleep_for(pause < left ? pause : left);
        if (stopped)
            return interrupted(r);
    }
}

int main(int argc, char **argv)
{
    wz_options o;
    char why[512];
    if (wz_parse_args(argc, argv, getenv("BATCHY_URL"), getenv("BATCHY_TOKEN"), &o, why,
                      sizeof(why)) != 0) {
        fprintf(stderr, "waitsy: %s\nTry 'waitsy --help' for the options.\n", why);
        wz_options_free(&o);
        return WZ_EXIT_USAGE;
    }
    if (o.help || o.version) {
        fputs(o.help ? wz_help_text : "waitsy " WAITSY_VERSION "\n", stdout);
        wz_options_free(&o);
        return fflush(stdout) == 0 ? 0 : 1;
    }

    run r = {.o = &o, .started = monotonic()};
    if (o.date[0])
        memcpy(r.date, o.date, sizeof(r.date));
    else
        wz_date_of(wall_now(), o.local, r.date);

    if (install_signals() != 0) {
        fprintf(stderr, "waitsy: cannot create a pipe: %s\n", strerror(errno));
        wz_options_free(&o);
        return WZ_EXIT_INTERNAL;
    }
    CURLcode init = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (init != CURLE_OK) {
        fprintf(stderr, "waitsy: cannot start libcurl: %s\n", curl_easy_strerror(init));
        wz_options_free(&o);
        return WZ_EXIT_INTERNAL;
    }
    int code;
    wz_client *client = wz_client_create(o.url, o.token, should_stop, why, sizeof(why), &code);
    if (!client && code == WZ_EXIT_USAGE) {
        fprintf(stderr, "waitsy: %s: %s\nTry 'waitsy --help' for the options.\n",
                o.url_from_env ? "BATCHY_URL" : "--url", why);
    } else if (!client) {
        fprintf(stderr, "waitsy: %s\n", why);
    }
    if (!client) {
        curl_global_cleanup();
        wz_options_free(&o);
        return code;
    }
    debug(&r, "waiting for %zu workflow(s) on %s at %s, every %.1f s", o.nworkflows, r.date,
          wz_client_url(client), o.interval);

    code = wait_loop(&r, client);
    wz_client_free(client); /* the command inherits no connection */
    curl_global_cleanup();
    if (code == WZ_EXIT_READY && o.command)
        code = exec_command(&r);
    wz_options_free(&o);
    return code;
}
