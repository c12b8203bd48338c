/*
 * cache.c - what this process last wrote to each workflow's hash, so that
 * an open, close or fail can skip its read round trip.
 *
 * It is never trusted, only tried: a write computed from a cached workflow
 * goes out with the cached hash as its expectation, and Redis applies it
 * only if what the write depends on is as cached (plan.lua, apply.c);
 * otherwise the script answers with what the workflow does hold and the
 * call starts over from that. A stale entry (another process wrote the workflow, an operator
 * edited it) costs one round trip, never a wrong answer. What a call
 * answers without writing (an error, a retried close) is never taken from
 * here.
 *
 * An entry holds the hash as Redis holds it (the expectation) and, when it
 * fits, the same as a parsed document, which the rules read as it is: a
 * hit costs no read, no parse and no copy. Entries are immutable (cJSON
 * items are only read, from any thread) and reference-counted: a reader
 * holds one while it works, a newer entry replaces it in the table
 * meanwhile. The table holds
 * CACHE_BUDGET bytes at most and drops the least recently used entries
 * beyond that. One mutex guards the table; it is held only to look up,
 * insert or unlink, never to copy a hash.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "shell.h"

#define CACHE_BUDGET  (16u * 1024 * 1024) /* bytes of entries at most */
#define CACHE_BUCKETS 4096                /* a power of two */

struct cache_entry {
    struct cache_entry *chain;         /* next in the bucket, or to free */
    struct cache_entry *newer, *older; /* recency list */
    int refs;                          /* the table's and the readers' */
    size_t bytes;
    unsigned hash;
    char *name; /* the workflow, in block */
    bty_field *fields;
    size_t n;
    cJSON *doc; /* the fields as a document, or NULL; owned */
    /* the block: this struct, the fields, then their texts */
};

static struct {
    pthread_mutex_t lock;
    cache_entry *buckets[CACHE_BUCKETS];
    cache_entry *newest, *oldest;
    size_t bytes;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* FNV-1a: the bucket of a workflow name. */
static unsigned name_hash(const char *name)
{
    unsigned h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

/* ------------------------------------------------------------------ building */

/* One field of an entry under construction. */
typedef struct pending {
    const char *name, *value;
    size_t name_len, value_len;
} pending;

static int by_name(const void *a, const void *b)
{
    const pending *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static void entry_free(cache_entry *e)
{
    if (e)
        cJSON_Delete(e->doc);
    free(e);
}

/* An entry of fields fs (n of them) for workflow, in one block, with doc
 * (consumed) when it fits too; NULL when over the size an entry may have,
 * or out of memory. */
static cache_entry *entry_create(const char *workflow, const pending *fs, size_t n, cJSON *doc)
{
    size_t name_len = strlen(workflow);
    size_t bytes = sizeof(cache_entry) + n * sizeof(bty_field) + name_len + 1;
    for (size_t i = 0; i < n; i++)
        bytes += fs[i].name_len + fs[i].value_len + 2;
    /* A parsed document takes about three times its text. */
    size_t doc_bytes = 3 * (bytes - sizeof(cache_entry));
    if (bytes + doc_bytes > CACHE_BUDGET / 4) {
        cJSON_Delete(doc);
        doc = NULL;
        doc_bytes = 0;
    }
    if (bytes > CACHE_BUDGET / 4)
        return NULL;
    cache_entry *e = malloc(bytes);
    if (!e) {
        cJSON_Delete(doc);
        return NULL;
    }
    memset(e, 0, sizeof(*e));
    e->refs = 1;
    e->bytes = bytes + doc_bytes;
    e->doc = doc;
    e->hash = name_hash(workflow);
    e->fields = (bty_field *)(e + 1);
    e->n = n;
    char *text = (char *)(e->fields + n);
    e->name = memcpy(text, workflow, name_len + 1);
    text += name_len + 1;
    for (size_t i = 0; i < n; i++) {
        bty_field *f = &e->fields[i];
        f->name = memcpy(text, fs[i].name, fs[i].name_len);
        f->name_len = fs[i].name_len;
        text[f->name_len] = '\0';
        text += f->name_len + 1;
        f->value = memcpy(text, fs[i].value, fs[i].value_len);
        f->value_len = fs[i].value_len;
        text[f->value_len] = '\0';
        text += f->value_len + 1;
    }
    return e;
}

cache_entry *cache_entry_after(const char *workflow, const bty_field *base, size_t nbase,
                               const bty_write_plan *plan, cJSON *doc)
{
    const bty_hash_write *w = NULL;
    for (size_t i = 0; i < plan->n; i++)
        if (strcmp(plan->hashes[i].key, workflow) == 0)
            w = &plan->hashes[i];
    pending *fs = w ? malloc((w->n + nbase + 1) * sizeof(*fs)) : NULL;
    if (!fs) {
        cJSON_Delete(doc);
        return NULL; /* not a write of the workflow: nothing to learn */
    }
    if (w->mode != WRITE_MERGE)
        nbase = 0; /* replaced (or created): only what the plan writes */
    for (size_t i = 0; i < w->n; i++)
        fs[i] = (pending){w->names[i], w->values[i], strlen(w->names[i]), strlen(w->values[i])};
    /* The plan's fields, sorted, win over the base's of the same name. */
    qsort(fs, w->n, sizeof(*fs), by_name);
    size_t n = w->n;
    for (size_t i = 0; i < nbase; i++) {
        pending key = {base[i].name, base[i].value, base[i].name_len, base[i].value_len};
        if (!bsearch(&key, fs, w->n, sizeof(*fs), by_name))
            fs[n++] = key;
    }
    cache_entry *e = entry_create(workflow, fs, n, doc);
    free(fs);
    return e;
}

/* ------------------------------------------------------------------ the table */

void cache_release(cache_entry *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&cache.lock);
    int last = --e->refs == 0;
    pthread_mutex_unlock(&cache.lock);
    if (last)
        entry_free(e);
}

/* The entry of workflow in the table, or NULL. Under the lock. */
static cache_entry **slot_of(const char *workflow, unsigned hash)
{
    cache_entry **at = &cache.buckets[hash & (CACHE_BUCKETS - 1)];
    while (*at && ((*at)->hash != hash || strcmp((*at)->name, workflow) != 0))
        at = &(*at)->chain;
    return at;
}

static void recency_unlink(cache_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        cache.newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        cache.oldest = e->newer;
    e->newer = e->older = NULL;
}

static void recency_push(cache_entry *e)
{
    e->older = cache.newest;
    e->newer = NULL;
    if (cache.newest)
        cache.newest->newer = e;
    else
        cache.oldest = e;
    cache.newest = e;
}

/* Take e out of the table. When that was its last reference, add it to
 * *unused, to be freed after unlocking. Under the lock. */
static void unlist(cache_entry *e, cache_entry **unused)
{
    *slot_of(e->name, e->hash) = e->chain;
    recency_unlink(e);
    cache.bytes -= e->bytes;
    if (--e->refs == 0) {
        e->chain = *unused;
        *unused = e;
    }
}

static void free_all(cache_entry *unused)
{
    while (unused) {
        cache_entry *next = unused->chain;
        entry_free(unused);
        unused = next;
    }
}

int cache_get(const char *workflow, bty_hash *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&cache.lock);
    cache_entry *e = *slot_of(workflow, name_hash(workflow));
    if (e) {
        e->refs++;
        recency_unlink(e);
        recency_push(e);
    }
    pthread_mutex_unlock(&cache.lock);
    if (!e)
        return 0;
    out->fields = e->fields;
    out->n = e->n;
    out->cached = e;
    return 1;
}

const cJSON *cache_doc(const cache_entry *e)
{
    return e ? e->doc : NULL;
}

void cache_put(cache_entry *e)
{
    if (!e)
        return;
    cache_entry *unused = NULL;
    pthread_mutex_lock(&cache.lock);
    cache_entry *old = *slot_of(e->name, e->hash);
    if (old)
        unlist(old, &unused);
    cache_entry **bucket = &cache.buckets[e->hash & (CACHE_BUCKETS - 1)];
    e->chain = *bucket;
    *bucket = e;
    recency_push(e);
    cache.bytes += e->bytes;
    /* Over the budget: drop the least recently used. */
    while (cache.bytes > CACHE_BUDGET && cache.oldest != e)
        unlist(cache.oldest, &unused);
    pthread_mutex_unlock(&cache.lock);
    free_all(unused);
}

void cache_forget(const char *workflow)
{
    cache_entry *unused = NULL;
    pthread_mutex_lock(&cache.lock);
    cache_entry *e = *slot_of(workflow, name_hash(workflow));
    if (e)
        unlist(e, &unused);
    pthread_mutex_unlock(&cache.lock);
    free_all(unused);
}

void cache_clear(void)
{
    cache_entry *unused = NULL;
    pthread_mutex_lock(&cache.lock);
    while (cache.oldest)
        unlist(cache.oldest, &unused);
    pthread_mutex_unlock(&cache.lock);
    free_all(unused);
}
