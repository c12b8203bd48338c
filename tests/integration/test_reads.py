"""get_status from memory, coherent with Redis (SPEC section 16): each
Batchy process keeps what it read while Redis tracks it, and drops it when
Redis says the workflow changed, whoever changed it. With real processes:
reads that cost Redis nothing, a hand edit seen by the next reads of two
Batchy processes, a process reading its own writes at once, no-cache,
FLUSHDB, a Redis restart, either connection lost, and a held request
woken by an invalidation alone. (Every order of a read's reply and an
invalidation is test_track.c's.)"""
import threading
import time
import unittest

from harness import PROMPT, VALGRIND, OwnBatchyMixin, TwoBatchyTestCase

TWO = "job1:\n  p: 1\njob2:\n  q: x\n"


class ReadsTest(TwoBatchyTestCase):

    def hgetall(self):
        return self.redis.commandstats().get("hgetall", 0)

    def until(self, check, what):
        deadline = time.monotonic() + PROMPT
        while True:
            value = check()
            if value:
                return value
            self.assertLess(time.monotonic(), deadline, what)
            time.sleep(0.01)

    def test_reads_come_from_memory_until_a_hand_edit_on_two_processes(self):
        wf = self.unique("rd_hand")
        self.load(wf, TWO)
        for b in (self.batchy, self.second):
            self.assertEqual(b.get("/get_status/" + wf).status, 200)
        before = self.hgetall()
        for _ in range(5):
            for b in (self.batchy, self.second):
                r = b.get("/get_status/" + wf)
                self.assertEqual(r.json()["job1"]["p"], 1)
        self.assertEqual(self.hgetall(), before)  # all from memory
        self.redis.cli("HSET", wf, "job1", '{"p": 2}')
        for b in (self.batchy, self.second):
            self.until(lambda b=b: b.get("/get_status/" + wf).json()["job1"]["p"] == 2,
                       "the hand edit read")
        # and the ETag follows the state, from memory too
        r = self.batchy.get("/get_status/" + wf)
        again = self.batchy.get("/get_status/" + wf, headers={"If-None-Match": r.headers["etag"]})
        self.assertEqual(again.status, 304)

    def test_a_process_reads_its_own_writes_at_once(self):
        wf = self.unique("rd_own")
        self.load(wf, TWO)
        self.batchy.get("/get_status/" + wf)  # kept
        for _ in range(3):
            opened = self.ok("open_batch", wf)
            self.assertEqual(self.batchy.get("/get_status/" + wf).json(), opened)
            self.ok("close_batch", wf, {"step": "job1"})
            self.assertEqual(self.batchy.get("/get_status/" + wf).json()["job1"]["status"],
                             "success")
        # another process's write: seen once its invalidation is in
        self.second.get("/fail_batch/%s?step=job2&error=x" % wf)
        self.until(lambda: self.batchy.get("/get_status/" + wf).json()["job2"]["status"] ==
                   "failed", "the other process's write")

    def test_no_cache_reads_redis(self):
        wf = self.unique("rd_nocache")
        self.load(wf, TWO)
        self.batchy.get("/get_status/" + wf)
        before = self.hgetall()
        for header in ({"Cache-Control": "no-cache"}, {"Pragma": "no-cache"},
                       {"Cache-Control": "max-age=0"}):
            self.assertEqual(self.batchy.get("/get_status/" + wf, headers=header).status, 200)
        self.assertEqual(self.hgetall(), before + 3)

    def test_snapshots_and_batches_are_read_each_time(self):
        wf = self.unique("rd_snap")
        self.load(wf, TWO)
        batch = self.ok("open_batch", wf)["job1"]["batch_id"]
        before = self.hgetall()
        for _ in range(2):
            self.assertEqual(
                self.batchy.get("/get_status/%s?batch_id=%d" % (wf, batch)).status, 200)
        self.assertEqual(self.hgetall(), before + 2)

    def test_flushdb_is_seen(self):
        wf = self.unique("rd_flush")
        self.load(wf, TWO)
        self.assertEqual(self.batchy.get("/get_status/" + wf).status, 200)
        self.redis.cli("FLUSHDB")
        self.until(lambda: self.batchy.get("/get_status/" + wf).status == 404, "FLUSHDB seen")

    def test_a_held_request_is_woken_by_an_invalidation_alone(self):
        # A hand edit publishes no change notice: Redis' invalidation of
        # the key, on the same connection, wakes the request held on it.
        wf = self.unique("rd_held")
        self.load(wf, TWO)
        r = self.batchy.get("/get_status/" + wf)
        answer = {}

        def hold():
            t0 = time.monotonic()
            answer["r"] = self.batchy.get("/get_status/%s?wait=30" % wf,
                                          headers={"If-None-Match": r.headers["etag"]},
                                          timeout=60)
            answer["seconds"] = time.monotonic() - t0

        t = threading.Thread(target=hold)
        t.start()
        self.until(lambda: self.batchy.get("/healthz").json()["held"] == 1, "held")
        changed = time.monotonic()
        self.redis.cli("HSET", wf, "job2", '{"q": "by hand"}')
        t.join(60)
        self.assertEqual(answer["r"].status, 200)
        self.assertEqual(answer["r"].json()["job2"]["q"], "by hand")
        if not VALGRIND:  # well before the 2 s re-check of what is held
            self.assertLess(time.monotonic() - changed, 1.5)


class ReadsRestartTest(OwnBatchyMixin, unittest.TestCase):
    cfg_files = {"rr.yaml": TWO}

    def test_a_redis_restart_empties_what_was_kept(self):
        b = self.start_batchy()
        self.assertEqual(b.get("/load_cfg/rr").status, 200)
        self.assertEqual(b.get("/get_status/rr").status, 200)  # kept
        port = self.redis.port
        self.redis.stop()
        deadline = time.monotonic() + PROMPT
        while b.get("/healthz").status == 200:  # Batchy hears it is gone
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        self.redis.start()  # the same port, empty (no persistence)
        self.assertEqual(self.redis.port, port)
        deadline = time.monotonic() + PROMPT
        while True:
            r = b.get("/get_status/rr")
            self.assertNotEqual(r.status, 200, "served from memory after Redis restarted")
            if r.status == 404:
                break
            self.assertLess(time.monotonic(), deadline, r)
            time.sleep(0.02)


class ReadsLostTrackingTest(OwnBatchyMixin, unittest.TestCase):
    """Losing either connection tracking depends on empties what was kept
    at once, before any read: /metrics shows it."""
    cfg_files = {"lt1.yaml": TWO, "lt2.yaml": TWO}

    def kept(self, b):
        found = {}
        for line in b.get("/metrics").text.splitlines():
            if line.startswith("batchy_read_cache_"):
                name, value = line.split()
                found[name] = int(float(value))
        return found["batchy_read_cache_entries"], found["batchy_read_cache_bytes"]

    def keep_both(self, b):
        deadline = time.monotonic() + PROMPT
        while self.kept(b)[0] != 2:  # tracking may be coming back still
            self.assertLess(time.monotonic(), deadline, "never kept")
            for wf in ("lt1", "lt2"):
                self.assertEqual(b.get("/get_status/" + wf).status, 200)
            time.sleep(0.02)
        self.assertGreater(self.kept(b)[1], 0)

    def emptied(self, b, what):
        deadline = time.monotonic() + PROMPT
        while self.kept(b) != (0, 0):
            self.assertLess(time.monotonic(), deadline, "still kept after " + what)
            time.sleep(0.02)

    def test_losing_the_subscription_or_the_reading_connection_empties_it(self):
        b = self.start_batchy()
        for wf in ("lt1", "lt2"):
            self.assertEqual(b.get("/load_cfg/" + wf).status, 200)
        self.keep_both(b)
        # the connection invalidations come on
        self.redis.cli("CLIENT", "KILL", "TYPE", "pubsub")
        self.emptied(b, "the subscription was lost")
        self.keep_both(b)
        # the connection reads are tracked on (flag t)
        ids = [f.split("=")[1] for line in self.redis.cli("CLIENT", "LIST").splitlines()
               for f in line.split() if f.startswith("id=") and " flags=t " in line]
        self.assertEqual(len(ids), 1, ids)
        self.redis.cli("CLIENT", "KILL", "ID", ids[0])
        self.emptied(b, "the reading connection was lost")
        self.keep_both(b)  # and kept again once tracking is back


class ReadsBudgetTest(OwnBatchyMixin, unittest.TestCase):
    """--read-cache-mb bounds what is kept: the least recently used go."""

    def test_the_least_recently_used_answers_go_past_the_budget(self):
        b = self.start_batchy(args=("--read-cache-mb", "1"))
        # each answer about 300 KB, written by a script (too long for argv)
        script = "redis.call('HSET', KEYS[1], 'job1', '{\"p\": \"' .. string.rep('x', 300000) .. '\"}')"
        for i in range(5):
            self.redis.cli("EVAL", script, "1", "big%d" % i)
        for i in range(5):
            self.assertEqual(b.get("/get_status/big%d" % i).status, 200)

        def reads(name):
            before = self.redis.commandstats().get("hgetall", 0)
            self.assertEqual(b.get("/get_status/" + name).status, 200)
            return self.redis.commandstats().get("hgetall", 0) - before

        self.assertEqual(reads("big4"), 0)  # the newest: kept
        self.assertEqual(reads("big0"), 1)  # the oldest: gone, read again
        off = self.start_batchy(args=("--read-cache-mb", "0"))
        before = self.redis.commandstats().get("hgetall", 0)
        for _ in range(3):
            self.assertEqual(off.get("/get_status/big4").status, 200)
        self.assertEqual(self.redis.commandstats().get("hgetall", 0), before + 3)


if __name__ == "__main__":
    unittest.main()
