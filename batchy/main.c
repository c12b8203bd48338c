/*
 * main.c - start and stop. Parse options, block the stop signals (so every
 * worker thread inherits the mask and only main sees them), start the HTTP
 * server, wait for SIGINT or SIGTERM, stop cleanly and exit 0.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include "shell.h"

int main(int argc, char **argv)
{
    bty_options opts;
    int rc = options_parse(argc, argv, &opts);
    if (rc >= 0)
        return rc;

    /* A write to a Redis that went away must be an error, not a kill. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    store_init(&opts.redis, opts.redis_timeout_ms);
    void *server = http_start(&opts);
    if (!server)
        return 1;
    if (opts.redis.is_unix)
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
    http_stop(server);
    return 0;
}
