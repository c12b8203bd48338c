/*
 * test_utf8.c - unit tests of utf8.c: which byte sequences decode to which
 * code point (every length at its edges), which do not (overlong forms,
 * surrogates, values above U+10FFFF, stray, bad and missing continuation
 * bytes), NUL in utf8_valid, the repair of cut messages, and where text is
 * cut without splitting a character.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "batchy.h"

struct decode_case {
    const char *bytes;
    size_t len;  /* bytes the decoder may read */
    size_t want; /* sequence length, 0 for invalid */
    uint32_t cp;
};

static void expect_decode(const struct decode_case *c)
{
    uint32_t cp = 0xDEADBEEF;
    size_t n = utf8_decode((const unsigned char *)c->bytes, c->len, &cp);
    if (n != c->want)
        fail_msg("case with first byte %02X, %zu bytes: length %zu, want %zu",
                 (unsigned char)c->bytes[0], c->len, n, c->want);
    if (c->want && cp != c->cp)
        fail_msg("case with first byte %02X: U+%04X, want U+%04X", (unsigned char)c->bytes[0],
                 (unsigned)cp, (unsigned)c->cp);
    if (!c->want && cp != 0xDEADBEEF)
        fail_msg("case with first byte %02X: cp set on failure", (unsigned char)c->bytes[0]);
}

static void decode_accepts_every_length_at_its_edges(void **state)
{
    (void)state;
    static const struct decode_case cases[] = {
        {"\x01", 1, 1, 0x01},
        {"A", 1, 1, 0x41},
        {"\x7F", 1, 1, 0x7F},
        {"\xC2\x80", 2, 2, 0x80},
        {"\xC3\xA9", 2, 2, 0xE9},
        {"\xDF\xBF", 2, 2, 0x7FF},
        {"\xE0\xA0\x80", 3, 3, 0x800},
        {"\xE2\x82\xAC", 3, 3, 0x20AC},
        {"\xED\x9F\xBF", 3, 3, 0xD7FF},
        {"\xEE\x80\x80", 3, 3, 0xE000},
        {"\xEF\xBF\xBF", 3, 3, 0xFFFF},
        {"\xF0\x90\x80\x80", 4, 4, 0x10000},
        {"\xF0\x9F\x98\x80", 4, 4, 0x1F600},
        {"\xF4\x8F\xBF\xBF", 4, 4, 0x10FFFF},
        /* only the first sequence is decoded */
        {"ab", 2, 1, 'a'},
        {"\xC3\xA9x", 3, 2, 0xE9},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_decode(&cases[i]);
}

static void decode_rejects_overlong_forms(void **state)
{
    (void)state;
    static const struct decode_case cases[] = {
        {"\xC0\x80", 2, 0, 0},         {"\xC0\xAF", 2, 0, 0},     {"\xC1\xBF", 2, 0, 0},
        {"\xE0\x80\x80", 3, 0, 0},     {"\xE0\x9F\xBF", 3, 0, 0}, {"\xF0\x80\x80\x80", 4, 0, 0},
        {"\xF0\x8F\xBF\xBF", 4, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_decode(&cases[i]);
}

static void decode_rejects_surrogates(void **state)
{
    (void)state;
    static const struct decode_case cases[] = {
        {"\xED\xA0\x80", 3, 0, 0}, /* U+D800 */
        {"\xED\xAF\xBF", 3, 0, 0}, /* U+DBFF */
        {"\xED\xB0\x80", 3, 0, 0}, /* U+DC00 */
        {"\xED\xBF\xBF", 3, 0, 0}, /* U+DFFF */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_decode(&cases[i]);
}

static void decode_rejects_code_points_above_10ffff(void **state)
{
    (void)state;
    static const struct decode_case cases[] = {
        {"\xF4\x90\x80\x80", 4, 0, 0}, /* U+110000 */
        {"\xF4\xBF\xBF\xBF", 4, 0, 0},
        {"\xF5\x80\x80\x80", 4, 0, 0},
        {"\xF7\xBF\xBF\xBF", 4, 0, 0},
        {"\xF8\x88\x80\x80\x80", 5, 0, 0},
        {"\xFC\x84\x80\x80\x80\x80", 6, 0, 0},
        {"\xFE", 1, 0, 0},
        {"\xFF", 1, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_decode(&cases[i]);
}

static void decode_rejects_truncated_and_broken_sequences(void **state)
{
    (void)state;
    static const struct decode_case cases[] = {
        /* cut short by the end of what may be read */
        {"\xC3", 1, 0, 0},
        {"\xC3\xA9", 1, 0, 0},
        {"\xE2\x82", 2, 0, 0},
        {"\xE2\x82\xAC", 2, 0, 0},
        {"\xF0\x9F\x98", 3, 0, 0},
        {"\xF0\x9F\x98\x80", 3, 0, 0},
        {"A", 0, 0, 0},
        /* a NUL or another character where a continuation byte belongs */
        {"\xC3\0", 2, 0, 0},
        {"\xE2\x82\0", 3, 0, 0},
        {"\xC3z", 2, 0, 0},
        {"\xE2(\xA1", 3, 0, 0},
        {"\xF0\x9Fz\x80", 4, 0, 0},
        {"\xC3\xC3\xA9", 3, 0, 0},
        /* stray continuation bytes */
        {"\x80", 1, 0, 0},
        {"\xBF\xBF", 2, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_decode(&cases[i]);
}

static void decode_reads_nul_as_a_character(void **state)
{
    (void)state;
    static const struct decode_case nul = {"\0", 1, 1, 0};
    expect_decode(&nul);
}

static void valid_accepts_well_formed_text_without_nul(void **state)
{
    (void)state;
    static const char text[] = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF ~";
    assert_int_equal(utf8_valid(text, strlen(text)), 1);
    assert_int_equal(utf8_valid("", 0), 1);
    /* len, not the NUL, ends the text: a prefix that ends between
     * characters is valid, one that cuts a character is not */
    assert_int_equal(utf8_valid(text, 6), 1);
    assert_int_equal(utf8_valid(text, 4), 0);
}

static void valid_refuses_nul_and_every_invalid_sequence(void **state)
{
    (void)state;
    assert_int_equal(utf8_valid("a\0b", 3), 0);
    assert_int_equal(utf8_valid("\0", 1), 0);
    assert_int_equal(utf8_valid("\xC0\x80", 2), 0); /* NUL in an overlong disguise */
    assert_int_equal(utf8_valid("ok\xED\xA0\x80", 5), 0);
    assert_int_equal(utf8_valid("ok\xF4\x90\x80\x80", 6), 0);
    assert_int_equal(utf8_valid("ok\xE2\x82", 4), 0);
    assert_int_equal(utf8_valid("ok\x80", 3), 0);
    assert_int_equal(utf8_valid("\xFF", 1), 0);
}

static void repair_turns_each_bad_byte_into_a_question_mark(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"plain", "plain"},
        {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"},
        {"cut \xC3", "cut ?"},           /* "%.Ns" cut a character */
        {"cut \xF0\x9F\x98", "cut ???"}, /* each byte of it */
        {"a\x80\xBFz", "a??z"},          /* stray continuation bytes */
        {"\xC0\x80x", "??x"},            /* overlong */
        {"\xED\xA0\x80.", "???."},       /* surrogate */
        {"\xF4\x90\x80\x80", "????"},    /* above U+10FFFF */
        {"\xFF\xC3\xA9", "?\xC3\xA9"},   /* the next character survives */
        {"\xE2\x82z\xE2\x82\xAC", "??z\xE2\x82\xAC"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[64];
        strcpy(buf, cases[i].in);
        utf8_repair(buf);
        assert_string_equal(buf, cases[i].out);
        assert_int_equal(utf8_valid(buf, strlen(buf)), 1);
    }
}

static void prefix_keeps_what_fits_and_never_cuts_a_character(void **state)
{
    (void)state;
    static const char text[] = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z"; /* a é € 😀 z */
    size_t len = strlen(text);                                           /* 11 */
    /* whole text when it fits */
    assert_int_equal(utf8_prefix(text, len, len), len);
    assert_int_equal(utf8_prefix(text, len, 100), len);
    assert_int_equal(utf8_prefix("", 0, 0), 0);
    /* max at a boundary: kept as is */
    assert_int_equal(utf8_prefix(text, len, 0), 0);
    assert_int_equal(utf8_prefix(text, len, 1), 1);
    assert_int_equal(utf8_prefix(text, len, 3), 3);
    assert_int_equal(utf8_prefix(text, len, 6), 6);
    assert_int_equal(utf8_prefix(text, len, 10), 10);
    /* max inside a character: back to its start */
    assert_int_equal(utf8_prefix(text, len, 2), 1);
    assert_int_equal(utf8_prefix(text, len, 4), 3);
    assert_int_equal(utf8_prefix(text, len, 5), 3);
    assert_int_equal(utf8_prefix(text, len, 7), 6);
    assert_int_equal(utf8_prefix(text, len, 8), 6);
    assert_int_equal(utf8_prefix(text, len, 9), 6);
    /* nothing but continuation bytes: nothing is kept */
    assert_int_equal(utf8_prefix("\x80\x80\x80", 3, 2), 0);
    /* every prefix it gives is valid UTF-8 */
    for (size_t max = 0; max <= len; max++)
        assert_int_equal(utf8_valid(text, utf8_prefix(text, len, max)), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decode_accepts_every_length_at_its_edges),
        cmocka_unit_test(decode_rejects_overlong_forms),
        cmocka_unit_test(decode_rejects_surrogates),
        cmocka_unit_test(decode_rejects_code_points_above_10ffff),
        cmocka_unit_test(decode_rejects_truncated_and_broken_sequences),
        cmocka_unit_test(decode_reads_nul_as_a_character),
        cmocka_unit_test(valid_accepts_well_formed_text_without_nul),
        cmocka_unit_test(valid_refuses_nul_and_every_invalid_sequence),
        cmocka_unit_test(repair_turns_each_bad_byte_into_a_question_mark),
        cmocka_unit_test(prefix_keeps_what_fits_and_never_cuts_a_character),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
