/*
 * track.c - when something read from Redis may still be trusted, Redis
 * tracking the read (CLIENT TRACKING): the bookkeeping, pure (no I/O, no
 * clock; its counters are atomics, so that threads share one state).
 *
 * Redis says that a key changed (an invalidation) some time after the
 * change, and a read's reply and an invalidation of the same key may
 * cross: the reply leaves Redis before the change, the invalidation
 * after it, and they arrive in either order. Redis' client-side caching
 * guide answers that with a placeholder taken before the read is sent;
 * here the placeholder is the count of invalidations of the key's slot,
 * taken before the read is sent (track_stamp_of): any invalidation of the
 * key after that, before or after the reply arrives, makes the counts
 * differ and what the read made untrusted. Keys share slots: another
 * key's invalidation may untrust it too, which costs a read, never a
 * stale answer.
 *
 * Everything shares an epoch: what the caller says tracking is now (the
 * store's connection and the subscription invalidations arrive on; 0:
 * reads are not tracked), and the count of FLUSHes heard, each compared
 * as it is. A new connection, a lost subscription or a FLUSHDB untrusts
 * everything at once.
 */
#include <string.h>

#include "batchy.h"

uint64_t track_mix(uint64_t h, uint64_t v)
{
    h ^= v;
    h *= 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
}

uint64_t track_hash(uint64_t seed, const char *p, size_t n)
{
    uint64_t h = track_mix(seed, n);
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = track_mix(h, w);
    }
    uint64_t last = 0;
    memcpy(&last, p, n);
    return track_mix(h, last);
}

static size_t slot_of(const char *key, size_t len)
{
    return (size_t)(track_hash(1, key, len) % TRACK_SLOTS);
}

track_stamp track_stamp_of(track_state *s, const char *key, size_t len, uint64_t tracking)
{
    /* Compared as they are, not hashed together: a new connection and a
     * FLUSH must never cancel out. */
    track_stamp st = {tracking, atomic_load(&s->flushes), 0};
    st.inval = atomic_load(&s->inval[slot_of(key, len)]);
    return st;
}

int track_trusted(track_state *s, const char *key, size_t len, track_stamp st, uint64_t tracking)
{
    return st.epoch && st.epoch == tracking && st.flushes == atomic_load(&s->flushes) &&
           st.inval == atomic_load(&s->inval[slot_of(key, len)]);
}

void track_invalidate(track_state *s, const char *key, size_t len)
{
    atomic_fetch_add(&s->inval[slot_of(key, len)], 1);
}

void track_flush(track_state *s)
{
    atomic_fetch_add(&s->flushes, 1);
}
