/*
 * test_format.c - unit tests of format.c: the exact text of the json, infa
 * and sh outputs for documents with every kind of value, odd names, special
 * fields after the other parameters (in sh, after those of every step),
 * quotes and newlines, and robustness on documents of unusual shape.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "batchy.h"

static cJSON *doc_parse(const char *json)
{
    cJSON *doc = cJSON_Parse(json);
    if (!doc)
        fail_msg("test document does not parse: %s", json);
    return doc;
}

/* Render json with each format and compare with the expected text. */
static void expect_json(const char *json, const char *want)
{
    cJSON *doc = doc_parse(json);
    char *got = format_json(doc);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    cJSON_Delete(doc);
}

static void expect_infa(const char *json, const char *want)
{
    cJSON *doc = doc_parse(json);
    char *got = format_infa(doc);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    cJSON_Delete(doc);
}

static void expect_sh(const char *workflow, long long batch_id, const char *json, const char *want)
{
    cJSON *doc = doc_parse(json);
    char *got = format_sh(workflow, batch_id, doc);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    cJSON_Delete(doc);
}

/* A document with every kind of value, used by several tests. */
static const char every_value[] = "{\"extract\": {\"batch_id\": 1467149783, \"rate\": 1.5, "
                                  "\"neg\": -0.25, \"big\": 1e20, \"ok\": true, \"no\": false, "
                                  "\"none\": null, \"list\": [1, \"a\", {\"b\": null}], "
                                  "\"obj\": {}, \"s\": \"dw.orders\", \"blank\": \"\"}}";

static void json_is_cjson_pretty_print_plus_newline(void **state)
{
    (void)state;
    expect_json("{\"job1\": {\"status\": \"open\", \"batch_id\": 1467149783, \"rate\": 1.5, "
                "\"batch_end\": null, \"trunc_start\": true, \"tags\": [\"a\", \"b\"]}, "
                "\"job2\": {}}",
                "{\n"
                "\t\"job1\":\t{\n"
                "\t\t\"status\":\t\"open\",\n"
                "\t\t\"batch_id\":\t1467149783,\n"
                "\t\t\"rate\":\t1.5,\n"
                "\t\t\"batch_end\":\tnull,\n"
                "\t\t\"trunc_start\":\ttrue,\n"
                "\t\t\"tags\":\t[\"a\", \"b\"]\n"
                "\t},\n"
                "\t\"job2\":\t{\n"
                "\t}\n"
                "}\n");
}

static void json_escapes_quotes_and_newlines_in_strings(void **state)
{
    (void)state;
    expect_json("{\"a\": {\"msg\": \"say \\\"hi\\\"\\nbye\"}}",
                "{\n\t\"a\":\t{\n\t\t\"msg\":\t\"say \\\"hi\\\"\\nbye\"\n\t}\n}\n");
}

static void json_of_empty_or_missing_document_is_empty_object(void **state)
{
    (void)state;
    expect_json("{}", "{\n}\n");
    char *got = format_json(NULL);
    assert_non_null(got);
    assert_string_equal(got, "{\n}\n");
    free(got);
}

static void infa_writes_step_header_then_one_line_per_param(void **state)
{
    (void)state;
    expect_infa("{\"job1\": {\"param1\": \"hello\", \"status\": \"open\"}, "
                "\"job2\": {\"target\": \"dw.orders\"}}",
                "[job1]\n"
                "$$param1=hello\n"
                "$$status=open\n"
                "[job2]\n"
                "$$target=dw.orders\n");
}

static void infa_renders_numbers_booleans_null_and_nested_values(void **state)
{
    (void)state;
    /* batch_id, first in the record, is a special field: printed last */
    expect_infa(every_value, "[extract]\n"
                             "$$rate=1.5\n"
                             "$$neg=-0.25\n"
                             "$$big=1e+20\n"
                             "$$ok=true\n"
                             "$$no=false\n"
                             "$$none=\n"
                             "$$list=[1,\"a\",{\"b\":null}]\n"
                             "$$obj={}\n"
                             "$$s=dw.orders\n"
                             "$$blank=\n"
                             "$$batch_id=1467149783\n");
}

static void infa_uses_infa_section_as_header(void **state)
{
    (void)state;
    expect_infa("{\"load-orders.v2\": {\"target\": \"dw.orders\", "
                "\"infa_section\": \"Global.WF:wf_load.ST:s_m_load\", \"rows\": 12}, "
                "\"other\": {\"x\": \"1\"}}",
                "[Global.WF:wf_load.ST:s_m_load]\n"
                "$$target=dw.orders\n"
                "$$rows=12\n"
                "[other]\n"
                "$$x=1\n");
}

static void infa_falls_back_to_step_name_when_infa_section_is_not_a_string(void **state)
{
    (void)state;
    expect_infa("{\"job1\": {\"infa_section\": 5, \"a\": \"b\"}, "
                "\"job2\": {\"infa_section\": null}}",
                "[job1]\n$$a=b\n[job2]\n");
}

static void infa_turns_newlines_into_spaces_everywhere(void **state)
{
    (void)state;
    expect_infa("{\"job\\n1\": {\"msg\": \"line1\\nline2\\r\\nline3\\r\", "
                "\"odd\\rname\": \"x\", \"nested\": [\"a\\nb\"]}, "
                "\"job2\": {\"infa_section\": \"sec\\ntion\"}}",
                "[job 1]\n"
                "$$msg=line1 line2  line3 \n"
                "$$odd name=x\n"
                "$$nested=[\"a\\nb\"]\n"
                "[sec tion]\n");
}

static void infa_keeps_quotes_and_brackets_in_values_verbatim(void **state)
{
    (void)state;
    expect_infa("{\"job1\": {\"sql\": \"select 'x' from \\\"t\\\" where a=[1]\", "
                "\"path\": \"C:\\\\tmp\\\\$$x\"}}",
                "[job1]\n"
                "$$sql=select 'x' from \"t\" where a=[1]\n"
                "$$path=C:\\tmp\\$$x\n");
}

static void infa_of_empty_document_is_empty(void **state)
{
    (void)state;
    expect_infa("{}", "");
    expect_infa("{\"job1\": {}}", "[job1]\n");
    char *got = format_infa(NULL);
    assert_non_null(got);
    assert_string_equal(got, "");
    free(got);
}

static void sh_writes_workflow_and_batch_id_then_every_param(void **state)
{
    (void)state;
    expect_sh("wf1", 1467149783,
              "{\"job1\": {\"param1\": \"hello\", \"batch_id\": 1467149783, "
              "\"from_date\": \"2026-11-23T06:00:00.000000\"}}",
              "BATCHY_WORKFLOW='wf1'\n"
              "BATCHY_BATCH_ID=1467149783\n"
              "BATCHY_JOB1_PARAM1='hello'\n"
              "BATCHY_JOB1_BATCH_ID='1467149783'\n"
              "BATCHY_JOB1_FROM_DATE='2026-11-23T06:00:00.000000'\n");
}

static void sh_renders_values_as_infa_does(void **state)
{
    (void)state;
    expect_sh("wf1", 0, every_value,
              "BATCHY_WORKFLOW='wf1'\n"
              "BATCHY_BATCH_ID=0\n"
              "BATCHY_EXTRACT_RATE='1.5'\n"
              "BATCHY_EXTRACT_NEG='-0.25'\n"
              "BATCHY_EXTRACT_BIG='1e+20'\n"
              "BATCHY_EXTRACT_OK='true'\n"
              "BATCHY_EXTRACT_NO='false'\n"
              "BATCHY_EXTRACT_NONE=''\n"
              "BATCHY_EXTRACT_LIST='[1,\"a\",{\"b\":null}]'\n"
              "BATCHY_EXTRACT_OBJ='{}'\n"
              "BATCHY_EXTRACT_S='dw.orders'\n"
              "BATCHY_EXTRACT_BLANK=''\n"
              "BATCHY_EXTRACT_BATCH_ID='1467149783'\n");
}

static void sh_upper_cases_names_and_replaces_other_bytes_with_underscore(void **state)
{
    (void)state;
    /* "caf\u00e9" is two bytes after "caf": each becomes '_'. */
    expect_sh("load-orders.v2", 1,
              "{\"load-orders.v2\": {\"target.table\": \"t\", \"Mixed_Case9\": \"m\"}, "
              "\"caf\\u00e9 step\": {\"a b=c\": \"v\", \"$(x)\": \"y\"}}",
              "BATCHY_WORKFLOW='load-orders.v2'\n"
              "BATCHY_BATCH_ID=1\n"
              "BATCHY_LOAD_ORDERS_V2_TARGET_TABLE='t'\n"
              "BATCHY_LOAD_ORDERS_V2_MIXED_CASE9='m'\n"
              "BATCHY_CAF___STEP_A_B_C='v'\n"
              "BATCHY_CAF___STEP___X_='y'\n");
}

static void sh_includes_infa_section(void **state)
{
    (void)state;
    /* infa_section is a special field: after the other parameters */
    expect_sh("wf1", 7, "{\"job1\": {\"infa_section\": \"s_m_load\", \"a\": 1}}",
              "BATCHY_WORKFLOW='wf1'\n"
              "BATCHY_BATCH_ID=7\n"
              "BATCHY_JOB1_A='1'\n"
              "BATCHY_JOB1_INFA_SECTION='s_m_load'\n");
}

/* A parameter that passes for a special field (stored before close_batch
 * refused such names) comes first, so that a reader keeping the last line
 * of a name, as eval does, keeps the real field. */
static void infa_prints_special_fields_after_look_alike_params(void **state)
{
    (void)state;
    expect_infa("{\"job1\": {\"from_date\": \"2026-11-23T06:00:00.000000\", "
                "\"status\": \"open\", \"FROM_DATE\": \"1999-01-01\", \"rows\": 3, "
                "\"infa_section\": \"s1\", \"token\": \"t\"}, "
                "\"job2\": {\"batch_id\": 5, \"Batch_Id\": 1}}",
                "[s1]\n"
                "$$FROM_DATE=1999-01-01\n"
                "$$rows=3\n"
                "$$token=t\n"
                "$$from_date=2026-11-23 06:00:00\n"
                "$$status=open\n"
                "[job2]\n"
                "$$Batch_Id=1\n"
                "$$batch_id=5\n");
}

/* The special times as the original's infa output wrote them, Python's
 * str(datetime): a space, and the fraction only when it is not zero. JSON,
 * sh and Redis keep the canonical form. */
static void infa_writes_times_as_the_original_did(void **state)
{
    (void)state;
    expect_infa("{\"a\": {\"from_date\": \"2026-11-23T06:00:00.222222\", "
                "\"to_date\": \"2026-11-23T00:00:00.000000\", \"batch_start\": \"2026-11-23\", "
                "\"batch_end\": null, \"when\": \"2026-11-23T06:00:00.000000\", "
                "\"batch_id\": 7}}",
                "[a]\n"
                "$$when=2026-11-23T06:00:00.000000\n"
                "$$from_date=2026-11-23 06:00:00.222222\n"
                "$$to_date=2026-11-23 00:00:00\n"
                "$$batch_start=2026-11-23 00:00:00\n"
                "$$batch_end=\n"
                "$$batch_id=7\n");
    char text[BTY_TIME_LEN + 1];
    time_format_python((bty_time){1795392000, 5}, text);
    assert_string_equal(text, "2026-11-23 00:00:00.000005");
}

static void sh_prints_special_fields_of_every_step_after_all_other_params(void **state)
{
    (void)state;
    /* "date" of step "a_from" prints as BATCHY_A_FROM_DATE, as does the
     * from_date of step "a", which sorts first: the field must still be
     * the last line of that name. */
    expect_sh("wf1", 9,
              "{\"a\": {\"from_date\": \"2026-11-23T06:00:00.000000\", \"x\": \"1\", "
              "\"from-date\": \"1999-01-01\"}, "
              "\"a_from\": {\"date\": \"1999-01-01\", \"status\": \"open\"}}",
              "BATCHY_WORKFLOW='wf1'\n"
              "BATCHY_BATCH_ID=9\n"
              "BATCHY_A_X='1'\n"
              "BATCHY_A_FROM_DATE='1999-01-01'\n"
              "BATCHY_A_FROM_DATE='1999-01-01'\n"
              "BATCHY_A_FROM_DATE='2026-11-23T06:00:00.000000'\n"
              "BATCHY_A_FROM_STATUS='open'\n");
}

static void sh_writes_header_again_when_a_param_prints_as_it(void **state)
{
    (void)state;
    /* step "batch", parameter "id": BATCHY_BATCH_ID */
    expect_sh("wf1", 9, "{\"batch\": {\"id\": \"1\", \"status\": \"open\"}}",
              "BATCHY_WORKFLOW='wf1'\n"
              "BATCHY_BATCH_ID=9\n"
              "BATCHY_BATCH_ID='1'\n"
              "BATCHY_BATCH_STATUS='open'\n"
              "BATCHY_WORKFLOW='wf1'\n"
              "BATCHY_BATCH_ID=9\n");
}

static void sh_escapes_single_quotes_so_eval_cannot_escape(void **state)
{
    (void)state;
    expect_sh("wf1", 2,
              "{\"job1\": {"
              "\"q\": \"it's\", "
              "\"qq\": \"''\", "
              "\"only\": \"'\", "
              "\"breakout\": \"'; rm -rf / #\", "
              "\"subst\": \"$(id) `id` ${HOME} $HOME\", "
              "\"backslash\": \"a\\\\'b\\\\\", "
              "\"dq\": \"say \\\"hi\\\"\", "
              "\"nl\": \"a\\n'\\nb\\r\"}}",
              "BATCHY_WORKFLOW='wf1'\n"
              "BATCHY_BATCH_ID=2\n"
              "BATCHY_JOB1_Q='it'\\''s'\n"
              "BATCHY_JOB1_QQ=''\\'''\\'''\n"
              "BATCHY_JOB1_ONLY=''\\'''\n"
              "BATCHY_JOB1_BREAKOUT=''\\''; rm -rf / #'\n"
              "BATCHY_JOB1_SUBST='$(id) `id` ${HOME} $HOME'\n"
              "BATCHY_JOB1_BACKSLASH='a\\'\\''b\\'\n"
              "BATCHY_JOB1_DQ='say \"hi\"'\n"
              "BATCHY_JOB1_NL='a '\\'' b '\n");
}

static void sh_quotes_workflow_and_prints_negative_batch_id(void **state)
{
    (void)state;
    expect_sh("it's", -5, "{}", "BATCHY_WORKFLOW='it'\\''s'\nBATCHY_BATCH_ID=-5\n");
    char *got = format_sh(NULL, 0, NULL);
    assert_non_null(got);
    assert_string_equal(got, "BATCHY_WORKFLOW=''\nBATCHY_BATCH_ID=0\n");
    free(got);
}

static void formats_survive_documents_of_unusual_shape(void **state)
{
    (void)state;
    /* An array document, a step that is not an object, a bare scalar. */
    expect_infa("[1, {\"a\": 1}]", "[]\n[]\n$$a=1\n");
    expect_infa("{\"job1\": 5, \"job2\": [\"x\"], \"job3\": {\"a\": null}}",
                "[job1]\n[job2]\n[job3]\n$$a=\n");
    expect_infa("\"just a string\"", "");
    expect_sh("wf1", 1, "{\"job1\": 5, \"job2\": [\"x\"], \"job3\": {\"a\": null}}",
              "BATCHY_WORKFLOW='wf1'\nBATCHY_BATCH_ID=1\nBATCHY_JOB3_A=''\n");
    expect_sh("wf1", 1, "[{\"a\": \"b\"}]",
              "BATCHY_WORKFLOW='wf1'\nBATCHY_BATCH_ID=1\nBATCHY__A='b'\n");
    expect_json("[1, 2]", "[1, 2]\n");
}

static void formats_do_not_truncate_long_values(void **state)
{
    (void)state;
    size_t n = 200000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'v', n);
    big[n] = '\0';
    cJSON *doc = cJSON_CreateObject();
    cJSON *step = cJSON_AddObjectToObject(doc, "job1");
    assert_non_null(cJSON_AddStringToObject(step, "big", big));

    char *infa = format_infa(doc);
    assert_non_null(infa);
    assert_int_equal(strlen(infa), strlen("[job1]\n$$big=\n") + n);
    assert_memory_equal(infa + strlen("[job1]\n$$big="), big, n);

    char *sh = format_sh("wf1", 1, doc);
    assert_non_null(sh);
    const char *prefix = "BATCHY_WORKFLOW='wf1'\nBATCHY_BATCH_ID=1\nBATCHY_JOB1_BIG='";
    assert_int_equal(strlen(sh), strlen(prefix) + n + 2);
    assert_memory_equal(sh + strlen(prefix), big, n);
    assert_string_equal(sh + strlen(prefix) + n, "'\n");

    free(sh);
    free(infa);
    cJSON_Delete(doc);
    free(big);
}

/* Numbers read from Redis keep the text they had there (doc_from_hash),
 * as Python's json.loads then json.dumps would write it; numbers built
 * without text get digits or repr(float) (doc_number_texts). Either way
 * every format prints that text: floats stay floats, every digit of a
 * large integer is kept. */
static void numbers_print_as_python_writes_them_in_every_format(void **state)
{
    (void)state;
    static const char json[] = "{\"a\":1763981234,\"b\":-7,\"c\":-0,\"d\":1.50,"
                               "\"e\":-0.0,\"f\":9007199254740993,\"g\":[2,{\"h\":3.0}],"
                               "\"i\":1e300,\"j\":1E5,\"k\":0.1e-4}";
    bty_field field = {"s", 1, json, sizeof(json) - 1};
    bty_error err = {0};
    cJSON *doc = doc_from_hash(&field, 1, "wf1", &err);
    assert_non_null(doc);
    cJSON *record = cJSON_GetObjectItem(doc, "s");
    assert_true(cJSON_IsRaw(cJSON_GetObjectItem(record, "a")));
    assert_true(cJSON_IsRaw(cJSON_GetObjectItem(record, "d")));
    double value = 0;
    assert_int_equal(doc_number(cJSON_GetObjectItem(record, "a"), &value), 1);
    assert_true(value == 1763981234.0);
    assert_int_equal(doc_number(cJSON_GetObjectItem(record, "d"), &value), 1);
    assert_true(value == 1.5);

    char *stored = py_json_print(record);
    assert_string_equal(stored, "{\"a\": 1763981234, \"b\": -7, \"c\": 0, \"d\": 1.5, "
                                "\"e\": -0.0, \"f\": 9007199254740993, \"g\": [2, {\"h\": 3.0}], "
                                "\"i\": 1e+300, \"j\": 100000.0, \"k\": 1e-05}");
    free(stored);
    char *got = format_infa(doc);
    assert_non_null(strstr(got, "$$d=1.5\n"));
    assert_non_null(strstr(got, "$$f=9007199254740993\n"));
    assert_non_null(strstr(got, "$$g=[2,{\"h\":3.0}]\n"));
    assert_non_null(strstr(got, "$$j=100000.0\n"));
    free(got);
    got = format_json(doc);
    assert_non_null(strstr(got, "\"h\":\t3.0"));
    assert_non_null(strstr(got, "\"f\":\t9007199254740993,"));
    free(got);
    cJSON_Delete(doc);

    /* Built without text: a whole number within 2^53 is an integer, the
     * rest repr(float); a YAML float carries its repr (cfgscalar.c). */
    cJSON *built = cJSON_CreateObject();
    cJSON_AddNumberToObject(built, "n", 42);
    cJSON_AddNumberToObject(built, "x", 0.1 + 0.2);
    cJSON_AddNumberToObject(built, "y", 1e16);
    doc_number_texts(built);
    stored = py_json_print(built);
    assert_string_equal(stored, "{\"n\": 42, \"x\": 0.30000000000000004, \"y\": 1e+16}");
    free(stored);
    cJSON_Delete(built);

    cJSON *id = doc_create_integer(-1234567890123LL);
    char *text = cJSON_PrintUnformatted(id);
    assert_string_equal(text, "-1234567890123");
    cJSON_free(text);
    cJSON_Delete(id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_is_cjson_pretty_print_plus_newline),
        cmocka_unit_test(json_escapes_quotes_and_newlines_in_strings),
        cmocka_unit_test(json_of_empty_or_missing_document_is_empty_object),
        cmocka_unit_test(infa_writes_step_header_then_one_line_per_param),
        cmocka_unit_test(infa_renders_numbers_booleans_null_and_nested_values),
        cmocka_unit_test(infa_uses_infa_section_as_header),
        cmocka_unit_test(infa_falls_back_to_step_name_when_infa_section_is_not_a_string),
        cmocka_unit_test(infa_turns_newlines_into_spaces_everywhere),
        cmocka_unit_test(infa_keeps_quotes_and_brackets_in_values_verbatim),
        cmocka_unit_test(infa_of_empty_document_is_empty),
        cmocka_unit_test(sh_writes_workflow_and_batch_id_then_every_param),
        cmocka_unit_test(sh_renders_values_as_infa_does),
        cmocka_unit_test(sh_upper_cases_names_and_replaces_other_bytes_with_underscore),
        cmocka_unit_test(sh_includes_infa_section),
        cmocka_unit_test(infa_prints_special_fields_after_look_alike_params),
        cmocka_unit_test(infa_writes_times_as_the_original_did),
        cmocka_unit_test(sh_prints_special_fields_of_every_step_after_all_other_params),
        cmocka_unit_test(sh_writes_header_again_when_a_param_prints_as_it),
        cmocka_unit_test(sh_escapes_single_quotes_so_eval_cannot_escape),
        cmocka_unit_test(sh_quotes_workflow_and_prints_negative_batch_id),
        cmocka_unit_test(formats_survive_documents_of_unusual_shape),
        cmocka_unit_test(formats_do_not_truncate_long_values),
        cmocka_unit_test(numbers_print_as_python_writes_them_in_every_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
