"""
test_concurrency.py - two batchy processes sharing one redis-server, hit by
8 threads at once (SPEC section 4, Atomicity): no two batches with the same
id, no lost close, <wf> always equal to the snapshot of its current batch,
never a 5xx.
"""
import json
import random
import re
import threading
import time
import unittest
import urllib.parse
from collections import defaultdict

from harness import TwoBatchyTestCase, http_request

WORKFLOWS = {
    "cc": "job1:\n  p: 1\njob2:\n  p: 2\njob3:\n  p: 3\n",
    "cc_a": "x:\ny:\n",
    "cc_b": "only:\n  reprocess_hours: 1\n",
    "cc_c": "s1:\n  trunc_start: true\ns2:\ns3:\ns4:\n",
}
THREADS = 8
ITERATIONS = 25


class TwoProcessesTest(TwoBatchyTestCase):
    def setUp(self):
        self.redis.cli("FLUSHALL")
        self.loaded = {wf: self.load(wf, text) for wf, text in WORKFLOWS.items()}

    def worker(self, index, log, errors):
        port = (self.batchy if index % 2 == 0 else self.second).port
        rng = random.Random(index)
        try:
            for _ in range(ITERATIONS):
                wf = rng.choice(sorted(WORKFLOWS))
                self.send(port, "open_batch", wf, {}, log)
                entry = log[-1]
                if entry["status"] != 200:
                    continue
                bid = next(iter(entry["body"].values()))["batch_id"]
                steps = sorted(entry["body"])
                action = rng.random()
                query = {}
                if action < 0.8:
                    query["batch_id"] = bid
                if rng.random() < 0.5:
                    query["step"] = ",".join(rng.sample(steps, rng.randint(1, len(steps))))
                query["rows"] = str(rng.randint(0, 9999))
                if rng.random() < 0.7:
                    self.send(port, "close_batch", wf, query, log)
                else:
                    query["error"] = "thread %d failed" % index
                    self.send(port, "fail_batch", wf, query, log)
        except Exception as e:  # reported by the main thread
            errors.append(repr(e))

    def send(self, port, endpoint, wf, query, log):
        path = "/%s/%s" % (endpoint, wf)
        if query:
            path += "?" + urllib.parse.urlencode(query)
        sent = time.monotonic()
        r = http_request(port, "GET", path, timeout=60)
        received = time.monotonic()
        body = None
        if r.status == 200:
            body = r.json()
        log.append({"endpoint": endpoint, "wf": wf, "query": query, "status": r.status,
                    "body": body, "raw": r.body[:300], "sent": sent, "received": received})

    def test_concurrent_open_close_fail_across_two_processes(self):
        logs = [[] for _ in range(THREADS)]
        errors = []
        threads = [threading.Thread(target=self.worker, args=(i, logs[i], errors))
                   for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        self.assertFalse(any(t.is_alive() for t in threads), "threads hung")
        self.assertEqual(errors, [])
        entries = [e for log in logs for e in log]
        self.assertGreater(len(entries), THREADS * ITERATIONS)

        # every answer is 200 or 409, never 5xx; every open succeeds
        bad = [(e["endpoint"], e["wf"], e["query"], e["status"], e["raw"]) for e in entries
               if e["status"] not in (200, 409)]
        self.assertEqual(bad, [])
        opens = [e for e in entries if e["endpoint"] == "open_batch"]
        self.assertEqual([e["status"] for e in opens if e["status"] != 200], [])

        # batch ids are unique per workflow, and increase with real time
        ids = defaultdict(list)
        for e in opens:
            batch_ids = {rec["batch_id"] for rec in e["body"].values()}
            self.assertEqual(len(batch_ids), 1, e["body"])
            e["bid"] = batch_ids.pop()
            ids[e["wf"]].append(e)
        for wf, wf_opens in ids.items():
            values = [e["bid"] for e in wf_opens]
            self.assertEqual(len(values), len(set(values)), "duplicate batch ids in %s" % wf)
            for a in wf_opens:
                for b in wf_opens:
                    if a["received"] < b["sent"]:
                        self.assertLess(a["bid"], b["bid"], "%s: open answered %d before an "
                                        "open that got %d" % (wf, a["bid"], b["bid"]))

        dump = self.redis.dump()

        # every opened batch has its snapshot; there is no other snapshot
        for wf in WORKFLOWS:
            snaps = {int(m.group(1)) for k in dump for m in [re.match(re.escape(wf) + r"-(\d+)$", k)] if m}
            self.assertEqual(snaps, {e["bid"] for e in ids[wf]}, wf)

        # no close or fail lost: each 200 answer is in the snapshot of its batch
        ends = [e for e in entries if e["endpoint"] != "open_batch" and e["status"] == 200]
        self.assertTrue(ends)
        target = {"close_batch": "success", "fail_batch": "failed"}
        for e in ends:
            wf, body = e["wf"], e["body"]
            steps = e["query"]["step"].split(",") if "step" in e["query"] else sorted(body)
            for step in steps:
                rec = body[step]
                self.assertEqual(rec["status"], target[e["endpoint"]], e)
                if "batch_id" in e["query"]:
                    self.assertEqual(rec["batch_id"], e["query"]["batch_id"], e)
                snap = dump.get("%s-%d" % (wf, rec["batch_id"]))
                self.assertIsNotNone(snap, e)
                stored = json.loads(snap[step])
                self.assertEqual(stored["status"], rec["status"], (e, stored))
                self.assertEqual(stored["batch_end"], rec["batch_end"], (e, stored))

        # 409s changed nothing visible: every 409 had a reason we can see
        # (stale batch id or a step not open) -- and <wf> agrees with its batch
        for wf in WORKFLOWS:
            current = self.assert_latest_matches_snapshot(wf)
            self.assertEqual(current, max(e["bid"] for e in ids[wf]) if ids[wf] else current)

    def test_concurrent_opens_of_one_workflow_get_distinct_ids(self):
        results = []
        lock = threading.Lock()

        def opener(port):
            for _ in range(10):
                r = http_request(port, "GET", "/open_batch/cc", timeout=60)
                with lock:
                    results.append(r)

        threads = [threading.Thread(target=opener, args=((self.batchy if i % 2 else self.second).port,))
                   for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        self.assertEqual([r.status for r in results if r.status != 200], [])
        bids = [r.json()["job1"]["batch_id"] for r in results]
        self.assertEqual(len(bids), len(set(bids)))
        current = self.assert_latest_matches_snapshot("cc")
        self.assertEqual(current, max(bids))
        # every batch but the last was abandoned by the next open
        dump = self.redis.dump()
        for bid in sorted(bids)[:-1]:
            snap = {k: json.loads(v) for k, v in dump["cc-%d" % bid].items()}
            self.assertEqual({r["status"] for r in snap.values()}, {"abandoned"}, bid)

    def test_load_cfg_racing_opens_never_leaves_mixed_state(self):
        results = []
        lock = threading.Lock()

        def worker(i):
            port = (self.batchy if i % 2 else self.second).port
            for n in range(15):
                endpoint = "load_cfg" if (i + n) % 4 == 0 else "open_batch"
                r = http_request(port, "GET", "/%s/cc" % endpoint, timeout=60)
                with lock:
                    results.append((endpoint, r.status, r.body[:200]))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        self.assertEqual([x for x in results if x[1] != 200], [])
        latest = self.redis.hash_json("cc")
        self.assertEqual(sorted(latest), ["job1", "job2", "job3"])
        statuses = {rec["status"] for rec in latest.values()}
        if statuses == {"new"}:  # a load_cfg came last
            self.assertEqual(latest, self.loaded["cc"])
        else:
            self.assertEqual(statuses, {"open"}, latest)
            self.assert_latest_matches_snapshot("cc")


if __name__ == "__main__":
    unittest.main()
