/*
 * http.c - where a request enters. libmicrohttpd runs a pool of worker
 * threads; each request is routed by route_match (route.c), authorised,
 * handled, and answered here, and only here: handlers return a reply or a
 * bty_error, and this file writes either out, then logs one access line.
 *
 * A handler reads top to bottom: read the workflow (one round trip), apply
 * the pure rule with `now`, write the plan atomically (one round trip),
 * render. When a concurrent call changed the workflow between read and
 * write, the write is refused by Redis (store.c) and the handler starts
 * over.
 *
 * No worker waits for Redis. Where a handler needs a round trip it builds
 * the call and returns HANDLER_WAIT; answer() suspends the connection and
 * hands the call to the store, whose thread resumes the connection when
 * the replies are in; libmicrohttpd then calls the handler again, which
 * goes on from the stage it had reached. Meanwhile the worker serves its
 * other connections.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "shell.h"

#define MAX_PARAMS      BTY_MAX_PARAMS
#define MAX_PARAM_NAME  256
#define MAX_PARAM_VALUE 8192
#define MAX_BODY        (64 * 1024)
#define MAX_ATTEMPTS    50
#define LOG_DELAY_MS    100 /* the longest an access-log line waits (log_line) */

static const char TYPE_JSON[] = "application/json";
static const char TYPE_TEXT[] = "text/plain; charset=utf-8";

/* One open HTTP connection, on the watch list of its server (see
 * watchdog_main). Added when libmicrohttpd reports the connection started,
 * removed and freed when it reports it closed, which it does before it
 * closes the socket: fd is valid for as long as the entry is listed. */
typedef struct watched {
    struct watched *prev, *next;
    int fd;
    int cut; /* the watchdog has shut the socket down */
    /* When the client must have sent its request (or read its answer) by,
     * in CLOCK_MONOTONIC ms; LLONG_MAX while batchy works on a request. */
    atomic_llong deadline_ms;
} watched;

/* The server: options (read-only once started), the daemon, how many
 * requests have started and not yet been answered (for a clean stop), and
 * the watch list of connections with the thread that enforces deadlines. */
typedef struct server {
    bty_options opts;
    struct MHD_Daemon *daemon;
    atomic_int in_flight;
    pthread_mutex_t watch_lock; /* guards watch_head, each entry's cut, watch_stop */
    pthread_cond_t watch_wake;
    watched *watch_head;
    int watch_stop;
    pthread_t watchdog;
    /* The access log, written in batches (log_line). */
    pthread_mutex_t log_lock; /* guards the three below */
    char log_buf[16384];
    size_t log_len;
    long long log_written_ms;
} server;

/* One request, from its first callback to its completion. Owned by
 * libmicrohttpd's per-request pointer; freed in on_completed. */
typedef struct request {
    struct timespec start;
    char method[8];
    char path[200]; /* for the log: printable, truncated, no query */
    int status;
    struct MHD_PostProcessor *post;
    size_t body_bytes;
    size_t nparams, params_room;
    char **names; /* owned, as the strings */
    char **values;
    int too_many_params;
    int nul_in_body;   /* a form value held a NUL, which strings cannot */
    int encoded_slash; /* the raw path held %2F */
    int bad_framing;   /* Content-Length headers that disagree */
    int not_a_form;    /* a POST body libmicrohttpd cannot read as a form */

    /* Once the request is all in: its route, and how far its handler got.
     * The handler runs again each time a round trip it asked for is done. */
    int admitted; /* routed, checked and authorised (or answered an error) */
    bty_target target;
    struct MHD_Connection *conn;
    int stage;       /* the handler's own; 0 at first */
    int delay_us;    /* send the call no sooner than this from now */
    store_call call; /* the round trip asked for; cleared in on_completed */
    /* apply_rule's state (open, close, fail) */
    int attempt;
    long long min_batch_id;
    bty_change change;      /* owned */
    bty_hash base;          /* the <wf> change was computed from, until written */
    bty_end_params *params; /* close, fail; owned */
} request;

/* What a handler returns: its answer is in `out`, or it failed with `err`,
 * or it built req->call and runs again once that round trip is done. */
enum { HANDLER_FAILED = -1, HANDLER_DONE = 0, HANDLER_WAIT = 1 };

/* What a handler answers with. body is malloc'd and owned. */
typedef struct reply {
    int status;
    const char *content_type;
    char *body;
} reply;

static bty_time now_utc(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (bty_time){ts.tv_sec, (int32_t)(ts.tv_nsec / 1000)};
}

static int add_param(request *req, const char *name, const char *value, size_t value_len)
{
    if (req->nparams == MAX_PARAMS) {
        req->too_many_params = 1;
        return -1;
    }
    if (req->nparams == req->params_room) {
        size_t room = req->params_room ? 2 * req->params_room : 8;
        char **names = realloc(req->names, room * sizeof(*names));
        if (names)
            req->names = names;
        char **values = names ? realloc(req->values, room * sizeof(*values)) : NULL;
        if (!values) {
            req->too_many_params = 1; /* out of memory: refuse the request */
            return -1;
        }
        req->values = values;
        req->params_room = room;
    }
    char *n = strdup(name ? name : "");
    char *v = value ? strndup(value, value_len) : strdup("");
    if (!n || !v) {
        free(n);
        free(v);
        req->too_many_params = 1; /* out of memory: refuse the request */
        return -1;
    }
    req->names[req->nparams] = n;
    req->values[req->nparams] = v;
    req->nparams++;
    return 0;
}

/* The last value of a parameter, or NULL. */
static const char *param(const request *req, const char *name)
{
    const char *found = NULL;
    for (size_t i = 0; i < req->nparams; i++)
        if (req->names[i] && strcmp(req->names[i], name) == 0)
            found = req->values[i];
    return found;
}

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    return add_param(cls, key, value, value ? strlen(value) : 0) == 0 ? MHD_YES : MHD_NO;
}

static enum MHD_Result collect_post(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *filename, const char *content_type,
                                    const char *transfer_encoding, const char *data, uint64_t off,
                                    size_t size)
{
    (void)kind, (void)filename, (void)content_type, (void)transfer_encoding;
    request *req = cls;
    if (size && memchr(data, '\0', size)) {
        req->nul_in_body = 1;
        return MHD_YES;
    }
    if (off > 0 && req->nparams && req->names[req->nparams - 1] &&
        strcmp(req->names[req->nparams - 1], key) == 0) {
        /* A value delivered in pieces: append. */
        char *prev = req->values[req->nparams - 1];
        size_t len = prev ? strlen(prev) : 0;
        char *joined = realloc(prev, len + size + 1);
        if (!joined)
            return MHD_NO;
        memcpy(joined + len, data, size);
        joined[len + size] = '\0';
        req->values[req->nparams - 1] = joined;
        return MHD_YES;
    }
    return add_param(req, key, data, size) == 0 ? MHD_YES : MHD_NO;
}

/* ------------------------------------------------------------------ replies */

static int reply_text(reply *out, int status, const char *type, char *body)
{
    out->status = status;
    out->content_type = type;
    out->body = body;
    return body ? 0 : -1;
}

static int reply_doc(reply *out, const cJSON *doc, bty_error *err)
{
    if (reply_text(out, 200, TYPE_JSON, format_json(doc)))
        return bty_error_set(err, 503, "out of memory rendering the answer; try again");
    return 0;
}

static void reply_error(reply *out, const bty_error *err)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", err->message[0] ? err->message : "internal error");
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    size_t len = text ? strlen(text) : 0;
    char *body = text ? realloc(text, len + 2) : NULL;
    if (body) {
        body[len] = '\n';
        body[len + 1] = '\0';
    } else {
        free(text);
    }
    out->status = err->status ? err->status : 500;
    out->content_type = TYPE_JSON;
    out->body = body;
}

/* ------------------------------------------------------------------ rules */

/* A rule as apply_rule runs it; min_batch_id is for open (see there). */
typedef int (*rule_fn)(const char *workflow, const cJSON *doc, bty_time now, long long min_batch_id,
                       const void *arg, bty_change *out, bty_error *err);

/* apply_rule's stages, after 0 (start). */
enum { RULE_READ = 1, RULE_WRITE, RULE_FREE_ID };

/* Every try found the workflow changed by another call. */
static int too_fast(const request *req, bty_error *err)
{
    return bty_error_set(err, 503,
                         "workflow '%s' is changing too fast to apply this call; try again",
                         req->target.workflow);
}

/* Ask for (another) read of the workflow. After the first, back off a
 * little, growing and jittered, so that racing writers (in this process
 * and others) spread out. */
static int read_again(request *req, bty_error *err)
{
    if (req->attempt == MAX_ATTEMPTS)
        return too_fast(req, err);
    req->delay_us = 0;
    if (req->attempt) {
        static __thread unsigned seed;
        if (!seed)
            seed =
                (unsigned)getpid() ^ (unsigned)(uintptr_t)pthread_self() ^ (unsigned)now_utc().usec;
        req->delay_us = req->attempt * 100 + (int)(rand_r(&seed) % 100);
    }
    req->attempt++;
    if (store_call_read(&req->call, req->target.workflow, err) != 0)
        return HANDLER_FAILED;
    req->stage = RULE_READ;
    return HANDLER_WAIT;
}

/* Apply the rule to `base` (what <wf> holds, as read, as the store said
 * when it refused a write, or as cached; consumed) and ask for the write,
 * which Redis applies only if <wf> still holds base. */
static int rule_then_write(request *req, rule_fn rule, const void *arg, bty_hash *base,
                           bty_error *err)
{
    const char *workflow = req->target.workflow;
    int from_cache = base->cached != NULL;
    if (base->n == 0) {
        store_hash_free(base);
        return bty_error_set(err, 404,
                             "workflow '%s' is not loaded; put cfg/%s.yaml in place and "
                             "call load_cfg/%s",
                             workflow, workflow, workflow);
    }
    /* A cached document is read as it is; any other is parsed. */
    const cJSON *doc = cache_doc(base->cached);
    cJSON *parsed = doc ? NULL : doc_from_hash(base->fields, base->n, workflow, err);
    if (parsed)
        doc = parsed;
    int rc = doc ? rule(workflow, doc, now_utc(), req->min_batch_id, arg, &req->change, err) : -1;
    cJSON_Delete(parsed);
    if (from_cache && (rc != 0 || req->change.plan.n == 0)) {
        /* Only a write checks the cache; an answer without one (an error,
         * a retried close) comes from what Redis holds. */
        store_hash_free(base);
        change_free(&req->change);
        return read_again(req, err);
    }
    if (rc == 0 && req->change.plan.n)
        rc = store_call_commit(&req->call, workflow, base, &req->change.plan, err);
    if (rc != 0 || req->change.plan.n == 0) {
        store_hash_free(base);
        return rc ? HANDLER_FAILED : HANDLER_DONE; /* done: a retried close, nothing to write */
    }
    req->base = *base; /* kept to learn what <wf> holds once written */
    req->stage = RULE_WRITE;
    return HANDLER_WAIT;
}

/* After an answer that wrote <wf>: remember what it holds now, the base
 * with the plan applied, and the answer's document, which is taken. */
static void remember_written(request *req)
{
    cache_put(cache_entry_after(req->target.workflow, req->base.fields, req->base.n,
                                &req->change.plan, req->change.state));
    req->change.state = NULL;
    store_hash_free(&req->base);
}

/* Read <wf>, apply the rule, write the plan, as a handler's stages; done
 * with req->change holding the change. The read is skipped when this
 * process knows what <wf> holds (cache.c). Start over when the workflow
 * changed between read and write (another call wrote it: the store says
 * what it holds now), or when the snapshot of the batch id chosen exists
 * already (a load_cfg reset the ids since that batch): then with a higher
 * id. */
static int apply_rule(request *req, rule_fn rule, const void *arg, bty_error *err)
{
    const char *workflow = req->target.workflow;
    bty_hash hash;
    switch (req->stage) {
    case RULE_READ:
        if (store_read_result(&req->call, &hash, err) != 0)
            return HANDLER_FAILED;
        return rule_then_write(req, rule, arg, &hash, err);
    case RULE_WRITE: {
        int outcome = store_commit_result(&req->call, &hash, err);
        if (outcome == COMMIT_WRITTEN)
            return HANDLER_DONE; /* the handler renders, then remember_written */
        store_hash_free(&req->base);
        cache_forget(workflow);
        if (outcome == COMMIT_FAILED)
            return HANDLER_FAILED;
        long long taken = req->change.batch_id;
        change_free(&req->change);
        if (outcome == COMMIT_CHANGED) {
            /* Go on at once from what the workflow holds now: the usual
             * case is another process having written it since this one
             * did. Refused again, calls are racing on this workflow: back
             * off and read, as after a conflict, so that they spread out
             * (an immediate retry each time let a slow call lose fifty
             * times in a row). */
            if (req->attempt < 2) {
                req->attempt++;
                return rule_then_write(req, rule, arg, &hash, err);
            }
            store_hash_free(&hash);
            return read_again(req, err);
        }
        if (outcome == COMMIT_AGAIN)
            return read_again(req, err);
        /* COMMIT_EXISTS. Opens in one second take consecutive ids: find
         * the end of the run in one round trip rather than one retry each. */
        req->min_batch_id = taken + 1;
        if (store_call_first_free(&req->call, workflow, req->min_batch_id, 64, err) != 0)
            return HANDLER_FAILED;
        req->stage = RULE_FREE_ID;
        return HANDLER_WAIT;
    }
    case RULE_FREE_ID:
        req->min_batch_id = store_first_free_result(&req->call, req->min_batch_id, err);
        if (req->min_batch_id < 0)
            return HANDLER_FAILED;
        return read_again(req, err);
    default:
        req->attempt = 0;
        req->min_batch_id = 0;
        if (cache_get(workflow, &hash))
            return rule_then_write(req, rule, arg, &hash, err);
        return read_again(req, err);
    }
}

static int open_rule(const char *workflow, const cJSON *doc, bty_time now, long long min_batch_id,
                     const void *arg, bty_change *out, bty_error *err)
{
    (void)arg;
    return rules_open(workflow, doc, now, min_batch_id, out, err);
}

static int end_rule(const char *workflow, const cJSON *doc, bty_time now, long long min_batch_id,
                    const void *arg, bty_change *out, bty_error *err)
{
    (void)min_batch_id;
    return rules_end(workflow, doc, arg, now, out, err);
}

/* ------------------------------------------------------------------ handlers */

typedef int (*handler_fn)(const server *srv, request *req, reply *out, bty_error *err);

static int handle_index(const server *srv, request *req, reply *out, bty_error *err)
{
    (void)srv, (void)req, (void)err;
    return reply_text(out, 200, TYPE_TEXT, strdup("Batchy " BATCHY_VERSION "\n"));
}

static int handle_healthz(const server *srv, request *req, reply *out, bty_error *err)
{
    (void)srv;
    if (req->stage == 0) {
        if (store_call_ping(&req->call, err) != 0)
            return HANDLER_FAILED;
        req->stage = 1;
        return HANDLER_WAIT;
    }
    if (store_ping_result(&req->call, err) != 0)
        return HANDLER_FAILED;
    return reply_text(out, 200, TYPE_JSON, strdup("{\"status\":\"ok\"}\n"));
}

/* The key get_status reads: <wf>, or with ?batch_id=N the snapshot. */
static int status_key(const request *req, char key[BTY_KEY_MAX], const char **id_text,
                      long long *id, bty_error *err)
{
    *id_text = param(req, "batch_id");
    *id = 0;
    if (*id_text && batch_id_parse(*id_text, id) != 0)
        return bty_error_set(err, 400, "batch_id must be a whole number, not '%.40s'", *id_text);
    if (*id_text)
        doc_snapshot_key(key, req->target.workflow, *id);
    else
        snprintf(key, BTY_KEY_MAX, "%s", req->target.workflow);
    return 0;
}

static int handle_get_status(const server *srv, request *req, reply *out, bty_error *err)
{
    (void)srv;
    const char *workflow = req->target.workflow, *id_text;
    char key[BTY_KEY_MAX];
    long long id;
    if (status_key(req, key, &id_text, &id, err) != 0)
        return HANDLER_FAILED;
    if (req->stage == 0) {
        if (store_call_read(&req->call, key, err) != 0)
            return HANDLER_FAILED;
        req->stage = 1;
        return HANDLER_WAIT;
    }
    bty_hash hash;
    if (store_read_result(&req->call, &hash, err) != 0)
        return HANDLER_FAILED;
    if (hash.n == 0) {
        store_hash_free(&hash);
        if (id_text)
            return bty_error_set(err, 404, "workflow '%s' has no batch %lld", workflow, id);
        return bty_error_set(err, 404, "workflow '%s' is not loaded; call load_cfg/%s", workflow,
                             workflow);
    }
    cJSON *doc = doc_from_hash(hash.fields, hash.n, key, err);
    store_hash_free(&hash);
    if (!doc)
        return HANDLER_FAILED;
    int rc = reply_doc(out, doc, err);
    cJSON_Delete(doc);
    return rc;
}

/* Read cfg/<wf>.yaml (or .yml) into a malloc'd buffer. */
static char *read_cfg_file(const char *dir, const char *workflow, size_t *len, char *name,
                           size_t name_size, bty_error *err)
{
    static const char *const exts[] = {"yaml", "yml"};
    int fd = -1;
    char path[1400];
    for (size_t i = 0; i < 2 && fd < 0; i++) {
        snprintf(name, name_size, "%s.%s", workflow, exts[i]);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    }
    if (fd < 0) {
        bty_error_set(err, 404, "no file %s.yaml or %s.yml in the configuration folder '%.200s'",
                      workflow, workflow, dir);
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        bty_error_set(err, 404, "%s is not a regular file", name);
    } else if (st.st_size > CFG_MAX_BYTES) {
        bty_error_set(err, 413, "%s is %lld bytes; workflow files are 1 MiB at most", name,
                      (long long)st.st_size);
    } else if (!(buf = malloc((size_t)st.st_size + 1))) {
        bty_error_set(err, 503, "out of memory reading %s", name);
    } else {
        size_t got = 0;
        ssize_t n = 1;
        /* Read one byte more than stat said, to notice a file that grew. */
        while (got <= (size_t)st.st_size && n > 0) {
            n = read(fd, buf + got, (size_t)st.st_size + 1 - got);
            if (n > 0)
                got += (size_t)n;
            else if (n < 0 && errno == EINTR)
                n = 1;
        }
        if (n < 0 || got > (size_t)st.st_size) {
            bty_error_set(err, n < 0 ? 503 : 409, "%s changed or could not be read; try again",
                          name);
            free(buf);
            buf = NULL;
        } else {
            *len = got;
        }
    }
    close(fd);
    return buf;
}

/* load_cfg: no read, so nothing to compare: a load replaces the workflow
 * whatever it holds. The write is tried again (three times at most) only
 * when Redis had lost the script (SCRIPT FLUSH), which the store loads
 * again. */
static int handle_load_cfg(const server *srv, request *req, reply *out, bty_error *err)
{
    const char *workflow = req->target.workflow;
    if (req->stage == 0) {
        char name[160];
        size_t len = 0;
        char *text = read_cfg_file(srv->opts.cfg_dir, workflow, &len, name, sizeof(name), err);
        if (!text)
            return HANDLER_FAILED;
        cJSON *doc = cfg_parse(text, len, name, err);
        free(text);
        if (!doc || rules_load(workflow, doc, now_utc(), &req->change, err) != 0)
            return HANDLER_FAILED;
    } else {
        int outcome = store_commit_result(&req->call, NULL, err);
        if (outcome == COMMIT_WRITTEN) {
            int rc = reply_doc(out, req->change.state, err);
            remember_written(req);
            return rc;
        }
        cache_forget(workflow);
        if (outcome != COMMIT_AGAIN)
            return HANDLER_FAILED;
        if (req->stage == 3)
            return bty_error_set(err, 503, "could not write workflow '%s'; try again", workflow);
    }
    if (store_call_commit(&req->call, workflow, NULL, &req->change.plan, err) != 0)
        return HANDLER_FAILED;
    req->stage++;
    return HANDLER_WAIT;
}

static int handle_open_batch(const server *srv, request *req, reply *out, bty_error *err)
{
    (void)srv;
    int rc = apply_rule(req, open_rule, NULL, err);
    if (rc != HANDLER_DONE)
        return rc;
    const bty_change *change = &req->change;
    switch (req->target.format) {
    case FMT_INFA:
        rc = reply_text(out, 200, TYPE_TEXT, format_infa(change->state));
        break;
    case FMT_SH:
        rc = reply_text(out, 200, TYPE_TEXT,
                        format_sh(req->target.workflow, change->batch_id, change->state));
        break;
    default:
        rc = reply_text(out, 200, TYPE_JSON, format_json(change->state));
        break;
    }
    if (req->change.plan.n)
        remember_written(req);
    if (rc != 0)
        return bty_error_set(err, 503, "out of memory rendering the answer; try again");
    return HANDLER_DONE;
}

/* close_batch and fail_batch: the parameters read into a request, then
 * the rule. */
static int handle_end(const server *srv, request *req, const char *status, reply *out,
                      bty_error *err)
{
    if (req->stage == 0) {
        if (!(req->params = calloc(1, sizeof(*req->params))))
            return bty_error_set(err, 503, "out of memory; try again");
        /* token= is authentication when a token is configured, never
         * stored; without one it is refused like a special field. */
        if (end_params_read(req->params, status, req->names, req->values, req->nparams,
                            srv->opts.token[0] != '\0', err) != 0)
            return HANDLER_FAILED;
    }
    int rc = apply_rule(req, end_rule, &req->params->req, err);
    if (rc != HANDLER_DONE)
        return rc;
    rc = reply_doc(out, req->change.state, err);
    if (req->change.plan.n)
        remember_written(req);
    return rc;
}

static int handle_close_batch(const server *srv, request *req, reply *out, bty_error *err)
{
    return handle_end(srv, req, "success", out, err);
}

static int handle_fail_batch(const server *srv, request *req, reply *out, bty_error *err)
{
    return handle_end(srv, req, "failed", out, err);
}

/* Indexed by bty_endpoint: the routing table in route.c says which. */
static const handler_fn handlers[] = {
    [EP_INDEX] = handle_index,           [EP_HEALTHZ] = handle_healthz,
    [EP_LOAD_CFG] = handle_load_cfg,     [EP_GET_STATUS] = handle_get_status,
    [EP_OPEN_BATCH] = handle_open_batch, [EP_CLOSE_BATCH] = handle_close_batch,
    [EP_FAIL_BATCH] = handle_fail_batch,
};

/* ------------------------------------------------------------------ auth */

static int authorised(const server *srv, struct MHD_Connection *conn, const request *req)
{
    const char *header = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (header && strncasecmp(header, "Bearer ", 7) == 0)
        return secret_equal(header + 7, srv->opts.token);
    const char *query = param(req, "token");
    return query && secret_equal(query, srv->opts.token);
}

/* ------------------------------------------------------------------ libmicrohttpd */

/* Every parameter ends up in JSON or in an error message: it must be
 * UTF-8 without NUL, and of a bounded size. */
static int check_params(const request *req, bty_error *err)
{
    if (req->nul_in_body)
        return bty_error_set(err, 400, "parameters must be UTF-8 text without NUL");
    if (req->too_many_params)
        return bty_error_set(err, 400, "too many parameters (%d at most)", MAX_PARAMS);
    for (size_t i = 0; i < req->nparams; i++) {
        size_t nlen = strlen(req->names[i]), vlen = strlen(req->values[i]);
        if (nlen > MAX_PARAM_NAME || vlen > MAX_PARAM_VALUE)
            return bty_error_set(err, 400,
                                 "parameter too long: names are %d bytes at most, values %d",
                                 MAX_PARAM_NAME, MAX_PARAM_VALUE);
        if (!utf8_valid(req->names[i], nlen) || !utf8_valid(req->values[i], vlen))
            return bty_error_set(err, 400, "parameters must be UTF-8 text without NUL");
    }
    return 0;
}

/* Check, route and authorise a request that is all in. 0 with
 * req->target set, or -1 with err set. */
static int admit(const server *srv, struct MHD_Connection *conn, request *req, const char *url,
                 const char *method, bty_error *err)
{
    if (req->body_bytes > MAX_BODY)
        return bty_error_set(err, 413, "request body too large (64 KiB at most)");
    if (req->bad_framing)
        return bty_error_set(err, 400, "Content-Length headers disagree; send one");
    if (req->encoded_slash)
        return bty_error_set(err, 400, "a name cannot hold '/' (%%2F in the path)");
    if (!utf8_valid(url, strlen(url)))
        return bty_error_set(err, 400, "the path must be UTF-8 text without NUL");
    if (check_params(req, err) != 0 || route_match(method, url, &req->target, err) != 0)
        return -1;
    if (req->not_a_form)
        return bty_error_set(err, 415,
                             "a POST body must be a form (application/x-www-form-urlencoded or "
                             "multipart/form-data), or put the parameters in the query string");
    if (req->target.route->needs_token && srv->opts.token[0] && !authorised(srv, conn, req))
        return bty_error_set(err, 401,
                             "missing or wrong token: send 'Authorization: Bearer <token>'");
    return 0;
}

/* Keep the logged path printable and short. */
static void log_path(char *dst, size_t size, const char *url)
{
    size_t i = 0;
    for (; url[i] && i + 1 < size; i++)
        dst[i] = (url[i] > ' ' && url[i] < 127) ? url[i] : '?';
    dst[i] = '\0';
}

/* ---- Slow clients.
 * libmicrohttpd's connection timeout counts time without any traffic, so a
 * client sending one byte a second would hold its connection, a thread's
 * share of the poll set and a descriptor forever, and enough such clients
 * would lock every other caller out. So each connection also has a
 * deadline: the client has client_timeout_s to send a whole request (from
 * the connection's start or the end of its previous answer) and as long
 * again to read the answer. Time batchy spends on the request is not
 * counted. A watchdog thread shuts down the sockets of connections past
 * their deadline; libmicrohttpd then sees the end of the stream and closes
 * the connection itself, in its own thread, as if the client had left. */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Set the deadline of conn's watch entry: LLONG_MAX while batchy works on
 * its request, else now plus the client timeout. */
static void watch_set(const server *srv, struct MHD_Connection *conn, int client_turn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    watched *w = info ? info->socket_context : NULL;
    if (w)
        atomic_store(&w->deadline_ms,
                     client_turn ? now_ms() + srv->opts.client_timeout_s * 1000LL : LLONG_MAX);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    server *srv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        watched *w = info ? calloc(1, sizeof(*w)) : NULL;
        if (!w)
            return; /* unwatched: the inactivity timeout still applies */
        w->fd = info->connect_fd;
        atomic_init(&w->deadline_ms, now_ms() + srv->opts.client_timeout_s * 1000LL);
        pthread_mutex_lock(&srv->watch_lock);
        w->next = srv->watch_head;
        if (w->next)
            w->next->prev = w;
        srv->watch_head = w;
        pthread_mutex_unlock(&srv->watch_lock);
        *socket_context = w;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        watched *w = *socket_context;
        pthread_mutex_lock(&srv->watch_lock);
        if (w->prev)
            w->prev->next = w->next;
        else
            srv->watch_head = w->next;
        if (w->next)
            w->next->prev = w->prev;
        pthread_mutex_unlock(&srv->watch_lock);
        free(w);
        *socket_context = NULL;
    }
}

static void log_flush(server *srv);

/* Once every quarter of the timeout (LOG_DELAY_MS at most), cut the
 * connections past their deadline, and write the access log out. */
static void *watchdog_main(void *arg)
{
    server *srv = arg;
    long long period = srv->opts.client_timeout_s * 250LL;
    if (period > LOG_DELAY_MS)
        period = LOG_DELAY_MS; /* it also writes the access log out */
    pthread_mutex_lock(&srv->watch_lock);
    while (!srv->watch_stop) {
        long long now = now_ms();
        for (watched *w = srv->watch_head; w; w = w->next)
            if (!w->cut && atomic_load(&w->deadline_ms) < now) {
                shutdown(w->fd, SHUT_RDWR);
                w->cut = 1;
            }
        pthread_mutex_unlock(&srv->watch_lock);
        log_flush(srv);
        pthread_mutex_lock(&srv->watch_lock);
        if (srv->watch_stop)
            break;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += period / 1000;
        until.tv_nsec += (period % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&srv->watch_wake, &srv->watch_lock, &until);
    }
    pthread_mutex_unlock(&srv->watch_lock);
    return NULL;
}

static enum MHD_Result answer(server *srv, struct MHD_Connection *conn, request *req,
                              const char *url, const char *method);

/* What the Content-Length headers of a request say. */
typedef struct declared_length {
    int seen;
    int in_doubt; /* they disagree, or one is not a number */
    unsigned long long value;
} declared_length;

/* Header iterator filling a declared_length (RFC 9112 6.3: a request whose
 * length is in doubt must not be read as one). */
static enum MHD_Result check_length(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    declared_length *d = cls;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0)
        return MHD_YES;
    char *end = NULL;
    errno = 0;
    unsigned long long n = value ? strtoull(value, &end, 10) : 0;
    if (!value || end == value || *end || errno || value[0] == '-' || (d->seen && d->value != n)) {
        d->in_doubt = 1;
        return MHD_NO;
    }
    d->seen = 1;
    d->value = n;
    return MHD_YES;
}

/* What on_uri leaves in the per-request pointer for a path holding %2F.
 * Not an allocation: libmicrohttpd does not report the end of requests it
 * refuses itself (431, 414, ...), so anything allocated here could leak. */
static char encoded_slash_mark;

/* The raw request target, before libmicrohttpd decodes it: mark a %2F in
 * the path, which would otherwise reach routing as a '/' and split a
 * name in two ("/open_batch/wf1%2Fsh" is not wf1 in sh format). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls, (void)conn;
    size_t path_len = strcspn(uri, "?");
    for (size_t i = 0; i + 2 < path_len; i++)
        if (uri[i] == '%' && uri[i + 1] == '2' && (uri[i + 2] == 'F' || uri[i + 2] == 'f'))
            return &encoded_slash_mark;
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    server *srv = cls;
    request *req = *req_cls;
    if (!req || *req_cls == &encoded_slash_mark) {
        int encoded_slash = *req_cls == &encoded_slash_mark;
        if (!(req = calloc(1, sizeof(*req))))
            return MHD_NO;
        *req_cls = req;
        req->encoded_slash = encoded_slash;
        atomic_fetch_add(&srv->in_flight, 1);
        clock_gettime(CLOCK_MONOTONIC, &req->start);
        snprintf(req->method, sizeof(req->method), "%s", method);
        log_path(req->path, sizeof(req->path), url);
        if (strcmp(method, "POST") == 0)
            req->post = MHD_create_post_processor(conn, 4096, collect_post, req);
        /* A body announced too large, or with a length in doubt, is
         * refused before it is read. */
        declared_length declared = {0};
        MHD_get_connection_values(conn, MHD_HEADER_KIND, check_length, &declared);
        if (declared.in_doubt)
            req->bad_framing = 1;
        else if (declared.value > MAX_BODY)
            req->body_bytes = SIZE_MAX; /* the 413 of admit */
        if (!req->bad_framing && req->body_bytes <= MAX_BODY)
            return MHD_YES; /* read the body, if any */
        return answer(srv, conn, req, url, method);
    }
    if (*upload_data_size) {
        req->body_bytes += *upload_data_size;
        if (req->body_bytes > 16 * MAX_BODY)
            return MHD_NO; /* far past the limit: close rather than read on */
        /* libmicrohttpd's form parser stops a value at a NUL byte: look
         * for one here, or "a=1<NUL>2" would quietly store "1". */
        if (memchr(upload_data, '\0', *upload_data_size))
            req->nul_in_body = 1;
        if (!req->post)
            req->not_a_form = 1;
        else if (req->body_bytes <= MAX_BODY &&
                 MHD_post_process(req->post, upload_data, *upload_data_size) != MHD_YES)
            req->too_many_params = req->nparams == MAX_PARAMS;
        *upload_data_size = 0;
        return MHD_YES;
    }
    return answer(srv, conn, req, url, method);
}

/* The store's done callback, on its thread: the round trip a handler
 * asked for is done; let the connection's worker run the handler again. */
static void resume_request(void *arg)
{
    const request *req = arg;
    MHD_resume_connection(req->conn);
}

/* Route and handle a request, or go on handling it after a round trip;
 * then queue its answer, or suspend the connection while the store makes
 * the round trip the handler asked for. */
static enum MHD_Result answer(server *srv, struct MHD_Connection *conn, request *req,
                              const char *url, const char *method)
{
    reply out = {0};
    bty_error err = {0};
    int rc = 0;
    if (!req->admitted) {
        req->admitted = 1;
        req->conn = conn;
        watch_set(srv, conn, 0);
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_query, req);
        rc = admit(srv, conn, req, url, method, &err);
    }
    if (rc == 0)
        rc = handlers[req->target.route->endpoint](srv, req, &out, &err);
    if (rc == HANDLER_WAIT) {
        /* Suspended first: the store may resume it at once. */
        MHD_suspend_connection(conn);
        store_submit(&req->call, req->delay_us, resume_request, req);
        return MHD_YES;
    }
    if (rc != HANDLER_DONE) {
        free(out.body);
        reply_error(&out, &err);
    }
    req->status = out.status;
    watch_set(srv, conn, 1); /* the client's turn: read the answer */

    struct MHD_Response *resp =
        out.body
            ? MHD_create_response_from_buffer(strlen(out.body), out.body, MHD_RESPMEM_MUST_FREE)
            : NULL;
    if (!resp) {
        free(out.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, out.content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (out.status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (out.status == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, POST, HEAD");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)out.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Percent-decode a path or parameter in place, as libmicrohttpd does,
 * except that %00 becomes the byte 0xFF instead of a NUL: a NUL would cut
 * the string short ("wf1%00x" would read as "wf1"), while 0xFF is never
 * valid UTF-8, so names and parameters holding it are refused with 400. */
static size_t unescape_without_nul(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls, (void)conn;
    for (char *p = s; (p = strchr(p, '%')); p++)
        if (p[1] == '0' && p[2] == '0')
            p[1] = p[2] = 'F';
    return MHD_http_unescape(s);
}

/* ---- The access log.
 * One write per line was a tenth of batchy's system time under load. Lines
 * are gathered in a buffer and written together: at once when the log has
 * been quiet for LOG_DELAY_MS (a line of a lone request appears as it is
 * answered), else when the buffer fills, or by the watchdog within
 * LOG_DELAY_MS. Whole lines only, so lines never interleave. */

/* Write what is gathered. Under log_lock. */
static void log_flush_locked(server *srv, long long now)
{
    size_t done = 0;
    while (done < srv->log_len) {
        ssize_t n = write(STDERR_FILENO, srv->log_buf + done, srv->log_len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* nowhere to report a failed log write */
        done += (size_t)n;
    }
    srv->log_len = 0;
    srv->log_written_ms = now;
}

static void log_flush(server *srv)
{
    pthread_mutex_lock(&srv->log_lock);
    if (srv->log_len)
        log_flush_locked(srv, now_ms());
    pthread_mutex_unlock(&srv->log_lock);
}

static void log_line(server *srv, const char *line, size_t len)
{
    long long now = now_ms();
    pthread_mutex_lock(&srv->log_lock);
    if (srv->log_len + len > sizeof(srv->log_buf))
        log_flush_locked(srv, now);
    if (len <= sizeof(srv->log_buf)) {
        memcpy(srv->log_buf + srv->log_len, line, len);
        srv->log_len += len;
    }
    if (now - srv->log_written_ms >= LOG_DELAY_MS)
        log_flush_locked(srv, now);
    pthread_mutex_unlock(&srv->log_lock);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    server *srv = cls;
    request *req = *req_cls;
    watch_set(srv, conn, 1); /* answered: the next request's time starts */
    if (!req || *req_cls == &encoded_slash_mark)
        return; /* never reached on_request */
    atomic_fetch_sub(&srv->in_flight, 1);
    if (!srv->opts.quiet && req->status) {
        struct timespec end;
        clock_gettime(CLOCK_MONOTONIC, &end);
        long long us = (end.tv_sec - req->start.tv_sec) * 1000000LL +
                       (end.tv_nsec - req->start.tv_nsec) / 1000;
        char stamp[BTY_TIME_LEN + 1], line[400];
        time_format(now_utc(), stamp);
        int len = snprintf(line, sizeof(line), "%.19sZ %s %s %d %lld.%03lldms\n", stamp,
                           req->method, req->path, req->status, us / 1000, us % 1000);
        if (len > 0)
            log_line(srv, line, (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
    }
    if (req->post)
        MHD_destroy_post_processor(req->post);
    store_call_clear(&req->call);
    change_free(&req->change);
    store_hash_free(&req->base);
    if (req->params) {
        end_params_free(req->params);
        free(req->params);
    }
    for (size_t i = 0; i < req->nparams; i++) {
        free(req->names[i]);
        free(req->values[i]);
    }
    free(req->names);
    free(req->values);
    free(req);
    *req_cls = NULL;
}

/* Free a server whose daemon and watchdog are stopped (or never ran). */
static void server_free(server *srv)
{
    pthread_cond_destroy(&srv->watch_wake);
    pthread_mutex_destroy(&srv->watch_lock);
    pthread_mutex_destroy(&srv->log_lock);
    free(srv);
}

void *http_start(const bty_options *opts)
{
    server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    srv->opts = *opts;
    /* The watchdog waits on a monotonic clock: setting the wall clock must
     * neither cut connections nor spare them. */
    pthread_condattr_t cattr;
    if (pthread_condattr_init(&cattr) != 0) {
        free(srv);
        return NULL;
    }
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_mutex_init(&srv->watch_lock, NULL);
    pthread_mutex_init(&srv->log_lock, NULL);
    int cond_rc = pthread_cond_init(&srv->watch_wake, &cattr);
    pthread_condattr_destroy(&cattr);
    if (cond_rc != 0) {
        pthread_mutex_destroy(&srv->watch_lock);
        free(srv);
        return NULL;
    }

    char port[8];
    snprintf(port, sizeof(port), "%d", opts->listen_port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(opts->listen_host, port, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "batchy: cannot resolve listen address '%s': %s\n", opts->listen_host,
                gai_strerror(gai));
        server_free(srv);
        return NULL;
    }

    /* Stay below the descriptor limit: each connection costs one, and the
     * Redis connections, the log and libmicrohttpd's own need a few more.
     * Connections past the limit are closed as soon as they are accepted. */
    struct rlimit rl;
    unsigned limit = (unsigned)opts->max_connections;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < limit + 64)
        limit = rl.rlim_cur > 128 ? (unsigned)rl.rlim_cur - 64 : 64;

    /* poll(), not epoll: with libmicrohttpd 0.9.75 in epoll mode a request
     * whose parameters overflow the connection's memory pool is left hanging
     * until the connection timeout; with poll it is closed at once. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)opts->client_timeout_s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
        /* Room for a request line of ~25 KB with ~500 parameters (each
         * costs libmicrohttpd a record in this pool); longer lines get 414,
         * and a request with more parameters is closed unanswered. Not
         * more: libmicrohttpd zeroes the whole pool before each request of
         * a keep-alive connection, and at 256 KiB that was 83% of the
         * instructions of a get_status (callgrind). */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, srv, MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL, MHD_OPTION_UNESCAPE_CALLBACK,
        unescape_without_nul, NULL,
        /* Last, so that with one thread the list ends here: libmicrohttpd
         * warns about a pool of one. */
        opts->threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (unsigned)opts->threads,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!srv->daemon) {
        fprintf(stderr,
                "batchy: cannot listen on %s:%d (in use, or not an address of this "
                "machine)\n",
                opts->listen_host, opts->listen_port);
        server_free(srv);
        return NULL;
    }
    if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv) != 0) {
        fprintf(stderr, "batchy: cannot start a thread\n");
        MHD_stop_daemon(srv->daemon);
        server_free(srv);
        return NULL;
    }
    return srv;
}

/* Wait (up to ms) until every request started has been answered. */
static void wait_answered(server *srv, int ms)
{
    for (int waited_ms = 0; atomic_load(&srv->in_flight) > 0 && waited_ms < ms; waited_ms += 10)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
}

void http_drain(void *handle)
{
    server *srv = handle;
    if (!srv)
        return;
    MHD_quiesce_daemon(srv->daemon); /* stop accepting */
    /* Let requests in flight be answered: MHD_stop_daemon closes every
     * connection, answered or not, and a client that got no answer to an
     * open would retry it and open a second batch. */
    wait_answered(srv, 10000);
}

void http_stop(void *handle)
{
    server *srv = handle;
    if (!srv)
        return;
    /* The store has stopped: the requests still waiting for it were
     * resumed with a 503, which their workers now send. libmicrohttpd
     * must not be stopped with a connection suspended, and none is: every
     * suspended one was resumed by the store. */
    wait_answered(srv, 1000);
    MHD_stop_daemon(srv->daemon); /* join workers; idle connections close */
    pthread_mutex_lock(&srv->watch_lock);
    srv->watch_stop = 1;
    pthread_cond_signal(&srv->watch_wake);
    pthread_mutex_unlock(&srv->watch_lock);
    pthread_join(srv->watchdog, NULL);
    log_flush(srv);
    server_free(srv);
}
