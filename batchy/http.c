/*
 * http.c - where a request enters: libmicrohttpd glue and nothing else.
 * libmicrohttpd runs a pool of worker threads; here a request's
 * parameters and body are read and bounded, the request is checked,
 * routed (route_match, route.c) and authorised, handed to its handler
 * (api_handle, api.c), and answered: handlers return a reply or a
 * bty_error, and only this file writes either out. Connections past the
 * limit are closed as they are accepted (accept_below_limit). The
 * slow-client deadlines and the access log are watch.c's.
 *
 * No worker waits for Redis. Where a handler needs a round trip it builds
 * the call and returns HANDLER_WAIT; answer() suspends the connection and
 * hands the call to the store, whose thread resumes the connection when
 * the replies are in; libmicrohttpd then calls answer() again, which runs
 * the handler again. Meanwhile the worker serves its other connections.
 * A held get_status (HANDLER_HOLD) is suspended the same way and handed
 * to hold.c, which resumes it when its workflow changes or its time is
 * up; an event stream's connection is suspended whenever it has nothing
 * to send (stream_reader). Neither holds a worker while it waits. Nor
 * does a long answer: a listing is made a slice at a time
 * (HANDLER_YIELD), and sent as it is read (page_reader).
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "shell.h"

#define MAX_PARAMS      BTY_MAX_PARAMS
#define MAX_PARAM_NAME  256
#define MAX_PARAM_VALUE 8192
#define MAX_BODY        (64 * 1024)
#define STREAM_SNDBUF   (32 * 1024) /* an event stream's socket send buffer */
#define PAGE_BLOCK      (64 * 1024) /* what a page's reader copies at a time */
#define UI_POLICY                                                                                  \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "                \
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* The server: options (read-only once started), the daemon, how many
 * connections may be open and how many are, how many requests have
 * started and not yet been answered (for a clean stop), and the watchdog
 * with the access log. */
typedef struct server {
    bty_options opts;
    struct MHD_Daemon *daemon;
    unsigned max_connections; /* opts' limit, lowered to fit the descriptors */
    atomic_uint connections;  /* started and not yet closed (on_connection) */
    atomic_int in_flight;
    watch *watch;
} server;

/* One request, from its first callback to its completion. Owned by
 * libmicrohttpd's per-request pointer; freed in on_completed. */
typedef struct request {
    /* As it comes in: for the log, and its parameters. */
    struct timespec start;
    char method[8];
    char path[200]; /* for the log: printable, truncated, no query */
    int status;     /* of the answer, once queued */
    int untimed;    /* held, or a stream: its time is the client's (metrics) */
    struct MHD_PostProcessor *post;
    size_t body_bytes;
    size_t nparams, params_room;
    char **names; /* owned, as the strings */
    char **values;
    /* What is wrong with it, found while it came in: admit() says so. */
    int too_many_params;
    int nul_in_body;   /* a form value held a NUL, which strings cannot */
    int encoded_slash; /* the raw path held %2F */
    int bad_framing;   /* Content-Length headers that disagree */
    int not_a_form;    /* a POST body libmicrohttpd cannot read as a form */
    /* Once it is all in: admitted (routed, checked and authorised, or
     * answered an error), and what its handler sees and keeps between
     * its runs. */
    int admitted;
    struct MHD_Connection *conn;
    api_request api;
} request;

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

/* ------------------------------------------------------------------ auth */

static int authorised(const server *srv, struct MHD_Connection *conn, const request *req)
{
    const char *header = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (header && strncasecmp(header, "Bearer ", 7) == 0)
        return secret_equal(header + 7, srv->opts.token);
    const char *query = api_param(&req->api, "token");
    return query && secret_equal(query, srv->opts.token);
}

/* ------------------------------------------------------------------ checks */

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
 * req->api.target set, or -1 with err set. */
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
    if (check_params(req, err) != 0 || route_match(method, url, &req->api.target, err) != 0)
        return -1;
    if (req->not_a_form)
        return bty_error_set(err, 415,
                             "a POST body must be a form (application/x-www-form-urlencoded or "
                             "multipart/form-data), or put the parameters in the query string");
    if (req->api.target.route->needs_token && srv->opts.token[0] && !authorised(srv, conn, req))
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

/* ------------------------------------------------------------------ libmicrohttpd */

/* The connection's watch entry (watch.c), kept as its socket context. */
static watched *watched_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* libmicrohttpd's accept policy, asked of each connection it has just
 * accepted: one past the limit is refused, and libmicrohttpd closes it at
 * once, unanswered. Not libmicrohttpd's own connection limit: there it
 * stops calling accept(), and new connections wait unanswered in the
 * kernel's listen queue until an idle connection is cut, a whole client
 * timeout for a normal client behind a crowd of idle ones. The count is
 * kept by on_connection, after this check: workers accepting at the same
 * moment may each let one through, so up to threads - 1 over the limit. */
static enum MHD_Result accept_below_limit(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addr, (void)addrlen;
    server *srv = cls;
    return atomic_load(&srv->connections) < srv->max_connections ? MHD_YES : MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    server *srv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&srv->connections, 1);
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        /* Unwatched when out of memory: the inactivity timeout still applies. */
        *socket_context = info ? watch_add(srv->watch, info->connect_fd) : NULL;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        atomic_fetch_sub(&srv->connections, 1);
        watch_remove(srv->watch, *socket_context);
        *socket_context = NULL;
    }
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
 * name in two ("/open_batch/wf1%2Fsh" is not wf1 in sh format). In
 * absolute form the host is scanned too: decoded, a %2F in it would move
 * where origin_path finds the path. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls, (void)conn;
    size_t path_len = strcspn(uri, "?");
    for (size_t i = 0; i + 2 < path_len; i++)
        if (uri[i] == '%' && uri[i + 1] == '2' && (uri[i + 2] == 'F' || uri[i + 2] == 'f'))
            return &encoded_slash_mark;
    return NULL;
}

/* The path of a decoded request target. The absolute form
 * ("http://host:port/get_status/wf1", RFC 9112 3.2.2, which a server must
 * accept) gives its path, "/" when empty (RFC 9110 4.2.3); libmicrohttpd
 * has split the query off already, as in origin form. The host in it is
 * not checked against anything, any more than the Host header is: batchy
 * answers whatever name it was reached by. Any other target comes back
 * as it is: origin form ("/get_status/wf1"), and the forms batchy does not
 * serve ("*", "host:port", other schemes, "http://" without a host, which
 * RFC 9110 4.2.1 calls invalid), which routing refuses. */
static const char *origin_path(const char *url)
{
    size_t scheme = 0; /* its length; case does not matter (RFC 3986 3.1) */
    if (strncasecmp(url, "http://", 7) == 0)
        scheme = 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        scheme = 8;
    if (!scheme || url[scheme] == '\0' || url[scheme] == '/')
        return url;
    const char *path = strchr(url + scheme, '/');
    return path ? path : "/";
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    server *srv = cls;
    request *req = *req_cls;
    url = origin_path(url); /* from here on, as if it came in origin form */
    if (!req || *req_cls == &encoded_slash_mark) {
        int encoded_slash = *req_cls == &encoded_slash_mark;
        if (!(req = calloc(1, sizeof(*req))))
            return MHD_NO;
        *req_cls = req;
        req->encoded_slash = encoded_slash;
        atomic_fetch_add(&srv->in_flight, 1);
        clock_gettime(CLOCK_MONOTONIC, &req->start);
        /* (req is zeroed: the copy ends with a NUL) */
        memcpy(req->method, method, strnlen(method, sizeof(req->method) - 1));
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

/* hold.c's hands on a connection. */
static void conn_suspend(void *conn)
{
    MHD_suspend_connection(conn);
}

static void conn_resume(void *conn)
{
    MHD_resume_connection(conn);
}

/* An event stream's content reader and its end (hold.c). */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    long n = hold_stream_read(cls, buf, max);
    if (n == HOLD_STREAM_END)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n == HOLD_STREAM_CUT)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

static void stream_free(void *cls)
{
    hold_stream_close(cls);
}

/* A page's content reader and its end (rows.c). */
static ssize_t page_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos; /* read in order: libmicrohttpd asks for each byte once */
    size_t n = page_body_read(cls, buf, max);
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void page_done(void *cls)
{
    page_body_free(cls);
}

/* Route and handle a request, or go on handling it after a round trip;
 * then queue its answer, or suspend the connection while the store makes
 * the round trip the handler asked for. */
static enum MHD_Result answer(server *srv, struct MHD_Connection *conn, request *req,
                              const char *url, const char *method)
{
    api_reply out = {0};
    bty_error err = {0};
    int rc = 0;
    if (!req->admitted) {
        req->admitted = 1;
        req->conn = conn;
        watch_turn(srv->watch, watched_of(conn), 0);
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_query, req);
        /* The parameters are all in: the handler borrows them. */
        req->api.opts = &srv->opts;
        req->api.if_none_match =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
        const char *cc = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Cache-Control");
        const char *pragma = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Pragma");
        req->api.no_cache = (cc && (strcasestr(cc, "no-cache") || strcasestr(cc, "max-age=0"))) ||
                            (pragma && strcasestr(pragma, "no-cache"));
        req->api.names = req->names;
        req->api.values = req->values;
        req->api.nparams = req->nparams;
        rc = admit(srv, conn, req, url, method, &err);
    }
    if (rc == 0)
        rc = api_handle(&req->api, &out, &err);
    if (rc == HANDLER_WAIT) {
        /* Suspended first: the store may resume it at once. */
        MHD_suspend_connection(conn);
        if (req->api.fence) {
            req->api.fence = 0;
            notice_fence(conn_resume, conn);
        } else {
            store_submit(&req->api.call, req->api.delay_us, resume_request, req);
        }
        return MHD_YES;
    }
    if (rc == HANDLER_YIELD) {
        /* Run again on the worker's next turn, after its other
         * connections' (libmicrohttpd resumes before it polls). */
        MHD_suspend_connection(conn);
        MHD_resume_connection(conn);
        return MHD_YES;
    }
    if (rc == HANDLER_HOLD) {
        req->untimed = 1;
        MHD_suspend_connection(conn); /* first, as above */
        hold_add(&req->api.u.read.hold, conn);
        return MHD_YES;
    }
    if (rc != HANDLER_DONE) {
        free(out.body);
        page_body_free(out.page);
        out.page = NULL;
        api_error_reply(&out, &err);
    }
    req->status = out.status;
    req->untimed = req->untimed || out.stream;
    /* The client's turn: read the answer. A stream's is never over; a
     * reader too slow for it is cut by its buffer's bound (hold.c). */
    if (!out.stream)
        watch_turn(srv->watch, watched_of(conn), 1);

    struct MHD_Response *resp = NULL;
    if (out.stream)
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, out.stream,
                                                 stream_free);
    else if (out.page) /* sent piece by piece, the worker serving others between them */
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, PAGE_BLOCK, page_reader,
                                                 out.page, page_done);
    else if (out.body)
        resp = MHD_create_response_from_buffer(strlen(out.body), out.body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(out.body);
        hold_stream_close(out.stream);
        page_body_free(out.page);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, out.content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (out.etag[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, out.etag);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (out.ui) {
        /* The dashboard runs only its own script and style: no inline
         * script or style, nothing from elsewhere, no framing. */
        MHD_add_response_header(resp, "Content-Security-Policy", UI_POLICY);
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    }
    if (out.stream) /* nor buffered by a proxy (nginx) */
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    if (out.status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (out.status == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                req->api.target.allow ? route_allow(req->api.target.allow)
                                                      : "GET, POST, HEAD");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)out.status, resp);
    MHD_destroy_response(resp); /* a stream's ends with the connection: stream_free */
    if (out.stream && ret == MHD_YES) {
        /* What the kernel buffers for a reader that does not read is
         * bounded too (it would grow to megabytes per socket), so that
         * such a reader fills the stream's own bound and is cut. */
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        int sndbuf = STREAM_SNDBUF;
        if (info)
            setsockopt(info->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        hold_stream_start(out.stream, conn);
    }
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

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    server *srv = cls;
    request *req = *req_cls;
    watch_turn(srv->watch, watched_of(conn), 1); /* answered: the next request's time starts */
    if (!req || *req_cls == &encoded_slash_mark)
        return; /* never reached on_request */
    atomic_fetch_sub(&srv->in_flight, 1);
    if (req->status) {
        struct timespec end;
        clock_gettime(CLOCK_MONOTONIC, &end);
        long long us = (end.tv_sec - req->start.tv_sec) * 1000000LL +
                       (end.tv_nsec - req->start.tv_nsec) / 1000;
        watch_log(srv->watch, req->method, req->path, req->status, us);
        metrics_request(req->api.target.route ? (int)req->api.target.route->endpoint : EP_COUNT,
                        req->status, us, !req->untimed);
    }
    if (req->post)
        MHD_destroy_post_processor(req->post);
    api_request_free(&req->api);
    for (size_t i = 0; i < req->nparams; i++) {
        free(req->names[i]);
        free(req->values[i]);
    }
    free(req->names);
    free(req->values);
    free(req);
    *req_cls = NULL;
}

/* Free a server whose daemon is stopped (or never ran), with its
 * watchdog. */
static void server_free(server *srv)
{
    watch_stop(srv->watch);
    free(srv);
}

void *http_start(const bty_options *opts)
{
    server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    srv->opts = *opts;
    hold_start(conn_suspend, conn_resume);
    /* Before the daemon: its connections are watched from the first. */
    if (!(srv->watch = watch_start(opts->client_timeout_s, opts->quiet))) {
        fprintf(stderr, "batchy: cannot start a thread\n");
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
     * Connections past the limit are closed as soon as they are accepted
     * (accept_below_limit). */
    struct rlimit rl;
    unsigned limit = (unsigned)opts->max_connections;
    /* The soft limit first raised as far as needed, within the hard one
     * (which only root may raise): BATCHY_MAX_CONNECTIONS=10100 is then
     * the one setting 10,000 held requests need. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < limit + 64) {
        rlim_t want = (rlim_t)limit + 64;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < limit + 64)
        limit = rl.rlim_cur > 128 ? (unsigned)rl.rlim_cur - 64 : 64;
    srv->max_connections = limit;

    /* poll(), not epoll: with libmicrohttpd 0.9.75 in epoll mode a request
     * whose parameters overflow the connection's memory pool is left hanging
     * until the connection timeout; with poll it is closed at once. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* libmicrohttpd's own limit, which would stop accept(), is set where it
     * is never reached: it shares it out among the workers, a worker at its
     * share stops accepting, and accept_below_limit lets through at most
     * threads - 1 past ours, so some worker always accepts. */
    srv->daemon = MHD_start_daemon(
        flags, 0, accept_below_limit, srv, on_request, srv, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, limit + (unsigned)opts->threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)opts->client_timeout_s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
        /* libmicrohttpd's default, 32 KiB: room for a request line of
         * ~25 KB, or for ~440 parameters (each costs libmicrohttpd a record
         * in this pool); longer lines get 414, and a request with more
         * parameters 431 or is closed unanswered. Not more: libmicrohttpd
         * zeroes the whole pool before each request of a keep-alive
         * connection and again as it shrinks the read buffer, and at 64
         * KiB a cached get_status took 9.7 us of CPU instead of 8.5
         * (minimal server: 7.5). */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
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
    hold_stop();                     /* held requests answered, streams ended */
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
    server_free(srv);             /* and the watchdog, which writes the log out */
}
