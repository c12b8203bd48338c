/*
 * watch.c - the watchdog thread: deadlines for slow clients, and the
 * access log, written in batches.
 *
 * Slow clients. libmicrohttpd's connection timeout counts time without any
 * traffic, so a client sending one byte a second would hold its
 * connection, a thread's share of the poll set and a descriptor forever,
 * and enough such clients would lock every other caller out. So each
 * connection also has a deadline: the client has client_timeout_s to send
 * a whole request (from the connection's start or the end of its previous
 * answer) and as long again to read the answer. Time batchy spends on the
 * request is not counted (watch_turn). The watchdog shuts down the
 * sockets of connections past their deadline; libmicrohttpd then sees the
 * end of the stream and closes the connection itself, in its own thread,
 * as if the client had left.
 *
 * The access log. One write per line was a tenth of batchy's system time
 * under load. Lines are gathered in a buffer and written together: at
 * once when the log has been quiet for LOG_DELAY_MS (a line of a lone
 * request appears as it is answered), else when the buffer fills, or by
 * the watchdog within LOG_DELAY_MS. Whole lines only, so lines never
 * interleave.
 *
 * With no deadline running (every connection idle on batchy's side: held
 * requests, streams, or none at all) and no line waiting, the watchdog
 * sleeps until one is: an idle Batchy, or one holding ten thousand
 * requests, costs no CPU. `timed` counts the deadlines running; whoever
 * starts the first, or buffers a line, while the watchdog sleeps so, wakes
 * it (idle is set before timed is checked, and timed moved before idle is,
 * so one of the two sides always sees the other).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "shell.h"

#define LOG_DELAY_MS 100 /* the longest an access-log line waits */

/* One open HTTP connection, on the watch list. Added when libmicrohttpd
 * reports the connection started, removed and freed when it reports it
 * closed, which it does before it closes the socket: fd is valid for as
 * long as the entry is listed. */
struct watched {
    struct watched *prev, *next;
    int fd;
    int cut; /* the watchdog has shut the socket down */
    /* When the client must have sent its request (or read its answer) by,
     * in CLOCK_MONOTONIC ms; LLONG_MAX while batchy works on a request. */
    atomic_llong deadline_ms;
};

struct watch {
    int client_timeout_s;
    int quiet;
    pthread_t thread;
    pthread_mutex_t lock; /* guards head, each entry's cut, stop */
    pthread_cond_t wake;
    watched *head;
    int stop;
    atomic_long timed;        /* connections whose deadline runs */
    atomic_int log_pending;   /* lines gathered, not yet written */
    atomic_int idle;          /* the watchdog sleeps until woken */
    pthread_mutex_t log_lock; /* guards the three below */
    char log_buf[16384];
    size_t log_len;
    long long log_written_ms;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ deadlines */

/* Wake the watchdog if it sleeps until woken. */
static void wake_idle(watch *w)
{
    if (atomic_load(&w->idle)) {
        pthread_mutex_lock(&w->lock);
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
    }
}

/* A deadline was set to `now` from `old`: count the ones running. */
static void count_deadline(watch *w, long long old, long long now)
{
    if (old == LLONG_MAX && now != LLONG_MAX) {
        atomic_fetch_add(&w->timed, 1);
        wake_idle(w);
    } else if (old != LLONG_MAX && now == LLONG_MAX) {
        atomic_fetch_sub(&w->timed, 1);
    }
}

watched *watch_add(watch *w, int fd)
{
    watched *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->fd = fd;
    atomic_init(&c->deadline_ms, now_ms() + w->client_timeout_s * 1000LL);
    atomic_fetch_add(&w->timed, 1);
    pthread_mutex_lock(&w->lock);
    pthread_cond_signal(&w->wake); /* if it sleeps until woken */
    c->next = w->head;
    if (c->next)
        c->next->prev = c;
    w->head = c;
    pthread_mutex_unlock(&w->lock);
    return c;
}

void watch_remove(watch *w, watched *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&w->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&w->lock);
    if (atomic_load(&c->deadline_ms) != LLONG_MAX)
        atomic_fetch_sub(&w->timed, 1);
    free(c);
}

void watch_turn(watch *w, watched *c, int client_turn)
{
    if (c) {
        long long now = client_turn ? now_ms() + w->client_timeout_s * 1000LL : LLONG_MAX;
        count_deadline(w, atomic_exchange(&c->deadline_ms, now), now);
    }
}

/* ------------------------------------------------------------------ the access log */

/* Write what is gathered. Under log_lock. */
static void log_flush_locked(watch *w, long long now)
{
    size_t done = 0;
    while (done < w->log_len) {
        ssize_t n = write(STDERR_FILENO, w->log_buf + done, w->log_len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* nowhere to report a failed log write */
        done += (size_t)n;
    }
    w->log_len = 0;
    w->log_written_ms = now;
    atomic_store(&w->log_pending, 0);
}

static void log_flush(watch *w)
{
    pthread_mutex_lock(&w->log_lock);
    if (w->log_len)
        log_flush_locked(w, now_ms());
    pthread_mutex_unlock(&w->log_lock);
}

/* The decimal digits of v (at least min of them, zero-padded) at o; the
 * end. */
static char *put_digits(char *o, unsigned long long v, int min)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v || n < min);
    while (n)
        *o++ = tmp[--n];
    return o;
}

static char *put_text(char *o, const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    memcpy(o, s, n);
    return o + n;
}

void watch_log(watch *w, const char *method, const char *path, int status, long long us)
{
    if (w->quiet)
        return;
    /* "<time>Z <method> <path> <status> <ms>.<us>ms": put together by
     * hand, one per request (snprintf was a third of a cached get_status'
     * own instructions). Bounded: 20 + 16 + 256 + 3 x 20 + 5 < 400. */
    char stamp[BTY_TIME_LEN + 1], line[400];
    time_format(clock_now(), stamp);
    char *o = put_text(line, stamp, 19);
    *o++ = 'Z';
    *o++ = ' ';
    o = put_text(o, method, 16);
    *o++ = ' ';
    o = put_text(o, path, 256);
    *o++ = ' ';
    o = put_digits(o, status > 0 ? (unsigned)status : 0, 1);
    *o++ = ' ';
    if (us < 0) /* a monotonic clock: never, but the digits want it so */
        us = 0;
    o = put_digits(o, (unsigned long long)us / 1000, 1);
    *o++ = '.';
    o = put_digits(o, (unsigned long long)us % 1000, 3);
    memcpy(o, "ms\n", 3);
    size_t n = (size_t)(o + 3 - line);
    long long now = now_ms();
    pthread_mutex_lock(&w->log_lock);
    if (w->log_len + n > sizeof(w->log_buf))
        log_flush_locked(w, now);
    memcpy(w->log_buf + w->log_len, line, n);
    w->log_len += n;
    if (now - w->log_written_ms >= LOG_DELAY_MS)
        log_flush_locked(w, now);
    int pending = w->log_len > 0;
    if (pending)
        atomic_store(&w->log_pending, 1);
    pthread_mutex_unlock(&w->log_lock);
    if (pending)
        wake_idle(w); /* the watchdog writes it out within LOG_DELAY_MS */
}

/* ------------------------------------------------------------------ the thread */

/* Once every quarter of the timeout (LOG_DELAY_MS at most), cut the
 * connections past their deadline, and write the access log out. */
static void *watchdog_main(void *arg)
{
    watch *w = arg;
    long long period = w->client_timeout_s * 250LL;
    if (period > LOG_DELAY_MS)
        period = LOG_DELAY_MS; /* it also writes the access log out */
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        long long now = now_ms();
        for (watched *c = w->head; c; c = c->next)
            if (!c->cut && atomic_load(&c->deadline_ms) < now) {
                shutdown(c->fd, SHUT_RDWR);
                c->cut = 1;
            }
        pthread_mutex_unlock(&w->lock);
        log_flush(w);
        pthread_mutex_lock(&w->lock);
        if (w->stop)
            break;
        atomic_store(&w->idle, 1);
        if (!atomic_load(&w->timed) && !atomic_load(&w->log_pending)) {
            pthread_cond_wait(&w->wake, &w->lock); /* until there is something to do */
            atomic_store(&w->idle, 0);
            continue;
        }
        atomic_store(&w->idle, 0);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += period / 1000;
        until.tv_nsec += (period % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&w->wake, &w->lock, &until);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static void watch_free(watch *w)
{
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    pthread_mutex_destroy(&w->log_lock);
    free(w);
}

watch *watch_start(int client_timeout_s, int quiet)
{
    watch *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->client_timeout_s = client_timeout_s;
    w->quiet = quiet;
    /* The watchdog waits on a monotonic clock: setting the wall clock must
     * neither cut connections nor spare them. */
    pthread_condattr_t cattr;
    if (pthread_condattr_init(&cattr) != 0) {
        free(w);
        return NULL;
    }
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    int cond_rc = pthread_cond_init(&w->wake, &cattr);
    pthread_condattr_destroy(&cattr);
    if (cond_rc != 0) {
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->log_lock, NULL);
    if (pthread_create(&w->thread, NULL, watchdog_main, w) != 0) {
        watch_free(w);
        return NULL;
    }
    return w;
}

void watch_stop(watch *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    log_flush(w);
    watch_free(w);
}
