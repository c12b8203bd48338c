/*
 * run.h - batchy-run (SPEC section 13): run a job as a step of a workflow.
 * It finds the step's open batch (or opens it, --open), exports its
 * window and parameters, runs the command, and records the outcome:
 * close_batch on exit 0, fail_batch with the exit status and the tail of
 * the command's stderr otherwise, always naming the batch (batch_id=), so
 * that yesterday's job cannot close today's batch. Built with Waitsy: the
 * same HTTP client (fetch.c) and pure core.
 *
 *   pure (unit-tested): runargs.c  command line, the failure's message
 *   shell:              runmain.c  the calls, the child, signals, retries
 */
#ifndef BATCHY_RUN_H
#define BATCHY_RUN_H

#include <stddef.h>

#include "waitsy.h"

/* Exit statuses besides the command's own (0-255, 128+N for signal N). */
enum {
    WR_EXIT_NOT_OPEN = 65,    /* the step is not open (and no --open), or no such step */
    WR_EXIT_UNREACHABLE = 69, /* Batchy did not answer at the start, within --timeout */
    WR_EXIT_UNRECORDED = 75,  /* the outcome could not be recorded (see the message) */
    WR_EXIT_USAGE = 64,
    WR_EXIT_INTERNAL = 70,
    WR_EXIT_CANNOT_EXEC = 126,
    WR_EXIT_NOT_FOUND = 127,
};

#define WR_TAIL_BYTES  4096 /* of the command's stderr, kept for the message */
#define WR_ERROR_BYTES 1000 /* the error= sent to fail_batch, at most */

typedef struct wr_options {
    const char *url;   /* Batchy's base URL */
    const char *token; /* NULL: none */
    const char *workflow;
    const char *step;
    int open;              /* --open: open the step first */
    double timeout;        /* waiting for Batchy at the start, seconds */
    double report_timeout; /* retrying the close or fail at the end, seconds */
    char *const *command;  /* argv of the command, NULL-terminated */
    int help, version;
} wr_options;

/* Parse argv (argv[0] is the program); env_url and env_token are
 * BATCHY_URL and BATCHY_TOKEN (NULL when unset). 0, or -1 with why. */
int wr_parse_args(int argc, char *const argv[], const char *env_url, const char *env_token,
                  wr_options *out, char *why, size_t why_len);

extern const char wr_help_text[];

/* The error= of fail_batch for a command that exited with `code`
 * (signal: killed by that signal), from the tail of its stderr (len
 * bytes): "exit 3: <its last lines>" or "signal 15 (SIGTERM): ...", the
 * lines joined by " | ", control characters removed, at most
 * WR_ERROR_BYTES bytes (out holds WR_ERROR_BYTES + 1), cut on a UTF-8
 * character boundary, the newest lines kept. */
void wr_failure_text(int code, int signal, const char *tail, size_t len, char *out);

#endif
