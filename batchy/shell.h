/*
 * shell.h - the shell around the pure core (batchy.h): everything that
 * does I/O, keeps a clock or holds global state. Only the shell's files
 * include it.
 *
 *   options.c  command line and environment, Redis URLs
 *   cfgfile.c  workflow files on disk: reading one, and batchy --check
 *   resp.c     Redis commands of a call, built, and their replies, read:
 *              pure (no socket); unit-tested with hiredis's reader
 *   plan.lua   the write script (compare, then write every hash), which
 *              the build embeds (store.c loads it into Redis)
 *   connect.c  connections to Redis: straight, or through Sentinel
 *   store.c    the store thread: the one Redis connection, pipelined
 *   notice.c   the change notices: a subscribed Redis connection
 *   hold.c     held get_status requests and /events streams, and waking
 *              them when their workflow changes
 *   metrics.c  what GET /metrics shows: counters kept as relaxed atomics
 *   ui.c       the dashboard's files, embedded in the binary
 *   cache.c    what this process last wrote to each workflow
 *   page.c     answers made of pieces, sent as they are read, and the
 *              texts they are made of, shared by reference
 *   rows.c     each workflow's /workflows row and /metrics lines, kept
 *              while Redis says its hash is unchanged
 *   reads.c    get_status answers, kept the same way
 *   apply.c    the write protocol: read -> rule(now) -> compare-and-set
 *              write -> retry, and when to trust the cache
 *   api.c      the handlers, one per row of the endpoint table (batchy.h)
 *   watch.c    the slow-client watchdog and the access log
 *   http.c     libmicrohttpd glue: accept, parameters, bodies, auth,
 *              suspend and resume, answer
 *   main.c     start, signals, stop
 *
 * Threads, and what each owns:
 *   main      starts the others, waits for SIGINT/SIGTERM (blocked in
 *             every other thread), then stops them in order (main.c);
 *   workers   libmicrohttpd's pool (--threads): each owns the requests of
 *             its connections, from the first callback to on_completed,
 *             and runs their handlers; a worker never waits for Redis: a
 *             handler that needs a round trip suspends its connection;
 *   store     owns the Redis connection and every call between
 *             store_submit and its done callback, which resumes the
 *             connection (store.c);
 *   notice    owns the subscribed connection, and keeps hold.c's clock:
 *             held requests' deadlines, re-checks, streams' comments;
 *   watchdog  owns nothing but the watch list's deadlines it enforces,
 *             and writes the access log out (watch.c).
 * Shared between them: the cache (cache.c, one mutex), the store's queue
 * (one mutex), the watch list and the log buffer (watch.c, a mutex each),
 * the held requests and streams (hold.c, one mutex).
 */
#ifndef BATCHY_SHELL_H
#define BATCHY_SHELL_H

#include <stdatomic.h>

#include "batchy.h"

/* ------------------------------------------------------------------ options.c */

/* Where Redis is, from a redis://, unix:// or sentinel:// URL. */
#define BTY_SENTINELS_MAX 16
typedef struct bty_host {
    char host[256];
    int port;
} bty_host;
typedef struct bty_redis_target {
    int is_unix;
    char host[256];
    int port;
    char path[1024]; /* unix socket */
    char user[256];
    char password[512];
    int db;
    /* sentinel://: the master is where these say the master named so is
     * (host and port above unused) */
    int is_sentinel;
    char master[256];
    bty_host sentinels[BTY_SENTINELS_MAX];
    int nsentinels;
    char sentinel_password[512]; /* "": the sentinels take the URL's credentials */
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
    int client_timeout_s;              /* most a client may take to send one request */
    int max_connections;               /* HTTP connections at once (lowered to fit the fd limit) */
    long long keep_batches;            /* batch snapshots kept per workflow; 0: all */
    int metrics_steps;                 /* per-step series in /metrics (--metrics-steps) */
    char ui_dir[1024];                 /* "" or where the dashboard's files are (--ui-dir) */
    int read_cache_mb;                 /* get_status answers kept in memory (--read-cache-mb) */
    int min_replicas;                  /* replicas that must hold a write (--min-replicas) */
    int replica_timeout_ms;            /* how long to wait for them (--replica-timeout) */
    char changes_channel[BTY_KEY_MAX]; /* the redis URL's db's (key_changes_channel) */
    int check;                         /* --check: validate check_files (cfgfile.c), not serve */
    char *const *check_files;          /* argv's, check_count (at least 1) of them */
    int check_count;
} bty_options;

/* Fill opts from defaults, then the environment, then argv. Returns -1 to
 * go on, or an exit status after printing version/help (0) or a usage error
 * on stderr (64). The environment is read before argv but judged after it:
 * with --help, --version or --check a bad BATCHY_* value is no error, and
 * with --check the Redis URL is not parsed either. */
int options_parse(int argc, char **argv, bty_options *opts);

/* Parse a Redis URL: redis://[[user]:password@]host[:port][/db] or
 * unix:///path.sock[?db=N]. Returns 0, or -1 with a message in err. */
int options_parse_redis_url(const char *url, bty_redis_target *out, bty_error *err);

/* ------------------------------------------------------------------ cfgfile.c */

/* Read the workflow file open on fd, called `name` in messages, into a new
 * NUL-terminated buffer of *len bytes (the NUL not counted) that the
 * caller frees. NULL with err, whose message starts with "name: ": 404
 * not a regular file, 413 over CFG_MAX_BYTES, 409 it grew while read, 503
 * a read error or out of memory. fd stays open. */
char *cfg_file_read_fd(int fd, const char *name, size_t *len, bty_error *err);

/* batchy --check: read each of the n paths (as given, also the source
 * name in messages), parse it as load_cfg does (cfg_parse) and check that
 * its base name is <workflow>.yaml or .yml. Each problem is one line on
 * stderr ("path: reason" or "path:line:column: reason"); nothing for a
 * valid file. Touches neither Redis nor the network. Returns the exit
 * status: 0 when every file is valid, else 1. */
int cfg_check_files(char *const *paths, int n);

/* ------------------------------------------------------------------ resp.c
 * A store call: the Redis commands of one round trip, and their replies.
 * Building a call and reading its replies are pure (resp.c); sending it is
 * the store thread's (store.c). A worker builds a call (store_call_*),
 * hands it over (store_submit), and is told through the call's done
 * callback, on the store thread, when the replies are in; then it reads
 * them (store_*_result) and clears the call or builds the next one. */

typedef void (*store_done_fn)(void *arg);

/* What a call is, for what the store does when its answer is lost. */
enum store_call_kind {
    CALL_READ,   /* no effect: sent again once if Redis closed the connection */
    CALL_WRITE,  /* may have been applied: never sent twice */
    CALL_SCRIPT, /* the store's own SCRIPT LOAD after a SCRIPT FLUSH */
    CALL_TRACK,  /* the store's own CLIENT TRACKING, for a new subscription */
    CALL_WAIT,   /* the store's own WAIT for replicas, after writes (--min-replicas) */
};

/* One round trip. Lives in its owner's memory; between store_submit and
 * its done callback it belongs to the store thread and must not be
 * touched. Fields are private to resp.c and store.c. */
typedef struct store_call {
    struct store_call *next;
    int kind;       /* enum store_call_kind */
    char *commands; /* RESP, an sds string, owned */
    size_t len;
    int ncommands;
    int stride;     /* commands per result (store_call_reads), 0 or 1: one */
    void **replies; /* redisReply *, owned, ncommands entries */
    int nreplies;
    int resent;
    long long not_before_ms, deadline_ms;
    long long sent_us;  /* when it was sent (metrics) */
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
/* n HGETALLs in one round trip; read each with store_read_result_at.
 * With tracked, Redis tracks them (CLIENT CACHING yes before each). */
int store_call_reads(store_call *c, char *const *keys, size_t n, int tracked, bty_error *err);
/* EXISTS exists_key (key when NULL), then the members of an index: with
 * limit < 0 every member of set `key` (SMEMBERS); else up to limit + 1
 * members of sorted set `key` with a score below `before` (any when
 * before <= 0), highest first. Read with store_members_result. */
int store_call_members(store_call *c, const char *key, const char *exists_key, long long before,
                       long long limit, bty_error *err);
/* Apply a write plan atomically, with plan.lua. With expect (what
 * read_key held when the plan was computed from it), nothing is written if
 * read_key holds anything else now: with whole, in any field; without, in
 * the fields the plan writes into read_key (sorted in byte order, as
 * documents are). What it writes is announced on `channel` (notice.c).
 * The script's SHA is filled in as the call is sent (store_call_set_sha). */
int store_call_commit(store_call *c, const char *read_key, const bty_hash *expect, int whole,
                      const bty_write_plan *plan, long long keep_batches, const char *channel,
                      bty_error *err);
void store_call_set_sha(store_call *c, const char sha[40]);
/* A call of one command (argv form, as hiredis takes it): the store's own
 * SCRIPT LOAD. 0, or -1 with 503. */
int store_call_command(store_call *c, int kind, int argc, const char **argv, bty_error *err);
/* Free what a call holds; a cleared call is all zeros. */
void store_call_clear(store_call *c);
/* Mark a call failed as a whole with status and message (the store, when
 * Redis is unreachable or the answer was lost); store_call_forget_failure
 * undoes it before the call is sent again. */
void store_call_fail_with(store_call *c, int status, const char *message);
void store_call_forget_failure(store_call *c);

/* What a commit did. */
enum store_commit_outcome {
    COMMIT_FAILED = -1,  /* err set; 409 when a key is not a hash */
    COMMIT_WRITTEN,      /* as computed */
    COMMIT_WRITTEN_AMID, /* written, and other fields of the read key had
                            changed: *current is what it holds now */
    COMMIT_CHANGED,      /* nothing written: the read key holds something
                            else: *current */
    COMMIT_EXISTS,       /* nothing written: a WRITE_CREATE key exists;
                          *free_id is the first free batch id after it */
    COMMIT_AGAIN,        /* Redis had lost the script: read again and retry */
};

/* What a finished call says. Each returns -1 with err set when the call
 * failed (503: unreachable, timed out, stopping).
 * read: 0 with the hash (empty when the key does not exist; out owns the
 *   reply), -1 also for 409 when the key is not a hash;
 * ping: 0 when Redis answered;
 * commit: a store_commit_outcome; nothing was written unless
 *   COMMIT_WRITTEN or COMMIT_WRITTEN_AMID. *current (when given) is to be
 *   freed with store_hash_free. */
int store_read_result(store_call *c, bty_hash *out, bty_error *err);
/* The i-th HGETALL of a call (store_call_reads), as store_read_result. */
int store_read_result_at(store_call *c, int i, bty_hash *out, bty_error *err);
/* members: 0 with *exists (the EXISTS) and *members, n new strings in a
 * new array (the caller frees each and the array, also on error). */
int store_members_result(store_call *c, int *exists, char ***members, size_t *n, bty_error *err);
int store_ping_result(store_call *c, bty_error *err);
int store_commit_result(store_call *c, bty_hash *current, long long *free_id, bty_error *err);

/* The 503 for a Redis that cannot be reached (why says how). Returns -1. */
int store_unreachable(bty_error *err, const char *why);

/* ------------------------------------------------------------------ store.c
 * One Redis connection, owned by the store's thread, which sends the calls
 * of every worker together as one pipeline. */

/* Start the store thread; it connects on the first call. With
 * min_replicas, a write is answered only once that many replicas hold it
 * (WAIT, for at most replica_timeout_ms), else it fails with 503. 0, or
 * -1. */
int store_start(const bty_redis_target *target, int timeout_ms, int min_replicas,
                int replica_timeout_ms);
/* The server the store's connection is to (host:port, the socket's
 * path), or "" while it has none. */
void store_where(char *buf, size_t size);
/* A sentinel said the master moved: connect anew (to where the sentinels
 * say the master is now). */
void store_master_moved(void);
/* Fail every call under way or waiting (503, their done callbacks run),
 * and end the thread. Calls submitted afterwards fail at once. */
void store_stop(void);

/* What the tracking of reads is now: 0 when reads sent now are not
 * tracked (no subscription to redirect invalidations to, or tracking not
 * yet on for it); else a value that changes whenever the store's
 * connection or the subscription does. */
uint64_t store_track_epoch(void);

/* Hand a call to the store thread, to be sent no sooner than delay_us
 * from now; done(arg) runs on the store thread once its replies are in
 * or it failed (at once, on this thread, when the store is stopping). */
void store_submit(store_call *c, int delay_us, store_done_fn done, void *arg);

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

/* ------------------------------------------------------------------ notice.c
 * Change notices from Redis (plan.lua publishes each write's workflow). */

/* Start the notice thread; it subscribes, and subscribes again after
 * losing the connection, by itself. 0, or -1. */
int notice_start(const bty_redis_target *target, int timeout_ms);
void notice_stop(void);
/* done(arg), on the notice thread, once every invalidation Redis sent
 * before now has been taken in (rows.c); at once when not subscribed. */
void notice_fence(void (*done)(void *), void *arg);
/* Wake the thread: hold.c's clock has something due sooner. */
void notice_wake(void);
/* Redis is back (the store has reached it) or the master moved (a
 * sentinel said so): while not subscribed, try now, not when the back-off
 * says. */
void notice_retry_now(void);
/* 1 while subscribed. */
int notice_subscribed(void);
/* 1 while change notices come in (the changes channel is subscribed). */
int notice_changes_live(void);
/* The subscribed connection's client id, to redirect tracking's
 * invalidations to (CLIENT TRACKING ... REDIRECT), with *serial, which
 * changes each time the subscription is made or lost; 0 while not
 * subscribed. */
long long notice_client_id(uint64_t *serial);

/* ------------------------------------------------------------------ hold.c
 * Held get_status requests (waiters) and /events streams. The HTTP layer
 * suspends a connection and hands it here; hold.c resumes it when there
 * is something to answer or send. */

typedef void (*hold_conn_fn)(void *conn);
typedef struct hold_result hold_result;
typedef struct hold_group hold_group;
typedef struct hold_stream hold_stream;

/* Why a waiter was woken. */
enum hold_outcome {
    HOLD_CHANGED = 1, /* its key no longer has its ETag: result */
    HOLD_TIMEOUT,     /* its deadline passed: 304 */
    HOLD_FAILED,      /* the key could not be read: err */
    HOLD_STOPPING,    /* Batchy is stopping: 304 */
};

/* A held get_status, in its request's memory. */
typedef struct hold_waiter {
    /* Set before hold_add. */
    char workflow[BTY_KEY_MAX]; /* whose notices concern it */
    char key[BTY_KEY_MAX];      /* what it reads: <wf> or a snapshot */
    char etag[24];              /* held while the key's ETag is this */
    unsigned long long seq;     /* hold_seq(workflow) before that was read */
    long long deadline_ms;      /* CLOCK_MONOTONIC, as hold_now_ms */
    /* Set when it is woken, before its connection is resumed. */
    int outcome;         /* enum hold_outcome */
    hold_result *result; /* CHANGED: the answer, a reference (release
                            it), or NULL: read the key again */
    bty_error err;       /* FAILED */
    /* hold.c's own. */
    void *conn;
    struct hold_waiter *next, *prev, *wake_next;
    hold_group *group;
    size_t heap_index;
} hold_waiter;

/* The functions that suspend and resume a connection (http.c's). */
void hold_start(hold_conn_fn suspend, hold_conn_fn resume);
/* Hold w, whose connection conn is suspended, until it is woken: resumed,
 * with w->outcome set (at once when out of memory or stopping). */
void hold_add(hold_waiter *w, void *conn);
/* The count of notices for workflow so far: taken before a read, a waiter
 * added with an older one has its key read again at once. */
unsigned long long hold_seq(const char *workflow);
long long hold_now_ms(void);
/* A woken waiter's answer: get_status's 200 body and its ETag. */
const char *hold_result_body(const hold_result *r, size_t *len, const char **etag);
void hold_result_release(hold_result *r); /* NULL is fine */
/* The notice thread's: a notice for workflow; notices may have been lost
 * (read everything waited on); the clock, returning the milliseconds until
 * it is due again, or -1 when nothing is held or streamed. */
void hold_notice(const char *workflow);
void hold_resync(void);
long long hold_tick(void);
/* Stopping: wake every waiter (HOLD_STOPPING) and end every stream;
 * from now on waiters are woken at once and streams refused. */
void hold_stop(void);
/* 1 while requests are held or streams open: notices are wanted. */
int hold_listening(void);
/* How many requests are held and streams open. */
void hold_counts(size_t *held, size_t *streams);

/* An event stream following the workflows of names ("a,b"; NULL or "":
 * all). NULL with err: 400 for a bad name, 503. */
hold_stream *hold_stream_open(const char *names, bty_error *err);
/* Its response is queued on conn: events flow once its first line
 * (": batchy events") is sent, at once when notices come in already. */
void hold_stream_start(hold_stream *s, void *conn);
/* Notices come in now: streams waiting for that get their first line. */
void hold_streams_live(void);
/* The content reader: up to max bytes into buf, or 0 after suspending the
 * connection until there are some, or one of these: */
enum { HOLD_STREAM_END = -1, HOLD_STREAM_CUT = -2 };
long hold_stream_read(hold_stream *s, char *buf, size_t max);
/* Free it (its response is done). NULL is fine. */
void hold_stream_close(hold_stream *s);

/* ------------------------------------------------------------------ metrics.c
 * Counters for GET /metrics; each may be called from any thread, without a
 * lock. */

void metrics_start(void); /* at start: the process' start time */
/* A request answered: its endpoint (EP_COUNT: none), status and time;
 * timed 0 for a held request or a stream, whose time is the client's. */
void metrics_request(int endpoint, int status, long long us, int timed);
void metrics_redis_round_trip(long long us);
void metrics_redis_error(void);
void metrics_redis_connected(int up);
/* The whole page, Prometheus' text format 0.0.4; malloc'd, NULL when out
 * of memory. */
char *metrics_render(void);

/* ------------------------------------------------------------------ connect.c
 * Connections to Redis, straight or through Sentinel (connect.c's head
 * comment). Blocking, bounded by timeout_ms; for the store's and the
 * notice thread's own use. */
struct redisContext;
/* The Redis of t (through its sentinels: the master they name, if it says
 * it is one), authenticated; NULL with why set. *where: host:port, or the
 * socket's path, of the server connected to (or tried). */
struct redisContext *redis_connect(const bty_redis_target *t, int timeout_ms, char *where,
                                   size_t where_size, char *why, size_t size);
/* A sentinel of t, trying them from the first-th on, subscribed to
 * +switch-master; NULL with why set. *at: which one (redis_connect asks
 * it first from then on). */
struct redisContext *sentinel_subscribe(const bty_redis_target *t, int timeout_ms, int first,
                                        int *at, char *why, size_t size);

/* ------------------------------------------------------------------ ui.c
 * The dashboard's files (batchy/ui/), which the build embeds. */

/* The file `name` (index.html, app.css, app.js) as *text (malloc'd) and
 * its Content-Type: the binary's own, or with dir not "" read from there.
 * 0, or -1 with err set (404 for another name, 503 when it cannot be
 * read). */
int ui_file(const char *dir, const char *name, const char **type, char **text, bty_error *err);

/* ------------------------------------------------------------------ page.c
 * Answers made of pieces, sent as they are read, and the texts they are
 * made of. */

/* A text an answer is made of (a workflow's /workflows row, or its
 * /metrics lines), immutable once made and shared by reference between
 * rows.c, which remembers it, and the answers being sent. */
typedef struct page_text {
    atomic_uint refs;
    unsigned statuses;             /* a row: view_status_bit of its steps */
    size_t cut[VIEW_FAMILIES + 1]; /* lines: family f's are [cut[f], cut[f + 1]) */
    size_t len;
    char text[];
} page_text;
/* A copy of len bytes of text with one reference, and statuses and cut
 * (NULL: none); NULL when out of memory. */
page_text *page_text_make(const char *text, size_t len, unsigned statuses, const size_t *cut);
page_text *page_text_ref(page_text *t);
void page_text_release(page_text *t); /* NULL is fine */

/* An answer's body, sent as it is read (page.c's head comment). A piece
 * is text (borrowed, or owned by the page), or something of each of the
 * page's texts (a listing's, taken over), found as the page is read. Not
 * thread-safe: one connection's. */
typedef struct page_body page_body;
page_body *page_body_new(void);
/* Each returns 0, or -1 when out of memory, or for a NULL page (the page
 * is then to be freed). */
int page_body_add(page_body *p, const char *text, size_t len);
/* Add text, malloc'd, which the page frees with itself, or at once when
 * this fails. */
int page_body_own(page_body *p, char *text);
/* Take over n texts (the array and its references; NULL ones skipped). */
void page_body_texts(page_body *p, page_text **texts, size_t n);
/* Each text's lines of family f (a listing of /metrics lines). */
int page_body_lines(page_body *p, int f);
/* Each text with a step in one of the statuses `want` (view_status_bit;
 * 0: each text), separated by ',' (a listing of rows: a JSON array's items). */
int page_body_rows(page_body *p, unsigned want);
/* Copy the next bytes, max at most, into buf: how many (0 at the end). */
size_t page_body_read(page_body *p, char *buf, size_t max);
void page_body_free(page_body *p); /* NULL is fine */

/* ------------------------------------------------------------------ rows.c
 * The /workflows row of each workflow, with a fingerprint of the hash it
 * was made from. Thread-safe; bounded in bytes. */

/* A fingerprint of a hash's fields and values, whatever their order (Redis
 * may give a large hash's fields in another order after a rehash). */
uint64_t rows_fingerprint(const bty_hash *h);
/* What a listing wants of each workflow: its /workflows row, or its
 * /metrics lines. */
enum { ROWS_ROW, ROWS_METRICS };
/* When a read of a workflow was sent: what Redis' tracking said then
 * (rows.c's head comment). */
typedef track_stamp rows_stamp;
rows_stamp rows_stamp_now(const char *name);
/* Whether what a read of key stamped so made is still the key's. */
int rows_stamp_holds(const char *key, rows_stamp stamp);
/* If the row of `name` was made from a hash with this fingerprint: 1 with
 * a reference to what `which` wants of it in *out (and the row now trusted
 * as the read stamped *stamp is; NULL: not trusted); else 0. */
int rows_take(const char *name, uint64_t fingerprint, const rows_stamp *stamp, int which,
              page_text **out);
/* Remember the row and lines of `name` (references taken), made from a
 * read sent at *stamp (NULL: not tracked), and true until the Unix second
 * `until` (a step becomes late, or a day ends: view_workflow). */
void rows_put(const char *name, uint64_t fingerprint, page_text *json, page_text *lines,
              int64_t until, const rows_stamp *stamp);
/* If the row of `name` is trusted (made from a tracked read, and Redis has
 * said of no change since): 1 with a reference to what `which` wants of it
 * in *out; 0 when it must be read. */
int rows_trusted(const char *name, int which, page_text **out);
/* Redis said key changed (len bytes); or that everything did (FLUSHDB). */
void rows_invalidate(const char *key, size_t len);
void rows_invalidate_all(void);
/* Forget every row (at stop). */
void rows_stop(void);

/* ------------------------------------------------------------------ reads.c
 * get_status answers from memory, while Redis says their workflow is
 * unchanged (reads.c's head comment). Thread-safe; bounded. */

/* The budget in bytes (0: nothing is kept). */
void reads_setup(size_t budget_bytes);
/* 1 with a malloc'd copy of key's answer and its ETag (with its quotes)
 * when it is kept and trusted; else 0. */
int reads_get(const char *key, char **body, char etag[24]);
/* Keep key's answer, made from a read sent at stamp (copied; a stamp of
 * epoch 0, an untracked read, is not kept). */
void reads_put(const char *key, const char *body, const char *etag, rows_stamp stamp);
/* How many answers are kept, and the memory they take (/metrics). */
void reads_counts(size_t *entries, size_t *bytes_kept);
/* Forget every answer kept: tracking was lost (the store's connection or
 * the subscription), so none of them is trusted any more. */
void reads_clear(void);
/* Forget everything (at stop). */
void reads_stop(void);

/* ------------------------------------------------------------------ apply.c
 * The write protocol of open, close and fail (apply.c's head comment says
 * it whole). A handler calls apply_run on each of its runs until it
 * returns APPLY_DONE (a->change holds the change, written or, for a
 * retried close, nothing to write), APPLY_FAILED (err set) or APPLY_WAIT
 * (it built `call`, to be submitted after delay_us). */

/* What the protocol needs of a rule: the change of `doc` at `now` (doc
 * NULL when what <wf> holds could not be read, err saying why: a rule
 * that needs it returns -1 and leaves err as it is).
 * min_batch_id is for open (the id must be at least that); arg is the
 * rule's own (a close's parameters). */
typedef int (*apply_rule_fn)(const char *workflow, const cJSON *doc, bty_time now,
                             long long min_batch_id, const void *arg, bty_change *out,
                             bty_error *err);

/* The protocol's state, valid at every stage; all zeros to start. */
typedef struct bty_apply {
    int stage;    /* APPLY_START, then where the last round trip left it */
    int attempt;  /* reads (and immediate retries) so far */
    int delay_us; /* send the call no sooner than this from now */
    long long min_batch_id;
    long long keep_batches; /* batch snapshots Redis keeps (0: all), plan.lua */
    const char *channel;    /* where the write is announced (plan.lua); borrowed */
    int dry_run;            /* compute and answer, write nothing */
    bty_change change;      /* the change computed; owned */
    bty_hash base;          /* what <wf> held when change was computed; owned */
} bty_apply;

enum { APPLY_FAILED = -1, APPLY_DONE = 0, APPLY_WAIT = 1 };

int apply_run(bty_apply *a, store_call *call, const char *workflow, apply_rule_fn rule,
              const void *arg, bty_error *err);
/* After APPLY_DONE, once the answer is rendered from a->change.state: if
 * the change was written, remember what <wf> holds now (cache.c); takes
 * a->change.state. */
void apply_remember(bty_apply *a, const char *workflow);
void apply_free(bty_apply *a);

/* ------------------------------------------------------------------ api.c
 * The handlers. http.c fills an api_request as a request comes in, and
 * calls api_handle on each of the request's runs: the first, and one
 * after each round trip the handler asked for. */

/* What a handler returns: HANDLER_HOLD asks for its connection to be
 * held (hold_add, with u.read.hold) and the handler run again when woken;
 * HANDLER_YIELD, for the handler to be run again once the worker has
 * served its other connections (a long listing, made a slice at a time). */
enum {
    HANDLER_FAILED = -1,
    HANDLER_DONE = 0,
    HANDLER_WAIT = 1,
    HANDLER_HOLD = 2,
    HANDLER_YIELD = 3
};

/* A handler's answer. body is malloc'd and owned. */
typedef struct api_reply {
    int status;
    const char *content_type;
    char *body;
    char etag[24];       /* "" or the ETag header's value, quotes included */
    hold_stream *stream; /* an event stream (body NULL), owned */
    int ui;              /* a dashboard file: its security headers */
    page_body *page;     /* a body sent as it is read (body NULL), owned */
} api_reply;

/* A request as the handlers see it. The HTTP layer owns the parameters
 * (borrowed here) and the request; the handler owns `call` and its
 * endpoint's member of `u`, which api_request_free releases. */
typedef struct api_request {
    const bty_options *opts;
    const char *if_none_match; /* the request's header, or NULL; borrowed */
    int no_cache;              /* Cache-Control: no-cache (or Pragma): read Redis */
    bty_target target;
    char *const *names; /* the parameters, query and form, in order */
    char *const *values;
    size_t nparams;
    store_call call; /* the round trip the handler asked for */
    int fence;       /* with HANDLER_WAIT: not `call` but notice_fence */
    int delay_us;    /* send it no sooner than this from now */
    int runs;        /* how many times the handler has run before this one */
    union {
        struct {                    /* healthz, get_status */
            int reading;            /* call is the read of the key */
            int held;               /* hold is in hold.c, or was woken */
            long long wait_ms;      /* ?wait=, 0 for none */
            unsigned long long seq; /* hold_seq before the read */
            hold_waiter hold;       /* HANDLER_HOLD: what to wait for */
            int tracked;            /* the read is tracked (reads.c keeps its answer) */
            rows_stamp stamp;       /* taken before it was sent */
        } read;
        struct {
            hold_stream *stream; /* handed to the reply */
        } events;
        struct {
            bty_apply apply;
            cJSON *doc;     /* the file, as loaded; owned */
            int keep_state; /* ?keep=state */
        } load;
        struct {
            bty_apply apply;
            bty_end_params steps; /* step=, owned */
            bty_time to;          /* rewind: from_date= */
        } open;                   /* open_batch, rewind */
        struct {
            bty_apply apply;
            bty_end_params *params; /* owned */
        } end;                      /* close_batch, fail_batch */
        struct {
            char **members; /* owned, n entries: workflow names or batch ids */
            size_t n;
            /* workflows: what is wanted of each member, and the members
             * read (indexes into members) with their stamps */
            int stage;         /* workflows: fence, members, plan, reads, rows */
            int which;         /* ROWS_ROW (/workflows) or ROWS_METRICS */
            page_text **texts; /* references; NULL: a workflow gone */
            size_t *read_at, nread;
            size_t done; /* plan, rows: how many are, of this stage's */
            rows_stamp *stamps;
            long long limit, next; /* history: page size; the next page's before= */
        } list;                    /* workflows, history */
    } u;
} api_request;

/* Run the handler of req->target's endpoint: HANDLER_DONE with *out set,
 * HANDLER_FAILED with err set, or HANDLER_WAIT with req->call built. */
int api_handle(api_request *req, api_reply *out, bty_error *err);
void api_request_free(api_request *req);
/* The last value of parameter `name`, or NULL. */
const char *api_param(const api_request *req, const char *name);
/* The JSON error answer {"error": message}; body NULL on out of memory. */
void api_error_reply(api_reply *out, const bty_error *err);

/* ------------------------------------------------------------------ watch.c
 * Deadlines of slow clients, and the access log, kept by the watchdog
 * thread. */
typedef struct watch watch;
typedef struct watched watched;

/* Start the watchdog: connections get client_timeout_s for each request
 * and each answer; log lines go to stderr unless quiet. NULL on failure. */
watch *watch_start(int client_timeout_s, int quiet);
/* Stop the thread, write the log out, free. */
void watch_stop(watch *w);
/* A connection on socket fd started: its entry (NULL when out of memory:
 * then only libmicrohttpd's inactivity timeout applies to it). */
watched *watch_add(watch *w, int fd);
/* It closed: remove and free its entry (NULL is fine). The socket must
 * still be open. */
void watch_remove(watch *w, watched *c);
/* Whose turn it is on a connection: the client's (its deadline runs) or
 * batchy's (no deadline). NULL is fine. */
void watch_turn(watch *w, watched *c, int client_turn);
/* One access-log line: method, path, status, microseconds taken. */
void watch_log(watch *w, const char *method, const char *path, int status, long long us);

/* ------------------------------------------------------------------ http.c */

/* Start the HTTP server; returns an opaque handle or NULL (message on stderr). */
void *http_start(const bty_options *opts);
/* Stop accepting, and wait (10 s at most) for the requests in flight to be
 * answered. */
void http_drain(void *handle);
/* Answer what is left (the store must be stopped: its calls have failed),
 * stop, free everything. */
void http_stop(void *handle);

/* ------------------------------------------------------------------ main.c
 * A clock for the shell: now, in UTC, from the wall clock. */
bty_time clock_now(void);

#endif
