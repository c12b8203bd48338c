/*
 * notice.c - change notices: a Redis connection of its own, subscribed to
 * the channel every write publishes its workflow on (plan.lua, in the
 * same atomic step as the write), owned by the notice thread. Whichever
 * Batchy process made a change, every process sharing that Redis hears of
 * it here and passes it to hold.c, which wakes its waiters.
 *
 * A subscribed connection can carry nothing else, hence a second one; it
 * is idle but for notices, and a PING every PING_MS finds a connection
 * that died without a word. When it is lost it is made again, every
 * 100 ms at first, backing off to 2 s; notices sent meanwhile are lost,
 * so on losing it and on getting it back hold.c re-reads everything that
 * is waited on (hold_resync): a waiter whose workflow changed in the gap
 * is answered, and while Redis is gone those reads fail and the waiters
 * are answered 503 rather than left hanging.
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
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "shell.h"

#define PING_MS        15000
#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS   2000

static struct {
    bty_redis_target target;
    int timeout_ms;
    char channel[BTY_KEY_MAX];
    pthread_t thread;
    int started;
    atomic_int stopping;
    atomic_int subscribed; /* for healthz */
    int wake_fd;           /* eventfd */
    /* The thread's own. */
    redisContext *ctx;
    long long quiet_since_ms; /* last heard from Redis */
    long long ping_sent_ms;   /* 0: no PING unanswered */
} notice = {.wake_fd = -1};

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

int notice_subscribed(void)
{
    return atomic_load(&notice.subscribed);
}

/* One command on the fresh, blocking connection; 0 when it answered
 * without an error. */
static int command(redisContext *c, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    int ok = r && r->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Connect, authenticate and subscribe, each bounded by the timeout; then
 * make the socket non-blocking. 0, or -1. */
static int subscribe(void)
{
    struct timeval tv = {notice.timeout_ms / 1000, (notice.timeout_ms % 1000) * 1000};
    const bty_redis_target *t = &notice.target;
    redisContext *c = t->is_unix ? redisConnectUnixWithTimeout(t->path, tv)
                                 : redisConnectWithTimeout(t->host, t->port, tv);
    if (!c || c->err) {
        redisFree(c);
        return -1;
    }
    redisSetTimeout(c, tv);
    if (!t->is_unix)
        redisEnableKeepAlive(c);
    const char *auth1[] = {"AUTH", t->password};
    const char *auth2[] = {"AUTH", t->user, t->password};
    const char *sub[] = {"SUBSCRIBE", notice.channel};
    int failed = t->password[0] && (t->user[0] ? command(c, 3, auth2) : command(c, 2, auth1));
    int flags = failed ? -1 : fcntl(c->fd, F_GETFL);
    if (failed || command(c, 2, sub) != 0 || flags < 0 ||
        fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        redisFree(c);
        return -1;
    }
    c->flags &= ~REDIS_BLOCK; /* hiredis: EAGAIN means "later", not an error */
    notice.ctx = c;
    notice.quiet_since_ms = now_ms();
    notice.ping_sent_ms = 0;
    atomic_store(&notice.subscribed, 1);
    return 0;
}

static void unsubscribed(void)
{
    redisFree(notice.ctx);
    notice.ctx = NULL;
    atomic_store(&notice.subscribed, 0);
    hold_resync(); /* notices are being lost: read what is waited on */
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
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, "message") == 0 &&
            r->element[2]->type == REDIS_REPLY_STRING && r->element[2]->len < BTY_KEY_MAX &&
            strlen(r->element[2]->str) == r->element[2]->len)
            hold_notice(r->element[2]->str);
        freeReplyObject(reply);
    }
}

static void *notice_main(void *arg)
{
    (void)arg;
    long long retry_ms = 0, next_try_ms = 0;
    while (!atomic_load(&notice.stopping)) {
        long long now = now_ms();
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
        if (notice.ctx && notice.ping_sent_ms && now - notice.ping_sent_ms >= notice.timeout_ms) {
            unsubscribed(); /* no answer: the connection is dead */
            continue;
        }

        long long wait = hold_tick(); /* -1: nothing due */
        long long due = notice.ctx ? (notice.ping_sent_ms ? notice.ping_sent_ms + notice.timeout_ms
                                                          : notice.quiet_since_ms + PING_MS)
                                   : next_try_ms;
        due -= now_ms();
        if (due < 0)
            due = 0;
        if (wait < 0 || due < wait)
            wait = due;
        struct pollfd fds[2] = {{.fd = notice.wake_fd, .events = POLLIN},
                                {.fd = notice.ctx ? notice.ctx->fd : -1, .events = POLLIN}};
        int n = poll(fds, 2, wait > 60000 ? 60000 : (int)wait);
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
    }
    redisFree(notice.ctx);
    notice.ctx = NULL;
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
