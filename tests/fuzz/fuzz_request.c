/*
 * fuzz_request.c - names, routing and query parameters: everything a raw
 * request line reaches in the pure core.
 *
 * The input is "METHOD URL" (no space: GET and the whole input as URL).
 * libmicrohttpd and http.c do the HTTP part, which is not pure and is not
 * fuzzed here: they split the URL at '?', percent-decode the path and
 * each query name and value ('+' as space in the query; %00 as the byte
 * 0xFF, see unescape_without_nul), refuse text that is not UTF-8, and turn
 * close_batch/fail_batch parameters into a bty_end_request (step= lists,
 * batch_id=, error=, the rest extra fields). This target does the same
 * steps the same way, then runs the pure code they lead to:
 *   - utf8_valid, name_workflow_check and name_step_check on the raw input,
 *     against independent readings of SPEC section 5;
 *   - route_match on the decoded path: a match names a valid workflow and
 *     a format the route takes; a refusal is a 400, 404 or 405;
 *   - rules_end on a fixed open workflow with the parameters: success sets
 *     exactly the requested fields on exactly the requested steps, none
 *     named so that sh or infa would print it as a special field; refusal
 *     is a 400, 404 or 409; either way the state still renders safely.
 * Every error message must stay UTF-8, since it is sent as JSON.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "fuzz_check.h"

#define MAX_INPUT  4096
#define MAX_PARAMS 64

/* An open batch 1795413000 of three steps, plus one that already ended. */
static const char STATE[] =
    "{\"done\":{\"status\":\"success\",\"batch_id\":1795413000,\"p\":\"1\"},"
    "\"job1\":{\"status\":\"open\",\"batch_id\":1795413000,\"from_date\":"
    "\"2026-11-22T06:00:00.000000\",\"batch_end\":null},"
    "\"job2\":{\"status\":\"open\",\"batch_id\":1795413000,\"rows\":\"12\"},"
    "\"load orders\":{\"status\":\"open\",\"batch_id\":1795413000,\"infa_section\":\"s_m\"}}";

/* ------------------------------------------------------------ oracles */

/* Well-formed UTF-8 by the byte ranges of Unicode's table 3-7 (not the
 * decode-and-check-the-value way of utf8.c), without NUL. */
static int oracle_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        unsigned char lo = 0x80, hi = 0xBF;
        size_t more;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0)
                lo = 0xA0;
            if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0)
                lo = 0x90;
            if (c == 0xF4)
                hi = 0x8F;
        } else {
            return 0;
        }
        if (n - i - 1 < more)
            return 0;
        for (size_t k = 1; k <= more; k++) {
            unsigned char b = s[i + k];
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF))
                return 0;
        }
        i += more + 1;
    }
    return 1;
}

/* Does s end in "-" followed by one or more digits at position end? */
static int dash_digits_before(const char *s, size_t end)
{
    size_t i = end;
    while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9')
        i--;
    return i < end && i > 0 && s[i - 1] == '-';
}

static int oracle_workflow(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 128 || s[0] == '.' || s[0] == '-')
        return 0;
    if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != n)
        return 0;
    if (dash_digits_before(s, n))
        return 0;
    return !(n > 5 && strcmp(s + n - 5, "-init") == 0 && dash_digits_before(s, n - 5));
}

/* A snapshot's key: "<wf>-<digits>" or "<wf>-<digits>-init" with <wf> a
 * workflow name, worked out here without keys.c. */
static int oracle_snapshot_key(const char *s)
{
    size_t n = strlen(s);
    if (n > 5 && strcmp(s + n - 5, "-init") == 0)
        n -= 5;
    size_t digits = 0;
    while (digits < n && s[n - 1 - digits] >= '0' && s[n - 1 - digits] <= '9')
        digits++;
    if (!digits || digits + 1 >= n || s[n - 1 - digits] != '-')
        return 0;
    char wf[BTY_KEY_MAX];
    size_t len = n - 1 - digits;
    if (len >= sizeof(wf))
        return 0;
    memcpy(wf, s, len);
    wf[len] = '\0';
    return oracle_workflow(wf);
}

/* Printable: no C0 (bytes 00-1F), no DEL, no C1 (U+0080-U+009F, encoded
 * C2 80 - C2 9F), no brackets. */
static int oracle_step(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 256 || !oracle_utf8((const unsigned char *)s, n))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F || c == '[' || c == ']')
            return 0;
        if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] <= 0x9F)
            return 0;
    }
    return 1;
}

static void check_names(const char *s, size_t n)
{
    FUZZ_ASSERT(utf8_valid(s, n) == oracle_utf8((const unsigned char *)s, n),
                "utf8_valid disagrees on '%.*s'", (int)n, s);
    bty_error err = {0};
    int ok = name_workflow_check(s, &err) == 0;
    FUZZ_ASSERT(ok == oracle_workflow(s), "workflow name '%s' %s", s,
                ok ? "accepted but invalid" : "refused but valid");
    if (!ok)
        check_error(&err, "name_workflow_check");
    memset(&err, 0, sizeof(err));
    ok = name_step_check(s, &err) == 0;
    FUZZ_ASSERT(ok == oracle_step(s), "step name '%s' %s", s,
                ok ? "accepted but invalid" : "refused but valid");
    if (!ok)
        check_error(&err, "name_step_check");
}

/* ------------------------------------------------------------ the shell's part */

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/* Percent-decode s in place as libmicrohttpd does (a '%' not followed by
 * two hex digits stays), %00 as 0xFF as http.c asks; plus as space in the
 * query. */
static void unescape(char *s, int plus)
{
    char *o = s;
    for (char *p = s; *p;) {
        if (*p == '%' && hex(p[1]) >= 0 && hex(p[2]) >= 0) {
            int v = hex(p[1]) * 16 + hex(p[2]);
            *o++ = (char)(v ? v : 0xFF);
            p += 3;
        } else {
            *o++ = (plus && *p == '+') ? ' ' : *p;
            p++;
        }
    }
    *o = '\0';
}

typedef struct query {
    size_t n;
    char *names[MAX_PARAMS];
    char *values[MAX_PARAMS];
} query;

/* Split "a=1&b&c=2" into decoded names and values (pointers into q). */
static void split_query(char *q, query *out)
{
    out->n = 0;
    char *save = NULL;
    for (char *part = strtok_r(q, "&", &save); part && out->n < MAX_PARAMS;
         part = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(part, '=');
        char *value = part + strlen(part); /* no '=': an empty value */
        if (eq) {
            *eq = '\0';
            value = eq + 1;
        }
        unescape(part, 1);
        unescape(value, 1);
        out->names[out->n] = part;
        out->values[out->n] = value;
        out->n++;
    }
}

/* ------------------------------------------------------------ rules_end */

static const char *last_value(const query *q, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->names[i], name) == 0)
            v = q->values[i];
    return v;
}

static int listed(const char *const *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

/* Would a parameter so named print as a special field (SPEC sections 2
 * and 5) in sh (upper-cased, other bytes as '_') or to an infa reader
 * comparing without case? Read from the SPEC, not from fields.c. */
static int passes_for_special(const char *name)
{
    static const char *const special[] = {
        "status",      "batch_id",  "from_date",   "to_date",       "reprocess_hours",
        "batch_start", "batch_end", "trunc_start", "error_message", "infa_section",
        "token",       "step",      "error",
    };
    for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++) {
        const char *f = special[i];
        size_t n = strlen(f);
        if (strlen(name) != n)
            continue;
        int sh = 1;
        for (size_t j = 0; j < n && sh; j++) {
            unsigned char c = (unsigned char)name[j];
            c = (unsigned char)((c >= 'a' && c <= 'z') ? c - 32 : c);
            if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
                c = '_';
            sh = c == (unsigned char)(f[j] == '_' ? '_' : f[j] - 32);
        }
        if (sh || strcasecmp(name, f) == 0)
            return 1;
    }
    return 0;
}

/* What the new state must be after a successful close or fail. */
static void check_ended(const cJSON *before, const cJSON *after, const bty_end_request *req,
                        const query *q)
{
    FUZZ_ASSERT(cJSON_GetArraySize(after) == cJSON_GetArraySize(before),
                "rules_end changed the number of steps");
    const cJSON *old, *step;
    for (old = before->child, step = after->child; old && step;
         old = old->next, step = step->next) {
        FUZZ_ASSERT(strcmp(old->string, step->string) == 0, "rules_end reordered the steps");
        int affected = !req->nsteps || listed(req->steps, req->nsteps, step->string);
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(step, "status");
        if (!affected || cJSON_Compare(old, step, 1)) {
            FUZZ_ASSERT(cJSON_Compare(old, step, 1), "rules_end changed step '%s', not asked to",
                        step->string);
            continue;
        }
        FUZZ_ASSERT(cJSON_IsString(status) && strcmp(status->valuestring, req->status) == 0,
                    "step '%s' did not end as %s", step->string, req->status);
        check_canonical_time(step, "batch_end");
        for (size_t i = 0; i < req->nextra; i++) {
            FUZZ_ASSERT(!passes_for_special(req->extra_names[i]),
                        "extra field '%s' stored, which prints as a special field",
                        req->extra_names[i]);
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(step, req->extra_names[i]);
            const char *want = last_value(q, req->extra_names[i]);
            FUZZ_ASSERT(cJSON_IsString(v) && want && strcmp(v->valuestring, want) == 0,
                        "step '%s': extra field '%s' not stored as given", step->string,
                        req->extra_names[i]);
        }
        const cJSON *field;
        cJSON_ArrayForEach(field, old)
        {
            const char *k = field->string;
            if (strcmp(k, "status") == 0 || strcmp(k, "batch_end") == 0 ||
                strcmp(k, "error_message") == 0 || listed(req->extra_names, req->nextra, k))
                continue;
            FUZZ_ASSERT(cJSON_Compare(field, cJSON_GetObjectItemCaseSensitive(step, k), 1),
                        "step '%s': field '%s' changed", step->string, k);
        }
    }
}

/* close_batch or fail_batch with the query, read as handle_end reads it. */
static void run_end(const char *workflow, const char *status, const query *q)
{
    bty_end_params params;
    bty_error err = {0};
    if (end_params_read(&params, status, q->names, q->values, q->n, 0, &err) != 0) {
        check_error(&err, "end_params_read");
        FUZZ_ASSERT(err.status == 400 || err.status == 503, "end_params_read refused with %d: %s",
                    err.status, err.message);
        end_params_free(&params);
        return;
    }
    cJSON *state = cJSON_Parse(STATE);
    FUZZ_ASSERT(state, "fixture does not parse");
    bty_change out;
    if (rules_end(workflow, state, &params.req, FUZZ_NOW, &out, &err) != 0) {
        check_error(&err, "rules_end");
        FUZZ_ASSERT(err.status == 400 || err.status == 404 || err.status == 409,
                    "rules_end refused with %d: %s", err.status, err.message);
    } else {
        check_ended(state, out.state, &params.req, q);
        check_plan(&out.plan, workflow);
        check_formats(workflow, out.batch_id, out.state);
        change_free(&out);
    }
    cJSON_Delete(state);
    end_params_free(&params);
}

/* ------------------------------------------------------------ route */

static void check_route(const char *method, char *url)
{
    char *qmark = strchr(url, '?');
    char *qs = NULL;
    if (qmark) {
        *qmark = '\0';
        qs = qmark + 1;
    }
    unescape(url, 0);
    if (!utf8_valid(url, strlen(url)))
        return; /* the shell's 400 */

    bty_target t;
    bty_error err = {0};
    if (route_match(method, url, &t, &err) != 0) {
        check_error(&err, "route_match");
        FUZZ_ASSERT(err.status == 400 || err.status == 404 || err.status == 405,
                    "route_match refused with %d", err.status);
        return;
    }
    FUZZ_ASSERT(t.route && t.route->name, "route_match matched no route");
    FUZZ_ASSERT(strcmp(method, "GET") == 0 || strcmp(method, "POST") == 0 ||
                    (strcmp(method, "HEAD") == 0 && (t.route->methods & BTY_HEAD)),
                "method '%s' allowed on %s", method, t.route->name);
    FUZZ_ASSERT(strcmp(url, "/") == 0 || strcmp(url, "/index/") == 0 ||
                    strncmp(url + 1, t.route->name, strlen(t.route->name)) == 0,
                "path '%s' routed to %s", url, t.route->name);
    if (t.route->takes_workflow && t.snapshot) {
        FUZZ_ASSERT(t.route->takes_snapshot && oracle_snapshot_key(t.workflow) &&
                        strlen(t.workflow) < BTY_KEY_MAX,
                    "path '%s' routed with snapshot key '%s'", url, t.workflow);
    } else if (t.route->takes_workflow) {
        FUZZ_ASSERT(oracle_workflow(t.workflow), "path '%s' routed with workflow '%s'", url,
                    t.workflow);
        char key[BTY_KEY_MAX];
        key_snapshot(key, t.workflow, BTY_MAX_BATCH_ID);
        FUZZ_ASSERT(strlen(key) < BTY_KEY_MAX - 1, "snapshot key of '%s' truncated", t.workflow);
    } else if (t.route->ui && t.workflow[0]) { /* /ui/<wf>: the page of a workflow */
        FUZZ_ASSERT(oracle_workflow(t.workflow) && !t.file[0],
                    "path '%s' routed to ui with workflow '%s'", url, t.workflow);
    } else {
        FUZZ_ASSERT(t.workflow[0] == '\0', "%s took a workflow", t.route->name);
    }
    FUZZ_ASSERT(t.format == FMT_JSON || t.route->takes_format, "%s took a format", t.route->name);

    if (!qs || !t.route->takes_workflow)
        return;
    query q;
    split_query(qs, &q);
    for (size_t i = 0; i < q.n; i++) {
        if (!utf8_valid(q.names[i], strlen(q.names[i])) ||
            !utf8_valid(q.values[i], strlen(q.values[i])))
            return; /* the shell's 400 */
    }
    run_end(t.workflow, t.route->endpoint == EP_FAIL_BATCH ? "failed" : "success", &q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    char *text = malloc(size + 1);
    FUZZ_ASSERT(text, "out of memory");
    memcpy(text, data, size);
    text[size] = '\0';
    check_names(text, strlen(text));

    char *space = strchr(text, ' ');
    const char *method = "GET";
    char *url = text;
    if (space) {
        *space = '\0';
        method = text;
        url = space + 1;
    }
    check_route(method, url);
    free(text);
    return 0;
}
