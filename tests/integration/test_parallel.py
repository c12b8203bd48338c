"""
test_parallel.py - the steps of one workflow run as parallel jobs (SPEC
section 4): closes and fails of different steps never conflict, opens racing
closes answer as the rules say, a retry budget never turns contention into a
503, one step can be run again without disturbing the others, and the batch
id of an open is found in one step however many snapshots lie ahead of the
clock. Two batchy processes share one redis-server.
"""
import threading
import time
import urllib.parse

from harness import SLOW, ServiceTestCase, TwoBatchyTestCase, http_request
from test_faults import run_check_state

# What batchy waits for a Redis reply. Redis answers these calls within
# milliseconds; a batchy slowed down by valgrind on a busy machine can take
# seconds to send and read 256 of them, and its 2 s default would then call
# a healthy Redis unreachable.
REDIS_WAIT = {"BATCHY_REDIS_TIMEOUT_MS": str(10000 * SLOW)}


def steps_yaml(n):
    return "".join("s%03d:\n  p: %d\n" % (i, i) for i in range(n))


class TwoBatchyCase(TwoBatchyTestCase):
    """Two batchy processes, and calls sent from many threads at once."""
    second_args = ("--threads", "2")

    def port_of(self, index):
        return (self.batchy if index % 2 == 0 else self.second).port

    def in_parallel(self, calls):
        """Send each (index, endpoint, wf, query) from a thread of its own,
        all released together; return [(call, status, json or text)] in the
        order of calls."""
        results = [None] * len(calls)
        gate = threading.Barrier(len(calls))

        def run(i, call):
            index, endpoint, wf, query = call
            path = "/%s/%s" % (endpoint, wf)
            if query:
                path += "?" + urllib.parse.urlencode(query)
            try:
                gate.wait(60)
                r = http_request(self.port_of(index), "GET", path, timeout=120)
                body = r.json() if r.status == 200 else r.text
                results[i] = (call, r.status, body)
            except Exception as e:  # reported below as a missing answer
                results[i] = (call, None, repr(e))

        threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        self.assertFalse(any(t.is_alive() for t in threads), "a call got no answer")
        return results


class ParallelStepsTest(TwoBatchyCase):
    batchy_args = ("--threads", "2")
    batchy_env = REDIS_WAIT

    def test_256_parallel_closes_and_fails_of_distinct_steps_all_succeed(self):
        wf = self.unique("par")
        self.load(wf, steps_yaml(256))
        bid = next(iter(self.open_batch(wf).values()))["batch_id"]
        calls = []
        for i in range(256):
            step = "s%03d" % i
            if i % 4 == 3:
                calls.append((i, "fail_batch", wf, {"step": step, "error": "e%d" % i}))
            else:
                calls.append((i, "close_batch", wf, {"step": step, "batch_id": bid,
                                                      "rows": str(i)}))
        results = self.in_parallel(calls)
        bad = [(c, s, b) for c, s, b in results if s != 200]
        self.assertEqual(bad, [], "%d of 256 calls did not answer 200" % len(bad))
        for (index, endpoint, _, query), _, body in results:
            want = "failed" if endpoint == "fail_batch" else "success"
            self.assertEqual(body[query["step"]]["status"], want, (endpoint, query))
        latest = self.redis.hash_json(wf)
        for i in range(256):
            rec = latest["s%03d" % i]
            if i % 4 == 3:
                self.assertEqual((rec["status"], rec["error_message"]), ("failed", "e%d" % i))
            else:
                self.assertEqual((rec["status"], rec["rows"]), ("success", str(i)))
        self.assert_latest_matches_snapshot(wf)

    def test_opens_racing_closes_answer_as_the_rules_say_never_503(self):
        wf = self.unique("race")
        self.load(wf, steps_yaml(64))
        bid = next(iter(self.open_batch(wf).values()))["batch_id"]
        calls = [(i, "close_batch", wf, {"step": "s%03d" % i, "batch_id": bid})
                 for i in range(60)]
        calls += [(i, "open_batch", wf, None) for i in range(8)]
        results = self.in_parallel(calls)
        statuses = sorted({s for _, s, _ in results})
        self.assertTrue(set(statuses) <= {200, 409}, results)
        opened = [next(iter(b.values()))["batch_id"] for c, s, b in results
                  if c[1] == "open_batch" and self.assertEqual(s, 200, b) is None]
        self.assertEqual(len(set(opened)), 8, "batch ids not unique: %s" % opened)
        self.assertTrue(all(i > bid for i in opened))
        for (_, endpoint, _, query), status, body in results:
            if endpoint == "close_batch" and status == 409:
                self.assertIn("is not the current batch", body)
        # every close answered 200 is in the old batch's snapshot
        snap = self.redis.hash_json("%s-%d" % (wf, bid))
        for (_, endpoint, _, query), status, _ in results:
            if endpoint == "close_batch" and status == 200:
                self.assertEqual(snap[query["step"]]["status"], "success", query)
        self.assert_latest_matches_snapshot(wf)

    def test_64_parallel_opens_of_one_workflow_all_succeed(self):
        wf = self.unique("opens")
        self.load(wf, steps_yaml(3))
        results = self.in_parallel([(i, "open_batch", wf, None) for i in range(64)])
        self.assertEqual([s for _, s, _ in results], [200] * 64, results)
        ids = [next(iter(b.values()))["batch_id"] for _, _, b in results]
        self.assertEqual(len(set(ids)), 64, ids)
        latest = self.redis.hash_json(wf)
        self.assertEqual({r["batch_id"] for r in latest.values()}, {max(ids)})
        for i in ids:
            self.assertIsNotNone(self.redis.hash_json("%s-%d" % (wf, i)), i)
        self.assert_latest_matches_snapshot(wf)


class PartialOpenTest(ServiceTestCase):
    """open_batch?step=a,b: a new batch for those steps only."""

    def test_rerun_of_one_failed_step_leaves_the_running_steps_alone(self):
        wf = self.unique("part")
        self.load(wf, "a:\nb:\nc:\n")
        first = self.open_batch(wf)
        old = first["a"]["batch_id"]
        self.fail_batch(wf, {"step": "b", "error": "disk full", "batch_id": old})
        time.sleep(0.01)
        doc = self.open_batch(wf, {"step": "b"})
        new = doc["b"]["batch_id"]
        self.assertGreater(new, old)
        # a and c are still open in the old batch, untouched
        for step in ("a", "c"):
            self.assertEqual(doc[step], first[step], step)
        self.assertEqual(doc["b"]["status"], "open")
        self.assertNotIn("error_message", doc["b"])
        # the new batch's snapshot holds the whole workflow as of that open
        self.assertEqual(self.redis.hash_json("%s-%d" % (wf, new)), doc)
        # the old snapshot says b failed there; nothing was abandoned
        snap = self.redis.hash_json("%s-%d" % (wf, old))
        self.assertEqual(snap["b"]["status"], "failed")
        self.assertEqual(snap["a"]["status"], "open")
        self.assert_latest_matches_snapshot(wf)
        # the running job of a closes its own batch; b's batch id is stale for a
        self.assert_error(self.call("close_batch", wf, {"step": "a", "batch_id": new}), 409,
                          "is not the current batch of step 'a'")
        self.close_batch(wf, {"step": "a", "batch_id": old})
        self.close_batch(wf, {"step": "b", "batch_id": new})
        self.assertEqual(self.redis.hash_json("%s-%d" % (wf, old))["a"]["status"], "success")
        self.assertEqual(self.redis.hash_json("%s-%d" % (wf, new))["b"]["status"], "success")
        self.assert_latest_matches_snapshot(wf)
        # the operators' check agrees: each step against its own batch
        rc, out = run_check_state(self.redis)
        self.assertEqual(rc, 0, out)
        self.assertIn("all agree", out)
        # and notices a step that disagrees with its own batch's snapshot
        self.redis.cli("HSET", "%s-%d" % (wf, old), "c", '{"status": "failed"}')
        rc, out = run_check_state(self.redis)
        self.assertEqual(rc, 1, out)
        self.assertIn("%s: differs from %s-%d in step(s) c" % (wf, wf, old), out)

    def test_reopening_a_running_step_abandons_it_in_its_batch_only(self):
        wf = self.unique("part")
        self.load(wf, "a:\nb:\n")
        old = self.open_batch(wf)["a"]["batch_id"]
        doc = self.open_batch(wf, {"step": "a,a"})
        snap = self.redis.hash_json("%s-%d" % (wf, old))
        self.assertEqual(snap["a"]["status"], "abandoned")
        self.assertIsNotNone(snap["a"]["batch_end"])
        self.assertEqual(snap["b"]["status"], "open")
        self.assertEqual(doc["b"]["batch_id"], old)
        self.assert_latest_matches_snapshot(wf)

    def test_bad_step_lists_change_nothing(self):
        wf = self.unique("part")
        self.load(wf, "a:\nb:\n")
        self.open_batch(wf)
        before = self.redis.dump()
        self.assert_error(self.call("open_batch", wf, {"step": "zz"}), 404, "has no step 'zz'")
        self.assert_error(self.call("open_batch", wf, {"step": ""}), 400, "step= is empty")
        self.assert_error(self.call("open_batch", wf, "step=a%5B"), 400)
        self.assertEqual(self.redis.dump(), before)


class BatchIdsTest(ServiceTestCase):
    """Snapshots ahead of the clock (a burst of opens, or a load_cfg that
    reset the ids) cost one extra write, never a 503."""

    def test_open_finds_the_first_free_id_past_thousands_of_snapshots_in_one_step(self):
        wf = self.unique("ids")
        self.load(wf, "a:\n")
        now = int(time.time())
        # 5,000 snapshots from now on, as a burst of opens would leave them
        self.redis.cli("EVAL", "for i = 0, 4999 do redis.call('HSET', KEYS[1] .. (ARGV[1] + i), "
                       "'a', '{}') end", "1", wf + "-", str(now))
        self.redis.cli("CONFIG", "RESETSTAT")
        doc = self.open_batch(wf)
        self.assertGreaterEqual(doc["a"]["batch_id"], now + 5000)
        self.assertLessEqual(doc["a"]["batch_id"], int(time.time()) + 5000)
        self.assertEqual(self.redis.commandstats().get("evalsha"), 2, self.redis.commandstats())
        # the next one follows on at once
        self.assertEqual(self.open_batch(wf)["a"]["batch_id"], doc["a"]["batch_id"] + 1)


class LoadWhileOpenTest(ServiceTestCase):
    def test_load_cfg_marks_the_open_steps_abandoned_in_their_batch(self):
        wf = self.unique("reload")
        self.load(wf, "a:\nb:\n")
        bid = self.open_batch(wf)["a"]["batch_id"]
        self.close_batch(wf, {"step": "b"})
        self.load(wf)
        snap = self.redis.hash_json("%s-%d" % (wf, bid))
        self.assertEqual(snap["a"]["status"], "abandoned")
        self.assertIsNotNone(snap["a"]["batch_end"])
        self.assertEqual(snap["b"]["status"], "success")
        self.assertEqual(self.redis.hash_json(wf), {"a": {"status": "new"},
                                                    "b": {"status": "new"}})
