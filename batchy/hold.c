/*
 * hold.c - held requests and event streams (SPEC section 10): who waits
 * for which workflow, and waking them when it changes.
 *
 * A held get_status is a waiter: a suspended HTTP connection, the key it
 * read, the ETag it has seen and a deadline. Waiters of one key form a
 * group, and a group is what is read: a change notice for a workflow
 * (notice.c) makes each of its groups read its key once, in one round
 * trip of the store, however many wait on it; the answer is rendered once
 * and handed to every waiter whose ETag it no longer matches, which is
 * resumed and answers it (api.c). So ten thousand waiters of one workflow
 * cost one read and one rendering per change, and nothing while nothing
 * changes but one bounded re-check every RECHECK_MS. A change made by
 * hand in Redis publishes no notice: Redis' invalidation of the key (a
 * group's reads are tracked) is its notice, and the re-check sees it when
 * tracking is off.
 *
 * A notice can come between the read a handler made and the moment its
 * waiter is added here: each workflow's notices are counted (hold_seq),
 * the handler takes the count before its read, and a waiter added with an
 * older count has its group read again at once.
 *
 * An event stream (GET /events) is a buffer of text that the HTTP layer
 * sends as it can. A notice for a workflow a stream follows reads it
 * (the same group mechanism) and appends one event per change: a change
 * through Batchy comes twice (notice and invalidation), so a group keeps
 * the ETag of its last event while streams are open; a comment
 * every 15 s keeps proxies from cutting an idle stream. A reader slower
 * than what it is sent is cut once its buffer holds STREAM_MAX bytes.
 *
 * Threads: workers add waiters and open and read streams; the notice
 * thread brings notices and runs the clock (hold_tick); the store thread
 * brings the reads. One mutex guards everything here. A waiter is
 * resumed by whoever takes it out of its group, after the lock is let go
 * (a suspended connection cannot close, so it is still there); nothing
 * here touches a waiter after resuming it.
 */
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shell.h"

#define BUCKETS      1024 /* a power of two */
#define RECHECK_MS   2000 /* a change made by hand is seen this late */
#define RECHECK_MAX  256  /* groups re-read per re-check at most */
#define COMMENT_MS   15000
#define STREAM_MAX   (64 * 1024)
#define EVENT_MAX    4096 /* an event's JSON at most (a row of counts) */
#define STREAM_NAMES 64   /* ?wf= names at most */

struct hold_result {
    atomic_int refs;
    char etag[24];
    size_t len;
    char body[]; /* get_status's 200 answer */
};

struct hold_group {
    hold_group *chain;         /* in its bucket (by workflow) */
    hold_group *newer, *older; /* the re-check order */
    unsigned hash;
    char workflow[BTY_KEY_MAX]; /* whose notices concern it */
    char key[BTY_KEY_MAX];      /* what it reads */
    hold_waiter *waiters;       /* a list, through next/prev */
    size_t nwaiters;
    hold_group *submit_next; /* group_read's list */
    int reading;             /* call is with the store */
    int again;               /* a notice came while reading: read once more */
    int events;              /* streams want an event from the read under way */
    int has_event;           /* event_etag is the last event sent */
    char event_etag[24];
    store_call call;
};

struct hold_stream {
    hold_stream *next, *prev;
    void *conn;
    int started, suspended, ended, cut;
    int live; /* its first line sent: the events of every change from then on */
    size_t nnames;
    char (*names)[BTY_KEY_MAX]; /* the workflows followed; none: all */
    char *buf;                  /* what is to be sent: buf[from..len) */
    size_t from, len, cap;
};

static struct {
    pthread_mutex_t lock;
    hold_conn_fn resume, suspend;
    int stopping;
    hold_group *buckets[BUCKETS];
    hold_group *newest, *oldest; /* every group, by when last re-checked */
    size_t ngroups;
    hold_waiter **heap; /* waiters by deadline, a binary heap */
    size_t nheap, heap_room;
    hold_stream *streams;
    size_t nstreams;
    long long next_recheck_ms, next_comment_ms;
    atomic_ullong epoch;        /* resyncs: every workflow's count moves */
    atomic_size_t listeners;    /* nheap + nstreams, read without the lock */
    atomic_ullong seq[BUCKETS]; /* notices, by workflow's bucket */
} hold = {.lock = PTHREAD_MUTEX_INITIALIZER};

long long hold_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned name_hash(const char *name)
{
    unsigned h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

int hold_listening(void)
{
    return atomic_load(&hold.listeners) > 0;
}

unsigned long long hold_seq(const char *workflow)
{
    return atomic_load(&hold.epoch) + atomic_load(&hold.seq[name_hash(workflow) & (BUCKETS - 1)]);
}

void hold_result_release(hold_result *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1)
        free(r);
}

const char *hold_result_body(const hold_result *r, size_t *len, const char **etag)
{
    *len = r->len;
    *etag = r->etag;
    return r->body;
}

/* ------------------------------------------------------------------ the heap */

static void heap_set(size_t i, hold_waiter *w)
{
    hold.heap[i] = w;
    w->heap_index = i;
}

static void heap_up(size_t i)
{
    hold_waiter *w = hold.heap[i];
    while (i > 0 && hold.heap[(i - 1) / 2]->deadline_ms > w->deadline_ms) {
        heap_set(i, hold.heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(i, w);
}

static void heap_down(size_t i)
{
    hold_waiter *w = hold.heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= hold.nheap)
            break;
        if (c + 1 < hold.nheap && hold.heap[c + 1]->deadline_ms < hold.heap[c]->deadline_ms)
            c++;
        if (hold.heap[c]->deadline_ms >= w->deadline_ms)
            break;
        heap_set(i, hold.heap[c]);
        i = c;
    }
    heap_set(i, w);
}

static int heap_push(hold_waiter *w)
{
    if (hold.nheap == hold.heap_room) {
        size_t room = hold.heap_room ? 2 * hold.heap_room : 64;
        hold_waiter **h = realloc(hold.heap, room * sizeof(hold_waiter *));
        if (!h)
            return -1;
        hold.heap = h;
        hold.heap_room = room;
    }
    heap_set(hold.nheap++, w);
    heap_up(hold.nheap - 1);
    return 0;
}

static void heap_remove(hold_waiter *w)
{
    size_t i = w->heap_index;
    hold_waiter *last = hold.heap[--hold.nheap];
    if (i == hold.nheap)
        return;
    heap_set(i, last);
    heap_up(i);
    heap_down(last->heap_index);
}

/* ------------------------------------------------------------------ groups */

static hold_group *group_find(const char *workflow, const char *key, unsigned h)
{
    for (hold_group *g = hold.buckets[h & (BUCKETS - 1)]; g; g = g->chain)
        if (strcmp(g->key, key) == 0 && strcmp(g->workflow, workflow) == 0)
            return g;
    return NULL;
}

static void order_unlink(hold_group *g)
{
    if (g->newer)
        g->newer->older = g->older;
    else
        hold.newest = g->older;
    if (g->older)
        g->older->newer = g->newer;
    else
        hold.oldest = g->newer;
    g->newer = g->older = NULL;
}

static void order_push_newest(hold_group *g)
{
    g->older = hold.newest;
    g->newer = NULL;
    if (hold.newest)
        hold.newest->newer = g;
    else
        hold.oldest = g;
    hold.newest = g;
}

static hold_group *group_get(const char *workflow, const char *key)
{
    unsigned h = name_hash(workflow);
    hold_group *g = group_find(workflow, key, h);
    if (g)
        return g;
    if (!(g = calloc(1, sizeof(*g))))
        return NULL;
    g->hash = h;
    snprintf(g->workflow, sizeof(g->workflow), "%s", workflow);
    snprintf(g->key, sizeof(g->key), "%s", key);
    g->chain = hold.buckets[h & (BUCKETS - 1)];
    hold.buckets[h & (BUCKETS - 1)] = g;
    order_push_newest(g);
    hold.ngroups++;
    return g;
}

/* Free g if nothing needs it any more: no waiter, no read under way,
 * and no event it remembers while streams are open (a change comes as a
 * notice and as Redis' invalidation, and its second read must find the
 * first's event to send none). */
static void group_maybe_free(hold_group *g)
{
    if (g->nwaiters || g->reading || (g->has_event && hold.nstreams))
        return;
    hold_group **at = &hold.buckets[g->hash & (BUCKETS - 1)];
    while (*at != g)
        at = &(*at)->chain;
    *at = g->chain;
    order_unlink(g);
    hold.ngroups--;
    store_call_clear(&g->call);
    free(g);
}

static void group_read_done(void *arg);

/* Read g's key (or once more after the read under way): the call is
 * built here and chained on *submit, for submit_reads to hand to the
 * store once the lock is let go (store_submit calls back at once when the
 * store is stopping, and group_read_done takes the lock). A group reading
 * is never freed. */
static void group_read(hold_group *g, hold_group **submit)
{
    if (g->reading) {
        g->again = 1;
        return;
    }
    /* Tracked: a change made by hand then comes as Redis' invalidation
     * (notice.c) and wakes the group at once. Asked whether tracking is
     * on or not (the store may not be connected yet to know): when it is
     * off, Redis refuses the CLIENT CACHING and the read is not tracked. */
    bty_error err;
    char *keys[] = {g->key};
    if (store_call_reads(&g->call, keys, 1, 1, &err) != 0)
        return; /* out of memory: the next re-check tries again */
    g->reading = 1;
    g->submit_next = *submit;
    *submit = g;
}

static void submit_reads(hold_group *submit)
{
    while (submit) {
        hold_group *next = submit->submit_next;
        store_submit(&submit->call, 0, group_read_done, submit);
        submit = next;
    }
}

/* ------------------------------------------------------------------ waking */

/* Take w out of its group and the heap, with its outcome; the caller
 * resumes it once the lock is let go (w->wake_next chains them). */
static void waiter_take(hold_waiter *w, int outcome, hold_result *result, hold_waiter **woken)
{
    hold_group *g = w->group; /* every waiter here has one */
    assert(g);
    if (w->prev)
        w->prev->next = w->next;
    else
        g->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    g->nwaiters--;
    heap_remove(w);
    atomic_fetch_sub(&hold.listeners, 1);
    w->group = NULL;
    w->outcome = outcome;
    if (result)
        atomic_fetch_add(&result->refs, 1);
    w->result = result;
    w->wake_next = *woken;
    *woken = w;
}

static void resume_all(hold_waiter *woken)
{
    while (woken) {
        hold_waiter *next = woken->wake_next;
        hold.resume(woken->conn); /* w may be gone from here on */
        woken = next;
    }
}

/* ------------------------------------------------------------------ streams */

/* Append text to s; a stream that would hold more than STREAM_MAX bytes
 * unsent is cut instead. */
static void stream_append(hold_stream *s, const char *text, size_t n)
{
    if (s->ended || s->cut)
        return;
    if (s->from == s->len)
        s->from = s->len = 0;
    if (s->len - s->from + n > STREAM_MAX) {
        s->cut = 1;
        return;
    }
    if (s->len + n > s->cap && s->from) { /* slide what is left to the front */
        memmove(s->buf, s->buf + s->from, s->len - s->from);
        s->len -= s->from;
        s->from = 0;
    }
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap < s->len + n)
            cap *= 2;
        char *buf = realloc(s->buf, cap);
        if (!buf) {
            s->cut = 1;
            return;
        }
        s->buf = buf;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, text, n);
    s->len += n;
}

/* Note s's connection in conns to be resumed, if it is suspended. With no
 * room (out of memory) it stays suspended until the next comment. */
static void stream_wake(hold_stream *s, void **conns, size_t *n)
{
    if (s->suspended && conns) {
        s->suspended = 0;
        conns[(*n)++] = s->conn;
    }
}

static int stream_follows(const hold_stream *s, const char *workflow)
{
    if (!s->nnames)
        return 1;
    for (size_t i = 0; i < s->nnames; i++)
        if (strcmp(s->names[i], workflow) == 0)
            return 1;
    return 0;
}

/* Room for the connections of every stream, or NULL. */
static void **stream_room(void)
{
    return hold.nstreams ? malloc(hold.nstreams * sizeof(void *)) : NULL;
}

static void resume_streams(void **conns, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hold.resume(conns[i]);
    free(conns);
}

/* The event of a workflow as read: "data: <json>\n\n", its length (0 when
 * out of memory). */
static size_t event_text(const char *workflow, const bty_hash *hash, const bty_error *failure,
                         char *out, size_t size)
{
    cJSON *ev = NULL;
    if (failure) {
        ev = view_event(workflow, NULL, failure->message);
    } else if (hash->n == 0) {
        ev = view_event(workflow, NULL, "not loaded");
    } else {
        bty_error err = {0};
        cJSON *doc = doc_from_hash(hash->fields, hash->n, workflow, &err);
        ev = view_event(workflow, doc, err.message);
        cJSON_Delete(doc);
    }
    char *json = ev ? cJSON_PrintUnformatted(ev) : NULL;
    cJSON_Delete(ev);
    size_t n = json ? (size_t)snprintf(out, size, "data: %s\n\n", json) : 0;
    free(json);
    return n < size ? n : 0;
}

/* ------------------------------------------------------------------ a group's read */

/* The store's done callback, on its thread: g's key as it is now. */
static void group_read_done(void *arg)
{
    hold_group *g = arg;
    bty_hash hash = {0};
    bty_error err = {0};
    int failed = store_read_result(&g->call, &hash, &err) != 0;
    char etag[24] = "";
    hold_result *result = NULL;
    char event[EVENT_MAX];
    size_t event_len = 0;
    if (!failed && hash.n) {
        snprintf(etag, sizeof(etag), "\"%016llx\"", (unsigned long long)rows_fingerprint(&hash));
        /* Rendered once for every waiter, outside the lock. */
        bty_error ignored;
        cJSON *doc = doc_from_hash(hash.fields, hash.n, g->key, &ignored);
        char *text = doc ? format_json(doc) : NULL;
        cJSON_Delete(doc);
        size_t len = text ? strlen(text) : 0;
        if (text && (result = malloc(sizeof(*result) + len + 1))) {
            atomic_init(&result->refs, 1);
            memcpy(result->etag, etag, sizeof(etag));
            result->len = len;
            memcpy(result->body, text, len + 1);
        }
        free(text);
    }
    /* What the last event was of: the ETag, or "-" for a workflow gone; a
     * failed read is never the same as the last (its error is news). */
    char seen[24] = "";
    if (!failed)
        snprintf(seen, sizeof(seen), "%s", hash.n ? etag : "-");
    /* g->events is only ever set on a group reading its workflow's key. */
    pthread_mutex_lock(&hold.lock);
    int events = g->events && !(g->has_event && strcmp(g->event_etag, seen) == 0);
    g->events = 0;
    pthread_mutex_unlock(&hold.lock);
    if (events)
        event_len = event_text(g->workflow, &hash, failed ? &err : NULL, event, sizeof(event));

    pthread_mutex_lock(&hold.lock);
    g->reading = 0;
    void **conns = NULL;
    size_t nconns = 0;
    if (event_len) {
        g->has_event = seen[0] != '\0';
        memcpy(g->event_etag, seen, sizeof(seen));
        conns = stream_room();
        for (hold_stream *s = hold.streams; s; s = s->next)
            if (s->live && stream_follows(s, g->workflow)) {
                stream_append(s, event, event_len);
                stream_wake(s, conns, &nconns);
            }
    }
    hold_waiter *woken = NULL;
    for (hold_waiter *w = g->waiters, *next; w; w = next) {
        next = w->next;
        if (failed) {
            waiter_take(w, HOLD_FAILED, NULL, &woken);
            w->err = err;
        } else if (!hash.n || strcmp(w->etag, etag) != 0) {
            waiter_take(w, HOLD_CHANGED, result, &woken); /* no result: read it yourself */
        }
    }
    hold_group *submit = NULL;
    if (g->again) {
        g->again = 0;
        group_read(g, &submit);
    }
    group_maybe_free(g);
    pthread_mutex_unlock(&hold.lock);

    store_hash_free(&hash);
    hold_result_release(result);
    resume_all(woken);
    resume_streams(conns, nconns);
    submit_reads(submit);
}

/* ------------------------------------------------------------------ the interface */

void hold_start(hold_conn_fn suspend, hold_conn_fn resume)
{
    hold.suspend = suspend;
    hold.resume = resume;
}

void hold_add(hold_waiter *w, void *conn)
{
    w->conn = conn;
    w->next = w->prev = w->wake_next = NULL;
    w->result = NULL;
    pthread_mutex_lock(&hold.lock);
    hold_group *g = hold.stopping ? NULL : group_get(w->workflow, w->key);
    if (!g || heap_push(w) != 0) {
        w->outcome = hold.stopping ? HOLD_STOPPING : HOLD_FAILED;
        bty_error_set(&w->err, 503, "out of memory holding the request; try again");
        if (g)
            group_maybe_free(g);
        pthread_mutex_unlock(&hold.lock);
        hold.resume(conn);
        return;
    }
    int first = atomic_fetch_add(&hold.listeners, 1) == 0; /* notices wanted */
    w->group = g;
    w->next = g->waiters;
    if (g->waiters)
        g->waiters->prev = w;
    g->waiters = w;
    g->nwaiters++;
    /* A notice since the handler's read may have been missed: read now. */
    hold_group *submit = NULL;
    if (hold_seq(w->workflow) != w->seq)
        group_read(g, &submit);
    first = first || hold.heap[0] == w; /* or the clock must wake sooner */
    pthread_mutex_unlock(&hold.lock);
    submit_reads(submit);
    if (first)
        notice_wake();
}

void hold_notice(const char *workflow)
{
    unsigned h = name_hash(workflow);
    atomic_fetch_add(&hold.seq[h & (BUCKETS - 1)], 1);
    /* Nobody listening (the usual case under a load of writes): the count
     * is all. A waiter added meanwhile sees it moved (hold_add). */
    if (!atomic_load(&hold.listeners))
        return;
    pthread_mutex_lock(&hold.lock);
    int wanted = 0;
    for (hold_stream *s = hold.streams; s && !wanted; s = s->next)
        wanted = s->live && !s->ended && stream_follows(s, workflow);
    if (wanted) {
        hold_group *g = group_get(workflow, workflow);
        if (g)
            g->events = 1;
    }
    hold_group *submit = NULL;
    for (hold_group *g = hold.buckets[h & (BUCKETS - 1)]; g; g = g->chain)
        if (g->hash == h && strcmp(g->workflow, workflow) == 0 && (g->nwaiters || g->events))
            group_read(g, &submit);
    pthread_mutex_unlock(&hold.lock);
    submit_reads(submit);
}

/* Read up to max groups that have waiters, the least recently checked
 * first; chain them on *submit. */
static void recheck(size_t max, hold_group **submit)
{
    size_t n = 0, seen = 0, total = hold.ngroups;
    hold_group *g = hold.oldest;
    while (g && n < max && seen++ < total) {
        hold_group *next = g->newer;
        if (g->nwaiters && !g->reading) {
            order_unlink(g);
            order_push_newest(g);
            group_read(g, submit);
            n++;
        }
        g = next;
    }
}

void hold_resync(void)
{
    atomic_fetch_add(&hold.epoch, 1);
    hold_group *submit = NULL;
    pthread_mutex_lock(&hold.lock);
    recheck(hold.ngroups, &submit);
    pthread_mutex_unlock(&hold.lock);
    submit_reads(submit);
}

long long hold_tick(void)
{
    long long now = hold_now_ms();
    hold_group *submit = NULL;
    hold_waiter *woken = NULL;
    void **conns = NULL;
    size_t nconns = 0;
    pthread_mutex_lock(&hold.lock);
    while (hold.nheap && hold.heap[0]->deadline_ms <= now) {
        hold_group *g = hold.heap[0]->group;
        waiter_take(hold.heap[0], HOLD_TIMEOUT, NULL, &woken);
        group_maybe_free(g);
    }
    if (now >= hold.next_recheck_ms) {
        recheck(RECHECK_MAX, &submit);
        hold.next_recheck_ms = now + RECHECK_MS;
    }
    if (hold.nstreams && now >= hold.next_comment_ms) {
        conns = stream_room();
        for (hold_stream *s = hold.streams; s; s = s->next)
            if (s->live) {
                stream_append(s, ":\n\n", 3);
                stream_wake(s, conns, &nconns);
            }
        hold.next_comment_ms = now + COMMENT_MS;
    }
    /* The next time something is due; nothing held and no stream: none. */
    long long next = -1;
    if (hold.nheap)
        next = hold.heap[0]->deadline_ms < hold.next_recheck_ms ? hold.heap[0]->deadline_ms
                                                                : hold.next_recheck_ms;
    if (hold.nstreams && (next < 0 || hold.next_comment_ms < next))
        next = hold.next_comment_ms;
    pthread_mutex_unlock(&hold.lock);
    resume_all(woken);
    resume_streams(conns, nconns);
    submit_reads(submit);
    return next < 0 ? -1 : next - now < 0 ? 0 : next - now;
}

void hold_stop(void)
{
    hold_waiter *woken = NULL;
    size_t nconns = 0;
    pthread_mutex_lock(&hold.lock);
    hold.stopping = 1;
    while (hold.nheap) {
        hold_group *g = hold.heap[0]->group;
        waiter_take(hold.heap[0], HOLD_STOPPING, NULL, &woken);
        group_maybe_free(g);
    }
    free(hold.heap); /* no waiter is added from now on */
    hold.heap = NULL;
    hold.heap_room = 0;
    void **conns = stream_room();
    for (hold_stream *s = hold.streams; s; s = s->next) {
        s->ended = 1;
        stream_wake(s, conns, &nconns);
    }
    pthread_mutex_unlock(&hold.lock);
    resume_all(woken);
    resume_streams(conns, nconns);
}

void hold_counts(size_t *held, size_t *streams)
{
    pthread_mutex_lock(&hold.lock);
    *held = hold.nheap;
    *streams = hold.nstreams;
    pthread_mutex_unlock(&hold.lock);
}

/* ------------------------------------------------------------------ streams' interface */

hold_stream *hold_stream_open(const char *names, bty_error *err)
{
    hold_stream *s = calloc(1, sizeof(*s));
    if (!s) {
        bty_error_set(err, 503, "out of memory; try again");
        return NULL;
    }
    for (const char *p = names; p && *p;) {
        size_t n = strcspn(p, ",");
        char name[BTY_KEY_MAX];
        if (n == 0 || n >= sizeof(name)) {
            bty_error_set(err, 400, "wf= is a comma-separated list of workflow names");
            goto fail;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        if (name_workflow_check(name, err) != 0)
            goto fail;
        if (s->nnames == STREAM_NAMES) {
            bty_error_set(err, 400, "wf= names %d workflows at most", STREAM_NAMES);
            goto fail;
        }
        if (!s->names && !(s->names = calloc(STREAM_NAMES, sizeof(*s->names)))) {
            bty_error_set(err, 503, "out of memory; try again");
            goto fail;
        }
        memcpy(s->names[s->nnames++], name, n + 1);
        p += n + (p[n] == ',');
    }
    pthread_mutex_lock(&hold.lock);
    int stopping = hold.stopping;
    if (!stopping) {
        s->next = hold.streams;
        if (hold.streams)
            hold.streams->prev = s;
        hold.streams = s;
        hold.nstreams++;
        if (atomic_fetch_add(&hold.listeners, 1) == 0)
            notice_wake(); /* notices wanted */
    }
    pthread_mutex_unlock(&hold.lock);
    if (!stopping)
        return s;
    bty_error_set(err, 503, "Batchy is stopping; try again in a moment");
fail:
    free(s->names);
    free(s);
    return NULL;
}

static const char HELLO[] = ": batchy events\n\n";

void hold_streams_live(void)
{
    pthread_mutex_lock(&hold.lock);
    void **conns = stream_room();
    size_t nconns = 0;
    for (hold_stream *s = hold.streams; s; s = s->next)
        if (s->started && !s->live) {
            s->live = 1;
            stream_append(s, HELLO, sizeof(HELLO) - 1);
            stream_wake(s, conns, &nconns);
        }
    pthread_mutex_unlock(&hold.lock);
    resume_streams(conns, nconns);
}

void hold_stream_start(hold_stream *s, void *conn)
{
    pthread_mutex_lock(&hold.lock);
    s->conn = conn;
    s->started = 1;
    /* Its first line once change notices come in: every change after it
     * has its event (notice.c subscribes when the first listener comes,
     * and calls hold_streams_live then). */
    if (notice_changes_live()) {
        s->live = 1;
        stream_append(s, HELLO, sizeof(HELLO) - 1);
    }
    int first = hold.nstreams == 1;
    if (first)
        hold.next_comment_ms = hold_now_ms() + COMMENT_MS;
    pthread_mutex_unlock(&hold.lock);
    if (first)
        notice_wake(); /* the clock may have nothing else to wake for */
}

long hold_stream_read(hold_stream *s, char *buf, size_t max)
{
    long n;
    pthread_mutex_lock(&hold.lock);
    if (s->cut) {
        n = HOLD_STREAM_CUT;
    } else if (s->len > s->from) {
        size_t k = s->len - s->from < max ? s->len - s->from : max;
        memcpy(buf, s->buf + s->from, k);
        s->from += k;
        n = (long)k;
    } else if (s->ended) {
        n = HOLD_STREAM_END;
    } else {
        /* Nothing to send: suspended, under the lock, so that whoever
         * appends next sees it and resumes it. */
        s->suspended = 1;
        hold.suspend(s->conn);
        n = 0;
    }
    pthread_mutex_unlock(&hold.lock);
    return n;
}

void hold_stream_close(hold_stream *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&hold.lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        hold.streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    hold.nstreams--;
    atomic_fetch_sub(&hold.listeners, 1);
    if (!hold.nstreams) /* the last: no event to remember any more */
        for (hold_group *g = hold.oldest, *next; g; g = next) {
            next = g->newer;
            group_maybe_free(g);
        }
    pthread_mutex_unlock(&hold.lock);
    free(s->names);
    free(s->buf);
    free(s);
}
