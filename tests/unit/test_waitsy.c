/*
 * test_waitsy.c - unit tests of Waitsy's pure core: the command line
 * (args.c) and the readiness decision with its progress line (ready.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "waitsy.h"

/* ------------------------------------------------------------ args */

#define MAX_ARGS 32

/* Parse a NULL-terminated list of arguments (after "waitsy"). */
static int parse(wz_options *o, char *why, const char *env_url, const char *env_token, ...)
{
    static char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "waitsy";
    va_list ap;
    va_start(ap, env_token);
    for (char *a; (a = va_arg(ap, char *)) != NULL;) {
        assert_true(argc <= MAX_ARGS);
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;
    return wz_parse_args(argc, argv, env_url, env_token, o, why, 512);
}

static void args_original_command_line_and_defaults(void **state)
{
    (void)state;
    wz_options o;
    char why[512];
    assert_int_equal(parse(&o, why, NULL, NULL, "-wf", "wf1", NULL), 0);
    assert_int_equal(o.nworkflows, 1);
    assert_string_equal(o.workflows[0], "wf1");
    assert_int_equal(o.nsteps, 0);
    assert_string_equal(o.url, WZ_DEFAULT_URL);
    assert_null(o.token);
    assert_string_equal(o.date, "");
    assert_int_equal(o.local, 0);
    assert_true(o.interval == 10.0);
    assert_true(o.timeout < 0);
    assert_int_equal(o.fail_fast, 0);
    assert_int_equal(o.once, 0);
    assert_int_equal(o.verbosity, WZ_NORMAL);
    assert_null(o.command);
    wz_options_free(&o);
}

static void args_every_option_in_both_spellings(void **state)
{
    (void)state;
    wz_options o;
    char why[512];
    assert_int_equal(parse(&o, why, NULL, NULL, "--workflow", "a", "--wf=b", "-wf=c", "-wf", "a",
                           "--step", "x,y", "--step=y,z", "--url=https://h.example/batchy/",
                           "--date", "2026-11-23", "--local", "--interval", "0.5", "--timeout=7200",
                           "--fail-fast", "--once", "--token", "s3cret", "-v", NULL),
                     0);
    assert_int_equal(o.nworkflows, 3); /* "a" twice counts once */
    assert_string_equal(o.workflows[0], "a");
    assert_string_equal(o.workflows[1], "b");
    assert_string_equal(o.workflows[2], "c");
    assert_int_equal(o.nsteps, 3); /* x, y, z: y once */
    assert_string_equal(o.steps[0], "x");
    assert_string_equal(o.steps[1], "y");
    assert_string_equal(o.steps[2], "z");
    assert_string_equal(o.url, "https://h.example/batchy/");
    assert_string_equal(o.date, "2026-11-23");
    assert_int_equal(o.local, 1);
    assert_true(o.interval == 0.5);
    assert_true(o.timeout == 7200.0);
    assert_int_equal(o.fail_fast, 1);
    assert_int_equal(o.once, 1);
    assert_string_equal(o.token, "s3cret");
    assert_int_equal(o.verbosity, WZ_VERBOSE);
    wz_options_free(&o);

    assert_int_equal(parse(&o, why, NULL, NULL, "-wf", "a", "--quiet", NULL), 0);
    assert_int_equal(o.verbosity, WZ_QUIET);
    wz_options_free(&o);
    assert_int_equal(parse(&o, why, NULL, NULL, "-q", "-wf", "a", NULL), 0);
    assert_int_equal(o.verbosity, WZ_QUIET);
    wz_options_free(&o);
}

static void args_command_after_double_dash_is_kept_verbatim(void **state)
{
    (void)state;
    wz_options o;
    char why[512];
    assert_int_equal(
        parse(&o, why, NULL, NULL, "-wf", "a", "--", "./run.sh", "-wf", "--once", "--", NULL), 0);
    assert_non_null(o.command);
    assert_string_equal(o.command[0], "./run.sh");
    assert_string_equal(o.command[1], "-wf");
    assert_string_equal(o.command[2], "--once");
    assert_string_equal(o.command[3], "--");
    assert_null(o.command[4]);
    assert_int_equal(o.once, 0); /* the command's --once is not ours */
    wz_options_free(&o);
}

static void args_environment_gives_url_and_token(void **state)
{
    (void)state;
    wz_options o;
    char why[512];
    assert_int_equal(parse(&o, why, "http://batchy:8080/p", "tok", "-wf", "a", NULL), 0);
    assert_string_equal(o.url, "http://batchy:8080/p");
    assert_string_equal(o.token, "tok");
    wz_options_free(&o);

    /* The command line wins over the environment. */
    assert_int_equal(parse(&o, why, "http://batchy:8080", "tok", "-wf", "a", "--url",
                           "http://other", "--token", "mine", NULL),
                     0);
    assert_string_equal(o.url, "http://other");
    assert_string_equal(o.token, "mine");
    wz_options_free(&o);

    /* Empty variables are unset ones. */
    assert_int_equal(parse(&o, why, "", "", "-wf", "a", NULL), 0);
    assert_string_equal(o.url, WZ_DEFAULT_URL);
    assert_null(o.token);
    wz_options_free(&o);
}

static void args_help_and_version(void **state)
{
    (void)state;
    wz_options o;
    char why[512];
    assert_int_equal(parse(&o, why, NULL, NULL, "--help", NULL), 0);
    assert_int_equal(o.help, 1);
    wz_options_free(&o);
    /* --help wins even over a bad argument after it. */
    assert_int_equal(parse(&o, why, NULL, NULL, "-h", "--bogus", NULL), 0);
    assert_int_equal(o.help, 1);
    wz_options_free(&o);
    assert_int_equal(parse(&o, why, NULL, NULL, "--version", NULL), 0);
    assert_int_equal(o.version, 1);
    wz_options_free(&o);

    static const char *const mentioned[] = {
        "-wf",
        "--workflow",
        "--step",
        "--url",
        "--date",
        "--local",
        "--interval",
        "--timeout",
        "--fail-fast",
        "--once",
        "--token",
        "--quiet",
        "--verbose",
        "--help",
        "--version",
        "BATCHY_URL",
        "BATCHY_TOKEN",
        "waitsy -wf wf1 && ",
        "-- ./build_marts.sh",
    };
    for (size_t i = 0; i < sizeof(mentioned) / sizeof(mentioned[0]); i++)
        if (!strstr(wz_help_text, mentioned[i]))
            fail_msg("--help does not mention %s", mentioned[i]);
}

/* Each row: arguments (NULL-terminated, at most 6), and a part of the
 * reason it must give. */
static const struct bad_args {
    const char *args[7];
    const char *reason;
} bad_args[] = {
    {{NULL}, "name at least one workflow"},
    {{"--once", NULL}, "name at least one workflow"},
    {{"-wf", NULL}, "-wf needs a value"},
    {{"-wf", "bad name", NULL}, "-wf 'bad name'"},
    {{"-wf", "wf1-123", NULL}, "-wf 'wf1-123'"},
    {{"-wf", "../etc", NULL}, "-wf '../etc'"},
    {{"-wf", "a", "--bogus", NULL}, "unknown option '--bogus'"},
    {{"-wf", "a", "-x", NULL}, "unknown option '-x'"},
    {{"-wf", "a", "extra", NULL}, "unexpected argument 'extra'"},
    {{"-wf", "a", "-", NULL}, "unexpected argument '-'"},
    {{"-wf", "a", "--", NULL}, "followed by a command"},
    {{"-wf", "a", "--date", "2026-13-01", NULL}, "--date '2026-13-01'"},
    {{"-wf", "a", "--date", "2026-11-31", NULL}, "--date '2026-11-31'"},
    {{"-wf", "a", "--date", "2026-11-23T00:00", NULL}, "YYYY-MM-DD"},
    {{"-wf", "a", "--date", "tomorrow", NULL}, "YYYY-MM-DD"},
    {{"-wf", "a", "--date", "2026-1-1", NULL}, "YYYY-MM-DD"},
    {{"-wf", "a", "--interval", "0", NULL}, "--interval '0'"},
    {{"-wf", "a", "--interval", "0.01", NULL}, "--interval"},
    {{"-wf", "a", "--interval", "-1", NULL}, "--interval"},
    {{"-wf", "a", "--interval", "abc", NULL}, "--interval"},
    {{"-wf", "a", "--interval", "nan", NULL}, "--interval"},
    {{"-wf", "a", "--interval", "inf", NULL}, "--interval"},
    {{"-wf", "a", "--interval", "", NULL}, "--interval"},
    {{"-wf", "a", "--interval", "86401", NULL}, "--interval"},
    {{"-wf", "a", "--timeout", "-5", NULL}, "--timeout '-5'"},
    {{"-wf", "a", "--timeout", "10s", NULL}, "--timeout"},
    {{"-wf", "a", "--timeout", "+5", NULL}, "--timeout"},
    {{"-wf", "a", "--interval", "0x10", NULL}, "--interval"},
    {{"-wf", "a", "--interval", "1e1", NULL}, "--interval"},
    {{"-wf", "a", "--interval", "5.", NULL}, "--interval"},
    {{"-wf", "a", "-q", "-v", NULL}, "-q and -v"},
    {{"-wf", "a", "--step", "", NULL}, "a step name is empty"},
    {{"-wf", "a", "--step", "x,,y", NULL}, "a step name is empty"},
    {{"-wf", "a", "--step", "x,", NULL}, "a step name is empty"},
    {{"-wf", "a", "--step", "x[1]", NULL}, "--step 'x[1]'"},
    {{"-wf", "a", "--url", "ftp://x", NULL}, "--url"},
    {{"-wf", "a", "--url", "http://host/?q=1", NULL}, "without query"},
    {{"-wf", "a", "--url", "http://host/#top", NULL}, "--url"},
    {{"-wf", "a", "--url", "notaurl", NULL}, "--url"},
    {{"-wf", "a", "--url", "http://", NULL}, "--url"},
    {{"-wf", "a", "--url", "http://ho st", NULL}, "--url"},
    {{"-wf", "a", "--token", "a b", NULL}, "--token"},
    {{"-wf", "a", "--token", "", NULL}, "--token"},
    {{"-wf", "a", "--token", "a\r\nX-Evil: 1", NULL}, "--token"},
    {{"-wf", "a", "--once=1", NULL}, "--once takes no value"},
    {{"-wf", "a", "--local=yes", NULL}, "--local takes no value"},
};

static void args_usage_errors_say_what_is_wrong(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_args) / sizeof(bad_args[0]); i++) {
        char *argv[8] = {"waitsy"};
        int argc = 1;
        for (int k = 0; bad_args[i].args[k]; k++)
            argv[argc++] = (char *)bad_args[i].args[k];
        wz_options o;
        char why[512];
        int rc = wz_parse_args(argc, argv, NULL, NULL, &o, why, sizeof(why));
        wz_options_free(&o);
        if (rc != -1)
            fail_msg("row %zu (%s): accepted", i, bad_args[i].reason);
        if (!strstr(why, bad_args[i].reason))
            fail_msg("row %zu: reason \"%s\" does not contain \"%s\"", i, why, bad_args[i].reason);
    }
}

static void args_bad_environment_is_a_usage_error(void **state)
{
    (void)state;
    wz_options o;
    char why[512];
    assert_int_equal(parse(&o, why, "localhost:5000", NULL, "-wf", "a", NULL), -1);
    assert_non_null(strstr(why, "BATCHY_URL"));
    wz_options_free(&o);
    assert_int_equal(parse(&o, why, NULL, "bad token", "-wf", "a", NULL), -1);
    assert_non_null(strstr(why, "BATCHY_TOKEN"));
    wz_options_free(&o);
}

static void args_url_password_is_not_echoed(void **state)
{
    (void)state;
    wz_options o;
    char why[512];
    assert_int_equal(parse(&o, why, NULL, NULL, "-wf", "a", "--url", "http://u:hunter2@h/?x", NULL),
                     -1);
    assert_null(strstr(why, "hunter2"));
    wz_options_free(&o);
}

static void args_control_bytes_are_not_echoed(void **state)
{
    (void)state;
    wz_options o;
    char why[512];
    assert_int_equal(parse(&o, why, NULL, NULL, "-wf", "a", "--\x1b[31mred", NULL), -1);
    assert_null(strchr(why, '\x1b'));
    assert_non_null(strstr(why, "\\x1b"));
    wz_options_free(&o);
}

static void args_bounds(void **state)
{
    (void)state;
    /* 257 distinct workflows: one too many. */
    static char names[257][8];
    static char *argv[1 + 2 * 257];
    argv[0] = "waitsy";
    for (int i = 0; i < 257; i++) {
        snprintf(names[i], sizeof(names[i]), "w%d", i);
        argv[1 + 2 * i] = "-wf";
        argv[2 + 2 * i] = names[i];
    }
    wz_options o;
    char why[512];
    assert_int_equal(wz_parse_args(1 + 2 * 256, argv, NULL, NULL, &o, why, sizeof(why)), 0);
    assert_int_equal(o.nworkflows, 256);
    wz_options_free(&o);
    assert_int_equal(wz_parse_args(1 + 2 * 257, argv, NULL, NULL, &o, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "too many workflows"));
    wz_options_free(&o);

    /* The longest step name is accepted, one byte more is not. */
    char step[258];
    memset(step, 's', 257);
    step[257] = '\0';
    assert_int_equal(parse(&o, why, NULL, NULL, "-wf", "a", "--step", step, NULL), -1);
    wz_options_free(&o);
    step[256] = '\0';
    assert_int_equal(parse(&o, why, NULL, NULL, "-wf", "a", "--step", step, NULL), 0);
    wz_options_free(&o);
}

/* ------------------------------------------------------------ ready */

static bty_time at(const char *text)
{
    bty_time t;
    assert_int_equal(time_parse(text, &t), 0);
    return t;
}

static void set_tz(const char *tz)
{
    if (tz)
        setenv("TZ", tz, 1);
    else
        unsetenv("TZ");
    tzset();
}

static void dates_in_utc_and_local_time(void **state)
{
    (void)state;
    char day[11], clock[20];
    wz_date_of(at("2026-11-23T00:00:00"), 0, day);
    assert_string_equal(day, "2026-11-23");
    wz_date_of(at("2026-11-22T23:59:59.999999"), 0, day);
    assert_string_equal(day, "2026-11-22");
    wz_date_of(at("1776-07-04T23:59:00"), 0, day);
    assert_string_equal(day, "1776-07-04");

    set_tz("EST5"); /* UTC-5, no tzdata needed */
    wz_date_of(at("2026-11-23T03:00:00"), 1, day);
    assert_string_equal(day, "2026-11-22");
    wz_date_of(at("2026-11-23T03:00:00"), 0, day);
    assert_string_equal(day, "2026-11-23");
    wz_clock_of(at("2026-11-23T03:04:05"), 1, "2026-11-22", clock);
    assert_string_equal(clock, "22:04:05");
    set_tz("<+14>-14"); /* UTC+14 */
    wz_date_of(at("2026-11-23T12:00:00"), 1, day);
    assert_string_equal(day, "2026-11-24");
    set_tz(NULL);

    wz_clock_of(at("2026-11-23T06:00:01.5"), 0, "2026-11-23", clock);
    assert_string_equal(clock, "06:00:01");
    wz_clock_of(at("2026-11-22T06:00:01"), 0, "2026-11-23", clock);
    assert_string_equal(clock, "2026-11-22 06:00:01");
}

/* Assess a document written as JSON text. */
static wz_assessment assess_with(const char *json, char *const *steps, size_t nsteps,
                                 const char *date, int local)
{
    cJSON *doc = cJSON_Parse(json);
    if (!doc)
        fail_msg("bad test JSON: %s", json);
    wz_assessment a;
    assert_int_equal(wz_assess("wf1", doc, steps, nsteps, date, local, &a), 0);
    cJSON_Delete(doc);
    assert_non_null(a.summary);
    return a;
}

static wz_assessment assess(const char *json)
{
    return assess_with(json, NULL, 0, "2026-11-23", 0);
}

#define OK_A "\"a\":{\"status\":\"success\",\"batch_end\":\"2026-11-23T06:10:00.000000\"}"
#define OK_B "\"b\":{\"status\":\"success\",\"batch_end\":\"2026-11-23T00:00:00.000000\"}"

static void ready_when_every_step_succeeded_on_the_day(void **state)
{
    (void)state;
    wz_assessment a = assess("{" OK_A "," OK_B "}");
    assert_int_equal(a.verdict, WZ_READY);
    assert_int_equal(a.awaited, 2);
    assert_int_equal(a.done, 2);
    assert_string_equal(a.summary, "wf1: 2/2 steps done for 2026-11-23");
    assert_null(a.failure);
    wz_assessment_free(&a);

    a = assess("{\"a\":{\"status\":\"success\",\"batch_end\":\"2026-11-23T23:59:59.999999\"}}");
    assert_int_equal(a.verdict, WZ_READY);
    assert_string_equal(a.summary, "wf1: 1/1 step done for 2026-11-23");
    wz_assessment_free(&a);
}

static void yesterdays_success_does_not_count(void **state)
{
    (void)state;
    wz_assessment a = assess(
        "{" OK_A ",\"b\":{\"status\":\"success\",\"batch_end\":\"2026-11-22T23:59:59.999999\"}}");
    assert_int_equal(a.verdict, WZ_WAITING);
    assert_int_equal(a.done, 1);
    assert_string_equal(a.summary, "wf1: 1/2 steps done for 2026-11-23; waiting on b "
                                   "(last success 2026-11-22 23:59:59)");
    wz_assessment_free(&a);

    /* Nor does tomorrow's, for a --date in the past. */
    a = assess_with("{" OK_A "}", NULL, 0, "2026-11-22", 0);
    assert_int_equal(a.verdict, WZ_WAITING);
    wz_assessment_free(&a);
}

static void a_success_reopened_since_does_not_count(void **state)
{
    (void)state;
    /* Open again today: the batch_end of the earlier success is still there. */
    wz_assessment a = assess("{" OK_A ",\"b\":{\"status\":\"open\",\"batch_start\":"
                             "\"2026-11-23T06:00:01.000000\",\"batch_end\":null}}");
    assert_int_equal(a.verdict, WZ_WAITING);
    assert_string_equal(a.summary,
                        "wf1: 1/2 steps done for 2026-11-23; waiting on b (open since 06:00:01)");
    wz_assessment_free(&a);
    a = assess("{\"b\":{\"status\":\"open\",\"batch_start\":\"2026-11-23T06:00:01.000000\","
               "\"batch_end\":\"2026-11-23T05:00:00.000000\"}}");
    assert_int_equal(a.verdict, WZ_WAITING);
    wz_assessment_free(&a);
}

static void failure_on_the_day_is_reported_with_its_message(void **state)
{
    (void)state;
    wz_assessment a = assess("{" OK_A ",\"b\":{\"status\":\"failed\",\"batch_end\":"
                             "\"2026-11-23T06:10:00.000000\",\"error_message\":\"disk\\nfull\"}}");
    assert_int_equal(a.verdict, WZ_FAILED);
    assert_string_equal(a.summary,
                        "wf1: 1/2 steps done for 2026-11-23; waiting on b (failed at 06:10:00)");
    assert_string_equal(a.failure, "wf1: step b failed at 06:10:00: disk full");
    wz_assessment_free(&a);

    /* A failure of yesterday may be re-run today: only waiting. */
    a = assess("{\"b\":{\"status\":\"failed\",\"batch_end\":\"2026-11-22T06:10:00.000000\"}}");
    assert_int_equal(a.verdict, WZ_WAITING);
    assert_null(a.failure);
    assert_string_equal(
        a.summary,
        "wf1: 0/1 step done for 2026-11-23; waiting on b (failed at 2026-11-22 06:10:00)");
    wz_assessment_free(&a);
}

static void every_other_state_is_described(void **state)
{
    (void)state;
    wz_assessment a = assess("{\"a\":{\"status\":\"new\"},\"b\":{},\"c\":{\"status\":\"open\"},"
                             "\"d\":{\"status\":\"success\"},\"e\":{\"status\":7}}");
    assert_int_equal(a.verdict, WZ_WAITING);
    assert_string_equal(a.summary, "wf1: 0/5 steps done for 2026-11-23; waiting on a (status new), "
                                   "b (no status), c (open), d (success without batch_end), "
                                   "e (no status)");
    wz_assessment_free(&a);
}

static void batch_end_is_read_leniently_and_converted_to_utc(void **state)
{
    (void)state;
    /* 01:00 at +02:00 is 23:00 UTC the day before. */
    wz_assessment a =
        assess("{\"a\":{\"status\":\"success\",\"batch_end\":\"2026-11-23T01:00:00+02:00\"}}");
    assert_int_equal(a.verdict, WZ_WAITING);
    wz_assessment_free(&a);
    a = assess("{\"a\":{\"status\":\"success\",\"batch_end\":\"2026-11-23 05:00\"}}");
    assert_int_equal(a.verdict, WZ_READY);
    wz_assessment_free(&a);
    a = assess("{\"a\":{\"status\":\"success\",\"batch_end\":\"not a time\"}}");
    assert_int_equal(a.verdict, WZ_WAITING);
    wz_assessment_free(&a);
}

static void local_time_moves_the_day(void **state)
{
    (void)state;
    /* 03:00 UTC on the 23rd is 22:00 on the 22nd in UTC-5. */
    const char *doc =
        "{\"a\":{\"status\":\"success\",\"batch_end\":\"2026-11-23T03:00:00.000000\"}}";
    set_tz("EST5");
    wz_assessment a = assess_with(doc, NULL, 0, "2026-11-22", 1);
    assert_int_equal(a.verdict, WZ_READY);
    wz_assessment_free(&a);
    a = assess_with(doc, NULL, 0, "2026-11-23", 1);
    assert_int_equal(a.verdict, WZ_WAITING);
    assert_string_equal(
        a.summary,
        "wf1: 0/1 step done for 2026-11-23; waiting on a (last success 2026-11-22 22:00:00)");
    wz_assessment_free(&a);
    a = assess_with(doc, NULL, 0, "2026-11-23", 0);
    assert_int_equal(a.verdict, WZ_READY);
    wz_assessment_free(&a);
    set_tz(NULL);
}

static void only_the_named_steps_are_awaited(void **state)
{
    (void)state;
    char *steps[] = {"a"};
    const char *doc = "{" OK_A ",\"b\":{\"status\":\"open\"}}";
    wz_assessment a = assess_with(doc, steps, 1, "2026-11-23", 0);
    assert_int_equal(a.verdict, WZ_READY);
    assert_int_equal(a.awaited, 1);
    assert_string_equal(a.summary, "wf1: 1/1 step done for 2026-11-23");
    wz_assessment_free(&a);

    char *more[] = {"b", "a"};
    a = assess_with(doc, more, 2, "2026-11-23", 0);
    assert_int_equal(a.verdict, WZ_WAITING);
    assert_int_equal(a.awaited, 2);
    wz_assessment_free(&a);
}

static void unknown_steps_and_empty_workflows(void **state)
{
    (void)state;
    char *steps[] = {"a", "zz"};
    wz_assessment a = assess_with("{" OK_A "," OK_B "}", steps, 2, "2026-11-23", 0);
    assert_int_equal(a.verdict, WZ_UNKNOWN);
    assert_string_equal(a.summary, "wf1 has no step 'zz' (its steps: a, b)");
    wz_assessment_free(&a);

    a = assess("{}");
    assert_int_equal(a.verdict, WZ_UNKNOWN);
    assert_non_null(strstr(a.summary, "wf1 has no steps"));
    wz_assessment_free(&a);
}

static void answers_that_are_not_documents(void **state)
{
    (void)state;
    static const char *const bad[] = {"[]", "\"x\"", "null", "{\"a\":1}", "{\"a\":[]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wz_assessment a = assess(bad[i]);
        if (a.verdict != WZ_INVALID)
            fail_msg("%s: verdict %d, expected WZ_INVALID", bad[i], a.verdict);
        wz_assessment_free(&a);
    }
}

static void long_lists_are_cut_and_names_cleaned(void **state)
{
    (void)state;
    wz_assessment a = assess("{\"s1\":{},\"s2\":{},\"s3\":{},\"s4\":{},\"s5\":{},\"s6\":{},"
                             "\"s7\":{}," OK_A "}");
    assert_string_equal(a.summary, "wf1: 1/8 steps done for 2026-11-23; waiting on s1 (no status), "
                                   "s2 (no status), s3 (no status), s4 (no status), "
                                   "s5 (no status) and 2 more");
    wz_assessment_free(&a);

    /* A name written straight into Redis with a newline and an escape. */
    a = assess("{\"x\\ny\\u001b\":{\"status\":\"new\\r\"}}");
    assert_null(strchr(a.summary, '\n'));
    assert_null(strchr(a.summary, '\r'));
    assert_null(strchr(a.summary, '\x1b'));
    wz_assessment_free(&a);

    /* Long texts are cut, on a UTF-8 boundary. */
    char json[2048];
    char msg[700] = "";
    for (int i = 0; i < 300; i++)
        strcat(msg, "\xc3\xa9"); /* é */
    snprintf(json, sizeof(json),
             "{\"b\":{\"status\":\"failed\",\"batch_end\":\"2026-11-23T06:10:00\","
             "\"error_message\":\"%s\"}}",
             msg);
    a = assess(json);
    assert_int_equal(a.verdict, WZ_FAILED);
    assert_true(strlen(a.failure) < 300);
    assert_non_null(strstr(a.failure, "\xc3\xa9..."));
    wz_assessment_free(&a);
}

static void server_text_is_made_safe_for_a_terminal(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } rows[] = {
        {"plain text", "plain text"},
        {"caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac"}, /* é, € kept */
        {"a\nb\tc\rd", "a b c d"},
        {"\x1b[2J\x1b]0;title\x07", " [2J ]0;title "},
        {"x\x7fy", "x y"},
        {"\xc2\x9b"
         "31m",
         "?31m"},                         /* U+009B, a CSI */
        {"\xc2\x85next", "?next"},        /* U+0085 */
        {"\xc2\xa0nbsp", "\xc2\xa0nbsp"}, /* U+00A0 is fine */
        {"\xe2\x80\xae"
         "evil",
         "?evil"},                   /* U+202E right-to-left override */
        {"\xe2\x81\xa6iso", "?iso"}, /* U+2066 isolate */
        {"\xe2\x80\xa8ls", "?ls"},   /* U+2028 line separator */
        {"\xff\xfe", "??"},          /* invalid bytes */
        {"\xc3", "?"},               /* truncated sequence */
        {"\xed\xa0\x80", "???"},     /* a UTF-16 surrogate */
        {"\xc0\xaf", "??"},          /* overlong '/' */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char out[64];
        wz_clean(rows[i].in, 40, out);
        if (strcmp(out, rows[i].out) != 0)
            fail_msg("row %zu: got \"%s\"", i, out);
    }
    /* Cut at max bytes, on a character boundary, marked. */
    char out[16];
    wz_clean("abcdefghijkl", 10, out);
    assert_string_equal(out, "abcdefghij...");
    wz_clean("abcdefghij", 10, out);
    assert_string_equal(out, "abcdefghij");
    wz_clean("abcdefghi\xc3\xa9", 10, out);
    assert_string_equal(out, "abcdefghi...");
}

static void steps_in_document_order(void **state)
{
    (void)state;
    /* Batchy answers steps sorted; waitsy keeps whatever order it got. */
    wz_assessment a = assess("{\"b\":{\"status\":\"new\"},\"a\":{\"status\":\"new\"}}");
    assert_string_equal(
        a.summary, "wf1: 0/2 steps done for 2026-11-23; waiting on b (status new), a (status new)");
    wz_assessment_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(args_original_command_line_and_defaults),
        cmocka_unit_test(args_every_option_in_both_spellings),
        cmocka_unit_test(args_command_after_double_dash_is_kept_verbatim),
        cmocka_unit_test(args_environment_gives_url_and_token),
        cmocka_unit_test(args_help_and_version),
        cmocka_unit_test(args_usage_errors_say_what_is_wrong),
        cmocka_unit_test(args_bad_environment_is_a_usage_error),
        cmocka_unit_test(args_url_password_is_not_echoed),
        cmocka_unit_test(args_control_bytes_are_not_echoed),
        cmocka_unit_test(args_bounds),
        cmocka_unit_test(dates_in_utc_and_local_time),
        cmocka_unit_test(ready_when_every_step_succeeded_on_the_day),
        cmocka_unit_test(yesterdays_success_does_not_count),
        cmocka_unit_test(a_success_reopened_since_does_not_count),
        cmocka_unit_test(failure_on_the_day_is_reported_with_its_message),
        cmocka_unit_test(every_other_state_is_described),
        cmocka_unit_test(batch_end_is_read_leniently_and_converted_to_utc),
        cmocka_unit_test(local_time_moves_the_day),
        cmocka_unit_test(only_the_named_steps_are_awaited),
        cmocka_unit_test(unknown_steps_and_empty_workflows),
        cmocka_unit_test(answers_that_are_not_documents),
        cmocka_unit_test(long_lists_are_cut_and_names_cleaned),
        cmocka_unit_test(server_text_is_made_safe_for_a_terminal),
        cmocka_unit_test(steps_in_document_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
