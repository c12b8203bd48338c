/*
 * test_pyjson.c - unit tests of pyjson.c: floats as Python's repr writes
 * them, and whole values as json.dumps writes them (separators, escapes,
 * surrogate pairs). The expected texts were printed by Python 3.11's json
 * module; the integration tests (test_fidelity.py) compare with it live.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "batchy.h"

static void floats_print_as_python_repr(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0.0, "0.0"},
        {-0.0, "-0.0"},
        {1.0, "1.0"},
        {1.5, "1.5"},
        {1500.0, "1500.0"},
        {0.1, "0.1"},
        {0.30000000000000004, "0.30000000000000004"},
        {1e+16, "1e+16"},
        {1000000000000000.0, "1000000000000000.0"},
        {1.2345678901234568e+17, "1.2345678901234568e+17"},
        {0.0001, "0.0001"},
        {1e-05, "1e-05"},
        {1.5e-05, "1.5e-05"},
        {5e-324, "5e-324"},
        {1.7976931348623157e+308, "1.7976931348623157e+308"},
        {2.5e-07, "2.5e-07"},
        {-3.25, "-3.25"},
        {100.0, "100.0"},
        {9007199254740992.0, "9007199254740992.0"},
        {0.001, "0.001"},
        {12345.678, "12345.678"},
        {1e+22, "1e+22"},
        {1e+21, "1e+21"},
        {3.141592653589793, "3.141592653589793"},
        {0.6666666666666666, "0.6666666666666666"},
        {1e+100, "1e+100"},
    };
    char out[PY_FLOAT_MAX];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = py_float_repr(cases[i].v, out);
        if (strcmp(out, cases[i].want) != 0 || (size_t)n != strlen(out))
            fail_msg("%.17g: got %s, expected %s", cases[i].v, out, cases[i].want);
    }
    /* Integers within 2^53 are digits; the rest, and -0.0, floats. */
    py_number_text(42, out);
    assert_string_equal(out, "42");
    py_number_text(-9007199254740992.0, out);
    assert_string_equal(out, "-9007199254740992");
    py_number_text(18014398509481984.0, out);
    assert_string_equal(out, "1.8014398509481984e+16");
    py_number_text(-0.0, out);
    assert_string_equal(out, "-0.0");
}

static void values_print_as_json_dumps(void **state)
{
    (void)state;
    /* {"k\u00e9": ["\u00e9\U0001F600\n\t\"\\\x01\x7f/", None, True, False, {}, []]} */
    cJSON *doc =
        cJSON_Parse("{\"k\xc3\xa9\": [\"\xc3\xa9\xf0\x9f\x98\x80\\n\\t\\\"\\\\\\u0001\x7f/\","
                    " null, true, false, {}, []]}");
    assert_non_null(doc);
    char *text = py_json_print(doc);
    assert_string_equal(text,
                        "{\"k\\u00e9\": [\"\\u00e9\\ud83d\\ude00\\n\\t\\\"\\\\\\u0001\\u007f/\", "
                        "null, true, false, {}, []]}");
    free(text);
    cJSON_Delete(doc);

    /* Numbers: kept text first, then digits or repr; never "Infinity". */
    doc = cJSON_CreateArray();
    cJSON *kept = cJSON_CreateNumber(1);
    kept->valuestring = strdup("1.0");
    cJSON_AddItemToArray(doc, kept);
    cJSON_AddItemToArray(doc, cJSON_CreateNumber(7));
    cJSON_AddItemToArray(doc, cJSON_CreateNumber(0.5));
    cJSON_AddItemToArray(doc, cJSON_CreateRaw("12345678901234567890"));
    cJSON_AddItemToArray(doc, cJSON_CreateNumber(1.0 / 0.0));
    text = py_json_print(doc);
    assert_string_equal(text, "[1.0, 7, 0.5, 12345678901234567890, null]");
    free(text);
    cJSON_Delete(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(floats_print_as_python_repr),
        cmocka_unit_test(values_print_as_json_dumps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
