"""Operating Batchy for months (SPEC section 9): the workflow list, batch
history and its retention, and reloading a changed file without losing
the windows."""
import json
import threading
import time
import unittest

from harness import PROMPT, OwnBatchyMixin, ServiceTestCase, http_request

TWO = "job1:\n  p: 1\njob2:\n  q: x\n"


class HistoryTest(ServiceTestCase):

    def setUp(self):
        self.wf = self.unique("hist")

    def run_batches(self, n):
        """n batches: job1 succeeds, job2 fails; their ids, oldest first."""
        ids = []
        for i in range(n):
            doc = self.ok("open_batch", self.wf, {"step": ["job1", "job2"]}) if i else \
                self.ok("open_batch", self.wf)
            ids.append(doc["job1"]["batch_id"])
            self.ok("close_batch", self.wf, {"step": "job1"})
            self.ok("fail_batch", self.wf, {"step": "job2", "error": "disk full %d" % i})
        return ids

    def test_history_lists_batches_newest_first_with_each_steps_status(self):
        self.load(self.wf, TWO)
        ids = self.run_batches(3)
        h = self.ok("history", self.wf)
        self.assertEqual(h["workflow"], self.wf)
        self.assertEqual([b["batch_id"] for b in h["batches"]], ids[::-1])
        self.assertIsNone(h["next_before"])
        newest = h["batches"][0]
        snap = self.redis.hash_json("%s-%d" % (self.wf, ids[-1]))
        self.assertEqual(newest["steps"]["job1"], {
            "status": "success", "batch_start": snap["job1"]["batch_start"],
            "batch_end": snap["job1"]["batch_end"]})
        self.assertEqual(newest["steps"]["job2"], {
            "status": "failed", "batch_start": snap["job2"]["batch_start"],
            "batch_end": snap["job2"]["batch_end"], "error_message": "disk full 2"})
        self.assertEqual(newest["batch_start"], snap["job1"]["batch_start"])
        self.assertEqual(newest["batch_end"],
                         max(snap["job1"]["batch_end"], snap["job2"]["batch_end"]))

    def test_history_pages_back_with_before(self):
        self.load(self.wf, TWO)
        ids = self.run_batches(5)[::-1]
        page = self.ok("history", self.wf, {"limit": 2})
        self.assertEqual([b["batch_id"] for b in page["batches"]], ids[:2])
        self.assertEqual(page["next_before"], ids[1])
        seen = [b["batch_id"] for b in page["batches"]]
        while page["next_before"]:
            page = self.ok("history", self.wf, {"limit": 2, "before": page["next_before"]})
            seen += [b["batch_id"] for b in page["batches"]]
        self.assertEqual(seen, ids)

    def test_an_open_batch_has_no_end_yet(self):
        self.load(self.wf, TWO)
        self.ok("open_batch", self.wf)
        self.ok("close_batch", self.wf, {"step": "job1"})
        b = self.ok("history", self.wf)["batches"][0]
        self.assertEqual(b["steps"]["job2"]["status"], "open")
        self.assertIsNone(b["batch_end"])

    def test_an_unreadable_snapshot_is_a_row_with_its_error(self):
        self.load(self.wf, TWO)
        ids = self.run_batches(2)
        self.redis.cli("HSET", "%s-%d" % (self.wf, ids[0]), "job1", "{broken")
        h = self.ok("history", self.wf)
        self.assertEqual([b["batch_id"] for b in h["batches"]], ids[::-1])
        self.assertIn("job1", h["batches"][1]["error"])
        self.assertNotIn("steps", h["batches"][1])
        self.assertIn("steps", h["batches"][0])

    def test_history_of_a_workflow_not_loaded_is_404(self):
        r = self.call("history", "nothing_here")
        self.assertEqual(r.status, 404, r)
        self.assertIn("not loaded", r.json()["error"])

    def test_history_and_workflows_write_nothing(self):
        self.load(self.wf, TWO)
        self.run_batches(1)
        before = self.redis.dump()
        self.ok("history", self.wf)
        self.assertEqual(self.batchy.get("/workflows").status, 200)
        self.assertEqual(self.redis.dump(), before)

    def test_bad_paging_is_400(self):
        self.load(self.wf, TWO)
        for query in ("limit=0", "limit=1001", "limit=x", "before=-5", "before=0",
                      "before=99999999999999999999"):
            r = self.batchy.get("/history/%s?%s" % (self.wf, query))
            self.assertEqual(r.status, 400, (query, r))


class WorkflowsTest(ServiceTestCase):

    def test_workflows_lists_each_with_counts_and_filters(self):
        a, b = self.unique("wl_a"), self.unique("wl_b")
        self.load(a, TWO)
        self.load(b, TWO)
        self.ok("open_batch", b)
        self.ok("fail_batch", b, {"step": "job1", "error": "x"})
        r = self.batchy.get("/workflows")
        self.assertEqual(r.status, 200, r)
        rows = {w["name"]: w for w in r.json()["workflows"]}
        names = [w["name"] for w in r.json()["workflows"]]
        self.assertEqual(names, sorted(names))
        self.assertEqual(rows[a]["counts"], {"new": 2})
        self.assertEqual(rows[a]["steps"], 2)
        self.assertIsNone(rows[a]["updated"])
        self.assertEqual(rows[b]["counts"], {"failed": 1, "open": 1})
        self.assertIs(rows[b]["late"], False)
        state = self.redis.hash_json(b)
        self.assertEqual(rows[b]["batch_id"], state["job1"]["batch_id"])
        self.assertEqual(rows[b]["updated"], state["job1"]["batch_end"])
        failed = [w["name"] for w in self.batchy.get("/workflows?status=failed").json()["workflows"]]
        self.assertIn(b, failed)
        self.assertNotIn(a, failed)
        only = [w["name"] for w in
                self.batchy.get("/workflows?prefix=" + a[:5]).json()["workflows"]]
        self.assertIn(a, only)
        self.assertTrue(all(n.startswith(a[:5]) for n in only))

    def test_a_hand_edited_workflow_is_listed_with_an_error(self):
        wf = self.unique("wl_bad")
        self.load(wf, TWO)
        self.redis.cli("HSET", wf, "job1", "{not json")
        rows = {w["name"]: w for w in self.batchy.get("/workflows").json()["workflows"]}
        self.assertIn("job1", rows[wf]["error"])
        self.assertNotIn("counts", rows[wf])
        good, other = self.unique("wl_good"), self.unique("wl_str")
        self.load(good, TWO)
        self.load(other, TWO)
        self.redis.cli("DEL", other)
        self.redis.cli("SET", other, "x")
        rows = {w["name"]: w for w in self.batchy.get("/workflows").json()["workflows"]}
        self.assertEqual(rows[other]["error"], "Redis key '%s' is not a hash of steps" % other)
        self.assertEqual(rows[good]["counts"], {"new": 2})  # the others as usual

    def test_a_change_by_hand_shows_at_the_next_listing(self):
        wf = self.unique("wl_hand")
        self.load(wf, TWO)
        rows = {w["name"]: w for w in self.batchy.get("/workflows").json()["workflows"]}
        self.assertEqual(rows[wf]["counts"], {"new": 2})
        self.redis.cli("HSET", wf, "job2", '{"q": "x", "status": "failed"}')
        rows = {w["name"]: w for w in self.batchy.get("/workflows").json()["workflows"]}
        self.assertEqual(rows[wf]["counts"], {"new": 1, "failed": 1})
        self.redis.cli("HSET", wf, "job2", "{broken")
        rows = {w["name"]: w for w in self.batchy.get("/workflows").json()["workflows"]}
        self.assertIn("error", rows[wf])
        self.redis.cli("DEL", wf)
        names = [w["name"] for w in self.batchy.get("/workflows").json()["workflows"]]
        self.assertNotIn(wf, names)

    def test_unchanged_workflows_are_not_read_again(self):
        wf = self.unique("wl_tracked")
        self.load(wf, TWO)
        self.batchy.get("/workflows")  # reads every workflow, tracked by Redis
        before = self.redis.commandstats().get("hgetall", 0)
        for _ in range(3):
            rows = {w["name"]: w for w in self.batchy.get("/workflows").json()["workflows"]}
            self.assertEqual(rows[wf]["counts"], {"new": 2})
        self.assertEqual(self.redis.commandstats().get("hgetall", 0), before)
        # a change (through Batchy or by hand) is read again, and only it
        self.ok("open_batch", wf)
        rows = {w["name"]: w for w in self.batchy.get("/workflows").json()["workflows"]}
        self.assertEqual(rows[wf]["counts"], {"open": 2})
        self.assertEqual(self.redis.commandstats().get("hgetall", 0), before + 1)

    def test_changes_made_while_invalidations_were_lost_are_listed(self):
        wf = self.unique("wl_lost")
        self.load(wf, TWO)
        self.batchy.get("/workflows")
        # the subscription that receives Redis' invalidations is cut, and
        # the change made at once, before Batchy has subscribed again
        self.redis.cli("CLIENT", "KILL", "TYPE", "pubsub")
        self.redis.cli("HSET", wf, "job1", '{"p": 1, "status": "failed"}')
        rows = {w["name"]: w for w in self.batchy.get("/workflows").json()["workflows"]}
        self.assertEqual(rows[wf]["counts"], {"failed": 1, "new": 1})
        # and once subscribed again, unchanged ones are trusted again
        deadline = time.monotonic() + PROMPT
        while self.batchy.get("/healthz").json()["notices"] is not True:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        self.redis.cli("HSET", wf, "job1", '{"p": 1, "status": "success"}')
        rows = {w["name"]: w for w in self.batchy.get("/workflows").json()["workflows"]}
        self.assertEqual(rows[wf]["counts"], {"success": 1, "new": 1})
        self.redis.cli("FLUSHDB")
        self.assertEqual(self.batchy.get("/workflows").json(), {"workflows": []})

    def test_a_step_past_its_expected_by_without_a_success_today_is_late(self):
        wf = self.unique("wl_late")
        # 00:00 has passed whenever the test runs; 09:00-ish times are the
        # unit tests' (test_views.c), which control the clock
        self.load(wf, 'job1:\n  p: 1\n  expected_by: "00:00"\njob2:\n  q: x\n')
        rows = {w["name"]: w for w in self.batchy.get("/workflows").json()["workflows"]}
        self.assertIs(rows[wf]["late"], True)
        self.assertEqual(self.redis.hash_json(wf)["job1"]["expected_by"], "00:00")
        self.ok("open_batch", wf)
        self.ok("close_batch", wf, {"step": "job1"})
        rows = {w["name"]: w for w in self.batchy.get("/workflows").json()["workflows"]}
        self.assertIs(rows[wf]["late"], False)  # job1 succeeded today; job2 has no time
        self.ok("open_batch", wf)  # a new batch: job1 open again, its success a batch ago
        rows = {w["name"]: w for w in self.batchy.get("/workflows").json()["workflows"]}
        self.assertIs(rows[wf]["late"], True)

    def test_expected_by_is_checked_at_load_and_refused_as_a_parameter(self):
        wf = self.unique("wl_by")
        # unquoted, 12:30 is a number to YAML 1.1 (750: base 60), as the
        # original's PyYAML read it; 06:00 is text (no leading 0 there)
        for bad in ("12:30", '"6:00"', '"24:00"', '"06:00:00"', "true"):
            self.write_cfg(wf, "job1:\n  expected_by: %s\n" % bad)
            r = self.batchy.get("/load_cfg/" + wf)
            self.assertEqual(r.status, 422, (bad, r))
            self.assertIn('"HH:MM"', r.json()["error"])
        self.load(wf, 'job1:\n  expected_by: "06:00"\n')
        self.ok("open_batch", wf)
        before = self.redis.dump()
        r = self.batchy.get("/close_batch/%s?expected_by=07:00" % wf)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(self.redis.dump(), before)

    def test_bad_filters_are_400(self):
        for query in ("status=done", "prefix=a*", "prefix=a:b"):
            r = self.batchy.get("/workflows?" + query)
            self.assertEqual(r.status, 400, (query, r))


class ManyWorkflowsTest(ServiceTestCase):
    """A class of its own: thousands of workflows share rows.c's slots
    with the others', whose reads other tests count."""

    def test_thousands_are_listed_whole_and_in_order_read_or_remembered(self):
        # More workflows than a listing makes in one slice: the answer is
        # made a slice at a time and sent as it is read; nothing may be
        # lost, doubled or misplaced at the seams, nor a comma.
        prefix = self.unique("wl_many")
        n = 2500
        self.redis.fill(prefix, n)
        gone, broken = "%s%05d" % (prefix, 1234), "%s%05d" % (prefix, 2001)
        self.redis.cli("DEL", gone)  # still in batchy:workflows: not listed
        self.redis.cli("HSET", broken, "job1", "{not json")
        want = ["%s%05d" % (prefix, i) for i in range(n) if i != 1234]
        listings = []
        for _ in range(2):  # read, then remembered (Redis tracks the reads)
            r = self.batchy.get("/workflows?prefix=" + prefix)
            self.assertEqual(r.status, 200, r)
            rows = r.json()["workflows"]
            self.assertEqual([w["name"] for w in rows], want)
            listings.append(r.body)
        self.assertEqual(listings[0], listings[1])
        by_name = {w["name"]: w for w in json.loads(listings[0])["workflows"]}
        self.assertEqual(by_name[want[0]]["counts"], {"failed": 1, "success": 1})
        self.assertEqual(by_name[want[1]]["counts"], {"success": 2})
        self.assertIn("job1", by_name[broken]["error"])
        failed = self.batchy.get("/workflows?status=failed&prefix=" + prefix).json()["workflows"]
        self.assertEqual([w["name"] for w in failed],
                         ["%s%05d" % (prefix, i) for i in range(0, n, 5)])
        none = self.batchy.get("/workflows?status=abandoned&prefix=" + prefix)
        self.assertEqual(none.body, b'{"workflows":[]}\n')


class RetentionTest(OwnBatchyMixin, unittest.TestCase):
    cfg_files = {"busy.yaml": "job1:\n  p: 1\n", "keepall.yaml": "job1:\n  p: 1\n"}

    def test_keep_batches_keeps_exactly_the_newest_snapshots(self):
        b = self.start_batchy(env={"BATCHY_KEEP_BATCHES": "50"})
        self.assertEqual(b.get("/load_cfg/busy").status, 200)
        ids = []
        for _ in range(2000):
            r = b.get("/open_batch/busy")
            self.assertEqual(r.status, 200, r)
            ids.append(r.json()["job1"]["batch_id"])
        snaps = [k for k in self.redis.keys("busy-*") if not k.endswith("-init")]
        kept = sorted(int(k.split("-")[1]) for k in snaps)
        self.assertEqual(kept, sorted(ids)[-50:])
        h = json.loads(b.get("/history/busy?limit=1000").text)
        self.assertEqual([x["batch_id"] for x in h["batches"]], kept[::-1])
        self.assertEqual(int(self.redis.cli("ZCARD", "batchy:batches:busy")), 50)

    def test_only_the_last_ten_load_snapshots_are_kept(self):
        b = self.start_batchy()
        # twelve earlier loads (their epochs an hour apart), indexed
        for i in range(12):
            epoch = 1795000000 + 3600 * i
            self.redis.cli("HSET", "keepall-%d-init" % epoch, "job1", '{"p": 1, "status": "new"}')
            self.redis.cli("ZADD", "batchy:inits:keepall", epoch, epoch)
        self.assertEqual(b.get("/load_cfg/keepall").status, 200)
        inits = sorted(self.redis.keys("keepall-*-init"))
        self.assertEqual(len(inits), 10, inits)
        self.assertNotIn("keepall-1795000000-init", inits)
        self.assertNotIn("keepall-1795007200-init", inits)
        self.assertIn("keepall-1795010800-init", inits)
        self.assertEqual(int(self.redis.cli("ZCARD", "batchy:inits:keepall")), 10)


class KeepStateTest(ServiceTestCase):

    def setUp(self):
        self.wf = self.unique("keep")

    def test_reload_with_keep_state_keeps_windows_and_applies_the_file(self):
        self.load(self.wf, TWO)
        self.ok("open_batch", self.wf)
        self.ok("close_batch", self.wf, {"step": ["job1", "job2"]})
        opened = self.ok("open_batch", self.wf, {"step": "job1"})["job1"]
        self.write_cfg(self.wf, "job1:\n  p: 2\njob3:\n  r: 1\n")
        doc = self.ok("load_cfg", self.wf, {"keep": "state"})
        self.assertEqual(sorted(doc), ["job1", "job3"])
        for field in ("status", "from_date", "to_date", "batch_id", "batch_start"):
            self.assertEqual(doc["job1"][field], opened[field], field)
        self.assertEqual(doc["job1"]["p"], 2)
        self.assertEqual(doc["job3"], {"r": 1, "status": "new"})
        self.assertEqual(self.redis.hash_json(self.wf), doc)
        # the open batch goes on: its close lands
        closed = self.ok("close_batch", self.wf, {"step": "job1"})["job1"]
        self.assertEqual(closed["status"], "success")
        self.assertEqual(closed["batch_id"], opened["batch_id"])

    def test_the_file_wins_for_a_state_field_it_sets(self):
        self.load(self.wf, TWO)
        self.ok("open_batch", self.wf)
        self.write_cfg(self.wf, "job1:\n  from_date: '2026-01-01T00:00:00'\njob2:\n  q: x\n")
        doc = self.ok("load_cfg", self.wf, {"keep": "state"})
        self.assertEqual(doc["job1"]["from_date"], "2026-01-01T00:00:00.000000")
        self.assertEqual(doc["job2"]["status"], "open")

    def test_plain_load_still_replaces_everything(self):
        self.load(self.wf, TWO)
        self.ok("open_batch", self.wf)
        doc = self.load(self.wf)
        self.assertEqual(doc["job1"], {"p": 1, "status": "new"})

    def test_dry_run_answers_what_would_be_written_and_writes_nothing(self):
        self.load(self.wf, TWO)
        self.ok("open_batch", self.wf)
        self.write_cfg(self.wf, "job1:\n  p: 3\n")
        before = self.redis.dump()
        for query in ({"dry_run": "1"}, {"dry_run": "1", "keep": "state"}):
            doc = self.ok("load_cfg", self.wf, query)
            self.assertEqual(doc["job1"]["p"], 3)
            self.assertEqual(doc["job1"]["status"], "new" if "keep" not in query else "open")
            self.assertEqual(self.redis.dump(), before)

    def test_bad_keep_or_dry_run_is_400_and_changes_nothing(self):
        self.load(self.wf, TWO)
        before = self.redis.dump()
        for query in ({"keep": "all"}, {"dry_run": "yes please"}):
            r = self.call("load_cfg", self.wf, query)
            self.assertEqual(r.status, 400, r)
        self.assertEqual(self.redis.dump(), before)

    def test_a_close_racing_a_keep_state_reload_is_never_lost(self):
        self.load(self.wf, "".join("s%d:\n  p: 1\n" % i for i in range(20)))
        self.ok("open_batch", self.wf)
        results = {}

        def close(step):
            results[step] = http_request(self.batchy.port, "GET",
                                         "/close_batch/%s?step=%s" % (self.wf, step)).status

        def reload():
            for _ in range(5):
                results.setdefault("loads", []).append(
                    http_request(self.batchy.port, "GET",
                                 "/load_cfg/%s?keep=state" % self.wf).status)

        threads = [threading.Thread(target=close, args=("s%d" % i,)) for i in range(20)]
        threads.append(threading.Thread(target=reload))
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(results.pop("loads"), [200] * 5)
        self.assertEqual(set(results.values()), {200})
        state = self.redis.hash_json(self.wf)
        self.assertEqual({s["status"] for s in state.values()}, {"success"})


class RewindTest(ServiceTestCase):

    def setUp(self):
        self.wf = self.unique("rewind")

    def test_the_next_open_starts_exactly_at_the_rewind_time(self):
        self.load(self.wf, "job1:\n  trunc_start: true\njob2:\n  q: x\n")
        self.ok("open_batch", self.wf)
        self.ok("close_batch", self.wf)
        doc = self.ok("rewind", self.wf, {"from_date": "2026-11-01T06:30:00", "step": "job1"},
                      method="POST")
        self.assertEqual(doc["job1"]["rewind_to"], "2026-11-01T06:30:00.000000")
        self.assertNotIn("rewind_to", doc["job2"])
        self.assertEqual(self.ok("get_status", self.wf)["job1"]["rewind_to"],
                         "2026-11-01T06:30:00.000000")
        opened = self.ok("open_batch", self.wf)
        # exactly there: not truncated to midnight despite trunc_start
        self.assertEqual(opened["job1"]["from_date"], "2026-11-01T06:30:00.000000")
        self.assertNotIn("rewind_to", opened["job1"])
        self.assertNotEqual(opened["job2"]["from_date"], "2026-11-01T06:30:00.000000")
        snap = self.redis.hash_json("%s-%d" % (self.wf, opened["job1"]["batch_id"]))
        self.assertEqual(snap["job1"]["from_date"], "2026-11-01T06:30:00.000000")
        h = self.ok("history", self.wf)["batches"][0]
        self.assertEqual(h["batch_id"], opened["job1"]["batch_id"])

    def test_rewind_of_an_open_step_is_409_and_changes_nothing(self):
        self.load(self.wf, TWO)
        self.ok("open_batch", self.wf, {"step": "job1"})
        before = self.redis.dump()
        r = self.call("rewind", self.wf, {"from_date": "2026-11-01"})
        self.assertEqual(r.status, 409, r)
        self.assertIn("job1", r.json()["error"])
        self.assertEqual(self.redis.dump(), before)
        # job2 alone is not open: it may be rewound
        self.ok("rewind", self.wf, {"from_date": "2026-11-01", "step": "job2"})

    def test_bad_rewinds_are_4xx_and_change_nothing(self):
        self.load(self.wf, TWO)
        before = self.redis.dump()
        for query, status in (({}, 400), ({"from_date": "yesterday"}, 400),
                              ({"from_date": "1700-01-01"}, 400),
                              ({"from_date": "2999-01-01"}, 400),
                              ({"from_date": "2026-11-01", "step": "nope"}, 404)):
            r = self.call("rewind", self.wf, query)
            self.assertEqual(r.status, status, (query, r))
        self.assertEqual(self.redis.dump(), before)

    def test_rewind_to_is_a_state_field_kept_by_keep_state_and_refused_as_a_parameter(self):
        self.load(self.wf, TWO)
        self.ok("rewind", self.wf, {"from_date": "2026-11-01"})
        doc = self.ok("load_cfg", self.wf, {"keep": "state"})
        self.assertEqual(doc["job1"]["rewind_to"], "2026-11-01T00:00:00.000000")
        self.ok("open_batch", self.wf)
        r = self.call("close_batch", self.wf, {"rewind_to": "2026-01-01"})
        self.assertEqual(r.status, 400, r)
        self.assertIn("special field", r.json()["error"])


class RewindTokenTest(OwnBatchyMixin, unittest.TestCase):
    cfg_files = {"tok.yaml": "job1:\n  p: 1\n"}

    def test_rewind_needs_the_token_and_reads_do_not(self):
        b = self.start_batchy(args=("--token", "s3cret"))
        auth = {"Authorization": "Bearer s3cret"}
        self.assertEqual(b.get("/load_cfg/tok", headers=auth).status, 200)
        self.assertEqual(b.get("/rewind/tok?from_date=2026-11-01").status, 401)
        self.assertEqual(b.get("/rewind/tok?from_date=2026-11-01", headers=auth).status, 200)
        self.assertEqual(b.get("/history/tok").status, 200)
        self.assertEqual(b.get("/workflows").status, 200)
        self.assertEqual(b.get("/load_cfg/tok?dry_run=1").status, 401)


if __name__ == "__main__":
    unittest.main()
