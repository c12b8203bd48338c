/*
 * rows.c - the /workflows row and /metrics lines of each workflow (page.c
 * texts, shared with the answers that send them), remembered with a
 * fingerprint of the hash they were made from, so that a listing parses
 * again only the workflows whose hash changed since (by any writer,
 * redis-cli included: the fingerprint is of the bytes read). Reading 10,000
 * workflows costs a round trip either way; parsing them all again cost
 * most of a listing.
 *
 * A row can also be trusted without reading its hash again: when it was
 * made from a read that Redis tracks (CLIENT TRACKING, store.c and
 * notice.c), Redis says when that hash changes, by any client, redis-cli
 * included; until it does, the row is the workflow's. Each invalidation
 * counts in a slot of inval[] (by key), and a row keeps the count of its
 * slot taken before its read was sent: an invalidation that comes while
 * the read is under way, or at any time after it, makes the counts differ
 * and the row untrusted. That is the race of Redis' client-side caching
 * guide (a read's reply and an invalidation of the same key crossing),
 * answered the way the guide does, with the count as the placeholder.
 * Rows trusted also share an epoch: the store's connection and the
 * subscription it redirects invalidations to, as they were when the read
 * was sent, and the FLUSHes seen; any change of those (a reconnection,
 * notices lost) makes every row untrusted at once.
 *
 * Thread-safe (one mutex). Bounded: past ROWS_MAX_BYTES everything is
 * forgotten at once, and the next listing builds it again.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shell.h"

#define ROWS_MAX_BYTES (32u << 20)

typedef struct row {
    struct row *next;
    uint64_t fingerprint;
    rows_stamp stamp; /* epoch 0: not trusted */
    int64_t until;    /* the row holds until then (Unix seconds): lateness */
    page_text *json;  /* the row as compact JSON */
    page_text *lines; /* its /metrics lines */
    char name[];
} row;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static track_state track; /* what Redis said changed (track.c) */
static row **buckets;     /* nbuckets chains */
static size_t nbuckets, count, bytes;

uint64_t rows_fingerprint(const bty_hash *h)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < h->n; i++) {
        uint64_t f = track_hash(0x243F6A8885A308D3ULL, h->fields[i].name, h->fields[i].name_len);
        /* summed: the same whatever order the fields come in */
        sum += track_mix(track_hash(f, h->fields[i].value, h->fields[i].value_len),
                         0xB7E151628AED2A6BULL);
    }
    return track_mix(sum, h->n);
}

static size_t bucket_of(const char *name);

void rows_invalidate(const char *key, size_t len)
{
    track_invalidate(&track, key, len);
}

void rows_invalidate_all(void)
{
    track_flush(&track);
}

rows_stamp rows_stamp_now(const char *name)
{
    return track_stamp_of(&track, name, strlen(name), store_track_epoch());
}

int rows_stamp_holds(const char *key, rows_stamp stamp)
{
    return track_trusted(&track, key, strlen(key), stamp, store_track_epoch());
}

/* What a listing wants of r (which: ROWS_ROW or ROWS_METRICS). */
static page_text *wanted(const row *r, int which)
{
    return which == ROWS_METRICS ? r->lines : r->json;
}

int rows_trusted(const char *name, int which, page_text **out)
{
    int rc = 0;
    if (!store_track_epoch())
        return 0;
    pthread_mutex_lock(&lock);
    for (row *r = nbuckets ? buckets[bucket_of(name)] : NULL; r; r = r->next) {
        if (strcmp(r->name, name) == 0) {
            if (rows_stamp_holds(name, r->stamp) && clock_now().sec < r->until) {
                *out = page_text_ref(wanted(r, which));
                rc = 1;
            }
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

static size_t bucket_of(const char *name)
{
    return (size_t)(track_hash(0, name, strlen(name)) % nbuckets);
}

static void forget_all(void)
{
    for (size_t i = 0; i < nbuckets; i++) {
        row *r = buckets[i];
        while (r) {
            row *next = r->next;
            page_text_release(r->json);
            page_text_release(r->lines);
            free(r);
            r = next;
        }
    }
    free(buckets);
    buckets = NULL;
    nbuckets = count = bytes = 0;
}

int rows_take(const char *name, uint64_t fingerprint, const rows_stamp *stamp, int which,
              page_text **out)
{
    int rc = 0;
    pthread_mutex_lock(&lock);
    for (row *r = nbuckets ? buckets[bucket_of(name)] : NULL; r; r = r->next) {
        if (strcmp(r->name, name) == 0) {
            if (r->fingerprint == fingerprint && clock_now().sec < r->until) {
                /* read again, unchanged: trusted as that read is */
                *out = page_text_ref(wanted(r, which));
                r->stamp = stamp ? *stamp : (rows_stamp){0, 0, 0};
                rc = 1;
            }
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

/* Grow the table to twice as many buckets as rows; 0, or -1. */
static int grow(void)
{
    size_t n = nbuckets ? nbuckets * 2 : 1024;
    row **grown = calloc(n, sizeof(row *));
    if (!grown)
        return -1;
    for (size_t i = 0; i < nbuckets; i++) {
        row *r = buckets[i];
        while (r) {
            row *next = r->next;
            size_t b = (size_t)(track_hash(0, r->name, strlen(r->name)) % n);
            r->next = grown[b];
            grown[b] = r;
            r = next;
        }
    }
    free(buckets);
    buckets = grown;
    nbuckets = n;
    return 0;
}

void rows_put(const char *name, uint64_t fingerprint, page_text *json, page_text *lines,
              int64_t until, const rows_stamp *stamp)
{
    rows_stamp untrusted = {0, 0, 0};
    size_t name_len = strlen(name), size = json->len + lines->len;
    pthread_mutex_lock(&lock);
    if (bytes + name_len + size + sizeof(row) > ROWS_MAX_BYTES)
        forget_all();
    if (count >= nbuckets / 2 && grow() != 0) {
        pthread_mutex_unlock(&lock);
        return; /* out of memory: not remembered */
    }
    row **at = &buckets[bucket_of(name)];
    while (*at && strcmp((*at)->name, name) != 0)
        at = &(*at)->next;
    row *r = *at;
    if (r) { /* the workflow changed: its new row */
        bytes -= r->json->len + r->lines->len;
        page_text_release(r->json);
        page_text_release(r->lines);
    } else {
        if (!(r = malloc(sizeof(*r) + name_len + 1))) {
            pthread_mutex_unlock(&lock);
            return;
        }
        memcpy(r->name, name, name_len + 1);
        r->next = NULL;
        *at = r;
        count++;
        bytes += sizeof(*r) + name_len + 1;
    }
    r->json = page_text_ref(json);
    r->lines = page_text_ref(lines);
    r->fingerprint = fingerprint;
    r->stamp = stamp ? *stamp : untrusted;
    r->until = until;
    bytes += size;
    pthread_mutex_unlock(&lock);
}

void rows_stop(void)
{
    pthread_mutex_lock(&lock);
    forget_all();
    pthread_mutex_unlock(&lock);
}
