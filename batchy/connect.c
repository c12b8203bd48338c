/*
 * connect.c - making a connection to Redis, the same way for the store's
 * connection and the notice thread's: straight to a host or a unix socket,
 * or to the master that Redis Sentinel names (SPEC section 12).
 *
 * hiredis has no Sentinel support, and needs none: the protocol is a few
 * commands on ordinary connections. Each sentinel of the URL is asked in
 * turn (SENTINEL get-master-addr-by-name) until one answers; the address it
 * gives is then asked for its ROLE, since a sentinel may still name a
 * master that is down, or one that has just been made a replica: only a
 * "master" is used. Whoever connects asks again each time, so a failover
 * is followed by connecting anew: after a lost connection, a READONLY
 * reply (store.c), or a +switch-master notice from a sentinel
 * (sentinel_subscribe, which notice.c keeps).
 *
 * The turn starts at the sentinel subscribed to (heard_from), not the
 * URL's first. That one tells of a switch, so it already knows of it
 * where another may not yet (sentinels learn from each other within
 * seconds): asked first, it does not send Batchy back to a demoted master
 * that still says "master". And it answered last, where the first may be
 * a host that hangs, which would cost every connection its timeout.
 *
 * Everything here blocks, bounded by the timeout given; the callers run
 * it on their own threads, never a worker's.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "shell.h"

/* The index of the sentinel last subscribed to: the store's thread and the
 * notice thread both connect. */
static atomic_int heard_from;

/* A connection to host:port (or the unix socket), with connect and
 * command timeouts; NULL with why set. */
static redisContext *open_tcp(const char *host, int port, const char *path, int timeout_ms,
                              char *why, size_t size)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c =
        path ? redisConnectUnixWithTimeout(path, tv) : redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        snprintf(why, size, "%s", c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (!path)
        redisEnableKeepAlive(c);
    return c;
}

/* One command; the reply (the caller frees it), or NULL with why set
 * (an error reply too, quoted). */
static redisReply *ask(redisContext *c, int argc, const char **argv, char *why, size_t size)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (!r) {
        snprintf(why, size, "%s", c->errstr[0] ? c->errstr : "no answer");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, size, "%s refused: %.200s", argv[0], r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* AUTH with password (and user, when one), if any; 0, or -1 with why. A
 * sentinel without a password of its own answers that none is set: it
 * lets anyone in, so that is no failure. */
static int auth(redisContext *c, const char *user, const char *password, int lenient, char *why,
                size_t size)
{
    if (!password[0])
        return 0;
    const char *two[] = {"AUTH", password};
    const char *three[] = {"AUTH", user, password};
    redisReply *r = user[0] ? ask(c, 3, three, why, size) : ask(c, 2, two, why, size);
    if (r) {
        freeReplyObject(r);
        return 0;
    }
    return lenient && strstr(why, "no password is set") ? 0 : -1;
}

/* A connection to a sentinel of t that answers, authenticated; NULL with
 * why set (the last sentinel's reason). *at: which one. */
static redisContext *open_sentinel(const bty_redis_target *t, int first, int timeout_ms, int *at,
                                   char *why, size_t size)
{
    const char *user = t->sentinel_password[0] ? "" : t->user;
    const char *password = t->sentinel_password[0] ? t->sentinel_password : t->password;
    for (int k = 0; k < t->nsentinels; k++) {
        int i = (first + k) % t->nsentinels;
        const bty_host *s = &t->sentinels[i];
        char reason[300];
        redisContext *c = open_tcp(s->host, s->port, NULL, timeout_ms, reason, sizeof(reason));
        if (c && auth(c, user, password, 1, reason, sizeof(reason)) == 0) {
            *at = i;
            return c;
        }
        redisFree(c);
        snprintf(why, size, "sentinel %.100s:%d: %.150s", s->host, s->port, reason);
    }
    return NULL;
}

/* Where the sentinels of t say the master is: 0 with host and port, or
 * -1 with why. */
static int sentinel_master(const bty_redis_target *t, int timeout_ms, char *host, size_t host_size,
                           int *port, char *why, size_t size)
{
    snprintf(why, size, "no sentinel answered");
    int start = atomic_load(&heard_from) % t->nsentinels;
    for (int k = 0; k < t->nsentinels; k++) {
        int first = (start + k) % t->nsentinels, at;
        redisContext *c = open_sentinel(t, first, timeout_ms, &at, why, size);
        if (!c)
            return -1; /* none of them answers */
        const char *argv[] = {"SENTINEL", "get-master-addr-by-name", t->master};
        char reason[300];
        redisReply *r = ask(c, 3, argv, reason, sizeof(reason));
        const bty_host *s = &t->sentinels[at];
        char *end = NULL;
        long p = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                         r->element[0]->type == REDIS_REPLY_STRING &&
                         r->element[1]->type == REDIS_REPLY_STRING
                     ? strtol(r->element[1]->str, &end, 10)
                     : 0;
        if (p > 0 && p < 65536 && end && !*end && r->element[0]->len < host_size) {
            snprintf(host, host_size, "%s", r->element[0]->str);
            *port = (int)p;
            freeReplyObject(r);
            redisFree(c);
            return 0;
        }
        if (r)
            snprintf(reason, sizeof(reason), "knows no master named '%.100s'", t->master);
        snprintf(why, size, "sentinel %.100s:%d %.180s", s->host, s->port, reason);
        freeReplyObject(r);
        redisFree(c);
        /* the ones before it did not answer: on from there */
        k += (at - first + t->nsentinels) % t->nsentinels;
    }
    return -1;
}

redisContext *redis_connect(const bty_redis_target *t, int timeout_ms, char *where,
                            size_t where_size, char *why, size_t size)
{
    char host[256];
    int port = t->port;
    snprintf(host, sizeof(host), "%s", t->host);
    if (t->is_sentinel && sentinel_master(t, timeout_ms, host, sizeof(host), &port, why, size) != 0)
        return NULL;
    if (t->is_unix)
        snprintf(where, where_size, "%s", t->path);
    else
        snprintf(where, where_size, "%s:%d", host, port);
    char reason[300];
    redisContext *c =
        open_tcp(host, port, t->is_unix ? t->path : NULL, timeout_ms, reason, sizeof(reason));
    if (!c || auth(c, t->user, t->password, 0, reason, sizeof(reason)) != 0) {
        snprintf(why, size, "%s%.100s: %.200s", t->is_sentinel ? "the master at " : "", where,
                 reason);
        redisFree(c);
        return NULL;
    }
    if (t->is_sentinel) {
        /* The sentinels may name a master that is down or demoted: only
         * a master that says so is used. */
        const char *role[] = {"ROLE"};
        redisReply *r = ask(c, 1, role, reason, sizeof(reason));
        int master = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                     r->element[0]->type == REDIS_REPLY_STRING &&
                     strcmp(r->element[0]->str, "master") == 0;
        if (!master) {
            if (r)
                snprintf(reason, sizeof(reason),
                         "it is a %.40s, not a master: a failover is "
                         "under way",
                         r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                                 r->element[0]->type == REDIS_REPLY_STRING
                             ? r->element[0]->str
                             : "server of unknown role");
            snprintf(why, size, "the sentinels name %.100s as master '%.100s', but %.200s", where,
                     t->master, reason);
            freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    return c;
}

redisContext *sentinel_subscribe(const bty_redis_target *t, int timeout_ms, int first, int *at,
                                 char *why, size_t size)
{
    redisContext *c = open_sentinel(t, first, timeout_ms, at, why, size);
    if (!c)
        return NULL;
    const char *argv[] = {"SUBSCRIBE", "+switch-master"};
    redisReply *r = ask(c, 2, argv, why, size);
    if (!r) {
        redisFree(c);
        return NULL;
    }
    freeReplyObject(r);
    atomic_store(&heard_from, *at);
    return c;
}
