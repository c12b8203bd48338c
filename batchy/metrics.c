/*
 * metrics.c - GET /metrics: what Batchy counts, in Prometheus' text format
 * (version 0.0.4), named by Prometheus' conventions (base units, _total
 * for counters, _seconds, _bytes).
 *
 * Counting never slows a request: every counter is a relaxed atomic that a
 * worker (or the store thread) adds to without a lock; a scrape reads them
 * as they are, each on its own (a scrape is not a snapshot of one instant,
 * which Prometheus does not ask for). What is read at scrape time (the
 * process' CPU, memory and descriptors, held requests) is read then.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "shell.h"

/* The statuses counted by their own label; any other counts as "other". */
static const int STATUSES[] = {200, 304, 400, 401, 404, 405, 409, 413, 414, 415, 422, 500, 503};
#define NSTATUS ((int)(sizeof(STATUSES) / sizeof(STATUSES[0])) + 1)

/* Histogram bounds, in seconds: from a cached read to a slow client. */
static const double BOUNDS[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
#define NBOUND ((int)(sizeof(BOUNDS) / sizeof(BOUNDS[0])))

typedef struct histogram {
    atomic_ulong buckets[NBOUND + 1]; /* the last: above every bound */
    atomic_ulong count;
    atomic_ulong sum_us;
} histogram;

/* Endpoints by their index in the endpoint table; EP_COUNT: no endpoint
 * (routing refused the request). */
static struct {
    atomic_ulong requests[EP_COUNT + 1][NSTATUS];
    histogram latency[EP_COUNT + 1];
    histogram redis_rtt;
    atomic_ulong redis_errors, redis_connects;
    atomic_int redis_up;
    double start_time;
} m;

static const char *endpoint_name(int ep)
{
    static const char *const names[] = {
#define METRICS_NAME(id, name, ...) name,
        BTY_ENDPOINTS(METRICS_NAME)
#undef METRICS_NAME
    };
    return ep >= 0 && ep < EP_COUNT ? names[ep] : "none";
}

static void observe(histogram *h, long long us)
{
    double s = (double)us / 1e6;
    int i = 0;
    while (i < NBOUND && s > BOUNDS[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (unsigned long)(us > 0 ? us : 0), memory_order_relaxed);
}

void metrics_start(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m.start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void metrics_request(int endpoint, int status, long long us, int timed)
{
    if (endpoint < 0 || endpoint > EP_COUNT)
        endpoint = EP_COUNT;
    int s = 0;
    while (s < NSTATUS - 1 && STATUSES[s] != status)
        s++;
    atomic_fetch_add_explicit(&m.requests[endpoint][s], 1, memory_order_relaxed);
    if (timed)
        observe(&m.latency[endpoint], us);
}

void metrics_redis_round_trip(long long us)
{
    observe(&m.redis_rtt, us);
}

void metrics_redis_error(void)
{
    atomic_fetch_add_explicit(&m.redis_errors, 1, memory_order_relaxed);
}

void metrics_redis_connected(int up)
{
    atomic_store_explicit(&m.redis_up, up, memory_order_relaxed);
    if (up)
        atomic_fetch_add_explicit(&m.redis_connects, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------------ rendering */

typedef struct text {
    char *s;
    size_t len, cap;
    int failed;
} text;

__attribute__((format(printf, 2, 3))) static void put(text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap + (size_t)n + 1) * 2;
        char *grown = realloc(t->s, cap);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->s = grown;
        t->cap = cap;
    }
}

static void put_histogram(text *t, const char *name, const char *labels, const histogram *h)
{
    unsigned long cumulative = 0;
    for (int i = 0; i <= NBOUND; i++) {
        cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < NBOUND)
            put(t, "%s_bucket{%s%sle=\"%g\"} %lu\n", name, labels, labels[0] ? "," : "", BOUNDS[i],
                cumulative);
        else
            put(t, "%s_bucket{%s%sle=\"+Inf\"} %lu\n", name, labels, labels[0] ? "," : "",
                cumulative);
    }
    const char *open = labels[0] ? "{" : "", *close = labels[0] ? "}" : "";
    put(t, "%s_sum%s%s%s %.6f\n", name, open, labels, close,
        (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
    /* The count as the +Inf bucket says, so that the two agree even while
     * requests are counted during the scrape. */
    put(t, "%s_count%s%s%s %lu\n", name, open, labels, close, cumulative);
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    /* cppcheck-suppress readdirCalled ; thread-safe on a DIR of its own (glibc); readdir_r is
     * deprecated */
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the one opendir holds */
}

static long long resident_bytes(void)
{
    /* "size resident shared ...", in pages */
    FILE *f = fopen("/proc/self/statm", "re");
    char line[256];
    int ok = f && fgets(line, sizeof(line), f);
    if (f)
        fclose(f);
    char *end = NULL;
    long long resident = -1;
    if (ok) {
        strtoll(line, &end, 10);
        resident = end && *end == ' ' ? strtoll(end + 1, &end, 10) : -1;
    }
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

static void put_process(text *t)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        put(t,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.6f\n",
            cpu);
    }
    long long rss = resident_bytes();
    if (rss >= 0)
        put(t,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %lld\n",
            rss);
    int fds = open_fds();
    if (fds >= 0)
        put(t,
            "# HELP process_open_fds Number of open file descriptors.\n"
            "# TYPE process_open_fds gauge\nprocess_open_fds %d\n",
            fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        put(t,
            "# HELP process_max_fds Maximum number of open file descriptors.\n"
            "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
            (unsigned long long)rl.rlim_cur);
    put(t,
        "# HELP process_start_time_seconds Start time of the process since unix epoch in "
        "seconds.\n"
        "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n",
        m.start_time);
}

char *metrics_render(void)
{
    text t = {0};
    put_process(&t);

    put(&t,
        "# HELP batchy_build_info Batchy's version (always 1).\n"
        "# TYPE batchy_build_info gauge\nbatchy_build_info{version=\"" BATCHY_VERSION "\"} 1\n");
    put(&t, "# HELP batchy_http_requests_total HTTP requests answered, by endpoint and status "
            "(\"other\": a status not listed on its own).\n"
            "# TYPE batchy_http_requests_total counter\n");
    for (int ep = 0; ep <= EP_COUNT; ep++)
        for (int s = 0; s < NSTATUS; s++) {
            unsigned long n = atomic_load_explicit(&m.requests[ep][s], memory_order_relaxed);
            if (!n)
                continue;
            if (s < NSTATUS - 1)
                put(&t, "batchy_http_requests_total{endpoint=\"%s\",status=\"%d\"} %lu\n",
                    endpoint_name(ep), STATUSES[s], n);
            else
                put(&t, "batchy_http_requests_total{endpoint=\"%s\",status=\"other\"} %lu\n",
                    endpoint_name(ep), n);
        }
    put(&t, "# HELP batchy_http_request_duration_seconds Time from a request's arrival to its "
            "answer, by endpoint; held requests and event streams are not timed.\n"
            "# TYPE batchy_http_request_duration_seconds histogram\n");
    for (int ep = 0; ep <= EP_COUNT; ep++) {
        if (!atomic_load_explicit(&m.latency[ep].count, memory_order_relaxed))
            continue;
        char labels[64];
        snprintf(labels, sizeof(labels), "endpoint=\"%s\"", endpoint_name(ep));
        put_histogram(&t, "batchy_http_request_duration_seconds", labels, &m.latency[ep]);
    }

    put(&t,
        "# HELP batchy_redis_up 1 while Batchy's connection to Redis is up.\n"
        "# TYPE batchy_redis_up gauge\nbatchy_redis_up %d\n",
        atomic_load_explicit(&m.redis_up, memory_order_relaxed));
    put(&t,
        "# HELP batchy_redis_connects_total Connections made to Redis (more than one: "
        "reconnections).\n"
        "# TYPE batchy_redis_connects_total counter\nbatchy_redis_connects_total %lu\n",
        atomic_load_explicit(&m.redis_connects, memory_order_relaxed));
    put(&t,
        "# HELP batchy_redis_errors_total Calls to Redis that failed: unreachable, timed out, "
        "the connection lost.\n"
        "# TYPE batchy_redis_errors_total counter\nbatchy_redis_errors_total %lu\n",
        atomic_load_explicit(&m.redis_errors, memory_order_relaxed));
    put(&t, "# HELP batchy_redis_round_trip_seconds Time from sending a call to Redis to its "
            "last reply.\n"
            "# TYPE batchy_redis_round_trip_seconds histogram\n");
    put_histogram(&t, "batchy_redis_round_trip_seconds", "", &m.redis_rtt);
    put(&t,
        "# HELP batchy_redis_notices_up 1 while the connection that receives change notices "
        "is up.\n"
        "# TYPE batchy_redis_notices_up gauge\nbatchy_redis_notices_up %d\n",
        notice_subscribed());

    size_t held, streams;
    hold_counts(&held, &streams);
    put(&t,
        "# HELP batchy_held_requests get_status requests held until their workflow changes.\n"
        "# TYPE batchy_held_requests gauge\nbatchy_held_requests %zu\n"
        "# HELP batchy_event_streams Open /events streams.\n"
        "# TYPE batchy_event_streams gauge\nbatchy_event_streams %zu\n",
        held, streams);
    size_t kept, kept_bytes;
    reads_counts(&kept, &kept_bytes);
    put(&t,
        "# HELP batchy_read_cache_entries get_status answers kept in memory "
        "(--read-cache-mb).\n"
        "# TYPE batchy_read_cache_entries gauge\nbatchy_read_cache_entries %zu\n"
        "# HELP batchy_read_cache_bytes Memory those answers take.\n"
        "# TYPE batchy_read_cache_bytes gauge\nbatchy_read_cache_bytes %zu\n",
        kept, kept_bytes);
    if (t.failed) {
        free(t.s);
        return NULL;
    }
    return t.s;
}
