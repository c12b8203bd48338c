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
 *      applies it only if what the change was computed from is unchanged,
 *      else writes nothing and answers with what <wf> holds now. What that
 *      is, is decided in one place, commit() below: the whole of <wf> for
 *      an open or a load (they read every step), the steps it ends for a
 *      close or a fail, so that calls on different steps never conflict.
 *      A close written while other steps changed is answered with what
 *      <wf> holds after it, as Redis says.
 *   4. retry: on a conflict, go on at once from what Redis answered (twice
 *      at most), then back off (growing to a few ms, jittered) and read
 *      again. A conflict means another call made progress, so this ends;
 *      MAX_ATTEMPTS is only a guard against a defect, not a budget. When
 *      the snapshot of the batch id chosen exists already (a load_cfg reset
 *      the ids, or opens ran ahead of the clock), Redis names the first free
 *      id and the rule runs again from the same base. When Redis lost the
 *      script (SCRIPT FLUSH), read again.
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
#include <string.h>
#include <unistd.h>

#include "shell.h"

#define MAX_ATTEMPTS 100000
#define MAX_DELAY_US 5000

/* Where the last round trip left the protocol. */
enum { APPLY_START = 0, APPLY_READ, APPLY_WRITE };

/* Every try found the workflow changed by another call: never seen, as
 * each conflict is another call's progress; said rather than looped on. */
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
        int delay = a->attempt < MAX_DELAY_US / 100 ? a->attempt * 100 : MAX_DELAY_US;
        a->delay_us = delay + (int)(rand_r(&seed) % (unsigned)(delay / 2 + 100));
    }
    a->attempt++;
    if (store_call_read(call, workflow, err) != 0)
        return APPLY_FAILED;
    a->stage = APPLY_READ;
    return APPLY_WAIT;
}

/* What a write of `change`, computed from `base`, is compared against:
 * every field of <wf> as base holds it when the change read them all,
 * else only the steps it writes into <wf> (store_call_commit). The one
 * place that decides it. */
static int commit(store_call *call, const char *workflow, const bty_hash *base,
                  const bty_change *change, const bty_apply *a, bty_error *err)
{
    return store_call_commit(call, workflow, base, change->reads_all, &change->plan,
                             a->keep_batches, a->channel, err);
}

/* The change was written while other steps of <wf> changed: `now` is what
 * <wf> holds after it (consumed). The answer says so, and the cache learns
 * it (apply_remember applies the plan to it again, which changes nothing). */
static void written_amid(bty_apply *a, const char *workflow, bty_hash *now)
{
    bty_error ignored;
    cJSON *doc = doc_from_hash(now->fields, now->n, workflow, &ignored);
    if (doc) {
        cJSON_Delete(a->change.state);
        a->change.state = doc;
    } /* else: unreadable besides (a hand edit): answer with what was computed */
    store_hash_free(&a->base);
    a->base = *now;
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
    /* Unreadable, doc is NULL and err says why: the rule decides (a load
     * replaces it all the same). */
    int rc = rule(workflow, doc, clock_now(), a->min_batch_id, arg, &a->change, err);
    cJSON_Delete(parsed);
    if (rc == 0 && a->dry_run)
        plan_free(&a->change.plan); /* answered as computed, from what Redis holds */
    if (from_cache && (rc != 0 || a->change.plan.n == 0)) {
        /* Only a write checks the cache; an answer without one (an error,
         * a retried close) comes from what Redis holds. */
        store_hash_free(base);
        change_free(&a->change);
        return read_again(a, call, workflow, err);
    }
    if (rc == 0 && a->change.plan.n)
        rc = commit(call, workflow, base, &a->change, a, err);
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
        /* Whatever came of it, what this process kept of the workflow is
         * not to be trusted now: it reads its own writes (reads.c, rows.c),
         * before Redis' word of them arrives. */
        rows_invalidate(workflow, strlen(workflow));
        long long free_id = 0;
        int outcome = store_commit_result(call, &hash, &free_id, err);
        if (outcome == COMMIT_WRITTEN)
            return APPLY_DONE; /* the handler renders, then apply_remember */
        if (outcome == COMMIT_WRITTEN_AMID) {
            written_amid(a, workflow, &hash);
            return APPLY_DONE;
        }
        if (outcome == COMMIT_EXISTS) {
            /* Nothing was written and <wf> is as the change was computed
             * from: the same base again, with the id Redis found free. */
            bty_hash base = a->base;
            memset(&a->base, 0, sizeof(a->base));
            change_free(&a->change);
            a->min_batch_id = free_id;
            return rule_then_write(a, call, workflow, rule, arg, &base, err);
        }
        store_hash_free(&a->base);
        cache_forget(workflow);
        if (outcome == COMMIT_FAILED)
            return APPLY_FAILED;
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
        return read_again(a, call, workflow, err); /* COMMIT_AGAIN */
    }
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
