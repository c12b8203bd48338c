/*
 * store.c - where Redis is touched: the store thread and its one
 * connection. Nothing else in Batchy talks to Redis; what a call sends
 * and what its replies mean are resp.c's, the write script is plan.lua.
 *
 * One thread, the store's, owns the one connection to Redis. Worker
 * threads never wait on a socket: a worker builds a call (the commands of
 * one round trip), suspends its HTTP connection and hands the call over
 * with store_submit. The store thread sends every call it has, from every
 * worker, as one pipeline, reads the replies in order, and gives each call
 * back through its done callback, which resumes the HTTP connection. Under
 * load one write and one read carry the commands of many requests, so
 * Redis and batchy wake once per batch instead of once per call.
 *
 * Calls of different requests share the connection, so no call may leave
 * state on it: there is no WATCH and no MULTI. A read is one round trip
 * (HGETALL), a write another (EVALSHA of the plan script). The script is
 * given what the workflow held when the call computed its change (as read,
 * or as cache.c remembers it), and writes nothing when it holds anything
 * else now (compare and set), answering with what it holds: the caller
 * starts over from that. It checks that every key it writes is a hash (or
 * absent) before writing any, so a write is never half applied.
 *
 * Redis tracks the keys this connection reads for rows.c (CLIENT
 * TRACKING, OPTIN: only reads that ask, not the write script's, which
 * would cost an invalidation per write), its invalidations redirected to
 * notice.c's subscribed connection, so that rows.c can trust what it read
 * until Redis says it changed. Tracking is
 * turned on as the connection is made, and again whenever the
 * subscription is made anew (its client id changes): store_track_epoch
 * says whether reads sent now are tracked, and under what.
 *
 * The connection is made on the first call, with connect and command
 * timeouts (connect.c: straight, or to the master Sentinel names), and
 * dropped after any error, a reply overdue by the command timeout, a
 * READONLY (the server became a replica) or a sentinel's word that the
 * master moved; the next call connects again. Redis going away costs a
 * 503, never a restart.
 *
 * With --min-replicas N, a WAIT N follows the writes of each pipeline,
 * and their answers are held until its own: a write stands only once N
 * replicas hold it, else it fails with a 503 that says it is on the
 * master only. WAIT holds the connection it is sent on, so one for all
 * the writes sent together (a group commit).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "shell.h"

/* plan_script[]: batchy/plan.lua, embedded by the build (Makefile). */
#include "plan_lua.h"

/* The store: what workers hand over (under lock), and what only the store
 * thread touches. */
static struct {
    bty_redis_target target;
    int timeout_ms;
    int min_replicas, replica_timeout_ms; /* WAIT after writes (0: none) */
    pthread_t thread;
    int started;

    pthread_mutex_t lock; /* guards queue, stopping, sleeping */
    store_call *queue_head, *queue_tail;
    int stopping;
    int sleeping; /* the thread is (about to be) in poll, idle: wake it */
    int wake_fd;  /* eventfd */

    /* The store thread's own. */
    redisContext *ctx;
    char plan_sha[41];
    store_call *sent_head, *sent_tail; /* sent, in order of their replies */
    store_call *delayed_head;          /* submitted with a delay, by time */
    store_call script_call;            /* SCRIPT LOAD after NOSCRIPT */
    int script_call_busy;
    store_call track_call; /* CLIENT TRACKING for a new subscription */
    int track_call_busy;
    uint64_t track_sending; /* the subscription's serial track_call is for */
    /* --min-replicas: writes answered by Redis but not yet confirmed by
     * the WAIT sent after them, in order. */
    store_call *unconfirmed_head, *unconfirmed_tail;

    /* Shared: where the connection is (healthz), and a sentinel's word
     * that the master moved. */
    pthread_mutex_t where_lock;
    char where[300];
    atomic_int moved;
    /* What workers read (store_track_epoch): connections made and lost,
     * and the serial of the subscription that reads on this one are
     * tracked for (0: none). */
    atomic_ullong conn_serial;
    atomic_ullong tracked_serial;
} store;

void store_where(char *buf, size_t size)
{
    pthread_mutex_lock(&store.where_lock);
    snprintf(buf, size, "%s", store.where);
    pthread_mutex_unlock(&store.where_lock);
}

static void set_where(const char *where)
{
    pthread_mutex_lock(&store.where_lock);
    snprintf(store.where, sizeof(store.where), "%s", where);
    pthread_mutex_unlock(&store.where_lock);
}

uint64_t store_track_epoch(void)
{
    uint64_t conn = atomic_load(&store.conn_serial);
    uint64_t tracked = atomic_load(&store.tracked_serial), now;
    if (!tracked || notice_client_id(&now) == 0 || now != tracked ||
        conn != atomic_load(&store.conn_serial))
        return 0;
    return (conn << 32) ^ tracked;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ handing over */

static void wake_store(void)
{
    uint64_t one = 1;
    if (write(store.wake_fd, &one, sizeof(one)) < 0) {
        /* the counter is full: the thread is being woken anyway */
    }
}

void store_submit(store_call *c, int delay_us, store_done_fn done, void *arg)
{
    c->done = done;
    c->arg = arg;
    c->next = NULL;
    c->resent = 0;
    store_call_forget_failure(c);
    c->not_before_ms = delay_us > 0 ? now_ms() + (delay_us + 999) / 1000 : 0;
    pthread_mutex_lock(&store.lock);
    if (store.stopping || !store.started) {
        pthread_mutex_unlock(&store.lock);
        store_call_fail_with(c, 503, "Batchy is stopping; try again in a moment");
        done(arg);
        return;
    }
    if (store.queue_tail)
        store.queue_tail->next = c;
    else
        store.queue_head = c;
    store.queue_tail = c;
    int wake = store.sleeping;
    store.sleeping = 0;
    pthread_mutex_unlock(&store.lock);
    if (wake)
        wake_store();
}

/* ------------------------------------------------------------------ the store thread */

static void confirm_writes(const store_call *wait);

/* Hand a call back with its replies, or with an error. */
static void call_finish(store_call *c)
{
    c->next = NULL;
    if (c->kind == CALL_SCRIPT) {
        store.script_call_busy = 0;
        return;
    }
    if (c->kind == CALL_TRACK) {
        const redisReply *r = c->nreplies ? c->replies[0] : NULL;
        if (!c->failure && r && r->type == REDIS_REPLY_STATUS)
            atomic_store(&store.tracked_serial, store.track_sending);
        store.track_call_busy = 0;
        return;
    }
    if (c->kind == CALL_WAIT) {
        confirm_writes(c);
        store_call_clear(c);
        free(c);
        return;
    }
    c->done(c->arg);
}

static void call_fail(store_call *c, int status, const char *message)
{
    metrics_redis_error();
    store_call_fail_with(c, status, message);
    call_finish(c);
}

/* The messages of calls that fail as a whole. */
static void lost_message(char *buf, size_t size, const store_call *c, const char *why)
{
    if (c->kind == CALL_WRITE)
        snprintf(buf, size,
                 "Redis did not confirm the write (%.200s), which may or may not have been "
                 "applied: check get_status before calling again",
                 why);
    else
        snprintf(buf, size,
                 "Redis is unreachable (%.200s); Batchy retries by itself, try again shortly", why);
}

/* Fail a call that was not sent, or whose answer was lost. */
static void call_lost(store_call *c, const char *why)
{
    char message[480];
    if (c->kind == CALL_SCRIPT) {
        call_finish(c);
        return;
    }
    if (c->kind == CALL_TRACK || c->kind == CALL_WAIT) {
        call_finish(c);
        return;
    }
    lost_message(message, sizeof(message), c, why);
    call_fail(c, 503, message);
}

/* The answer of a WAIT (NULL or failed: none) to the writes answered
 * before it: they stand if enough replicas hold them, else they fail,
 * saying that the write is on the master only. */
static void confirm_writes(const store_call *wait)
{
    const redisReply *r = wait && !wait->failure && wait->nreplies ? wait->replies[0] : NULL;
    long long acked = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    char message[400];
    if (acked >= 0)
        snprintf(message, sizeof(message),
                 "the write is on the Redis master only (%lld of the %d replicas asked for "
                 "acknowledged it within %d ms, --min-replicas): a failover may lose it; check "
                 "get_status before calling again",
                 acked, store.min_replicas, store.replica_timeout_ms);
    else
        snprintf(message, sizeof(message),
                 "the write reached the Redis master, but whether %d replicas hold it is unknown "
                 "(%.100s): a failover may lose it; check get_status before calling again",
                 store.min_replicas,
                 r && r->type == REDIS_REPLY_ERROR ? r->str : "the connection was lost");
    store_call *c = store.unconfirmed_head;
    store.unconfirmed_head = store.unconfirmed_tail = NULL;
    while (c) {
        store_call *next = c->next;
        c->next = NULL;
        if (acked < store.min_replicas)
            call_fail(c, 503, message);
        else
            call_finish(c);
        c = next;
    }
}

/* Drop the connection; the calls sent on it fail, except reads that Redis
 * had not answered when it closed the connection (a restart), which are
 * sent again once on a new one. */
static void drop(const char *why, int closed_by_redis, store_call **resend)
{
    redisFree(store.ctx);
    store.ctx = NULL;
    metrics_redis_connected(0);
    /* Reads on the next connection are not tracked until it says so, and
     * what was read on this one is no longer trusted: let it go now. */
    atomic_store(&store.tracked_serial, 0);
    atomic_fetch_add(&store.conn_serial, 1);
    reads_clear();
    set_where("");
    confirm_writes(NULL); /* answered, but no replica's word will come */
    store_call *c = store.sent_head;
    store.sent_head = store.sent_tail = NULL;
    while (c) {
        store_call *next = c->next;
        if (c->replies)
            for (int i = 0; i < c->ncommands; i++) {
                freeReplyObject(c->replies[i]);
                c->replies[i] = NULL;
            }
        c->nreplies = 0;
        if (c->kind == CALL_READ && closed_by_redis && !c->resent && resend) {
            c->resent = 1;
            c->next = *resend;
            *resend = c;
        } else {
            call_lost(c, why);
        }
        c = next;
    }
}

/* Run one setup command on a fresh (blocking) connection; 0 when it
 * answered as expected, else -1 with why set. */
static int setup_command(redisContext *c, int argc, const char **argv, char *why, size_t size)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (!r) {
        snprintf(why, size, "%s", c->errstr);
        return -1;
    }
    int bad = r->type == REDIS_REPLY_ERROR;
    if (bad)
        snprintf(why, size, "%s refused: %.200s", argv[0], r->str);
    else if (strcmp(argv[0], "SCRIPT") == 0) {
        if (r->type == REDIS_REPLY_STRING && r->len == 40)
            memcpy(store.plan_sha, r->str, 40);
        else
            bad = snprintf(why, size, "SCRIPT LOAD: unexpected reply") > 0;
    }
    freeReplyObject(r);
    return bad ? -1 : 0;
}

/* Connect, authenticate, select the database and load the plan script,
 * each bounded by the timeout; then make the socket non-blocking for the
 * pipeline. 0, or -1 with why set. */
static int connect_redis(char *why, size_t size)
{
    char where[300];
    redisContext *c =
        redis_connect(&store.target, store.timeout_ms, where, sizeof(where), why, size);
    if (!c)
        return -1;
    char db[16];
    snprintf(db, sizeof(db), "%d", store.target.db);
    const char *select[] = {"SELECT", db};
    const char *load[] = {"SCRIPT", "LOAD", plan_script};
    int failed = 0;
    if (store.target.db)
        failed = setup_command(c, 2, select, why, size);
    if (!failed)
        failed = setup_command(c, 3, load, why, size);
    /* Tracking, when there is a subscription to redirect it to; else
     * later (send_tracking). Not a reason to fail: without it rows.c
     * reads everything again. */
    uint64_t serial = 0;
    long long id = failed ? 0 : notice_client_id(&serial);
    char id_text[24];
    snprintf(id_text, sizeof(id_text), "%lld", id);
    const char *track[] = {"CLIENT", "TRACKING", "on", "REDIRECT", id_text, "OPTIN"};
    char ignored[64];
    if (id && setup_command(c, 6, track, ignored, sizeof(ignored)) == 0)
        atomic_store(&store.tracked_serial, serial);
    int flags = failed ? 0 : fcntl(c->fd, F_GETFL);
    if (!failed && (flags < 0 || fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0))
        failed = snprintf(why, size, "cannot make the socket non-blocking") > 0;
    if (failed) {
        redisFree(c);
        return -1;
    }
    c->flags &= ~REDIS_BLOCK; /* hiredis: EAGAIN means "later", not an error */
    store.ctx = c;
    set_where(where);
    metrics_redis_connected(1);
    notice_retry_now(); /* Redis is back: its notices may be too */
    return 0;
}

/* Put c into the pipeline. */
static void send_call(store_call *c)
{
    if (c->kind == CALL_WRITE)
        store_call_set_sha(c, store.plan_sha);
    if (!c->replies)
        c->replies = calloc((size_t)c->ncommands, sizeof(*c->replies));
    if (!c->replies || redisAppendFormattedCommand(store.ctx, c->commands, c->len) != REDIS_OK) {
        call_fail(c, 503, "out of memory talking to Redis; try again");
        return;
    }
    c->nreplies = 0;
    /* A WAIT ahead of it holds the connection for up to the replicas'
     * timeout. */
    c->deadline_ms = now_ms() + store.timeout_ms + store.replica_timeout_ms;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    c->sent_us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    c->next = NULL;
    if (store.sent_tail)
        store.sent_tail->next = c;
    else
        store.sent_head = c;
    store.sent_tail = c;
}

/* The subscription was made anew since tracking was turned on (or could
 * not be, at connect): turn it on for the new one, ahead of what follows.
 * Until its answer is in, store_track_epoch says reads are not tracked. */
static void send_tracking(void)
{
    uint64_t serial;
    long long id = notice_client_id(&serial);
    if (!store.ctx || !id || store.track_call_busy || atomic_load(&store.tracked_serial) == serial)
        return;
    char id_text[24];
    snprintf(id_text, sizeof(id_text), "%lld", id);
    const char *track[] = {"CLIENT", "TRACKING", "on", "REDIRECT", id_text, "OPTIN"};
    bty_error ignored;
    if (store_call_command(&store.track_call, CALL_TRACK, 6, track, &ignored) != 0)
        return;
    store.track_sending = serial;
    store.track_call_busy = 1;
    send_call(&store.track_call);
}

/* After a pipeline's writes, one WAIT: WAIT blocks the connection it is
 * sent on, so one for them all (a group commit). Their answers are held
 * until its own (confirm_writes). */
static void send_wait(void)
{
    char n[16], ms[16];
    snprintf(n, sizeof(n), "%d", store.min_replicas);
    snprintf(ms, sizeof(ms), "%d", store.replica_timeout_ms);
    const char *argv[] = {"WAIT", n, ms};
    store_call *w = calloc(1, sizeof(*w));
    bty_error ignored;
    if (!w || store_call_command(w, CALL_WAIT, 3, argv, &ignored) != 0) {
        free(w); /* out of memory: the next WAIT, or losing the connection, says */
        return;
    }
    send_call(w);
}

/* Send a list of calls, connecting first if need be. */
static void send_calls(store_call *list)
{
    if (!list)
        return;
    char why[300];
    if (!store.ctx && connect_redis(why, sizeof(why)) != 0) {
        while (list) {
            store_call *next = list->next;
            call_lost(list, why);
            list = next;
        }
        return;
    }
    send_tracking();
    int writes = 0;
    while (list) {
        store_call *next = list->next;
        writes = writes || list->kind == CALL_WRITE;
        send_call(list);
        list = next;
    }
    if (writes && store.min_replicas)
        send_wait();
}

/* Whether the plan script's reply r says it wrote: anything but an error
 * or BATCHY_CHANGED (nothing written: the caller computes again). */
static int wrote(const redisReply *r)
{
    return r->type != REDIS_REPLY_ERROR && !(r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                                             r->element[0]->type == REDIS_REPLY_STRING &&
                                             strcmp(r->element[0]->str, "BATCHY_CHANGED") == 0);
}

/* Hand out the replies that have come in; 0, or -1 when the connection is
 * lost (dropped here). */
static int take_replies(store_call **resend)
{
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(store.ctx, &reply) != REDIS_OK) {
            drop(store.ctx->errstr, 0, NULL);
            return -1;
        }
        if (!reply)
            return 0;
        store_call *c = store.sent_head;
        if (!c) { /* Redis said something unasked: the stream is not ours */
            freeReplyObject(reply);
            drop("unexpected reply", 0, NULL);
            return -1;
        }
        c->replies[c->nreplies++] = reply;
        if (c->nreplies < c->ncommands)
            continue;
        store.sent_head = c->next;
        if (!store.sent_head)
            store.sent_tail = NULL;
        const redisReply *r = reply;
        if (c->kind == CALL_WRITE && r->type == REDIS_REPLY_ERROR &&
            strncmp(r->str, "NOSCRIPT", 8) == 0 && !store.script_call_busy) {
            /* Someone ran SCRIPT FLUSH: load it again ahead of what
             * follows; the caller sees a conflict and retries. */
            const char *load[] = {"SCRIPT", "LOAD", plan_script};
            bty_error ignored;
            if (store_call_command(&store.script_call, CALL_SCRIPT, 3, load, &ignored) == 0) {
                store.script_call_busy = 1;
                store.script_call.next = *resend;
                *resend = &store.script_call;
            }
        }
        if (c->kind == CALL_SCRIPT) {
            if (r->type == REDIS_REPLY_STRING && r->len == 40)
                memcpy(store.plan_sha, r->str, 40);
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        metrics_redis_round_trip((long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - c->sent_us);
        if (r->type == REDIS_REPLY_ERROR && strstr(r->str, "READONLY")) {
            /* A replica now: the master moved (a failover), and this write
             * was refused whole. Connect anew, where the sentinels say. */
            call_fail(c, 503,
                      "Redis is a replica now (a failover): nothing was written; try again in a "
                      "moment");
            drop("the server became a replica (READONLY)", 1, resend);
            return -1;
        }
        if (c->kind == CALL_WRITE && store.min_replicas && wrote(r)) {
            c->next = NULL; /* answered when the WAIT after it is */
            if (store.unconfirmed_tail)
                store.unconfirmed_tail->next = c;
            else
                store.unconfirmed_head = c;
            store.unconfirmed_tail = c;
            continue;
        }
        call_finish(c);
    }
}

/* Fail every call waiting or sent: the store is stopping. */
static void fail_everything(store_call *resend)
{
    store_call *lists[3] = {store.delayed_head, resend, NULL};
    store.delayed_head = NULL;
    pthread_mutex_lock(&store.lock);
    lists[2] = store.queue_head;
    store.queue_head = store.queue_tail = NULL;
    pthread_mutex_unlock(&store.lock);
    drop("Batchy is stopping", 0, NULL);
    for (int i = 0; i < 3; i++)
        for (store_call *c = lists[i], *next; c; c = next) {
            next = c->next;
            if (c->kind == CALL_SCRIPT)
                call_finish(c);
            else
                call_fail(c, 503, "Batchy is stopping; try again in a moment");
        }
}

/* Move the calls whose delay is over from the delayed list to *ready;
 * return the time the next one is due, or -1. */
static long long due_delayed(long long now, store_call **ready)
{
    while (store.delayed_head && store.delayed_head->not_before_ms <= now) {
        store_call *c = store.delayed_head;
        store.delayed_head = c->next;
        c->next = *ready;
        *ready = c;
    }
    return store.delayed_head ? store.delayed_head->not_before_ms : -1;
}

static void add_delayed(store_call *c)
{
    store_call **at = &store.delayed_head;
    while (*at && (*at)->not_before_ms <= c->not_before_ms)
        at = &(*at)->next;
    c->next = *at;
    *at = c;
}

/* Reverse a list taken from a LIFO so that calls go out in the order
 * they came. */
static store_call *reversed(store_call *list)
{
    store_call *out = NULL;
    while (list) {
        store_call *next = list->next;
        list->next = out;
        out = list;
        list = next;
    }
    return out;
}

static void *store_main(void *arg)
{
    (void)arg;
    store_call *resend = NULL;
    for (;;) {
        /* What the workers handed over. */
        pthread_mutex_lock(&store.lock);
        store_call *incoming = store.queue_head;
        store.queue_head = store.queue_tail = NULL;
        int stopping = store.stopping;
        pthread_mutex_unlock(&store.lock);
        if (stopping)
            break;
        if (atomic_exchange(&store.moved, 0) && store.ctx)
            drop("the master moved (a sentinel said +switch-master)", 1, &resend);

        long long now = now_ms();
        store_call *ready = NULL;
        while (incoming) {
            store_call *next = incoming->next;
            if (incoming->not_before_ms > now) {
                add_delayed(incoming);
            } else {
                incoming->next = ready;
                ready = incoming;
            }
            incoming = next;
        }
        long long next_due = due_delayed(now, &ready);
        /* Resent reads and the script go first, then the rest in order. */
        store_call *batch = reversed(ready);
        if (resend) {
            store_call *tail = resend;
            while (tail->next)
                tail = tail->next;
            tail->next = batch;
            batch = resend;
            resend = NULL;
        }
        send_calls(batch);

        /* Write what is pending, then wait for replies, hand-overs or a
         * deadline. */
        int want_out = 0;
        if (store.ctx) {
            int done = 0;
            if (redisBufferWrite(store.ctx, &done) != REDIS_OK) {
                drop(store.ctx->errstr, 1, &resend);
                continue;
            }
            want_out = !done;
        }
        long long wait = -1;
        if (store.sent_head)
            wait = store.sent_head->deadline_ms;
        if (next_due >= 0 && (wait < 0 || next_due < wait))
            wait = next_due;
        int timeout = -1;
        if (wait >= 0) {
            long long left = wait - now_ms();
            timeout = left < 0 ? 0 : left > 60000 ? 60000 : (int)left;
        }

        struct pollfd fds[2] = {{.fd = store.wake_fd, .events = POLLIN}, {.fd = -1}};
        if (store.ctx) {
            fds[1].fd = store.ctx->fd;
            fds[1].events = POLLIN | POLLRDHUP | (want_out ? POLLOUT : 0);
        }
        /* Workers wake this thread only when nothing is under way: with
         * calls in flight, their replies wake it, and it takes what was
         * handed over meanwhile as one batch. One eventfd write per call
         * was a tenth of batchy's CPU under load. */
        pthread_mutex_lock(&store.lock);
        int asleep = !store.queue_head && !store.stopping;
        store.sleeping = asleep && !store.sent_head;
        pthread_mutex_unlock(&store.lock);
        int n = asleep ? poll(fds, 2, timeout) : poll(fds, 2, 0);
        pthread_mutex_lock(&store.lock);
        store.sleeping = 0;
        pthread_mutex_unlock(&store.lock);
        if (n < 0)
            continue; /* EINTR */
        if (fds[0].revents & POLLIN) {
            uint64_t count;
            if (read(store.wake_fd, &count, sizeof(count)) < 0) {
                /* nothing to clear */
            }
        }
        if (store.ctx && (fds[1].revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR))) {
            if (redisBufferRead(store.ctx) != REDIS_OK) {
                int saved = errno;
                int closed =
                    store.ctx->err == REDIS_ERR_EOF ||
                    (store.ctx->err == REDIS_ERR_IO && (saved == ECONNRESET || saved == EPIPE));
                /* Replies that came before the end still count. */
                char why[128];
                snprintf(why, sizeof(why), "%s", store.ctx->errstr);
                drop(why[0] ? why : "connection lost", closed, &resend);
                continue;
            }
            if (take_replies(&resend) != 0)
                continue;
        }
        if (store.sent_head && store.sent_head->deadline_ms <= now_ms()) {
            char why[64];
            snprintf(why, sizeof(why), "no answer within %d ms", store.timeout_ms);
            drop(why, 0, NULL);
        }
    }
    fail_everything(resend);
    return NULL;
}

void store_master_moved(void)
{
    atomic_store(&store.moved, 1);
    if (store.started)
        wake_store();
}

int store_start(const bty_redis_target *target, int timeout_ms, int min_replicas,
                int replica_timeout_ms)
{
    store.target = *target;
    store.timeout_ms = timeout_ms;
    store.min_replicas = min_replicas;
    store.replica_timeout_ms = min_replicas ? replica_timeout_ms : 0;
    pthread_mutex_init(&store.where_lock, NULL);
    store.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (store.wake_fd < 0)
        return -1;
    pthread_mutex_init(&store.lock, NULL);
    /* Started with the stop signals blocked (main), like the workers. */
    if (pthread_create(&store.thread, NULL, store_main, NULL) != 0) {
        close(store.wake_fd);
        pthread_mutex_destroy(&store.lock);
        return -1;
    }
    store.started = 1;
    return 0;
}

void store_stop(void)
{
    if (!store.started)
        return;
    pthread_mutex_lock(&store.lock);
    store.stopping = 1;
    pthread_mutex_unlock(&store.lock);
    wake_store();
    pthread_join(store.thread, NULL);
    /* Calls submitted from now on fail at once (store_submit). */
    store_call_clear(&store.script_call);
    store_call_clear(&store.track_call);
}
