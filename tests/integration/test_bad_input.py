"""
test_bad_input.py - hostile and malformed requests: path traversal, bad
names, huge requests, unknown formats, endpoints and methods. Each gets a
clear 4xx (a JSON error where batchy answers, just the status where the HTTP
library answers itself) and nothing is written to Redis. Paths are sent
exactly as written (http.client / raw sockets, never urllib).
"""
import json
import os
import time
import unittest

from harness import PROMPT, ServiceTestCase, SLOW, raw_request

SECRET_YAML = "stolen:\n  secret: from_outside_the_cfg_dir\n"


class BadInputTest(ServiceTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # a valid workflow file outside the cfg dir, one and two levels up
        with open(os.path.join(cls.tmp, "secret.yaml"), "w") as f:
            f.write(SECRET_YAML)
        os.makedirs(os.path.join(cls.cfg_dir, "sub"))
        with open(os.path.join(cls.cfg_dir, "sub", "inner.yaml"), "w") as f:
            f.write(SECRET_YAML)
        with open(os.path.join(cls.cfg_dir, "wf1.yaml"), "w") as f:
            f.write("job1:\n  p: 1\njob2:\n")

    def setUp(self):
        r = self.batchy.get("/load_cfg/wf1")
        self.assertEqual(r.status, 200, r)
        self.before = self.redis.dump()

    def assert_nothing_written(self):
        after = self.redis.dump()
        self.assertEqual(after, self.before)
        self.assertNotIn("from_outside_the_cfg_dir", json.dumps(after))

    def assert_rejected(self, method, path, statuses=(400, 404), json_error=True):
        r = self.batchy.request(method, path)
        if json_error:
            self.assert_error(r, statuses)
        else:
            self.assertIn(r.status, statuses, r)
        self.assert_nothing_written()
        return r

    def test_load_cfg_path_traversal_is_refused(self):
        for path in ("/load_cfg/../secret", "/load_cfg/..%2fsecret", "/load_cfg/..%2Fsecret",
                     "/load_cfg/%2e%2e%2fsecret", "/load_cfg/%2E%2E%2Fsecret",
                     "/load_cfg/..%252fsecret", "/load_cfg/../etc/passwd",
                     "/load_cfg/%2e%2e%2fetc%2fpasswd", "/load_cfg/..%2f..%2fetc%2fpasswd",
                     "/load_cfg/sub%2finner", "/load_cfg/sub/inner", "/load_cfg/..",
                     "/load_cfg/.", "/load_cfg/%2e%2e", "/load_cfg/%2fetc%2fpasswd",
                     "/load_cfg/..%5csecret", "/load_cfg/secret%00", "/load_cfg/wf1%00x"):
            with self.subTest(path=path):
                self.assert_rejected("GET", path)

    def test_nul_in_a_query_value_is_400_and_changes_nothing(self):
        self.batchy.get("/open_batch/wf1")
        self.before = self.redis.dump()
        for query in ("rows=12%0034", "note=caf%C3%A9%20x%00y", "step=job1%00garbage"):
            with self.subTest(query=query):
                self.assert_rejected("GET", "/close_batch/wf1?" + query, statuses=(400,))

    def test_nul_in_a_form_body_is_400_and_changes_nothing(self):
        self.batchy.get("/open_batch/wf1")
        self.before = self.redis.dump()
        for body in ("step=job1%00garbage", "rows=12%0034"):
            with self.subTest(body=body):
                r = self.batchy.request("POST", "/close_batch/wf1", body=body.encode(), headers={
                    "Content-Type": "application/x-www-form-urlencoded"})
                self.assert_error(r, 400)
                self.assert_nothing_written()

    def test_other_endpoints_with_traversal_are_refused(self):
        for path in ("/get_status/..", "/get_status/../wf1", "/get_status/%2e%2e",
                     "/get_status/a%2Fb", "/get_status/a%2fb", "/open_batch/..%2fwf1",
                     "/open_batch/a/b/c", "/close_batch/wf1%2f..", "/fail_batch/.%2e"):
            with self.subTest(path=path):
                self.assert_rejected("GET", path)

    def test_workflow_name_length_limit(self):
        ok_name = "a" * 128
        r = self.batchy.get("/get_status/" + ok_name)
        self.assert_error(r, 404)  # valid name, never loaded
        for endpoint in ("get_status", "open_batch", "close_batch", "fail_batch", "load_cfg"):
            with self.subTest(endpoint=endpoint):
                self.assert_rejected("GET", "/%s/%s" % (endpoint, "a" * 129), statuses=(400,))

    def test_snapshot_like_workflow_names_are_400(self):
        # get_status reads snapshots by their keys, as the original did
        # (test_legacy); nothing else takes them
        self.write_cfg("wf1-123", "job1:\n")
        self.write_cfg("wf1-123-init", "job1:\n")
        for name in ("wf1-123", "wf1-123-init", "x-0", "x-99999999999"):
            for endpoint in ("open_batch", "close_batch", "fail_batch", "load_cfg"):
                with self.subTest(name=name, endpoint=endpoint):
                    self.assert_rejected("GET", "/%s/%s" % (endpoint, name), statuses=(400,))
            with self.subTest(name=name, endpoint="get_status"):
                self.assert_error(self.batchy.get("/get_status/" + name), 404,
                                  "there is no snapshot '%s'" % name)
                self.assert_nothing_written()

    def test_names_like_snapshots_but_valid_are_accepted(self):
        for name in ("wf1-123x", "wf1-init", "wf-1a", "wf1_123", "wf.1-a", "_x", "9lives"):
            with self.subTest(name=name):
                self.assert_error(self.batchy.get("/get_status/" + name), 404)

    def test_bad_characters_in_workflow_names_are_400(self):
        for name in (".hidden", "-dash", "a%20b", "a+b", "%C3%A9t%C3%A9", "a%0Ab", "a%00b",
                     "a*", "a%3Fb", "a%23b", "a%5Bb%5D", "a%25"):
            with self.subTest(name=name):
                self.assert_rejected("GET", "/get_status/" + name, statuses=(400,))
                self.assert_rejected("GET", "/open_batch/" + name, statuses=(400,))

    def test_bad_percent_encoding_is_4xx(self):
        for path in ("/get_status/wf%zz", "/get_status/wf%", "/get_status/wf%4"):
            with self.subTest(path=path):
                self.assert_rejected("GET", path)

    def test_unknown_formats_are_400(self):
        for fmt in ("xml", "csv", "yaml", "sh2", "info", "JSON%00"):
            with self.subTest(fmt=fmt):
                self.assert_rejected("GET", "/open_batch/wf1/" + fmt, statuses=(400,))

    def test_unknown_endpoints_are_404(self):
        for path in ("/nope", "/open", "/batch/wf1", "/get_status", "/wf1", "/index/x",
                     "/healthz/x", "/get_status/wf1/x", "/close_batch/wf1/json",
                     "/load_cfg/wf1/x", "//get_status/wf1"):
            with self.subTest(path=path):
                self.assert_rejected("GET", path, statuses=(404, 400))

    def test_missing_workflow_is_4xx(self):
        for path in ("/open_batch", "/open_batch/", "/load_cfg", "/load_cfg/",
                     "/close_batch/", "/get_status/"):
            with self.subTest(path=path):
                self.assert_rejected("GET", path, statuses=(400, 404))

    def test_unknown_methods_are_405(self):
        for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"):
            for path in ("/open_batch/wf1", "/load_cfg/wf1", "/close_batch/wf1"):
                with self.subTest(method=method, path=path):
                    r = self.batchy.request(method, path)
                    self.assertEqual(r.status, 405, r)
                    if r.body:
                        self.assert_error(r, 405)
                    self.assert_nothing_written()

    def test_huge_query_strings_are_4xx_and_service_stays_up(self):
        for size in (100000, 1000000):
            for path in ("/close_batch/wf1?rows=", "/get_status/wf1?x=", "/open_batch/wf1?x="):
                with self.subTest(size=size, path=path):
                    status, reply = raw_request(self.batchy.port, (
                        "GET %s%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                        % (path, "a" * size)).encode(), timeout=5 * SLOW)
                    if status is not None:  # None: closed without answering, fine
                        self.assertGreaterEqual(status, 400, reply[:300])
                        self.assertLess(status, 500, reply[:300])
                    self.assert_service_up()
                    self.assert_nothing_written()

    def test_many_query_parameters_get_a_prompt_answer(self):
        self.batchy.get("/open_batch/wf1")
        self.before = self.redis.dump()
        # Up to about 440 parameters fit the connection's memory and get a
        # 400; beyond, libmicrohttpd answers 431 or closes the connection
        # at once.
        for count in (257, 300, 400, 1000, 2000):
            for endpoint in ("get_status", "close_batch"):
                with self.subTest(count=count, endpoint=endpoint):
                    query = "&".join("p%d=%d" % (i, i) for i in range(count))
                    status, reply = raw_request(self.batchy.port, (
                        "GET /%s/wf1?%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                        % (endpoint, query)).encode(), timeout=5 * SLOW)
                    if count <= 400:
                        self.assertEqual(status, 400, reply[:300])
                    elif status is not None:
                        self.assertIn(status, (400, 413, 414, 431), reply[:300])
                    if endpoint == "close_batch":
                        self.assertNotEqual(status, 200, reply[:300])
                    self.assert_nothing_written()
        self.assert_service_up()

    def test_huge_path_is_4xx(self):
        status, reply = raw_request(self.batchy.port, (
            "GET /get_status/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % ("a" * 200000)).encode(),
            timeout=5 * SLOW)
        if status is not None:
            self.assertGreaterEqual(status, 400, reply[:300])
            self.assertLess(status, 500, reply[:300])
        self.assert_service_up()
        self.assert_nothing_written()

    def test_garbage_request_does_not_crash(self):
        status, reply = raw_request(self.batchy.port, b"GET / HTTP/9.9\r\n\r\n", timeout=15 * SLOW)
        self.assertIn(status, (400, 505), reply[:300])  # the HTTP library's own answer
        self.assert_service_up()
        for data in (b"\x00\x01\x02garbage\r\n\r\n", b"GET\r\n\r\n",
                     b"GET /index HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                     b"POST /open_batch/wf1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort"):
            with self.subTest(data=data):
                status, reply = raw_request(self.batchy.port, data, timeout=2, allow_timeout=True)
                if status is not None and status != 200:
                    self.assertGreaterEqual(status, 400, reply[:300])
                    self.assertLess(status, 500, reply[:300])
                self.assert_service_up()

    def test_bad_step_names_in_query_are_4xx_and_change_nothing(self):
        for step in ("%5Bx%5D", "job1%00", "a" * 300, "%ff%fe", "job1%0A", "job1%00,job2"):
            with self.subTest(step=step):
                self.batchy.get("/load_cfg/wf1")
                self.batchy.get("/open_batch/wf1")
                self.before = self.redis.dump()
                self.assert_rejected("GET", "/close_batch/wf1?step=" + step, statuses=(400, 404))

    def test_invalid_utf8_extra_field_never_breaks_stored_json(self):
        self.batchy.get("/open_batch/wf1")
        r = self.batchy.get("/close_batch/wf1?note=%ff%fe%00x")
        self.assertIn(r.status, (200, 400), r)
        for key, fields in self.redis.dump().items():
            for step, value in fields.items():
                self.assertIsInstance(value, str)
                value.encode("utf-8")  # raises on invalid (surrogate-escaped) bytes
        self.assert_service_up()

    def test_key_of_wrong_type_in_redis_is_a_json_error(self):
        self.redis.cli("SET", "plainstring", "not a hash")
        self.redis.cli("RPUSH", "alist", "x")
        self.before = self.redis.dump()
        for path in ("/get_status/plainstring", "/open_batch/plainstring", "/close_batch/alist",
                     "/fail_batch/alist", "/get_status/alist"):
            with self.subTest(path=path):
                r = self.batchy.get(path)
                self.assert_error(r, (409, 500))
                self.assert_nothing_written()
        self.assert_service_up()

    # ---- request targets in absolute form (RFC 9112 3.2.2)

    def target(self, method, target, body=None):
        """Send one request with its target exactly as given; return (status,
        body bytes)."""
        head = "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" % (method, target)
        if body is not None:
            head += ("Content-Type: application/x-www-form-urlencoded\r\n"
                     "Content-Length: %d\r\n" % len(body))
        status, reply = raw_request(self.batchy.port, (head + "\r\n" + (body or "")).encode())
        return status, reply.partition(b"\r\n\r\n")[2]

    def test_absolute_form_target_is_served_as_its_path(self):
        self.batchy.get("/open_batch/wf1")
        expected = self.batchy.get("/get_status/wf1").json()
        port = self.batchy.port
        # the host is not checked; scheme and host in any case; the path
        # is percent-decoded; a trailing slash is ignored, as in origin form
        for target in ("http://127.0.0.1:%d/get_status/wf1" % port,
                       "http://elsewhere.example/get_status/wf1",
                       "https://elsewhere.example:8443/get_status/wf1",
                       "HTTP://ELSEWHERE.EXAMPLE/get_status/wf1/",
                       "http://[::1]:%d/get_status/w%%66%%31" % port):
            with self.subTest(target=target):
                status, body = self.target("GET", target)
                self.assertEqual(status, 200, body)
                self.assertEqual(json.loads(body), expected)
        status, body = self.target("HEAD", "http://x/get_status/wf1")
        self.assertEqual((status, body), (200, b""))
        # an empty path is "/", the index
        index = self.batchy.get("/index").body
        for target in ("http://x", "http://x:%d/" % port, "http://x?a=1"):
            with self.subTest(target=target):
                self.assertEqual(self.target("GET", target), (200, index))

    def test_absolute_form_takes_query_and_form_parameters_as_origin_form_does(self):
        status, body = self.target("GET", "http://x/open_batch/wf1/sh")
        self.assertEqual(status, 200, body)
        batch = self.batchy.get("/get_status/wf1").json()["job1"]["batch_id"]
        self.assertIn(b"%d" % batch, body)
        status, body = self.target("GET", "http://x/get_status/wf1?batch_id=%d" % batch)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body),
                         self.batchy.get("/get_status/wf1?batch_id=%d" % batch).json())
        status, body = self.target("POST", "http://x/close_batch/wf1", body="step=job%31")
        self.assertEqual(status, 200, body)
        doc = self.batchy.get("/get_status/wf1").json()
        self.assertEqual(doc["job1"]["status"], "success")
        self.assertNotEqual(doc["job2"]["status"], "success")

    def test_absolute_form_refuses_what_origin_form_refuses(self):
        self.batchy.get("/open_batch/wf1")
        self.before = self.redis.dump()
        for path in ("/open_batch/wf1%2Fsh", "/get_status/a%2Fb", "/load_cfg/..%2fsecret",
                     "/load_cfg/..", "/get_status/wf1%00x", "/close_batch/wf1?step=job1%00x",
                     "/close_batch/wf1?rows=%ff", "/open_batch/wf1/xml", "/nope",
                     "/close_batch/wf1?" + "&".join("p%d=1" % i for i in range(300))):
            with self.subTest(path=path):
                origin = self.batchy.get(path)
                self.assertGreaterEqual(origin.status, 400, origin)
                status, body = self.target("GET", "http://x" + path)
                self.assertEqual(status, origin.status, body)
                self.assertEqual(json.loads(body), origin.json())
                self.assert_nothing_written()
        # decoded, a %2F in the host would move where the path starts
        status, body = self.target("GET", "http://a%2Fget_status/wf1")
        self.assertEqual(status, 400, body)

    def test_targets_in_other_forms_are_still_404(self):
        for method, target in (("GET", "*"), ("OPTIONS", "*"), ("GET", "x:5000"),
                               ("CONNECT", "x:5000"), ("GET", "ftp://x/get_status/wf1"),
                               ("GET", "http:///get_status/wf1"),
                               ("GET", "http:/get_status/wf1"), ("GET", "http:get_status/wf1"),
                               ("GET", "httpx://x/get_status/wf1")):
            with self.subTest(method=method, target=target):
                status, body = self.target(method, target)
                self.assertEqual(status, 404, body)
                self.assertIn("error", json.loads(body))
                self.assert_nothing_written()

    def test_access_log_shows_the_path_of_an_absolute_form_target(self):
        status, _ = self.target("GET", "http://logged.example:1234/get_status/abslog?x=1")
        self.assertEqual(status, 404)
        deadline = time.monotonic() + PROMPT
        while " GET /get_status/abslog 404 " not in self.batchy.stderr():
            self.assertLess(time.monotonic(), deadline, self.batchy.stderr()[-2000:])
            time.sleep(0.05)
        self.assertNotIn("logged.example", self.batchy.stderr())


if __name__ == "__main__":
    unittest.main()
