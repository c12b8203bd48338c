/*
 * notice.c - change notices: a Redis connection of its own, subscribed to
 * the channel every write publishes its workflow on (plan.lua, in the
 * same atomic step as the write), owned by the notice thread. Whichever
 * Batchy process made a change, every process sharing that Redis hears of
 * it here and passes it to hold.c, which wakes its waiters. It listens to
 * that channel only while something waits here (follow_changes).
 *
 * A subscribed connection can carry nothing else, hence a second one; it
 * is idle but for notices, and a PING every PING_MS finds a connection
 * that died without a word. When it is lost it is made again, every
 * 100 ms at first, backing off to 2 s, and at once when the store reaches
 * Redis again or a sentinel says the master moved (notice_retry_now: a
 * waiter should not wait out a back-off run up while Redis was gone).
 * Notices sent meanwhile are lost, so on losing it and on getting it
 * back hold.c re-reads everything that is waited on (hold_resync): a
 * waiter whose workflow changed in the gap is answered, and while Redis
 * is gone those reads fail and the waiters are answered 503 rather than
 * left hanging.
 *
 * The same connection receives what Redis' tracking of the store's reads
 * says (CLIENT TRACKING ... REDIRECT to this connection's id, store.c): a
 * message on __redis__:invalidate names keys that changed, by any client,
 * and rows.c stops trusting what it made from them; nil means everything
 * (FLUSHDB). Losing the connection loses those too: its serial changes,
 * and with it the epoch every trusted row was made under.
 *
 * Invalidations come a moment after the write that causes them; a fence
 * (notice_fence) waits until every one sent before it has been taken in:
 * a PING on this connection, whose answer comes after them. /workflows
 * fences before trusting what it remembers, so that a change made before
 * the request (by hand, too) is always in its answer.
 *
 * Through Sentinel (connect.c) the connection is to the master the
 * sentinels name, and this thread also keeps a subscription to one
 * sentinel's +switch-master: when the master moves it tells the store
 * (store_master_moved) and subscribes anew, on the new master.
 *
 * The same thread keeps hold.c's clock (hold_tick: deadlines, re-checks,
 * the streams' comments) and sleeps in poll() in between: with nothing
 * held it wakes only for a PING.
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
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "shell.h"

#define PING_MS        15000
#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS   2000
#define UNSUBSCRIBE_MS 60000

static struct {
    bty_redis_target target;
    int timeout_ms;
    char channel[BTY_KEY_MAX];
    pthread_t thread;
    int started;
    atomic_int stopping;
    atomic_int subscribed;   /* for healthz */
    atomic_int changes_live; /* subscribed to the changes channel */
    atomic_llong client_id;  /* of the subscribed connection, or 0 */
    atomic_ullong serial;    /* subscriptions made and lost */
    atomic_int retry_now;    /* notice_retry_now */
    int wake_fd;             /* eventfd */
    /* The thread's own. */
    redisContext *ctx;
    long long quiet_since_ms; /* last heard from Redis */
    long long ping_sent_ms;   /* 0: no PING unanswered */
    int changes;              /* the changes channel: 0 not subscribed, 1 asked, 2 subscribed */
    long long wanted_ms;      /* when something last listened (hold.c) */
    /* Through Sentinel: a sentinel's +switch-master notices, on a
     * connection of their own (the one tried next, when to). */
    redisContext *sentinel;
    int sentinel_next;
    long long sentinel_retry_ms, sentinel_try_ms;
    /* Fences: asked by workers (under fence_lock), then sent (the
     * thread's own), in order. */
    pthread_mutex_t fence_lock;
    struct fence *asked, *sent, **sent_tail;
} notice = {.wake_fd = -1, .fence_lock = PTHREAD_MUTEX_INITIALIZER, .sent_tail = &notice.sent};

struct fence {
    struct fence *next;
    void (*done)(void *);
    void *arg;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void notice_wake(void)
{
    uint64_t one = 1;
    if (notice.wake_fd >= 0 && write(notice.wake_fd, &one, sizeof(one)) < 0) {
        /* the counter is full: the thread is being woken anyway */
    }
}

void notice_retry_now(void)
{
    if (!atomic_load(&notice.subscribed) && !atomic_exchange(&notice.retry_now, 1))
        notice_wake();
}

int notice_subscribed(void)
{
    return atomic_load(&notice.subscribed);
}

void notice_fence(void (*done)(void *), void *arg)
{
    struct fence *f = atomic_load(&notice.subscribed) ? malloc(sizeof(*f)) : NULL;
    if (!f) { /* nothing to wait for (or no memory to: then a moment stale) */
        done(arg);
        return;
    }
    f->done = done;
    f->arg = arg;
    pthread_mutex_lock(&notice.fence_lock);
    f->next = notice.asked;
    notice.asked = f;
    pthread_mutex_unlock(&notice.fence_lock);
    notice_wake();
}

/* Release the fences in list (asked or sent): done. */
static void fences_done(struct fence *list)
{
    while (list) {
        struct fence *next = list->next;
        list->done(list->arg);
        free(list);
        list = next;
    }
}

/* The fences asked since the last time, oldest first. */
static struct fence *fences_asked(void)
{
    pthread_mutex_lock(&notice.fence_lock);
    struct fence *lifo = notice.asked, *fifo = NULL;
    notice.asked = NULL;
    pthread_mutex_unlock(&notice.fence_lock);
    while (lifo) {
        struct fence *next = lifo->next;
        lifo->next = fifo;
        fifo = lifo;
        lifo = next;
    }
    return fifo;
}

/* Send a PING per fence asked; without a connection, they are done. 0,
 * or -1 when the connection failed. */
static int send_fences(void)
{
    struct fence *f = fences_asked();
    if (!notice.ctx) {
        fences_done(f);
        return 0;
    }
    int failed = 0;
    while (f) {
        struct fence *next = f->next;
        f->next = NULL;
        *notice.sent_tail = f;
        notice.sent_tail = &f->next;
        failed = failed || redisAppendCommand(notice.ctx, "PING fence") != REDIS_OK;
        f = next;
    }
    /* An answer is due within the timeout, as for a keep-alive PING: a
     * dead connection does not hold a fence for long. */
    if (notice.sent && !notice.ping_sent_ms)
        notice.ping_sent_ms = now_ms();
    int done = 0;
    return failed || redisBufferWrite(notice.ctx, &done) != REDIS_OK ? -1 : 0;
}

/* Release every fence sent (the connection is gone: the rows it guards
 * are untrusted anyway) and those asked. */
static void fences_release_all(void)
{
    fences_done(notice.sent);
    notice.sent = NULL;
    notice.sent_tail = &notice.sent;
    fences_done(fences_asked());
}

int notice_changes_live(void)
{
    return atomic_load(&notice.changes_live);
}

long long notice_client_id(uint64_t *serial)
{
    /* The serial first: an id read with a later serial is never taken for
     * the earlier subscription's. */
    *serial = atomic_load(&notice.serial);
    long long id = atomic_load(&notice.client_id);
    return *serial == atomic_load(&notice.serial) ? id : 0;
}

/* One command on the fresh, blocking connection; 0 when it answered
 * without an error (*integer: its answer, when one). */
static int command(redisContext *c, int argc, const char **argv, long long *integer)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (ok && integer)
        *integer = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Connect, authenticate and subscribe, each bounded by the timeout; then
 * make the socket non-blocking. 0, or -1. */
static int subscribe(void)
{
    char where[300], why[300];
    redisContext *c =
        redis_connect(&notice.target, notice.timeout_ms, where, sizeof(where), why, sizeof(why));
    if (!c)
        return -1;
    const char *id[] = {"CLIENT", "ID"};
    const char *sub_tracking[] = {"SUBSCRIBE", "__redis__:invalidate"};
    long long client_id = 0;
    int flags = fcntl(c->fd, F_GETFL);
    /* Without CLIENT ID (Redis before 5) notices still work; reads are
     * just not tracked. */
    if (command(c, 2, id, &client_id) != 0)
        client_id = 0;
    if (command(c, 2, sub_tracking, NULL) != 0 || flags < 0 ||
        fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        redisFree(c);
        return -1;
    }
    c->flags &= ~REDIS_BLOCK; /* hiredis: EAGAIN means "later", not an error */
    notice.ctx = c;
    notice.quiet_since_ms = now_ms();
    notice.ping_sent_ms = 0;
    notice.changes = 0;
    atomic_store(&notice.subscribed, 1);
    atomic_store(&notice.client_id, client_id);
    atomic_fetch_add(&notice.serial, 1);
    return 0;
}

static void unsubscribed(void)
{
    redisFree(notice.ctx);
    notice.ctx = NULL;
    atomic_store(&notice.subscribed, 0);
    atomic_store(&notice.changes_live, 0);
    atomic_store(&notice.client_id, 0);
    atomic_fetch_add(&notice.serial, 1); /* invalidations are being lost */
    reads_clear();                       /* so nothing kept is trusted */
    fences_release_all();
    hold_resync(); /* and notices: read what is waited on */
}

/* What Redis said on the subscribed connection: a notice, a PING's
 * answer, or SUBSCRIBE's. 0, or -1 when the connection is lost. */
static int take_messages(void)
{
    if (redisBufferRead(notice.ctx) != REDIS_OK)
        return -1;
    notice.quiet_since_ms = now_ms();
    notice.ping_sent_ms = 0; /* anything at all shows it alive */
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(notice.ctx, &reply) != REDIS_OK)
            return -1;
        if (!reply)
            return 0;
        const redisReply *r = reply;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[1]->type == REDIS_REPLY_STRING && strcmp(r->element[1]->str, "fence") == 0 &&
            notice.sent) { /* a fence's PING answered: all before it is in */
            struct fence *f = notice.sent;
            notice.sent = f->next;
            if (!notice.sent)
                notice.sent_tail = &notice.sent;
            f->next = NULL;
            fences_done(f);
        } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                   r->element[0]->type == REDIS_REPLY_STRING &&
                   strcmp(r->element[0]->str, "subscribe") == 0 &&
                   r->element[1]->type == REDIS_REPLY_STRING &&
                   strcmp(r->element[1]->str, notice.channel) == 0) {
            /* Notices flow from now on; what changed before, while the
             * first waiters were being added, is read again. */
            notice.changes = 2;
            atomic_store(&notice.changes_live, 1);
            hold_resync();
            hold_streams_live();
        } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                   r->element[0]->type == REDIS_REPLY_STRING &&
                   strcmp(r->element[0]->str, "message") == 0 &&
                   r->element[1]->type == REDIS_REPLY_STRING) {
            const redisReply *what = r->element[2];
            if (strcmp(r->element[1]->str, "__redis__:invalidate") != 0) {
                if (what->type == REDIS_REPLY_STRING && what->len < BTY_KEY_MAX &&
                    strlen(what->str) == what->len)
                    hold_notice(what->str);
            } else if (what->type == REDIS_REPLY_ARRAY) {
                for (size_t i = 0; i < what->elements; i++) {
                    const redisReply *key = what->element[i];
                    if (key->type != REDIS_REPLY_STRING)
                        continue;
                    rows_invalidate(key->str, key->len);
                    /* A change by hand publishes nothing; its invalidation
                     * wakes who waits on that workflow all the same. A
                     * change that also publishes is read twice, and the
                     * second read finds nothing new (hold.c). */
                    if (key->len < BTY_KEY_MAX && strlen(key->str) == key->len)
                        hold_notice(key->str);
                }
            } else {
                rows_invalidate_all(); /* nil: FLUSHDB, FLUSHALL */
            }
        }
        freeReplyObject(reply);
    }
}

/* Keep a sentinel's +switch-master notices coming (through Sentinel
 * only): on losing them, the next sentinel, backing off as for Redis. */
static void follow_sentinel(long long now)
{
    if (!notice.target.is_sentinel || notice.sentinel || now < notice.sentinel_try_ms)
        return;
    char why[300];
    int at = notice.sentinel_next;
    redisContext *c = sentinel_subscribe(&notice.target, notice.timeout_ms, notice.sentinel_next,
                                         &at, why, sizeof(why));
    int flags = c ? fcntl(c->fd, F_GETFL) : -1;
    if (!c || flags < 0 || fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        redisFree(c);
        notice.sentinel_next = (notice.sentinel_next + 1) % notice.target.nsentinels;
        notice.sentinel_retry_ms =
            notice.sentinel_retry_ms ? 2 * notice.sentinel_retry_ms : RETRY_FIRST_MS;
        if (notice.sentinel_retry_ms > RETRY_MAX_MS)
            notice.sentinel_retry_ms = RETRY_MAX_MS;
        notice.sentinel_try_ms = now + notice.sentinel_retry_ms;
        return;
    }
    c->flags &= ~REDIS_BLOCK;
    notice.sentinel = c;
    notice.sentinel_next = at; /* on losing it, the one after it */
    notice.sentinel_retry_ms = 0;
}

/* What the sentinel said: "+switch-master <name> <old ip> <old port> <new
 * ip> <new port>". For this master: the store and this thread connect
 * anew, to where the sentinels now say. 0, or -1 when the connection to
 * the sentinel is lost. */
static int take_sentinel_messages(void)
{
    if (redisBufferRead(notice.sentinel) != REDIS_OK)
        return -1;
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(notice.sentinel, &reply) != REDIS_OK)
            return -1;
        if (!reply)
            return 0;
        const redisReply *r = reply;
        size_t name_len = strlen(notice.target.master);
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, "message") == 0 &&
            r->element[2]->type == REDIS_REPLY_STRING &&
            strncmp(r->element[2]->str, notice.target.master, name_len) == 0 &&
            r->element[2]->str[name_len] == ' ') {
            store_master_moved();
            if (notice.ctx)
                unsubscribed();
            /* and made again at once, on the new master: not after a
             * back-off that trying the old one ran up */
            notice_retry_now();
        }
        freeReplyObject(reply);
    }
}

/* Subscribe to the changes channel while something listens (hold.c), and
 * leave it once nothing has for UNSUBSCRIBE_MS: a PUBLISH nobody hears
 * costs Redis next to nothing, and this thread nothing, where one heard
 * costs both on every write. 0, or -1 when the connection failed. */
static int follow_changes(long long now)
{
    if (!notice.ctx)
        return 0;
    int want = hold_listening();
    if (want)
        notice.wanted_ms = now;
    const char *verb = NULL;
    if (want && !notice.changes)
        verb = "SUBSCRIBE";
    else if (!want && notice.changes == 2 && now - notice.wanted_ms >= UNSUBSCRIBE_MS)
        verb = "UNSUBSCRIBE";
    if (!verb)
        return 0;
    notice.changes = want;
    if (!want)
        atomic_store(&notice.changes_live, 0);
    int done = 0;
    const char *argv[] = {verb, notice.channel};
    return redisAppendCommandArgv(notice.ctx, 2, argv, NULL) != REDIS_OK ||
                   redisBufferWrite(notice.ctx, &done) != REDIS_OK
               ? -1
               : 0;
}

static void *notice_main(void *arg)
{
    (void)arg;
    long long retry_ms = 0, next_try_ms = 0;
    while (!atomic_load(&notice.stopping)) {
        long long now = now_ms();
        if (atomic_exchange(&notice.retry_now, 0))
            retry_ms = next_try_ms = 0; /* no back-off: Redis is back */
        if (!notice.ctx && now >= next_try_ms) {
            if (subscribe() == 0) {
                retry_ms = 0;
                hold_resync(); /* what changed while unsubscribed */
            } else {
                retry_ms = retry_ms ? 2 * retry_ms : RETRY_FIRST_MS;
                if (retry_ms > RETRY_MAX_MS)
                    retry_ms = RETRY_MAX_MS;
                next_try_ms = now + retry_ms;
            }
        }
        if (notice.ctx && !notice.ping_sent_ms && now - notice.quiet_since_ms >= PING_MS) {
            int done = 0;
            if (redisAppendCommand(notice.ctx, "PING") != REDIS_OK ||
                redisBufferWrite(notice.ctx, &done) != REDIS_OK) {
                unsubscribed();
                continue;
            }
            notice.ping_sent_ms = now;
        }
        follow_sentinel(now);
        if (send_fences() != 0 || follow_changes(now) != 0) {
            unsubscribed();
            continue;
        }
        if (notice.ctx && notice.ping_sent_ms && now - notice.ping_sent_ms >= notice.timeout_ms) {
            unsubscribed(); /* no answer: the connection is dead */
            continue;
        }

        long long wait = hold_tick(); /* -1: nothing due */
        long long due = notice.ctx ? (notice.ping_sent_ms ? notice.ping_sent_ms + notice.timeout_ms
                                                          : notice.quiet_since_ms + PING_MS)
                                   : next_try_ms;
        if (notice.target.is_sentinel && !notice.sentinel && notice.sentinel_try_ms < due)
            due = notice.sentinel_try_ms;
        due -= now_ms();
        if (due < 0)
            due = 0;
        if (wait < 0 || due < wait)
            wait = due;
        struct pollfd fds[3] = {
            {.fd = notice.wake_fd, .events = POLLIN},
            {.fd = notice.ctx ? notice.ctx->fd : -1, .events = POLLIN},
            {.fd = notice.sentinel ? notice.sentinel->fd : -1, .events = POLLIN}};
        int n = poll(fds, 3, wait > 60000 ? 60000 : (int)wait);
        if (n < 0)
            continue; /* EINTR */
        if (fds[0].revents & POLLIN) {
            uint64_t count;
            if (read(notice.wake_fd, &count, sizeof(count)) < 0) {
                /* nothing to clear */
            }
        }
        if (notice.ctx && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) && take_messages() != 0)
            unsubscribed();
        if (notice.sentinel && (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) &&
            take_sentinel_messages() != 0) {
            redisFree(notice.sentinel);
            notice.sentinel = NULL;
            notice.sentinel_next = (notice.sentinel_next + 1) % notice.target.nsentinels;
        }
    }
    redisFree(notice.sentinel);
    notice.sentinel = NULL;
    redisFree(notice.ctx);
    notice.ctx = NULL;
    fences_release_all();
    return NULL;
}

int notice_start(const bty_redis_target *target, int timeout_ms)
{
    notice.target = *target;
    notice.timeout_ms = timeout_ms;
    key_changes_channel(notice.channel, target->db);
    notice.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (notice.wake_fd < 0)
        return -1;
    /* Started with the stop signals blocked (main), like the others. */
    if (pthread_create(&notice.thread, NULL, notice_main, NULL) != 0) {
        close(notice.wake_fd);
        notice.wake_fd = -1;
        return -1;
    }
    notice.started = 1;
    return 0;
}

void notice_stop(void)
{
    if (!notice.started)
        return;
    atomic_store(&notice.stopping, 1);
    notice_wake();
    pthread_join(notice.thread, NULL);
    notice.started = 0;
    /* wake_fd stays open: a late notice_wake (a stream started as Batchy
     * stops) must not write into a descriptor reused meanwhile. */
}
