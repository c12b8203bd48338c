/*
 * test_batchy_run.c - unit tests of batchy-run's pure parts: its command
 * line (runargs.c), the message of a failure, and the environment it gives
 * the command (format_env, format.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "run.h"

static int parse(wr_options *o, char *why, int argc, char *const *argv)
{
    return wr_parse_args(argc, argv, NULL, NULL, o, why, 512);
}

static void the_command_follows_the_options(void **state)
{
    (void)state;
    char why[512];
    wr_options o;
    char *const argv[] = {
        "batchy-run", "-wf",      "sales",  "--step",    "load", "--open",           "--url",
        "http://h:1", "--token",  "t",      "--timeout", "5",    "--report-timeout", "7.5",
        "--",         "./job.sh", "--step", "x",         NULL};
    assert_int_equal(parse(&o, why, 18, argv), 0);
    assert_string_equal(o.workflow, "sales");
    assert_string_equal(o.step, "load");
    assert_true(o.open);
    assert_string_equal(o.url, "http://h:1");
    assert_string_equal(o.token, "t");
    assert_true(o.timeout == 5);
    assert_true(o.report_timeout == 7.5);
    assert_string_equal(o.command[0], "./job.sh");
    assert_string_equal(o.command[1], "--step"); /* the command's own */
    assert_null(o.command[3]);
}

static void defaults_come_from_the_environment(void **state)
{
    (void)state;
    char why[512];
    wr_options o;
    char *const argv[] = {"batchy-run", "-wf", "w", "--step", "s", "--", "true", NULL};
    assert_int_equal(wr_parse_args(7, argv, "http://env:2", "tok", &o, why, sizeof(why)), 0);
    assert_string_equal(o.url, "http://env:2");
    assert_string_equal(o.token, "tok");
    assert_false(o.open);
    assert_true(o.timeout == 600 && o.report_timeout == 600);
    assert_int_equal(wr_parse_args(7, argv, NULL, "", &o, why, sizeof(why)), 0);
    assert_string_equal(o.url, "http://127.0.0.1:5000");
    assert_null(o.token);
}

static void bad_command_lines_say_why(void **state)
{
    (void)state;
    struct {
        int argc;
        char *argv[8];
        const char *says;
    } bad[] = {
        {1, {"batchy-run"}, "-wf WF is needed"},
        {3, {"batchy-run", "-wf", "w"}, "--step STEP is needed"},
        {5, {"batchy-run", "-wf", "w", "--step", "s"}, "no command"},
        {6, {"batchy-run", "-wf", "w", "--step", "s", "--"}, "no command"},
        {2, {"batchy-run", "--nope"}, "unknown option '--nope'"},
        {2, {"batchy-run", "-wf"}, "-wf needs a value"},
        {7, {"batchy-run", "-wf", "a/b", "--step", "s", "--", "x"}, "workflow"},
        {7, {"batchy-run", "-wf", "w", "--step", "[x]", "--", "x"}, "step"},
        {4, {"batchy-run", "--timeout", "-1", "x"}, "--timeout must be a number"},
        {3, {"batchy-run", "--report-timeout", "soon"}, "--report-timeout must be a number"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char why[512] = "";
        wr_options o;
        if (parse(&o, why, bad[i].argc, bad[i].argv) != -1 || !strstr(why, bad[i].says))
            fail_msg("case %zu: '%s' does not say '%s'", i, why, bad[i].says);
    }
    char why[512];
    wr_options o;
    char *const help[] = {"batchy-run", "--help", NULL};
    assert_int_equal(parse(&o, why, 2, help), 0);
    assert_true(o.help);
    assert_non_null(strstr(wr_help_text, "Usage: batchy-run -wf WF --step STEP"));
}

static void a_failure_says_the_status_and_the_newest_lines(void **state)
{
    (void)state;
    char out[WR_ERROR_BYTES + 1];
    wr_failure_text(3, 0, "", 0, out);
    assert_string_equal(out, "exit 3");
    wr_failure_text(0, 15, "bye\n", 4, out);
    assert_string_equal(out, "signal 15 (SIGTERM): bye");
    const char two[] = "first\nsecond\r\n\x1b[1mthird\tcol\x7f\n\n";
    wr_failure_text(1, 0, two, sizeof(two) - 1, out);
    assert_string_equal(out, "exit 1: first | second | [1mthird col");
    /* long: the newest kept, within the bound, on a character boundary */
    char tail[WR_TAIL_BYTES];
    for (size_t i = 0; i < sizeof(tail); i++)
        tail[i] = (i % 3 == 2) ? '\xa9' : (i % 3 == 1) ? '\xc2' : 'a'; /* a©a©... */
    memcpy(tail + sizeof(tail) - 4, "END\n", 4);
    wr_failure_text(2, 0, tail, sizeof(tail), out);
    assert_true(strlen(out) <= WR_ERROR_BYTES);
    assert_true(strncmp(out, "exit 2: ...", 11) == 0);
    assert_true(strcmp(out + strlen(out) - 3, "END") == 0);
    assert_true(((unsigned char)out[11] & 0xC0) != 0x80); /* starts a character */
}

static void the_environment_names_fields_as_the_sh_format(void **state)
{
    (void)state;
    cJSON *step = cJSON_Parse("{\"rows\": 5, \"table\": \"t x\", \"multi\": \"a\\nb\", "
                              "\"flag\": true, \"none\": null, \"nested\": {\"k\": [1, 2]}, "
                              "\"status\": \"open\", \"batch_id\": 42, "
                              "\"from_date\": \"2026-11-27T00:00:00.000000\", "
                              "\"to_date\": \"2026-11-28T00:00:00.000000\"}");
    assert_non_null(step);
    char **env = format_env("sales.daily", 42, "load-marts", step);
    assert_non_null(env);
    const char *want[] = {"BATCHY_LOAD_MARTS_ROWS=5",
                          "BATCHY_LOAD_MARTS_TABLE=t x",
                          "BATCHY_LOAD_MARTS_MULTI=a b",
                          "BATCHY_LOAD_MARTS_FLAG=true",
                          "BATCHY_LOAD_MARTS_NONE=",
                          "BATCHY_LOAD_MARTS_NESTED={\"k\":[1,2]}",
                          "BATCHY_LOAD_MARTS_STATUS=open",
                          "BATCHY_LOAD_MARTS_BATCH_ID=42",
                          "BATCHY_LOAD_MARTS_FROM_DATE=2026-11-27T00:00:00.000000",
                          "BATCHY_LOAD_MARTS_TO_DATE=2026-11-28T00:00:00.000000",
                          "BATCHY_WORKFLOW=sales.daily",
                          "BATCHY_STEP=load-marts",
                          "BATCHY_BATCH_ID=42",
                          "BATCHY_FROM_DATE=2026-11-27T00:00:00.000000",
                          "BATCHY_TO_DATE=2026-11-28T00:00:00.000000",
                          NULL};
    size_t n = 0;
    for (; env[n]; n++) {
        int found = 0;
        for (size_t k = 0; want[k] && !found; k++)
            found = strcmp(env[n], want[k]) == 0;
        if (!found)
            fail_msg("unexpected %s", env[n]);
    }
    assert_int_equal(n, sizeof(want) / sizeof(want[0]) - 1);
    /* batchy-run's own come last: they win over a parameter named alike */
    assert_string_equal(env[n - 5], "BATCHY_WORKFLOW=sales.daily");
    for (size_t i = 0; env[i]; i++)
        free(env[i]);
    free(env);
    cJSON_Delete(step);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_command_follows_the_options),
        cmocka_unit_test(defaults_come_from_the_environment),
        cmocka_unit_test(bad_command_lines_say_why),
        cmocka_unit_test(a_failure_says_the_status_and_the_newest_lines),
        cmocka_unit_test(the_environment_names_fields_as_the_sh_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
