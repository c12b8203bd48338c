/*
 * shell.h - the shell around the pure core: options, the Redis store and
 * the HTTP server. Only options.c, store.c, http.c and main.c include it.
 */
#ifndef BATCHY_SHELL_H
#define BATCHY_SHELL_H

#include "batchy.h"

/* ------------------------------------------------------------------ options.c */

/* Where Redis is, from a redis:// or unix:// URL. */
typedef struct bty_redis_target {
    int is_unix;
    char host[256];
    int port;
    char path[1024]; /* unix socket */
    char user[256];
    char password[512];
    int db;
} bty_redis_target;

typedef struct bty_options {
    char listen_host[256];
    int listen_port;
    bty_redis_target redis;
    char redis_url[1024];
    char cfg_dir[1024];
    int threads;
    char token[256]; /* "" = no token required */
    int quiet;
    int redis_timeout_ms;
    int client_timeout_s; /* most a client may take to send one request */
    int max_connections;  /* HTTP connections at once (lowered to fit the fd limit) */
} bty_options;

/* Fill opts from defaults, then the environment, then argv. Returns -1 to
 * go on, or an exit status after printing version/help (0) or a usage error
 * on stderr (64). */
int options_parse(int argc, char **argv, bty_options *opts);

/* Parse a Redis URL: redis://[[user]:password@]host[:port][/db] or
 * unix:///path.sock[?db=N]. Returns 0, or -1 with a message in err. */
int options_parse_redis_url(const char *url, bty_redis_target *out, bty_error *err);

/* ------------------------------------------------------------------ store.c
 * One Redis connection, owned by the store's thread, which sends the calls
 * of every worker together as one pipeline. A worker never waits on it:
 * it builds a call (store_call_*), hands it over (store_submit), and is
 * told through the call's done callback, on the store thread, when the
 * replies are in; then it reads them (store_*_result) and clears the call
 * or builds the next one. */

/* Start the store thread; it connects on the first call. 0, or -1. */
int store_start(const bty_redis_target *target, int timeout_ms);
/* Fail every call under way or waiting (503, their done callbacks run),
 * and end the thread. Calls submitted afterwards fail at once. */
void store_stop(void);

typedef void (*store_done_fn)(void *arg);

/* One round trip. Lives in its owner's memory; between store_submit and
 * its done callback it belongs to the store thread and must not be
 * touched. Every field is private to store.c. */
typedef struct store_call {
    struct store_call *next;
    int kind;
    char *commands; /* RESP, an sds string, owned */
    size_t len;
    int ncommands;
    void **replies; /* redisReply *, owned, ncommands entries */
    int nreplies;
    int resent;
    long long not_before_ms, deadline_ms;
    bty_error *failure; /* set when the call failed as a whole; owned */
    char key[BTY_KEY_MAX];
    store_done_fn done;
    void *arg;
} store_call;

/* A hash as read, or as cached (cache.c); fields point into the reply or
 * the cache entry, both released by store_hash_free. */
typedef struct cache_entry cache_entry;
typedef struct bty_hash {
    bty_field *fields;
    size_t n;
    void *reply;         /* redisReply *, owned */
    cache_entry *cached; /* a reference, owned */
} bty_hash;

void store_hash_free(bty_hash *h);

/* Building a call replaces whatever the call held. Each returns 0, or -1
 * with 503 on out of memory. */
int store_call_read(store_call *c, const char *key, bty_error *err); /* HGETALL */
int store_call_ping(store_call *c, bty_error *err);
/* EXISTS of the snapshot keys of batches from..from+count-1. */
int store_call_first_free(store_call *c, const char *workflow, long long from, int count,
                          bty_error *err);
/* Apply a write plan atomically, in one script. With expect (the hash
 * read_key held when it was read), nothing is written if read_key holds
 * anything else now. */
int store_call_commit(store_call *c, const char *read_key, const bty_hash *expect,
                      const bty_write_plan *plan, bty_error *err);
/* Free what a call holds; a cleared call is all zeros. */
void store_call_clear(store_call *c);

/* Hand a call to the store thread, to be sent no sooner than delay_us
 * from now; done(arg) runs on the store thread once its replies are in
 * or it failed (at once, on this thread, when the store is stopping). */
void store_submit(store_call *c, int delay_us, store_done_fn done, void *arg);

/* What a commit did. */
enum store_commit_outcome {
    COMMIT_FAILED = -1, /* err set; 409 when a key is not a hash */
    COMMIT_WRITTEN,
    COMMIT_CHANGED, /* the read key holds something else: *current */
    COMMIT_EXISTS,  /* a WRITE_CREATE key exists */
    COMMIT_AGAIN,   /* Redis had lost the script: read again and retry */
};

/* What a finished call says. Each returns -1 with err set when the call
 * failed (503: unreachable, timed out, stopping).
 * read: 0 with the hash (empty when the key does not exist; out owns the
 *   reply), -1 also for 409 when the key is not a hash;
 * ping: 0 when Redis answered;
 * first_free: the first batch id whose snapshot does not exist;
 * commit: a store_commit_outcome; nothing was written unless
 *   COMMIT_WRITTEN. On COMMIT_CHANGED, *current (when given) holds what
 *   the read key holds now, to be freed with store_hash_free. */
int store_read_result(store_call *c, bty_hash *out, bty_error *err);
int store_ping_result(store_call *c, bty_error *err);
long long store_first_free_result(store_call *c, long long from, bty_error *err);
int store_commit_result(store_call *c, bty_hash *current, bty_error *err);

/* ------------------------------------------------------------------ cache.c
 * What this process last wrote to each workflow's hash: a guess at what
 * Redis holds, that a write with it as its expectation checks (store.c).
 * Thread-safe; bounded in bytes. */

/* The hash of workflow after plan is applied to base (n fields): a new
 * entry, or NULL when the plan does not write the workflow, the entry
 * would be too large, or memory ran out. doc (consumed; may be NULL) is
 * the same hash as a document (doc_from_hash's form), kept if it fits. */
cache_entry *cache_entry_after(const char *workflow, const bty_field *base, size_t n,
                               const bty_write_plan *plan, cJSON *doc);
/* An entry's document, read-only, or NULL. */
const cJSON *cache_doc(const cache_entry *e);
/* Store e (taking the reference) as workflow's, replacing any older. */
void cache_put(cache_entry *e);
/* 1 with out referencing the cached hash of workflow, else 0. */
int cache_get(const char *workflow, bty_hash *out);
void cache_forget(const char *workflow);
void cache_release(cache_entry *e); /* NULL is fine */
void cache_clear(void);

/* ------------------------------------------------------------------ http.c */

/* Start the HTTP server; returns an opaque handle or NULL (message on stderr). */
void *http_start(const bty_options *opts);
/* Stop accepting, and wait (10 s at most) for the requests in flight to be
 * answered. */
void http_drain(void *handle);
/* Answer what is left (the store must be stopped: its calls have failed),
 * stop, free everything. */
void http_stop(void *handle);

#endif
