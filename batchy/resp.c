/*
 * resp.c - the Redis side of a store call, without the socket: the
 * commands of one round trip, built in RESP (hiredis's formatter), and
 * what their replies (hiredis's redisReply) mean to Batchy. Pure: no
 * I/O, no clock, no global state but one constant error; store.c sends
 * what is built here and hands the replies back. Unit-tested with
 * hiredis's reader (tests/unit/test_resp.c).
 *
 * A read is HGETALL; a write is EVALSHA of plan.lua with the plan's
 * hashes and, for a compare-and-set, what the read key held (see the
 * script's head comment for the arguments).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "shell.h"

int store_unreachable(bty_error *err, const char *why)
{
    return bty_error_set(err, 503,
                         "Redis is unreachable (%.200s); Batchy retries by itself, "
                         "try again shortly",
                         why);
}

/* ------------------------------------------------------------------ building calls */

/* Add a command (argv form) to a call. 0, or -1 with 503 on out of memory.
 * hiredis's sds formatter, not redisFormatCommandArgv: that one calls
 * sprintf for every argument, a fifth of the cost of building a write. */
static int call_append(store_call *c, int argc, const char **argv, const size_t *argvlen,
                       bty_error *err)
{
    sds cmd = NULL;
    if (redisFormatSdsCommandArgv(&cmd, argc, argv, argvlen) < 0)
        return bty_error_set(err, 503, "out of memory talking to Redis; try again");
    if (!c->commands) {
        c->commands = cmd;
    } else {
        sds joined = sdscatsds(c->commands, cmd);
        sdsfree(cmd);
        if (!joined)
            return bty_error_set(err, 503, "out of memory talking to Redis; try again");
        c->commands = joined;
    }
    c->len = sdslen(c->commands);
    c->ncommands++;
    return 0;
}

/* What a call says when there was no memory to say why it failed. */
static bty_error out_of_memory = {503, "out of memory talking to Redis; try again"};

void store_call_fail_with(store_call *c, int status, const char *message)
{
    bty_error *e = malloc(sizeof(*e));
    if (e)
        bty_error_set(e, status, "%s", message);
    c->failure = e ? e : &out_of_memory;
}

void store_call_forget_failure(store_call *c)
{
    if (c->failure != &out_of_memory)
        free(c->failure);
    c->failure = NULL;
}

void store_call_clear(store_call *c)
{
    store_call_forget_failure(c);
    sdsfree(c->commands);
    if (c->replies)
        for (int i = 0; i < c->ncommands; i++)
            freeReplyObject(c->replies[i]);
    free(c->replies);
    memset(c, 0, sizeof(*c));
}

int store_call_read(store_call *c, const char *key, bty_error *err)
{
    store_call_clear(c);
    c->kind = CALL_READ;
    snprintf(c->key, sizeof(c->key), "%s", key);
    const char *argv[] = {"HGETALL", key};
    return call_append(c, 2, argv, NULL, err);
}

int store_call_reads(store_call *c, char *const *keys, size_t n, int tracked, bty_error *err)
{
    store_call_clear(c);
    c->kind = CALL_READ;
    c->stride = tracked ? 2 : 1;
    snprintf(c->key, sizeof(c->key), "%s", n ? keys[0] : "");
    for (size_t i = 0; i < n; i++) {
        /* Tracking is OPTIN (store.c): this read, and only it, tracked. */
        const char *caching[] = {"CLIENT", "CACHING", "yes"};
        const char *argv[] = {"HGETALL", keys[i]};
        if ((tracked && call_append(c, 3, caching, NULL, err) != 0) ||
            call_append(c, 2, argv, NULL, err) != 0)
            return -1;
    }
    return 0;
}

int store_call_members(store_call *c, const char *key, const char *exists_key, long long before,
                       long long limit, bty_error *err)
{
    char max[32], count[32];
    store_call_clear(c);
    c->kind = CALL_READ;
    snprintf(c->key, sizeof(c->key), "%s", key);
    const char *exists[] = {"EXISTS", exists_key ? exists_key : key};
    if (call_append(c, 2, exists, NULL, err) != 0)
        return -1;
    if (limit < 0) {
        const char *argv[] = {"SMEMBERS", key};
        return call_append(c, 2, argv, NULL, err);
    }
    /* Newest first, below `before` (exclusive), one more than asked for:
     * whether it exists says if there is a page after this one. */
    if (before > 0)
        snprintf(max, sizeof(max), "(%lld", before);
    else
        strcpy(max, "+inf");
    snprintf(count, sizeof(count), "%lld", limit + 1);
    const char *argv[] = {"ZREVRANGEBYSCORE", key, max, "-inf", "LIMIT", "0", count};
    return call_append(c, 7, argv, NULL, err);
}

int store_call_ping(store_call *c, bty_error *err)
{
    store_call_clear(c);
    c->kind = CALL_READ;
    const char *argv[] = {"PING"};
    return call_append(c, 1, argv, NULL, err);
}

/* Add one argument to an argv under construction. */
static void push(const char **argv, size_t *argvlen, size_t *a, const char *s, size_t len)
{
    argv[*a] = s;
    argvlen[*a] = len;
    (*a)++;
}

/* 1 when hash h writes exactly the pairs of hash g. */
static int same_pairs(const bty_hash_write *h, const bty_hash_write *g)
{
    if (h->n != g->n)
        return 0;
    for (size_t j = 0; j < h->n; j++)
        if (strcmp(h->names[j], g->names[j]) != 0 || strcmp(h->values[j], g->values[j]) != 0)
            return 0;
    return 1;
}

/* Is name (len bytes) among the n names, sorted in byte order? */
static int among_sorted(const char *name, size_t len, char *const *names, size_t n)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        size_t mlen = strlen(names[mid]);
        int cmp = memcmp(name, names[mid], len < mlen ? len : mlen);
        if (cmp == 0)
            cmp = len < mlen ? -1 : len > mlen;
        if (cmp == 0)
            return 1;
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

int store_call_commit(store_call *c, const char *read_key, const bty_hash *expect, int whole,
                      const bty_write_plan *plan, long long keep_batches, const char *channel,
                      bty_error *err)
{
    store_call_clear(c);
    c->kind = CALL_WRITE;
    snprintf(c->key, sizeof(c->key), "%s", read_key);
    /* EVALSHA sha numkeys read_key key... mode M E names... values...
     * (mode [prefix] n pairs...)... (plan.lua). The SHA is written in as
     * the call is sent (store_call_set_sha). */
    size_t e = expect ? expect->n : 0;
    /* 7 before the hashes; per hash its key, mode, [prefix,] count, pairs;
     * the channel, the number of batches to keep */
    size_t argc = 9 + 2 * e;
    for (size_t i = 0; i < plan->n; i++)
        argc += 3 + (plan->hashes[i].mode == WRITE_CREATE) + 2 * plan->hashes[i].n;
    const char **argv = malloc(argc * sizeof(*argv));
    size_t *argvlen = malloc(argc * sizeof(*argvlen));
    /* hashes, M, E, numkeys, keep */
    char(*counts)[24] = malloc((plan->n + 4) * sizeof(*counts));
    size_t *order = malloc((e ? e : 1) * sizeof(*order));
    int rc = -1;
    if (!argv || !argvlen || !counts || !order) {
        bty_error_set(err, 503, "out of memory writing the batch; try again");
        goto out;
    }
    /* What must match: every field (whole), or those the plan writes into
     * read_key (the steps a close or fail ended), sent first. */
    const bty_hash_write *own = NULL;
    for (size_t i = 0; i < plan->n && !whole; i++)
        if (strcmp(plan->hashes[i].key, read_key) == 0)
            own = &plan->hashes[i];
    size_t m = 0, rest = e;
    for (size_t i = 0; i < e; i++) {
        const bty_field *f = &expect->fields[i];
        if (whole || (own && among_sorted(f->name, f->name_len, own->names, own->n)))
            order[m++] = i;
        else
            order[--rest] = i;
    }
    char prefix[BTY_KEY_MAX];
    key_snapshot_prefix(prefix, read_key);
    size_t a = 0;
    char *numkeys = counts[plan->n + 2], *nmust = counts[plan->n + 1], *nsent = counts[plan->n];
    push(argv, argvlen, &a, "EVALSHA", 7);
    push(argv, argvlen, &a, "0000000000000000000000000000000000000000", 40);
    push(argv, argvlen, &a, numkeys, (size_t)snprintf(numkeys, 24, "%zu", plan->n + 1));
    push(argv, argvlen, &a, read_key, strlen(read_key));
    for (size_t i = 0; i < plan->n; i++)
        push(argv, argvlen, &a, plan->hashes[i].key, strlen(plan->hashes[i].key));
    const char *mode = !expect ? "-" : whole ? "all" : "some";
    push(argv, argvlen, &a, mode, strlen(mode));
    push(argv, argvlen, &a, nmust, (size_t)snprintf(nmust, 24, "%zu", m));
    push(argv, argvlen, &a, nsent, (size_t)snprintf(nsent, 24, "%zu", e));
    for (size_t i = 0; i < e; i++)
        push(argv, argvlen, &a, expect->fields[order[i]].name, expect->fields[order[i]].name_len);
    for (size_t i = 0; i < e; i++)
        push(argv, argvlen, &a, expect->fields[order[i]].value, expect->fields[order[i]].value_len);
    for (size_t i = 0; i < plan->n; i++) {
        const bty_hash_write *h = &plan->hashes[i];
        push(argv, argvlen, &a,
             h->mode == WRITE_CREATE    ? "2"
             : h->mode == WRITE_REPLACE ? "1"
                                        : "0",
             1);
        if (h->mode == WRITE_CREATE)
            push(argv, argvlen, &a, prefix, strlen(prefix));
        if (i > 0 && same_pairs(h, &plan->hashes[i - 1])) {
            push(argv, argvlen, &a, "-1", 2);
            continue;
        }
        push(argv, argvlen, &a, counts[i], (size_t)snprintf(counts[i], 24, "%zu", h->n));
        for (size_t j = 0; j < h->n; j++) {
            push(argv, argvlen, &a, h->names[j], strlen(h->names[j]));
            push(argv, argvlen, &a, h->values[j], strlen(h->values[j]));
        }
    }
    push(argv, argvlen, &a, channel, strlen(channel));
    char *keep = counts[plan->n + 3];
    push(argv, argvlen, &a, keep, (size_t)snprintf(keep, 24, "%lld", keep_batches));
    assert(a <= argc); /* fewer when a snapshot repeats the pairs before it */
    rc = call_append(c, (int)a, argv, argvlen, err);
out:
    free(argv);
    free(argvlen);
    free(counts);
    free(order);
    return rc;
}

/* The SHA of a commit is written into its formatted command as it is
 * sent: "*N\r\n$7\r\nEVALSHA\r\n$40\r\n<sha>", the second argument. */
void store_call_set_sha(store_call *c, const char sha[40])
{
    static const char evalsha[] = "\r\n$7\r\nEVALSHA\r\n$40\r\n";
    char *at = c->commands ? memmem(c->commands, c->len, evalsha, sizeof(evalsha) - 1) : NULL;
    if (at)
        memcpy(at + sizeof(evalsha) - 1, sha, 40);
}

int store_call_command(store_call *c, int kind, int argc, const char **argv, bty_error *err)
{
    store_call_clear(c);
    c->kind = kind;
    return call_append(c, argc, argv, NULL, err);
}

/* ------------------------------------------------------------------ reading replies */

/* The call's error if it failed as a whole; 0 when it has its replies. */
static int call_failed(const store_call *c, bty_error *err)
{
    if (!c->failure)
        return 0;
    *err = *c->failure;
    return -1;
}

void store_hash_free(bty_hash *h)
{
    if (h->cached)
        cache_release(h->cached);
    else
        free(h->fields);
    freeReplyObject(h->reply);
    memset(h, 0, sizeof(*h));
}

/* A hash from an HGETALL reply r (reply_owner is what to free with it). */
static int hash_from_reply(bty_hash *out, redisReply *r, redisReply *reply_owner)
{
    out->n = r->elements / 2;
    out->fields = calloc(out->n ? out->n : 1, sizeof(bty_field));
    if (!out->fields)
        return -1;
    out->reply = reply_owner;
    for (size_t i = 0; i < out->n; i++) {
        const redisReply *name = r->element[2 * i], *value = r->element[2 * i + 1];
        out->fields[i] = (bty_field){name->str, name->len, value->str, value->len};
    }
    return 0;
}

int store_read_result(store_call *c, bty_hash *out, bty_error *err)
{
    return store_read_result_at(c, 0, out, err);
}

int store_read_result_at(store_call *c, int i, bty_hash *out, bty_error *err)
{
    memset(out, 0, sizeof(*out));
    if (call_failed(c, err))
        return -1;
    if (c->stride > 1) /* past the CLIENT CACHING before it */
        i = i * c->stride + c->stride - 1;
    if (i >= c->nreplies || !c->replies[i])
        return store_unreachable(err, "a reply is missing");
    redisReply *r = c->replies[i];
    if (r->type == REDIS_REPLY_ERROR) {
        int wrongtype = strncmp(r->str, "WRONGTYPE", 9) == 0;
        return bty_error_set(
            err, wrongtype ? 409 : 503, "Redis key '%.140s': %.200s%s", c->key, r->str,
            wrongtype ? "; it must be a hash of steps: delete it or use another name" : "");
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return store_unreachable(err, "unexpected reply to HGETALL");
    if (hash_from_reply(out, r, r) != 0)
        return bty_error_set(err, 503, "out of memory reading '%.140s'", c->key);
    c->replies[i] = NULL; /* now the hash's */
    return 0;
}

int store_members_result(store_call *c, int *exists, char ***members, size_t *n, bty_error *err)
{
    *members = NULL;
    *n = 0;
    if (call_failed(c, err))
        return -1;
    const redisReply *e = c->nreplies > 0 ? c->replies[0] : NULL;
    const redisReply *r = c->nreplies > 1 ? c->replies[1] : NULL;
    if (r && r->type == REDIS_REPLY_ERROR)
        return bty_error_set(err, strncmp(r->str, "WRONGTYPE", 9) == 0 ? 409 : 503,
                             "Redis key '%.140s': %.200s", c->key, r->str);
    if (!e || e->type != REDIS_REPLY_INTEGER || !r || r->type != REDIS_REPLY_ARRAY)
        return store_unreachable(err, "unexpected reply to an index read");
    *exists = e->integer > 0;
    *members = calloc(r->elements ? r->elements : 1, sizeof(char *));
    if (!*members)
        return bty_error_set(err, 503, "out of memory reading '%.140s'", c->key);
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING ||
            !((*members)[i] = strndup(r->element[i]->str, r->element[i]->len))) {
            *n = i;
            return bty_error_set(err, 503, "out of memory reading '%.140s'", c->key);
        }
    }
    *n = r->elements;
    return 0;
}

int store_ping_result(store_call *c, bty_error *err)
{
    if (call_failed(c, err))
        return -1;
    const redisReply *r = c->replies[0];
    return r->type == REDIS_REPLY_STATUS ? 0 : store_unreachable(err, "PING refused");
}

/* A reply {tag, pairs} of the script: 1 when r is one with that tag. */
static int tagged_pairs(const redisReply *r, const char *tag)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
           r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, tag) == 0 &&
           r->element[1]->type == REDIS_REPLY_ARRAY && r->element[1]->elements % 2 == 0;
}

int store_commit_result(store_call *c, bty_hash *current, long long *free_id, bty_error *err)
{
    if (current)
        memset(current, 0, sizeof(*current));
    if (call_failed(c, err))
        return COMMIT_FAILED;
    redisReply *r = c->replies[0];
    int changed = tagged_pairs(r, "BATCHY_CHANGED");
    if (changed || tagged_pairs(r, "BATCHY_WRITTEN")) {
        /* What the read key holds now: it changed since it was read
         * (nothing written), or besides what the call wrote. */
        if (current) {
            if (hash_from_reply(current, r->element[1], r) != 0)
                return changed ? COMMIT_AGAIN : COMMIT_WRITTEN; /* out of memory */
            c->replies[0] = NULL;                               /* now the hash's */
        }
        return changed ? COMMIT_CHANGED : COMMIT_WRITTEN_AMID;
    }
    if (r->type != REDIS_REPLY_ERROR)
        return COMMIT_WRITTEN;
    if (strncmp(r->str, "BATCHY_EXISTS ", 14) == 0) {
        if (free_id)
            *free_id = strtoll(r->str + 14, NULL, 10);
        return COMMIT_EXISTS;
    }
    if (strncmp(r->str, "NOSCRIPT", 8) == 0)
        return COMMIT_AGAIN; /* scripts were flushed: the store loads it again */
    int wrongtype = strncmp(r->str, "WRONGTYPE", 9) == 0;
    bty_error_set(err, wrongtype ? 409 : 503, "Redis refused the write: %.200s", r->str);
    return COMMIT_FAILED;
}
