/*
 * apply.c - the write protocol of open, close and fail: how a rule's change
 * reaches Redis exactly once, whatever else writes the workflow meanwhile.
 *
 * Contract (apply_run, called on each run of a handler until it is done):
 *
 *   1. base: what <wf> holds. From cache.c when this process wrote the
 *      workflow last (no round trip), else read (HGETALL, one round trip).
 *   2. rule: the pure rule (rules.c) computes the change from base at
 *      `now`, taken when it runs (clock_now). An empty workflow is the
 *      rule's 404 "not loaded".
 *   3. write: the plan goes out as one compare-and-set (plan.lua): Redis
 *      applies it only if <wf> still holds `base`, else writes nothing and
 *      answers with what <wf> holds now. What a write is compared against
 *      is decided in one place, expectation() below.
 *   4. retry: on such a conflict, go on at once from what Redis answered
 *      (twice at most), then back off (growing, jittered) and read again,
 *      MAX_ATTEMPTS reads at most, after which the call answers 503. When
 *      the snapshot of the batch id chosen exists already (a load_cfg reset
 *      the ids), find the first free id in one round trip and go on from it.
 *      When Redis lost the script (SCRIPT FLUSH), read again.
 *
 * The cache is only ever tried, never trusted: a change computed from a
 * cached base is checked by Redis like any other. An answer that writes
 * nothing (an error, a retried close) never comes from the cache: the
 * workflow is read first, so what the call answers is what Redis holds.
 *
 * apply_run returns APPLY_WAIT with `call` built (sent by the handler's
 * caller, after a->delay_us), APPLY_DONE with a->change set, or
 * APPLY_FAILED with err set. After APPLY_DONE the handler renders its
 * answer from a->change.state and then calls apply_remember.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "shell.h"

#define MAX_ATTEMPTS 50

/* Where the last round trip left the protocol. */
enum { APPLY_START = 0, APPLY_READ, APPLY_WRITE, APPLY_FREE_ID };

/* Every try found the workflow changed by another call. */
static int too_fast(const char *workflow, bty_error *err)
{
    return bty_error_set(
        err, 503, "workflow '%s' is changing too fast to apply this call; try again", workflow);
}

/* Ask for (another) read of the workflow. After the first, back off a
 * little, growing and jittered, so that racing writers (in this process
 * and others) spread out. */
static int read_again(bty_apply *a, store_call *call, const char *workflow, bty_error *err)
{
    if (a->attempt == MAX_ATTEMPTS)
        return too_fast(workflow, err);
    a->delay_us = 0;
    if (a->attempt) {
        static __thread unsigned seed;
        if (!seed)
            seed = (unsigned)getpid() ^ (unsigned)(uintptr_t)pthread_self() ^
                   (unsigned)clock_now().usec;
        a->delay_us = a->attempt * 100 + (int)(rand_r(&seed) % 100);
    }
    a->attempt++;
    if (store_call_read(call, workflow, err) != 0)
        return APPLY_FAILED;
    a->stage = APPLY_READ;
    return APPLY_WAIT;
}

/* What a write of a change computed from `base` is compared against: the
 * whole <wf> hash as base holds it. The one place that decides it. */
static const bty_hash *expectation(const bty_hash *base)
{
    return base;
}

/* Apply the rule to `base` (what <wf> holds, as read, as the store said
 * when it refused a write, or as cached; consumed) and ask for the write,
 * which Redis applies only if <wf> still holds the expectation. */
static int rule_then_write(bty_apply *a, store_call *call, const char *workflow, apply_rule_fn rule,
                           const void *arg, bty_hash *base, bty_error *err)
{
    int from_cache = base->cached != NULL;
    /* A cached document is read as it is; any other is parsed. */
    const cJSON *doc = cache_doc(base->cached);
    cJSON *parsed = doc ? NULL : doc_from_hash(base->fields, base->n, workflow, err);
    if (parsed)
        doc = parsed;
    int rc = doc ? rule(workflow, doc, clock_now(), a->min_batch_id, arg, &a->change, err) : -1;
    cJSON_Delete(parsed);
    if (from_cache && (rc != 0 || a->change.plan.n == 0)) {
        /* Only a write checks the cache; an answer without one (an error,
         * a retried close) comes from what Redis holds. */
        store_hash_free(base);
        change_free(&a->change);
        return read_again(a, call, workflow, err);
    }
    if (rc == 0 && a->change.plan.n)
        rc = store_call_commit(call, workflow, expectation(base), &a->change.plan, err);
    if (rc != 0 || a->change.plan.n == 0) {
        store_hash_free(base);
        return rc ? APPLY_FAILED : APPLY_DONE; /* done: a retried close, nothing to write */
    }
    a->base = *base; /* kept to learn what <wf> holds once written */
    a->stage = APPLY_WRITE;
    return APPLY_WAIT;
}

int apply_run(bty_apply *a, store_call *call, const char *workflow, apply_rule_fn rule,
              const void *arg, bty_error *err)
{
    bty_hash hash;
    switch (a->stage) {
    case APPLY_READ:
        if (store_read_result(call, &hash, err) != 0)
            return APPLY_FAILED;
        return rule_then_write(a, call, workflow, rule, arg, &hash, err);
    case APPLY_WRITE: {
        int outcome = store_commit_result(call, &hash, err);
        if (outcome == COMMIT_WRITTEN)
            return APPLY_DONE; /* the handler renders, then apply_remember */
        store_hash_free(&a->base);
        cache_forget(workflow);
        if (outcome == COMMIT_FAILED)
            return APPLY_FAILED;
        long long taken = a->change.batch_id;
        change_free(&a->change);
        if (outcome == COMMIT_CHANGED) {
            /* Go on at once from what the workflow holds now: the usual
             * case is another process having written it since this one
             * did. Refused again, calls are racing on this workflow: back
             * off and read, as after a conflict, so that they spread out
             * (an immediate retry each time let a slow call lose fifty
             * times in a row). */
            if (a->attempt < 2) {
                a->attempt++;
                return rule_then_write(a, call, workflow, rule, arg, &hash, err);
            }
            store_hash_free(&hash);
            return read_again(a, call, workflow, err);
        }
        if (outcome == COMMIT_AGAIN)
            return read_again(a, call, workflow, err);
        /* COMMIT_EXISTS. Opens in one second take consecutive ids: find
         * the end of the run in one round trip rather than one retry each. */
        a->min_batch_id = taken + 1;
        if (store_call_first_free(call, workflow, a->min_batch_id, 64, err) != 0)
            return APPLY_FAILED;
        a->stage = APPLY_FREE_ID;
        return APPLY_WAIT;
    }
    case APPLY_FREE_ID:
        a->min_batch_id = store_first_free_result(call, a->min_batch_id, err);
        if (a->min_batch_id < 0)
            return APPLY_FAILED;
        return read_again(a, call, workflow, err);
    default:
        a->attempt = 0;
        a->min_batch_id = 0;
        if (cache_get(workflow, &hash))
            return rule_then_write(a, call, workflow, rule, arg, &hash, err);
        return read_again(a, call, workflow, err);
    }
}

void apply_remember(bty_apply *a, const char *workflow)
{
    if (a->change.plan.n)
        cache_put(cache_entry_after(workflow, a->base.fields, a->base.n, &a->change.plan,
                                    a->change.state));
    else
        cJSON_Delete(a->change.state);
    a->change.state = NULL;
    store_hash_free(&a->base);
}

void apply_free(bty_apply *a)
{
    change_free(&a->change);
    store_hash_free(&a->base);
}
