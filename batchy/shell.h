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
 * One Redis connection per worker thread, created on first use, dropped on
 * any connection error and created again by the next call. */

void store_init(const bty_redis_target *target, int timeout_ms);
void store_shutdown(void);

/* A hash as read; fields point into the reply, freed by store_hash_free. */
typedef struct bty_hash {
    bty_field *fields;
    size_t n;
    void *reply; /* redisReply *, owned */
} bty_hash;

void store_hash_free(bty_hash *h);

/* PING. 0 when Redis answers, else -1 with 503. */
int store_ping(bty_error *err);

/* Read hash `key` in one round trip. With watch set, the key is WATCHed
 * first so that the next store_commit on this thread fails if another
 * client changed it in between. -1 with err (503 unreachable, 409 wrong
 * type). */
int store_read(const char *key, int watch, bty_hash *out, bty_error *err);

/* Apply a write plan atomically (MULTI, one EVALSHA of the plan script,
 * EXEC), one round trip. Returns 1 when written, 0 when a watched key
 * changed (nothing written: read again and retry), 2 when a WRITE_CREATE
 * key exists (nothing written), -1 with err. */
int store_commit(const bty_write_plan *plan, bty_error *err);

/* The first batch id from `from` on (of `count`) whose snapshot key does
 * not exist, in one round trip; from + count when all do. -1 with err. */
long long store_first_free_batch(const char *workflow, long long from, int count, bty_error *err);

/* ------------------------------------------------------------------ http.c */

/* Start the HTTP server; returns an opaque handle or NULL (message on stderr). */
void *http_start(const bty_options *opts);
/* Stop accepting, finish requests in flight, free everything. */
void http_stop(void *handle);

#endif
