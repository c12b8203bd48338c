/*
 * fetch.c - one GET of Batchy's get_status/<wf>, or of a page of
 * history/<wf>, through libcurl, sorted into what the poll loop needs to
 * decide: a document, a reason to retry, an unknown workflow (or no
 * history at all), or a refusal that retrying will not cure. And the held
 * get_status between polls (SPEC section 10), sorted into changed, not
 * modified, or anything else.
 *
 * One easy handle for the whole run, so that polls reuse the connection.
 * Timeouts are always set: a Batchy that accepts and never answers must
 * not hang a nightly pipeline.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "fetch.h"

#define CONNECT_TIMEOUT_MS 5000
#define REQUEST_TIMEOUT_MS 30000

struct wz_client {
    CURL *curl;
    CURLU *base;     /* the base URL, parsed */
    char *base_path; /* its path, without the trailing '/' */
    char *display;   /* the base URL without user and password, for messages */
    struct curl_slist *headers;
    wz_should_stop should_stop;
    char errbuf[CURL_ERROR_SIZE];
    /* the answer being received */
    char *body;
    size_t len, cap;
    int too_large;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    wz_client *c = userdata;
    size_t n = size * nmemb;
    if (n > WZ_MAX_BODY - c->len) {
        c->too_large = 1;
        return 0; /* stops the transfer */
    }
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *p = realloc(c->body, cap);
        if (!p)
            return 0;
        c->body = p;
        c->cap = cap;
    }
    memcpy(c->body + c->len, data, n);
    c->len += n;
    c->body[c->len] = '\0';
    return n;
}

/* Called by libcurl about once a second at worst, and often while data
 * flows: a SIGINT or SIGTERM stops the request at once. */
static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    wz_client *c = userdata;
    return c->should_stop && c->should_stop();
}

wz_client *wz_client_create(const char *url, const char *token, wz_should_stop should_stop,
                            char *why, size_t why_len, int *exit_code)
{
    wz_client *c = calloc(1, sizeof(*c));
    char *scheme = NULL, *path = NULL, *display = NULL;
    *exit_code = WZ_EXIT_INTERNAL;
    if (!c) {
        wz_why(why, why_len, "out of memory");
        return NULL;
    }
    c->should_stop = should_stop;
    c->base = curl_url();
    if (!c->base) {
        wz_why(why, why_len, "out of memory");
        goto fail;
    }
    if (curl_url_set(c->base, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(c->base, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
        curl_url_get(c->base, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        wz_why(why, why_len, "not an http:// or https:// URL that libcurl can use");
        *exit_code = WZ_EXIT_USAGE;
        goto fail;
    }
    /* Strip the trailing '/' so that prefix + "/get_status/wf" has one. */
    size_t plen = strlen(path);
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    c->base_path = strndup(path, plen);

    /* Messages show the URL without its user and password. */
    CURLU *shown = curl_url_dup(c->base);
    if (shown) {
        curl_url_set(shown, CURLUPART_USER, NULL, 0);
        curl_url_set(shown, CURLUPART_PASSWORD, NULL, 0);
        curl_url_get(shown, CURLUPART_URL, &display, 0);
        curl_url_cleanup(shown);
    }
    c->display = display ? strdup(display) : NULL;
    if (c->display) /* "http://host/" + "/get_status/wf" would have two */
        for (size_t n = strlen(c->display); n > 0 && c->display[n - 1] == '/'; n--)
            c->display[n - 1] = '\0';

    c->headers = curl_slist_append(NULL, "Accept: application/json");
    if (token && c->headers) {
        size_t n = strlen(token) + sizeof("Authorization: Bearer ");
        char *h = malloc(n);
        if (h) {
            snprintf(h, n, "Authorization: Bearer %s", token);
            struct curl_slist *l = curl_slist_append(c->headers, h);
            free(h);
            if (!l) {
                curl_slist_free_all(c->headers);
                c->headers = NULL;
            }
        } else {
            curl_slist_free_all(c->headers);
            c->headers = NULL;
        }
    }

    c->curl = curl_easy_init();
    if (!c->base_path || !c->display || !c->headers || !c->curl) {
        wz_why(why, why_len, "out of memory");
        goto fail;
    }
    /* Proxy variables set for the outside world must not send requests
     * for a Batchy on this machine through a proxy: unless NO_PROXY says
     * otherwise, loopback goes direct. */
    const char *no_proxy = getenv("NO_PROXY");
    if (!no_proxy || !*no_proxy)
        no_proxy = getenv("no_proxy");
    if (!no_proxy || !*no_proxy)
        no_proxy = "localhost,127.0.0.1,::1";
    CURL *h = c->curl;
    CURLcode rc;
    if ((rc = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https")) != CURLE_OK ||
        (rc = curl_easy_setopt(h, CURLOPT_NOPROXY, no_proxy)) != CURLE_OK ||
        (rc = curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L)) != CURLE_OK ||
        (rc = curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers)) != CURLE_OK ||
        (rc = curl_easy_setopt(h, CURLOPT_USERAGENT, "waitsy/" WAITSY_VERSION)) != CURLE_OK ||
        (rc = curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L)) != CURLE_OK ||
        (rc = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body)) != CURLE_OK ||
        (rc = curl_easy_setopt(h, CURLOPT_WRITEDATA, c)) != CURLE_OK ||
        (rc = curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress)) != CURLE_OK ||
        (rc = curl_easy_setopt(h, CURLOPT_XFERINFODATA, c)) != CURLE_OK ||
        (rc = curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L)) != CURLE_OK ||
        (rc = curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf)) != CURLE_OK) {
        wz_why(why, why_len, "libcurl: %s", curl_easy_strerror(rc));
        goto fail;
    }
    curl_free(scheme);
    curl_free(path);
    curl_free(display);
    return c;

fail:
    curl_free(scheme);
    curl_free(path);
    curl_free(display);
    wz_client_free(c);
    return NULL;
}

void wz_client_free(wz_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    curl_url_cleanup(c->base);
    curl_slist_free_all(c->headers);
    free(c->base_path);
    free(c->display);
    free(c->body);
    free(c);
}

const char *wz_client_url(const wz_client *c)
{
    return c->display;
}

/* The "error" of a Batchy error body, made safe to print, into out
 * (SHOWN + 4 bytes); 0 when the body is not one. */
#define SHOWN 300
static int batchy_error(const char *body, size_t len, char *out)
{
    cJSON *doc = body ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
    int found = cJSON_IsString(e);
    if (found)
        wz_clean(e->valuestring, SHOWN, out);
    cJSON_Delete(doc);
    return found;
}

/* A JSON text with more values than this is refused before parsing: cJSON
 * takes some 64 bytes per value, and no workflow has that many. */
#define MAX_JSON_VALUES 1000000

static size_t json_values(const char *text, size_t len)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == ',' || text[i] == '[' || text[i] == '{';
    return n;
}

/* The answer's body as JSON, or NULL when it is not JSON (or too big to
 * parse). The caller deletes it. */
static cJSON *parse_body(const wz_client *c)
{
    const char *body = c->body ? c->body : "";
    if (json_values(body, c->len) > MAX_JSON_VALUES)
        return NULL;
    return cJSON_ParseWithLength(body, c->len);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The time limit of a poll's request with `budget` seconds left
 * (INFINITY: no deadline): never longer than that, yet long enough (1 s)
 * to hear from a Batchy that is up, and at most 30 s. */
static long poll_timeout_ms(double budget)
{
    if (budget < REQUEST_TIMEOUT_MS / 1000.0) /* false for INFINITY */
        return budget < 1 ? 1000 : (long)(budget * 1000);
    return REQUEST_TIMEOUT_MS;
}

/* GET base path + suffix ("/get_status/wf1", "/index"), with `query`
 * (NULL: none; the base URL has none), within `budget_ms`; the answer's
 * body is in c->body (c->len bytes). Workflow names are checked to be
 * [A-Za-z0-9_.-] and queries are digits, '=' and '&': nothing to escape. */
static CURLcode perform(wz_client *c, const char *suffix, const char *query, const char *form,
                        long budget_ms, long *status);

static CURLcode get(wz_client *c, const char *suffix, const char *query, long budget_ms,
                    long *status)
{
    return perform(c, suffix, query, NULL, budget_ms, status);
}

/* get(), or with form (NULL: none) a POST of that form body. */
static CURLcode perform(wz_client *c, const char *suffix, const char *query, const char *form,
                        long budget_ms, long *status)
{
    c->len = 0;
    c->too_large = 0;
    c->errbuf[0] = '\0';
    *status = 0;

    char *url = NULL;
    size_t plen = strlen(c->base_path) + strlen(suffix) + 1;
    char *path = malloc(plen);
    CURLU *u = curl_url_dup(c->base);
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    if (path && u) {
        snprintf(path, plen, "%s%s", c->base_path, suffix);
        if (curl_url_set(u, CURLUPART_PATH, path, 0) == CURLUE_OK &&
            (!query || curl_url_set(u, CURLUPART_QUERY, query, 0) == CURLUE_OK) &&
            curl_url_get(u, CURLUPART_URL, &url, 0) == CURLUE_OK)
            rc = CURLE_OK;
    }
    free(path);
    curl_url_cleanup(u);
    if (rc == CURLE_OK && (rc = curl_easy_setopt(c->curl, CURLOPT_URL, url)) == CURLE_OK &&
        (rc = form ? curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, form)
                   : curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L)) == CURLE_OK &&
        (rc = curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, budget_ms)) == CURLE_OK &&
        (rc = curl_easy_setopt(
             c->curl, CURLOPT_CONNECTTIMEOUT_MS,
             budget_ms < CONNECT_TIMEOUT_MS ? budget_ms : (long)CONNECT_TIMEOUT_MS)) == CURLE_OK) {
        rc = curl_easy_perform(c->curl);
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
    }
    curl_free(url);
    return rc;
}

/* After get(): drop a large receive buffer, so that one big answer does
 * not stay allocated for the rest of the wait. */
static void release_large_body(wz_client *c)
{
    if (c->cap > (1 << 20)) {
        free(c->body);
        c->body = NULL;
        c->cap = c->len = 0;
    }
}

/* Where a redirect points, without user and password, safe to print. */
static void redirect_target(wz_client *c, char *out)
{
    char *location = NULL, *bare = NULL;
    curl_easy_getinfo(c->curl, CURLINFO_REDIRECT_URL, &location);
    CURLU *u = location ? curl_url() : NULL;
    if (u && curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK) {
        curl_url_set(u, CURLUPART_USER, NULL, 0);
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
        curl_url_get(u, CURLUPART_URL, &bare, 0);
    }
    wz_clean(bare ? bare : "another address", SHOWN, out);
    curl_free(bare);
    curl_url_cleanup(u);
}

static int is_retryable(long status)
{
    /* 409: Batchy cannot read the stored state; an operator may repair it
     * while we wait. */
    return (status >= 500 && status <= 599) || status == 408 || status == 409 || status == 429;
}

/* GET <url><endpoint>/<wf>[?query] into c, timed into out; 1 when it
 * failed before any HTTP status (out->kind and message set: interrupted,
 * too large, out of memory, unreachable), 0 when out->status is to judge.
 * The one place both requests of a poll judge the transport. */
static int timed_get(wz_client *c, const char *endpoint, const char *wf, const char *query,
                     long budget_ms, wz_answer *out)
{
    memset(out, 0, sizeof(*out));
    char suffix[160];
    snprintf(suffix, sizeof(suffix), "/%s/%s", endpoint, wf);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CURLcode rc = get(c, suffix, query, budget_ms, &out->status);
    out->seconds = seconds_since(&t0);
    out->bytes = c->len;
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        out->kind = WZ_ANSWER_INTERRUPTED;
        wz_why(out->message, sizeof(out->message), "interrupted");
    } else if (c->too_large) {
        out->kind = WZ_ANSWER_REFUSED;
        wz_why(out->message, sizeof(out->message),
               "%s/%s at %s: the answer is larger than %d MiB; check --url", endpoint, wf,
               c->display, WZ_MAX_BODY >> 20);
    } else if (rc == CURLE_OUT_OF_MEMORY) {
        out->kind = WZ_ANSWER_RETRY;
        wz_why(out->message, sizeof(out->message), "%s/%s: out of memory", endpoint, wf);
    } else if (rc != CURLE_OK) {
        out->kind = WZ_ANSWER_RETRY;
        wz_why(out->message, sizeof(out->message), "cannot reach Batchy at %s: %s", c->display,
               c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
    } else {
        return 0;
    }
    return 1;
}

/* A status Batchy may answer differently soon: said as a retry. */
static void retry_later(wz_client *c, wz_answer *out)
{
    char error[SHOWN + 4];
    int has_error = batchy_error(c->body, c->len, error);
    out->kind = WZ_ANSWER_RETRY;
    wz_why(out->message, sizeof(out->message), "Batchy at %s answered %ld%s%s", c->display,
           out->status, has_error ? ": " : "", has_error ? error : "");
}

/* The ETag of the answer just received into out (WZ_MAX_ETAG + 1 bytes),
 * or "" when it has none that can be sent back as it is. */
static void answer_etag(wz_client *c, char *out)
{
    struct curl_header *h = NULL;
    out[0] = '\0';
    if (curl_easy_header(c->curl, "ETag", 0, CURLH_HEADER, -1, &h) == CURLHE_OK &&
        wz_etag_usable(h->value))
        snprintf(out, WZ_MAX_ETAG + 1, "%s", h->value);
}

void wz_fetch_status(wz_client *c, const char *wf, double budget, wz_answer *out)
{
    char error[SHOWN + 4];
    const char *shown = c->display; /* messages name the URL without credentials */

    if (timed_get(c, "get_status", wf, NULL, poll_timeout_ms(budget), out)) {
        /* said */
    } else if (out->status == 200) {
        answer_etag(c, out->etag);
        out->doc = parse_body(c);
        out->kind = out->doc ? WZ_ANSWER_OK : WZ_ANSWER_REFUSED;
        if (!out->doc)
            wz_why(out->message, sizeof(out->message),
                   "get_status/%s at %s answered 200 with %zu bytes that are not a Batchy "
                   "workflow document; check --url",
                   wf, shown, c->len);
    } else if (out->status == 404) {
        /* An unknown workflow, or no Batchy at this URL (a wrong path
         * prefix, a proxy's page)? Batchy's index tells. */
        int has_error = batchy_error(c->body, c->len, error);
        long index_status = 0;
        double left = budget - out->seconds;
        CURLcode irc = get(c, "/index", NULL, poll_timeout_ms(left), &index_status);
        int is_batchy = irc == CURLE_OK && index_status == 200 && c->len >= 7 &&
                        memcmp(c->body, "Batchy ", 7) == 0;
        if (irc == CURLE_ABORTED_BY_CALLBACK) {
            out->kind = WZ_ANSWER_INTERRUPTED;
        } else if (irc != CURLE_OK) {
            out->kind = WZ_ANSWER_RETRY;
            wz_why(out->message, sizeof(out->message), "cannot reach Batchy at %s: %s", shown,
                   c->errbuf[0] ? c->errbuf : curl_easy_strerror(irc));
        } else if (is_batchy && has_error) {
            out->kind = WZ_ANSWER_UNKNOWN;
            wz_why(out->message, sizeof(out->message), "get_status/%s: %s", wf, error);
        } else {
            out->kind = WZ_ANSWER_REFUSED;
            wz_why(
                out->message, sizeof(out->message),
                "no Batchy at %s: get_status/%s answered 404 and index answered %ld; check --url",
                shown, wf, index_status);
        }
    } else if (is_retryable(out->status)) {
        retry_later(c, out);
    } else if (out->status >= 300 && out->status <= 399) {
        redirect_target(c, error);
        out->kind = WZ_ANSWER_REFUSED;
        wz_why(out->message, sizeof(out->message),
               "get_status/%s at %s redirects (%ld) to %s; point --url at Batchy itself", wf, shown,
               out->status, error);
    } else {
        out->kind = WZ_ANSWER_REFUSED;
        int has_error = batchy_error(c->body, c->len, error);
        wz_why(out->message, sizeof(out->message), "Batchy at %s refused get_status/%s (%ld%s%s)%s",
               shown, wf, out->status, has_error ? ": " : "", has_error ? error : "",
               out->status == 401 || out->status == 403 ? "; check --token or BATCHY_TOKEN" : "");
    }
    release_large_body(c);
}

void wz_fetch_history(wz_client *c, const char *wf, long long before, long limit, double budget,
                      wz_answer *out)
{
    char query[64], error[SHOWN + 4];
    snprintf(query, sizeof(query), "limit=%ld&before=%lld", limit, before);
    const char *shown = c->display;

    if (timed_get(c, "history", wf, query, poll_timeout_ms(budget), out)) {
        /* said */
    } else if (out->status == 200) {
        out->doc = parse_body(c);
        out->kind = out->doc ? WZ_ANSWER_OK : WZ_ANSWER_UNKNOWN;
        if (!out->doc)
            wz_why(out->message, sizeof(out->message),
                   "history/%s at %s answered 200 with %zu bytes that are not JSON", wf, shown,
                   c->len);
    } else if (out->status == 404) {
        out->kind = WZ_ANSWER_UNKNOWN;
        wz_why(out->message, sizeof(out->message), "history/%s at %s answered 404", wf, shown);
    } else if (is_retryable(out->status) && out->status != 409) {
        /* 409 is an index Batchy cannot read: the latest records still
         * can, and an operator may never repair it. */
        retry_later(c, out);
    } else {
        out->kind = WZ_ANSWER_REFUSED;
        int has_error = batchy_error(c->body, c->len, error);
        wz_why(out->message, sizeof(out->message), "history/%s at %s answered %ld%s%s", wf, shown,
               out->status, has_error ? ": " : "", has_error ? error : "");
    }
    release_large_body(c);
}

/* c->headers and If-None-Match: <etag>, a list of its own (the caller
 * frees it), so that polls never send it; NULL when out of memory. */
static struct curl_slist *held_headers(const wz_client *c, const char *etag)
{
    char line[WZ_MAX_ETAG + sizeof("If-None-Match: ")];
    snprintf(line, sizeof(line), "If-None-Match: %s", etag);
    struct curl_slist *list = NULL;
    for (const struct curl_slist *h = c->headers; h; h = h->next) {
        struct curl_slist *l = curl_slist_append(list, h->data);
        if (!l) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = l;
    }
    struct curl_slist *l = curl_slist_append(list, line);
    if (!l)
        curl_slist_free_all(list);
    return l;
}

void wz_fetch_status_held(wz_client *c, const char *wf, const char *etag, long wait, double budget,
                          wz_answer *out)
{
    char query[32], error[SHOWN + 4];
    snprintf(query, sizeof(query), "wait=%ld", wait);
    const char *shown = c->display;

    struct curl_slist *headers = wz_etag_usable(etag) ? held_headers(c, etag) : NULL;
    if (!headers) {
        memset(out, 0, sizeof(*out));
        out->kind = WZ_ANSWER_RETRY;
        wz_why(out->message, sizeof(out->message), "get_status/%s?%s: out of memory", wf, query);
        return;
    }
    /* Not the 1-30 s of a poll: Batchy answers a 304 only after `wait`
     * seconds, so the budget (wait plus a margin) is the caller's. */
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
    int said = timed_get(c, "get_status", wf, query, (long)(budget * 1000), out);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    curl_slist_free_all(headers);

    if (said) {
        /* said */
    } else if (out->status == 200 || out->status == 304) {
        answer_etag(c, out->etag);
        out->kind = out->status == 200 ? WZ_ANSWER_OK : WZ_ANSWER_NOT_MODIFIED;
    } else if (out->status == 404) { /* deleted meanwhile: the poll will say */
        out->kind = WZ_ANSWER_UNKNOWN;
        wz_why(out->message, sizeof(out->message), "get_status/%s?%s at %s answered 404", wf, query,
               shown);
    } else if (is_retryable(out->status)) {
        retry_later(c, out);
    } else { /* 400: a server that takes no such wait=; a proxy's refusal */
        out->kind = WZ_ANSWER_REFUSED;
        int has_error = batchy_error(c->body, c->len, error);
        wz_why(out->message, sizeof(out->message), "get_status/%s?%s at %s answered %ld%s%s", wf,
               query, shown, out->status, has_error ? ": " : "", has_error ? error : "");
    }
    release_large_body(c);
}

void wz_post(wz_client *c, const char *endpoint, const char *wf, const char *const *names,
             const char *const *values, size_t n, double budget, wz_answer *out)
{
    char error[SHOWN + 4];
    memset(out, 0, sizeof(*out));
    /* The form: every value escaped (an error message holds anything). */
    size_t cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += 3 * (strlen(names[i]) + strlen(values[i])) + 2;
    char *form = malloc(cap);
    size_t len = 0;
    for (size_t i = 0; form && i < n; i++) {
        char *k = curl_easy_escape(c->curl, names[i], 0);
        char *v = curl_easy_escape(c->curl, values[i], 0);
        if (k && v)
            len += (size_t)snprintf(form + len, cap - len, "%s%s=%s", i ? "&" : "", k, v);
        else
            len = cap; /* out of memory */
        curl_free(k);
        curl_free(v);
    }
    if (!form || len >= cap) {
        free(form);
        out->kind = WZ_ANSWER_RETRY;
        wz_why(out->message, sizeof(out->message), "%s/%s: out of memory", endpoint, wf);
        return;
    }
    if (!n)
        form[0] = '\0';
    char suffix[160];
    snprintf(suffix, sizeof(suffix), "/%s/%s", endpoint, wf);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CURLcode rc = perform(c, suffix, NULL, form, poll_timeout_ms(budget), &out->status);
    free(form);
    out->seconds = seconds_since(&t0);
    out->bytes = c->len;
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        out->kind = WZ_ANSWER_INTERRUPTED;
        wz_why(out->message, sizeof(out->message), "interrupted");
    } else if (rc != CURLE_OK) {
        out->kind = WZ_ANSWER_RETRY;
        wz_why(out->message, sizeof(out->message), "cannot reach Batchy at %s: %s", c->display,
               c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
    } else if (out->status == 200) {
        out->doc = parse_body(c);
        out->kind = out->doc ? WZ_ANSWER_OK : WZ_ANSWER_REFUSED;
        if (!out->doc)
            wz_why(out->message, sizeof(out->message),
                   "%s/%s at %s answered 200 with what is not a Batchy document; check --url",
                   endpoint, wf, c->display);
    } else if ((out->status >= 500 && out->status <= 599) || out->status == 408 ||
               out->status == 429) {
        retry_later(c, out);
    } else {
        /* 4xx: the write is refused as it is (a stale batch_id: 409); no
         * retry cures it */
        int has_error = batchy_error(c->body, c->len, error);
        out->kind = out->status == 404 && has_error ? WZ_ANSWER_UNKNOWN : WZ_ANSWER_REFUSED;
        wz_why(out->message, sizeof(out->message), "Batchy at %s refused %s/%s (%ld%s%s)%s",
               c->display, endpoint, wf, out->status, has_error ? ": " : "", has_error ? error : "",
               out->status == 401 || out->status == 403 ? "; check --token or BATCHY_TOKEN" : "");
    }
    release_large_body(c);
}
