/*
 * reads.c - get_status answered from memory: each workflow's document as
 * this process last read it, with its ETag, trusted while Redis tracks
 * that read and has said of no change since (track.c, through rows.c's
 * state: the same invalidations, FLUSHes and connection epoch). An
 * entry whose key Redis invalidated, or made under another connection or
 * subscription, is dropped when met, and all of them go at once when
 * either connection is lost (reads_clear); a write through this process
 * invalidates its key before it is answered (apply.c), so this process
 * reads its own writes.
 *
 * Thread-safe (one mutex). Bounded: past the budget (--read-cache-mb),
 * the least recently used entries go.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shell.h"

typedef struct entry {
    struct entry *next;          /* in its bucket */
    struct entry *newer, *older; /* in the use order */
    rows_stamp stamp;            /* of the read it was made from */
    char etag[24];
    size_t size; /* what it counts against the budget */
    char *body;  /* the answer: the document as JSON */
    char key[];
} entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry **buckets;
static size_t nbuckets, count, bytes, budget;
static entry *newest, *oldest;

static size_t bucket_of(const char *key)
{
    return (size_t)(track_hash(0, key, strlen(key)) % nbuckets);
}

static void unlink_use(entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        oldest = e->newer;
    e->newer = e->older = NULL;
}

static void link_newest(entry *e)
{
    e->older = newest;
    e->newer = NULL;
    if (newest)
        newest->newer = e;
    newest = e;
    if (!oldest)
        oldest = e;
}

/* Take e, out of the use order already, out of its bucket, and free it. */
static void forget(entry *e)
{
    entry **at = &buckets[bucket_of(e->key)];
    while (*at != e)
        at = &(*at)->next;
    *at = e->next;
    bytes -= e->size;
    count--;
    free(e->body);
    free(e);
}

static void drop(entry *e)
{
    unlink_use(e);
    forget(e);
}

/* Drop the least recently used entry (there is one). */
static void drop_oldest(void)
{
    entry *e = oldest;
    oldest = e->newer;
    if (oldest)
        oldest->older = NULL;
    else
        newest = NULL;
    forget(e);
}

void reads_setup(size_t budget_bytes)
{
    pthread_mutex_lock(&lock);
    budget = budget_bytes;
    pthread_mutex_unlock(&lock);
}

int reads_get(const char *key, char **body, char etag[24])
{
    int found = 0;
    pthread_mutex_lock(&lock);
    entry *e = nbuckets ? buckets[bucket_of(key)] : NULL;
    while (e && strcmp(e->key, key) != 0)
        e = e->next;
    if (e && !rows_stamp_holds(key, e->stamp)) {
        drop(e); /* Redis said it changed, or tracking was lost since */
        e = NULL;
    }
    if (e && (*body = strdup(e->body))) {
        memcpy(etag, e->etag, 24);
        unlink_use(e);
        link_newest(e);
        found = 1;
    }
    pthread_mutex_unlock(&lock);
    return found;
}

/* Twice as many buckets as entries; 0, or -1 when out of memory. */
static int grow(void)
{
    size_t n = nbuckets ? nbuckets * 2 : 1024;
    entry **grown = calloc(n, sizeof(entry *));
    if (!grown)
        return -1;
    entry **old = buckets;
    size_t old_n = nbuckets;
    buckets = grown;
    nbuckets = n;
    for (size_t i = 0; i < old_n; i++)
        for (entry *e = old[i], *next; e; e = next) {
            next = e->next;
            size_t b = bucket_of(e->key);
            e->next = buckets[b];
            buckets[b] = e;
        }
    free(old);
    return 0;
}

void reads_put(const char *key, const char *body, const char *etag, rows_stamp stamp)
{
    size_t key_len = strlen(key), body_len = strlen(body);
    size_t size = sizeof(entry) + key_len + 1 + body_len + 1;
    pthread_mutex_lock(&lock);
    if (!stamp.epoch || size > budget || (count >= nbuckets / 2 && grow() != 0)) {
        pthread_mutex_unlock(&lock);
        return; /* not tracked, too large, or out of memory: not kept */
    }
    entry *e = buckets[bucket_of(key)];
    while (e && strcmp(e->key, key) != 0)
        e = e->next;
    if (e)
        drop(e);
    e = malloc(size - body_len - 1);
    char *copy = e ? malloc(body_len + 1) : NULL;
    if (!copy) {
        free(e);
        pthread_mutex_unlock(&lock);
        return;
    }
    memcpy(e->key, key, key_len + 1);
    memcpy(copy, body, body_len + 1);
    e->body = copy;
    e->stamp = stamp;
    snprintf(e->etag, sizeof(e->etag), "%s", etag);
    e->size = size;
    size_t b = bucket_of(key);
    e->next = buckets[b];
    buckets[b] = e;
    link_newest(e);
    count++;
    bytes += size;
    while (bytes > budget && oldest && oldest != e)
        drop_oldest();
    pthread_mutex_unlock(&lock);
}

/* Free every entry; the buckets stay. Under the lock. */
static void forget_all(void)
{
    for (size_t i = 0; i < nbuckets; i++) {
        for (entry *e = buckets[i], *next; e; e = next) {
            next = e->next;
            free(e->body);
            free(e);
        }
        buckets[i] = NULL;
    }
    newest = oldest = NULL;
    count = bytes = 0;
}

void reads_counts(size_t *entries, size_t *bytes_kept)
{
    pthread_mutex_lock(&lock);
    *entries = count;
    *bytes_kept = bytes;
    pthread_mutex_unlock(&lock);
}

void reads_clear(void)
{
    pthread_mutex_lock(&lock);
    forget_all();
    pthread_mutex_unlock(&lock);
}

void reads_stop(void)
{
    pthread_mutex_lock(&lock);
    forget_all();
    free(buckets);
    buckets = NULL;
    nbuckets = 0;
    pthread_mutex_unlock(&lock);
}
