/*
 * options.c - Batchy's command line and environment (SPEC section 6).
 *
 * Each option has a default, an environment variable and a flag, applied
 * in that order. Redis URLs are taken apart by uriparser (RFC 3986) rather
 * than by hand. (libcurl's parser did it before, but libcurl brings thirty
 * libraries and over 5 MB of resident memory into a service that never
 * fetches a URL.)
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uriparser/Uri.h>

#include "shell.h"

static const char usage_text[] =
    "Usage: batchy [options]\n"
    "       batchy --check FILE...\n"
    "Keeps the state of ETL batch workflows in Redis and serves it over HTTP.\n"
    "\n"
    "  -l, --listen HOST:PORT  address to listen on (BATCHY_LISTEN; 127.0.0.1:5000)\n"
    "  -r, --redis URL         redis://[[user]:password@]host[:port][/db] or\n"
    "                          unix:///path.sock[?db=N] or sentinel://[[user]:password@]\n"
    "                          host:port[,host:port...]/<master>[/db][?sentinel_password=]\n"
    "                          (BATCHY_REDIS_URL, REDIS_URL; redis://127.0.0.1:6379/0)\n"
    "  -c, --cfg-dir DIR       where <wf>.yaml files are (BATCHY_CFG_DIR; ./cfg)\n"
    "  -t, --threads N         worker threads (BATCHY_THREADS; number of cores)\n"
    "      --token TOKEN       require 'Authorization: Bearer TOKEN' on load_cfg,\n"
    "                          open_batch, close_batch, fail_batch (BATCHY_TOKEN)\n"
    "      --keep-batches N    batch snapshots kept per workflow, 0 for all\n"
    "                          (BATCHY_KEEP_BATCHES; 1000)\n"
    "      --metrics-steps on|off  per-step series in /metrics (BATCHY_METRICS_STEPS;\n"
    "                          on); off for very large installations\n"
    "      --min-replicas N    answer a write 200 only once N replicas hold it, else\n"
    "                          503 (BATCHY_MIN_REPLICAS; 0)\n"
    "      --replica-timeout MS  how long a write waits for them (BATCHY_REPLICA_TIMEOUT;\n"
    "                          1000)\n"
    "      --read-cache-mb N   memory for get_status answers kept while Redis says they\n"
    "                          are current, 0 for none (BATCHY_READ_CACHE_MB; 64)\n"
    "      --ui-dir DIR        serve the dashboard's files (/ui) from DIR rather than\n"
    "                          the binary's own, to work on them (BATCHY_UI_DIR)\n"
    "  -q, --quiet             no access log\n"
    "      --check FILE...     validate workflow files as load_cfg would, without\n"
    "                          Redis or a server: one line per problem on stderr,\n"
    "                          exit 0 when all are valid, 1 when any is not\n"
    "  -V, --version           print the version and exit\n"
    "  -h, --help              print this help and exit\n"
    "\n"
    "Example: batchy --listen 127.0.0.1:5000 --redis redis://127.0.0.1:6379/0 --cfg-dir cfg\n"
    "         batchy --check cfg/*.yaml\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print a usage error on stderr; returns the exit status 64 (EX_USAGE). */
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "batchy: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'batchy --help'.\n");
    va_end(ap);
    return 64;
}

/* "on" or "off" into *out; -1 for anything else. */
static int on_off(const char *v, int *out)
{
    if (strcmp(v, "on") == 0 || strcmp(v, "off") == 0) {
        *out = v[1] == 'n';
        return 0;
    }
    return -1;
}

/* Copy src into a fixed buffer; -1 when it does not fit. */
static int copy_bounded(char *dst, size_t size, const char *src)
{
    size_t len = strlen(src);
    if (len >= size)
        return -1;
    memcpy(dst, src, len + 1);
    return 0;
}

static int parse_int(const char *text, long min, long max, int *out)
{
    char *end;
    long v;
    if (!text[0])
        return -1;
    v = strtol(text, &end, 10);
    if (*end || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* HOST:PORT, [v6]:PORT, or :PORT (loopback). */
static int parse_listen(const char *text, bty_options *opts)
{
    const char *colon = strrchr(text, ':');
    if (!colon)
        return -1;
    size_t hostlen = (size_t)(colon - text);
    const char *host = text;
    if (hostlen >= 2 && text[0] == '[' && text[hostlen - 1] == ']') {
        host++;
        hostlen -= 2;
    }
    if (hostlen >= sizeof(opts->listen_host))
        return -1;
    memcpy(opts->listen_host, host, hostlen);
    opts->listen_host[hostlen] = '\0';
    if (!hostlen)
        strcpy(opts->listen_host, "127.0.0.1");
    return parse_int(colon + 1, 1, 65535, &opts->listen_port);
}

/* One part of a parsed URL, [first, after), percent-decoded into dst;
 * absent parts give "". 0, or -1 when it does not fit or would decode to
 * a NUL (which would cut a password short). */
static int url_part(const char *first, const char *after, char *dst, size_t size)
{
    size_t len = first && after ? (size_t)(after - first) : 0;
    if (len >= size)
        return -1;
    memcpy(dst, first ? first : "", len);
    dst[len] = '\0';
    if (strstr(dst, "%00"))
        return -1;
    uriUnescapeInPlaceExA(dst, URI_FALSE, URI_BR_DONT_TOUCH);
    return 0;
}

/* unix:///path.sock[?db=N]: a path, not a host, so split here. */
static int parse_unix_url(const char *url, bty_redis_target *out, bty_error *err)
{
    const char *path = url + strlen("unix://");
    const char *query = strchr(path, '?');
    size_t len = query ? (size_t)(query - path) : strlen(path);
    out->is_unix = 1;
    if (path[0] != '/' || len >= sizeof(out->path))
        return bty_error_set(err, 400, "a unix Redis URL is unix:///path/to/redis.sock[?db=N]");
    memcpy(out->path, path, len);
    out->path[len] = '\0';
    if (query && (strncmp(query, "?db=", 4) != 0 || parse_int(query + 4, 0, 1000000, &out->db)))
        return bty_error_set(err, 400, "bad ?db=N in the Redis URL");
    return 0;
}

/* host:port or [v6]:port of a sentinel, [p, end); the port defaults to
 * Sentinel's, 26379. 0, or -1. */
static int parse_host(const char *p, const char *end, bty_host *out)
{
    const char *colon = NULL, *host = p, *host_end;
    if (p < end && *p == '[') { /* [v6] */
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close)
            return -1;
        host = p + 1;
        host_end = close;
        if (close + 1 < end) {
            if (close[1] != ':')
                return -1;
            colon = close + 1;
        }
    } else {
        for (const char *q = p; q < end; q++)
            if (*q == ':')
                colon = q;
        host_end = colon ? colon : end;
    }
    char port[16];
    if (host_end == host || url_part(host, host_end, out->host, sizeof(out->host)) ||
        url_part(colon ? colon + 1 : NULL, colon ? end : NULL, port, sizeof(port)))
        return -1;
    out->port = 26379;
    return port[0] ? parse_int(port, 1, 65535, &out->port) : colon ? -1 : 0;
}

/* sentinel://[user:password@]host[:port][,host[:port]...]/<master>[/db]
 * [?sentinel_password=...] (SPEC section 12): a list of hosts, which
 * uriparser, after RFC 3986, does not take; split here, each part
 * percent-decoded as in redis:// URLs. */
static int parse_sentinel_url(const char *url, bty_redis_target *out, bty_error *err)
{
    static const char usage[] = "a Sentinel URL is sentinel://[user:password@]host:port[,host:"
                                "port...]/<master name>[/db][?sentinel_password=...]";
    const char *p = url + strlen("sentinel://");
    const char *query = strchr(p, '?');
    const char *end = query ? query : p + strlen(p);
    const char *slash = memchr(p, '/', (size_t)(end - p));
    if (!slash)
        return bty_error_set(err, 400, "%s: no master name", usage);
    out->is_sentinel = 1;
    /* user:password@, before the last '@' of the authority */
    const char *hosts = p;
    for (const char *q = p; q < slash; q++)
        if (*q == '@')
            hosts = q + 1;
    if (hosts > p) {
        const char *at = hosts - 1;
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (url_part(p, colon ? colon : at, out->user, sizeof(out->user)) ||
            url_part(colon ? colon + 1 : NULL, colon ? at : NULL, out->password,
                     sizeof(out->password)))
            return bty_error_set(err, 400, "%s: bad user or password", usage);
    }
    for (const char *h = hosts; h < slash;) {
        const char *comma = memchr(h, ',', (size_t)(slash - h));
        const char *h_end = comma ? comma : slash;
        if (out->nsentinels == BTY_SENTINELS_MAX)
            return bty_error_set(err, 400, "%d sentinels at most in a Sentinel URL",
                                 BTY_SENTINELS_MAX);
        if (parse_host(h, h_end, &out->sentinels[out->nsentinels++]))
            return bty_error_set(err, 400, "%s: bad sentinel host or port", usage);
        h = comma ? comma + 1 : slash;
        if (comma && h == slash)
            return bty_error_set(err, 400, "%s: bad sentinel host or port", usage);
    }
    if (!out->nsentinels)
        return bty_error_set(err, 400, "%s: no sentinel hosts", usage);
    const char *name = slash + 1;
    const char *name_end = memchr(name, '/', (size_t)(end - name));
    char db[16] = "";
    if (url_part(name, name_end ? name_end : end, out->master, sizeof(out->master)) ||
        !out->master[0])
        return bty_error_set(err, 400, "%s: no master name", usage);
    if (name_end && (url_part(name_end + 1, end, db, sizeof(db)) || !db[0] ||
                     parse_int(db, 0, 1000000, &out->db)))
        return bty_error_set(err, 400, "bad database number in the Sentinel URL");
    if (query) {
        static const char key[] = "?sentinel_password=";
        if (strncmp(query, key, strlen(key)) != 0 ||
            url_part(query + strlen(key), query + strlen(query), out->sentinel_password,
                     sizeof(out->sentinel_password)))
            return bty_error_set(err, 400, "%s: the only parameter is sentinel_password=", usage);
    }
    return 0;
}

/* Messages never repeat the URL: it may hold a password. */
int options_parse_redis_url(const char *url, bty_redis_target *out, bty_error *err)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix_url(url, out, err);
    if (strncmp(url, "sentinel://", 11) == 0)
        return parse_sentinel_url(url, out, err);
    if (strncmp(url, "redis://", 8) != 0)
        return bty_error_set(err, 400,
                             "the Redis URL must start with redis://, unix:// or sentinel://");
    UriUriA u;
    const char *error_at = NULL;
    if (uriParseSingleUriA(&u, url, &error_at) != URI_SUCCESS)
        return bty_error_set(err, 400,
                             "cannot parse the Redis URL (percent-encode any of @ : / ? # in "
                             "the user or password)");
    int rc = -1;
    char port[16], db[16] = "";
    const UriPathSegmentA *segment = u.pathHead;
    if (segment &&
        (segment->next || url_part(segment->text.first, segment->text.afterLast, db, sizeof(db)))) {
        bty_error_set(err, 400, "bad database number in the Redis URL");
        goto done;
    }
    /* user:password, each decoded on its own: a ':' may be encoded in either. */
    const char *colon = u.userInfo.first ? memchr(u.userInfo.first, ':',
                                                  (size_t)(u.userInfo.afterLast - u.userInfo.first))
                                         : NULL;
    if (url_part(u.userInfo.first, colon ? colon : u.userInfo.afterLast, out->user,
                 sizeof(out->user)) ||
        url_part(colon ? colon + 1 : NULL, u.userInfo.afterLast, out->password,
                 sizeof(out->password)) ||
        url_part(u.hostText.first, u.hostText.afterLast, out->host, sizeof(out->host)) ||
        url_part(u.portText.first, u.portText.afterLast, port, sizeof(port))) {
        bty_error_set(err, 400, "cannot parse the Redis URL");
        goto done;
    }
    if (!out->host[0])
        strcpy(out->host, "127.0.0.1");
    out->port = 6379;
    if (port[0] && parse_int(port, 1, 65535, &out->port)) {
        bty_error_set(err, 400, "bad port in the Redis URL");
        goto done;
    }
    if (db[0] && parse_int(db, 0, 1000000, &out->db)) {
        bty_error_set(err, 400, "bad database number in the Redis URL");
        goto done;
    }
    rc = 0;
done:
    uriFreeUriMembersA(&u);
    return rc;
}

static int env_problem(char *problem, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Keep the first problem with the environment for later; returns -1. */
static int env_problem(char *problem, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, size, fmt, ap);
    va_end(ap);
    return -1;
}

/* Apply the BATCHY_* variables (and REDIS_URL) over the defaults. 0, or -1
 * at the first bad one, with the usage error it makes in problem. */
static int options_from_env(bty_options *opts, char *problem, size_t size)
{
    const char *v;
    if ((v = getenv("BATCHY_LISTEN")) && v[0] && parse_listen(v, opts))
        return env_problem(problem, size, "BATCHY_LISTEN must be HOST:PORT, not '%s'", v);
    if (((v = getenv("BATCHY_REDIS_URL")) && v[0]) || ((v = getenv("REDIS_URL")) && v[0]))
        if (copy_bounded(opts->redis_url, sizeof(opts->redis_url), v))
            return env_problem(problem, size, "%s", "Redis URL too long");
    if ((v = getenv("BATCHY_CFG_DIR")) && v[0] &&
        copy_bounded(opts->cfg_dir, sizeof(opts->cfg_dir), v))
        return env_problem(problem, size, "%s", "BATCHY_CFG_DIR too long");
    if ((v = getenv("BATCHY_THREADS")) && v[0] && parse_int(v, 1, 256, &opts->threads))
        return env_problem(problem, size, "BATCHY_THREADS must be 1-256, not '%s'", v);
    if ((v = getenv("BATCHY_TOKEN")) && copy_bounded(opts->token, sizeof(opts->token), v))
        return env_problem(problem, size, "%s", "BATCHY_TOKEN too long (255 bytes at most)");
    if ((v = getenv("BATCHY_REDIS_TIMEOUT_MS")) && v[0] &&
        parse_int(v, 10, 600000, &opts->redis_timeout_ms))
        return env_problem(problem, size, "BATCHY_REDIS_TIMEOUT_MS must be 10-600000, not '%s'", v);
    if ((v = getenv("BATCHY_CLIENT_TIMEOUT")) && v[0] &&
        parse_int(v, 1, 3600, &opts->client_timeout_s))
        return env_problem(problem, size, "BATCHY_CLIENT_TIMEOUT must be 1-3600 seconds, not '%s'",
                           v);
    if ((v = getenv("BATCHY_MAX_CONNECTIONS")) && v[0] &&
        parse_int(v, 1, 100000, &opts->max_connections))
        return env_problem(problem, size, "BATCHY_MAX_CONNECTIONS must be 1-100000, not '%s'", v);
    int keep;
    if ((v = getenv("BATCHY_KEEP_BATCHES")) && v[0]) {
        if (parse_int(v, 0, 100000000, &keep))
            return env_problem(problem, size,
                               "BATCHY_KEEP_BATCHES must be 0 (keep all) to 100000000, not '%s'",
                               v);
        opts->keep_batches = keep;
    }
    if ((v = getenv("BATCHY_METRICS_STEPS")) && v[0] && on_off(v, &opts->metrics_steps))
        return env_problem(problem, size, "BATCHY_METRICS_STEPS must be on or off, not '%s'", v);
    if ((v = getenv("BATCHY_MIN_REPLICAS")) && v[0] && parse_int(v, 0, 100, &opts->min_replicas))
        return env_problem(problem, size, "BATCHY_MIN_REPLICAS must be 0-100, not '%s'", v);
    if ((v = getenv("BATCHY_REPLICA_TIMEOUT")) && v[0] &&
        parse_int(v, 1, 60000, &opts->replica_timeout_ms))
        return env_problem(problem, size, "BATCHY_REPLICA_TIMEOUT must be 1-60000 ms, not '%s'", v);
    if ((v = getenv("BATCHY_READ_CACHE_MB")) && v[0] &&
        parse_int(v, 0, 1000000, &opts->read_cache_mb))
        return env_problem(problem, size, "BATCHY_READ_CACHE_MB must be 0-1000000, not '%s'", v);
    if ((v = getenv("BATCHY_UI_DIR")) && copy_bounded(opts->ui_dir, sizeof(opts->ui_dir), v))
        return env_problem(problem, size, "%s", "BATCHY_UI_DIR too long");
    return 0;
}

int options_parse(int argc, char **argv, bty_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    strcpy(opts->listen_host, "127.0.0.1");
    opts->listen_port = 5000;
    strcpy(opts->redis_url, "redis://127.0.0.1:6379/0");
    strcpy(opts->cfg_dir, "./cfg");
    /* One per core, as SPEC section 6 says. A worker waits for Redis on
     * every request, so busy services gain from more: the README's
     * Performance section measures --threads at 4 per core. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    opts->threads = cores > 0 && cores < 256 ? (int)cores : 2;
    opts->redis_timeout_ms = 2000;
    opts->client_timeout_s = 30;
    opts->max_connections = 1000;
    opts->keep_batches = 1000;
    opts->metrics_steps = 1;
    opts->replica_timeout_ms = 1000;
    opts->read_cache_mb = 64;

    /* Judged once argv is read: --help, --version and --check ignore it. */
    char problem[1200] = "";
    options_from_env(opts, problem, sizeof(problem));

    /* clang-format off */
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"redis", required_argument, NULL, 'r'},
        {"cfg-dir", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"token", required_argument, NULL, 'T'},
        {"keep-batches", required_argument, NULL, 'K'},
        {"metrics-steps", required_argument, NULL, 'M'},
        {"ui-dir", required_argument, NULL, 'U'},
        {"read-cache-mb", required_argument, NULL, 'G'},
        {"min-replicas", required_argument, NULL, 'R'},
        {"replica-timeout", required_argument, NULL, 'W'},
        {"quiet", no_argument, NULL, 'q'},
        {"check", no_argument, NULL, 'C'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* clang-format on */
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":l:r:c:t:qVh", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (parse_listen(optarg, opts))
                return usage_error("--listen must be HOST:PORT, not '%s'", optarg);
            break;
        case 'r':
            if (copy_bounded(opts->redis_url, sizeof(opts->redis_url), optarg))
                return usage_error("%s", "--redis URL too long");
            break;
        case 'c':
            if (copy_bounded(opts->cfg_dir, sizeof(opts->cfg_dir), optarg))
                return usage_error("%s", "--cfg-dir too long");
            break;
        case 't':
            if (parse_int(optarg, 1, 256, &opts->threads))
                return usage_error("--threads must be 1-256, not '%s'", optarg);
            break;
        case 'T':
            if (copy_bounded(opts->token, sizeof(opts->token), optarg))
                return usage_error("%s", "--token too long (255 bytes at most)");
            break;
        case 'K': {
            int keep;
            if (parse_int(optarg, 0, 100000000, &keep))
                return usage_error("--keep-batches must be 0 (keep all) to 100000000, not '%s'",
                                   optarg);
            opts->keep_batches = keep;
            break;
        }
        case 'M':
            if (on_off(optarg, &opts->metrics_steps))
                return usage_error("--metrics-steps must be on or off, not '%s'", optarg);
            break;
        case 'R':
            if (parse_int(optarg, 0, 100, &opts->min_replicas))
                return usage_error("--min-replicas must be 0-100, not '%s'", optarg);
            break;
        case 'W':
            if (parse_int(optarg, 1, 60000, &opts->replica_timeout_ms))
                return usage_error("--replica-timeout must be 1-60000 ms, not '%s'", optarg);
            break;
        case 'G':
            if (parse_int(optarg, 0, 1000000, &opts->read_cache_mb))
                return usage_error("--read-cache-mb must be 0-1000000, not '%s'", optarg);
            break;
        case 'U':
            if (copy_bounded(opts->ui_dir, sizeof(opts->ui_dir), optarg))
                return usage_error("%s", "--ui-dir too long");
            break;
        case 'q':
            opts->quiet = 1;
            break;
        case 'C':
            opts->check = 1;
            break;
        case 'V':
            printf("batchy %s\n", BATCHY_VERSION);
            return 0;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (opts->check) {
        /* Files, offline: nothing else of the command line or the
         * environment matters. */
        if (optind == argc)
            return usage_error("%s", "--check needs at least one FILE");
        opts->check_files = argv + optind;
        opts->check_count = argc - optind;
        return -1;
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (problem[0])
        return usage_error("%s", problem);

    bty_error err = {0};
    if (options_parse_redis_url(opts->redis_url, &opts->redis, &err))
        return usage_error("%s", err.message);
    key_changes_channel(opts->changes_channel, opts->redis.db);
    return -1;
}
