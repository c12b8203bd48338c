"""
test_load.py - load_cfg (SPEC section 3): the repository's cfg/ examples,
YAML 1.1 scalar resolution as PyYAML's safe loader does it, anchors and merge
keys, validation errors with file:line:column, limits, and what load_cfg
writes into Redis.
"""
import glob
import os
import re
import shutil
import time
import unittest
from datetime import datetime, timedelta, timezone

import harness
from harness import ServiceTestCase, ORIGIN, fmt_time, parse_time, SLOW

LENIENT_RE = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?)?"
    r"(Z|[+-]\d\d:?\d\d)?$")


def parse_lenient(text):
    """The SPEC's lenient time reading, for computing expected values."""
    m = LENIENT_RE.match(text)
    if not m:
        raise ValueError(text)
    y, mo, d, h, mi, s, frac, off = m.groups()
    usec = int((frac or "0")[:6].ljust(6, "0"))
    t = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), usec,
                 tzinfo=timezone.utc)
    if off and off != "Z":
        sign = 1 if off[0] == "+" else -1
        digits = off[1:].replace(":", "")
        t -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return t


def expected_from_date(prev):
    """from_date of the first open after load, per SPEC section 4."""
    if prev.get("status") == "success" and prev.get("batch_start"):
        t = parse_lenient(prev["batch_start"]) - timedelta(hours=prev.get("reprocess_hours") or 0)
    elif prev.get("from_date"):
        t = parse_lenient(prev["from_date"])
    else:
        t = parse_time(ORIGIN)
    if prev.get("trunc_start") is True:
        t = t.replace(hour=0, minute=0, second=0, microsecond=0)
    return fmt_time(t)


def repo_examples():
    return sorted(glob.glob(os.path.join(harness.REPO_CFG_DIR, "*.yaml")) +
                  glob.glob(os.path.join(harness.REPO_CFG_DIR, "*.yml")))


class RepoExamplesTest(ServiceTestCase):
    def setUp(self):
        self.examples = repo_examples()
        self.assertTrue(self.examples, "no example workflows in %s" % harness.REPO_CFG_DIR)
        for path in self.examples:
            shutil.copy(path, self.cfg_dir)

    def test_repo_wf1_has_three_steps_success_reprocess_and_trunc(self):
        self.assertTrue(os.path.exists(os.path.join(harness.REPO_CFG_DIR, "wf1.yaml")), "cfg/wf1.yaml missing")
        doc = self.load("wf1")
        self.assertEqual(len(doc), 3, doc)
        statuses = sorted(rec["status"] for rec in doc.values())
        self.assertEqual(statuses, ["new", "new", "success"], doc)
        self.assertTrue(any(isinstance(r.get("reprocess_hours"), (int, float)) and
                            not isinstance(r.get("reprocess_hours"), bool) for r in doc.values()), doc)
        self.assertTrue(any(r.get("trunc_start") is True for r in doc.values()), doc)
        self.assertEqual(self.redis.hash_json("wf1"), doc)

    def test_every_repo_example_loads_and_opens_by_the_rules(self):
        for path in self.examples:
            wf = os.path.basename(path).rsplit(".", 1)[0]
            with self.subTest(example=wf):
                doc = self.load(wf)
                self.assertTrue(doc)
                for step, rec in doc.items():
                    self.assertIn(rec.get("status"), ("new", "open", "success", "failed"), step)
                self.assertEqual(self.redis.hash_json(wf), doc)
                opened = self.open_batch(wf)
                self.assertEqual(sorted(opened), sorted(doc))
                for step, rec in opened.items():
                    self.assertEqual(rec["from_date"], expected_from_date(doc[step]), step)
                    self.assertEqual(rec["status"], "open")
                for fmt in ("infa", "sh"):
                    r = self.call("open_batch", wf, suffix="/" + fmt)
                    self.assertEqual(r.status, 200, r)

    def test_repo_examples_keep_their_parameters(self):
        for path in self.examples:
            wf = os.path.basename(path).rsplit(".", 1)[0]
            with self.subTest(example=wf):
                doc = self.load(wf)
                opened = self.open_batch(wf)
                for step, rec in doc.items():
                    for name, value in rec.items():
                        if name in ("status", "from_date", "to_date", "batch_id", "batch_start",
                                    "batch_end", "error_message"):
                            continue
                        self.assertEqual(opened[step].get(name), value, "%s.%s" % (step, name))


class LoadTest(ServiceTestCase):
    def setUp(self):
        self.wf = self.unique("load")

    def load_error(self, text, status=422, ext=".yaml", line=None):
        """Write text as the workflow file, expect load_cfg to fail with a
        JSON error naming <wf><ext>:<line>:<column>; nothing may be written."""
        self.write_cfg(self.wf, text, ext)
        before = self.redis.dump()
        started = time.monotonic()
        r = self.call("load_cfg", self.wf)
        elapsed = time.monotonic() - started
        msg = self.assert_error(r, status)
        self.assertEqual(self.redis.dump(), before, "load_cfg wrote something on error")
        if status == 422:
            m = re.search(re.escape(self.wf + ext) + r":(\d+):(\d+)", msg)
            self.assertTrue(m, "no %s%s:<line>:<column> in %r" % (self.wf, ext, msg))
            if line is not None:
                self.assertEqual(int(m.group(1)), line, msg)
        return msg, elapsed

    # ---- what gets written
    def test_load_adds_status_new_only_where_missing(self):
        doc = self.load(self.wf, "a:\n  p: 1\nb:\n  status: failed\nc:\n")
        self.assertEqual(doc, {"a": {"p": 1, "status": "new"}, "b": {"status": "failed"},
                               "c": {"status": "new"}})

    def test_load_writes_latest_and_init_snapshot(self):
        t0 = int(time.time())
        doc = self.load(self.wf, "a:\n  p: x\nb:\n")
        t1 = int(time.time())
        self.assertEqual(self.redis.hash_json(self.wf), doc)
        inits = [k for k in self.redis.keys(self.wf + "-*")]
        self.assertEqual(len(inits), 1, inits)
        m = re.match(re.escape(self.wf) + r"-(\d+)-init$", inits[0])
        self.assertTrue(m, inits)
        self.assertGreaterEqual(int(m.group(1)), t0 - 1)
        self.assertLessEqual(int(m.group(1)), t1 + 1)
        self.assertEqual(self.redis.hash_json(inits[0]), doc)
        self.assertEqual(self.redis.cli("TYPE", self.wf), "hash")

    def test_load_replaces_old_state(self):
        self.load(self.wf, "a:\n  p: 1\nb:\nc:\n")
        self.open_batch(self.wf)
        self.close_batch(self.wf)
        doc = self.load(self.wf, "a:\n  q: 2\nd:\n")
        self.assertEqual(doc, {"a": {"q": 2, "status": "new"}, "d": {"status": "new"}})
        self.assertEqual(self.redis.hash_json(self.wf), doc)
        self.assertEqual(self.get_status(self.wf), doc)
        opened = self.open_batch(self.wf)
        self.assertEqual(opened["a"]["from_date"], ORIGIN)

    def test_failed_load_keeps_previous_state(self):
        doc = self.load(self.wf, "a:\n  p: 1\n")
        self.write_cfg(self.wf, "a:\n  p: [1, 2\n")
        before = self.redis.dump()
        self.assert_error(self.call("load_cfg", self.wf), 422)
        self.assertEqual(self.redis.dump(), before)
        self.assertEqual(self.get_status(self.wf), doc)

    def test_yml_extension_is_found(self):
        doc = self.load(self.wf, "a:\n  p: 1\n", ext=".yml")
        self.assertEqual(doc, {"a": {"p": 1, "status": "new"}})

    def test_missing_file_is_404(self):
        self.assert_error(self.call("load_cfg", self.wf), 404)
        self.assertEqual(self.redis.keys(self.wf + "*"), [])

    def test_file_over_one_mib_is_413(self):
        text = "a:\n  p: 1\n#" + "x" * (1024 * 1024) + "\n"
        self.load_error(text, status=413)

    def test_file_just_under_one_mib_loads(self):
        text = "a:\n  p: 1\n#" + "x" * (1024 * 1024 - 64) + "\n"
        self.assertLess(len(text), 1024 * 1024)
        self.assertEqual(self.load(self.wf, text), {"a": {"p": 1, "status": "new"}})

    # ---- YAML content
    def test_nested_values_are_stored_as_json(self):
        doc = self.load(self.wf, (
            "job:\n"
            "  conn: {host: db1, port: 5432, opts: {ssl: true}}\n"
            "  cols:\n"
            "    - id\n"
            "    - name: amount\n"
            "      type: [decimal, 12, 2]\n"
            "  empty_list: []\n"
            "  empty_map: {}\n"))
        self.assertEqual(doc["job"]["conn"], {"host": "db1", "port": 5432, "opts": {"ssl": True}})
        self.assertEqual(doc["job"]["cols"], ["id", {"name": "amount", "type": ["decimal", 12, 2]}])
        self.assertEqual(doc["job"]["empty_list"], [])
        self.assertEqual(doc["job"]["empty_map"], {})
        raw = self.redis.cli("HGET", self.wf, "job")
        self.assertIn('"conn": {"host": "db1", "port": 5432, "opts": {"ssl": true}}', raw)

    def test_anchors_aliases_and_merge_keys(self):
        doc = self.load(self.wf, (
            "base:\n"
            "  <<: &defaults\n"
            "    db: erp\n"
            "    retries: 3\n"
            "    tags: [a, b]\n"
            "  own: 1\n"
            "child:\n"
            "  <<: *defaults\n"
            "  retries: 5\n"
            "multi:\n"
            "  <<: [*defaults, {extra: x}]\n"
            "copy:\n"
            "  settings: *defaults\n"
            "  list: &l [1, 2]\n"
            "  again: *l\n"))
        self.assertEqual(doc["base"], {"db": "erp", "retries": 3, "tags": ["a", "b"], "own": 1,
                                       "status": "new"})
        self.assertEqual(doc["child"], {"db": "erp", "retries": 5, "tags": ["a", "b"],
                                        "status": "new"})
        self.assertEqual(doc["multi"], {"db": "erp", "retries": 3, "tags": ["a", "b"],
                                        "extra": "x", "status": "new"})
        self.assertEqual(doc["copy"], {"settings": {"db": "erp", "retries": 3, "tags": ["a", "b"]},
                                       "list": [1, 2], "again": [1, 2], "status": "new"})

    def test_plain_scalars_resolve_as_pyyaml_safe_loader(self):
        doc = self.load(self.wf, (
            "s:\n"
            "  y1: yes\n  y2: Yes\n  y3: YES\n  n1: no\n  on1: on\n  off1: Off\n"
            "  t1: true\n  f1: FALSE\n  t2: True\n"
            "  hex: 0x10\n  oct: 010\n  qoct: '010'\n  dqoct: \"010\"\n  bin: 0b101\n"
            "  under: 1_000\n  neg: -42\n  plus: +7\n  zero: 0\n"
            "  f15: 1.5\n  fneg: -2.\n  fdot: .5\n  fexp: 1.0e+3\n"
            "  e3: 1e3\n  nine: 09\n"
            "  tilde: ~\n  nul: null\n  Nul: Null\n  empty:\n"
            "  date: 2026-01-01\n  dt: 2026-01-01 10:00:00\n"
            "  y: y\n  ver: 1.2.3\n  quoted_yes: \"yes\"\n  tagged: !!str 123\n"
            "  text: hello world\n"))
        s = doc["s"]
        expected = {
            "y1": True, "y2": True, "y3": True, "n1": False, "on1": True, "off1": False,
            "t1": True, "f1": False, "t2": True,
            "hex": 16, "oct": 8, "qoct": "010", "dqoct": "010", "bin": 5,
            "under": 1000, "neg": -42, "plus": 7, "zero": 0,
            "f15": 1.5, "fneg": -2.0, "fdot": 0.5, "fexp": 1000.0,
            "e3": "1e3", "nine": "09",
            "tilde": None, "nul": None, "Nul": None, "empty": None,
            "date": "2026-01-01", "dt": "2026-01-01 10:00:00",
            "y": "y", "ver": "1.2.3", "quoted_yes": "yes", "tagged": "123",
            "text": "hello world", "status": "new",
        }
        for key, value in expected.items():
            with self.subTest(key=key):
                self.assertIn(key, s)
                self.assertEqual(s[key], value)
                self.assertIs(type(s[key]) is bool, type(value) is bool, "%s: %r" % (key, s[key]))
                self.assertIs(isinstance(s[key], str), isinstance(value, str), "%s: %r" % (key, s[key]))

    def test_special_fields_in_file_are_accepted(self):
        doc = self.load(self.wf, (
            "a:\n"
            "  status: success\n  batch_id: 1767225600\n"
            "  from_date: 2026-01-01\n  to_date: \"2026-01-01 06:00\"\n"
            "  batch_start: \"2026-01-01T06:00:00+02:00\"\n  batch_end: \"2026-01-01T06:10:00.5Z\"\n"
            "  reprocess_hours: 1.5\n  trunc_start: false\n  error_message: null\n"
            "  infa_section: S_A\n"
            "b:\n  status: failed\n  reprocess_hours: 0\n  trunc_start: yes\n"))
        self.assertEqual(doc["a"]["status"], "success")
        self.assertEqual(doc["a"]["batch_id"], 1767225600)
        self.assertEqual(doc["b"]["trunc_start"], True)
        opened = self.open_batch(self.wf)
        # batch_start 06:00+02:00 is 04:00 UTC, minus 1.5 hours
        self.assertEqual(opened["a"]["from_date"], "2026-01-01T02:30:00.000000")
        self.assertEqual(opened["b"]["from_date"], "1776-07-04T00:00:00.000000")

    def test_unicode_names_and_values(self):
        doc = self.load(self.wf, "Übersicht:\n  note: \"héllo ✓\"\n  ключ: значение\n")
        self.assertEqual(doc, {"Übersicht": {"note": "héllo ✓", "ключ": "значение", "status": "new"}})
        self.assertEqual(self.redis.hash_json(self.wf), doc)

    def test_billion_laughs_is_422_quickly(self):
        lines = ["step:", "  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
        prev = "a"
        for name in "bcdefghi":
            lines.append("  %s: &%s [%s]" % (name, name, ", ".join(["*" + prev] * 9)))
            prev = name
        msg, _ = self.load_error("\n".join(lines) + "\n", status=422)
        self.assertIn("grows past", msg)
        self.assert_service_up()

    def test_aliases_repeating_a_long_string_are_422(self):
        # few values but much text: 200 copies of a 200 KB string
        text = 'step:\n  big: &a "%s"\n  list: [%s]\n' % ("x" * 200000, ", ".join(["*a"] * 200))
        msg, _ = self.load_error(text, status=422)
        self.assertIn("aliases copy more than", msg)
        self.assert_service_up()

    def test_deep_nesting_is_an_error_not_a_crash(self):
        text = "step:\n  deep: " + "[" * 5000 + "]" * 5000 + "\n"
        self.write_cfg(self.wf, text)
        r = self.call("load_cfg", self.wf)
        self.assert_error(r, 422)
        self.assert_service_up()

    # ---- validation errors: 422 with file:line:column
    def test_top_level_sequence_is_422(self):
        self.load_error("- a\n- b\n", line=1)

    def test_top_level_scalar_is_422(self):
        self.load_error("hello\n", line=1)

    def test_step_with_scalar_value_is_422(self):
        self.load_error("job1:\n  a: 1\njob2: hello\n", line=3)

    def test_step_with_sequence_value_is_422(self):
        self.load_error("job1:\n  a: 1\njob2: [a, b]\n", line=3)

    def test_invalid_dates_are_422(self):
        for field in ("from_date", "to_date", "batch_start", "batch_end"):
            for value in ("yesterday", "2026-13-01", "2026-02-30T00:00", "2026-01-01T25:00",
                          "2026-01-01T10:00:00+2", "1.5", "true"):
                with self.subTest(field=field, value=value):
                    self.load_error("job1:\n  a: 1\njob2:\n  b: 2\n  %s: %s\n" % (field, value), line=5)

    def test_invalid_reprocess_hours_is_422(self):
        for value in ("-1", "\"2\"", "two", "true", "[1]", ".inf"):
            with self.subTest(value=value):
                self.load_error("job1:\n  reprocess_hours: %s\n" % value, line=2)

    def test_invalid_trunc_start_is_422(self):
        for value in ("maybe", "1", "\"true\"", "0"):
            with self.subTest(value=value):
                self.load_error("job1:\n  x: 1\n  trunc_start: %s\n" % value, line=3)

    def test_invalid_status_is_422(self):
        for value in ("running", "\"\"", "1", "abandoned_x"):
            with self.subTest(value=value):
                self.load_error("job1:\n  status: %s\n" % value, line=2)

    def test_invalid_batch_id_is_422(self):
        for value in ("abc", "1.5", "\"123\"", "true"):
            with self.subTest(value=value):
                self.load_error("job1:\n  batch_id: %s\n" % value, line=2)

    def test_duplicate_keys_are_422(self):
        self.load_error("job1:\n  a: 1\njob2:\n  b: 2\njob1:\n  c: 3\n", line=5)
        self.load_error("job1:\n  a: 1\n  b: 2\n  a: 3\n", line=4)

    def test_multiple_documents_are_422(self):
        self.load_error("job1:\n  a: 1\n---\njob2:\n  b: 2\n")

    def test_inf_nan_and_huge_integers_are_422(self):
        for value in (".inf", "-.inf", ".nan", ".NaN", "9007199254740993", "-9007199254740993",
                      "123456789012345678901234567890"):
            with self.subTest(value=value):
                self.load_error("job1:\n  a: 1\n  big: %s\n" % value, line=3)

    def test_integers_up_to_two_to_the_53_keep_every_digit(self):
        doc = self.load(self.wf, "job1:\n  big: 9007199254740992\n  small: -9007199254740992\n"
                                 "  id16: 1234567890123456\n  id17: 9007199254740991\n")
        self.assertEqual(doc["job1"]["big"], 9007199254740992)
        self.assertEqual(doc["job1"]["small"], -9007199254740992)
        self.assertEqual(doc["job1"]["id16"], 1234567890123456)
        self.assertEqual(doc["job1"]["id17"], 9007199254740991)
        self.assertIn('"id16": 1234567890123456', self.redis.cli("HGET", self.wf, "job1"))

    def test_non_standard_tags_are_422(self):
        for value in ("!!python/object:os.system ls", "!custom x", "!!python/name:os.system"):
            with self.subTest(value=value):
                self.load_error("job1:\n  a: 1\n  t: %s\n" % value, line=3)

    def test_syntax_error_is_422_with_position(self):
        self.load_error("job1:\n  a: 1\n  b: [1, 2\njob2:\n")
        self.load_error("job1:\n  a: \"unclosed\n")
        self.load_error("job1:\n  a: 1\n b: 2\n")

    def test_yml_error_names_the_yml_file(self):
        self.load_error("job1: 5\n", ext=".yml", line=1)

    def test_bad_step_names_are_refused(self):
        for name in ("a[1]", "[x]", "\"\""):
            with self.subTest(name=name):
                self.write_cfg(self.wf, "%s:\n  a: 1\n" % name)
                before = self.redis.dump()
                self.assert_error(self.call("load_cfg", self.wf), (400, 422))
                self.assertEqual(self.redis.dump(), before)

    def test_empty_step_value_has_only_status(self):
        doc = self.load(self.wf, "job1:\njob2: ~\njob3: {}\n")
        self.assertEqual(doc, {"job1": {"status": "new"}, "job2": {"status": "new"},
                               "job3": {"status": "new"}})


if __name__ == "__main__":
    unittest.main()
