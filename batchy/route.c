/*
 * route.c - routing: route_match turns a decoded URL path and method into
 * a bty_target (endpoint, workflow, format) or a 4xx error, by the
 * endpoint table of batchy.h (which endpoints exist, their methods, what
 * each takes, which need the token); api.c dispatches on the result. Pure.
 */
#include <string.h>

#include "batchy.h"

/* The routing table, made of the endpoint table (batchy.h). */
static const bty_route routes[] = {
#define ROUTE(id, name, handler, methods, wf, snap, fmt, ui, token, writes)                        \
    {name, id, methods, wf, snap, fmt, ui, token, writes},
    BTY_ENDPOINTS(ROUTE)
#undef ROUTE
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* "index, healthz, ..., fail_batch": every endpoint's name, for the 404. */
static const char endpoint_names[] =
#define ROUTE_NAME(id, name, ...) name ", "
    BTY_ENDPOINTS(ROUTE_NAME)
#undef ROUTE_NAME
    ;

static const struct {
    const char *name;
    bty_format format;
} formats[] = {{"json", FMT_JSON}, {"infa", FMT_INFA}, {"sh", FMT_SH}};

#define MAX_SEGMENTS 3
#define MAX_SEGMENT  256

/* Split "/a/b/c/" into at most MAX_SEGMENTS segments of at most MAX_SEGMENT
 * bytes. Returns the count, or -1 for an empty segment, too many segments
 * or an over-long one. "/" gives 0 segments. */
static int split_path(const char *path, char seg[MAX_SEGMENTS][MAX_SEGMENT + 1])
{
    size_t len = strlen(path);
    if (len && path[len - 1] == '/')
        len--; /* a trailing slash is ignored */
    if (len == 0)
        return 0;
    int n = 0;
    size_t i = 0;
    while (i < len) {
        if (path[i] != '/' || n == MAX_SEGMENTS)
            return -1;
        size_t start = ++i;
        while (i < len && path[i] != '/')
            i++;
        size_t seglen = i - start;
        if (seglen == 0)
            return -1;
        if (seglen > MAX_SEGMENT)
            seglen = MAX_SEGMENT; /* still longer than any name or endpoint:
                                     the checks below say what is wrong */
        memcpy(seg[n], path + start, seglen);
        seg[n][seglen] = '\0';
        n++;
    }
    return n;
}

/* 1 when name is the key of a snapshot of a workflow that may exist:
 * "<wf>-<digits>" or "<wf>-<digits>-init" with a valid workflow name. */
static int is_snapshot_key(const char *name)
{
    size_t len = key_snapshot_workflow_len(name);
    char workflow[BTY_KEY_MAX];
    if (!len || len >= sizeof(workflow) || strlen(name) >= BTY_KEY_MAX)
        return 0;
    memcpy(workflow, name, len);
    workflow[len] = '\0';
    return name_workflow_check(workflow, NULL) == 0;
}

/* The methods of an endpoint for a 405 message: "GET or POST (or HEAD)". */
static const char *methods_in_words(int methods)
{
    switch (methods) {
    case BTY_GPH:
        return "GET or POST (or HEAD)";
    case BTY_GET | BTY_HEAD:
        return "GET (or HEAD)";
    case BTY_GET:
        return "GET";
    case BTY_POST:
        return "POST";
    default:
        return "GET or POST";
    }
}

/* The method as one of BTY_GET, BTY_POST, BTY_HEAD; 0 for any other. */
static int method_bit(const char *method)
{
    return strcmp(method, "GET") == 0    ? BTY_GET
           : strcmp(method, "POST") == 0 ? BTY_POST
           : strcmp(method, "HEAD") == 0 ? BTY_HEAD
                                         : 0;
}

/* The dashboard's paths: /ui, /ui/<wf> (the page, which reads the name
 * from its URL) and /ui/-/<file> (its files: a workflow name cannot start
 * with '-', so no workflow hides a file, nor a file a workflow). */
static int match_ui(const char *method, const bty_route *route,
                    char seg[MAX_SEGMENTS][MAX_SEGMENT + 1], int n, bty_target *out, bty_error *err)
{
    int file = n == 3 && strcmp(seg[1], "-") == 0;
    if (n > 2 && !file)
        return bty_error_set(err, 404, "ui takes /<workflow> or /-/<file>");
    if (!(method_bit(method) & route->methods)) {
        out->allow = route->methods; /* for the Allow header */
        return bty_error_set(err, 405, "method %.20s not allowed on %s; use %s", method,
                             route->name, methods_in_words(route->methods));
    }
    if (file) {
        size_t len = strlen(seg[2]);
        if (len >= BTY_UI_FILE_MAX ||
            strspn(seg[2], "abcdefghijklmnopqrstuvwxyz0123456789.-") != len)
            return bty_error_set(err, 404, "no such file of the dashboard");
        memcpy(out->file, seg[2], len + 1);
    } else if (n == 2) {
        if (name_workflow_check(seg[1], err) != 0)
            return -1;
        strcpy(out->workflow, seg[1]); /* checked: shorter than BTY_KEY_MAX */
    }
    out->format = FMT_JSON;
    out->route = route;
    return 0;
}

int route_match(const char *method, const char *path, bty_target *out, bty_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!path || path[0] != '/')
        return bty_error_set(err, 404, "no such endpoint; see the README for the API");
    if (strlen(path) > 1024)
        return bty_error_set(err, 404, "path too long: no such endpoint");

    char seg[MAX_SEGMENTS][MAX_SEGMENT + 1];
    int n = split_path(path, seg);
    if (n < 0)
        return bty_error_set(err, 404, "no such endpoint; see the README for the API");

    const bty_route *route = NULL;
    if (n == 0) {
        route = &routes[0]; /* "/" answers as /index */
    } else {
        for (size_t i = 0; i < NROUTES; i++)
            if (strcmp(seg[0], routes[i].name) == 0)
                route = &routes[i];
    }
    if (!route)
        return bty_error_set(err, 404, "no such endpoint '/%.100s'; endpoints are %.*s", seg[0],
                             (int)sizeof(endpoint_names) - 3, endpoint_names);
    if (route->ui)
        return match_ui(method, route, seg, n, out, err);
    int max = 1 + route->takes_workflow + route->takes_format;
    if (n > max || (route->takes_workflow && n < 2))
        return bty_error_set(err, 404, "%s takes %s", route->name,
                             route->takes_format     ? "/<workflow>[/<json|infa|sh>]"
                             : route->takes_workflow ? "/<workflow>"
                                                     : "no path arguments");

    if (!(method_bit(method) & route->methods)) {
        out->allow = route->methods; /* for the Allow header */
        return bty_error_set(err, 405, "method %.20s not allowed on %s; use %s", method,
                             route->name, methods_in_words(route->methods));
    }

    if (route->takes_workflow) {
        out->snapshot = route->takes_snapshot && is_snapshot_key(seg[1]);
        if (!out->snapshot && name_workflow_check(seg[1], err) != 0)
            return -1;
        strcpy(out->workflow, seg[1]); /* checked: shorter than BTY_KEY_MAX */
    }
    out->format = FMT_JSON;
    if (n == 3) {
        size_t i;
        for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
            if (strcmp(seg[2], formats[i].name) == 0)
                break;
        if (i == sizeof(formats) / sizeof(formats[0]))
            return bty_error_set(err, 400, "unknown format '%.40s': use json, infa or sh", seg[2]);
        out->format = formats[i].format;
    }
    out->route = route;
    return 0;
}

const char *route_allow(int methods)
{
    /* Every combination the endpoint table uses, spelt as the 405 message
     * and the Allow header give it. */
    switch (methods) {
    case BTY_GPH:
        return "GET, POST, HEAD";
    case BTY_GP:
        return "GET, POST";
    case BTY_GET | BTY_HEAD:
        return "GET, HEAD";
    case BTY_GET:
        return "GET";
    case BTY_POST:
        return "POST";
    default:
        return "GET, POST";
    }
}
