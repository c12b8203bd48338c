/*
 * runargs.c - batchy-run's command line and the message of a failure.
 * Pure: no I/O, no clock.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"

const char wr_help_text[] =
    "Usage: batchy-run -wf WF --step STEP [--open] [options] -- command [args...]\n"
    "Runs a job as step STEP of workflow WF: finds the step's open batch (or opens\n"
    "it, --open), exports its window and parameters, runs the command, and records\n"
    "the outcome in Batchy: close_batch on exit 0, fail_batch with the exit status\n"
    "and the last lines of the command's stderr otherwise. Exits with the command's\n"
    "status.\n"
    "\n"
    "  -wf, --workflow WF      the workflow\n"
    "  --step STEP             the step the command is\n"
    "  --open                  open the step first (open_batch?step=STEP); without it\n"
    "                          the step must be open already\n"
    "  --url URL               Batchy's base URL (BATCHY_URL; http://127.0.0.1:5000)\n"
    "  --token TOKEN           bearer token for Batchy (BATCHY_TOKEN)\n"
    "  --timeout SECONDS       how long to wait for Batchy at the start (600)\n"
    "  --report-timeout SECONDS  how long to retry recording the outcome (600)\n"
    "  -h, --help              print this help and exit\n"
    "  -V, --version           print the version and exit\n"
    "\n"
    "The command sees BATCHY_WORKFLOW, BATCHY_STEP, BATCHY_BATCH_ID,\n"
    "BATCHY_FROM_DATE, BATCHY_TO_DATE and BATCHY_<STEP>_<PARAM> for each of the\n"
    "step's fields, as open_batch's sh format names them. Its stdin and stdout\n"
    "are batchy-run's; its stderr is passed through as it comes; SIGINT, SIGTERM,\n"
    "SIGHUP and SIGQUIT are passed on to it.\n"
    "\n"
    "Exit status: the command's (128+N when signal N ended it); 64 bad command\n"
    "line; 65 the step is not open, or no such workflow or step; 69 Batchy did\n"
    "not answer at the start within --timeout (the command did not run); 75 the\n"
    "command ran but its outcome could not be recorded (said on stderr); 126,\n"
    "127 the command cannot be run or is not found.\n"
    "\n"
    "Example: batchy-run -wf sales_daily --step load_marts -- ./load_marts.sh\n";

static int parse_seconds(const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || !(v >= 0) || v > WZ_MAX_TIMEOUT)
        return -1;
    *out = v;
    return 0;
}

int wr_parse_args(int argc, char *const argv[], const char *env_url, const char *env_token,
                  wr_options *o, char *why, size_t why_len)
{
    memset(o, 0, sizeof(*o));
    o->url = env_url && env_url[0] ? env_url : "http://127.0.0.1:5000";
    o->token = env_token && env_token[0] ? env_token : NULL;
    o->timeout = 600;
    o->report_timeout = 600;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            o->help = 1;
            return 0;
        }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            o->version = 1;
            return 0;
        }
        if (strcmp(a, "--open") == 0) {
            o->open = 1;
            continue;
        }
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        const char **slot = NULL;
        double *seconds = NULL;
        if (strcmp(a, "-wf") == 0 || strcmp(a, "--workflow") == 0)
            slot = &o->workflow;
        else if (strcmp(a, "--step") == 0)
            slot = &o->step;
        else if (strcmp(a, "--url") == 0)
            slot = &o->url;
        else if (strcmp(a, "--token") == 0)
            slot = &o->token;
        else if (strcmp(a, "--timeout") == 0)
            seconds = &o->timeout;
        else if (strcmp(a, "--report-timeout") == 0)
            seconds = &o->report_timeout;
        else
            return wz_why(why, why_len, "unknown option '%.100s' (the command goes after --)", a);
        if (!value)
            return wz_why(why, why_len, "%s needs a value", a);
        if (slot)
            *slot = value;
        else if (parse_seconds(value, seconds) != 0)
            return wz_why(why, why_len, "%s must be a number of seconds, not '%.40s'", a, value);
        i++;
    }
    if (!o->workflow)
        return wz_why(why, why_len, "-wf WF is needed");
    if (!o->step)
        return wz_why(why, why_len, "--step STEP is needed");
    bty_error err = {0};
    if (name_workflow_check(o->workflow, &err) != 0)
        return wz_why(why, why_len, "%s", err.message);
    if (name_step_check(o->step, &err) != 0)
        return wz_why(why, why_len, "%s", err.message);
    if (strlen(o->url) > WZ_MAX_URL)
        return wz_why(why, why_len, "--url is too long");
    if (o->token && strlen(o->token) > WZ_MAX_TOKEN)
        return wz_why(why, why_len, "--token is too long");
    if (i >= argc)
        return wz_why(why, why_len, "no command: give it after --");
    o->command = argv + i;
    return 0;
}

/* The name of signal sig, or NULL. */
static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGHUP:
        return "SIGHUP";
    case SIGINT:
        return "SIGINT";
    case SIGQUIT:
        return "SIGQUIT";
    case SIGKILL:
        return "SIGKILL";
    case SIGSEGV:
        return "SIGSEGV";
    case SIGABRT:
        return "SIGABRT";
    case SIGTERM:
        return "SIGTERM";
    case SIGPIPE:
        return "SIGPIPE";
    default:
        return NULL;
    }
}

void wr_failure_text(int code, int sig, const char *tail, size_t len, char *out)
{
    char head[64];
    const char *name = sig ? signal_name(sig) : NULL;
    if (sig)
        snprintf(head, sizeof(head), name ? "signal %d (%s)" : "signal %d", sig, name);
    else
        snprintf(head, sizeof(head), "exit %d", code);
    /* The tail's lines, newest kept: walk back from the end until the
     * message is full, then start at a character boundary. */
    while (len && (tail[len - 1] == '\n' || tail[len - 1] == '\r'))
        len--;
    size_t room = WR_ERROR_BYTES - strlen(head) - 5; /* ": " and "..." */
    /* clean copy: control characters removed, newlines as " | " */
    char clean[WR_TAIL_BYTES * 3 + 1];
    size_t c = 0;
    for (size_t i = 0; i < len && i < WR_TAIL_BYTES && c + 3 < sizeof(clean); i++) {
        unsigned char ch = (unsigned char)tail[len > WR_TAIL_BYTES ? len - WR_TAIL_BYTES + i : i];
        if (ch == '\n') {
            if (c && clean[c - 1] != ' ')
                clean[c++] = ' ';
            clean[c++] = '|';
            clean[c++] = ' ';
        } else if (ch < 0x20 || ch == 0x7f) {
            if (ch == '\t')
                clean[c++] = ' ';
        } else {
            clean[c++] = (char)ch;
        }
    }
    clean[c] = '\0';
    size_t from = c > room ? c - room : 0;
    while (from < c && ((unsigned char)clean[from] & 0xC0) == 0x80)
        from++; /* not in the middle of a character */
    size_t n = strlen(head);
    memcpy(out, head, n);
    if (from < c) {
        memcpy(out + n, from ? ": ..." : ": ", from ? 5 : 2);
        n += from ? 5 : 2;
        memcpy(out + n, clean + from, c - from);
        n += c - from;
    }
    out[n] = '\0';
}
