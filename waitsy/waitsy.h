/*
 * waitsy.h - Waitsy, the command-line waiter (SPEC sections 7, 9 and 10):
 * poll Batchy's get_status, and its history when that is not enough, until
 * every awaited step of every named workflow succeeded on the target day,
 * then exit 0 or run a command. Between polls, wait on a held get_status
 * (SPEC section 10) when Batchy offers one, so that a change wakes it at
 * once; else sleep.
 *
 *   pure (no I/O, no clock; unit-tested):
 *     args.c   command line -> options, the help text
 *     ready.c  workflow documents and history pages -> readiness verdict,
 *              the progress line, which history page to read next; what
 *              to hold on between polls, for how long, and what its
 *              answer means for the next poll
 *   shell:
 *     fetch.c  one GET of get_status (plain or held) or of a history page
 *              through libcurl
 *     main.c   the poll loop: clock, sleep, signals, output, exec
 *
 * Times, name checks and bounds come from Batchy's pure core (batchy.h).
 * Ownership as in Batchy: *_free releases what *_parse / *_assess fill in.
 */
#ifndef WAITSY_H
#define WAITSY_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "batchy.h"

#define WAITSY_VERSION BATCHY_VERSION

/* Exit statuses (SPEC section 7). With `-- command` the command's own status
 * replaces EXIT_READY; when it cannot be started, 126 or 127 as in a shell. */
enum {
    WZ_EXIT_READY = 0,
    WZ_EXIT_FAILED = 1,    /* an awaited step failed on the target day (--fail-fast) */
    WZ_EXIT_TIMEOUT = 2,   /* --timeout passed */
    WZ_EXIT_NOT_READY = 3, /* --once and not ready */
    WZ_EXIT_UNKNOWN = 4,   /* unknown workflow or step */
    WZ_EXIT_USAGE = 64,    /* bad command line, or a URL or token Batchy refuses */
    WZ_EXIT_INTERNAL = 70, /* out of memory, no pipe: nothing the user did */
    WZ_EXIT_CANNOT_EXEC = 126,
    WZ_EXIT_NOT_FOUND = 127,
    WZ_EXIT_SIGINT = 130,
    WZ_EXIT_SIGTERM = 143,
};

/* Bounds, so that no command line or answer can make Waitsy grow without
 * limit. */
#define WZ_MAX_WORKFLOWS 256
#define WZ_MAX_STEPS     1024       /* names given with --step */
#define WZ_MAX_URL       2048       /* --url */
#define WZ_MAX_TOKEN     4096       /* --token */
#define WZ_MAX_BODY      (32 << 20) /* one get_status answer */
#define WZ_MAX_INTERVAL  86400.0    /* seconds */
#define WZ_MIN_INTERVAL  0.1
#define WZ_MAX_TIMEOUT   (366.0 * 86400.0)
#define WZ_DEFAULT_URL   "http://127.0.0.1:5000"

/* ------------------------------------------------------------------ args.c */
typedef enum wz_verbosity { WZ_QUIET = -1, WZ_NORMAL = 0, WZ_VERBOSE = 1 } wz_verbosity;

typedef struct wz_options {
    const char *workflows[WZ_MAX_WORKFLOWS]; /* borrowed from argv; no duplicates */
    size_t nworkflows;
    char *steps[WZ_MAX_STEPS]; /* owned copies (split at commas); none = all steps */
    size_t nsteps;
    const char *url;   /* borrowed from argv or the environment */
    int url_from_env;  /* url is BATCHY_URL's: messages must say so */
    const char *token; /* NULL = none; borrowed */
    char date[11];     /* "YYYY-MM-DD", or "" for today */
    int local;
    double interval; /* seconds */
    double timeout;  /* seconds; < 0 = none */
    int fail_fast;
    int once;
    wz_verbosity verbosity;
    char *const *command; /* argv after "--"; NULL = none */
    int help;
    int version;
} wz_options;

/* Parse argv (argv[0] is the program) with `env_url` and `env_token` from
 * BATCHY_URL and BATCHY_TOKEN (NULL when unset). Returns 0, or -1 with a
 * one-line reason in `why` (a usage error). With --help or --version, only
 * `help` / `version` is meaningful. Call wz_options_free either way. */
int wz_parse_args(int argc, char *const argv[], const char *env_url, const char *env_token,
                  wz_options *out, char *why, size_t why_len);
void wz_options_free(wz_options *o);

/* The text of --help. */
extern const char wz_help_text[];

/* Write a one-line reason into why (printf-style); returns -1, so that
 * callers can write `return wz_why(why, why_len, "...")`. */
__attribute__((format(printf, 3, 4))) int wz_why(char *why, size_t why_len, const char *fmt, ...);

/* ------------------------------------------------------------------ ready.c */

/* Text from a server (step names, statuses, error messages, a redirect's
 * Location), made safe for a terminal line: control characters become
 * spaces; C1 controls, bidirectional overrides and invalid UTF-8 become
 * '?'; more than `max` bytes are cut on a character boundary and end in
 * "...". `out` must hold max + 4 bytes. */
void wz_clean(const char *text, size_t max, char *out);

/* The calendar date "YYYY-MM-DD" of t: in UTC, or with `local` in the
 * process's time zone (TZ). */
void wz_date_of(bty_time t, int local, char out[11]);

/* "HH:MM:SS" of t (UTC or local), or "YYYY-MM-DD HH:MM:SS" when t is not on
 * `date`: how times appear in progress lines. */
void wz_clock_of(bty_time t, int local, const char *date, char out[20]);

typedef enum wz_verdict {
    WZ_READY,   /* every awaited step succeeded on the target day */
    WZ_WAITING, /* some did not, yet */
    WZ_FAILED,  /* an awaited step failed on the target day */
    WZ_UNKNOWN, /* a --step names no step of the workflow, or it has none */
    WZ_INVALID, /* the answer is not a workflow document */
} wz_verdict;

/* How one workflow stands, for one poll. */
typedef struct wz_assessment {
    wz_verdict verdict;
    size_t awaited; /* steps awaited */
    size_t done;    /* of those, succeeded on the target day */
    char *summary;  /* owned: "wf1: 2/3 steps done for 2026-11-23; waiting on ...",
                       or for UNKNOWN and INVALID why */
    char *failure;  /* owned, FAILED only: "wf1: step x failed at 06:10:00 (...)" */
} wz_assessment;

/* Assess workflow `wf` from its get_status document `doc` for the steps
 * named in steps[0..nsteps) (all when nsteps is 0), on day `date`
 * ("YYYY-MM-DD"), reading batch times in UTC or, with `local`, local time.
 * A step is done when its latest record has status "success" and a
 * batch_end on that day. Returns 0, or -1 when out of memory. */
int wz_assess(const char *wf, const cJSON *doc, char *const *steps, size_t nsteps, const char *date,
              int local, wz_assessment *out);
void wz_assessment_free(wz_assessment *a);

/* History (GET /history/<wf>?limit=N&before=ID, SPEC section 9): with it,
 * a step is also done when any batch of it kept in history succeeded on
 * the day. Pages come newest first; a batch's id is the Unix second it
 * opened, or a little later (one more than the previous id when two opens
 * share a second). A batch that succeeded on the day opened before the
 * day ended and, allowing a day for one that ran over midnight, after the
 * day before began: only ids from `from` up to the end of the day after
 * are read (a day's margin on the later side too, for ids pushed ahead). */
#define WZ_HISTORY_FIRST_PAGE 100  /* batches asked for first: three days of hourly ones */
#define WZ_HISTORY_MAX_PAGE   1000 /* Batchy's largest limit */
#define WZ_HISTORY_MAX_PAGES  20   /* pages read per workflow and poll, at most */

typedef struct wz_history {
    char date[11]; /* the target day, and how its batch_end dates are read */
    int local;
    long long from;   /* batches with a lower id cannot concern the day */
    int more;         /* 1 while a page is still to be read: */
    long long before; /*   its before= */
    long limit;       /*   and its limit= */
    int pages;        /* pages read so far */
    size_t found;     /* steps in `succeeded` */
    cJSON *succeeded; /* owned: {step: true} for each step with a success on the day */
} wz_history;

typedef enum wz_page_verdict {
    WZ_PAGE_MORE,    /* read the page h->before, h->limit next */
    WZ_PAGE_DONE,    /* no other page can hold a success on the day */
    WZ_PAGE_INVALID, /* not a history answer: nothing was taken from it */
    WZ_PAGE_OOM,
} wz_page_verdict;

/* Start reading history for `date` (UTC, or local time with `local`):
 * fills h, whose first page is before=h->before, limit=h->limit (h->more
 * is 0 when no batch can concern that day). Call wz_history_free. */
void wz_history_start(wz_history *h, const char *date, int local);

/* Take one history page (the parsed answer): note the steps that
 * succeeded on the day, and say whether an older page is still needed
 * (not when this one is the last, reaches ids below h->from, or after
 * WZ_HISTORY_MAX_PAGES pages). */
wz_page_verdict wz_history_read(wz_history *h, const cJSON *page);
void wz_history_free(wz_history *h);

/* wz_assess, also counting as done each awaited step that `history`
 * (NULL: none) shows succeeded on the day, whatever its latest record
 * says. The other steps are judged by their latest record, as wz_assess
 * does: a failure too (failed, with batch_end on the day). */
int wz_assess_history(const char *wf, const cJSON *doc, const wz_history *history,
                      char *const *steps, size_t nsteps, const char *date, int local,
                      wz_assessment *out);

/* ------------------------------------------------------------------ ready.c: held requests */

/* Between two polls, waitsy may wait on GET get_status/<wf>?wait=S with
 * If-None-Match: <the ETag of the last poll's answer> (SPEC section 10):
 * Batchy answers 200 as soon as the workflow changes, or 304 after S
 * seconds. Waitsy then polls as always (a full poll decides readiness),
 * so a held request only chooses *when* to poll, never what is ready.
 * A server without ETags (an older Batchy, the original service) is
 * polled every --interval, as before. */
#define WZ_HOLD_MAX    600    /* seconds: the largest wait= Batchy takes */
#define WZ_HOLD_MARGIN 5.0    /* seconds a held request may take past its wait= */
#define WZ_HOLD_EARLY  0.5    /* a 304 this much sooner than wait= came early */
#define WZ_MAX_ETAG    128    /* bytes of an ETag kept and sent back */
#define WZ_HOLD_AGAIN  (-1.0) /* wz_after_hold: send another held request */

/* 1 when `etag` (NULL: none) is an entity tag fit to send back in
 * If-None-Match: "..." or W/"...", printable ASCII without '"' inside, at
 * most WZ_MAX_ETAG bytes. Anything else (no header, a header that could
 * smuggle a line into ours) means: no held requests with that answer. */
int wz_etag_usable(const char *etag);

/* 1 when a 200 to a held request sent with `sent` really says the
 * workflow changed: its ETag `got` is usable and differs. A 200 with the
 * same ETag (or none) is a server that ignores If-None-Match: waking on it
 * would poll in a tight loop. */
int wz_etag_changed(const char *sent, const char *got);

/* Which workflow to hold on after a poll that read every workflow, with
 * verdicts[i] and the ETag etags[i] (NULL: none) of each: the first that
 * is not ready (WAITING or FAILED), since waitsy cannot be ready before
 * it changes. Returns n (do not hold: sleep) when every one is ready, or
 * when that first one came without a usable ETag. */
size_t wz_hold_target(const wz_verdict *verdicts, const char *const *etags, size_t n);

/* The wait= of a held request sent `until_poll` seconds before the next
 * poll is due and `until_deadline` seconds before --timeout's deadline
 * (INFINITY: none): until_poll rounded up to whole seconds (wait= has no
 * fractions), within 1..WZ_HOLD_MAX, but rounded down to end by the
 * deadline. 0 when no request can be held: the poll is due, or the
 * deadline is less than a second away (then waitsy sleeps, as before). */
long wz_hold_seconds(double until_poll, double until_deadline);

/* How a held request ended, for wz_after_hold. */
typedef enum wz_held {
    WZ_HELD_CHANGED,   /* 200 with a new ETag: the workflow changed */
    WZ_HELD_UNCHANGED, /* 304 */
    WZ_HELD_FAILED,    /* anything else: unreachable, 4xx, 5xx, timed out */
} wz_held;

/* What to do after a held request sent with wait=`wait` ended as `held`
 * after `took` seconds, now that `since_poll` seconds passed since the
 * last poll a change brought on began (INFINITY: none) and the next is due
 * in `until_poll` seconds (<= 0: due). Returns the seconds to sleep before polling (0: poll at
 * once), or WZ_HOLD_AGAIN (a 304 at the end of a wait= that the 600 s cap or the deadline cut short
 * of the next poll): CHANGED    at once, but not sooner than WZ_MIN_INTERVAL after the last poll a
 * change brought on began, so that a workflow that changes all the time costs what --interval 0.1
 * costs, not a tight loop; UNCHANGED  early (a server stopping, or one that ignores wait=): sleep
 *              until the poll is due; else poll when it is due (at once,
 *              or after less than a second), or hold again;
 *   FAILED     sleep until the poll is due, as without held requests. */
double wz_after_hold(wz_held held, long wait, double took, double since_poll, double until_poll);

#endif
