/*
 * test_resp.c - the Redis side of store calls (resp.c), without a server:
 * the commands a call holds are read back with hiredis's reader, and the
 * replies it is given are RESP text read by the same reader.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "shell.h"

/* RESP text in, one redisReply out. */
static redisReply *parse_one(const char *text, size_t len)
{
    redisReader *r = redisReaderCreate();
    assert_non_null(r);
    assert_int_equal(redisReaderFeed(r, text, len), REDIS_OK);
    void *reply = NULL;
    assert_int_equal(redisReaderGetReply(r, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(r);
    return reply;
}

/* The commands of a call, each as a RESP array of bulk strings. */
static redisReply **commands_of(const store_call *c)
{
    redisReader *r = redisReaderCreate();
    assert_int_equal(redisReaderFeed(r, c->commands, c->len), REDIS_OK);
    redisReply **out = calloc((size_t)c->ncommands + 1, sizeof(*out));
    for (int i = 0; i < c->ncommands; i++) {
        void *reply = NULL;
        assert_int_equal(redisReaderGetReply(r, &reply), REDIS_OK);
        assert_non_null(reply);
        out[i] = reply;
    }
    void *more = NULL;
    assert_int_equal(redisReaderGetReply(r, &more), REDIS_OK);
    assert_null(more); /* exactly ncommands */
    redisReaderFree(r);
    return out;
}

static void free_commands(redisReply **cmds)
{
    for (size_t i = 0; cmds[i]; i++)
        freeReplyObject(cmds[i]);
    free(cmds);
}

static void assert_args(const redisReply *cmd, size_t n, ...)
{
    assert_int_equal(cmd->type, REDIS_REPLY_ARRAY);
    assert_int_equal(cmd->elements, n);
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        const char *want = va_arg(ap, const char *);
        if (want)
            assert_string_equal(cmd->element[i]->str, want);
    }
    va_end(ap);
}

/* Give a built call its replies, as the store thread does. */
static void give_replies(store_call *c, const char *const *texts)
{
    c->replies = calloc((size_t)c->ncommands, sizeof(*c->replies));
    for (int i = 0; i < c->ncommands; i++)
        c->replies[i] = parse_one(texts[i], strlen(texts[i]));
    c->nreplies = c->ncommands;
}

static void read_is_one_hgetall(void **state)
{
    (void)state;
    store_call c = {0};
    bty_error err = {0};
    assert_int_equal(store_call_read(&c, "wf1", &err), 0);
    assert_int_equal(c.kind, CALL_READ);
    redisReply **cmds = commands_of(&c);
    assert_args(cmds[0], 2, "HGETALL", "wf1");
    free_commands(cmds);
    store_call_clear(&c);
}

static void read_result_is_the_hash_or_an_error(void **state)
{
    (void)state;
    store_call c = {0};
    bty_error err = {0};
    bty_hash h;
    store_call_read(&c, "wf1", &err);
    give_replies(&c,
                 (const char *const[]){"*4\r\n$1\r\na\r\n$2\r\n{}\r\n$1\r\nb\r\n$3\r\n{ }\r\n"});
    assert_int_equal(store_read_result(&c, &h, &err), 0);
    assert_int_equal(h.n, 2);
    assert_memory_equal(h.fields[1].name, "b", 1);
    assert_int_equal(h.fields[1].value_len, 3);
    store_hash_free(&h);
    store_call_clear(&c);

    store_call_read(&c, "wf1", &err);
    give_replies(&c, (const char *const[]){"-WRONGTYPE Operation against a key\r\n"});
    assert_int_equal(store_read_result(&c, &h, &err), -1);
    assert_int_equal(err.status, 409);
    assert_non_null(strstr(err.message, "must be a hash of steps"));
    store_call_clear(&c);

    store_call_read(&c, "wf1", &err);
    give_replies(&c, (const char *const[]){"-LOADING Redis is loading\r\n"});
    assert_int_equal(store_read_result(&c, &h, &err), -1);
    assert_int_equal(err.status, 503);
    store_call_clear(&c);

    /* an odd number of elements is no hash */
    store_call_read(&c, "wf1", &err);
    give_replies(&c, (const char *const[]){"*1\r\n$1\r\na\r\n"});
    assert_int_equal(store_read_result(&c, &h, &err), -1);
    assert_int_equal(err.status, 503);
    store_call_clear(&c);
}

static void a_failed_call_says_why(void **state)
{
    (void)state;
    store_call c = {0};
    bty_error err = {0};
    bty_hash h;
    store_call_read(&c, "wf1", &err);
    store_call_fail_with(&c, 503, "Redis is unreachable (test)");
    assert_int_equal(store_read_result(&c, &h, &err), -1);
    assert_int_equal(err.status, 503);
    assert_string_equal(err.message, "Redis is unreachable (test)");
    store_call_forget_failure(&c);
    assert_null(c.failure);
    store_call_clear(&c);
}

static void ping(void **state)
{
    (void)state;
    store_call c = {0};
    bty_error err = {0};
    store_call_ping(&c, &err);
    give_replies(&c, (const char *const[]){"+PONG\r\n"});
    assert_int_equal(store_ping_result(&c, &err), 0);
    store_call_clear(&c);
    store_call_ping(&c, &err);
    give_replies(&c, (const char *const[]){"-NOAUTH Authentication required\r\n"});
    assert_int_equal(store_ping_result(&c, &err), -1);
    assert_int_equal(err.status, 503);
    store_call_clear(&c);
}

/* A plan of <wf> (merge) and its snapshot (create) with the same pairs. */
static void build_plan(bty_write_plan *plan)
{
    memset(plan, 0, sizeof(*plan));
    cJSON *steps = cJSON_Parse("{\"a\":{\"status\":\"open\"},\"b\":{\"status\":\"new\"}}");
    assert_int_equal(plan_add_hash(plan, "wf1", WRITE_MERGE, steps), 0);
    assert_int_equal(plan_add_same(plan, "wf1-7", WRITE_CREATE, steps, 0), 0);
    cJSON_Delete(steps);
}

static void commit_is_one_evalsha_with_the_expectation(void **state)
{
    (void)state;
    store_call c = {0};
    bty_error err = {0};
    bty_write_plan plan;
    build_plan(&plan);
    bty_field fields[] = {{"c", 1, "{\"z\":3}", 7}, {"a", 1, "{\"x\":1}", 7}};
    bty_hash expect = {.fields = fields, .n = 2};
    assert_int_equal(
        store_call_commit(&c, "wf1", &expect, 1, &plan, 1000, "batchy:changes:0", &err), 0);
    assert_int_equal(c.kind, CALL_WRITE);
    store_call_set_sha(&c, "0123456789012345678901234567890123456789");
    redisReply **cmds = commands_of(&c);
    /* EVALSHA sha 3 wf1 wf1 wf1-7 | all M=2 E=2 c a {..} {..} |
     * 0 2 a .. b .. | 2 wf1- -1 | channel, keep 1000 */
    assert_args(cmds[0], 24, "EVALSHA", "0123456789012345678901234567890123456789", "3", "wf1",
                "wf1", "wf1-7", "all", "2", "2", "c", "a", "{\"z\":3}", "{\"x\":1}", "0", "2", "a",
                NULL, "b", NULL, "2", "wf1-", "-1", "batchy:changes:0", "1000");
    free_commands(cmds);
    store_call_clear(&c);

    /* only the steps the plan writes into wf1 must match, and go first */
    assert_int_equal(
        store_call_commit(&c, "wf1", &expect, 0, &plan, 1000, "batchy:changes:0", &err), 0);
    cmds = commands_of(&c);
    assert_args(cmds[0], 24, "EVALSHA", NULL, "3", "wf1", "wf1", "wf1-7", "some", "1", "2", "a",
                "c", "{\"x\":1}", "{\"z\":3}", "0", "2", "a", NULL, "b", NULL, "2", "wf1-", "-1",
                "batchy:changes:0", "1000");
    free_commands(cmds);
    store_call_clear(&c);

    /* without an expectation (nothing compared): no fields */
    assert_int_equal(store_call_commit(&c, "wf1", NULL, 1, &plan, 1000, "batchy:changes:0", &err),
                     0);
    cmds = commands_of(&c);
    assert_args(cmds[0], 20, "EVALSHA", NULL, "3", "wf1", "wf1", "wf1-7", "-", "0", "0", "0", "2",
                "a", NULL, "b", NULL, "2", "wf1-", "-1", "batchy:changes:0", "1000");
    free_commands(cmds);
    store_call_clear(&c);
    plan_free(&plan);
}

static int commit_outcome(const char *reply, bty_hash *current, bty_error *err)
{
    store_call c = {0};
    bty_write_plan plan;
    build_plan(&plan);
    store_call_commit(&c, "wf1", NULL, 1, &plan, 1000, "batchy:changes:0", err);
    plan_free(&plan);
    give_replies(&c, (const char *const[]){reply});
    long long free_id = 0;
    int outcome = store_commit_result(&c, current, &free_id, err);
    if (outcome == COMMIT_EXISTS)
        assert_int_equal(free_id, 12);
    store_call_clear(&c);
    return outcome;
}

static void commit_outcomes(void **state)
{
    (void)state;
    bty_error err = {0};
    bty_hash now;
    assert_int_equal(commit_outcome("+OK\r\n", &now, &err), COMMIT_WRITTEN);
    assert_int_equal(
        commit_outcome("*2\r\n$14\r\nBATCHY_CHANGED\r\n*2\r\n$1\r\na\r\n$2\r\n{}\r\n", &now, &err),
        COMMIT_CHANGED);
    assert_int_equal(now.n, 1);
    assert_memory_equal(now.fields[0].value, "{}", 2);
    store_hash_free(&now);
    assert_int_equal(
        commit_outcome("*2\r\n$14\r\nBATCHY_WRITTEN\r\n*2\r\n$1\r\nb\r\n$2\r\n{}\r\n", &now, &err),
        COMMIT_WRITTEN_AMID);
    assert_int_equal(now.n, 1);
    assert_memory_equal(now.fields[0].name, "b", 1);
    store_hash_free(&now);
    assert_int_equal(commit_outcome("-BATCHY_EXISTS 12\r\n", &now, &err), COMMIT_EXISTS);
    assert_int_equal(commit_outcome("-NOSCRIPT No matching script\r\n", &now, &err), COMMIT_AGAIN);
    assert_int_equal(commit_outcome("-WRONGTYPE key wf1-7 is a string, not a hash\r\n", &now, &err),
                     COMMIT_FAILED);
    assert_int_equal(err.status, 409);
    assert_int_equal(commit_outcome("-ERR something else\r\n", &now, &err), COMMIT_FAILED);
    assert_int_equal(err.status, 503);
    assert_non_null(strstr(err.message, "Redis refused the write: ERR something else"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(read_is_one_hgetall),
        cmocka_unit_test(read_result_is_the_hash_or_an_error),
        cmocka_unit_test(a_failed_call_says_why),
        cmocka_unit_test(ping),
        cmocka_unit_test(commit_is_one_evalsha_with_the_expectation),
        cmocka_unit_test(commit_outcomes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
