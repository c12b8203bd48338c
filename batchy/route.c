/*
 * route.c - the one routing table: which endpoints exist, what each takes
 * (workflow, format), which need the token, which are read-only. route_match
 * turns a decoded URL path and method into a bty_target or a 4xx error;
 * http.c dispatches on the result. Pure.
 */
#include <string.h>

#include "batchy.h"

/* clang-format off */
static const bty_route routes[] = {
    /* endpoint       name           workflow format token read_only */
    {EP_INDEX,        "index",       0,       0,     0,    1},
    {EP_HEALTHZ,      "healthz",     0,       0,     0,    1},
    {EP_LOAD_CFG,     "load_cfg",    1,       0,     1,    0},
    {EP_GET_STATUS,   "get_status",  1,       0,     0,    1},
    {EP_OPEN_BATCH,   "open_batch",  1,       1,     1,    0},
    {EP_CLOSE_BATCH,  "close_batch", 1,       0,     1,    0},
    {EP_FAIL_BATCH,   "fail_batch",  1,       0,     1,    0},
};
/* clang-format on */

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
        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
            if (strcmp(seg[0], routes[i].name) == 0)
                route = &routes[i];
    }
    if (!route)
        return bty_error_set(err, 404,
                             "no such endpoint '/%.100s'; endpoints are index, healthz, "
                             "load_cfg, get_status, open_batch, close_batch, fail_batch",
                             seg[0]);
    int max = 1 + route->takes_workflow + route->takes_format;
    if (n > max || (route->takes_workflow && n < 2))
        return bty_error_set(err, 404, "%s takes %s", route->name,
                             route->takes_format     ? "/<workflow>[/<json|infa|sh>]"
                             : route->takes_workflow ? "/<workflow>"
                                                     : "no path arguments");

    int head = strcmp(method, "HEAD") == 0;
    if (!(strcmp(method, "GET") == 0 || strcmp(method, "POST") == 0 || (head && route->read_only)))
        return bty_error_set(err, 405, "method %.20s not allowed on %s; use GET or POST%s", method,
                             route->name, route->read_only ? " (or HEAD)" : "");

    if (route->takes_workflow) {
        if (name_workflow_check(seg[1], err) != 0)
            return -1;
        strcpy(out->workflow, seg[1]); /* checked: at most 128 bytes */
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
