"""
test_state_checks.py - state edited by hand is judged one way everywhere,
and names that would pass for special fields never override them.

- HandEditedStateTest: a workflow hash (and the snapshot of its batch)
  holding, for one step, a batch_id that is not a whole number from 0 to
  999999999999999, text after the JSON object, a step name or a string
  that is not UTF-8, or \\u0000: every endpoint that reads it (get_status,
  with ?batch_id= too, open_batch in each format, close_batch, fail_batch,
  with step= or without) answers the same 409 naming the step and the
  field, as valid UTF-8 JSON, and writes nothing; scripts/check-state
  flags the same step and field; load_cfg, as the message advises,
  replaces it. What stays readable (a batch_id as
  digits in a string) reads everywhere, and check-state agrees with it.
- LookAlikeTest: parameters stored before close_batch refused names such as
  FROM_DATE, and a parameter of another step printed as a special field in
  sh (step "a_from", parameter "date": BATCHY_A_FROM_DATE), do not override
  the real field after `eval` of the sh output, nor in infa.
- AgreementTest: for each of a list of hand-written values, check-state
  flags the workflow exactly when Batchy refuses it.
- StepLimitTest: 10,000 steps load; 10,001 are a 422 that writes nothing.
"""
import json
import os
import subprocess
import tempfile
import unittest

import harness
from harness import REPO_ROOT, ServiceTestCase

CHECK_STATE = os.path.join(REPO_ROOT, "scripts", "check-state")
BATCH = 1767225600
GOOD = {"status": "open", "batch_id": BATCH, "from_date": "2025-12-31T00:00:00.000000",
        "to_date": "2026-01-01T00:00:00.000000", "batch_start": "2026-01-01T00:00:00.000000",
        "batch_end": None, "p": "x"}


def bad_case(slug, step, value, said, flagged=None):
    """A hand edit: step (str; "\\udcXX" stands for the byte XX, which is not
    UTF-8) holding value (likewise), what Batchy's 409 says after "step
    '<step>' of key '<key>' in Redis" (or the whole text, with {key}, when it
    starts with "step name"), and what check-state says after "<key>: "
    (default: the same)."""
    return (slug, step, value, said, flagged)


# Each a test method of HandEditedStateTest (added below).
BAD = [
    bad_case("batch_id_fraction", "job2", '{"status":"open","batch_id":1.5}',
             "field 'batch_id' is 1.5, not a whole number from 0 to 999999999999999"),
    bad_case("batch_id_negative", "job2", '{"status":"open","batch_id":-5}',
             "field 'batch_id' is -5, not a whole number from 0 to 999999999999999"),
    bad_case("batch_id_1e20", "job2", '{"status":"open","batch_id":1e20}',
             "field 'batch_id' is 1e+20, not a whole number",
             "step 'job2': field 'batch_id' is 1e+20, not a whole number"),
    bad_case("batch_id_text_not_digits", "job2", '{"status":"open","batch_id":"17x"}',
             "field 'batch_id' is \"17x\", not a whole number"),
    bad_case("batch_id_boolean", "job2", '{"status":"open","batch_id":true}',
             "field 'batch_id' is true, not a whole number"),
    bad_case("text_after_the_object", "job2", '{"status":"open"} x',
             "the record has text after its JSON object"),
    bad_case("step_name_not_utf8", "jo\udcffb2", '{"status":"open"}',
             "step name 'jo?b2' of key '{key}' in Redis is not valid UTF-8",
             "step name 'jo?b2' is not valid UTF-8"),
    bad_case("nul_in_a_value", "job2", '{"status":"open","note":"a\\u0000b"}',
             "field 'note' holds \\u0000"),
    bad_case("nul_nested_in_a_key", "job2", '{"status":"open","opts":{"x":[{"k\\u0000":1}]}}',
             "field 'opts' holds \\u0000"),
    bad_case("nul_in_a_field_name", "job2", '{"status":"open","a\\u0000b":1}',
             "the name of field 'a' holds \\u0000"),
    # judged before the last copy of a key is kept, by both
    bad_case("nul_in_an_earlier_copy_of_a_key", "job2",
             '{"status":"open","note":"\\u0000","note":"x"}', "field 'note' holds \\u0000"),
    bad_case("value_not_utf8", "job2", '{"status":"open","note":"caf\udce9"}',
             "field 'note' is not valid UTF-8"),
]

# What reads <wf>, and what reads its batch's snapshot.
WF_CALLS = ["/get_status/{wf}", "/open_batch/{wf}", "/open_batch/{wf}/sh",
            "/open_batch/{wf}/infa", "/close_batch/{wf}", "/close_batch/{wf}?step=job1",
            "/fail_batch/{wf}?error=x", "/fail_batch/{wf}?step=job1"]
SNAPSHOT_CALL = "/get_status/{wf}?batch_id=%d" % BATCH


def run_check_state(redis):
    out = subprocess.run([CHECK_STATE, redis.url], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60)
    return out.returncode, out.stdout.decode("utf-8", "replace")


def compact(rec):
    return json.dumps(rec, separators=(",", ":"))


class HandEditedStateTest(ServiceTestCase):
    def put(self, wf, steps):
        """<wf> and the snapshot of BATCH both hold steps {name: text},
        until the test ends (check-state reads every key)."""
        self.addCleanup(self.redis.cli, "DEL", wf, "%s-%d" % (wf, BATCH))
        self.redis.set_state(wf, steps)
        self.redis.set_state("%s-%d" % (wf, BATCH), steps)

    def expected(self, said, key, step):
        if said.startswith("step name"):
            return said.format(key=key)
        return "step '%s' of key '%s' in Redis: %s" % (step, key, said)

    def check_case(self, step, value, said, flagged):
        wf = self.unique("hand")
        self.put(wf, {"job1": compact(GOOD), step: value})
        before = self.redis.dump()
        shown = step.replace("\udcff", "?")
        messages = set()
        for call in WF_CALLS + [SNAPSHOT_CALL]:
            path = call.format(wf=wf)
            r = self.batchy.get(path)
            # assert_error reads the body as strict UTF-8 JSON
            message = self.assert_error(r, 409)
            key = "%s-%d" % (wf, BATCH) if "batch_id=" in path else wf
            self.assertIn(self.expected(said, key, shown), message, path)
            self.assertIn("fix it with redis-cli or reload the workflow with load_cfg", message)
            if key == wf:
                messages.add(message)
        self.assertEqual(len(messages), 1, "endpoints disagree: %s" % messages)
        self.assertEqual(self.redis.dump(), before, "a refused call wrote to Redis")

        rc, out = run_check_state(self.redis)
        self.assertEqual(rc, 1, out)
        what = flagged or (said if said.startswith("step name") else
                           "step '%s': %s" % (shown, said))
        for key in (wf, "%s-%d" % (wf, BATCH)):
            self.assertIn("%s: %s" % (key, what), out)
        # and nothing else about this workflow: job1 is fine
        self.assertNotIn("step 'job1'", out)
        # what the message advises repairs it
        self.load(wf, "job1:\n")
        self.assertEqual(self.get_status(wf)["job1"]["status"], "new")

    def test_batch_id_as_digits_reads_everywhere_and_check_state_agrees(self):
        wf = self.unique("digits")
        rec = dict(GOOD, batch_id=str(BATCH))
        self.put(wf, {"job1": compact(rec), "job2": compact(dict(GOOD, batch_id=BATCH * 1.0))})
        rc, out = run_check_state(self.redis)
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.get_status(wf)["job1"]["batch_id"], str(BATCH))
        self.assertEqual(self.get_status(wf, {"batch_id": BATCH})["job2"]["batch_id"], BATCH)
        doc = self.close_batch(wf, {"batch_id": BATCH})
        self.assertEqual(doc["job1"]["status"], "success")
        self.assertEqual(doc["job2"]["status"], "success")
        rc, out = run_check_state(self.redis)
        self.assertEqual(rc, 0, out)
        self.assertIn("all agree", out)


# Values of a record, read (200) or refused (409) by Batchy, and flagged by
# check-state exactly when refused. (cJSON, Batchy's reader, also takes
# numbers written 01 or 1. and control bytes between tokens, which are not
# JSON: check-state flags those, and they are left out here.)
AGREEMENT = [
    ('{"status":"open","batch_id":%d}' % BATCH, 200),
    ('{"status":"open","batch_id":"%d"}' % BATCH, 200),
    ('{"status":"open","batch_id":%d.0}' % BATCH, 200),
    ('{"status":"open","batch_id":-0}', 200),
    ('{"status":"open","batch_id":null}', 200),
    ('{"status":"open","batch_id":1.5}', 409),
    ('{"status":"open","batch_id":" 12"}', 409),
    ('{"status":"open","batch_id":"0x10"}', 409),
    ('{"status":"open","batch_id":"12.0"}', 409),
    ('{"status":"open","batch_id":NaN}', 409),
    ('{"status":"open","batch_id":1e999}', 409),
    ('{"status":"open","batch_id":1000000000000000}', 409),
    ('{"status":"open","a":"x\ty"}', 200),
    ('{"status":"open","a":1E2}', 200),
    ('{"status": "open", "a": 1, "a": 2}', 200),
    (' {"status":"open"} \n', 200),
    ('\x01{"status":"open"}', 409),
    ('{"status":"open"}\x01', 409),
    ('{"status":"open"}{}', 409),
    ('{"status":"open","a":[1,]}', 409),
    ('{"status":"open","a":"\\ud800"}', 409),
    ('{"status":"open","a":"\\ud83d\\ude00"}', 200),
    ('{"status":"open","a":"\\\\u0000"}', 200),
    ('{"status":"open","a":{"b":"\\u0000"}}', 409),
    ('{"status":"open","a":"caf\udce9"}', 409),
    ('{"status":"open","\udcff":1}', 409),
]


class AgreementTest(ServiceTestCase):
    def test_check_state_flags_exactly_what_batchy_refuses(self):
        for n, (value, status) in enumerate(AGREEMENT):
            with self.subTest(value=value):
                wf = "agree%d" % n
                keys = (wf, "%s-%d" % (wf, BATCH), "%s-1-init" % wf)
                self.addCleanup(self.redis.cli, "DEL", *keys)
                for key in keys:
                    self.redis.set_state(key, {"job1": value})
                r = self.batchy.get("/get_status/" + wf)
                self.assertEqual(r.status, status, r)
                rc, out = run_check_state(self.redis)
                self.assertEqual(rc, 0 if status == 200 else 1, out)
                self.redis.cli("DEL", *keys)


def _add_bad_cases():
    for slug, step, value, said, flagged in BAD:
        def test(self, step=step, value=value, said=said, flagged=flagged):
            self.check_case(step, value, said, flagged)
        test.__name__ = "test_every_endpoint_and_check_state_refuse_" + slug
        setattr(HandEditedStateTest, test.__name__, test)


_add_bad_cases()


def eval_sh(text, names):
    """The values of the shell variables `names` after eval of text."""
    script = 'set -eu\neval "$BODY"\nprintf "%s\\0" ' + " ".join('"$%s"' % n for n in names)
    with tempfile.TemporaryDirectory() as cwd:
        out = subprocess.run(["sh", "-c", script], cwd=cwd,
                             env={"BODY": text, "PATH": os.environ["PATH"]},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    if out.returncode != 0:
        raise AssertionError("eval failed: %r" % out.stderr)
    return dict(zip(names, out.stdout.decode("utf-8").split("\0")))


def infa_last(text, section, name):
    """The value of the last line of `section` whose parameter equals name
    without case, as a reader keeping the last copy sees it."""
    value, current = None, None
    for line in text.split("\n"):
        if line.startswith("["):
            current = line[1:-1]
        elif current == section and line.startswith("$$"):
            n, _, v = line[2:].partition("=")
            if n.lower() == name.lower():
                value = v
    return value


class LookAlikeTest(ServiceTestCase):
    def test_a_stored_look_alike_does_not_override_the_window_after_eval(self):
        # stored by hand, or by a close_batch before such names were refused
        wf = self.unique("look")
        # (close_batch appended them after the fields)
        rec = dict(GOOD, status="success", FROM_DATE="1999-01-01", **{"Batch-Id": "7"})
        self.redis.set_state(wf, {"job1": compact(rec)})
        r = self.call("open_batch", wf, suffix="/sh")
        self.assertEqual(r.status, 200, r)
        state = self.get_status(wf)["job1"]
        self.assertEqual(state["from_date"], GOOD["batch_start"])  # success: from batch_start
        got = eval_sh(r.text, ["BATCHY_JOB1_FROM_DATE", "BATCHY_JOB1_BATCH_ID", "BATCHY_BATCH_ID"])
        self.assertEqual(got, {"BATCHY_JOB1_FROM_DATE": state["from_date"],
                               "BATCHY_JOB1_BATCH_ID": str(state["batch_id"]),
                               "BATCHY_BATCH_ID": str(state["batch_id"])})
        self.ok("close_batch", wf)
        r = self.call("open_batch", wf, suffix="/infa")
        self.assertEqual(r.status, 200, r)
        state = self.get_status(wf)["job1"]
        self.assertEqual(infa_last(r.text, "job1", "from_date"),
                         harness.python_time(state["from_date"]))
        self.assertEqual(infa_last(r.text, "job1", "batch_id"), str(state["batch_id"]))

    def test_a_parameter_of_another_step_does_not_override_a_field_after_eval(self):
        # step "a_from", parameter "date" prints as BATCHY_A_FROM_DATE, the
        # from_date of step "a"
        wf = self.unique("cross")
        self.load(wf, "a:\n  from_date: 2026-01-01\na_from:\n")
        self.open_batch(wf)
        self.close_batch(wf, {"step": "a_from", "date": "1999-01-01"})
        self.close_batch(wf, {"step": "a"})
        r = self.call("open_batch", wf, suffix="/sh")
        self.assertEqual(r.status, 200, r)
        state = self.get_status(wf)
        self.assertEqual(state["a_from"]["date"], "1999-01-01")
        got = eval_sh(r.text, ["BATCHY_A_FROM_DATE", "BATCHY_A_FROM_STATUS"])
        self.assertEqual(got, {"BATCHY_A_FROM_DATE": state["a"]["from_date"],
                               "BATCHY_A_FROM_STATUS": "open"})

    def test_a_step_named_batch_does_not_override_the_batch_id_after_eval(self):
        wf = self.unique("hdr")
        self.load(wf, "batch:\n")
        self.open_batch(wf)
        self.close_batch(wf, {"id": "1"})
        r = self.call("open_batch", wf, suffix="/sh")
        self.assertEqual(r.status, 200, r)
        state = self.get_status(wf)
        got = eval_sh(r.text, ["BATCHY_BATCH_ID", "BATCHY_WORKFLOW"])
        self.assertEqual(got, {"BATCHY_BATCH_ID": str(state["batch"]["batch_id"]),
                               "BATCHY_WORKFLOW": wf})


class StepLimitTest(ServiceTestCase):
    def test_10000_steps_load_and_10001_write_nothing(self):
        wf = self.unique("steps")
        doc = self.load(wf, "".join("s%05d:\n" % i for i in range(1, 10001)))
        self.assertEqual(len(doc), 10000)
        self.assertEqual(self.redis.cli("HLEN", wf), "10000")
        before = self.redis.dump()
        self.write_cfg(wf, "".join("s%05d:\n" % i for i in range(1, 10002)))
        r = self.batchy.get("/load_cfg/" + wf)
        self.assert_error(r, 422, "%s.yaml:10001:1: more than 10000 steps" % wf)
        self.assertEqual(self.redis.dump(), before, "a refused load_cfg wrote to Redis")


if __name__ == "__main__":
    unittest.main()
