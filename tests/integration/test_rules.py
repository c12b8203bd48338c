"""
test_rules.py - the batch rules of SPEC section 4, observed through HTTP and
Redis. Prior state is written straight into Redis with redis-cli so that
every time involved is known.
"""
import json
import time
import unittest
from datetime import timedelta

import harness
from harness import ServiceTestCase, ORIGIN, parse_time, utcnow, SLOW

RESERVED = ("status", "from_date", "to_date", "reprocess_hours", "batch_start", "batch_end",
            "trunc_start", "error_message", "infa_section", "token")


class OpenRulesTest(ServiceTestCase):
    def setUp(self):
        self.wf = self.unique("rules")

    def open_one(self, prev):
        """Write {job: prev} as the state, open, return the new job record."""
        self.redis.set_state(self.wf, {"job": prev})
        return self.open_batch(self.wf)["job"]

    def test_open_after_success_starts_at_previous_batch_start(self):
        rec = self.open_one({"status": "success", "batch_id": 1768024800,
                             "from_date": "2026-01-09T06:00:00.000000",
                             "batch_start": "2026-01-10T06:00:00.000000",
                             "batch_end": "2026-01-10T06:10:00.000000"})
        self.assertEqual(rec["from_date"], "2026-01-10T06:00:00.000000")

    def test_open_after_success_subtracts_reprocess_hours(self):
        rec = self.open_one({"status": "success", "batch_id": 1768024800, "reprocess_hours": 2,
                             "from_date": "2026-01-09T06:00:00.000000",
                             "batch_start": "2026-01-10T06:00:00.123456",
                             "batch_end": "2026-01-10T06:10:00.000000"})
        self.assertEqual(rec["from_date"], "2026-01-10T04:00:00.123456")
        self.assertEqual(rec["reprocess_hours"], 2)

    def test_open_after_success_with_fractional_reprocess_hours(self):
        rec = self.open_one({"status": "success", "batch_id": 1768024800, "reprocess_hours": 1.5,
                             "batch_start": "2026-01-10T01:00:00.000000"})
        self.assertEqual(rec["from_date"], "2026-01-09T23:30:00.000000")

    def test_open_after_success_with_zero_reprocess_hours_is_contiguous(self):
        rec = self.open_one({"status": "success", "batch_id": 1768024800, "reprocess_hours": 0,
                             "batch_start": "2026-01-10T06:00:00.000000"})
        self.assertEqual(rec["from_date"], "2026-01-10T06:00:00.000000")

    def test_open_after_failure_keeps_from_date(self):
        rec = self.open_one({"status": "failed", "batch_id": 1768024800, "reprocess_hours": 2,
                             "from_date": "2026-01-09T06:00:00.000000",
                             "batch_start": "2026-01-10T06:00:00.000000",
                             "batch_end": "2026-01-10T06:10:00.000000",
                             "error_message": "boom"})
        self.assertEqual(rec["from_date"], "2026-01-09T06:00:00.000000")
        self.assertNotIn("error_message", rec)

    def test_open_after_unfinished_open_keeps_from_date(self):
        rec = self.open_one({"status": "open", "batch_id": 1768024800,
                             "from_date": "2026-01-09T06:00:00.000000",
                             "batch_start": "2026-01-10T06:00:00.000000", "batch_end": None})
        self.assertEqual(rec["from_date"], "2026-01-09T06:00:00.000000")

    def test_open_of_never_run_step_starts_at_origin(self):
        rec = self.open_one({"status": "new", "param": "x"})
        self.assertEqual(rec["from_date"], ORIGIN)
        self.assertEqual(rec["from_date"], "1776-07-04T23:59:00.000000")

    def test_open_of_success_without_batch_start_uses_from_date(self):
        rec = self.open_one({"status": "success", "from_date": "2026-02-01T00:00:00.000000"})
        self.assertEqual(rec["from_date"], "2026-02-01T00:00:00.000000")

    def test_open_of_new_step_with_from_date_keeps_it_in_canonical_form(self):
        rec = self.open_one({"status": "new", "from_date": "2026-01-01T00:00"})
        self.assertEqual(rec["from_date"], "2026-01-01T00:00:00.000000")

    def test_trunc_start_truncates_from_date_to_midnight(self):
        rec = self.open_one({"status": "success", "batch_id": 1768024800, "reprocess_hours": 2,
                             "trunc_start": True,
                             "batch_start": "2026-01-10T06:30:12.500000"})
        self.assertEqual(rec["from_date"], "2026-01-10T00:00:00.000000")

    def test_trunc_start_applies_after_reprocess_hours_crosses_midnight(self):
        rec = self.open_one({"status": "success", "batch_id": 1768024800, "reprocess_hours": 3,
                             "trunc_start": True, "batch_start": "2026-01-10T01:00:00.000000"})
        self.assertEqual(rec["from_date"], "2026-01-09T00:00:00.000000")

    def test_trunc_start_truncates_origin_and_kept_window(self):
        rec = self.open_one({"status": "new", "trunc_start": True})
        self.assertEqual(rec["from_date"], "1776-07-04T00:00:00.000000")
        rec = self.open_one({"status": "failed", "trunc_start": True, "batch_id": 1768024800,
                             "from_date": "2026-03-05T17:45:00.000000"})
        self.assertEqual(rec["from_date"], "2026-03-05T00:00:00.000000")

    def test_trunc_start_false_keeps_time_of_day(self):
        rec = self.open_one({"status": "success", "batch_id": 1768024800, "trunc_start": False,
                             "batch_start": "2026-01-10T06:30:12.500000"})
        self.assertEqual(rec["from_date"], "2026-01-10T06:30:12.500000")

    def test_open_sets_to_date_and_batch_start_to_now(self):
        before = utcnow()
        rec = self.open_one({"status": "new"})
        after = utcnow()
        self.assertEqual(rec["to_date"], rec["batch_start"])
        start = self.assert_time_near(rec["batch_start"], before, after)
        self.assertIsNone(rec["batch_end"])
        self.assertIn("batch_end", rec)
        self.assertEqual(rec["status"], "open")
        self.assertEqual(rec["batch_id"], int(start.timestamp()))

    def test_open_batch_id_is_now_in_unix_seconds(self):
        t0 = int(time.time())
        rec = self.open_one({"status": "success", "batch_id": 1000,
                             "batch_start": "2026-01-10T06:00:00.000000"})
        t1 = int(time.time())
        self.assertIsInstance(rec["batch_id"], int)
        self.assertGreaterEqual(rec["batch_id"], t0 - 1)
        self.assertLessEqual(rec["batch_id"], t1 + 1)

    def test_batch_id_is_previous_plus_one_when_previous_is_ahead_of_now(self):
        ahead = int(time.time()) + 1000
        self.redis.set_state(self.wf, {"a": {"status": "success", "batch_id": ahead - 5},
                                       "b": {"status": "failed", "batch_id": ahead}})
        doc = self.open_batch(self.wf)
        self.assertEqual(doc["a"]["batch_id"], ahead + 1)
        self.assertEqual(doc["b"]["batch_id"], ahead + 1)
        doc = self.open_batch(self.wf)
        self.assertEqual(doc["a"]["batch_id"], ahead + 2)

    def test_two_opens_in_the_same_second_get_increasing_ids(self):
        self.redis.set_state(self.wf, {"job": {"status": "new"}})
        ids = [self.open_batch(self.wf)["job"]["batch_id"] for _ in range(4)]
        self.assertEqual(ids, sorted(set(ids)))
        self.assertEqual(len(set(ids)), 4)

    def test_open_gives_every_step_the_same_batch(self):
        self.redis.set_state(self.wf, {"a": {"status": "new"}, "b": {"status": "success",
                                                                      "batch_id": 5}, "c": {}})
        doc = self.open_batch(self.wf)
        self.assertEqual(len({r["batch_id"] for r in doc.values()}), 1)
        self.assertEqual(len({r["batch_start"] for r in doc.values()}), 1)
        self.assertEqual({r["status"] for r in doc.values()}, {"open"})

    def test_open_keeps_every_other_field(self):
        rec = self.open_one({"status": "success", "batch_id": 1768024800,
                             "batch_start": "2026-01-10T06:00:00.000000",
                             "param1": "hello", "n": 42, "nested": {"a": [1, 2, {"b": None}]},
                             "flag": False, "infa_section": "S1"})
        self.assertEqual(rec["param1"], "hello")
        self.assertEqual(rec["n"], 42)
        self.assertEqual(rec["nested"], {"a": [1, 2, {"b": None}]})
        self.assertIs(rec["flag"], False)
        self.assertEqual(rec["infa_section"], "S1")

    def test_open_writes_latest_and_snapshot_alike(self):
        self.redis.set_state(self.wf, {"a": {"status": "new"}, "b": {"status": "new", "x": 1}})
        doc = self.open_batch(self.wf)
        bid = doc["a"]["batch_id"]
        self.assertEqual(self.redis.hash_json(self.wf), doc)
        self.assertEqual(self.redis.hash_json("%s-%d" % (self.wf, bid)), doc)
        self.assertEqual(self.assert_latest_matches_snapshot(self.wf), bid)

    def test_redis_values_are_written_as_python_json_dumps_writes_them(self):
        # compact JSON, as earlier versions wrote it, is read all the same
        self.redis.set_state(self.wf, {"job1": {"status": "new", "param1": "h\u00e9llo", "f": 1.0}})
        self.open_batch(self.wf)
        text = self.redis.cli("HGET", self.wf, "job1")
        self.assertEqual(text, json.dumps(json.loads(text)))
        self.assertIn('"param1": "h\\u00e9llo"', text)
        self.assertIn('"f": 1.0', text)
        self.assertIn('"status": "open"', text)

    def test_reopen_marks_open_steps_of_previous_batch_abandoned(self):
        self.redis.set_state(self.wf, {"a": {"status": "new"}, "b": {"status": "new"}})
        first = self.open_batch(self.wf)
        id_a = first["a"]["batch_id"]
        self.close_batch(self.wf, {"step": "a"})
        before = utcnow()
        second = self.open_batch(self.wf)
        after = utcnow()
        id_b = second["a"]["batch_id"]
        self.assertGreater(id_b, id_a)
        snap_a = self.redis.hash_json("%s-%d" % (self.wf, id_a))
        self.assertEqual(snap_a["b"]["status"], "abandoned")
        self.assert_time_near(snap_a["b"]["batch_end"], before, after)
        self.assertEqual(snap_a["a"]["status"], "success")
        snap_b = self.redis.hash_json("%s-%d" % (self.wf, id_b))
        self.assertEqual(snap_b, second)
        self.assertEqual({r["status"] for r in second.values()}, {"open"})
        # the unfinished step runs its window again; the closed one moves on
        self.assertEqual(second["b"]["from_date"], first["b"]["from_date"])
        self.assertEqual(second["a"]["from_date"], first["a"]["batch_start"])
        self.assert_latest_matches_snapshot(self.wf)

    def test_windows_are_contiguous_over_successful_batches(self):
        self.redis.set_state(self.wf, {"job": {"status": "new"}})
        first = self.open_batch(self.wf)["job"]
        self.close_batch(self.wf)
        second = self.open_batch(self.wf)["job"]
        self.assertEqual(second["from_date"], first["to_date"])
        self.assertGreaterEqual(parse_time(second["to_date"]), parse_time(first["to_date"]))

    def test_open_after_fail_repeats_window_and_clears_error_message(self):
        self.redis.set_state(self.wf, {"job": {"status": "new", "from_date": "2026-01-01T00:00:00.000000"}})
        first = self.open_batch(self.wf)["job"]
        failed = self.fail_batch(self.wf, {"error": "disk full"})["job"]
        self.assertEqual(failed["error_message"], "disk full")
        second = self.open_batch(self.wf)["job"]
        self.assertEqual(second["from_date"], first["from_date"])
        self.assertNotIn("error_message", second)
        self.assertNotIn("error_message", self.redis.hash_json(self.wf)["job"])

    def test_new_step_without_batch_id_does_not_hold_back_batch_id(self):
        self.redis.set_state(self.wf, {"job": {}})
        t0 = int(time.time())
        rec = self.open_batch(self.wf)["job"]
        self.assertGreaterEqual(rec["batch_id"], t0 - 1)


class ReloadRulesTest(ServiceTestCase):
    def test_open_after_reload_never_reuses_a_batch_id(self):
        # load_cfg resets the steps' batch ids; an open in the same second as
        # the last batch must not take that batch's id or overwrite its history
        wf = self.unique("reload")
        self.load(wf, "job1:\n  p: 1\n")
        first = self.open_batch(wf)["job1"]["batch_id"]
        self.close_batch(wf, {"rows": "1"})
        self.load(wf)
        second = self.open_batch(wf)["job1"]["batch_id"]
        self.assertGreater(second, first)
        old = self.redis.hash_json("%s-%d" % (wf, first))
        self.assertEqual(old["job1"]["status"], "success")
        self.assertEqual(old["job1"]["rows"], "1")
        self.assert_error(self.call("close_batch", wf, {"batch_id": str(first)}), 409)
        self.assert_latest_matches_snapshot(wf)


class CloseFailRulesTest(ServiceTestCase):
    def setUp(self):
        self.wf = self.unique("end")
        self.redis.set_state(self.wf, {"job1": {"status": "new", "p": "x"},
                                       "job2": {"status": "new"},
                                       "job3": {"status": "new"}})

    def opened(self):
        doc = self.open_batch(self.wf)
        return doc, doc["job1"]["batch_id"]

    def test_close_sets_success_and_batch_end_now(self):
        doc, bid = self.opened()
        before = utcnow()
        closed = self.close_batch(self.wf)
        after = utcnow()
        for step, rec in closed.items():
            self.assertEqual(rec["status"], "success")
            self.assertEqual(rec["batch_id"], bid)
            self.assertEqual(rec["batch_start"], doc[step]["batch_start"])
            self.assertEqual(rec["from_date"], doc[step]["from_date"])
            self.assert_time_near(rec["batch_end"], before, after)
        self.assertEqual(self.redis.hash_json(self.wf), closed)
        self.assertEqual(self.redis.hash_json("%s-%d" % (self.wf, bid)), closed)

    def test_fail_sets_failed_batch_end_and_error_message(self):
        _, bid = self.opened()
        before = utcnow()
        failed = self.fail_batch(self.wf, {"error": "it's \"bad\": 50% done\nsee log ü"})
        after = utcnow()
        for rec in failed.values():
            self.assertEqual(rec["status"], "failed")
            self.assertEqual(rec["error_message"], "it's \"bad\": 50% done\nsee log ü")
            self.assert_time_near(rec["batch_end"], before, after)
        self.assertEqual(self.redis.hash_json("%s-%d" % (self.wf, bid)), failed)
        self.assert_latest_matches_snapshot(self.wf)

    def test_close_of_step_not_open_is_409_and_changes_nothing(self):
        before = self.redis.dump()
        self.assert_error(self.call("close_batch", self.wf), 409)
        self.assert_error(self.call("fail_batch", self.wf), 409)
        self.assertEqual(self.redis.dump(), before)

    def test_close_after_fail_is_409_and_changes_nothing(self):
        self.opened()
        self.fail_batch(self.wf)
        before = self.redis.dump()
        self.assert_error(self.call("close_batch", self.wf), 409)
        self.assertEqual(self.redis.dump(), before)

    def test_fail_after_close_is_409_and_changes_nothing(self):
        self.opened()
        self.close_batch(self.wf, {"step": "job1"})
        before = self.redis.dump()
        self.assert_error(self.call("fail_batch", self.wf, {"step": "job1"}), 409)
        self.assertEqual(self.redis.dump(), before)

    def test_close_all_when_one_step_already_closed_is_409(self):
        self.opened()
        self.close_batch(self.wf, {"step": "job1"})
        before = self.redis.dump()
        self.assert_error(self.call("close_batch", self.wf), 409)
        self.assertEqual(self.redis.dump(), before)

    def test_retry_of_same_close_is_200_and_rewrites_nothing(self):
        self.opened()
        closed = self.close_batch(self.wf)
        before = self.redis.dump()
        time.sleep(0.01)
        again = self.close_batch(self.wf)
        self.assertEqual(again, closed)
        self.assertEqual(self.redis.dump(), before)

    def test_retry_of_same_fail_is_200_and_rewrites_nothing(self):
        self.opened()
        failed = self.fail_batch(self.wf, {"step": "job2", "error": "x"})
        before = self.redis.dump()
        again = self.fail_batch(self.wf, {"step": "job2", "error": "x"})
        self.assertEqual(again, failed)
        self.assertEqual(self.redis.dump(), before)

    def test_retry_of_close_with_current_batch_id_is_200(self):
        _, bid = self.opened()
        closed = self.close_batch(self.wf, {"batch_id": bid, "step": "job3"})
        before = self.redis.dump()
        self.assertEqual(self.close_batch(self.wf, {"batch_id": bid, "step": "job3"}), closed)
        self.assertEqual(self.redis.dump(), before)

    def test_close_with_step_closes_only_that_step(self):
        _, bid = self.opened()
        doc = self.close_batch(self.wf, {"step": "job2"})
        self.assertEqual(doc["job2"]["status"], "success")
        self.assertEqual(doc["job1"]["status"], "open")
        self.assertEqual(doc["job3"]["status"], "open")
        self.assertIsNone(doc["job1"]["batch_end"])
        snap = self.redis.hash_json("%s-%d" % (self.wf, bid))
        self.assertEqual(snap, doc)

    def test_step_may_repeat(self):
        self.opened()
        doc = self.close_batch(self.wf, "step=job1&step=job3")
        self.assertEqual([doc[s]["status"] for s in ("job1", "job2", "job3")],
                         ["success", "open", "success"])

    def test_step_may_be_comma_separated(self):
        self.opened()
        doc = self.fail_batch(self.wf, "step=job1,job2&error=e")
        self.assertEqual([doc[s]["status"] for s in ("job1", "job2", "job3")],
                         ["failed", "failed", "open"])
        self.assertNotIn("error_message", doc["job3"])
        self.assertEqual(doc["job1"]["error_message"], "e")

    def test_close_of_other_step_is_allowed_while_one_is_closed(self):
        self.opened()
        self.close_batch(self.wf, {"step": "job1"})
        doc = self.fail_batch(self.wf, {"step": "job2"})
        self.assertEqual(doc["job1"]["status"], "success")
        self.assertEqual(doc["job2"]["status"], "failed")
        self.assert_latest_matches_snapshot(self.wf)

    def test_unknown_step_is_404_and_changes_nothing(self):
        self.opened()
        before = self.redis.dump()
        self.assert_error(self.call("close_batch", self.wf, "step=job1&step=nope"), 404)
        self.assert_error(self.call("fail_batch", self.wf, "step=job1,nope"), 404)
        self.assertEqual(self.redis.dump(), before)

    def test_batch_id_guard_accepts_current_batch(self):
        _, bid = self.opened()
        doc = self.close_batch(self.wf, {"batch_id": bid})
        self.assertEqual({r["status"] for r in doc.values()}, {"success"})

    def test_stale_batch_id_is_409_and_changes_nothing(self):
        _, old = self.opened()
        self.opened()
        before = self.redis.dump()
        self.assert_error(self.call("close_batch", self.wf, {"batch_id": old}), 409)
        self.assert_error(self.call("fail_batch", self.wf, {"batch_id": old, "error": "x"}), 409)
        self.assert_error(self.call("close_batch", self.wf, {"batch_id": old + 10**6}), 409)
        self.assertEqual(self.redis.dump(), before)

    def test_non_integer_batch_id_is_400_and_changes_nothing(self):
        self.opened()
        before = self.redis.dump()
        for bad in ("abc", "1e9", "12 ", ""):
            with self.subTest(batch_id=bad):
                self.assert_error(self.call("close_batch", self.wf, {"batch_id": bad}), 400)
        self.assertEqual(self.redis.dump(), before)

    def test_error_on_close_is_400_and_changes_nothing(self):
        self.opened()
        before = self.redis.dump()
        self.assert_error(self.call("close_batch", self.wf, {"error": "x"}), 400)
        self.assertEqual(self.redis.dump(), before)

    def test_extra_parameters_are_stored_as_strings_in_affected_steps(self):
        _, bid = self.opened()
        doc = self.close_batch(self.wf, {"step": "job1", "rows_loaded": "1200", "note": "ok, done"})
        self.assertEqual(doc["job1"]["rows_loaded"], "1200")
        self.assertEqual(doc["job1"]["note"], "ok, done")
        self.assertNotIn("rows_loaded", doc["job2"])
        raw = self.redis.cli("HGET", self.wf, "job1")
        self.assertIn('"rows_loaded": "1200"', raw)
        self.assertEqual(self.redis.hash_json("%s-%d" % (self.wf, bid))["job1"]["rows_loaded"], "1200")
        doc = self.fail_batch(self.wf, {"step": "job2", "rows_rejected": "7", "p": "overwritten"})
        self.assertEqual(doc["job2"]["rows_rejected"], "7")
        self.assertEqual(doc["job2"]["p"], "overwritten")
        self.assertEqual(doc["job1"]["p"], "x")

    def test_reserved_fields_are_refused_with_nothing_written(self):
        self.opened()
        before = self.redis.dump()
        for endpoint in ("close_batch", "fail_batch"):
            for name in RESERVED:
                with self.subTest(endpoint=endpoint, field=name):
                    self.assert_error(self.call(endpoint, self.wf, {name: "x", "rows": "1"}), 400)
        self.assertEqual(self.redis.dump(), before)

    def test_close_and_fail_keep_latest_equal_to_snapshot(self):
        self.opened()
        self.close_batch(self.wf, {"step": "job1", "rows": "3"})
        self.assert_latest_matches_snapshot(self.wf)
        self.fail_batch(self.wf, {"step": "job2", "error": "e"})
        self.assert_latest_matches_snapshot(self.wf)
        self.opened()
        self.assert_latest_matches_snapshot(self.wf)

    def test_step_names_with_spaces_and_unicode_work_in_step_parameter(self):
        wf = self.unique("names")
        self.redis.set_state(wf, {"job one": {"status": "new"}, "étape": {"status": "new"},
                                  "a,b": {"status": "new"}})
        self.open_batch(wf)
        doc = self.close_batch(wf, {"step": "job one"})
        self.assertEqual(doc["job one"]["status"], "success")
        doc = self.fail_batch(wf, {"step": "étape"})
        self.assertEqual(doc["étape"]["status"], "failed")
        self.assertEqual(doc["a,b"]["status"], "open")

    def test_close_after_abandoned_batch_uses_new_batch(self):
        _, old = self.opened()
        _, new = self.opened()
        doc = self.close_batch(self.wf, {"batch_id": new})
        self.assertEqual({r["batch_id"] for r in doc.values()}, {new})
        snap_old = self.redis.hash_json("%s-%d" % (self.wf, old))
        self.assertEqual({r["status"] for r in snap_old.values()}, {"abandoned"})
        self.assertEqual(self.redis.hash_json("%s-%d" % (self.wf, new)), doc)


if __name__ == "__main__":
    unittest.main()
