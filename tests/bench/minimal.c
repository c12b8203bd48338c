/*
 * minimal.c - the HTTP baseline of the benchmark: a libmicrohttpd server
 * that answers every request with the same 200-byte body, started with
 * batchy's own daemon flags and thread pool, and libmicrohttpd's default
 * per-connection memory. What it reaches is the most a libmicrohttpd
 * service can reach on this machine with this load generator; batchy's
 * figures are shown as ratios of it.
 *
 *   minimal PORT THREADS
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#define BODY_LEN 200

static char body[BODY_LEN + 1];

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    /* Like batchy, answer once the whole request is in. */
    if (*req_cls == NULL) {
        *req_cls = body;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(BODY_LEN, body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* A whole decimal number from 1 to max, or 0 when the text is not one. */
static long number(const char *text, long max)
{
    char *end;
    long n = strtol(text, &end, 10);
    return end != text && *end == '\0' && n >= 1 && n <= max ? n : 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: minimal PORT THREADS\n");
        return 64;
    }
    /* THREADS as batchy's --threads takes it. */
    int port = (int)number(argv[1], 65535);
    unsigned threads = (unsigned)number(argv[2], 256);
    if (!port || !threads) {
        fprintf(stderr, "minimal: PORT must be 1-65535 and THREADS 1-256\n");
        return 64;
    }
    /* A JSON object of exactly 200 bytes. */
    memset(body, ' ', BODY_LEN);
    memcpy(body, "{\"status\":\"ok\"", 14);
    body[BODY_LEN - 2] = '}';
    body[BODY_LEN - 1] = '\n';

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, NULL);

    /* Loopback only, like batchy by default. */
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL,
        NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_CONNECTION_LIMIT, 1000u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
        threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "minimal: cannot listen on port %d\n", port);
        return 1;
    }
    int sig;
    sigwait(&stop, &sig);
    MHD_stop_daemon(d);
    return 0;
}
