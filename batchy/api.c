/*
 * api.c - the handlers: one per row of the endpoint table (batchy.h), each
 * a few lines over the pure core, the store and the write protocol
 * (apply.c). http.c has routed, checked and authorised the request; a
 * handler returns an answer, an error, or HANDLER_WAIT with req->call
 * built, and runs again once that round trip is done (req->runs counts
 * its runs). Handlers never write HTTP: they fill an api_reply.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shell.h"

static const char TYPE_JSON[] = "application/json";
static const char TYPE_TEXT[] = "text/plain; charset=utf-8";

const char *api_param(const api_request *req, const char *name)
{
    const char *found = NULL;
    for (size_t i = 0; i < req->nparams; i++)
        if (req->names[i] && strcmp(req->names[i], name) == 0)
            found = req->values[i];
    return found;
}

/* The first n bytes of src (fewer at its end) into dst[size], cut to
 * fit: snprintf's "%.*s" without its cost, on paths taken per request. */
static void copy_text(char *dst, size_t size, const char *src, size_t n)
{
    n = strnlen(src, n < size - 1 ? n : size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ------------------------------------------------------------------ replies */

static int reply_text(api_reply *out, int status, const char *type, char *body)
{
    out->status = status;
    out->content_type = type;
    out->body = body;
    return body ? 0 : -1;
}

/* An answer sent as it is read (page.c). */
static void reply_page(api_reply *out, int status, const char *type, page_body *page)
{
    out->status = status;
    out->content_type = type;
    out->page = page;
}

/* The answer to a call that wrote nothing: out of memory is worth a retry. */
static int reply_doc(api_reply *out, const cJSON *doc, bty_error *err)
{
    if (reply_text(out, 200, TYPE_JSON, format_json(doc)))
        return bty_error_set(err, 503, "out of memory rendering the answer; try again");
    return 0;
}

/* Out of memory rendering the answer to a write that was applied: said as
 * a lost reply is (store.c), never "try again": a retried open would open
 * a second batch. */
static int written_unanswered(bty_error *err)
{
    return bty_error_set(err, 503,
                         "out of memory answering a write, which may or may not have been "
                         "applied: check get_status before calling again");
}

void api_error_reply(api_reply *out, const bty_error *err)
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

/* ------------------------------------------------------------------ handlers */

static int handle_index(api_request *req, api_reply *out, bty_error *err)
{
    (void)req, (void)err;
    return reply_text(out, 200, TYPE_TEXT, strdup("Batchy " BATCHY_VERSION "\n"));
}

static int handle_healthz(api_request *req, api_reply *out, bty_error *err)
{
    if (req->runs == 0)
        return store_call_ping(&req->call, err) != 0 ? HANDLER_FAILED : HANDLER_WAIT;
    if (store_ping_result(&req->call, err) != 0)
        return HANDLER_FAILED;
    /* Also how many requests wait here (hold.c), whether change notices
     * come in (notice.c): without them a change through another Batchy is
     * seen only by the re-check, seconds late; and whether writes need the
     * token (the dashboard offers its actions only then). */
    size_t held, streams;
    hold_counts(&held, &streams);
    /* Through Sentinel, which master it is (an address: nothing to escape
     * but what no address holds, which is left out). */
    char where[300], master[340] = "";
    store_where(where, sizeof(where));
    if (req->opts->redis.is_sentinel && where[0] &&
        strspn(where, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:-_[]") ==
            strlen(where))
        snprintf(master, sizeof(master), ",\"master\":\"%s\"", where);
    char body[500];
    snprintf(body, sizeof(body),
             "{\"status\":\"ok\",\"notices\":%s,\"held\":%zu,\"streams\":%zu,\"token\":%s%s}\n",
             notice_subscribed() ? "true" : "false", held, streams,
             req->opts->token[0] ? "true" : "false", master);
    return reply_text(out, 200, TYPE_JSON, strdup(body));
}

/* Does If-None-Match `header` (NULL when absent) name `etag`: "*", or a
 * comma-separated list of entity tags, weak ones (W/"...") compared by
 * their tag as RFC 9110 says for If-None-Match? */
static int etag_matches(const char *header, const char *etag)
{
    if (!header)
        return 0;
    size_t len = strlen(etag);
    const char *p = header;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return 1;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        if (strncmp(p, etag, len) == 0 &&
            (p[len] == '\0' || p[len] == ',' || p[len] == ' ' || p[len] == '\t'))
            return 1;
        while (*p && *p != ',')
            p++;
    }
    return 0;
}

/* The key get_status reads: <wf>, or with ?batch_id=N the snapshot; or a
 * snapshot named by its key, as the original's get_status took it. */
static int status_key(const api_request *req, char key[BTY_KEY_MAX], const char **id_text,
                      long long *id, bty_error *err)
{
    *id_text = api_param(req, "batch_id");
    *id = 0;
    if (*id_text && req->target.snapshot)
        return bty_error_set(err, 400, "batch_id= is for a workflow; '%s' is a snapshot already",
                             req->target.workflow);
    if (*id_text && batch_id_parse(*id_text, id) != 0)
        return bty_error_set(err, 400, "batch_id must be a whole number, not '%.40s'", *id_text);
    if (*id_text)
        key_snapshot(key, req->target.workflow, *id);
    else
        memcpy(key, req->target.workflow, BTY_KEY_MAX); /* as long as a key */
    return 0;
}

/* ?wait=S: whole seconds from 1 to 600, as *ms; 0 when absent. */
static int wait_param(const api_request *req, long long *ms, bty_error *err)
{
    const char *v = api_param(req, "wait");
    *ms = 0;
    if (!v)
        return 0;
    long long s = 0;
    size_t i = 0;
    for (; v[i] >= '0' && v[i] <= '9' && i < 4; i++)
        s = 10 * s + (v[i] - '0');
    if (i == 0 || v[i] || s < 1 || s > 600)
        return bty_error_set(
            err, 400, "wait must be a whole number of seconds from 1 to 600, not '%.40s'", v);
    *ms = 1000 * s;
    return 0;
}

/* 304: what the client has is still what the key holds; etag says so. */
static int not_modified(api_reply *out, const char *etag, bty_error *err)
{
    if (etag != out->etag)
        copy_text(out->etag, sizeof(out->etag), etag, SIZE_MAX);
    if (reply_text(out, 304, TYPE_JSON, strdup("")))
        return bty_error_set(err, 503, "out of memory");
    return HANDLER_DONE;
}

/* A held get_status woken (hold.c): its answer, or -2 when it must read
 * the key again (it changed, and the new state is to be read here). */
static int woken_reply(api_request *req, api_reply *out, bty_error *err)
{
    hold_waiter *w = &req->u.read.hold;
    req->u.read.held = 0;
    if (w->outcome == HOLD_FAILED) {
        *err = w->err;
        return HANDLER_FAILED;
    }
    if (w->outcome != HOLD_CHANGED)
        return not_modified(out, w->etag, err); /* its time is up, or Batchy stops */
    if (!w->result)
        return -2;
    size_t len;
    const char *etag, *body = hold_result_body(w->result, &len, &etag);
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, body, len + 1);
        copy_text(out->etag, sizeof(out->etag), etag, SIZE_MAX);
    }
    hold_result_release(w->result);
    w->result = NULL;
    if (reply_text(out, 200, TYPE_JSON, copy))
        return bty_error_set(err, 503, "out of memory rendering the answer; try again");
    return HANDLER_DONE;
}

static int answer_state(api_request *req, api_reply *out, const char *key, const char *notified,
                        char *body, bty_error *err);

static int handle_get_status(api_request *req, api_reply *out, bty_error *err)
{
    const char *workflow = req->target.workflow, *id_text;
    char key[BTY_KEY_MAX];
    long long id;
    if (status_key(req, key, &id_text, &id, err) != 0)
        return HANDLER_FAILED;
    /* Whose change notices concern the key: the workflow of a snapshot. */
    char notified[BTY_KEY_MAX];
    copy_text(notified, sizeof(notified), workflow,
              req->target.snapshot ? key_snapshot_workflow_len(workflow) : SIZE_MAX);
    if (req->runs == 0 && wait_param(req, &req->u.read.wait_ms, err) != 0)
        return HANDLER_FAILED;
    if (req->u.read.held) {
        int rc = woken_reply(req, out, err);
        if (rc != -2)
            return rc;
    }
    if (!req->u.read.reading) {
        /* Before the read: a notice after this is not missed (hold.c). */
        req->u.read.seq = hold_seq(notified);
        /* A workflow's latest state may come from memory, while Redis
         * says it is unchanged (reads.c); its read is then tracked. */
        req->u.read.tracked = 0;
        if (!id_text && !req->target.snapshot && !req->no_cache && req->opts->read_cache_mb > 0) {
            char *body;
            if (reads_get(key, &body, out->etag))
                return answer_state(req, out, key, notified, body, err);
            req->u.read.stamp = rows_stamp_now(key);
            req->u.read.tracked = req->u.read.stamp.epoch != 0;
        }
        req->u.read.reading = 1;
        char *keys[] = {key};
        return store_call_reads(&req->call, keys, 1, req->u.read.tracked, err) != 0 ? HANDLER_FAILED
                                                                                    : HANDLER_WAIT;
    }
    req->u.read.reading = 0;
    bty_hash hash;
    if (store_read_result(&req->call, &hash, err) != 0)
        return HANDLER_FAILED;
    if (hash.n == 0) {
        store_hash_free(&hash);
        if (id_text)
            return bty_error_set(err, 404, "workflow '%s' has no batch %lld", workflow, id);
        if (req->target.snapshot)
            return bty_error_set(err, 404, "there is no snapshot '%s'", workflow);
        return bty_error_set(err, 404, "workflow '%s' is not loaded; call load_cfg/%s", workflow,
                             workflow);
    }
    /* The ETag: a fingerprint of every field as read, so that it changes
     * whenever any step changes, by any writer. */
    snprintf(out->etag, sizeof(out->etag), "\"%016llx\"",
             (unsigned long long)rows_fingerprint(&hash));
    if (!req->u.read.tracked && etag_matches(req->if_none_match, out->etag)) {
        store_hash_free(&hash); /* nothing to render */
        return answer_state(req, out, key, notified, NULL, err);
    }
    cJSON *doc = doc_from_hash(hash.fields, hash.n, key, err);
    store_hash_free(&hash);
    char *body = doc ? format_json(doc) : NULL;
    cJSON_Delete(doc);
    if (!doc)
        return HANDLER_FAILED;
    if (!body)
        return bty_error_set(err, 503, "out of memory rendering the answer; try again");
    if (req->u.read.tracked)
        reads_put(key, body, out->etag, req->u.read.stamp);
    return answer_state(req, out, key, notified, body, err);
}

/* get_status' answer of a state whose ETag is in out->etag, and its body
 * (owned; NULL when the ETag is known to match): 304, or held, when the
 * client has it already; else the body. */
static int answer_state(api_request *req, api_reply *out, const char *key, const char *notified,
                        char *body, bty_error *err)
{
    if (etag_matches(req->if_none_match, out->etag)) {
        free(body);
        hold_waiter *w = &req->u.read.hold;
        if (!req->u.read.wait_ms)
            return not_modified(out, out->etag, err);
        if (!w->deadline_ms) /* the first time; a waiter read again keeps it */
            w->deadline_ms = hold_now_ms() + req->u.read.wait_ms;
        if (hold_now_ms() >= w->deadline_ms)
            return not_modified(out, out->etag, err);
        copy_text(w->workflow, sizeof(w->workflow), notified, SIZE_MAX);
        copy_text(w->key, sizeof(w->key), key, SIZE_MAX);
        copy_text(w->etag, sizeof(w->etag), out->etag, SIZE_MAX);
        w->seq = req->u.read.seq;
        req->u.read.held = 1;
        out->etag[0] = '\0';
        return HANDLER_HOLD;
    }
    if (reply_text(out, 200, TYPE_JSON, body))
        return bty_error_set(err, 503, "out of memory rendering the answer; try again");
    return HANDLER_DONE;
}

static int list_rows(api_request *req, const char *prefix, bty_error *err);
static void take_texts(api_request *req, page_body *page);

/* GET /metrics: Prometheus' text format (metrics.c). */
static int handle_metrics(api_request *req, api_reply *out, bty_error *err)
{
    static const char type[] = "text/plain; version=0.0.4; charset=utf-8";
    if (!req->opts->metrics_steps) {
        if (reply_text(out, 200, type, metrics_render()))
            return bty_error_set(err, 503, "out of memory; try again");
        return HANDLER_DONE;
    }
    /* The per-step series: every workflow, as /workflows lists them. */
    if (req->runs == 0)
        req->u.list.which = ROWS_METRICS;
    int rc = list_rows(req, NULL, err);
    if (rc == HANDLER_WAIT || rc == HANDLER_YIELD)
        return rc;
    /* Without Redis the rest still says so (batchy_redis_up 0): the page
     * is answered without the steps' series, which the gauge below says. */
    int steps = rc == HANDLER_DONE;
    if (!steps)
        memset(err, 0, sizeof(*err));
    char *gauge = malloc(200);
    if (gauge)
        snprintf(gauge, 200,
                 "# HELP batchy_step_series_up 1 when the per-step series below are all there "
                 "(Redis answered).\n# TYPE batchy_step_series_up gauge\nbatchy_step_series_up "
                 "%d\n",
                 steps);
    page_body *page = page_body_new();
    int failed = page_body_own(page, metrics_render()) != 0;
    failed = page_body_own(page, gauge) != 0 || failed;
    /* Each family's lines of every workflow together, as the format
     * wants: found as the page is sent, in the texts it takes over. */
    for (int f = 0; f < VIEW_FAMILIES && !failed; f++)
        failed = page_body_add(page, view_metrics_header(f), strlen(view_metrics_header(f))) != 0 ||
                 (steps && page_body_lines(page, f) != 0);
    if (failed) {
        page_body_free(page);
        return bty_error_set(err, 503, "out of memory; try again");
    }
    if (steps)
        take_texts(req, page);
    reply_page(out, 200, type, page);
    return HANDLER_DONE;
}

/* GET /events[?wf=a,b]: a stream of change events (hold.c), which the
 * HTTP layer sends as it comes. */
static int handle_events(api_request *req, api_reply *out, bty_error *err)
{
    hold_stream *s = hold_stream_open(api_param(req, "wf"), err);
    if (!s)
        return HANDLER_FAILED;
    out->status = 200;
    out->content_type = "text/event-stream; charset=utf-8";
    out->stream = s;
    return HANDLER_DONE;
}

/* Read cfg/<wf>.yaml (or .yml) into a malloc'd buffer, within the size
 * bound, as batchy --check does (cfgfile.c). */
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
    char *buf = cfg_file_read_fd(fd, name, len, err); /* cfgfile.c */
    close(fd);
    return buf;
}

static int written_reply(api_request *req, bty_apply *a, apply_rule_fn rule, const void *arg,
                         bty_format format, api_reply *out, bty_error *err);

static int load_rule(const char *workflow, const cJSON *doc, bty_time now, long long min_batch_id,
                     const void *arg, bty_change *out, bty_error *err)
{
    (void)min_batch_id;
    const api_request *req = arg;
    /* The file's document is kept for another try: the rule gets a copy. */
    cJSON *copy = cJSON_Duplicate(req->u.load.doc, 1);
    if (!copy)
        return bty_error_set(err, 503, "out of memory; try again");
    if (req->u.load.keep_state) {
        if (!doc) { /* unreadable: there is no state to keep (err says why) */
            cJSON_Delete(copy);
            return -1;
        }
        return rules_load_keep(workflow, copy, doc, now, out, err);
    }
    /* What <wf> holds (doc) only says which steps of a batch still open
     * to mark abandoned; unreadable, it is replaced all the same: a reload
     * is how an operator repairs a workflow. */
    if (!doc)
        memset(err, 0, sizeof(*err));
    return rules_load_over(workflow, copy, doc, now, out, err);
}

/* A yes/no parameter: absent, "0" or "false" is 0; "1" or "true" is 1;
 * anything else a 400. */
static int flag_param(const api_request *req, const char *name, int *out, bty_error *err)
{
    const char *v = api_param(req, name);
    *out = v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
    if (!v || *out || strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
        return 0;
    return bty_error_set(err, 400, "%s must be 1 or 0, not '%.40s'", name, v);
}

/* load_cfg: the file, read and checked once, then written over what <wf>
 * holds, through the write protocol (apply.c): a load racing a close of
 * the batch it abandons (or, with keep=state, of the batch it keeps) must
 * not lose that close. ?dry_run=1 answers what would be written. */
static int handle_load_cfg(api_request *req, api_reply *out, bty_error *err)
{
    const char *workflow = req->target.workflow;
    if (req->runs == 0) {
        const char *keep = api_param(req, "keep");
        if (keep && strcmp(keep, "state") != 0)
            return bty_error_set(
                err, 400, "keep must be 'state' (keep each step's window), not '%.40s'", keep);
        req->u.load.keep_state = keep != NULL;
        if (flag_param(req, "dry_run", &req->u.load.apply.dry_run, err) != 0)
            return HANDLER_FAILED;
        char name[BTY_KEY_MAX + 8]; /* "<wf>.yaml" */
        size_t len = 0;
        char *text = read_cfg_file(req->opts->cfg_dir, workflow, &len, name, sizeof(name), err);
        if (!text)
            return HANDLER_FAILED;
        req->u.load.doc = cfg_parse(text, len, name, err);
        free(text);
        if (!req->u.load.doc)
            return HANDLER_FAILED;
    }
    return written_reply(req, &req->u.load.apply, load_rule, req, FMT_JSON, out, err);
}

static int open_rule(const char *workflow, const cJSON *doc, bty_time now, long long min_batch_id,
                     const void *arg, bty_change *out, bty_error *err)
{
    const bty_end_request *steps = arg;
    if (!doc)
        return -1; /* unreadable: err says why */
    return rules_open_steps(workflow, doc, steps->steps, steps->nsteps, now, min_batch_id, out,
                            err);
}

/* Run the write protocol with `rule`, then answer with the workflow in
 * `format`: the body of every handler that writes. */
static int written_reply(api_request *req, bty_apply *a, apply_rule_fn rule, const void *arg,
                         bty_format format, api_reply *out, bty_error *err)
{
    a->keep_batches = req->opts->keep_batches;
    a->channel = req->opts->changes_channel;
    int rc = apply_run(a, &req->call, req->target.workflow, rule, arg, err);
    req->delay_us = a->delay_us;
    if (rc != APPLY_DONE)
        return rc == APPLY_WAIT ? HANDLER_WAIT : HANDLER_FAILED;
    const bty_change *change = &a->change;
    char *body;
    switch (format) {
    case FMT_INFA:
        body = format_infa(change->state);
        break;
    case FMT_SH:
        body = format_sh(req->target.workflow, change->batch_id, change->state);
        break;
    default:
        body = format_json(change->state);
        break;
    }
    int wrote = change->plan.n != 0;
    apply_remember(a, req->target.workflow);
    if (reply_text(out, 200, format == FMT_JSON ? TYPE_JSON : TYPE_TEXT, body))
        return wrote ? written_unanswered(err)
                     : bty_error_set(err, 503, "out of memory rendering the answer; try again");
    return HANDLER_DONE;
}

static int rewind_rule(const char *workflow, const cJSON *doc, bty_time now, long long min_batch_id,
                       const void *arg, bty_change *out, bty_error *err)
{
    (void)min_batch_id;
    const api_request *req = arg;
    if (!doc)
        return -1; /* unreadable: err says why */
    const bty_end_request *steps = &req->u.open.steps.req;
    return rules_rewind(workflow, doc, steps->steps, steps->nsteps, req->u.open.to, now, out, err);
}

static int read_steps(api_request *req, bty_end_params *p, bty_error *err);

/* rewind: ?from_date= (required) and ?step= (all by default). */
static int handle_rewind(api_request *req, api_reply *out, bty_error *err)
{
    if (req->runs == 0) {
        const char *to = api_param(req, "from_date");
        if (!to)
            return bty_error_set(err, 400,
                                 "from_date= is required: the time the next open starts at");
        if (time_parse(to, &req->u.open.to) != 0)
            return bty_error_set(err, 400,
                                 "from_date must be a time such as 2026-01-01T06:00:00 (UTC "
                                 "unless an offset is given), not '%.60s'",
                                 to);
        if (read_steps(req, &req->u.open.steps, err) != 0)
            return HANDLER_FAILED;
    }
    return written_reply(req, &req->u.open.apply, rewind_rule, req, FMT_JSON, out, err);
}

/* The step= parameters of req, read into p (open_batch and rewind). */
static int read_steps(api_request *req, bty_end_params *p, bty_error *err)
{
    size_t n = 0;
    char **names = malloc((req->nparams ? req->nparams : 1) * sizeof(*names));
    char **values = malloc((req->nparams ? req->nparams : 1) * sizeof(*values));
    if (!names || !values) {
        free(names);
        free(values);
        return bty_error_set(err, 503, "out of memory; try again");
    }
    for (size_t i = 0; i < req->nparams; i++)
        if (strcmp(req->names[i], "step") == 0) {
            names[n] = req->names[i];
            values[n++] = req->values[i];
        }
    int rc = end_params_read(p, "open", names, values, n, 1, err);
    free(names);
    free(values);
    return rc;
}

/* open_batch: ?step= names the steps to open (all by default); any other
 * parameter is ignored, as it always was. */
static int handle_open_batch(api_request *req, api_reply *out, bty_error *err)
{
    bty_end_params *p = &req->u.open.steps;
    if (req->runs == 0 && read_steps(req, p, err) != 0)
        return HANDLER_FAILED;
    return written_reply(req, &req->u.open.apply, open_rule, &p->req, req->target.format, out, err);
}

static int end_rule(const char *workflow, const cJSON *doc, bty_time now, long long min_batch_id,
                    const void *arg, bty_change *out, bty_error *err)
{
    (void)min_batch_id;
    if (!doc)
        return -1; /* unreadable: err says why */
    return rules_end(workflow, doc, arg, now, out, err);
}

/* close_batch and fail_batch: the parameters read into a request, then
 * the rule. */
static int handle_end(api_request *req, const char *status, api_reply *out, bty_error *err)
{
    if (req->runs == 0) {
        if (!(req->u.end.params = calloc(1, sizeof(*req->u.end.params))))
            return bty_error_set(err, 503, "out of memory; try again");
        /* token= is authentication when a token is configured, never
         * stored; without one it is refused like a special field. */
        if (end_params_read(req->u.end.params, status, req->names, req->values, req->nparams,
                            req->opts->token[0] != '\0', err) != 0)
            return HANDLER_FAILED;
    }
    return written_reply(req, &req->u.end.apply, end_rule, &req->u.end.params->req, FMT_JSON, out,
                         err);
}

static int handle_close_batch(api_request *req, api_reply *out, bty_error *err)
{
    return handle_end(req, "success", out, err);
}

static int handle_fail_batch(api_request *req, api_reply *out, bty_error *err)
{
    return handle_end(req, "failed", out, err);
}

/* ------------------------------------------------------------------ lists */

#define HISTORY_LIMIT_MAX 1000
/* A listing is made a slice at a time, the worker serving its other
 * connections in between: so many workflows looked up in rows.c, or rows
 * made from reads (each about 0.2 ms and 1 ms of a worker's time here). */
#define LIST_PLAN_SLICE 1000
#define LIST_ROWS_SLICE 64

static void list_free(api_request *req)
{
    for (size_t i = 0; i < req->u.list.n; i++) {
        free(req->u.list.members[i]);
        if (req->u.list.texts)
            page_text_release(req->u.list.texts[i]);
    }
    free(req->u.list.texts);
    free(req->u.list.read_at);
    free(req->u.list.stamps);
    req->u.list.texts = NULL;
    req->u.list.read_at = NULL;
    req->u.list.stamps = NULL;
    free(req->u.list.members);
    req->u.list.members = NULL;
    req->u.list.n = 0;
}

/* Hand a listing's texts over to the page that answers it. */
static void take_texts(api_request *req, page_body *page)
{
    page_body_texts(page, req->u.list.texts, req->u.list.n);
    req->u.list.texts = NULL;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A listing's arrays, one entry per member: what it wants of each, and
 * the members to read with their stamps. 0, or -1 with 503. */
static int list_alloc(api_request *req, bty_error *err)
{
    size_t n = req->u.list.n;
    req->u.list.texts = calloc(n ? n : 1, sizeof(page_text *));
    req->u.list.read_at = calloc(n ? n : 1, sizeof(size_t));
    req->u.list.stamps = calloc(n ? n : 1, sizeof(rows_stamp));
    if (!req->u.list.texts || !req->u.list.read_at || !req->u.list.stamps)
        return bty_error_set(err, 503, "out of memory; try again");
    return 0;
}

/* Look up the next slice of the members in rows.c: what it trusts (Redis
 * has said of no change since it was read) is taken; the others are to be
 * read, each stamped before its read is sent. 1 while more remain. */
static int plan_slice(api_request *req)
{
    size_t i = req->u.list.done, end = i + LIST_PLAN_SLICE;
    for (; i < req->u.list.n && i < end; i++) {
        const char *name = req->u.list.members[i];
        if (!rows_trusted(name, req->u.list.which, &req->u.list.texts[i])) {
            req->u.list.stamps[req->u.list.nread] = rows_stamp_now(name);
            req->u.list.read_at[req->u.list.nread++] = i;
        }
    }
    req->u.list.done = i;
    return i < req->u.list.n;
}

/* The row and lines of workflow `name` from its hash (doc NULL: not a
 * hash of steps, what says why): *json and *lines, one reference each.
 * 0, or -1 when out of memory. */
static int make_row(const char *name, const cJSON *doc, const char *why, bty_time now,
                    page_text **json, page_text **lines, int64_t *until)
{
    unsigned statuses = 0;
    view_metrics metrics = {0};
    cJSON *row =
        doc ? view_workflow(name, doc, now, &statuses, until) : view_workflow_error(name, why);
    char *text = row ? cJSON_PrintUnformatted(row) : NULL;
    cJSON_Delete(row);
    *json = text ? page_text_make(text, strlen(text), statuses, NULL) : NULL;
    *lines = *json && view_step_metrics(name, doc, now, &metrics) == 0
                 ? page_text_make(metrics.text, strlen(metrics.text), 0, metrics.cut)
                 : NULL;
    free(text);
    free(metrics.text);
    if (*json && *lines)
        return 0;
    page_text_release(*json);
    page_text_release(*lines);
    *json = *lines = NULL;
    return -1;
}

/* A listing: what it wants of the k-th workflow read, from its hash; what
 * was made before from the same bytes is taken as it is (rows.c). 0, or
 * -1 with err set. */
static int row_of_read(api_request *req, size_t k, bty_error *err)
{
    size_t i = req->u.list.read_at[k];
    const char *name = req->u.list.members[i];
    int which = req->u.list.which;
    bty_time now = clock_now();
    page_text *json, *lines;
    int64_t until = INT64_MAX;
    bty_hash hash;
    if (store_read_result_at(&req->call, (int)k, &hash, err) != 0) {
        if (err->status != 409)
            return -1;
        /* not a hash: said with this workflow's name (the call's message
         * names its first key); read again each time, so it stays listed
         * with its error until it is repaired */
        char what[BTY_KEY_MAX + 96];
        snprintf(what, sizeof(what), "Redis key '%s' is not a hash of steps", name);
        memset(err, 0, sizeof(*err));
        if (make_row(name, NULL, what, now, &json, &lines, &until) != 0)
            return bty_error_set(err, 503, "out of memory; try again");
    } else if (hash.n == 0) { /* deleted by hand since: not loaded any more */
        store_hash_free(&hash);
        return 0;
    } else {
        uint64_t fp = rows_fingerprint(&hash);
        if (rows_take(name, fp, &req->u.list.stamps[k], which, &req->u.list.texts[i])) {
            store_hash_free(&hash);
            return 0;
        }
        bty_error why = {0};
        cJSON *doc = doc_from_hash(hash.fields, hash.n, name, &why);
        store_hash_free(&hash);
        if (!doc && why.status != 409)
            return bty_error_set(err, 503, "out of memory; try again");
        int readable = doc != NULL;
        int rc = make_row(name, doc, why.message, now, &json, &lines, &until);
        cJSON_Delete(doc);
        if (rc != 0)
            return bty_error_set(err, 503, "out of memory; try again");
        /* An unreadable one is read again each time, as above. */
        if (readable)
            rows_put(name, fp, json, lines, until, &req->u.list.stamps[k]);
    }
    req->u.list.texts[i] = which == ROWS_METRICS ? lines : json;
    page_text_release(which == ROWS_METRICS ? json : lines);
    return 0;
}

/* /workflows and /metrics: every workflow loaded through Batchy (the set
 * batchy:workflows, kept by load_cfg's write, and by scripts/index-state
 * for older state: no KEYS, no SCAN) whose name starts with prefix (NULL:
 * all), and what the request wants of each (u.list.which), in name order
 * for /workflows: trusted from rows.c or read. HANDLER_WAIT for each round
 * trip (a fence first when rows may be trusted, the members, then the
 * reads), HANDLER_YIELD between slices of the work in between,
 * HANDLER_FAILED, or HANDLER_DONE with u.list.texts filled (NULL for a
 * workflow gone). */
static int list_rows(api_request *req, const char *prefix, bty_error *err)
{
    int *stage = &req->u.list.stage;
    if (*stage == 0) {
        /* What this process remembers may be trusted (rows.c): first take
         * in every invalidation of a change made before this request. */
        *stage = 1;
        if (store_track_epoch()) {
            req->fence = 1;
            return HANDLER_WAIT;
        }
    }
    if (*stage == 1) {
        *stage = 2;
        return store_call_members(&req->call, "batchy:workflows", NULL, 0, -1, err) != 0
                   ? HANDLER_FAILED
                   : HANDLER_WAIT;
    }
    if (*stage == 2) {
        *stage = 3;
        int exists;
        char **all;
        size_t n, kept = 0;
        int rc = store_members_result(&req->call, &exists, &all, &n, err);
        for (size_t i = 0; i < n; i++) {
            if (rc == 0 && (!prefix || strncmp(all[i], prefix, strlen(prefix)) == 0) &&
                strlen(all[i]) < BTY_KEY_MAX)
                all[kept++] = all[i];
            else
                free(all[i]);
        }
        req->u.list.members = all;
        req->u.list.n = rc == 0 ? kept : 0;
        if (rc != 0)
            return HANDLER_FAILED;
        /* /workflows in name order; the metrics' order is the format's
         * (by family, page.c), and sorting 10,000 names would take a
         * scrape's worker 1.5 ms for nothing. */
        if (req->u.list.which == ROWS_ROW)
            qsort(all, kept, sizeof(*all), by_name);
        if (list_alloc(req, err) != 0)
            return HANDLER_FAILED;
        return kept > LIST_PLAN_SLICE ? HANDLER_YIELD : list_rows(req, prefix, err);
    }
    if (*stage == 3) {
        if (plan_slice(req))
            return HANDLER_YIELD;
        *stage = 4;
        req->u.list.done = 0;
        if (req->u.list.nread) {
            char **names = malloc(req->u.list.nread * sizeof(*names));
            if (!names)
                return bty_error_set(err, 503, "out of memory; try again");
            for (size_t k = 0; k < req->u.list.nread; k++)
                names[k] = req->u.list.members[req->u.list.read_at[k]];
            int built = store_call_reads(&req->call, names, req->u.list.nread,
                                         req->u.list.stamps[0].epoch != 0, err);
            free(names);
            return built != 0 ? HANDLER_FAILED : HANDLER_WAIT;
        }
    }
    size_t k = req->u.list.done, end = k + LIST_ROWS_SLICE;
    for (; k < req->u.list.nread && k < end; k++)
        if (row_of_read(req, k, err) != 0)
            return HANDLER_FAILED;
    req->u.list.done = k;
    return k < req->u.list.nread ? HANDLER_YIELD : HANDLER_DONE;
}

/* GET /workflows[?status=][&prefix=]: a row per workflow (views.c). */
static int handle_workflows(api_request *req, api_reply *out, bty_error *err)
{
    const char *status = api_param(req, "status"), *prefix = api_param(req, "prefix");
    if (req->runs == 0) {
        if (status && !view_status_bit(status))
            return bty_error_set(err, 400,
                                 "status must be new, open, success, failed or abandoned, not "
                                 "'%.40s'",
                                 status);
        bty_error why;
        if (prefix && prefix[0] && name_workflow_check(prefix, &why) != 0)
            return bty_error_set(err, 400,
                                 "prefix must be the start of a workflow name (letters, digits, "
                                 "'_', '-', '.'), not '%.60s'",
                                 prefix);
        req->u.list.which = ROWS_ROW;
    }
    int rc = list_rows(req, prefix, err);
    if (rc != HANDLER_DONE)
        return rc;
    /* The rows, in name order; with ?status=, only workflows with a step
     * in it (an unreadable one has no statuses to match): found as the
     * page is sent, in the texts it takes over. */
    page_body *page = page_body_new();
    if (page_body_add(page, "{\"workflows\":[", 14) != 0 ||
        page_body_rows(page, status ? view_status_bit(status) : 0) != 0 ||
        page_body_add(page, "]}\n", 3) != 0) {
        page_body_free(page);
        return bty_error_set(err, 503, "out of memory; try again");
    }
    take_texts(req, page);
    reply_page(out, 200, TYPE_JSON, page);
    return HANDLER_DONE;
}

/* A whole-number parameter from lo to hi, or def when absent. */
static int number_param(const api_request *req, const char *name, long long lo, long long hi,
                        long long def, long long *out, bty_error *err)
{
    const char *v = api_param(req, name);
    *out = def;
    if (!v)
        return 0;
    long long n;
    if (batch_id_parse(v, &n) != 0 || n < lo || n > hi)
        return bty_error_set(err, 400, "%s must be a whole number from %lld to %lld, not '%.40s'",
                             name, lo, hi, v);
    *out = n;
    return 0;
}

/* GET /history/<wf>?limit=&before=: the batches kept, newest first, from
 * the index batchy:batches:<wf> that every write keeps (plan.lua): one
 * round trip for the page's ids, one for their snapshots. */
static int handle_history(api_request *req, api_reply *out, bty_error *err)
{
    const char *workflow = req->target.workflow;
    long long before;
    if (req->runs == 0) {
        char index[BTY_KEY_MAX + 32];
        if (number_param(req, "limit", 1, HISTORY_LIMIT_MAX, 50, &req->u.list.limit, err) != 0 ||
            number_param(req, "before", 1, BTY_MAX_BATCH_ID, 0, &before, err) != 0)
            return HANDLER_FAILED;
        snprintf(index, sizeof(index), "batchy:batches:%s", workflow);
        return store_call_members(&req->call, index, workflow, before, req->u.list.limit, err) != 0
                   ? HANDLER_FAILED
                   : HANDLER_WAIT;
    }
    if (req->runs == 1) {
        int exists;
        int rc =
            store_members_result(&req->call, &exists, &req->u.list.members, &req->u.list.n, err);
        if (rc != 0)
            return HANDLER_FAILED;
        if (!exists && req->u.list.n == 0)
            return bty_error_set(err, 404, "workflow '%s' is not loaded; call load_cfg/%s",
                                 workflow, workflow);
        long long limit = req->u.list.limit;
        if ((long long)req->u.list.n > limit) { /* one more than the page: there is a next */
            req->u.list.next = strtoll(req->u.list.members[limit - 1], NULL, 10);
            while ((long long)req->u.list.n > limit)
                free(req->u.list.members[--req->u.list.n]);
        }
        for (size_t i = 0; i < req->u.list.n; i++) { /* ids -> snapshot keys */
            char key[BTY_KEY_MAX];
            long long id = strtoll(req->u.list.members[i], NULL, 10);
            key_snapshot(key, workflow, id);
            char *copy = strdup(key);
            if (!copy)
                return bty_error_set(err, 503, "out of memory; try again");
            free(req->u.list.members[i]);
            req->u.list.members[i] = copy;
        }
        if (req->u.list.n)
            return store_call_reads(&req->call, req->u.list.members, req->u.list.n, 0, err) != 0
                       ? HANDLER_FAILED
                       : HANDLER_WAIT;
    }
    cJSON *rows = cJSON_CreateArray(), *o = cJSON_CreateObject();
    if (!rows || !o || !cJSON_AddStringToObject(o, "workflow", workflow)) {
        cJSON_Delete(rows);
        cJSON_Delete(o);
        return bty_error_set(err, 503, "out of memory; try again");
    }
    size_t prefix = strlen(workflow) + 1;
    for (size_t i = 0; i < req->u.list.n; i++) {
        const char *key = req->u.list.members[i];
        bty_hash hash;
        if (store_read_result_at(&req->call, (int)i, &hash, err) != 0) {
            cJSON_Delete(rows);
            cJSON_Delete(o);
            return HANDLER_FAILED;
        }
        if (hash.n == 0) { /* trimmed between the two round trips */
            store_hash_free(&hash);
            continue;
        }
        bty_error why = {0};
        long long id = strtoll(key + prefix, NULL, 10);
        cJSON *doc = doc_from_hash(hash.fields, hash.n, key, &why);
        store_hash_free(&hash);
        /* A snapshot edited by hand into something unreadable is a row
         * that says so; the rest of the page is shown as usual. */
        cJSON *row = doc ? view_batch(id, doc) : why.status == 409 ? cJSON_CreateObject() : NULL;
        if (row && !doc &&
            (!cJSON_AddItemToObject(row, "batch_id", doc_create_integer(id)) ||
             !cJSON_AddStringToObject(row, "error", why.message))) {
            cJSON_Delete(row);
            row = NULL;
        }
        cJSON_Delete(doc);
        if (!row) {
            cJSON_Delete(rows);
            cJSON_Delete(o);
            return bty_error_set(err, 503, "out of memory; try again");
        }
        cJSON_AddItemToArray(rows, row);
    }
    cJSON_AddItemToObject(o, "batches", rows);
    cJSON *next = req->u.list.next ? doc_create_integer(req->u.list.next) : cJSON_CreateNull();
    if (!cJSON_AddItemToObject(o, "next_before", next)) {
        cJSON_Delete(next);
        cJSON_Delete(o);
        return bty_error_set(err, 503, "out of memory; try again");
    }
    int rc = reply_doc(out, o, err);
    cJSON_Delete(o);
    return rc ? HANDLER_FAILED : HANDLER_DONE;
}

/* ------------------------------------------------------------------ dashboard */

/* GET /ui, /ui/<wf>: the page (its script reads the workflow from the
 * URL); /ui/-/<file>: its script and style (ui.c). */
static int handle_ui(api_request *req, api_reply *out, bty_error *err)
{
    const char *type;
    char *text;
    const char *name = req->target.file[0] ? req->target.file : "index.html";
    if (ui_file(req->opts->ui_dir, name, &type, &text, err) != 0)
        return HANDLER_FAILED;
    reply_text(out, 200, type, text);
    out->ui = 1;
    return HANDLER_DONE;
}

/* ------------------------------------------------------------------ dispatch */

typedef int (*handler_fn)(api_request *req, api_reply *out, bty_error *err);

/* Made of the endpoint table: a row naming a handler that is not defined
 * above does not compile. */
static const handler_fn handlers[EP_COUNT] = {
#define HANDLER(id, name, handler, ...) [id] = handler,
    BTY_ENDPOINTS(HANDLER)
#undef HANDLER
};

int api_handle(api_request *req, api_reply *out, bty_error *err)
{
    int rc = handlers[req->target.route->endpoint](req, out, err);
    req->runs++;
    return rc;
}

void api_request_free(api_request *req)
{
    store_call_clear(&req->call);
    if (!req->target.route)
        return; /* never routed: no handler state */
    switch (req->target.route->endpoint) {
    case EP_GET_STATUS:
        hold_result_release(req->u.read.hold.result);
        break;
    case EP_LOAD_CFG:
        apply_free(&req->u.load.apply);
        cJSON_Delete(req->u.load.doc);
        break;
    case EP_OPEN_BATCH:
    case EP_REWIND:
        apply_free(&req->u.open.apply);
        end_params_free(&req->u.open.steps);
        break;
    case EP_WORKFLOWS:
    case EP_HISTORY:
    case EP_METRICS:
        list_free(req);
        break;
    case EP_CLOSE_BATCH:
    case EP_FAIL_BATCH:
        apply_free(&req->u.end.apply);
        if (req->u.end.params) {
            end_params_free(req->u.end.params);
            free(req->u.end.params);
        }
        break;
    default:
        break;
    }
}
