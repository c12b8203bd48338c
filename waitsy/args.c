/*
 * args.c - Waitsy's command line (SPEC section 7).
 *
 * Hand-written rather than getopt_long_only: the original's single-dash
 * `-wf` must work beside GNU-style `--step a,b` and `--url=...`, everything
 * after `--` is the command (never reordered), and a usage error must say
 * precisely which argument is wrong. Pure: the environment comes in as
 * arguments.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waitsy.h"

const char wz_help_text[] =
    "Usage: waitsy -wf WORKFLOW [-wf WORKFLOW ...] [options] [-- COMMAND [ARGS...]]\n"
    "\n"
    "Wait until every step of every named workflow has succeeded on the target\n"
    "day (today by default), then exit 0, or run COMMAND and exit with its\n"
    "status. A step has succeeded on the day when its latest record in Batchy's\n"
    "get_status, or any of its batches kept in Batchy's history, has status\n"
    "\"success\" and batch_end on that day.\n"
    "\n"
    "Options:\n"
    "  -wf, --workflow NAME   workflow to wait for; repeat for several\n"
    "                           waitsy -wf sales_daily -wf crm_daily\n"
    "  --step NAME[,NAME]     wait only for these steps (of every workflow)\n"
    "                           waitsy -wf wf1 --step load_orders,load_customers\n"
    "  --url URL              Batchy's base URL, a path prefix allowed\n"
    "                         (default: $BATCHY_URL, else " WZ_DEFAULT_URL ")\n"
    "                           waitsy -wf wf1 --url https://etl.example.com/batchy\n"
    "  --date YYYY-MM-DD      the day whose success counts (default: the day\n"
    "                         waitsy starts)\n"
    "                           waitsy -wf wf1 --date 2026-11-22 --once\n"
    "  --local                today and batch_end in the local time zone (TZ)\n"
    "                         instead of UTC\n"
    "                           TZ=Europe/Paris waitsy -wf wf1 --local\n"
    "  --interval SECONDS     longest time between polls (default 10); Batchy\n"
    "                         wakes waitsy sooner when a workflow changes\n"
    "                           waitsy -wf wf1 --interval 60\n"
    "  --timeout SECONDS      give up after this long, exit 2 (default: never)\n"
    "                           waitsy -wf wf1 --timeout 7200\n"
    "  --fail-fast            exit 1 at once when an awaited step failed on\n"
    "                         the target day\n"
    "                           waitsy -wf wf1 --fail-fast -- ./next_job.sh\n"
    "  --once                 check once: exit 0 if ready, else 3\n"
    "                           if waitsy -wf wf1 --once -q; then echo ready; fi\n"
    "  --token TOKEN          bearer token sent to Batchy (default: $BATCHY_TOKEN;\n"
    "                         prefer the variable, a command line is visible in ps)\n"
    "  -q, --quiet            print only errors (to stderr); nothing on stdout\n"
    "  -v, --verbose          also print each request: status, size, time (stderr)\n"
    "  -h, --help             show this help\n"
    "  --version              show the version\n"
    "\n"
    "Exit status:\n"
    "  0    ready (with -- COMMAND: the command's own exit status)\n"
    "  1    an awaited step failed on the target day (--fail-fast)\n"
    "  2    timed out (--timeout)\n"
    "  3    not ready (--once)\n"
    "  4    unknown workflow or step\n"
    "  64   usage error, or a URL or token that Batchy refuses\n"
    "  70   internal error (out of memory)\n"
    "  126, 127  COMMAND could not be run, or was not found\n"
    "  130, 143  interrupted by SIGINT or SIGTERM\n"
    "\n"
    "Between polls, waitsy waits on a held get_status of the first workflow\n"
    "not ready, which Batchy answers as soon as that workflow changes; against\n"
    "a server without ETags it sleeps for the interval.\n"
    "\n"
    "Batchy unreachable or answering 5xx is reported and retried, waiting\n"
    "1 s, then twice as long each time, up to the interval.\n"
    "\n"
    "Examples:\n"
    "  waitsy -wf wf1 && ./next_job.sh\n"
    "  waitsy -wf sales_daily -wf crm_daily --timeout 7200 -- ./build_marts.sh\n";

enum opt_id {
    OPT_WORKFLOW,
    OPT_STEP,
    OPT_URL,
    OPT_DATE,
    OPT_LOCAL,
    OPT_INTERVAL,
    OPT_TIMEOUT,
    OPT_FAIL_FAST,
    OPT_ONCE,
    OPT_TOKEN,
    OPT_QUIET,
    OPT_VERBOSE,
    OPT_HELP,
    OPT_VERSION,
};

/* One row per option: every spelling, and whether it takes a value. */
static const struct opt_row {
    const char *names[3];
    enum opt_id id;
    int takes_value;
} opt_table[] = {
    {{"-wf", "--workflow", "--wf"}, OPT_WORKFLOW, 1},
    {{"--step"}, OPT_STEP, 1},
    {{"--url"}, OPT_URL, 1},
    {{"--date"}, OPT_DATE, 1},
    {{"--local"}, OPT_LOCAL, 0},
    {{"--interval"}, OPT_INTERVAL, 1},
    {{"--timeout"}, OPT_TIMEOUT, 1},
    {{"--fail-fast"}, OPT_FAIL_FAST, 0},
    {{"--once"}, OPT_ONCE, 0},
    {{"--token"}, OPT_TOKEN, 1},
    {{"-q", "--quiet"}, OPT_QUIET, 0},
    {{"-v", "--verbose"}, OPT_VERBOSE, 0},
    {{"-h", "--help"}, OPT_HELP, 0},
    {{"--version"}, OPT_VERSION, 0},
};

/* The row whose spelling is the first `len` bytes of arg, or NULL. */
static const struct opt_row *find_option(const char *arg, size_t len)
{
    for (size_t i = 0; i < sizeof(opt_table) / sizeof(opt_table[0]); i++)
        for (size_t k = 0; k < 3 && opt_table[i].names[k]; k++)
            if (strlen(opt_table[i].names[k]) == len &&
                strncmp(arg, opt_table[i].names[k], len) == 0)
                return &opt_table[i];
    return NULL;
}

/* Printable ASCII for messages: a usage error must not echo control bytes
 * into a terminal. */
static void quote_arg(const char *arg, char *out, size_t out_len)
{
    size_t j = 0;
    /* cppcheck-suppress arrayIndexOutOfBoundsCond ; i reaches 63 only in a string that long */
    for (size_t i = 0; arg[i] && j + 5 < out_len; i++) {
        unsigned char c = (unsigned char)arg[i];
        if (c >= 0x20 && c < 0x7f) {
            out[j++] = (char)c;
        } else {
            j += (size_t)snprintf(out + j, out_len - j, "\\x%02x", c);
        }
        if (i == 63 && arg[i + 1]) {
            j += (size_t)snprintf(out + j, out_len - j, "...");
            break;
        }
    }
    out[j < out_len ? j : out_len - 1] = '\0';
}

/* Arguments from the command line quoted in a reason go through
 * quote_arg first. */
int wz_why(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return -1;
}

/* quote_arg into a fixed buffer, for one message. */
typedef struct shown {
    char text[300];
} shown;

static shown show(const char *arg)
{
    shown s;
    quote_arg(arg ? arg : "", s.text, sizeof(s.text));
    /* cppcheck-suppress uninitvar ; quote_arg always writes a terminated string into s.text */
    return s;
}

/* Seconds as a plain decimal number ("10", "0.5") in [min, max]: no
 * sign, exponent or hexadecimal, which strtod alone would take. */
static int parse_seconds(const char *text, double min, double max, double *out)
{
    char *end;
    size_t digits = strspn(text, "0123456789");
    if (text[digits] == '.' && isdigit((unsigned char)text[digits + 1]))
        digits += 1 + strspn(text + digits + 1, "0123456789");
    if (digits == 0 || text[digits] != '\0' || digits > 20)
        return -1;
    double v = strtod(text, &end);
    if (*end || !isfinite(v) || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Exactly YYYY-MM-DD, a real calendar day. */
static int valid_date(const char *text)
{
    bty_time t;
    if (strlen(text) != 10)
        return 0;
    for (int i = 0; i < 10; i++)
        if ((i == 4 || i == 7) ? text[i] != '-' : !isdigit((unsigned char)text[i]))
            return 0;
    return time_parse(text, &t) == 0;
}

/* http:// or https://, then a host; no query, fragment, space or control
 * byte. fetch.c parses it fully. */
static int valid_url(const char *url)
{
    size_t len = strlen(url);
    if (len > WZ_MAX_URL)
        return 0;
    const char *rest = NULL;
    if (strncasecmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        rest = url + 8;
    if (!rest || !*rest || *rest == '/')
        return 0;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '?' || *p == '#')
            return 0;
    return 1;
}

/* A bearer token travels in a header: visible ASCII only, so that it can
 * never split the request. */
static int valid_token(const char *token)
{
    size_t len = strlen(token);
    if (len == 0 || len > WZ_MAX_TOKEN)
        return 0;
    for (const char *p = token; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return 0;
    return 1;
}

static int add_workflow(wz_options *o, const char *name, char *why, size_t why_len)
{
    bty_error err = {0};
    if (name_workflow_check(name, &err) != 0)
        return wz_why(why, why_len, "-wf '%s': %s", show(name).text, err.message);
    for (size_t i = 0; i < o->nworkflows; i++)
        if (strcmp(o->workflows[i], name) == 0)
            return 0;
    if (o->nworkflows == WZ_MAX_WORKFLOWS)
        return wz_why(why, why_len, "too many workflows: at most 256 -wf");
    o->workflows[o->nworkflows++] = name;
    return 0;
}

/* --step a,b: split at commas like Batchy's step=; each name must be a
 * valid step name. */
static int add_steps(wz_options *o, const char *list, char *why, size_t why_len)
{
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char *name = strndup(p, len);
        if (!name)
            return wz_why(why, why_len, "out of memory");
        bty_error err = {0};
        if (len == 0 || name_step_check(name, &err) != 0) {
            free(name);
            return wz_why(why, why_len, "--step '%s': %s", show(list).text,
                          len == 0 ? "a step name is empty" : err.message);
        }
        int seen = 0;
        for (size_t i = 0; i < o->nsteps && !seen; i++)
            seen = strcmp(o->steps[i], name) == 0;
        if (seen) {
            free(name);
        } else if (o->nsteps == WZ_MAX_STEPS) {
            free(name);
            return wz_why(why, why_len, "too many steps: at most 1024 with --step");
        } else {
            o->steps[o->nsteps++] = name;
        }
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

int wz_parse_args(int argc, char *const argv[], const char *env_url, const char *env_token,
                  wz_options *o, char *why, size_t why_len)
{
    memset(o, 0, sizeof(*o));
    o->interval = 10;
    o->timeout = -1;
    why[0] = '\0';
    int quiet = 0, verbose = 0;
    const char *url = NULL, *token = NULL;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            if (i + 1 >= argc)
                return wz_why(why, why_len, "'--' must be followed by a command to run");
            o->command = &argv[i + 1];
            break;
        }
        if (arg[0] != '-' || arg[1] == '\0')
            return wz_why(why, why_len,
                          "unexpected argument '%s'; a command to run goes after '--'",
                          show(arg).text);

        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        const struct opt_row *row = find_option(arg, name_len);
        if (!row)
            return wz_why(why, why_len, "unknown option '%s'", show(arg).text);
        /* Empty, not NULL, for an option without a value: a case below that
         * read it by mistake would refuse "" instead of crashing. */
        const char *value = "";
        if (row->takes_value) {
            if (eq) {
                value = eq + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                return wz_why(why, why_len, "option %s needs a value", row->names[0]);
            }
        } else if (eq) {
            return wz_why(why, why_len, "option %s takes no value: '%s'", row->names[0],
                          show(arg).text);
        }

        switch (row->id) {
        case OPT_WORKFLOW:
            if (add_workflow(o, value, why, why_len) != 0)
                return -1;
            break;
        case OPT_STEP:
            if (add_steps(o, value, why, why_len) != 0)
                return -1;
            break;
        case OPT_URL:
            url = value;
            break;
        case OPT_DATE:
            if (!valid_date(value))
                return wz_why(why, why_len, "--date '%s': expected a day as YYYY-MM-DD",
                              show(value).text);
            memcpy(o->date, value, 11);
            break;
        case OPT_LOCAL:
            o->local = 1;
            break;
        case OPT_INTERVAL:
            if (parse_seconds(value, WZ_MIN_INTERVAL, WZ_MAX_INTERVAL, &o->interval) != 0)
                return wz_why(why, why_len, "--interval '%s': expected seconds from 0.1 to 86400",
                              show(value).text);
            break;
        case OPT_TIMEOUT:
            if (parse_seconds(value, 0, WZ_MAX_TIMEOUT, &o->timeout) != 0)
                return wz_why(why, why_len,
                              "--timeout '%s': expected seconds from 0 to 31622400 (366 days)",
                              show(value).text);
            break;
        case OPT_FAIL_FAST:
            o->fail_fast = 1;
            break;
        case OPT_ONCE:
            o->once = 1;
            break;
        case OPT_TOKEN:
            if (!valid_token(value))
                return wz_why(why, why_len, "--token: expected 1 to 4096 visible ASCII characters");
            token = value;
            break;
        case OPT_QUIET:
            quiet = 1;
            break;
        case OPT_VERBOSE:
            verbose = 1;
            break;
        case OPT_HELP:
            o->help = 1;
            return 0;
        case OPT_VERSION:
            o->version = 1;
            return 0;
        }
    }

    if (quiet && verbose)
        return wz_why(why, why_len, "-q and -v contradict each other; choose one");
    o->verbosity = quiet ? WZ_QUIET : verbose ? WZ_VERBOSE : WZ_NORMAL;
    if (o->nworkflows == 0)
        return wz_why(why, why_len, "name at least one workflow: waitsy -wf NAME");

    /* An empty variable is as good as unset: `BATCHY_TOKEN= waitsy ...`. */
    if (!url)
        url = env_url && *env_url ? env_url : WZ_DEFAULT_URL;
    if (!valid_url(url))
        /* Not echoed: a URL may hold a password. */
        return wz_why(why, why_len,
                      "%s: expected http://HOST[:PORT][/PREFIX] (or https://), "
                      "without query or fragment",
                      url == env_url ? "BATCHY_URL" : "--url");
    o->url = url;
    o->url_from_env = url == env_url;
    if (!token && env_token && *env_token) {
        if (!valid_token(env_token))
            return wz_why(why, why_len,
                          "BATCHY_TOKEN: expected 1 to 4096 visible ASCII characters");
        token = env_token;
    }
    o->token = token;
    return 0;
}

void wz_options_free(wz_options *o)
{
    for (size_t i = 0; i < o->nsteps; i++)
        free(o->steps[i]);
    o->nsteps = 0;
}
