/*
 * test_page.c - unit tests of page.c: answers made of pieces, read back
 * in blocks of every size, and the texts they share by reference.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "shell.h"

/* The whole of a page, read max bytes at a time; the page freed. */
static char *read_all(page_body *p, size_t max)
{
    size_t len = 0, room = 64;
    char *all = malloc(room);
    assert_non_null(all);
    for (;;) {
        if (len + max + 1 > room) {
            room = 2 * (len + max + 1);
            all = realloc(all, room);
            assert_non_null(all);
        }
        size_t n = page_body_read(p, all + len, max);
        assert_true(n <= max);
        if (n == 0)
            break;
        len += n;
    }
    all[len] = '\0';
    assert_int_equal(page_body_read(p, all + len, max), 0); /* and stays at the end */
    page_body_free(p);
    return all;
}

static page_text *row(const char *json, unsigned statuses)
{
    page_text *t = page_text_make(json, strlen(json), statuses, NULL);
    assert_non_null(t);
    return t;
}

/* A listing of rows as /workflows makes it: texts (NULL for a workflow
 * gone) in a JSON array, the ones with a status in want. */
static page_body *listing(unsigned want)
{
    page_text **texts = calloc(4, sizeof(*texts));
    assert_non_null(texts);
    texts[0] = row("{\"name\":\"a\"}", view_status_bit("failed"));
    texts[1] = NULL;
    texts[2] = row("{\"name\":\"b\"}", view_status_bit("open"));
    texts[3] = row("{\"name\":\"c\"}", view_status_bit("open") | view_status_bit("failed"));
    page_body *p = page_body_new();
    assert_non_null(p);
    assert_int_equal(page_body_add(p, "[", 1), 0);
    assert_int_equal(page_body_rows(p, want), 0);
    assert_int_equal(page_body_add(p, "]", 1), 0);
    page_body_texts(p, texts, 4);
    return p;
}

static void rows_come_out_comma_separated_whatever_the_block_size(void **state)
{
    (void)state;
    for (size_t max = 1; max <= 40; max++) {
        char *all = read_all(listing(0), max);
        assert_string_equal(all, "[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"}]");
        free(all);
    }
}

static void rows_are_the_ones_with_a_status_wanted(void **state)
{
    (void)state;
    for (size_t max = 1; max <= 30; max++) {
        char *open = read_all(listing(view_status_bit("open")), max);
        assert_string_equal(open, "[{\"name\":\"b\"},{\"name\":\"c\"}]");
        free(open);
        char *failed = read_all(listing(view_status_bit("failed")), max);
        assert_string_equal(failed, "[{\"name\":\"a\"},{\"name\":\"c\"}]");
        free(failed);
        char *none = read_all(listing(view_status_bit("abandoned")), max);
        assert_string_equal(none, "[]");
        free(none);
    }
}

/* /metrics lines: each text holds families 0..VIEW_FAMILIES-1, cut. */
static page_text *lines(const char *const *family)
{
    char text[256] = "";
    size_t cut[VIEW_FAMILIES + 1];
    for (int f = 0; f < VIEW_FAMILIES; f++) {
        cut[f] = strlen(text);
        strcat(text, family[f]);
    }
    cut[VIEW_FAMILIES] = strlen(text);
    page_text *t = page_text_make(text, strlen(text), 0, cut);
    assert_non_null(t);
    return t;
}

static void lines_come_out_family_by_family(void **state)
{
    (void)state;
    const char *x[VIEW_FAMILIES] = {"x0\n", "", "x2\n", "x3a\nx3b\n", "", ""};
    const char *y[VIEW_FAMILIES] = {"y0\n", "y1\n", "", "y3\n", "", "y5\n"};
    char want[512] = "head\n";
    const char *const *of[] = {x, y};
    for (int f = 0; f < VIEW_FAMILIES; f++) {
        char header[32];
        snprintf(header, sizeof(header), "# family %d\n", f);
        strcat(want, header);
        for (int i = 0; i < 2; i++)
            strcat(want, of[i][f]);
    }
    for (size_t max = 1; max <= 64; max++) {
        page_text **texts = calloc(3, sizeof(*texts));
        assert_non_null(texts);
        texts[0] = lines(x);
        texts[1] = NULL;
        texts[2] = lines(y);
        page_body *p = page_body_new();
        assert_int_equal(page_body_own(p, strdup("head\n")), 0);
        char headers[VIEW_FAMILIES][32];
        for (int f = 0; f < VIEW_FAMILIES; f++) {
            snprintf(headers[f], sizeof(headers[f]), "# family %d\n", f);
            assert_int_equal(page_body_add(p, headers[f], strlen(headers[f])), 0);
            assert_int_equal(page_body_lines(p, f), 0);
        }
        page_body_texts(p, texts, 3);
        char *all = read_all(p, max);
        assert_string_equal(all, want);
        free(all);
    }
}

static void an_empty_page_reads_nothing(void **state)
{
    (void)state;
    page_body *p = page_body_new();
    assert_int_equal(page_body_add(p, "", 0), 0); /* nothing to add */
    char *all = read_all(p, 8);
    assert_string_equal(all, "");
    free(all);
    /* texts taken over with no piece using them are still released */
    page_body *q = page_body_new();
    page_text **texts = calloc(1, sizeof(*texts));
    assert_non_null(texts);
    texts[0] = row("x", 0);
    page_body_texts(q, texts, 1);
    all = read_all(q, 8);
    assert_string_equal(all, "");
    free(all);
}

/* Owned text is the page's even when it cannot be added: nothing leaks
 * (the sanitizer and valgrind builds run this too). */
static void owned_text_is_freed_whatever_happens(void **state)
{
    (void)state;
    assert_int_equal(page_body_own(NULL, strdup("lost?")), -1);
    assert_int_equal(page_body_add(NULL, "x", 1), -1);
    assert_int_equal(page_body_lines(NULL, 0), -1);
    assert_int_equal(page_body_rows(NULL, 0), -1);
    page_body *p = page_body_new();
    assert_int_equal(page_body_own(p, NULL), -1);
    page_body_free(p);
    page_body_free(NULL);
    page_text_release(NULL);
}

/* A text shared between a page and another holder (rows.c) outlives the
 * page, and the last release frees it. */
static void a_shared_text_outlives_the_page(void **state)
{
    (void)state;
    page_text *t = row("{\"name\":\"kept\"}", 0);
    page_text **texts = calloc(1, sizeof(*texts));
    assert_non_null(texts);
    texts[0] = page_text_ref(t);
    assert_int_equal(atomic_load(&t->refs), 2);
    page_body *p = page_body_new();
    assert_int_equal(page_body_rows(p, 0), 0);
    page_body_texts(p, texts, 1);
    char *all = read_all(p, 5);
    assert_string_equal(all, "{\"name\":\"kept\"}");
    free(all);
    assert_int_equal(atomic_load(&t->refs), 1);
    assert_string_equal(t->text, "{\"name\":\"kept\"}");
    assert_int_equal(t->len, strlen(t->text));
    page_text_release(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rows_come_out_comma_separated_whatever_the_block_size),
        cmocka_unit_test(rows_are_the_ones_with_a_status_wanted),
        cmocka_unit_test(lines_come_out_family_by_family),
        cmocka_unit_test(an_empty_page_reads_nothing),
        cmocka_unit_test(owned_text_is_freed_whatever_happens),
        cmocka_unit_test(a_shared_text_outlives_the_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
