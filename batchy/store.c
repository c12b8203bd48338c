/*
 * store.c - where Redis is touched. Nothing else in Batchy talks to Redis.
 *
 * Each worker thread has its own connection (a pthread key, so the
 * connection is closed when the thread ends), created on first use with
 * connect and command timeouts, and dropped after any error so that the
 * next call connects again: Redis going away costs a 503, not a restart.
 *
 * A call is one read round trip (UNWATCH, WATCH key, HGETALL key) and one
 * write round trip (MULTI, EVALSHA plan-script, EXEC). The plan script
 * checks that every key it writes is a hash (or absent) before writing any,
 * so a write is never half applied; WATCH makes EXEC fail if a concurrent
 * call changed the workflow after we read it, and the caller retries.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "shell.h"

/* KEYS: the hashes. ARGV: per key its bty_write_mode (0 merge, 1 replace,
 * 2 create), field count, then field/value pairs. Every key is checked
 * before any is written. HSET is called in chunks because Lua's unpack has
 * a limit on the number of values. */
static const char plan_script[] =
    "local a = 1\n"
    "for _, k in ipairs(KEYS) do\n"
    "  local t = redis.call('TYPE', k).ok\n"
    "  if t ~= 'hash' and t ~= 'none' then\n"
    "    return redis.error_reply('WRONGTYPE key ' .. k .. ' is a ' .. t .. ', not a hash')\n"
    "  end\n"
    "  if ARGV[a] == '2' and t ~= 'none' then\n"
    "    return redis.error_reply('BATCHY_EXISTS ' .. k)\n"
    "  end\n"
    "  a = a + 2 + 2 * tonumber(ARGV[a + 1])\n"
    "end\n"
    "a = 1\n"
    "for _, k in ipairs(KEYS) do\n"
    "  local n = tonumber(ARGV[a + 1])\n"
    "  if ARGV[a] == '1' then redis.call('DEL', k) end\n"
    "  a = a + 2\n"
    "  local i = 0\n"
    "  while i < n do\n"
    "    local m = math.min(n - i, 500)\n"
    "    redis.call('HSET', k, unpack(ARGV, a + 2 * i, a + 2 * (i + m) - 1))\n"
    "    i = i + m\n"
    "  end\n"
    "  a = a + 2 * n\n"
    "end\n"
    "return 'OK'\n";

static bty_redis_target store_target;
static struct timeval store_timeout;
static pthread_key_t conn_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* A worker thread's connection and the SHA of the plan script as that
 * Redis loaded it. Owned by the thread (freed by conn_destroy). */
typedef struct store_conn {
    redisContext *ctx;
    char plan_sha[41];
} store_conn;

static void conn_destroy(void *p)
{
    store_conn *conn = p;
    if (!conn)
        return;
    redisFree(conn->ctx);
    free(conn);
}

static void make_key(void)
{
    pthread_key_create(&conn_key, conn_destroy);
}

void store_init(const bty_redis_target *target, int timeout_ms)
{
    pthread_once(&key_once, make_key);
    store_target = *target;
    store_timeout.tv_sec = timeout_ms / 1000;
    store_timeout.tv_usec = (timeout_ms % 1000) * 1000;
}

/* Drop this thread's connection: the next call connects anew. */
static void drop(void)
{
    conn_destroy(pthread_getspecific(conn_key));
    pthread_setspecific(conn_key, NULL);
}

void store_shutdown(void)
{
    drop();
}

static int unreachable(bty_error *err, const char *why)
{
    return bty_error_set(err, 503,
                         "Redis is unreachable (%.200s); Batchy retries by itself, "
                         "try again shortly",
                         why);
}

/* Run one setup command on a fresh connection; 0 when it answered OK. */
static int setup_command(redisContext *c, bty_error *err, const char *what, int argc,
                         const char **argv)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (!r)
        return unreachable(err, c->errstr);
    int bad = r->type == REDIS_REPLY_ERROR;
    if (bad)
        bty_error_set(err, 503, "Redis refused %s: %.200s", what, r->str);
    freeReplyObject(r);
    return bad ? -1 : 0;
}

/* This thread's connection, connected, authenticated and with the plan
 * script loaded; NULL with err set. *reused tells whether it served an
 * earlier call (and so may have died since, with a Redis restart). */
/* 1 when Redis has closed this idle connection (a restart, a timeout of
 * idle clients): it has nothing to say between our commands, so anything
 * to read, or a hang-up, means it is gone. */
static int closed_by_redis(const redisContext *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLRDHUP};
    return poll(&p, 1, 0) != 0;
}

static store_conn *connection(bty_error *err, int *reused)
{
    store_conn *conn = pthread_getspecific(conn_key);
    /* Checked before use, so that the first write after a Redis restart
     * goes out on a new connection instead of being lost with the old one
     * (an error that would have to say "may or may not have been
     * applied"). A close racing this check is still caught by the reads'
     * retry. */
    if (conn && closed_by_redis(conn->ctx)) {
        drop();
        conn = NULL;
    }
    *reused = conn != NULL;
    if (conn)
        return conn;
    redisContext *c;
    if (store_target.is_unix)
        c = redisConnectUnixWithTimeout(store_target.path, store_timeout);
    else
        c = redisConnectWithTimeout(store_target.host, store_target.port, store_timeout);
    if (!c || c->err) {
        unreachable(err, c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, store_timeout);
    if (!store_target.is_unix)
        redisEnableKeepAlive(c);

    char db[16];
    snprintf(db, sizeof(db), "%d", store_target.db);
    const char *auth1[] = {"AUTH", store_target.password};
    const char *auth2[] = {"AUTH", store_target.user, store_target.password};
    const char *select[] = {"SELECT", db};
    const char *load[] = {"SCRIPT", "LOAD", plan_script};
    conn = calloc(1, sizeof(*conn));
    int failed = !conn;
    if (failed)
        bty_error_set(err, 503, "out of memory connecting to Redis");
    if (!failed && store_target.password[0]) {
        if (store_target.user[0])
            failed = setup_command(c, err, "AUTH", 3, auth2);
        else
            failed = setup_command(c, err, "AUTH", 2, auth1);
    }
    if (!failed && store_target.db)
        failed = setup_command(c, err, "SELECT", 2, select);
    if (!failed) {
        redisReply *r = redisCommandArgv(c, 3, load, NULL);
        if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
            failed = r ? bty_error_set(err, 503, "Redis refused SCRIPT LOAD: %.200s",
                                       r->type == REDIS_REPLY_ERROR ? r->str : "bad reply")
                       : unreachable(err, c->errstr);
        } else {
            memcpy(conn->plan_sha, r->str, 40);
        }
        freeReplyObject(r);
    }
    if (failed) {
        redisFree(c);
        free(conn);
        return NULL;
    }
    conn->ctx = c;
    pthread_setspecific(conn_key, conn);
    return conn;
}

/* Read one reply of a pipeline; on I/O error drop the connection. When
 * given, *closed tells whether Redis had closed the connection (as after a
 * restart) rather than timed out: only then is trying again cheap. */
static redisReply *get_reply(redisContext *c, bty_error *err, int *closed)
{
    void *r = NULL;
    if (redisGetReply(c, &r) != REDIS_OK || !r) {
        int saved = errno;
        if (closed)
            *closed = c->err == REDIS_ERR_EOF ||
                      (c->err == REDIS_ERR_IO && (saved == ECONNRESET || saved == EPIPE));
        unreachable(err, c->errstr[0] ? c->errstr : "connection lost");
        drop();
        return NULL;
    }
    return r;
}

int store_ping(bty_error *err)
{
    /* A connection kept from before a Redis restart fails on first use:
     * then once more on a new one. */
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused;
        store_conn *conn = connection(err, &reused);
        if (!conn)
            return -1;
        const char *ping[] = {"PING"};
        redisAppendCommandArgv(conn->ctx, 1, ping, NULL);
        int closed = 0;
        redisReply *r = get_reply(conn->ctx, err, &closed);
        if (!r) {
            if (reused && closed)
                continue;
            return -1;
        }
        int ok = r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        return ok ? 0 : unreachable(err, "PING refused");
    }
    return -1;
}

void store_hash_free(bty_hash *h)
{
    free(h->fields);
    freeReplyObject(h->reply);
    memset(h, 0, sizeof(*h));
}

/* One try of store_read; *stale is set when a reused connection failed
 * before anything was read, so that a retry on a new one is safe. */
static int read_once(const char *key, int watch, bty_hash *out, bty_error *err, int *stale)
{
    int reused;
    *stale = 0;
    store_conn *conn = connection(err, &reused);
    if (!conn)
        return -1;
    redisContext *c = conn->ctx;
    const char *unwatch[] = {"UNWATCH"};
    const char *watch_cmd[] = {"WATCH", key};
    const char *hgetall[] = {"HGETALL", key};
    int sent = 1;
    if (watch) {
        redisAppendCommandArgv(c, 1, unwatch, NULL);
        redisAppendCommandArgv(c, 2, watch_cmd, NULL);
        sent += 2;
    }
    redisAppendCommandArgv(c, 2, hgetall, NULL);

    redisReply *r = NULL;
    for (int i = 0; i < sent; i++) {
        freeReplyObject(r);
        int closed = 0;
        r = get_reply(c, err, &closed);
        if (!r) {
            *stale = reused && closed && i == 0;
            return -1;
        }
        if (i + 1 < sent && r->type == REDIS_REPLY_ERROR) {
            /* The rest of the pipeline is unread: drop the connection. */
            bty_error_set(err, 503, "Redis refused WATCH: %.200s", r->str);
            freeReplyObject(r);
            drop();
            return -1;
        }
    }
    if (r->type == REDIS_REPLY_ERROR) {
        int wrongtype = strncmp(r->str, "WRONGTYPE", 9) == 0;
        bty_error_set(err, wrongtype ? 409 : 503, "Redis key '%.140s': %.200s%s", key, r->str,
                      wrongtype ? "; it must be a hash of steps: delete it or use another name"
                                : "");
        freeReplyObject(r);
        return -1;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
        freeReplyObject(r);
        drop();
        return unreachable(err, "unexpected reply to HGETALL");
    }
    out->n = r->elements / 2;
    out->fields = calloc(out->n ? out->n : 1, sizeof(bty_field));
    out->reply = r;
    if (!out->fields) {
        store_hash_free(out);
        return bty_error_set(err, 503, "out of memory reading '%.140s'", key);
    }
    for (size_t i = 0; i < out->n; i++) {
        const redisReply *name = r->element[2 * i], *value = r->element[2 * i + 1];
        out->fields[i] = (bty_field){name->str, name->len, value->str, value->len};
    }
    return 0;
}

int store_read(const char *key, int watch, bty_hash *out, bty_error *err)
{
    memset(out, 0, sizeof(*out));
    int stale;
    int rc = read_once(key, watch, out, err, &stale);
    if (rc != 0 && stale)
        rc = read_once(key, watch, out, err, &stale);
    return rc;
}

long long store_first_free_batch(const char *workflow, long long from, int count, bty_error *err)
{
    int reused;
    store_conn *conn = connection(err, &reused);
    if (!conn)
        return -1;
    for (int i = 0; i < count; i++) {
        char key[BTY_KEY_MAX];
        doc_snapshot_key(key, workflow, from + i);
        const char *exists[] = {"EXISTS", key};
        redisAppendCommandArgv(conn->ctx, 2, exists, NULL);
    }
    long long free_id = from + count;
    for (int i = 0; i < count; i++) {
        redisReply *r = get_reply(conn->ctx, err, NULL);
        if (!r)
            return -1; /* the connection is dropped with the rest unread */
        if (r->type == REDIS_REPLY_INTEGER && r->integer == 0 && free_id == from + count)
            free_id = from + i;
        freeReplyObject(r);
    }
    return free_id;
}

int store_commit(const bty_write_plan *plan, bty_error *err)
{
    /* Never retried here: the WATCH was on this connection, and a write
     * whose answer was lost may have been applied. */
    int reused;
    store_conn *conn = connection(err, &reused);
    if (!conn)
        return -1;
    redisContext *c = conn->ctx;

    /* EVALSHA sha numkeys key... (mode n field value ...)... */
    size_t argc = 3 + plan->n;
    for (size_t i = 0; i < plan->n; i++)
        argc += 2 + 2 * plan->hashes[i].n;
    const char **argv = malloc(argc * sizeof(*argv));
    size_t *argvlen = malloc(argc * sizeof(*argvlen));
    char(*counts)[24] = malloc((plan->n ? plan->n : 1) * sizeof(*counts));
    char numkeys[24];
    if (!argv || !argvlen || !counts) {
        free(argv);
        free(argvlen);
        free(counts);
        return bty_error_set(err, 503, "out of memory writing the batch; try again");
    }
    size_t a = 0;
    snprintf(numkeys, sizeof(numkeys), "%zu", plan->n);
    argv[a++] = "EVALSHA";
    argv[a++] = conn->plan_sha;
    argv[a++] = numkeys;
    for (size_t i = 0; i < plan->n; i++)
        argv[a++] = plan->hashes[i].key;
    for (size_t i = 0; i < plan->n; i++) {
        const bty_hash_write *h = &plan->hashes[i];
        snprintf(counts[i], sizeof(counts[i]), "%zu", h->n);
        argv[a++] = h->mode == WRITE_CREATE ? "2" : h->mode == WRITE_REPLACE ? "1" : "0";
        argv[a++] = counts[i];
        for (size_t j = 0; j < h->n; j++) {
            argv[a++] = h->names[j];
            argv[a++] = h->values[j];
        }
    }
    for (size_t i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);

    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    redisAppendCommandArgv(c, 1, multi, NULL);
    redisAppendCommandArgv(c, (int)argc, argv, argvlen);
    redisAppendCommandArgv(c, 1, exec, NULL);
    free(argv);
    free(argvlen);
    free(counts);

    int result = -1;
    redisReply *r;
    for (int i = 0; i < 3; i++) {
        r = get_reply(c, err, NULL);
        if (!r)
            /* The three commands went out together: Redis may have run
             * them and its answer been lost. */
            return bty_error_set(err, 503,
                                 "Redis did not confirm the write, which may or may not have "
                                 "been applied: check get_status before calling again");
        if (i < 2) {
            /* MULTI answers OK, EVALSHA answers QUEUED; an error here means
             * the transaction is discarded at EXEC. */
            if (r->type == REDIS_REPLY_ERROR)
                bty_error_set(err, 503, "Redis refused the write: %.200s", r->str);
            freeReplyObject(r);
            continue;
        }
        if (r->type == REDIS_REPLY_NIL) {
            result = 0; /* a watched key changed */
        } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
            const redisReply *e = r->element[0];
            if (e->type != REDIS_REPLY_ERROR) {
                result = 1;
            } else if (strncmp(e->str, "BATCHY_EXISTS", 13) == 0) {
                result = 2; /* a key to create exists: nothing written */
            } else if (strncmp(e->str, "NOSCRIPT", 8) == 0) {
                /* Scripts were flushed: reconnect (loads it) and retry. */
                drop();
                result = 0;
            } else {
                int wrongtype = strncmp(e->str, "WRONGTYPE", 9) == 0;
                bty_error_set(err, wrongtype ? 409 : 503, "Redis refused the write: %.200s",
                              e->str);
            }
        } else if (r->type == REDIS_REPLY_ERROR) {
            bty_error_set(err, 503, "Redis refused the write: %.200s", r->str);
        } else {
            bty_error_set(err, 503, "unexpected reply from Redis to EXEC");
        }
        freeReplyObject(r);
    }
    return result;
}
