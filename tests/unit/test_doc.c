/*
 * test_doc.c - unit tests of doc_from_hash (batchy/doc.c), the one reader
 * of Redis hashes: what a hand edit may leave there and still be read (the
 * original's separators, "failure", a key written twice, a batch_id as
 * numeric text), and what is refused with a 409 naming the key, the step
 * and the field (a step name or a string that is not UTF-8, \u0000, text
 * around the object, a batch_id that is not a whole number in bounds).
 * Every message is valid UTF-8, and every document read prints as valid
 * UTF-8 JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "batchy.h"

/* Read a hash of one step `name` (name_len bytes) holding `value`
 * (value_len bytes) as key "wf1". */
static cJSON *read_one(const char *name, size_t name_len, const char *value, size_t value_len,
                       bty_error *err)
{
    bty_field f = {name, name_len, value, value_len};
    memset(err, 0, sizeof(*err));
    return doc_from_hash(&f, 1, "wf1", err);
}

/* value must be read, and step job1 print as compact JSON `want`. */
static void assert_reads(const char *value, const char *want)
{
    bty_error err;
    cJSON *doc = read_one("job1", 4, value, strlen(value), &err);
    if (!doc)
        fail_msg("%s\n-> refused: %s", value, err.message);
    char *got = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(doc, "job1"));
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("%s\n-> got      %s\n-> expected %s", value, got, want);
    char *all = format_json(doc);
    assert_non_null(all);
    assert_true(utf8_valid(all, strlen(all)));
    free(all);
    cJSON_free(got);
    cJSON_Delete(doc);
}

/* The hash must be refused with a 409 whose message holds `want`. */
static void assert_refused(const char *name, size_t name_len, const char *value, size_t value_len,
                           const char *want)
{
    bty_error err;
    cJSON *doc = read_one(name, name_len, value, value_len, &err);
    if (doc)
        fail_msg("%.*s: read, expected a 409 saying %s", (int)value_len, value, want);
    size_t len = strlen(err.message);
    assert_true(utf8_valid(err.message, len));
    if (err.status != 409 || !strstr(err.message, want))
        fail_msg("%.*s\n-> got %d: %s\n-> expected 409 with: %s", (int)value_len, value, err.status,
                 err.message, want);
    assert_non_null(strstr(err.message, "fix it with redis-cli or reload the workflow"));
}

static void assert_refused_value(const char *value, const char *want)
{
    assert_refused("job1", 4, value, strlen(value), want);
}

static void lenient_readings_stay(void **state)
{
    (void)state;
    /* the original's separators, "failure", numeric text */
    assert_reads("{\"status\": \"failure\", \"batch_id\": \"1467149783\"}",
                 "{\"status\":\"failed\",\"batch_id\":\"1467149783\"}");
    /* a key written twice keeps its last copy */
    assert_reads("{\"status\":\"open\",\"p\":1,\"status\":\"success\"}",
                 "{\"p\":1,\"status\":\"success\"}");
    /* whole numbers in any JSON form (a float stays one, as Python
     * reads it), null, absent */
    assert_reads("{\"batch_id\":1.0}", "{\"batch_id\":1.0}");
    assert_reads("{\"batch_id\":1e3}", "{\"batch_id\":1000.0}");
    assert_reads("{\"batch_id\":999999999999999}", "{\"batch_id\":999999999999999}");
    assert_reads("{\"batch_id\":\"007\"}", "{\"batch_id\":\"007\"}");
    assert_reads("{\"batch_id\":0}", "{\"batch_id\":0}");
    assert_reads("{\"batch_id\":null}", "{\"batch_id\":null}");
    assert_reads("{}", "{}");
    /* JSON whitespace around the object */
    assert_reads(" \t\r\n{\"a\":1}\n ", "{\"a\":1}");
    /* a backslash before u0000 is text, not NUL */
    assert_reads("{\"path\":\"C:\\\\u0000\"}", "{\"path\":\"C:\\\\u0000\"}");
    /* other escapes, and non-ASCII text, escaped or not */
    assert_reads("{\"n\":\"\\u0001 \\u00e9 \xc3\xa9 \\ud83d\\ude00\"}",
                 "{\"n\":\"\\u0001 \xc3\xa9 \xc3\xa9 \xf0\x9f\x98\x80\"}");
}

static void batch_id_must_be_a_whole_number_in_bounds(void **state)
{
    (void)state;
    static const struct {
        const char *value, *shown;
    } cases[] = {
        {"{\"batch_id\":1.5}", "1.5"},
        {"{\"batch_id\":-5}", "-5"},
        {"{\"batch_id\":1e20}", "1e+20"},
        {"{\"batch_id\":1000000000000000}", "1000000000000000"},
        {"{\"batch_id\":1e999}", "1e999"},
        {"{\"batch_id\":\"1.5\"}", "\"1.5\""},
        {"{\"batch_id\":\"-5\"}", "\"-5\""},
        {"{\"batch_id\":\" 12\"}", "\" 12\""},
        {"{\"batch_id\":\"1e3\"}", "\"1e3\""},
        {"{\"batch_id\":\"\"}", "\"\""},
        {"{\"batch_id\":\"1000000000000000\"}", "\"1000000000000000\""},
        {"{\"batch_id\":true}", "true"},
        {"{\"batch_id\":[1]}", "[1]"},
        {"{\"batch_id\":{}}", "{}"},
        /* the last copy counts, as everywhere */
        {"{\"batch_id\":7,\"batch_id\":-1}", "-1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char want[200];
        snprintf(want, sizeof(want),
                 "step 'job1' of key 'wf1' in Redis: field 'batch_id' is %s, not a whole number "
                 "from 0 to 999999999999999",
                 cases[i].shown);
        assert_refused_value(cases[i].value, want);
    }
}

static void record_must_be_one_json_object(void **state)
{
    (void)state;
    assert_refused_value("{\"status\":\"open\"} x",
                         "step 'job1' of key 'wf1' in Redis: the record has text after its JSON "
                         "object");
    assert_refused_value("{\"a\":1}{\"b\":2}", "the record has text after its JSON object");
    assert_refused_value("\x01{\"a\":1}", "the record has text before its JSON object");
    assert_refused_value("{\"a\":1}\x01", "the record has text after its JSON object");
    assert_refused_value("not json", "step 'job1' of key 'wf1' in Redis: the record is not a "
                                     "JSON object");
    assert_refused_value("[1]", "the record is not a JSON object");
    assert_refused_value("", "the record is not a JSON object");
    /* a lone surrogate is no character */
    assert_refused_value("{\"a\":\"\\ud800\"}", "the record is not a JSON object");
}

static void nul_is_refused_where_it_is(void **state)
{
    (void)state;
    assert_refused_value("{\"p\":1,\"note\":\"a\\u0000b\"}",
                         "step 'job1' of key 'wf1' in Redis: field 'note' holds \\u0000");
    assert_refused_value("{\"p\":1,\"opts\":{\"x\":[\"ok\",\"\\u0000\"]},\"q\":2}",
                         "field 'opts' holds \\u0000");
    assert_refused_value("{\"p\":1,\"a\\u0000b\":1}", "the name of field 'a' holds \\u0000");
    assert_refused_value("{\"opts\":{\"k\\u0000\":1}}", "field 'opts' holds \\u0000");
    assert_refused_value("{\"a\":\"\\\\\\u0000\"}", "field 'a' holds \\u0000");
    /* a raw NUL byte */
    static const char raw[] = "{\"a\":\"x\0y\"}";
    assert_refused("job1", 4, raw, sizeof(raw) - 1, "the record holds a NUL byte");
}

static void text_must_be_utf8_everywhere(void **state)
{
    (void)state;
    assert_refused_value("{\"p\":1,\"note\":\"\xff\"}",
                         "step 'job1' of key 'wf1' in Redis: field 'note' is not valid UTF-8");
    assert_refused_value("{\"opts\":{\"\xc0\xaf\":1}}", "field 'opts' is not valid UTF-8");
    assert_refused_value("{\"opts\":[\"\xed\xa0\x80\"]}", "field 'opts' is not valid UTF-8");
    assert_refused_value("{\"p\":1,\"\xfe\":1}", "field '?' is not valid UTF-8");
    assert_refused_value("\xff", "the record is not valid UTF-8");
    /* the step name: shown with '?' for what is not UTF-8 */
    assert_refused("jo\xff"
                   "b",
                   4, "{}", 2, "step name 'jo?b' of key 'wf1' in Redis is not valid UTF-8");
    assert_refused("jo\0b", 4, "{}", 2, "step name 'jo' of key 'wf1' in Redis holds a NUL byte");
}

/* One bad step among good ones refuses the whole hash, whichever it is. */
static void one_bad_step_refuses_the_hash(void **state)
{
    (void)state;
    bty_field fields[] = {
        {"a", 1, "{\"status\":\"open\",\"batch_id\":5}", 30},
        {"b", 1, "{\"status\":\"open\",\"batch_id\":5.5}", 32},
        {"c", 1, "{}", 2},
    };
    bty_error err = {0};
    assert_null(doc_from_hash(fields, 3, "wf1-5", &err));
    assert_int_equal(err.status, 409);
    assert_non_null(strstr(err.message, "step 'b' of key 'wf1-5' in Redis: field 'batch_id' is "
                                        "5.5"));
    fields[1].value = "{\"status\":\"open\",\"batch_id\":5}";
    fields[1].value_len = 30;
    cJSON *doc = doc_from_hash(fields, 3, "wf1-5", &err);
    assert_non_null(doc);
    assert_int_equal(cJSON_GetArraySize(doc), 3);
    cJSON_Delete(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lenient_readings_stay),
        cmocka_unit_test(batch_id_must_be_a_whole_number_in_bounds),
        cmocka_unit_test(record_must_be_one_json_object),
        cmocka_unit_test(nul_is_refused_where_it_is),
        cmocka_unit_test(text_must_be_utf8_everywhere),
        cmocka_unit_test(one_bad_step_refuses_the_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
