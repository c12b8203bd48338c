/*
 * test_names.c - unit tests of names.c: which workflow and step names are
 * accepted (tables of valid and invalid names, path tricks, snapshot-key
 * look-alikes, UTF-8 edge cases), the 400 errors and their messages, and
 * the constant-time secret comparison.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "batchy.h"

/* A string of n copies of c, in a static buffer big enough for the tests. */
static const char *repeat(char c, size_t n)
{
    static char buf[1024];
    assert_true(n < sizeof(buf));
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static void expect_workflow(const char *name, int valid)
{
    bty_error err = {0};
    int rc = name_workflow_check(name, &err);
    if (valid && rc != 0)
        fail_msg("workflow \"%s\" should be valid: %s", name, err.message);
    if (!valid && (rc != -1 || err.status != 400 || err.message[0] == '\0'))
        fail_msg("workflow \"%s\" should be a 400", name);
    if (valid && err.status != 0)
        fail_msg("workflow \"%s\" is valid but err was set", name);
}

static void expect_step(const char *name, int valid)
{
    bty_error err = {0};
    int rc = name_step_check(name, &err);
    if (valid && rc != 0)
        fail_msg("step \"%s\" should be valid: %s", name, err.message);
    if (!valid && (rc != -1 || err.status != 400 || err.message[0] == '\0'))
        fail_msg("step \"%s\" should be a 400", name);
}

static void workflow_accepts_letters_digits_underscore_dot_dash(void **state)
{
    (void)state;
    static const char *valid[] = {
        "wf1",      "a",        "Z",         "0",           "_",
        "_private", "9lives",   "wf_1",      "load-orders", "orders.v2",
        "a.b-c_d",  "wf-",      "wf-12a",    "wf-init",     "wf.1",
        "wf-1.2",   "wf-123-x", "wf-a-init", "123",         "2026_11_23",
        "wf--1a",   "a..b",     "x-init-1a", "wf_123",      "wf-1-2-init-x",
    };
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        expect_workflow(valid[i], 1);
    expect_workflow(repeat('w', 128), 1);
}

static void workflow_rejects_paths_and_other_characters(void **state)
{
    (void)state;
    static const char *invalid[] = {
        "",           "../etc/passwd",
        "..",         ".",
        ".hidden",    "a/b",
        "a\\b",       "-x",
        "-",          "wf 1",
        "wf\t",       "wf\n",
        "wf:1",       "wf*",
        "wf?",        "wf%2F",
        "wf\xc3\xa9", "\xc3\xa9t\xc3\xa9",
        "wf;rm",      "wf'",
        "wf\"",       "~wf",
        "wf~",        "[wf]",
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        expect_workflow(invalid[i], 0);
    expect_workflow(NULL, 0);
    expect_workflow(repeat('w', 129), 0);
    expect_workflow(repeat('w', 1000), 0);
}

static void workflow_rejects_snapshot_key_lookalikes(void **state)
{
    (void)state;
    static const char *invalid[] = {
        "wf-123",  "wf-1",  "wf-0", "wf-1467149783", "wf-123-init",        "wf-1-init",  "a-b-1",
        "wf.v2-7", "wf--1", "1-1",  "_-9-init",      "wf-1467149783-init", "2026-11-23",
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        expect_workflow(invalid[i], 0);
}

static void workflow_errors_name_the_rule_broken(void **state)
{
    (void)state;
    bty_error err = {0};
    assert_int_equal(name_workflow_check("../etc/passwd", &err), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.message,
                        "workflow name must be 1-128 characters of A-Z a-z 0-9 _ . -, starting "
                        "with a letter, digit or _");

    memset(&err, 0, sizeof(err));
    assert_int_equal(name_workflow_check("wf-123-init", &err), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.message, "workflow name must not end in -<digits> or -<digits>-init: "
                                     "those are batch snapshot keys");
}

static void checks_accept_null_error_pointer(void **state)
{
    (void)state;
    assert_int_equal(name_workflow_check("wf1", NULL), 0);
    assert_int_equal(name_workflow_check("..", NULL), -1);
    assert_int_equal(name_step_check("job1", NULL), 0);
    assert_int_equal(name_step_check("[x]", NULL), -1);
}

static void step_accepts_printable_utf8(void **state)
{
    (void)state;
    static const char *valid[] = {
        "job1",
        "a",
        "load orders",
        "load-orders.v2",
        "../etc/passwd",
        "a/b",
        "x=y;z'\"$`\\",
        "caf\xc3\xa9",              /* U+00E9 */
        "\xc2\xa0",                 /* U+00A0, first after C1 */
        "\xe6\x97\xa5\xe6\x9c\xac", /* U+65E5 U+672C */
        "\xe2\x82\xac",             /* U+20AC */
        "\xed\x9f\xbf",             /* U+D7FF, last before surrogates */
        "\xee\x80\x80",             /* U+E000, first after surrogates */
        "\xef\xbf\xbd",             /* U+FFFD */
        "\xf0\x9f\x98\x80",         /* U+1F600 */
        "\xf4\x8f\xbf\xbf",         /* U+10FFFF */
        " ",
        "~",
        "{}()<>",
    };
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        expect_step(valid[i], 1);
    expect_step(repeat('s', 256), 1);
}

static void step_rejects_invalid_utf8(void **state)
{
    (void)state;
    static const char *invalid[] = {
        "\x80",                 /* stray continuation */
        "ab\xbf",               /* stray continuation at the end */
        "\xc3",                 /* truncated 2-byte */
        "\xc3x",                /* lead without continuation */
        "\xe2\x82",             /* truncated 3-byte */
        "\xf0\x9f\x98",         /* truncated 4-byte */
        "\xc0\xaf",             /* overlong '/' */
        "\xc1\xbf",             /* overlong 2-byte */
        "\xe0\x80\xaf",         /* overlong 3-byte '/' */
        "\xe0\x9f\xbf",         /* overlong 3-byte U+07FF */
        "\xf0\x80\x80\xaf",     /* overlong 4-byte '/' */
        "\xf0\x8f\xbf\xbf",     /* overlong 4-byte U+FFFF */
        "\xed\xa0\x80",         /* U+D800 surrogate */
        "\xed\xbf\xbf",         /* U+DFFF surrogate */
        "\xf4\x90\x80\x80",     /* U+110000 */
        "\xf5\x80\x80\x80",     /* lead byte F5 */
        "\xf8\x88\x80\x80\x80", /* 5-byte form */
        "\xfe",
        "\xff",
        "ok\xe2\x82\xacok\xe2\x28\xa1", /* good, then a bad continuation */
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        expect_step(invalid[i], 0);
}

static void step_rejects_control_characters(void **state)
{
    (void)state;
    static const char *invalid[] = {
        "a\tb",       "a\nb",        "\r",      "\x01",
        "\x1f",       "job\x1b[31m", "del\x7f", "\xc2\x80", /* U+0080 */
        "\xc2\x85",                                         /* U+0085 NEL */
        "\xc2\x9f",                                         /* U+009F */
        "a\xc2\x9bz",                                       /* U+009B CSI */
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        expect_step(invalid[i], 0);
}

static void step_rejects_brackets_empty_and_too_long(void **state)
{
    (void)state;
    static const char *invalid[] = {"", "[x]", "[", "]", "a[0]", "job]"};
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        expect_step(invalid[i], 0);
    expect_step(NULL, 0);
    expect_step(repeat('s', 257), 0);
    expect_step(repeat('s', 1000), 0);

    /* 255 bytes plus a 2-byte character is 257 bytes: too long. */
    char buf[300];
    memset(buf, 's', 255);
    memcpy(buf + 255, "\xc3\xa9", 3);
    expect_step(buf, 0);
    /* 254 plus the same is exactly 256: fine. */
    memcpy(buf + 254, "\xc3\xa9", 3);
    expect_step(buf, 1);
}

static void step_errors_name_the_rule_broken(void **state)
{
    (void)state;
    bty_error err = {0};
    assert_int_equal(name_step_check("[x]", &err), -1);
    assert_int_equal(err.status, 400);
    assert_non_null(strstr(err.message, "[ or ]"));
    assert_int_equal(name_step_check("\xc0\xaf", &err), -1);
    assert_non_null(strstr(err.message, "UTF-8"));
    assert_int_equal(name_step_check("a\nb", &err), -1);
    assert_non_null(strstr(err.message, "control"));
    assert_int_equal(name_step_check("", &err), -1);
    assert_non_null(strstr(err.message, "1-256 bytes"));
}

static void secret_equal_is_one_only_for_identical_strings(void **state)
{
    (void)state;
    static const struct {
        const char *a, *b;
        int want;
    } cases[] = {
        {"s3cret", "s3cret", 1},  {"", "", 1},
        {"s3cret", "s3creT", 0},  {"S3cret", "s3cret", 0},
        {"s3cre", "s3cret", 0},   {"s3cret", "s3cre", 0},
        {"s3cret!", "s3cret", 0}, {"", "s3cret", 0},
        {"s3cret", "", 0},        {"a", "b", 0},
        {"\xff", "\xfe", 0},      {"tok\xc3\xa9n", "tok\xc3\xa9n", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (secret_equal(cases[i].a, cases[i].b) != cases[i].want)
            fail_msg("secret_equal(\"%s\", \"%s\") should be %d", cases[i].a, cases[i].b,
                     cases[i].want);
}

static void secret_equal_with_prefix_of_other_is_unequal(void **state)
{
    (void)state;
    /* b is a prefix of a, so only the lengths differ; 512 ^ 256 has a zero
     * low byte, so the whole length difference must count. */
    char a[600], b[600];
    memset(a, 'k', 512);
    a[512] = '\0';
    memcpy(b, a, sizeof(b));
    assert_int_equal(secret_equal(a, b), 1);
    b[256] = '\0';
    assert_int_equal(secret_equal(a, b), 0);
    assert_int_equal(secret_equal(b, a), 0);
}

static void secret_equal_with_null_is_unequal(void **state)
{
    (void)state;
    assert_int_equal(secret_equal(NULL, "x"), 0);
    assert_int_equal(secret_equal("x", NULL), 0);
    assert_int_equal(secret_equal(NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(workflow_accepts_letters_digits_underscore_dot_dash),
        cmocka_unit_test(workflow_rejects_paths_and_other_characters),
        cmocka_unit_test(workflow_rejects_snapshot_key_lookalikes),
        cmocka_unit_test(workflow_errors_name_the_rule_broken),
        cmocka_unit_test(checks_accept_null_error_pointer),
        cmocka_unit_test(step_accepts_printable_utf8),
        cmocka_unit_test(step_rejects_invalid_utf8),
        cmocka_unit_test(step_rejects_control_characters),
        cmocka_unit_test(step_rejects_brackets_empty_and_too_long),
        cmocka_unit_test(step_errors_name_the_rule_broken),
        cmocka_unit_test(secret_equal_is_one_only_for_identical_strings),
        cmocka_unit_test(secret_equal_with_prefix_of_other_is_unequal),
        cmocka_unit_test(secret_equal_with_null_is_unequal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
