"""Fidelity to the original service (SPEC section 15), with the original's
own libraries as the reference: PyYAML reads the workflow files and
Python's json module writes what the original would have stored, byte for
byte (fidelity_ref.py, run by Debian's /usr/bin/python3)."""
import json
import os
import random
import subprocess
import unittest

from datetime import datetime, timedelta, timezone

from harness import (PROMPT, REPO_ROOT, OwnBatchyMixin, ServiceTestCase, faketime_lib,
                     parse_time)

REF = os.path.join(REPO_ROOT, "tests", "integration", "fidelity_ref.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-yaml


def reference(seed, files, steps):
    out = subprocess.run([SYSTEM_PYTHON, REF, str(seed), str(files), str(steps)],
                         check=True, capture_output=True, timeout=120)
    return json.loads(out.stdout)


class FidelityTestCase(ServiceTestCase):

    def setUp(self):
        self.wf = self.unique("fidelity")


class RedisValuesTest(FidelityTestCase):

    def test_generated_workflows_are_stored_as_the_original_stored_them(self):
        seed = random.randrange(1 << 30)
        cases = reference(seed, 25, 4)
        values = 0
        for i, case in enumerate(cases):
            wf = "fid%d" % i
            with self.subTest(seed=seed, file=i):
                self.write_cfg(wf, case["yaml"])
                r = self.batchy.get("/load_cfg/" + wf)
                self.assertEqual(r.status, 200, "%s\n%s" % (r, case["yaml"]))
                stored = self.redis.dump().get(wf, {})
                self.assertEqual(sorted(stored), sorted(case["steps"]))
                for step, want in case["steps"].items():
                    self.assertEqual(stored[step], want,
                                     "seed %d, file %d, step %s of\n%s" % (seed, i, step, case["yaml"]))
                    values += want.count(": ") + want.count(", ")
        # a few hundred keys and values at least, in every run
        self.assertGreater(values, 300)

    def test_a_close_rewrites_values_as_the_original_did(self):
        self.write_cfg(self.wf, 'job1:\n  f: 1.0\n  g: 1.5e+3\n  u: "h\u00e9llo \U0001F600"\n'
                                '  n: {"on": [0.30000000000000004, 7]}\n')
        self.load(self.wf)
        self.ok("open_batch", self.wf)
        self.ok("close_batch", self.wf, {"note": "d\u00e9j\u00e0 vu"})
        text = self.redis.cli("HGET", self.wf, "job1")
        self.assertEqual(text, json.dumps(json.loads(text)))
        rec = json.loads(text)
        self.assertEqual(list(rec)[:4], ["f", "g", "u", "n"])
        self.assertIn('"f": 1.0, "g": 1500.0, "u": "h\\u00e9llo \\ud83d\\ude00", '
                      '"n": {"on": [0.30000000000000004, 7]}', text)
        self.assertIn('"note": "d\\u00e9j\\u00e0 vu"', text)
        self.assertIsInstance(rec["f"], float)

    def test_compact_json_from_earlier_versions_reads_and_keeps_its_numbers(self):
        self.redis.set_state(self.wf, {"job1": '{"status":"new","f":2.50,"i":12345678901234567,'
                                               '"u":"\u00e9"}'})
        r = self.batchy.get("/open_batch/" + self.wf)
        self.assertEqual(r.status, 200, r)
        text = self.redis.cli("HGET", self.wf, "job1")
        self.assertIn('"f": 2.5, "i": 12345678901234567, "u": "\\u00e9"', text)


class FloatsStayFloatsTest(FidelityTestCase):

    def test_floats_are_floats_in_redis_json_answers_and_infa(self):
        self.write_cfg(self.wf, "job1:\n  a: 1.0\n  b: 1.5e+3\n  c: 0.30000000000000004\n"
                                "  d: 7\n  e: 1_000.25\n")
        self.load(self.wf)
        stored = self.redis.cli("HGET", self.wf, "job1")
        self.assertIn('"a": 1.0, "b": 1500.0, "c": 0.30000000000000004, "d": 7, "e": 1000.25',
                      stored)
        r = self.batchy.get("/get_status/" + self.wf)
        self.assertEqual(r.status, 200)
        for text in ('"a":\t1.0', '"b":\t1500.0', '"c":\t0.30000000000000004', '"d":\t7'):
            self.assertIn(text, r.text)
        doc = r.json()
        self.assertIsInstance(doc["job1"]["a"], float)
        self.assertIsInstance(doc["job1"]["d"], int)
        infa = self.batchy.get("/open_batch/%s/infa" % self.wf).text
        for line in ("$$a=1.0\n", "$$b=1500.0\n", "$$c=0.30000000000000004\n", "$$d=7\n"):
            self.assertIn(line, infa)


class KeysTest(FidelityTestCase):

    def test_keys_resolve_as_pyyaml_and_are_written_as_json_dumps_writes_them(self):
        self.write_cfg(self.wf, "job1:\n  p:\n    on: 1\n    ~: 2\n    0x10: 3\n    010: 4\n"
                                "    1.5: 5\n    !!str 0x11: 6\n")
        self.load(self.wf)
        self.assertIn('"p": {"true": 1, "null": 2, "16": 3, "8": 4, "1.5": 5, "0x11": 6}',
                      self.redis.cli("HGET", self.wf, "job1"))

    def test_keys_equal_after_resolution_are_422_and_change_nothing(self):
        self.load(self.wf, "job1:\n  a: 1\n")
        before = self.redis.dump()
        self.write_cfg(self.wf, "job1:\n  p: {on: 1, true: 2}\n")
        r = self.batchy.get("/load_cfg/" + self.wf)
        self.assertEqual(r.status, 422, r)
        self.assertIn('duplicate key \\"true\\"', r.text)
        self.assertEqual(self.redis.dump(), before)


class FaketimeTest(OwnBatchyMixin, unittest.TestCase):
    """Batchy under libfaketime, as ETL test harnesses run it."""
    cfg_files = {"wf1.yaml": "job1:\n  p: 1\n"}

    def test_batchy_starts_under_faketime_and_opens_a_batch_at_the_faked_time(self):
        fake = datetime(2031, 3, 14, 1, 59, 26, tzinfo=timezone.utc)
        asan = os.environ.get("ASAN_OPTIONS", "")
        # What `faketime @<epoch> batchy` sets up, in batchy's own process
        # (the faketime command would stand between the test and batchy's
        # signals). The monotonic clock is faked too, as the command does.
        # ASan refuses a library preloaded before its runtime unless told
        # not to check; other builds ignore ASAN_OPTIONS.
        b = self.start_batchy(env={
            "LD_PRELOAD": faketime_lib(),
            "FAKETIME_FMT": "%s",
            "FAKETIME": "@%d" % int(fake.timestamp()),
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"})
        self.assertEqual(b.get("/load_cfg/wf1").status, 200)
        r = b.get("/open_batch/wf1")
        self.assertEqual(r.status, 200, r)
        rec = r.json()["job1"]
        start = parse_time(rec["batch_start"])
        # the faked clock runs on from `fake`; a generous bound for valgrind
        self.assertTrue(fake <= start <= fake + timedelta(seconds=60 + 10 * PROMPT), start)
        self.assertEqual(rec["batch_id"], int(start.timestamp()))


if __name__ == "__main__":
    unittest.main()
