/*
 * test_fields.c - unit tests of fields.c: the table of special fields
 * (SPEC section 2) found by name and only by its exact name, the type,
 * bounds and flags of each row, messages that name the bounds of the
 * table, which values fit each type, that rules_end refuses every row as
 * a close/fail parameter, and the names that would pass for a row in the
 * sh or infa output (special_field_reserved), which rules_end refuses too.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "batchy.h"

static const bty_special_field *found(const char *name)
{
    const bty_special_field *f = special_field_find(name);
    if (!f)
        fail_msg("\"%s\" should be a special field", name);
    assert_string_equal(f->name, name);
    return f;
}

static void finds_every_field_of_spec_sections_2_and_9_with_its_type(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bty_field_type type;
    } cases[] = {
        {"status", FIELD_STATUS},         {"batch_id", FIELD_ID},
        {"from_date", FIELD_TIME},        {"to_date", FIELD_TIME},
        {"reprocess_hours", FIELD_HOURS}, {"batch_start", FIELD_TIME},
        {"batch_end", FIELD_TIME},        {"trunc_start", FIELD_BOOL},
        {"error_message", FIELD_TEXT},    {"infa_section", FIELD_TEXT},
        {"expected_by", FIELD_CLOCK},     {"rewind_to", FIELD_TIME},
        {"token", FIELD_PARAM},           {"step", FIELD_PARAM},
        {"error", FIELD_PARAM},
    };
    size_t n;
    special_fields(&n);
    assert_int_equal(n, sizeof(cases) / sizeof(cases[0]));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(found(cases[i].name)->type, cases[i].type);
}

static void other_names_are_not_special(void **state)
{
    (void)state;
    static const char *const names[] = {
        "",       "rows_loaded", "Status", "STATUS", "status ", " status", "batch",
        "batch_", "batch_id2",   "date",   "tokens", "steps",   "errors",  "expected_byx",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (special_field_find(names[i]))
            fail_msg("\"%s\" should not be special", names[i]);
}

static void every_row_is_found_by_its_name_and_names_are_unique(void **state)
{
    (void)state;
    size_t n;
    const bty_special_field *rows = special_fields(&n);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(special_field_find(rows[i].name), &rows[i]);
}

static void no_field_is_settable_and_only_times_are_canonical(void **state)
{
    (void)state;
    size_t n;
    const bty_special_field *rows = special_fields(&n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rows[i].settable, 0);
        assert_int_equal(rows[i].canonical, rows[i].type == FIELD_TIME);
        /* every step field says in words what it must be */
        assert_int_equal(rows[i].rule != NULL, rows[i].type != FIELD_PARAM);
    }
}

static void bounds_are_the_shared_ones_and_messages_name_them(void **state)
{
    (void)state;
    const bty_special_field *hours = found("reprocess_hours");
    const bty_special_field *id = found("batch_id");
    assert_true(hours->min == 0 && hours->max == BTY_MAX_REPROCESS_HOURS);
    assert_true(id->min == 0 && id->max == (double)BTY_MAX_BATCH_ID);
    const bty_special_field *bounded[] = {hours, id};
    for (size_t i = 0; i < 2; i++) {
        char words[64];
        snprintf(words, sizeof(words), "from %.15g to %.15g", bounded[i]->min, bounded[i]->max);
        if (!strstr(bounded[i]->rule, words))
            fail_msg("%s: \"%s\" does not say \"%s\"", bounded[i]->name, bounded[i]->rule, words);
    }
}

/* Does `json` fit field `name`? */
static int fits(const char *name, const char *json)
{
    cJSON *v = cJSON_Parse(json);
    assert_non_null(v);
    int ok = special_field_fits(found(name), v);
    cJSON_Delete(v);
    return ok;
}

static void values_fit_by_type(void **state)
{
    (void)state;
    /* times: what time_parse reads, or null */
    assert_true(fits("expected_by", "\"06:00\""));
    assert_true(fits("expected_by", "\"00:00\""));
    assert_true(fits("expected_by", "\"23:59\""));
    for (const char *const *bad =
             (const char *const[]){"\"24:00\"", "\"6:00\"", "\"06:60\"", "\"06:00:00\"",
                                   "\"06-00\"", "360", "null", "\"\"", "\"06:0\"", NULL};
         *bad; bad++)
        assert_false(fits("expected_by", *bad));
    assert_true(fits("from_date", "\"2026-01-01\""));
    assert_true(fits("batch_end", "\"2026-01-01T06:00:00+02:00\""));
    assert_true(fits("to_date", "null"));
    assert_false(fits("batch_start", "\"yesterday\""));
    assert_false(fits("from_date", "5"));
    assert_false(fits("to_date", "[\"2026-01-01\"]"));
    /* batch_id: a whole number within its bounds */
    assert_true(fits("batch_id", "0"));
    assert_true(fits("batch_id", "999999999999999"));
    assert_false(fits("batch_id", "1000000000000000"));
    assert_false(fits("batch_id", "-1"));
    assert_false(fits("batch_id", "1.5"));
    assert_false(fits("batch_id", "\"17\""));
    /* reprocess_hours: any number within its bounds */
    assert_true(fits("reprocess_hours", "0"));
    assert_true(fits("reprocess_hours", "2.5"));
    assert_true(fits("reprocess_hours", "1000000"));
    assert_false(fits("reprocess_hours", "1000000.5"));
    assert_false(fits("reprocess_hours", "-0.1"));
    assert_false(fits("reprocess_hours", "null"));
    /* booleans, statuses, text */
    assert_true(fits("trunc_start", "false"));
    assert_false(fits("trunc_start", "\"true\""));
    assert_false(fits("trunc_start", "1"));
    assert_true(fits("status", "\"new\""));
    assert_true(fits("status", "\"failed\""));
    assert_false(fits("status", "\"failure\""));
    assert_false(fits("status", "\"abandoned\""));
    assert_true(fits("error_message", "\"disk full\""));
    assert_true(fits("infa_section", "null"));
    assert_false(fits("infa_section", "{}"));
    /* close/fail parameters are not step fields: a file may use them */
    assert_true(fits("token", "{\"a\": 1}"));
}

static void fail_refuses_every_row_as_a_parameter(void **state)
{
    (void)state;
    cJSON *doc = cJSON_Parse("{\"s\": {\"status\": \"open\", \"batch_id\": 7}}");
    assert_non_null(doc);
    size_t n;
    const bty_special_field *rows = special_fields(&n);
    for (size_t i = 0; i < n; i++) {
        /* fail_batch: close_batch refuses error= with a message of its own */
        const char *v = "x";
        bty_end_request req = {
            .status = "failed", .extra_names = &rows[i].name, .extra_values = &v, .nextra = 1};
        bty_change out;
        bty_error err = {0};
        bty_time now = {1800000000, 0};
        assert_int_equal(rules_end("wf", doc, &req, now, &out, &err), -1);
        assert_int_equal(err.status, 400);
        char want[128];
        snprintf(want, sizeof(want), "'%s' is a special field that fail_batch cannot set",
                 rows[i].name);
        assert_non_null(strstr(err.message, want));
    }
    cJSON_Delete(doc);
}

/* Which row each name passes for: itself, its sh spelling (upper-cased,
 * other bytes as '_'), or itself compared without case. */
static void look_alikes_pass_for_the_row_they_print_as(void **state)
{
    (void)state;
    static const struct {
        const char *name, *row;
    } cases[] = {
        {"from_date", "from_date"},
        {"FROM_DATE", "from_date"},
        {"from-date", "from_date"},
        {"From_Date", "from_date"},
        {"from date", "from_date"},
        {"batch.id", "batch_id"},
        {"Batch-Id", "batch_id"},
        {"STATUS", "status"},
        {"error-message", "error_message"},
        {"INFA.SECTION", "infa_section"},
        {"ReProcess_Hours", "reprocess_hours"},
        {"trunc:start", "trunc_start"},
        {"batch_end", "batch_end"},
        {"Batch_Start", "batch_start"},
        {"to.date", "to_date"},
        {"Token", "token"},
        {"STEP", "step"},
        {"Error", "error"},
        /* letters a caseless reader (Java, Unicode folding) takes for
         * ASCII: long s, dotless and dotted i, the Kelvin sign */
        {"\xc5\xbftatus", "status"},
        {"\xc4\xb1nfa_section", "infa_section"},
        {"\xc4\xb0NFA_SECTION", "infa_section"},
        {"to\xe2\x84\xaa"
         "en",
         "token"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const bty_special_field *f = special_field_reserved(cases[i].name);
        if (!f || strcmp(f->name, cases[i].row) != 0)
            fail_msg("\"%s\" should pass for %s, not %s", cases[i].name, cases[i].row,
                     f ? f->name : "nothing");
    }
}

static void other_names_pass_for_no_row(void **state)
{
    (void)state;
    static const char *const names[] = {
        "",           "rows_loaded",   "status_",     "_status",       "statuss",
        "from__date", "fromdate",      "tokens",      "steps",         "errors",
        "from_date ", " status",       "expected_bye", "st\xc3\xa1tus", "batch\xc2\xa0id",
        "batch__id",  "from_date\x01", "to_dat",      "s\xc5\xbf",     "\xe2\x84\xaa",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const bty_special_field *f = special_field_reserved(names[i]);
        if (f)
            fail_msg("\"%s\" should pass for no field, not %s", names[i], f->name);
    }
}

/* close_batch?FROM_DATE=1999-01-01 was stored, and after `eval` of the sh
 * output it set the window the step processes. */
static void close_refuses_names_that_pass_for_a_field(void **state)
{
    (void)state;
    cJSON *doc = cJSON_Parse("{\"s\": {\"status\": \"open\", \"batch_id\": 7}}");
    assert_non_null(doc);
    static const char *const names[] = {"FROM_DATE", "from-date", "From_Date", "batch.id",
                                        "Status",    "TOKEN",     "Step",      "ERROR"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = "1999-01-01";
        bty_end_request req = {
            .status = "success", .extra_names = &names[i], .extra_values = &v, .nextra = 1};
        bty_change out;
        bty_error err = {0};
        bty_time now = {1800000000, 0};
        assert_int_equal(rules_end("wf", doc, &req, now, &out, &err), -1);
        assert_int_equal(err.status, 400);
        char want[128];
        snprintf(want, sizeof(want), "'%s' is a special field that close_batch cannot set",
                 names[i]);
        if (!strstr(err.message, want))
            fail_msg("%s: %s", names[i], err.message);
    }
    /* and other names are stored */
    const char *name = "rows_loaded", *v = "12";
    bty_end_request req = {
        .status = "success", .extra_names = &name, .extra_values = &v, .nextra = 1};
    bty_change out;
    bty_error err = {0};
    bty_time now = {1800000000, 0};
    assert_int_equal(rules_end("wf", doc, &req, now, &out, &err), 0);
    change_free(&out);
    cJSON_Delete(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(finds_every_field_of_spec_sections_2_and_9_with_its_type),
        cmocka_unit_test(other_names_are_not_special),
        cmocka_unit_test(every_row_is_found_by_its_name_and_names_are_unique),
        cmocka_unit_test(no_field_is_settable_and_only_times_are_canonical),
        cmocka_unit_test(bounds_are_the_shared_ones_and_messages_name_them),
        cmocka_unit_test(values_fit_by_type),
        cmocka_unit_test(fail_refuses_every_row_as_a_parameter),
        cmocka_unit_test(look_alikes_pass_for_the_row_they_print_as),
        cmocka_unit_test(other_names_pass_for_no_row),
        cmocka_unit_test(close_refuses_names_that_pass_for_a_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
