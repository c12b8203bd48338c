/*
 * test_route.c - the routing table (paths, methods, names, formats) and the
 * Redis URL forms Batchy accepts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "shell.h"

static const struct {
    const char *method, *path;
    int status; /* 0 = routed */
    bty_endpoint endpoint;
    const char *workflow;
    bty_format format;
} routes[] = {
    {"GET", "/", 0, EP_INDEX, "", FMT_JSON},
    {"GET", "/index", 0, EP_INDEX, "", FMT_JSON},
    {"HEAD", "/index/", 0, EP_INDEX, "", FMT_JSON},
    {"GET", "/healthz", 0, EP_HEALTHZ, "", FMT_JSON},
    {"POST", "/load_cfg/wf1", 0, EP_LOAD_CFG, "wf1", FMT_JSON},
    {"GET", "/get_status/wf1/", 0, EP_GET_STATUS, "wf1", FMT_JSON},
    {"HEAD", "/get_status/wf1", 0, EP_GET_STATUS, "wf1", FMT_JSON},
    {"GET", "/open_batch/wf1", 0, EP_OPEN_BATCH, "wf1", FMT_JSON},
    {"GET", "/open_batch/wf1/json", 0, EP_OPEN_BATCH, "wf1", FMT_JSON},
    {"GET", "/open_batch/sales.daily_v2/infa", 0, EP_OPEN_BATCH, "sales.daily_v2", FMT_INFA},
    {"POST", "/open_batch/wf1/sh/", 0, EP_OPEN_BATCH, "wf1", FMT_SH},
    {"GET", "/close_batch/wf1", 0, EP_CLOSE_BATCH, "wf1", FMT_JSON},
    {"GET", "/fail_batch/wf1", 0, EP_FAIL_BATCH, "wf1", FMT_JSON},
    {"GET", "/workflows", 0, EP_WORKFLOWS, "", FMT_JSON},
    {"HEAD", "/workflows/", 0, EP_WORKFLOWS, "", FMT_JSON},
    {"GET", "/history/wf1", 0, EP_HISTORY, "wf1", FMT_JSON},
    /* refused */
    {"GET", "/workflows/wf1", 404, 0, NULL, 0},
    {"GET", "/history", 404, 0, NULL, 0},
    {"GET", "/history/wf1/json", 404, 0, NULL, 0},
    {"GET", "/history/wf1-1467149783", 400, 0, NULL, 0},
    {"GET", "/nope", 404, 0, NULL, 0},
    {"GET", "", 404, 0, NULL, 0},
    {"GET", "//index", 404, 0, NULL, 0},
    {"GET", "/get_status", 404, 0, NULL, 0},
    {"GET", "/get_status/wf1/x", 404, 0, NULL, 0},
    {"GET", "/close_batch/wf1/json", 404, 0, NULL, 0},
    {"GET", "/open_batch/wf1/xml", 400, 0, NULL, 0},
    {"GET", "/open_batch/wf1/sh/x", 404, 0, NULL, 0},
    {"GET", "/load_cfg/..", 400, 0, NULL, 0},
    {"GET", "/load_cfg/../etc/passwd", 404, 0, NULL, 0},
    {"GET", "/load_cfg/.hidden", 400, 0, NULL, 0},
    /* a snapshot by its key: get_status only, read-only (SPEC 15) */
    {"GET", "/get_status/wf1-1467149783", 0, EP_GET_STATUS, "wf1-1467149783", FMT_JSON},
    {"HEAD", "/get_status/wf1-1467149783-init", 0, EP_GET_STATUS, "wf1-1467149783-init", FMT_JSON},
    {"GET", "/open_batch/wf1-1467149783", 400, 0, NULL, 0},
    {"GET", "/close_batch/wf1-1467149783-init", 400, 0, NULL, 0},
    {"GET", "/get_status/-1467149783", 400, 0, NULL, 0},
    {"GET", "/get_status/.x-1467149783-init", 400, 0, NULL, 0},
    {"PUT", "/get_status/wf1", 405, 0, NULL, 0},
    {"DELETE", "/index", 405, 0, NULL, 0},
    {"HEAD", "/open_batch/wf1", 405, 0, NULL, 0},
    {"HEAD", "/close_batch/wf1", 405, 0, NULL, 0},
    /* the dashboard: its page, for a workflow too (app.js can be one's
     * name), and its files under "-", which no workflow name can start */
    {"GET", "/ui", 0, EP_UI, "", FMT_JSON},
    {"HEAD", "/ui/", 0, EP_UI, "", FMT_JSON},
    {"GET", "/ui/sales.daily", 0, EP_UI, "sales.daily", FMT_JSON},
    {"GET", "/ui/app.js", 0, EP_UI, "app.js", FMT_JSON},
    {"GET", "/ui/-/app.js", 0, EP_UI, "", FMT_JSON},
    {"GET", "/ui/-", 400, 0, NULL, 0},
    {"GET", "/ui/-/", 400, 0, NULL, 0},
    {"GET", "/ui/-/App.js", 404, 0, NULL, 0},
    {"GET", "/ui/-/a b", 404, 0, NULL, 0},
    {"GET", "/ui/-/app.js/x", 404, 0, NULL, 0},
    {"GET", "/ui/wf1/x", 404, 0, NULL, 0},
    {"GET", "/ui/wf1-1467149783", 400, 0, NULL, 0},
    {"POST", "/ui", 405, 0, NULL, 0},
};

static void routing_table_matches_paths_methods_and_formats(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        bty_target t;
        bty_error err = {0};
        int rc = route_match(routes[i].method, routes[i].path, &t, &err);
        if (routes[i].status) {
            if (rc != -1 || err.status != routes[i].status)
                fail_msg("%s %s: expected %d, got rc %d status %d", routes[i].method,
                         routes[i].path, routes[i].status, rc, err.status);
            assert_true(err.message[0] != '\0');
            continue;
        }
        if (rc != 0)
            fail_msg("%s %s: %d %s", routes[i].method, routes[i].path, err.status, err.message);
        assert_int_equal(t.route->endpoint, routes[i].endpoint);
        assert_string_equal(t.workflow, routes[i].workflow);
        assert_int_equal(t.format, routes[i].format);
    }
}

static void a_dashboard_file_is_named_and_a_405_says_what_is_allowed(void **state)
{
    (void)state;
    bty_target t;
    bty_error err = {0};
    assert_int_equal(route_match("GET", "/ui/-/app.css", &t, &err), 0);
    assert_string_equal(t.file, "app.css");
    assert_int_equal(route_match("GET", "/ui/wf1", &t, &err), 0);
    assert_string_equal(t.file, "");
    char longer[64] = "/ui/-/";
    memset(longer + 6, 'a', BTY_UI_FILE_MAX);
    assert_int_equal(route_match("GET", longer, &t, &err), -1);
    assert_int_equal(err.status, 404);
    assert_int_equal(route_match("POST", "/ui", &t, &err), -1);
    assert_int_equal(t.allow, BTY_GET | BTY_HEAD);
    assert_int_equal(route_match("HEAD", "/open_batch/wf1", &t, &err), -1);
    assert_int_equal(t.allow, BTY_GET | BTY_POST);
    assert_string_equal(route_allow(t.allow), "GET, POST");
}

static void over_long_workflow_names_and_paths_are_refused(void **state)
{
    (void)state;
    char path[2100] = "/get_status/";
    memset(path + 12, 'a', 129);
    bty_target t;
    bty_error err = {0};
    assert_int_equal(route_match("GET", path, &t, &err), -1);
    assert_int_equal(err.status, 400);
    /* longer than a path segment may be, shorter than a path: still the
     * name's error, not "no such endpoint" */
    memset(path + 12, 'a', 300);
    path[312] = '\0';
    assert_int_equal(route_match("GET", path, &t, &err), -1);
    assert_int_equal(err.status, 400);
    assert_non_null(strstr(err.message, "1-128"));
    memset(path + 12, 'a', 2000);
    path[2012] = '\0';
    assert_int_equal(route_match("GET", path, &t, &err), -1);
    assert_int_equal(err.status, 404);
    path[12 + 128] = '\0';
    assert_int_equal(route_match("GET", path, &t, &err), 0);
}

/* The 405 message quotes the method cut to 20 bytes; the cut must not
 * leave half a character, since the message is sent as JSON. */
static void method_quoted_in_an_error_stays_utf8(void **state)
{
    (void)state;
    char method[1 + 2 * 10 + 1] = "x";
    for (int i = 0; i < 10; i++)
        memcpy(method + 1 + 2 * i, "\xc3\xa9", 2); /* U+00E9 */
    method[sizeof(method) - 1] = '\0';
    bty_target t;
    bty_error err = {0};
    assert_int_equal(route_match(method, "/get_status/wf1", &t, &err), -1);
    assert_int_equal(err.status, 405);
    assert_true(utf8_valid(err.message, strlen(err.message)));
    assert_non_null(strstr(err.message, "method x\xc3\xa9"));
}

/* sentinel://[user:password@]host[:port][,host[:port]...]/<master>[/db]
 * [?sentinel_password=...] (SPEC section 12): a list of hosts, each part
 * percent-decoded; the default port is Sentinel's. */
static void sentinel_urls_list_hosts_and_name_the_master(void **state)
{
    (void)state;
    bty_redis_target r;
    bty_error err = {0};
    assert_int_equal(
        options_parse_redis_url("sentinel://10.0.0.1:26379,10.0.0.2,[::1]:26380/etl", &r, &err), 0);
    assert_true(r.is_sentinel);
    assert_false(r.is_unix);
    assert_int_equal(r.nsentinels, 3);
    assert_string_equal(r.sentinels[0].host, "10.0.0.1");
    assert_int_equal(r.sentinels[0].port, 26379);
    assert_string_equal(r.sentinels[1].host, "10.0.0.2");
    assert_int_equal(r.sentinels[1].port, 26379);
    assert_string_equal(r.sentinels[2].host, "::1");
    assert_int_equal(r.sentinels[2].port, 26380);
    assert_string_equal(r.master, "etl");
    assert_int_equal(r.db, 0);
    assert_string_equal(r.password, "");
    assert_string_equal(r.sentinel_password, "");
    assert_int_equal(options_parse_redis_url("sentinel://u:p%40ss@s1:1,s2:2/my%20master/3"
                                             "?sentinel_password=s%26p",
                                             &r, &err),
                     0);
    assert_string_equal(r.user, "u");
    assert_string_equal(r.password, "p@ss");
    assert_string_equal(r.master, "my master");
    assert_int_equal(r.db, 3);
    assert_string_equal(r.sentinel_password, "s&p");
    assert_int_equal(r.nsentinels, 2);
    assert_string_equal(r.sentinels[1].host, "s2");
    assert_int_equal(r.sentinels[1].port, 2);

    const char *bad[] = {
        "sentinel://h:26379",      /* no master */
        "sentinel://h:26379/",     /* an empty master name */
        "sentinel:///etl",         /* no hosts */
        "sentinel://u:p@/etl",     /* no hosts after the credentials */
        "sentinel://h:x/etl",      /* a port that is not one */
        "sentinel://h:/etl",       /* an empty port */
        "sentinel://h:70000/etl",  /* out of range */
        "sentinel://h,/etl",       /* an empty host */
        "sentinel://,h/etl",       /* an empty host */
        "sentinel://[::1/etl",     /* an open bracket */
        "sentinel://h/etl/x",      /* a bad db */
        "sentinel://h/etl/",       /* an empty db */
        "sentinel://h/etl?db=2",   /* another parameter */
        "sentinel://:p%00w@h/etl", /* a NUL */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.status = 0;
        if (options_parse_redis_url(bad[i], &r, &err) != -1)
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(err.status, 400);
        assert_null(strstr(err.message, "p%00w")); /* never the URL itself */
    }
    char many[512] = "sentinel://";
    for (int i = 0; i <= BTY_SENTINELS_MAX; i++)
        strcat(many, i ? ",h:1" : "h:1");
    strcat(many, "/etl");
    assert_int_equal(options_parse_redis_url(many, &r, &err), -1);
}

static void token_is_needed_only_where_state_changes(void **state)
{
    (void)state;
    const char *paths[] = {"/index",        "/healthz",       "/get_status/w", "/load_cfg/w",
                           "/open_batch/w", "/close_batch/w", "/fail_batch/w"};
    const int needs[] = {0, 0, 0, 1, 1, 1, 1};
    for (size_t i = 0; i < 7; i++) {
        bty_target t;
        assert_int_equal(route_match("GET", paths[i], &t, NULL), 0);
        assert_int_equal(t.route->needs_token, needs[i]);
    }
}

static void redis_urls_in_every_documented_form(void **state)
{
    (void)state;
    bty_redis_target r;
    bty_error err = {0};
    assert_int_equal(options_parse_redis_url("redis://127.0.0.1:6379/0", &r, &err), 0);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.port, 6379);
    assert_int_equal(r.db, 0);
    assert_int_equal(options_parse_redis_url("redis://:p%40ss@db.example:6380/3", &r, &err), 0);
    assert_string_equal(r.host, "db.example");
    assert_string_equal(r.password, "p@ss");
    assert_string_equal(r.user, "");
    assert_int_equal(r.port, 6380);
    assert_int_equal(r.db, 3);
    assert_int_equal(options_parse_redis_url("redis://etl:secret@localhost", &r, &err), 0);
    assert_string_equal(r.user, "etl");
    assert_string_equal(r.password, "secret");
    assert_int_equal(r.port, 6379);
    assert_int_equal(options_parse_redis_url("redis://[::1]:7000", &r, &err), 0);
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 7000);
    assert_int_equal(options_parse_redis_url("redis://[::1]/", &r, &err), 0);
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 6379);
    assert_int_equal(r.db, 0);
    /* The first ':' of the user info ends the user; an encoded one does not. */
    assert_int_equal(options_parse_redis_url("redis://u%3Av:a:b%3Ac@h:1/2", &r, &err), 0);
    assert_string_equal(r.user, "u:v");
    assert_string_equal(r.password, "a:b:c");
    assert_string_equal(r.host, "h");
    assert_int_equal(r.port, 1);
    assert_int_equal(r.db, 2);
    assert_int_equal(options_parse_redis_url("redis://", &r, &err), 0);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(options_parse_redis_url("unix:///run/redis/redis.sock?db=2", &r, &err), 0);
    assert_true(r.is_unix);
    assert_string_equal(r.path, "/run/redis/redis.sock");
    assert_int_equal(r.db, 2);

    const char *bad[] = {"http://x",
                         "redis://h:99999",
                         "redis://h/abc",
                         "unix://",
                         "unix:///s?db=x",
                         "nonsense",
                         "",
                         "redis://:p%00w@h",
                         "redis://h/1/2",
                         "redis://h:-1",
                         "redis://:p@ss@h",
                         "redis://h:1x",
                         "redis://h/99999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.status = 0;
        if (options_parse_redis_url(bad[i], &r, &err) != -1)
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(err.status, 400);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routing_table_matches_paths_methods_and_formats),
        cmocka_unit_test(a_dashboard_file_is_named_and_a_405_says_what_is_allowed),
        cmocka_unit_test(over_long_workflow_names_and_paths_are_refused),
        cmocka_unit_test(method_quoted_in_an_error_stays_utf8),
        cmocka_unit_test(token_is_needed_only_where_state_changes),
        cmocka_unit_test(redis_urls_in_every_documented_form),
        cmocka_unit_test(sentinel_urls_list_hosts_and_name_the_master),
    };
    return cmocka_run_group_tests_name("route", tests, NULL, NULL);
}
