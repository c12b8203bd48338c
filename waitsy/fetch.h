/*
 * fetch.h - Waitsy's shell side: reading get_status (plain, or held until
 * the workflow changes) and history from Batchy over HTTP.
 */
#ifndef WAITSY_FETCH_H
#define WAITSY_FETCH_H

#include "waitsy.h"

/* 1 when the current request must stop (a signal arrived). */
typedef int (*wz_should_stop)(void);

typedef struct wz_client wz_client;

/* A client for Batchy at base `url` (a path prefix allowed), sending
 * `token` (NULL = none) as a bearer token. NULL with a reason in `why` and
 * the exit status in `exit_code` (64 for an unusable URL, 70 when out of
 * memory). curl_global_init must have been called. */
wz_client *wz_client_create(const char *url, const char *token, wz_should_stop should_stop,
                            char *why, size_t why_len, int *exit_code);
void wz_client_free(wz_client *c);

/* The base URL as messages show it: without user and password. */
const char *wz_client_url(const wz_client *c);

typedef enum wz_answer_kind {
    WZ_ANSWER_OK,           /* 200 with a JSON document in `doc` */
    WZ_ANSWER_NOT_MODIFIED, /* 304 to a held get_status: nothing changed */
    WZ_ANSWER_RETRY,        /* unreachable, timed out, 5xx, 408, 409, 429 */
    WZ_ANSWER_UNKNOWN,      /* 404 from Batchy: no such workflow */
    WZ_ANSWER_REFUSED,      /* anything else: not Batchy, wrong URL or token */
    WZ_ANSWER_INTERRUPTED,  /* should_stop said so */
} wz_answer_kind;

typedef struct wz_answer {
    wz_answer_kind kind;
    long status;                /* HTTP status, 0 when none came */
    cJSON *doc;                 /* owned, OK only */
    char etag[WZ_MAX_ETAG + 1]; /* the ETag header when wz_etag_usable, else "" */
    double seconds;
    size_t bytes;
    char message[768]; /* what went wrong, for every kind but OK */
} wz_answer;

/* GET <base>/get_status/<wf>, taking at most `budget` seconds, but at
 * least 1 and at most 30 (INFINITY: 30). A 404 is checked against
 * <base>/index: only Batchy's own 404 means an unknown workflow. Fills
 * `out`, out->etag too (what a held request sends back); the caller
 * deletes out->doc. */
void wz_fetch_status(wz_client *c, const char *wf, double budget, wz_answer *out);

/* GET <base>/get_status/<wf>?wait=<wait> with If-None-Match: <etag> (one
 * that wz_etag_usable accepts), taking at most `budget` seconds (more
 * than `wait`: Batchy answers 304 only after `wait` seconds). Fills `out`:
 * OK, a 200 (the workflow changed; its new ETag in out->etag, the body
 * not parsed, out->doc NULL: the poll that follows reads it); NOT_MODIFIED,
 * a 304; INTERRUPTED; anything else, RETRY, UNKNOWN (404) or REFUSED with
 * a message, all of which the caller only sleeps on. */
void wz_fetch_status_held(wz_client *c, const char *wf, const char *etag, long wait, double budget,
                          wz_answer *out);

/* GET <base>/history/<wf>?limit=<limit>&before=<before>, with the same
 * time limits. Sorted for a caller that has just read get_status/<wf>:
 * OK, a 200 with JSON (the caller checks that it is history); RETRY, as
 * for get_status except 409; UNKNOWN, a 404 or a 200 that is not JSON: a
 * server without history (an older Batchy, the original service);
 * REFUSED, any other answer. Fills `out`; the caller deletes out->doc. */
void wz_fetch_history(wz_client *c, const char *wf, long long before, long limit, double budget,
                      wz_answer *out);

/* POST <base>/<endpoint>/<wf> with a form of n names and values (each
 * escaped), with the time limits of wz_fetch_status. OK: a 200 with JSON
 * in out->doc (the caller deletes it); RETRY: unreachable, timed out, 5xx,
 * 408, 429 (the write may or may not have been applied); UNKNOWN: Batchy's
 * 404; REFUSED: any other answer, a 409 (stale batch_id, step not open)
 * among them, with Batchy's message. */
void wz_post(wz_client *c, const char *endpoint, const char *wf, const char *const *names,
             const char *const *values, size_t n, double budget, wz_answer *out);

#endif
