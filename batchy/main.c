/*
 * main.c - start and stop. Parse options, block the stop signals (so every
 * thread inherits the mask and only main sees them), start the store's
 * thread and the HTTP server, wait for SIGINT or SIGTERM, stop cleanly
 * (stop accepting, answer what is in flight, stop the store, then HTTP)
 * and exit 0; or, with --check, validate files and exit (cfgfile.c)
 * before any of that. Also the shell's wall clock, clock_now.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include "shell.h"

/* The shell's one wall clock: the pure core is given `now`, never reads it. */
bty_time clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (bty_time){ts.tv_sec, (int32_t)(ts.tv_nsec / 1000)};
}

int main(int argc, char **argv)
{
    bty_options opts;
    int rc = options_parse(argc, argv, &opts);
    if (rc >= 0)
        return rc;
    if (opts.check)
        return cfg_check_files(opts.check_files, opts.check_count);
    metrics_start();

    /* A write to a Redis that went away must be an error, not a kill. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    reads_setup((size_t)opts.read_cache_mb << 20);
    if (store_start(&opts.redis, opts.redis_timeout_ms, opts.min_replicas,
                    opts.replica_timeout_ms) != 0 ||
        notice_start(&opts.redis, opts.redis_timeout_ms) != 0) {
        fprintf(stderr, "batchy: cannot start a thread\n");
        store_stop();
        return 1;
    }
    void *server = http_start(&opts);
    if (!server) {
        notice_stop();
        store_stop();
        return 1;
    }
    if (opts.redis.is_sentinel)
        fprintf(stderr,
                "batchy %s listening on %s:%d, Redis master '%s' from %d sentinel%s db %d, cfg in "
                "%s, %d threads\n",
                BATCHY_VERSION, opts.listen_host, opts.listen_port, opts.redis.master,
                opts.redis.nsentinels, opts.redis.nsentinels == 1 ? "" : "s", opts.redis.db,
                opts.cfg_dir, opts.threads);
    else if (opts.redis.is_unix)
        fprintf(stderr,
                "batchy %s listening on %s:%d, Redis at unix:%s db %d, cfg in %s, %d threads\n",
                BATCHY_VERSION, opts.listen_host, opts.listen_port, opts.redis.path, opts.redis.db,
                opts.cfg_dir, opts.threads);
    else
        fprintf(stderr,
                "batchy %s listening on %s:%d, Redis at %s:%d db %d, cfg in %s, %d threads\n",
                BATCHY_VERSION, opts.listen_host, opts.listen_port, opts.redis.host,
                opts.redis.port, opts.redis.db, opts.cfg_dir, opts.threads);

    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "batchy: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_drain(server);
    notice_stop();
    store_stop();
    http_stop(server);
    cache_clear();
    rows_stop();
    reads_stop();
    return 0;
}
