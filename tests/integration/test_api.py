"""
test_api.py - every endpoint, format, method and error status of the HTTP API
(SPEC section 5), the token, and the access log.
"""
import os
import re
import subprocess
import tempfile
import time
import unittest
import urllib.parse

import harness
from harness import ServiceTestCase, VERSION, SLOW, q

THREE = "job1:\n  param1: hello\njob2:\n  param2: world\njob3:\n"


def parse_infa(text):
    """[(section, [(name, value), ...]), ...] of an infa parameter file."""
    sections = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        if line.startswith("[") and line.endswith("]"):
            sections.append((line[1:-1], []))
            continue
        m = re.match(r"^\$\$([^=]+)=(.*)$", line)
        if not m or not sections:
            raise AssertionError("bad infa line: %r in\n%s" % (line, text))
        sections[-1][1].append((m.group(1), m.group(2)))
    return sections


class IndexAndHealthTest(ServiceTestCase):
    def assert_index(self, r):
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.content_type.startswith("text/plain"), r)
        self.assertEqual(r.body, ("Batchy %s\n" % VERSION).encode())

    def test_index_is_plain_text_batchy_version(self):
        self.assert_index(self.batchy.get("/index"))

    def test_root_answers_like_index(self):
        self.assert_index(self.batchy.get("/"))

    def test_index_with_trailing_slash(self):
        self.assert_index(self.batchy.get("/index/"))

    def test_index_by_post(self):
        self.assert_index(self.batchy.post("/index"))

    def test_head_index_has_headers_and_no_body(self):
        r = self.batchy.head("/index")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.content_type.startswith("text/plain"), r)
        self.assertEqual(r.body, b"")

    def test_healthz_ok_when_redis_answers(self):
        r = self.batchy.get("/healthz")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.content_type.startswith("application/json"), r)
        self.assertEqual(r.json(), {"status": "ok", "notices": True, "held": 0, "streams": 0,
                                    "token": False})

    def test_unknown_endpoint_is_404_json(self):
        for path in ("/nope", "/nope/wf1", "/index.html", "/get_statuses/wf1"):
            with self.subTest(path=path):
                self.assert_error(self.batchy.get(path), 404)

    def test_other_methods_are_405_json(self):
        for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
            for path in ("/index", "/get_status/wf1", "/open_batch/wf1", "/healthz"):
                with self.subTest(method=method, path=path):
                    self.assert_error(self.batchy.request(method, path), 405)

    def test_query_string_of_100kb_gets_4xx_and_service_stays_up(self):
        path = "/get_status/wf1?x=" + "a" * 100000
        try:
            r = self.batchy.get(path, timeout=5 * SLOW)
            self.assertGreaterEqual(r.status, 400, r)
            self.assertLess(r.status, 500, r)
        except ConnectionError:
            pass  # closing the connection on an oversized request is fine too
        self.assert_service_up()


class WorkflowApiTest(ServiceTestCase):
    def setUp(self):
        self.wf = self.unique("api")
        self.load(self.wf, THREE)

    # ---- get_status
    def test_get_status_answers_loaded_document(self):
        doc = self.get_status(self.wf)
        self.assertEqual(doc, {
            "job1": {"param1": "hello", "status": "new"},
            "job2": {"param2": "world", "status": "new"},
            "job3": {"status": "new"},
        })

    def test_get_status_by_post_head_and_trailing_slash(self):
        expected = self.get_status(self.wf)
        self.assertEqual(self.ok("get_status", self.wf, method="POST"), expected)
        self.assertEqual(self.ok("get_status", self.wf, suffix="/"), expected)
        r = self.call("get_status", self.wf, method="HEAD")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.content_type.startswith("application/json"), r)
        self.assertEqual(r.body, b"")

    def test_get_status_json_is_pretty_printed_with_steps_in_byte_order(self):
        wf = self.unique("order")
        self.write_cfg(wf, "b:\n  x: 1\nB:\n  x: 2\na:\n  x: 3\n_x:\n  x: 4\nZ1:\n  x: 5\n")
        for endpoint in ("load_cfg", "get_status", "open_batch", "close_batch"):
            with self.subTest(endpoint=endpoint):
                r = self.call(endpoint, wf)
                self.assertEqual(r.status, 200, r)
                self.assertTrue(r.content_type.startswith("application/json"), r)
                self.assertEqual(list(r.json(ordered=True)), ["B", "Z1", "_x", "a", "b"])
                self.assertGreater(r.text.strip().count("\n"), 5, "not pretty-printed: %r" % (r,))

    def test_get_status_unknown_workflow_is_404(self):
        self.assert_error(self.call("get_status", "never_loaded"), 404)

    def test_get_status_of_batch_answers_its_snapshot(self):
        first = self.open_batch(self.wf)
        bid = first["job1"]["batch_id"]
        closed = self.close_batch(self.wf)
        self.open_batch(self.wf)
        snap = self.get_status(self.wf, {"batch_id": bid})
        self.assertEqual(snap, closed)
        self.assertNotEqual(self.get_status(self.wf), closed)

    def test_get_status_unknown_batch_is_404(self):
        self.assert_error(self.call("get_status", self.wf, {"batch_id": "123"}), 404)

    def test_get_status_non_integer_batch_id_is_400(self):
        for bad in ("abc", "12x", "1.5", ""):
            with self.subTest(batch_id=bad):
                self.assert_error(self.call("get_status", self.wf, "batch_id=" + q(bad)), 400)

    def test_get_status_extra_path_segment_is_404(self):
        self.assert_error(self.batchy.get("/get_status/%s/x" % self.wf), 404)

    # ---- load_cfg
    def test_load_cfg_answers_document_with_status_new(self):
        r = self.call("load_cfg", self.wf)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.content_type.startswith("application/json"), r)
        self.assertEqual(r.json(), self.get_status(self.wf))
        self.assertEqual({s["status"] for s in r.json().values()}, {"new"})

    def test_load_cfg_by_post_and_trailing_slash(self):
        self.assertEqual(self.call("load_cfg", self.wf, method="POST").status, 200)
        self.assertEqual(self.call("load_cfg", self.wf, suffix="/").status, 200)

    def test_load_cfg_missing_file_is_404(self):
        self.assert_error(self.call("load_cfg", "no_such_file"), 404)
        self.assertEqual(self.redis.keys("no_such_file*"), [])

    # ---- open
    def test_open_default_and_json_format_answer_the_document(self):
        doc = self.open_batch(self.wf)
        self.assertEqual(sorted(doc), ["job1", "job2", "job3"])
        self.assertEqual({s["status"] for s in doc.values()}, {"open"})
        self.assertEqual(doc, self.get_status(self.wf))
        doc2 = self.ok("open_batch", self.wf, suffix="/json")
        self.assertGreater(doc2["job1"]["batch_id"], doc["job1"]["batch_id"])
        self.assertEqual(doc2, self.get_status(self.wf))

    def test_open_by_post_and_trailing_slash(self):
        a = self.ok("open_batch", self.wf, method="POST")
        b = self.ok("open_batch", self.wf, suffix="/json/")
        self.assertGreater(b["job1"]["batch_id"], a["job1"]["batch_id"])

    def test_open_unknown_format_is_400_and_opens_nothing(self):
        before = self.redis.dump()
        for fmt in ("xml", "csv", "JSONX"):
            with self.subTest(fmt=fmt):
                self.assert_error(self.call("open_batch", self.wf, suffix="/" + fmt), 400)
        self.assertEqual(self.redis.dump(), before)

    def test_open_extra_path_segment_is_404(self):
        before = self.redis.dump()
        self.assert_error(self.batchy.get("/open_batch/%s/json/x" % self.wf), 404)
        self.assertEqual(self.redis.dump(), before)

    def test_unknown_workflow_is_404_for_open_close_fail(self):
        for endpoint in ("open_batch", "close_batch", "fail_batch"):
            with self.subTest(endpoint=endpoint):
                self.assert_error(self.call(endpoint, "never_loaded_wf"), 404)
        self.assertEqual(self.redis.keys("never_loaded_wf*"), [])

    def test_head_is_405_on_changing_endpoints_and_changes_nothing(self):
        self.open_batch(self.wf)
        before = self.redis.dump()
        for endpoint in ("open_batch", "close_batch", "fail_batch", "load_cfg"):
            with self.subTest(endpoint=endpoint):
                r = self.call(endpoint, self.wf, method="HEAD")
                self.assertEqual(r.status, 405, r)
        self.assertEqual(self.redis.dump(), before)

    # ---- close / fail
    def test_close_answers_whole_updated_document(self):
        self.open_batch(self.wf)
        doc = self.close_batch(self.wf, {"step": "job1"})
        self.assertEqual(sorted(doc), ["job1", "job2", "job3"])
        self.assertEqual(doc["job1"]["status"], "success")
        self.assertEqual(doc["job2"]["status"], "open")
        self.assertEqual(doc, self.get_status(self.wf))

    def test_fail_answers_whole_updated_document(self):
        self.open_batch(self.wf)
        doc = self.fail_batch(self.wf, {"step": "job2", "error": "disk full"})
        self.assertEqual(sorted(doc), ["job1", "job2", "job3"])
        self.assertEqual(doc["job2"]["status"], "failed")
        self.assertEqual(doc["job2"]["error_message"], "disk full")
        self.assertEqual(doc["job1"]["status"], "open")
        self.assertEqual(doc, self.get_status(self.wf))

    def test_close_and_fail_by_post(self):
        self.open_batch(self.wf)
        self.assertEqual(self.ok("close_batch", self.wf, {"step": "job1"}, method="POST")["job1"]["status"], "success")
        self.assertEqual(self.ok("fail_batch", self.wf, {"step": "job2"}, method="POST")["job2"]["status"], "failed")
        self.assertEqual(self.ok("close_batch", self.wf, {"step": "job3"}, suffix="/")["job3"]["status"], "success")

    def test_close_with_extra_path_segment_is_404(self):
        self.open_batch(self.wf)
        before = self.redis.dump()
        self.assert_error(self.batchy.get("/close_batch/%s/json" % self.wf), 404)
        self.assert_error(self.batchy.get("/fail_batch/%s/x" % self.wf), 404)
        self.assertEqual(self.redis.dump(), before)

    def test_close_with_error_parameter_is_400(self):
        self.open_batch(self.wf)
        before = self.redis.dump()
        self.assert_error(self.call("close_batch", self.wf, {"error": "oops"}), 400)
        self.assertEqual(self.redis.dump(), before)

    def test_close_of_step_not_open_is_409(self):
        self.assert_error(self.call("close_batch", self.wf), 409)
        self.assert_error(self.call("fail_batch", self.wf), 409)

    def test_close_unknown_step_is_404(self):
        self.open_batch(self.wf)
        self.assert_error(self.call("close_batch", self.wf, {"step": "nostep"}), 404)

    def test_close_non_integer_batch_id_is_400(self):
        self.open_batch(self.wf)
        before = self.redis.dump()
        self.assert_error(self.call("close_batch", self.wf, {"batch_id": "latest"}), 400)
        self.assert_error(self.call("fail_batch", self.wf, {"batch_id": "12abc"}), 400)
        self.assertEqual(self.redis.dump(), before)

    def test_close_stale_batch_id_is_409(self):
        doc = self.open_batch(self.wf)
        self.assert_error(self.call("close_batch", self.wf, {"batch_id": doc["job1"]["batch_id"] - 1}), 409)

    def test_close_reserved_field_is_400(self):
        self.open_batch(self.wf)
        self.assert_error(self.call("close_batch", self.wf, {"status": "success"}), 400)

    def test_corrupt_record_in_redis_is_a_json_error_not_a_crash(self):
        wf = self.unique("corrupt")
        self.redis.set_state(wf, {"job1": "this is not json", "job2": {"status": "new"}})
        for endpoint in ("get_status", "open_batch", "close_batch"):
            with self.subTest(endpoint=endpoint):
                r = self.call(endpoint, wf)
                self.assert_error(r, 409, contains="job1")
        self.assertEqual(self.redis.dump()[wf]["job1"], "this is not json")
        self.assert_service_up()


class FormatTest(ServiceTestCase):
    """infa and sh output of a realistic workflow."""

    def setUp(self):
        self.copy_workflow("etl_orders.yaml")
        self.load("etl_orders")

    def test_open_infa_is_an_informatica_parameter_file(self):
        r = self.call("open_batch", "etl_orders", suffix="/infa")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.content_type.startswith("text/plain"), r)
        state = self.get_status("etl_orders")
        sections = parse_infa(r.text)
        self.assertEqual([s for s, _ in sections],
                         ["Global.WF:wf_orders.ST:s_extract_orders", "load-orders.v2"])
        ext = dict(sections[0][1])
        load = dict(sections[1][1])
        self.assertEqual(len(ext), len(sections[0][1]), "repeated parameter")
        self.assertNotIn("infa_section", ext)
        rec = state["extract_orders"]
        self.assertEqual(set(ext), set(rec) - {"infa_section"})
        self.assertEqual(ext["source_table"], "orders")
        self.assertEqual(ext["batch_size"], "5000")
        self.assertEqual(ext["ratio"], "1.5")
        self.assertEqual(ext["reprocess_hours"], "2")
        self.assertEqual(ext["enabled"], "true")
        self.assertEqual(ext["trunc_start"], "true")
        self.assertEqual(ext["comment"], "")
        self.assertEqual(ext["batch_end"], "")
        self.assertEqual(ext["columns"], '["id","amount","note, with comma"]')
        self.assertEqual(ext["connection"], '{"host":"db1","port":5432}')
        self.assertEqual(ext["status"], "open")
        self.assertEqual(ext["batch_id"], str(rec["batch_id"]))
        # times as the original wrote them in infa: Python's str(datetime)
        self.assertEqual(ext["from_date"], "2026-01-01 00:00:00")
        self.assertEqual(ext["to_date"], harness.python_time(rec["to_date"]))
        self.assertEqual(ext["batch_start"], harness.python_time(rec["batch_start"]))
        self.assertEqual(load["target"], "dw.orders")
        self.assertEqual(load["note"],
                         "it's a \"quoted\" $(touch pwned1) `touch pwned2` value second line")
        self.assertEqual(load["from_date"], "1776-07-04 23:59:00")

    def test_infa_times_are_what_python_str_of_the_datetime_prints(self):
        # the original printed datetime objects with str(): a space, and the
        # fraction only when it is not zero; Python is the reference here
        wf = self.unique("pytimes")
        starts = {"frac": "2026-11-23T06:00:00.222222", "whole": "2026-11-23T00:00:00.000000",
                  "micro": "1999-12-31T23:59:59.000001"}
        self.redis.set_state(wf, {step: {"status": "success", "batch_start": t, "batch_id": 7}
                                  for step, t in starts.items()})
        r = self.call("open_batch", wf, suffix="/infa")
        self.assertEqual(r.status, 200, r)
        sections = dict(parse_infa(r.text))
        state = self.get_status(wf)
        for step, start in starts.items():
            params = dict(sections[step])
            self.assertEqual(params["from_date"], harness.python_time(start), step)
            self.assertEqual(params["batch_start"],
                             harness.python_time(state[step]["batch_start"]), step)
            self.assertEqual(state[step]["from_date"], start)  # JSON keeps the canonical form
        self.assertEqual(dict(sections["whole"])["from_date"], "2026-11-23 00:00:00")
        self.assertEqual(dict(sections["frac"])["from_date"], "2026-11-23 06:00:00.222222")

    def test_open_sh_is_safe_to_eval_and_yields_the_values(self):
        r = self.call("open_batch", "etl_orders", suffix="/sh")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.content_type.startswith("text/plain"), r)
        state = self.get_status("etl_orders")
        names = ["BATCHY_WORKFLOW", "BATCHY_BATCH_ID",
                 "BATCHY_LOAD_ORDERS_V2_NOTE", "BATCHY_LOAD_ORDERS_V2_TARGET",
                 "BATCHY_LOAD_ORDERS_V2_STATUS", "BATCHY_LOAD_ORDERS_V2_BATCH_END",
                 "BATCHY_EXTRACT_ORDERS_SOURCE_TABLE", "BATCHY_EXTRACT_ORDERS_BATCH_SIZE",
                 "BATCHY_EXTRACT_ORDERS_RATIO", "BATCHY_EXTRACT_ORDERS_ENABLED",
                 "BATCHY_EXTRACT_ORDERS_COMMENT", "BATCHY_EXTRACT_ORDERS_COLUMNS",
                 "BATCHY_EXTRACT_ORDERS_CONNECTION", "BATCHY_EXTRACT_ORDERS_FROM_DATE",
                 "BATCHY_EXTRACT_ORDERS_TO_DATE", "BATCHY_EXTRACT_ORDERS_BATCH_ID"]
        script = 'set -eu\neval "$BODY"\nprintf "%s\\0" ' + " ".join('"$%s"' % n for n in names)
        with tempfile.TemporaryDirectory() as cwd:
            out = subprocess.run(["bash", "-c", script], cwd=cwd, env={"BODY": r.text, "PATH": os.environ["PATH"]},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(out.stderr, b"")
            self.assertEqual(sorted(os.listdir(cwd)), [], "eval ran a command substitution")
        values = dict(zip(names, out.stdout.decode().split("\0")))
        bid = str(state["extract_orders"]["batch_id"])
        self.assertEqual(values, {
            "BATCHY_WORKFLOW": "etl_orders",
            "BATCHY_BATCH_ID": bid,
            "BATCHY_LOAD_ORDERS_V2_NOTE": "it's a \"quoted\" $(touch pwned1) `touch pwned2` value second line",
            "BATCHY_LOAD_ORDERS_V2_TARGET": "dw.orders",
            "BATCHY_LOAD_ORDERS_V2_STATUS": "open",
            "BATCHY_LOAD_ORDERS_V2_BATCH_END": "",
            "BATCHY_EXTRACT_ORDERS_SOURCE_TABLE": "orders",
            "BATCHY_EXTRACT_ORDERS_BATCH_SIZE": "5000",
            "BATCHY_EXTRACT_ORDERS_RATIO": "1.5",
            "BATCHY_EXTRACT_ORDERS_ENABLED": "true",
            "BATCHY_EXTRACT_ORDERS_COMMENT": "",
            "BATCHY_EXTRACT_ORDERS_COLUMNS": '["id","amount","note, with comma"]',
            "BATCHY_EXTRACT_ORDERS_CONNECTION": '{"host":"db1","port":5432}',
            "BATCHY_EXTRACT_ORDERS_FROM_DATE": "2026-01-01T00:00:00.000000",
            "BATCHY_EXTRACT_ORDERS_TO_DATE": state["extract_orders"]["to_date"],
            "BATCHY_EXTRACT_ORDERS_BATCH_ID": bid,
        })

    def test_sh_values_are_single_quoted(self):
        r = self.call("open_batch", "etl_orders", suffix="/sh")
        self.assertEqual(r.status, 200, r)
        lines = [l for l in r.text.split("\n") if l.strip()]
        self.assertTrue(lines[0].startswith("BATCHY_WORKFLOW="), lines)
        self.assertTrue(lines[1].startswith("BATCHY_BATCH_ID="), lines)
        self.assertIn("BATCHY_LOAD_ORDERS_V2_NOTE='it'\\''s a \"quoted\" $(touch pwned1) "
                      "`touch pwned2` value second line'", lines)
        for line in lines[2:]:
            self.assertRegex(line, r"^BATCHY_[A-Z0-9_]+='")

    def test_infa_and_sh_formats_open_a_batch(self):
        a = self.call("open_batch", "etl_orders", suffix="/infa")
        self.assertEqual(a.status, 200, a)
        id_a = self.get_status("etl_orders")["extract_orders"]["batch_id"]
        b = self.call("open_batch", "etl_orders", suffix="/sh")
        self.assertEqual(b.status, 200, b)
        id_b = self.get_status("etl_orders")["extract_orders"]["batch_id"]
        self.assertGreater(id_b, id_a)
        self.assertEqual(self.redis.hash_json("etl_orders-%d" % id_a)["extract_orders"]["status"], "abandoned")


class TokenTest(ServiceTestCase):
    batchy_args = ("--token", "s3cret")

    def setUp(self):
        self.wf = self.unique("tok")
        self.write_cfg(self.wf, THREE)

    def auth(self):
        return {"Authorization": "Bearer s3cret"}

    def test_changing_endpoints_without_token_are_401_and_change_nothing(self):
        r = self.batchy.get("/load_cfg/" + self.wf)
        self.assert_error(r, 401)
        self.assertEqual(self.redis.keys(self.wf + "*"), [])
        self.assertEqual(self.batchy.get("/load_cfg/" + self.wf, headers=self.auth()).status, 200)
        before = self.redis.dump()
        for endpoint in ("open_batch", "close_batch", "fail_batch", "load_cfg"):
            with self.subTest(endpoint=endpoint):
                self.assert_error(self.batchy.get("/%s/%s" % (endpoint, self.wf)), 401)
        self.assertEqual(self.redis.dump(), before)

    def test_wrong_token_is_401(self):
        for headers, query in (({"Authorization": "Bearer wr0ngtoken"}, ""),
                               ({"Authorization": "Bearer s3cret2"}, ""),
                               ({"Authorization": "Bearer s3cre"}, ""),
                               ({"Authorization": "Basic s3cret"}, ""),
                               ({}, "?token=wr0ngtoken"),
                               ({}, "?token=")):
            with self.subTest(headers=headers, query=query):
                self.assert_error(self.batchy.get("/load_cfg/%s%s" % (self.wf, query), headers=headers), 401)
        self.assertEqual(self.redis.keys(self.wf + "*"), [])

    def test_bearer_header_or_token_parameter_is_accepted(self):
        self.assertEqual(self.batchy.get("/load_cfg/" + self.wf, headers=self.auth()).status, 200)
        r = self.batchy.get("/open_batch/%s?token=s3cret" % self.wf)
        self.assertEqual(r.status, 200, r)
        r = self.batchy.get("/close_batch/%s?step=job1&token=s3cret" % self.wf)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["job1"]["status"], "success")
        self.assertNotIn("token", r.json()["job1"], "the token was stored as a field")
        r = self.batchy.post("/fail_batch/%s?step=job2" % self.wf, headers=self.auth())
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("s3cret", str(self.redis.dump()))

    def test_read_only_endpoints_need_no_token(self):
        self.assertEqual(self.batchy.get("/load_cfg/" + self.wf, headers=self.auth()).status, 200)
        for path in ("/index", "/healthz", "/get_status/" + self.wf):
            with self.subTest(path=path):
                self.assertEqual(self.batchy.get(path).status, 200)

    def test_token_never_appears_in_access_log(self):
        self.batchy.get("/load_cfg/%s?token=s3cret" % self.wf)
        self.batchy.get("/open_batch/%s" % self.wf, headers=self.auth())
        self.batchy.get("/open_batch/%s?token=wr0ngtoken" % self.wf)
        marker = "/get_status/" + self.wf
        self.batchy.get(marker + "?token=s3cret")
        deadline = time.monotonic() + 10 * SLOW
        while marker not in self.batchy.stderr() and time.monotonic() < deadline:
            time.sleep(0.02)
        log = self.batchy.stderr()
        self.assertIn(marker, log)
        self.assertNotIn("s3cret", log)
        self.assertNotIn("wr0ngtoken", log)


class TokenFromEnvironmentTest(ServiceTestCase):
    batchy_env = {"BATCHY_TOKEN": "envtok"}

    def test_batchy_token_env_requires_token(self):
        wf = self.unique("envtok")
        self.write_cfg(wf, THREE)
        self.assert_error(self.batchy.get("/load_cfg/" + wf), 401)
        r = self.batchy.get("/load_cfg/" + wf, headers={"Authorization": "Bearer envtok"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.batchy.get("/get_status/" + wf).status, 200)


class AccessLogTest(ServiceTestCase):
    def wait_for_log(self, needle):
        deadline = time.monotonic() + 10 * SLOW
        while time.monotonic() < deadline:
            for line in self.batchy.stderr().splitlines():
                if needle in line:
                    return line
            time.sleep(0.02)
        self.fail("no access-log line with %r in:\n%s" % (needle, self.batchy.stderr()))

    def test_one_log_line_per_request_with_method_path_status_ms(self):
        wf = self.unique("logged")
        self.batchy.get("/get_status/%s?secretparam=hidden123" % wf)
        line = self.wait_for_log("/get_status/" + wf)
        tokens = line.replace("\t", " ").split()
        self.assertIn("GET", tokens, line)
        self.assertIn("404", tokens, line)
        self.assertNotIn("hidden123", self.batchy.stderr())
        self.assertNotIn("secretparam", line)
        # the whole line: time to the second, UTC; method, path, status;
        # milliseconds to the microsecond
        self.assertRegex(line.strip(), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ GET /get_status/%s 404 "
                         r"\d+\.\d{3}ms$" % wf)
        self.assertEqual(sum(1 for l in self.batchy.stderr().splitlines() if "/get_status/" + wf in l), 1)

    def test_post_logged_with_its_status(self):
        self.write_cfg("logged_post", THREE)
        self.batchy.post("/load_cfg/logged_post")
        line = self.wait_for_log("/load_cfg/logged_post")
        self.assertIn("POST", line.split())
        self.assertIn("200", line.split())


if __name__ == "__main__":
    unittest.main()
