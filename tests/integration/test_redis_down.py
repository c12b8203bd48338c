"""
test_redis_down.py - batchy without Redis: it starts anyway, answers 503
quickly, and recovers by itself when the redis-server (same port) is back.
"""
import signal
import time
import unittest

from harness import PROMPT, ServiceTestCase, SLOW

CALLS = ("/get_status/wf1", "/open_batch/wf1", "/close_batch/wf1", "/fail_batch/wf1",
         "/load_cfg/wf1", "/open_batch/wf1/sh", "/get_status/wf1?batch_id=5")


class RedisDownAtStartTest(ServiceTestCase):
    start_redis = False

    def setUp(self):
        self.write_cfg("wf1", "job1:\n  p: 1\n")

    def timed(self, path):
        started = time.monotonic()
        r = self.batchy.get(path)
        return r, time.monotonic() - started

    def test_healthz_is_503_at_once(self):
        for _ in range(3):
            r, elapsed = self.timed("/healthz")
            self.assertEqual(r.status, 503, r)
            self.assertTrue(r.content_type.startswith("application/json"), r)
            self.assertIsInstance(r.json(), dict)
            self.assertLess(elapsed, PROMPT, "healthz took %.2fs" % elapsed)

    def test_api_calls_are_503_json_at_once(self):
        for path in CALLS:
            with self.subTest(path=path):
                r, elapsed = self.timed(path)
                self.assert_error(r, 503)
                self.assertLess(elapsed, PROMPT, "%s took %.2fs" % (path, elapsed))

    def test_index_still_answers(self):
        r = self.batchy.get("/index")
        self.assertEqual(r.status, 200, r)

    def test_bad_requests_keep_their_own_status(self):
        self.assert_error(self.batchy.get("/nope"), 404)
        self.assert_error(self.batchy.get("/get_status/.bad"), 400)
        self.assert_error(self.batchy.get("/open_batch/wf1/xml"), 400)


class RedisRecoveryTest(ServiceTestCase):
    start_redis = False

    def setUp(self):
        self.write_cfg("wf1", "job1:\n  p: 1\njob2:\n")

    def tearDown(self):
        if self.redis.proc is not None:
            self.redis.proc.send_signal(signal.SIGCONT)

    def redis_up(self):
        if self.redis.proc is None:
            self.redis.start()

    def redis_down(self):
        self.redis.stop()

    def poll_healthz(self, status, within):
        deadline = time.monotonic() + within * SLOW
        seen = []
        while True:
            started = time.monotonic()
            r = self.batchy.get("/healthz")
            elapsed = time.monotonic() - started
            self.assertLess(elapsed, PROMPT, "healthz took %.2fs" % elapsed)
            seen.append(r.status)
            if r.status == status:
                return r
            if time.monotonic() > deadline:
                self.fail("healthz never answered %d within %ss (saw %s)" % (status, within, seen[-5:]))
            time.sleep(0.05)

    def test_recovers_when_redis_starts_after_batchy(self):
        self.redis_down()
        self.poll_healthz(503, 3)
        self.assert_error(self.batchy.get("/get_status/wf1"), 503)
        self.redis_up()
        r = self.poll_healthz(200, 5)
        self.assertEqual(r.json()["status"], "ok")
        r = self.batchy.get("/load_cfg/wf1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.batchy.get("/get_status/wf1").status, 200)

    def test_redis_stopped_mid_run_gives_503_then_recovers_after_restart(self):
        self.redis_up()
        self.poll_healthz(200, 5)
        self.assertEqual(self.batchy.get("/load_cfg/wf1").status, 200)
        self.assertEqual(self.batchy.get("/open_batch/wf1").status, 200)
        self.redis_down()
        self.poll_healthz(503, 3)
        for path in CALLS:
            with self.subTest(path=path):
                started = time.monotonic()
                self.assert_error(self.batchy.get(path), 503)
                self.assertLess(time.monotonic() - started, PROMPT)
        self.redis_up()
        self.poll_healthz(200, 5)
        # the restarted redis-server kept nothing (--save ""): load again
        self.assert_error(self.batchy.get("/get_status/wf1"), 404)
        self.assertEqual(self.batchy.get("/load_cfg/wf1").status, 200)
        r = self.batchy.get("/open_batch/wf1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.batchy.get("/close_batch/wf1").status, 200)

    def test_first_calls_after_redis_restart_succeed_on_every_connection(self):
        # batchy keeps Redis connections between requests: once the server
        # is back, no call may fail on a connection that died with the old one
        self.redis_up()
        self.poll_healthz(200, 5)
        self.assertEqual(self.batchy.get("/load_cfg/wf1").status, 200)
        for _ in range(20):
            self.assertEqual(self.batchy.get("/get_status/wf1").status, 200)
        self.redis_down()
        self.redis_up()  # returns once the new server answers PING
        statuses = [self.batchy.get("/get_status/wf1").status for _ in range(20)]
        self.assertEqual(statuses, [404] * 20, "the restarted server is empty: 404, not 503")
        self.assertEqual(self.batchy.get("/load_cfg/wf1").status, 200)

    def test_hung_redis_answers_503_within_seconds(self):
        self.redis_up()
        self.poll_healthz(200, 5)
        self.assertEqual(self.batchy.get("/load_cfg/wf1").status, 200)
        self.redis.proc.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            r = self.batchy.get("/get_status/wf1", timeout=20 * SLOW)
            elapsed = time.monotonic() - started
            self.assert_error(r, 503)
            self.assertLess(elapsed, PROMPT, "a hung Redis held the request %.1fs" % elapsed)
        finally:
            self.redis.proc.send_signal(signal.SIGCONT)
        self.poll_healthz(200, 5)
        self.assertEqual(self.batchy.get("/get_status/wf1").status, 200)


if __name__ == "__main__":
    unittest.main()


class RedisRestartOneWorkerTest(ServiceTestCase):
    """After a Redis restart the first call, even a write with no read
    before it (load_cfg), goes out on a new connection and succeeds: the
    store notices the old one closed while it sits idle."""
    batchy_args = ("--threads", "1")

    def test_first_write_after_a_redis_restart_succeeds(self):
        self.write_cfg("wf1", "job1:\n  p: 1\n")
        self.assertEqual(self.batchy.get("/load_cfg/wf1").status, 200)
        self.redis.stop()
        self.redis.start()
        r = self.batchy.get("/load_cfg/wf1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.redis.hash_json("wf1")["job1"]["status"], "new")
        self.redis.stop()
        self.redis.start()
        r = self.batchy.get("/open_batch/wf1")
        self.assert_error(r, 404)  # nothing kept (--save ""), but an answer, not a 503
