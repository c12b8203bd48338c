"""
test_legacy.py - state written by the original Python service (json.dumps
with ", " separators, isoformat/str times without fraction or seconds,
status "failure") and the other lenient time forms of SPEC section 2 read
and open correctly.
"""
import json
import time
import unittest

from harness import ServiceTestCase, utcnow


def py_json(obj):
    """JSON text as the original's json.dumps wrote it."""
    return json.dumps(obj)


class LegacyStateTest(ServiceTestCase):
    def setUp(self):
        self.wf = self.unique("legacy")

    def put(self, key, steps):
        self.redis.set_state(key, {k: py_json(v) for k, v in steps.items()})
        self.assertIn('", "', self.redis.cli("HGET", key, next(iter(steps))))

    def test_legacy_record_reads_with_failure_as_failed(self):
        self.put(self.wf, {
            "job1": {"status": "failure", "from_date": "2016-01-01 23:59", "batch_id": 1451692740,
                     "batch_start": "2016-01-02T23:59:00", "param1": "hello", "n": 3},
            "job2": {"status": "success", "batch_id": 1451692740, "param2": "world"},
        })
        before = self.redis.dump()
        doc = self.get_status(self.wf)
        self.assertEqual(doc["job1"]["status"], "failed")
        self.assertEqual(doc["job1"]["param1"], "hello")
        self.assertEqual(doc["job1"]["n"], 3)
        self.assertEqual(doc["job1"]["batch_id"], 1451692740)
        self.assertEqual(doc["job2"]["status"], "success")
        self.assertEqual(self.redis.dump(), before, "get_status rewrote Redis")

    def test_legacy_failure_opens_the_same_window_again(self):
        self.put(self.wf, {"job1": {"status": "failure", "from_date": "2016-01-01 23:59",
                                    "batch_start": "2016-01-02T23:59:00", "batch_end": "2016-01-03T00:10:00",
                                    "batch_id": 1451779140, "param1": "hello"}})
        t0 = int(time.time())
        rec = self.open_batch(self.wf)["job1"]
        self.assertEqual(rec["from_date"], "2016-01-01T23:59:00.000000")
        self.assertEqual(rec["status"], "open")
        self.assertEqual(rec["param1"], "hello")
        self.assertGreaterEqual(rec["batch_id"], t0 - 1)
        raw = self.redis.cli("HGET", self.wf, "job1")
        self.assertEqual(json.loads(raw)["status"], "open")
        self.assertNotIn("failure", raw)

    def test_legacy_success_opens_from_batch_start_minus_reprocess_hours(self):
        self.put(self.wf, {"job1": {"status": "success", "from_date": "2015-12-31 23:59",
                                    "batch_start": "2016-01-01T23:59:00",
                                    "batch_end": "2016-01-02T00:20:00",
                                    "reprocess_hours": 1, "batch_id": 1451692740}})
        rec = self.open_batch(self.wf)["job1"]
        self.assertEqual(rec["from_date"], "2016-01-01T22:59:00.000000")

    def test_legacy_times_with_space_and_fraction(self):
        self.put(self.wf, {"job1": {"status": "success", "batch_start": "2016-01-01 23:59:00.123456",
                                    "batch_id": 1451692740}})
        self.assertEqual(self.open_batch(self.wf)["job1"]["from_date"], "2016-01-01T23:59:00.123456")

    def test_legacy_trunc_start_with_minute_precision(self):
        self.put(self.wf, {"job1": {"status": "failure", "from_date": "2016-01-01 23:59",
                                    "trunc_start": True, "batch_id": 1451692740}})
        self.assertEqual(self.open_batch(self.wf)["job1"]["from_date"], "2016-01-01T00:00:00.000000")

    def test_legacy_trunc_start_is_read_by_python_truth(self):
        # the original tested `if trunc_start:`: 1 and "false" are true
        for value, truncated in ((1, True), ("false", True), ("True", True), (0, False),
                                 ("", False), (None, False), (False, False)):
            with self.subTest(trunc_start=value):
                self.put(self.wf, {"job1": {"status": "failure", "from_date": "2016-01-01 23:59",
                                            "trunc_start": value, "batch_id": 1451692740}})
                got = self.open_batch(self.wf)["job1"]["from_date"]
                self.assertEqual(got, "2016-01-01T00:00:00.000000" if truncated
                                 else "2016-01-01T23:59:00.000000")

    def test_legacy_snapshot_reads_by_batch_id(self):
        self.put(self.wf, {"job1": {"status": "success", "batch_id": 1451692741}})
        self.put("%s-1451692740" % self.wf, {"job1": {"status": "failure", "batch_id": 1451692740,
                                                      "from_date": "2016-01-01 23:59"}})
        doc = self.get_status(self.wf, {"batch_id": 1451692740})
        self.assertEqual(doc["job1"]["status"], "failed")
        self.assertEqual(doc["job1"]["batch_id"], 1451692740)

    def test_get_status_of_a_snapshot_key_answers_it_read_only(self):
        # the original's get_status/<key> read any hash, snapshots included:
        # scripts fetch a batch by its key name
        self.put(self.wf, {"job1": {"status": "success", "batch_id": 1451692741}})
        self.put("%s-1451692740" % self.wf, {"job1": {"status": "failure",
                                                      "batch_id": 1451692740}})
        self.put("%s-1451600000-init" % self.wf, {"job1": {"status": "new", "p": 1}})
        doc = self.get_status("%s-1451692740" % self.wf)
        self.assertEqual(doc["job1"]["status"], "failed")
        self.assertEqual(doc, self.get_status(self.wf, {"batch_id": 1451692740}))
        self.assertEqual(self.get_status("%s-1451600000-init" % self.wf),
                         {"job1": {"status": "new", "p": 1}})
        r = self.batchy.head("/get_status/%s-1451692740" % self.wf)
        self.assertEqual(r.status, 200, r)
        before = self.redis.dump()
        for path in ("/get_status/%s-1451692740?batch_id=1" % self.wf,
                     "/open_batch/%s-1451692740" % self.wf,
                     "/close_batch/%s-1451600000-init" % self.wf):
            with self.subTest(path=path):
                self.assert_error(self.batchy.get(path), 400)
        self.assert_error(self.batchy.get("/get_status/%s-42" % self.wf), 404,
                          "there is no snapshot '%s-42'" % self.wf)
        self.assertEqual(self.redis.dump(), before)

    def test_legacy_open_step_is_abandoned_in_its_legacy_snapshot(self):
        rec = {"status": "open", "from_date": "2016-01-01 23:59", "batch_start": "2016-01-02T23:59:00",
               "batch_end": None, "batch_id": 1451779140, "param1": "hello"}
        self.put(self.wf, {"job1": rec})
        self.put("%s-1451779140" % self.wf, {"job1": rec})
        before = utcnow()
        new = self.open_batch(self.wf)["job1"]
        after = utcnow()
        self.assertEqual(new["from_date"], "2016-01-01T23:59:00.000000")
        old = self.redis.hash_json("%s-1451779140" % self.wf)["job1"]
        self.assertEqual(old["status"], "abandoned")
        self.assert_time_near(old["batch_end"], before, after)
        self.assertEqual(old["param1"], "hello")

    def test_legacy_open_batch_closes(self):
        rec = {"status": "open", "from_date": "2016-01-01 23:59", "batch_start": "2016-01-02T23:59:00",
               "batch_end": None, "batch_id": 1451779140}
        self.put(self.wf, {"job1": rec})
        self.put("%s-1451779140" % self.wf, {"job1": rec})
        doc = self.close_batch(self.wf, {"batch_id": 1451779140})
        self.assertEqual(doc["job1"]["status"], "success")
        self.assertEqual(self.redis.hash_json("%s-1451779140" % self.wf)["job1"]["status"], "success")
        self.assertEqual(self.redis.hash_json(self.wf)["job1"]["status"], "success")

    def test_failure_status_is_not_open_for_close(self):
        self.put(self.wf, {"job1": {"status": "failure", "batch_id": 1451779140}})
        before = self.redis.dump()
        self.assert_error(self.call("close_batch", self.wf), 409)
        # a fail of an already-failed ("failure") step in its batch is a retry
        r = self.call("fail_batch", self.wf)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["job1"]["status"], "failed")
        self.assertEqual(self.redis.dump(), before)


class LenientTimesTest(ServiceTestCase):
    """Every time form SPEC section 2 reads, through open's from_date."""

    CASES = {
        "date_only": ("2026-03-05", "2026-03-05T00:00:00.000000"),
        "minutes_T": ("2026-03-05T10:20", "2026-03-05T10:20:00.000000"),
        "minutes_space": ("2026-03-05 10:20", "2026-03-05T10:20:00.000000"),
        "seconds": ("2026-03-05T10:20:30", "2026-03-05T10:20:30.000000"),
        "fraction_1": ("2026-03-05T10:20:30.5", "2026-03-05T10:20:30.500000"),
        "fraction_9": ("2026-03-05T10:20:30.123456789", "2026-03-05T10:20:30.123456"),
        "zulu": ("2026-03-05T10:20:30Z", "2026-03-05T10:20:30.000000"),
        "plus_colon": ("2026-03-05T10:20:30+02:00", "2026-03-05T08:20:30.000000"),
        "plus_compact": ("2026-03-05T10:20:30+0200", "2026-03-05T08:20:30.000000"),
        "minus_colon": ("2026-03-05T22:20:30-05:00", "2026-03-06T03:20:30.000000"),
        "minus_compact_minutes": ("2026-03-05 22:20-0530", "2026-03-06T03:50:00.000000"),
        "fraction_and_zone": ("2026-03-05T00:00:00.25+01:00", "2026-03-04T23:00:00.250000"),
        "canonical": ("2026-03-05T10:20:30.000001", "2026-03-05T10:20:30.000001"),
    }

    def test_lenient_time_forms_in_from_date(self):
        wf = self.unique("times")
        self.redis.set_state(wf, {name: {"status": "failed", "batch_id": 1772700000, "from_date": text}
                                  for name, (text, _) in self.CASES.items()})
        doc = self.open_batch(wf)
        for name, (text, expected) in self.CASES.items():
            with self.subTest(case=name, text=text):
                self.assertEqual(doc[name]["from_date"], expected)

    def test_lenient_time_forms_in_batch_start(self):
        wf = self.unique("times")
        self.redis.set_state(wf, {name: {"status": "success", "batch_id": 1772700000, "batch_start": text}
                                  for name, (text, _) in self.CASES.items()})
        doc = self.open_batch(wf)
        for name, (text, expected) in self.CASES.items():
            with self.subTest(case=name, text=text):
                self.assertEqual(doc[name]["from_date"], expected)

    def test_invalid_time_in_redis_is_a_json_error_and_changes_nothing(self):
        wf = self.unique("badtime")
        self.redis.set_state(wf, {"job1": {"status": "failed", "batch_id": 1772700000,
                                           "from_date": "last tuesday"}})
        before = self.redis.dump()
        r = self.call("open_batch", wf)
        self.assertGreaterEqual(r.status, 400, r)
        self.assertLess(r.status, 500, r)
        self.assert_error(r, r.status, contains="job1")
        self.assertEqual(self.redis.dump(), before)
        self.assert_service_up()


if __name__ == "__main__":
    unittest.main()
