"""
test_store.py - how batchy talks to Redis (batchy/store.c, cache.c): the
calls of every worker share one pipelined connection, so each answer must be
the one of its own request; a write is applied only if the workflow still
holds what the call computed from (compare and set, no WATCH), whether that
was read or remembered from this process's last write; edits made with
redis-cli, and calls of another batchy, between two calls are seen by the
next call; a SCRIPT FLUSH costs nothing.
"""
import json
import threading
import unittest

from harness import Batchy, ServiceTestCase, http_request


def steps_yaml(prefix, n):
    return "".join("%s_%d:\n  p: %d\n" % (prefix, i, i) for i in range(n))


class SharedConnectionTest(ServiceTestCase):
    batchy_args = ("--threads", "4")
    CLIENTS = 24
    ROUNDS = 15

    def run_clients(self, work):
        """Run work(index, failures) in CLIENTS threads; fail with what they
        reported."""
        failures = []
        threads = [threading.Thread(target=work, args=(i, failures)) for i in range(self.CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads), "a client is stuck")
        self.assertEqual(failures, [])

    def test_concurrent_get_status_each_answer_is_its_own_workflow(self):
        wfs = [self.unique("own") for _ in range(self.CLIENTS)]
        for i, wf in enumerate(wfs):
            self.load(wf, steps_yaml("s%d" % i, 1 + i % 4))

        def work(index, failures):
            wf = wfs[index]
            expected = sorted("s%d_%d" % (index, k) for k in range(1 + index % 4))
            for _ in range(self.ROUNDS):
                r = http_request(self.batchy.port, "GET", "/get_status/" + wf)
                if r.status != 200 or sorted(r.json()) != expected:
                    failures.append((wf, r.status, r.text[:200]))
                    return

        self.run_clients(work)

    def test_concurrent_open_close_each_answer_is_its_own_batch(self):
        wfs = [self.unique("cyc") for _ in range(self.CLIENTS)]
        for i, wf in enumerate(wfs):
            self.load(wf, steps_yaml("c%d" % i, 2))

        def work(index, failures):
            wf, last_id = wfs[index], 0
            for _ in range(self.ROUNDS):
                for op in ("open_batch", "close_batch"):
                    r = http_request(self.batchy.port, "GET", "/%s/%s" % (op, wf))
                    doc = r.json() if r.status == 200 else None
                    if not doc or sorted(doc) != ["c%d_0" % index, "c%d_1" % index]:
                        failures.append((wf, op, r.status, r.text[:200]))
                        return
                    ids = {rec["batch_id"] for rec in doc.values()}
                    status = {rec["status"] for rec in doc.values()}
                    want = "open" if op == "open_batch" else "success"
                    if len(ids) != 1 or status != {want} or min(ids) < last_id:
                        failures.append((wf, op, doc))
                        return
                    last_id = min(ids)

        self.run_clients(work)
        for wf in wfs:
            latest = self.redis.hash_json(wf)
            self.assertEqual({rec["status"] for rec in latest.values()}, {"success"}, wf)
            self.assert_latest_matches_snapshot(wf)


class RedisEditsBetweenCallsTest(ServiceTestCase):
    """What an operator changes with redis-cli is what the next call works
    on: a write computed from anything else is refused by Redis and the call
    starts over from what Redis holds."""

    def edit(self, wf, step, **changes):
        for key in (wf, "%s-%d" % (wf, self.assert_latest_matches_snapshot(wf))):
            record = self.redis.hash_json(key)[step]
            record.update(changes)
            self.redis.cli("HSET", key, step, json.dumps(record))

    def test_close_after_a_field_added_by_hand_keeps_it(self):
        wf = self.unique("edit")
        self.load(wf, "job1:\n  p: 1\njob2:\n")
        self.open_batch(wf)
        self.edit(wf, "job1", note="set by hand")
        doc = self.close_batch(wf)
        self.assertEqual(doc["job1"]["note"], "set by hand")
        self.assertEqual(doc["job1"]["status"], "success")

    def test_close_after_a_step_was_failed_by_hand_is_409_and_changes_nothing(self):
        wf = self.unique("edit")
        self.load(wf, "job1:\n  p: 1\njob2:\n")
        self.open_batch(wf)
        self.edit(wf, "job1", status="failed")
        before = self.redis.dump()
        self.assert_error(self.call("close_batch", wf), 409, "job1")
        self.assertEqual(self.redis.dump(), before)

    def test_open_after_the_workflow_was_deleted_by_hand_is_404(self):
        wf = self.unique("edit")
        self.load(wf, "job1:\n")
        self.open_batch(wf)
        self.redis.cli("DEL", wf)
        self.assert_error(self.call("open_batch", wf), 404, "load_cfg")
        self.assertEqual(self.redis.keys(wf), [])

    def test_close_again_after_a_step_was_reopened_by_hand_closes_it(self):
        # This process last wrote job1 as closed; a close of a closed batch
        # is a retry that writes nothing, but Redis says open again: the
        # answer must come from Redis, and close it.
        wf = self.unique("edit")
        self.load(wf, "job1:\n")
        self.open_batch(wf)
        first = self.close_batch(wf)
        self.edit(wf, "job1", status="open", batch_end=None)
        doc = self.close_batch(wf, {"rows": "7"})
        self.assertEqual(doc["job1"]["status"], "success")
        self.assertEqual(doc["job1"]["rows"], "7")
        self.assertEqual(doc["job1"]["batch_id"], first["job1"]["batch_id"])

    def test_open_after_a_step_was_added_by_hand_opens_it_too(self):
        wf = self.unique("edit")
        self.load(wf, "job1:\n")
        self.open_batch(wf)
        self.close_batch(wf)
        self.redis.cli("HSET", wf, "job9", json.dumps({"status": "new", "p": 9}))
        doc = self.open_batch(wf)
        self.assertEqual(sorted(doc), ["job1", "job9"])
        self.assertEqual(doc["job9"]["status"], "open")


class TwoProcessesTakingTurnsTest(ServiceTestCase):
    """Each call goes to the other process, so each process's memory of the
    workflow is always one write behind what Redis holds."""

    def test_alternating_processes_open_and_close_in_turn(self):
        second = Batchy(self.redis.url, self.cfg_dir, workdir=None)
        second.start()
        try:
            wf = self.unique("turns")
            self.load(wf, "a:\n  p: 1\nb:\n")
            last_id = 0
            for i in range(6):
                for op, status in (("open_batch", "open"), ("close_batch", "success")):
                    port = (self.batchy if (i + len(op)) % 2 else second).port
                    r = http_request(port, "GET", "/%s/%s" % (op, wf))
                    self.assertEqual(r.status, 200, r)
                    doc = r.json()
                    self.assertEqual({rec["status"] for rec in doc.values()}, {status}, doc)
                    self.assertEqual(self.redis.hash_json(wf), doc)
                    ids = {rec["batch_id"] for rec in doc.values()}
                    self.assertEqual(len(ids), 1, doc)
                    if op == "open_batch":
                        self.assertGreater(min(ids), last_id)
                        last_id = min(ids)
                    self.assert_latest_matches_snapshot(wf)
        finally:
            second.stop_checked()
            second.cleanup()


class ScriptFlushTest(ServiceTestCase):
    def test_calls_succeed_after_script_flush(self):
        wf = self.unique("flush")
        self.load(wf, "job1:\n  p: 1\n")
        self.open_batch(wf)
        self.redis.cli("SCRIPT", "FLUSH")
        self.close_batch(wf)
        self.redis.cli("SCRIPT", "FLUSH")
        self.load(wf)
        self.open_batch(wf)


if __name__ == "__main__":
    unittest.main()


class RoundTripsTest(ServiceTestCase):
    """What a call costs in Redis, counted by Redis itself (INFO
    commandstats): the cache and the write script must not drift apart
    unnoticed. Redis also counts the commands a script runs; the script
    never runs those of batchy's own round trips (HGETALL to read, EXISTS
    to probe ids, EVALSHA to write), so these count the round trips."""
    ROUND_TRIPS = ("hgetall", "exists", "evalsha", "eval", "script|load", "ping")

    def test_open_and_close_on_a_workflow_only_this_process_writes_cost_one_write_each(self):
        wf = self.unique("rt")
        self.load(wf, "a:\n  p: 1\nb:\n")
        for endpoint in ("open_batch", "close_batch", "open_batch", "fail_batch"):
            with self.subTest(endpoint=endpoint):
                self.redis.cli("CONFIG", "RESETSTAT")
                query = {"step": "a", "error": "x"} if endpoint == "fail_batch" else None
                self.ok(endpoint, wf, query)
                counts = self.redis.commandstats()
                trips = {k: v for k, v in counts.items() if k in self.ROUND_TRIPS}
                self.assertEqual(trips, {"evalsha": 1}, "%s/%s cost %r" % (endpoint, wf, counts))
