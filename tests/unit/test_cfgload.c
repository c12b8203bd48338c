/*
 * test_cfgload.c - unit tests of cfg_parse (batchy/cfgload.c): workflow
 * YAML -> JSON document. Each test feeds YAML text and asserts on the exact
 * compact JSON, or on the error status and the "source:line:column: reason"
 * prefix of the message.
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

/* ------------------------------------------------------------ helpers */

/* Parse yaml (len bytes) as "t.yaml"; err is reset first. */
static cJSON *parse_len(const char *yaml, size_t len, bty_error *err)
{
    memset(err, 0, sizeof(*err));
    return cfg_parse(yaml, len, "t.yaml", err);
}

static cJSON *parse(const char *yaml, bty_error *err)
{
    return parse_len(yaml, strlen(yaml), err);
}

/* yaml must load as exactly the compact JSON `expected`. */
static void assert_loads(const char *yaml, const char *expected)
{
    bty_error err;
    cJSON *doc = parse(yaml, &err);
    if (!doc)
        fail_msg("%s\n-> unexpected error %d: %s", yaml, err.status, err.message);
    char *got = cJSON_PrintUnformatted(doc);
    assert_non_null(got);
    if (strcmp(got, expected) != 0)
        fail_msg("%s\n-> got      %s\n-> expected %s", yaml, got, expected);
    free(got);
    cJSON_Delete(doc);
}

/* yaml must fail with status and a message starting with prefix. */
static void assert_fails(const char *yaml, size_t len, int status, const char *prefix)
{
    bty_error err;
    cJSON *doc = parse_len(yaml, len, &err);
    if (doc) {
        char *got = cJSON_PrintUnformatted(doc);
        fail_msg("%s\n-> loaded %s, expected error %s", yaml, got, prefix);
    }
    if (err.status != status || strncmp(err.message, prefix, strlen(prefix)) != 0)
        fail_msg("%s\n-> got error %d: %s\n-> expected  %d: %s...", yaml, err.status, err.message,
                 status, prefix);
}

static void assert_rejects(const char *yaml, const char *prefix)
{
    assert_fails(yaml, strlen(yaml), 422, prefix);
}

/* ------------------------------------------------------------ scalars */

/* One row: a value written as "s:\n  v: <yaml>\n" must load as `json`, or
 * fail with "t.yaml:2:6: <error>..." (the value starts at line 2, column 6).
 * Numbers are compared as exact doubles, everything else as compact JSON. */
typedef struct scalar_case {
    const char *yaml;
    const char *json;  /* NULL when an error is expected */
    const char *error; /* reason prefix */
} scalar_case;

static const scalar_case scalar_cases[] = {
    /* null */
    {"~", "null", NULL},
    {"", "null", NULL},
    {"null", "null", NULL},
    {"Null", "null", NULL},
    {"NULL", "null", NULL},
    {"nULL", "\"nULL\"", NULL},
    {"'~'", "\"~\"", NULL},
    {"\"null\"", "\"null\"", NULL},
    /* booleans: every spelling, and near misses */
    {"yes", "true", NULL},
    {"Yes", "true", NULL},
    {"YES", "true", NULL},
    {"true", "true", NULL},
    {"True", "true", NULL},
    {"TRUE", "true", NULL},
    {"on", "true", NULL},
    {"On", "true", NULL},
    {"ON", "true", NULL},
    {"no", "false", NULL},
    {"No", "false", NULL},
    {"NO", "false", NULL},
    {"false", "false", NULL},
    {"False", "false", NULL},
    {"FALSE", "false", NULL},
    {"off", "false", NULL},
    {"Off", "false", NULL},
    {"OFF", "false", NULL},
    {"yES", "\"yES\"", NULL},
    {"tRUE", "\"tRUE\"", NULL},
    {"y", "\"y\"", NULL},
    {"n", "\"n\"", NULL},
    {"'yes'", "\"yes\"", NULL},
    /* integers */
    {"0", "0", NULL},
    {"-0", "0", NULL},
    {"42", "42", NULL},
    {"+12", "12", NULL},
    {"-17", "-17", NULL},
    {"1_000_000", "1000000", NULL},
    {"012", "10", NULL},
    {"0_7", "7", NULL},
    {"-010", "-8", NULL},
    {"08", "\"08\"", NULL},
    {"0o17", "\"0o17\"", NULL},
    {"0x1F", "31", NULL},
    {"0x_1_f", "31", NULL},
    {"-0xff", "-255", NULL},
    {"0X1F", "\"0X1F\"", NULL},
    {"0xg", "\"0xg\"", NULL},
    {"0b101", "5", NULL},
    {"0b1_0", "2", NULL},
    {"+0b11", "3", NULL},
    {"0b2", "\"0b2\"", NULL},
    {"0b_", NULL, "integer 0b_ has no digits"},
    {"0x_", NULL, "integer 0x_ has no digits"},
    {"1:30", "90", NULL},
    {"-1:30", "-90", NULL},
    {"190:20:30", "685230", NULL},
    {"1:5", "65", NULL},
    {"1:60", "\"1:60\"", NULL},
    {"0:30", "\"0:30\"", NULL},
    {"22:22", "1342", NULL},
    {"9007199254740992", "9007199254740992", NULL},
    {"-9007199254740992", "-9007199254740992", NULL},
    {"0x20000000000000", "9007199254740992", NULL},
    {"9007199254740993", NULL, "integer 9007199254740993 is beyond +-2^53"},
    {"-9007199254740993", NULL, "integer -9007199254740993 is beyond +-2^53"},
    {"0x20000000000001", NULL, "integer 0x20000000000001 is beyond +-2^53"},
    {"99999999999999999999999", NULL, "integer 99999999999999999999999 is beyond"},
    {"'9007199254740993'", "\"9007199254740993\"", NULL},
    {"'12'", "\"12\"", NULL},
    {"\"0x1F\"", "\"0x1F\"", NULL},
    /* floats */
    {"1.5", "1.5", NULL},
    {"-2.", "-2", NULL},
    {"+2.5", "2.5", NULL},
    {".5", "0.5", NULL},
    {".5e+1", "5", NULL},
    {"1.0e+3", "1000", NULL},
    {"1.0E-2", "0.01", NULL},
    {"1.e+2", "100", NULL},
    {"1_0.2_5", "10.25", NULL},
    {"1:30.5", "90.5", NULL},
    {"0:30.", "30", NULL},
    {"1e3", "\"1e3\"", NULL},
    {"1.0e3", "\"1.0e3\"", NULL},
    {"1E+3", "\"1E+3\"", NULL},
    {"-.5", "\"-.5\"", NULL},
    {"+.5", "\"+.5\"", NULL},
    {"._5", "\"._5\"", NULL},
    {"1.2.3", "\"1.2.3\"", NULL},
    {"1.0e+999", NULL, "1.0e+999 is not a finite number"},
    {"'1.5'", "\"1.5\"", NULL},
    {".inf", NULL, ".inf cannot be stored in JSON"},
    {".Inf", NULL, ".Inf cannot be stored in JSON"},
    {"-.INF", NULL, "-.INF cannot be stored in JSON"},
    {"+.inf", NULL, "+.inf cannot be stored in JSON"},
    {".nan", NULL, ".nan cannot be stored in JSON"},
    {".NaN", NULL, ".NaN cannot be stored in JSON"},
    {".NAN", NULL, ".NAN cannot be stored in JSON"},
    {".Nan", "\".Nan\"", NULL},
    {"-.nan", "\"-.nan\"", NULL},
    {"'.inf'", "\".inf\"", NULL},
    /* strings: dates and everything else stay verbatim */
    {"2026-01-01", "\"2026-01-01\"", NULL},
    {"2026-01-01 06:00:00", "\"2026-01-01 06:00:00\"", NULL},
    {"2026-01-01T06:00:00Z", "\"2026-01-01T06:00:00Z\"", NULL},
    {"hello world", "\"hello world\"", NULL},
    {"=", "\"=\"", NULL},
    {"<<", "\"<<\"", NULL},
    {"''", "\"\"", NULL},
    {"'it''s'", "\"it's\"", NULL},
    {"\"tab\\there\"", "\"tab\\there\"", NULL},
    {"\"caf\\u00e9\"", "\"caf\xc3\xa9\"", NULL},
    {"|\n    12\n", "\"12\\n\"", NULL},
    {">-\n    yes\n", "\"yes\"", NULL},
    /* explicit tags: a standard tag must fit the text */
    {"!!str 12", "\"12\"", NULL},
    {"!!str", "\"\"", NULL},
    {"!!int \"12\"", "12", NULL},
    {"!!int 0x10", "16", NULL},
    {"!!int abc", NULL, "!!int abc is not an integer"},
    {"!!int 1.5", NULL, "!!int 1.5 is not an integer"},
    {"!!float 1", "1", NULL},
    {"!!float 1e3", "1000", NULL},
    {"!!float -.5", "-0.5", NULL},
    {"!!float 1:30", "90", NULL},
    {"!!float abc", NULL, "!!float abc is not a finite number"},
    {"!!float .inf", NULL, "!!float .inf is not a finite number"},
    {"!!bool yes", "true", NULL},
    {"!!bool tRUE", "true", NULL},
    {"!!bool 1", NULL, "!!bool 1 is not a boolean"},
    {"!!null ~", "null", NULL},
    {"!!null", "null", NULL},
    {"!!null x", NULL, "!!null x is not null"},
    {"!<tag:yaml.org,2002:int> 7", "7", NULL},
    {"! 12", "\"12\"", NULL},
    {"!!map x", NULL, "tag !!map does not fit a scalar"},
    {"!!seq x", NULL, "tag !!seq does not fit a scalar"},
    {"!!timestamp 2026-01-01", NULL, "unsupported tag !!timestamp"},
    {"!!binary aGk=", NULL, "unsupported tag !!binary"},
    {"!foo x", NULL, "unsupported tag !foo"},
    {"!<tag:example.com,2000:x> 1", NULL, "unsupported tag tag:example.com,2000:x"},
};

static void scalars_resolve_like_pyyaml_safe_loader(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(scalar_cases) / sizeof(scalar_cases[0]); i++) {
        const scalar_case *c = &scalar_cases[i];
        char yaml[256];
        snprintf(yaml, sizeof(yaml), "s:\n  v: %s\n", c->yaml);
        bty_error err;
        cJSON *doc = parse(yaml, &err);
        if (!c->json) {
            char prefix[256];
            snprintf(prefix, sizeof(prefix), "t.yaml:2:6: %s", c->error);
            if (doc || err.status != 422 || strncmp(err.message, prefix, strlen(prefix)) != 0)
                fail_msg("row %zu [%s]: got %s %d %s, expected error %s", i, c->yaml,
                         doc ? "a document" : "error", err.status, err.message, prefix);
            continue;
        }
        if (!doc)
            fail_msg("row %zu [%s]: unexpected error %s", i, c->yaml, err.message);
        cJSON *v =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "s"), "v");
        assert_non_null(v);
        cJSON *want = cJSON_Parse(c->json);
        assert_non_null(want);
        char *got = cJSON_PrintUnformatted(v);
        int same = cJSON_IsNumber(want) ? cJSON_IsNumber(v) && v->valuedouble == want->valuedouble
                                        : strcmp(got, c->json) == 0;
        if (!same)
            fail_msg("row %zu [%s]: got %s (%.17g), expected %s", i, c->yaml, got,
                     cJSON_IsNumber(v) ? v->valuedouble : 0.0, c->json);
        free(got);
        cJSON_Delete(want);
        cJSON_Delete(doc);
    }
}

/* ------------------------------------------------------------ structure */

static void spec_example_loads(void **state)
{
    (void)state;
    assert_loads("# cfg/wf1.yaml: one top-level key per step\n"
                 "extract_orders:\n"
                 "  reprocess_hours: 2\n"
                 "  trunc_start: true\n"
                 "  from_date: \"2026-01-01T00:00\"\n"
                 "  source_table: orders\n"
                 "load_orders:\n"
                 "  target: dw.orders        # a \"bare\" step\n",
                 "{\"extract_orders\":{\"reprocess_hours\":2,\"trunc_start\":true,"
                 "\"from_date\":\"2026-01-01T00:00\",\"source_table\":\"orders\"},"
                 "\"load_orders\":{\"target\":\"dw.orders\"}}");
}

static void nested_values_become_json(void **state)
{
    (void)state;
    assert_loads("s:\n"
                 "  list: [1, two, {a: b}, [], {}]\n"
                 "  map:\n"
                 "    x:\n"
                 "      y: [true, null, 1.5]\n"
                 "  block: |\n"
                 "    line1\n"
                 "    line2\n"
                 "  items:\n"
                 "    - id: 1\n"
                 "    - id: 2\n",
                 "{\"s\":{\"list\":[1,\"two\",{\"a\":\"b\"},[],{}],"
                 "\"map\":{\"x\":{\"y\":[true,null,1.5]}},\"block\":\"line1\\nline2\\n\","
                 "\"items\":[{\"id\":1},{\"id\":2}]}}");
}

/* Keys below the steps resolve as PyYAML resolves them, then read as
 * json.dumps writes such keys (checked against PyYAML 6 and Python's json
 * module); step names stay verbatim. */
static void keys_resolve_as_pyyaml_and_print_as_json_dumps(void **state)
{
    (void)state;
    assert_loads("s:\n  yes: 1\n  ~: 3\n  0x10: 4\n  'q': 5\n  010: 6\n  !!str 0x11: 7\n"
                 "  1_000: 8\n  1:30: 9\n  1.5e+3: 10\n  0b101: 11\n  off: 14\n"
                 "  190:20:30.15: 13\n  !!float 7: 15\n  nested: {on: {0o7: 1, 1e3: 2}}\n",
                 "{\"s\":{\"true\":1,\"null\":3,\"16\":4,\"q\":5,\"8\":6,\"0x11\":7,"
                 "\"1000\":8,\"90\":9,\"1500.0\":10,\"5\":11,\"false\":14,"
                 "\"685230.15\":13,\"7.0\":15,\"nested\":{\"true\":{\"0o7\":1,\"1e3\":2}}}}");
    /* an alias of a scalar as a key resolves the same way */
    assert_loads("s:\n  a: &k 0x1F\n  *k : 2\n", "{\"s\":{\"a\":31,\"31\":2}}");
    /* the top level keeps its names */
    assert_loads("on: {}\n010: {}\n", "{\"010\":{},\"on\":{}}");
    assert_rejects("s:\n  !!int abc: 1\n", "t.yaml:2:3: !!int abc is not an integer");
    assert_rejects("s:\n  .inf: 1\n", "t.yaml:2:3: .inf cannot be stored in JSON");
}

/* Keys one after resolution are one key twice: refused, where PyYAML
 * would keep the last value silently. */
static void keys_equal_after_resolution_are_duplicates(void **state)
{
    (void)state;
    assert_rejects("s:\n  on: 1\n  true: 2\n", "t.yaml:3:3: duplicate key \"true\"");
    assert_rejects("s:\n  p: {~: 1, null: 2}\n", "t.yaml:2:13: duplicate key \"null\"");
    assert_rejects("s:\n  0x10: 1\n  16: 2\n", "t.yaml:3:3: duplicate key \"16\"");
    assert_rejects("s:\n  1: 1\n  1.0: 2\n", "t.yaml:3:3: duplicate key \"1.0\": an earlier");
    assert_rejects("s:\n  yes: 1\n  1: 2\n", "t.yaml:3:3: duplicate key \"1\": an earlier");
    assert_rejects("s:\n  p: {off: 1, 0: 2}\n", "t.yaml:2:15: duplicate key \"0\": an earlier");
    /* a string and the number it spells are one key in JSON */
    assert_rejects("s:\n  '1': a\n  1: b\n", "t.yaml:3:3: duplicate key \"1\"");
}

static void empty_step_has_no_parameters(void **state)
{
    (void)state;
    assert_loads("a:\nb: ~\nc: {}\nd: !!null\n", "{\"a\":{},\"b\":{},\"c\":{},\"d\":{}}");
}

static void steps_sorted_in_byte_order(void **state)
{
    (void)state;
    assert_loads("b: {}\na: {}\nB: {}\n\"\xc3\xa9\": {}\n_: {}\na1: {}\n",
                 "{\"B\":{},\"_\":{},\"a\":{},\"a1\":{},\"b\":{},\"\xc3\xa9\":{}}");
}

static void parameters_keep_file_order(void **state)
{
    (void)state;
    assert_loads("s:\n  z: 1\n  a: 2\n  m: 3\n", "{\"s\":{\"z\":1,\"a\":2,\"m\":3}}");
}

/* ------------------------------------------------------------ anchors */

static void anchors_and_aliases_copy_values(void **state)
{
    (void)state;
    assert_loads("s:\n"
                 "  a: &x {k: [1, 2]}\n"
                 "  b: *x\n"
                 "  c: &y hello\n"
                 "  d: *y\n"
                 "  e: &n 012\n"
                 "  f: [*n, *n]\n",
                 "{\"s\":{\"a\":{\"k\":[1,2]},\"b\":{\"k\":[1,2]},\"c\":\"hello\","
                 "\"d\":\"hello\",\"e\":10,\"f\":[10,10]}}");
}

static void alias_as_step_value_is_a_separate_copy(void **state)
{
    (void)state;
    bty_error err;
    cJSON *doc = parse("a: &s {p: 1}\nb: *s\nc: &n\nd: *n\n", &err);
    assert_non_null(doc);
    /* the copy is a real object: members can be added to it alone */
    cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(doc, "b"), "status", "new");
    char *got = cJSON_PrintUnformatted(doc);
    assert_string_equal(got,
                        "{\"a\":{\"p\":1},\"b\":{\"p\":1,\"status\":\"new\"},\"c\":{},\"d\":{}}");
    free(got);
    cJSON_Delete(doc);
}

static void alias_of_a_scalar_can_be_a_key(void **state)
{
    (void)state;
    assert_loads("s:\n  a: &k name\n  *k : v\n", "{\"s\":{\"a\":\"name\",\"name\":\"v\"}}");
    assert_rejects("s:\n  a: &k [1]\n  *k : v\n", "t.yaml:3:3: alias *k cannot be a key");
}

static void self_alias_rejected(void **state)
{
    (void)state;
    assert_rejects("s:\n  a: &x [1, *x]\n", "t.yaml:2:13: unknown anchor \"x\"");
    assert_rejects("s:\n  a: &x {b: {c: *x}}\n", "t.yaml:2:17: unknown anchor \"x\"");
}

static void unknown_alias_rejected(void **state)
{
    (void)state;
    assert_rejects("s:\n  a: *nowhere\n", "t.yaml:2:6: unknown anchor \"nowhere\"");
}

static void anchor_defined_twice_rejected(void **state)
{
    (void)state;
    assert_rejects("s:\n  a: &x 1\n  b: &x 2\n",
                   "t.yaml:3:6: anchor &x is defined twice (first at line 2, column 6)");
    assert_rejects("s:\n  a: &x [&x 1]\n",
                   "t.yaml:2:10: anchor &x is defined twice (first at line 2, column 6)");
}

static void billion_laughs_rejected_quickly(void **state)
{
    (void)state;
    const char *yaml = "s:\n"
                       "  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                       "  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                       "  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                       "  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                       "  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
                       "  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
                       "  i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
    /* a..e cost 123,463 values, each *e 111,111: the second passes 250,000 */
    assert_rejects(yaml, "t.yaml:7:14: the workflow grows past 250000 values");
    /* the same without the anchor on f */
    assert_rejects("s:\n"
                   "  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                   "  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                   "  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                   "  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                   "  f: [*e, *e, *e]\n",
                   "t.yaml:7:11: the workflow grows past 250000 values");
}

/* Few values, much text: one 200 KB string repeated by aliases. */
static void aliases_of_a_long_string_are_bounded_in_bytes(void **state)
{
    (void)state;
    size_t big = 200 * 1024, n = 200;
    char *yaml = malloc(big + n * 4 + 64);
    assert_non_null(yaml);
    char *p = yaml + sprintf(yaml, "job1:\n  big: &a \"");
    memset(p, 'x', big);
    p += big;
    p += sprintf(p, "\"\n  list: [");
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "*a,");
    strcpy(p - 1, "]\n");
    bty_error err = {0};
    cJSON *doc = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);
    assert_null(doc);
    assert_int_equal(err.status, 422);
    assert_non_null(strstr(err.message, "aliases copy more than 16 MiB of text"));
    free(yaml);
}

static void nesting_bounded_after_alias_expansion(void **state)
{
    (void)state;
    /* root 1 + step 2 + 62 sequences = 64 levels: fine; 63: too deep */
    char yaml[512];
    snprintf(yaml, sizeof(yaml), "s:\n  a: %.*s%.*s\n", 62,
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 62,
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    bty_error err;
    cJSON *doc = parse(yaml, &err);
    assert_non_null(doc);
    cJSON_Delete(doc);
    snprintf(yaml, sizeof(yaml), "s:\n  a: %.*s%.*s\n", 63,
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 63,
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    assert_rejects(yaml, "t.yaml:2:68: values nest deeper than 64 levels");
    /* 40 levels anchored, copied 30 levels down: 2 + 30 + 40 > 64 */
    snprintf(yaml, sizeof(yaml), "s:\n  a: &a %.*s%.*s\n  b: %.*s*a%.*s\n", 40,
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 40,
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", 30,
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 30,
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    assert_rejects(yaml, "t.yaml:3:36: alias *a nests values deeper than 64 levels");
}

/* ------------------------------------------------------------ merge keys */

static void merge_key_explicit_key_wins(void **state)
{
    (void)state;
    assert_loads("x:\n  d: &d {a: 1, b: 2}\ns:\n  <<: *d\n  b: 3\n",
                 "{\"s\":{\"a\":1,\"b\":3},\"x\":{\"d\":{\"a\":1,\"b\":2}}}");
    assert_loads("s:\n  b: 3\n  <<: {a: 1, b: 2}\n", "{\"s\":{\"b\":3,\"a\":1}}");
}

static void merge_key_first_merged_mapping_wins(void **state)
{
    (void)state;
    assert_loads("x:\n  d1: &d1 {a: 1, b: 1}\n  d2: &d2 {b: 2, c: 2}\n"
                 "s:\n  <<: [*d1, *d2]\n  z: 0\n",
                 "{\"s\":{\"a\":1,\"b\":1,\"c\":2,\"z\":0},"
                 "\"x\":{\"d1\":{\"a\":1,\"b\":1},\"d2\":{\"b\":2,\"c\":2}}}");
}

static void merged_members_go_where_the_merge_key_is(void **state)
{
    (void)state;
    assert_loads("s:\n  w: 0\n  <<: {a: 1, w: 9}\n  z: 2\n", "{\"s\":{\"w\":0,\"a\":1,\"z\":2}}");
}

static void merge_leaves_its_source_unchanged(void **state)
{
    (void)state;
    assert_loads("s:\n  m: {<<: &d {a: 1}, b: 2}\n  n: *d\n",
                 "{\"s\":{\"m\":{\"a\":1,\"b\":2},\"n\":{\"a\":1}}}");
}

static void merge_of_steps_at_top_level(void **state)
{
    (void)state;
    assert_loads("<<: {a: {p: 1}, b: ~}\nc: {}\na: {q: 2}\n",
                 "{\"a\":{\"q\":2},\"b\":{},\"c\":{}}");
    assert_rejects("<<: {a: 1}\n", "t.yaml:1:5: step \"a\" must map parameter names");
    assert_rejects("<<: {\"a[1]\": {}}\n", "t.yaml:1:5: step name must not contain [ or ]");
}

static void merge_key_needs_mappings(void **state)
{
    (void)state;
    assert_rejects("s:\n  <<: 1\n",
                   "t.yaml:2:7: the merge key << takes a mapping or a sequence of mappings, "
                   "not 1");
    assert_rejects("s:\n  <<: [{a: 1}, x]\n",
                   "t.yaml:2:7: the merge key << takes mappings, but this sequence holds \"x\"");
    assert_rejects("s:\n  <<: {a: 1}\n  <<: {b: 1}\n", "t.yaml:3:3: duplicate merge key <<");
}

static void quoted_merge_key_is_a_plain_key(void **state)
{
    (void)state;
    assert_loads("s:\n  '<<': {a: 1}\n", "{\"s\":{\"<<\":{\"a\":1}}}");
}

/* ------------------------------------------------------------ rejections */

static void duplicate_keys_rejected(void **state)
{
    (void)state;
    assert_rejects("s:\n  a: 1\n  a: 2\n", "t.yaml:3:3: duplicate key \"a\"");
    assert_rejects("s: {x: {a: 1, a: 1}}\n", "t.yaml:1:15: duplicate key \"a\"");
    assert_rejects("a: {}\nb: {}\na: {}\n", "t.yaml:3:1: duplicate step \"a\"");
    /* the same name in different mappings is fine */
    assert_loads("a: {x: {k: 1}, y: {k: 2}}\nb: {k: 3}\n",
                 "{\"a\":{\"x\":{\"k\":1},\"y\":{\"k\":2}},\"b\":{\"k\":3}}");
}

static void multiple_documents_rejected(void **state)
{
    (void)state;
    assert_rejects("a: {}\n---\nb: {}\n", "t.yaml:2:1: a second document starts here");
    assert_loads("%YAML 1.1\n---\na: {}\n...\n", "{\"a\":{}}");
}

static void unknown_tag_rejected(void **state)
{
    (void)state;
    assert_rejects("s: !foo {}\n", "t.yaml:1:4: unsupported tag !foo");
    assert_rejects("!!set {a: {}}\n", "t.yaml:1:1: unsupported tag !!set");
    assert_rejects("s:\n  v: !!omap [a: 1]\n", "t.yaml:2:6: unsupported tag !!omap");
    assert_rejects("s: !!str {}\n", "t.yaml:1:4: tag !!str does not fit a mapping");
    assert_rejects("s:\n  v: !!map [1]\n", "t.yaml:2:6: tag !!map does not fit a sequence");
    assert_loads("s: !!map\n  v: !!seq [1]\n  w: ! {}\n", "{\"s\":{\"v\":[1],\"w\":{}}}");
}

static void top_level_not_a_mapping_rejected(void **state)
{
    (void)state;
    assert_rejects("- a\n- b\n", "t.yaml:1:1: the top level must map step names");
    assert_rejects("hello\n", "t.yaml:1:1: the top level must map step names");
    assert_rejects("", "t.yaml:1:1: no steps");
    assert_rejects("# only a comment\n", "t.yaml:1:1: no steps");
    assert_rejects("~\n", "t.yaml:1:1: no steps");
    assert_rejects("{}\n", "t.yaml:1:1: no steps");
    assert_rejects("---\n", "t.yaml:2:1: no steps");
}

static void step_value_not_a_mapping_rejected(void **state)
{
    (void)state;
    assert_rejects("s: 1\n", "t.yaml:1:4: step \"s\" must map parameter names to values (or be "
                             "empty), not 1");
    assert_rejects("s: ''\n", "t.yaml:1:4: step \"s\" must map parameter names");
    assert_rejects("a: {}\ns: [x]\n", "t.yaml:2:4: step \"s\" must map parameter names to "
                                      "values (or be empty), not a sequence");
    assert_rejects("x: {p: &l [1]}\ns: *l\n", "t.yaml:2:4: step \"s\" must map parameter names");
}

static void bad_step_name_rejected(void **state)
{
    (void)state;
    assert_rejects("\"x[1]\": {}\n", "t.yaml:1:1: step name must not contain [ or ]");
    assert_rejects("ok: {}\n\"a\\tb\": {}\n",
                   "t.yaml:2:1: step name must not contain control characters");
    assert_rejects("'': {}\n", "t.yaml:1:1: step name must be 1-256 bytes");
    char yaml[400];
    memset(yaml, 'x', 257);
    strcpy(yaml + 257, ": {}\n");
    assert_rejects(yaml, "t.yaml:1:1: step name must be 1-256 bytes");
    yaml[256] = ':';
    strcpy(yaml + 257, " {}\n");
    bty_error err;
    cJSON *doc = parse(yaml, &err);
    assert_non_null(doc); /* 256 bytes is fine */
    cJSON_Delete(doc);
}

static void complex_keys_rejected(void **state)
{
    (void)state;
    assert_rejects("s:\n  ? [a]\n  : 1\n", "t.yaml:2:5: a sequence cannot be a key");
    assert_rejects("? {a: 1}\n: {}\n", "t.yaml:1:3: a mapping cannot be a key");
}

static void yaml_syntax_error_has_position(void **state)
{
    (void)state;
    assert_rejects("s: {a: [1, 2\n",
                   "t.yaml:2:1: did not find expected ',' or ']' (while parsing a flow "
                   "sequence at line 1, column 8)");
    assert_rejects("s:\n  a: 1\n b: 2\n", "t.yaml:3:2: did not find expected key");
    assert_rejects("s: {a: \"x\xff\"}\n", "t.yaml:1:10: invalid leading UTF-8 octet (#xFF)");
}

static void nul_byte_in_text_rejected(void **state)
{
    (void)state;
    static const char yaml[] = "s:\n  v: a\0b\n";
    assert_fails(yaml, sizeof(yaml) - 1, 422,
                 "t.yaml:2:7: control characters are not allowed (#x0)");
    assert_rejects("s:\n  v: \"a\\0b\"\n", "t.yaml:2:6: a NUL character (\\0) cannot be stored");
    assert_rejects("s:\n  \"a\\0b\": 1\n", "t.yaml:2:3: a NUL character (\\0) cannot be stored");
}

static void oversize_text_rejected_with_413(void **state)
{
    (void)state;
    size_t len = CFG_MAX_BYTES;
    char *yaml = malloc(len + 2);
    assert_non_null(yaml);
    /* exactly the limit: a step and one long comment line */
    memset(yaml, 'x', len + 1);
    memcpy(yaml, "s: {}\n#", 7);
    yaml[len - 1] = '\n';
    bty_error err;
    cJSON *doc = parse_len(yaml, len, &err);
    assert_non_null(doc);
    cJSON_Delete(doc);
    /* one byte more */
    yaml[len - 1] = 'x';
    yaml[len] = '\n';
    assert_fails(yaml, len + 1, 413, "t.yaml is 1048577 bytes; a workflow file may hold at most");
    free(yaml);
}

static void many_keys_load_quickly(void **state)
{
    (void)state;
    enum { KEYS = 60000 };
    size_t cap = (size_t)KEYS * 16 + 16, n = 0;
    char *yaml = malloc(cap);
    assert_non_null(yaml);
    n += (size_t)snprintf(yaml + n, cap - n, "s:\n");
    for (int i = 0; i < KEYS; i++)
        n += (size_t)snprintf(yaml + n, cap - n, "  k%d: %d\n", i, i);
    bty_error err;
    cJSON *doc = parse_len(yaml, n, &err);
    assert_non_null(doc);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "s")), KEYS);
    cJSON_Delete(doc);
    /* and a duplicate at the very end is still found */
    n += (size_t)snprintf(yaml + n, cap - n, "  k0: again\n");
    char expected[64];
    snprintf(expected, sizeof(expected), "t.yaml:%d:3: duplicate key \"k0\"", KEYS + 2);
    assert_fails(yaml, n, 422, expected);
    free(yaml);
}

static void null_text_and_source_handled(void **state)
{
    (void)state;
    bty_error err = {0};
    assert_null(cfg_parse(NULL, 0, NULL, &err));
    assert_int_equal(err.status, 422);
    assert_string_equal(err.message,
                        "workflow file:1:1: no steps: the file must map at least one step name "
                        "to its parameters");
    assert_null(cfg_parse("- x\n", 4, "wf.yaml", NULL)); /* err may be NULL */
}

/* ------------------------------------------------------------ special fields */

static void special_fields_valid_values_accepted(void **state)
{
    (void)state;
    assert_loads("s:\n"
                 "  from_date: 2026-01-01\n"
                 "  to_date: '2026-01-01T06:00:00.123456Z'\n"
                 "  batch_start: 2026-01-01 06:00+02:00\n"
                 "  batch_end: ~\n"
                 "  reprocess_hours: 1.5\n"
                 "  trunc_start: yes\n"
                 "  status: success\n"
                 "  batch_id: 1767225600\n"
                 "  error_message: ~\n"
                 "  infa_section: 's_m_load'\n"
                 "t: {status: new, reprocess_hours: 0, batch_id: 0}\n"
                 "u: {status: open, error_message: disk full}\n"
                 "v: {status: failed}\n",
                 "{\"s\":{\"from_date\":\"2026-01-01\",\"to_date\":\"2026-01-01T06:00:00.123456Z\","
                 "\"batch_start\":\"2026-01-01 06:00+02:00\",\"batch_end\":null,"
                 "\"reprocess_hours\":1.5,\"trunc_start\":true,\"status\":\"success\","
                 "\"batch_id\":1767225600,\"error_message\":null,\"infa_section\":\"s_m_load\"},"
                 "\"t\":{\"status\":\"new\",\"reprocess_hours\":0,\"batch_id\":0},"
                 "\"u\":{\"status\":\"open\",\"error_message\":\"disk full\"},"
                 "\"v\":{\"status\":\"failed\"}}");
    /* special names only matter directly in a step */
    assert_loads("s:\n  nested: {status: whatever, batch_id: x}\n",
                 "{\"s\":{\"nested\":{\"status\":\"whatever\",\"batch_id\":\"x\"}}}");
}

/* One row: `yaml` must fail at "t.yaml:<error>...". */
typedef struct field_case {
    const char *yaml;
    const char *error;
} field_case;

static const field_case field_cases[] = {
    {"s:\n  from_date: 2026-13-01\n",
     "2:14: from_date must be a time such as \"2026-01-01T06:00:00\" (UTC unless an offset is "
     "given) or null, not \"2026-13-01\""},
    {"s:\n  from_date: yesterday\n", "2:14: from_date must be a time"},
    {"s:\n  to_date: 5\n", "2:12: to_date must be a time such as"},
    {"s:\n  batch_start: [2026-01-01]\n", "2:16: batch_start must be a time"},
    {"s:\n  batch_end: yes\n", "2:14: batch_end must be a time such as \"2026-01-01T06:00:00\" "
                               "(UTC unless an offset is given) or null, not true"},
    {"s:\n  reprocess_hours: 1000001\n",
     "2:20: reprocess_hours must be a number of hours from 0 to 1000000, not 1000001"},
    {"s:\n  batch_id: 1000000000000000\n", "2:13: batch_id must be an integer from 0 to "},
    {"s:\n  reprocess_hours: -1\n",
     "2:20: reprocess_hours must be a number of hours from 0 to 1000000, not -1"},
    {"s:\n  reprocess_hours: '2'\n",
     "2:20: reprocess_hours must be a number of hours from 0 to 1000000, not \"2\""},
    {"s:\n  reprocess_hours:\n",
     "2:19: reprocess_hours must be a number of hours from 0 to 1000000, not null"},
    {"s:\n  trunc_start: 1\n", "2:16: trunc_start must be true or false, not 1"},
    {"s:\n  trunc_start: 'true'\n", "2:16: trunc_start must be true or false, not \"true\""},
    {"s:\n  status: done\n",
     "2:11: status must be one of new, open, success, failed, not \"done\""},
    {"s:\n  status: failure\n", "2:11: status must be one of new, open, success, failed"},
    {"s:\n  status: abandoned\n", "2:11: status must be one of new, open, success, failed"},
    {"s:\n  batch_id: -5\n",
     "2:13: batch_id must be an integer from 0 to 999999999999999 (the batch's Unix time), not -5"},
    {"s:\n  batch_id: 1.5\n", "2:13: batch_id must be an integer from 0 to 999999999999999"},
    {"s:\n  batch_id: '17'\n", "2:13: batch_id must be an integer from 0 to 999999999999999 (the "
                               "batch's Unix time), not \"17\""},
    {"s:\n  error_message: 42\n", "2:18: error_message must be a string, not 42"},
    {"s:\n  infa_section: {a: 1}\n", "2:17: infa_section must be a string, not a mapping"},
    /* fields arriving by alias or merge: the alias's or merge value's position */
    {"x:\n  p: &d {status: bogus}\ns:\n  <<: *d\n", "4:7: status must be one of"},
    {"x:\n  p: &d {trunc_start: 3}\ns: *d\n", "3:4: trunc_start must be true or false, not 3"},
    {"x:\n  p: &t nope\ns:\n  to_date: *t\n", "4:12: to_date must be a time"},
};

static void special_field_errors_have_line_and_column(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(field_cases) / sizeof(field_cases[0]); i++) {
        char prefix[400];
        snprintf(prefix, sizeof(prefix), "t.yaml:%s", field_cases[i].error);
        assert_rejects(field_cases[i].yaml, prefix);
    }
}

/* ------------------------------------------------------------ look-alikes */

/* A parameter named so that sh or infa would print it as a special field
 * is refused where its name is written (or where the alias or merge that
 * brings it is). */
static const field_case look_alike_cases[] = {
    {"s:\n  FROM_DATE: 1999-01-01\n",
     "2:3: parameter \"FROM_DATE\" would pass for the special field from_date in the sh and infa "
     "outputs"},
    {"s:\n  p: 1\n  from-date: x\n", "3:3: parameter \"from-date\" would pass for the special "
                                     "field from_date"},
    {"s:\n  Batch.Id: 7\n",
     "2:3: parameter \"Batch.Id\" would pass for the special field batch_id"},
    {"s:\n  Status: open\n", "2:3: parameter \"Status\" would pass for the special field status"},
    {"s:\n  to date: x\n", "2:3: parameter \"to date\" would pass for the special field to_date"},
    /* long s (U+017F): "status" to a caseless reader */
    {"s:\n  \xc5\xbftatus: x\n", "2:3: parameter \"\xc5\xbftatus\" would pass for the special "
                                 "field status"},
    {"x:\n  p: &d {STATUS: x}\ns:\n  <<: *d\n", "4:7: parameter \"STATUS\" would pass for"},
    {"x:\n  p: &d {TO_DATE: x}\ns: *d\n", "3:4: parameter \"TO_DATE\" would pass for"},
};

static void look_alike_parameter_names_rejected_with_position(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(look_alike_cases) / sizeof(look_alike_cases[0]); i++) {
        char prefix[400];
        snprintf(prefix, sizeof(prefix), "t.yaml:%s", look_alike_cases[i].error);
        assert_rejects(look_alike_cases[i].yaml, prefix);
    }
}

static void names_that_do_not_pass_for_special_fields_load(void **state)
{
    (void)state;
    /* the close/fail parameters are plain names in a file, and so are
     * their look-alikes; nested keys are not parameters */
    assert_loads("s:\n  STEP: 1\n  Token: 2\n  ERROR: 3\n  step: 4\n",
                 "{\"s\":{\"STEP\":1,\"Token\":2,\"ERROR\":3,\"step\":4}}");
    assert_loads("s:\n  nested: {FROM_DATE: x, Status: y}\n",
                 "{\"s\":{\"nested\":{\"FROM_DATE\":\"x\",\"Status\":\"y\"}}}");
    assert_loads("s:\n  from_date_local: x\n  status_: y\n  _status: z\n  batchid: 1\n",
                 "{\"s\":{\"from_date_local\":\"x\",\"status_\":\"y\",\"_status\":\"z\","
                 "\"batchid\":1}}");
    /* a step may be named like a special field */
    assert_loads("FROM_DATE: {status: new}\n", "{\"FROM_DATE\":{\"status\":\"new\"}}");
}

/* ------------------------------------------------------------ step count */

/* n bare steps "s00001:" ... one per line. */
static char *bare_steps(int n, size_t *len)
{
    char *yaml = malloc((size_t)n * 8 + 1);
    assert_non_null(yaml);
    for (int i = 0; i < n; i++)
        snprintf(yaml + (size_t)i * 8, 9, "s%05d:\n", i + 1);
    *len = (size_t)n * 8;
    return yaml;
}

static void at_most_max_steps_load(void **state)
{
    (void)state;
    size_t len;
    char *yaml = bare_steps(BTY_MAX_STEPS, &len);
    bty_error err;
    cJSON *doc = parse_len(yaml, len, &err);
    if (!doc)
        fail_msg("%d steps: %s", BTY_MAX_STEPS, err.message);
    assert_int_equal(cJSON_GetArraySize(doc), BTY_MAX_STEPS);
    cJSON_Delete(doc);
    free(yaml);

    yaml = bare_steps(BTY_MAX_STEPS + 1, &len);
    char expected[128];
    snprintf(expected, sizeof(expected), "t.yaml:%d:1: more than %d steps", BTY_MAX_STEPS + 1,
             BTY_MAX_STEPS);
    assert_fails(yaml, len, 422, expected);
    free(yaml);

    /* steps merged in at the top level count too, at the merge value */
    yaml = bare_steps(BTY_MAX_STEPS - 1, &len);
    static const char merge[] = "<<: {m1: {}, m2: {}}\n";
    char *more = realloc(yaml, len + sizeof(merge));
    assert_non_null(more);
    memcpy(more + len, merge, sizeof(merge));
    snprintf(expected, sizeof(expected), "t.yaml:%d:5: more than %d steps", BTY_MAX_STEPS,
             BTY_MAX_STEPS);
    assert_fails(more, len + sizeof(merge) - 1, 422, expected);
    free(more);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scalars_resolve_like_pyyaml_safe_loader),
        cmocka_unit_test(spec_example_loads),
        cmocka_unit_test(nested_values_become_json),
        cmocka_unit_test(keys_resolve_as_pyyaml_and_print_as_json_dumps),
        cmocka_unit_test(keys_equal_after_resolution_are_duplicates),
        cmocka_unit_test(empty_step_has_no_parameters),
        cmocka_unit_test(steps_sorted_in_byte_order),
        cmocka_unit_test(parameters_keep_file_order),
        cmocka_unit_test(anchors_and_aliases_copy_values),
        cmocka_unit_test(alias_as_step_value_is_a_separate_copy),
        cmocka_unit_test(alias_of_a_scalar_can_be_a_key),
        cmocka_unit_test(self_alias_rejected),
        cmocka_unit_test(unknown_alias_rejected),
        cmocka_unit_test(anchor_defined_twice_rejected),
        cmocka_unit_test(billion_laughs_rejected_quickly),
        cmocka_unit_test(aliases_of_a_long_string_are_bounded_in_bytes),
        cmocka_unit_test(nesting_bounded_after_alias_expansion),
        cmocka_unit_test(merge_key_explicit_key_wins),
        cmocka_unit_test(merge_key_first_merged_mapping_wins),
        cmocka_unit_test(merged_members_go_where_the_merge_key_is),
        cmocka_unit_test(merge_leaves_its_source_unchanged),
        cmocka_unit_test(merge_of_steps_at_top_level),
        cmocka_unit_test(merge_key_needs_mappings),
        cmocka_unit_test(quoted_merge_key_is_a_plain_key),
        cmocka_unit_test(duplicate_keys_rejected),
        cmocka_unit_test(multiple_documents_rejected),
        cmocka_unit_test(unknown_tag_rejected),
        cmocka_unit_test(top_level_not_a_mapping_rejected),
        cmocka_unit_test(step_value_not_a_mapping_rejected),
        cmocka_unit_test(bad_step_name_rejected),
        cmocka_unit_test(complex_keys_rejected),
        cmocka_unit_test(yaml_syntax_error_has_position),
        cmocka_unit_test(nul_byte_in_text_rejected),
        cmocka_unit_test(oversize_text_rejected_with_413),
        cmocka_unit_test(many_keys_load_quickly),
        cmocka_unit_test(null_text_and_source_handled),
        cmocka_unit_test(special_fields_valid_values_accepted),
        cmocka_unit_test(special_field_errors_have_line_and_column),
        cmocka_unit_test(look_alike_parameter_names_rejected_with_position),
        cmocka_unit_test(names_that_do_not_pass_for_special_fields_load),
        cmocka_unit_test(at_most_max_steps_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
