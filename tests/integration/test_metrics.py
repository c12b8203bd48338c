"""GET /metrics (SPEC section 11): Prometheus' text format, checked by
promtool (Debian's prometheus package, installed by scripts/deps.sh), and
counters that follow what batchy does."""
import re
import shutil
import subprocess
import threading
import time
import unittest

from harness import PROMPT, OwnBatchyMixin, ServiceTestCase, http_request, parse_time

TWO = "job1:\n  p: 1\njob2:\n  q: x\n"
SAMPLE = re.compile(r'^([a-z_:][a-z0-9_:]*)(\{[^}]*\})? (\S+)$')


def samples(text):
    """{(name, labels text): value} of a scrape, every line checked."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


class MetricsTest(ServiceTestCase):

    def scrape(self):
        r = self.batchy.get("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        return r.text

    def test_promtool_finds_nothing_to_say(self):
        wf = self.unique("met")
        self.load(wf, TWO)
        self.ok("open_batch", wf)
        self.batchy.get("/get_status/nothing_here")
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool not found: scripts/deps.sh installs prometheus")
        p = subprocess.run([promtool, "check", "metrics"], input=self.scrape().encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.assertEqual((p.returncode, p.stdout.decode()), (0, ""))

    def test_process_series_as_client_libraries_name_them(self):
        s = samples(self.scrape())
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                     "process_open_fds", "process_start_time_seconds", "process_max_fds"):
            self.assertIn((name, ""), s, name)
        self.assertGreater(s[("process_resident_memory_bytes", "")], 1 << 20)
        self.assertGreater(s[("process_open_fds", "")], 3)
        self.assertLess(abs(s[("process_start_time_seconds", "")] - time.time()), 24 * 3600)

    def test_requests_are_counted_by_endpoint_and_status(self):
        wf = self.unique("met_c")
        self.load(wf, TWO)
        key200 = ("batchy_http_requests_total", '{endpoint="get_status",status="200"}')
        key404 = ("batchy_http_requests_total", '{endpoint="get_status",status="404"}')
        before = samples(self.scrape())
        for _ in range(3):
            self.assertEqual(self.batchy.get("/get_status/" + wf).status, 200)
        self.assertEqual(self.batchy.get("/get_status/not_loaded_here").status, 404)
        self.assertEqual(self.batchy.get("/no_such_endpoint").status, 404)
        after = samples(self.scrape())
        self.assertEqual(after[key200] - before.get(key200, 0), 3)
        self.assertEqual(after[key404] - before.get(key404, 0), 1)
        none = ("batchy_http_requests_total", '{endpoint="none",status="404"}')
        self.assertGreaterEqual(after[none] - before.get(none, 0), 1)
        # the latency histogram: cumulative buckets, +Inf equal to the count
        label = 'endpoint="get_status"'
        buckets = sorted((float(m.group(1)) if m.group(1) != "+Inf" else float("inf"), v)
                         for (n, l), v in after.items()
                         if n == "batchy_http_request_duration_seconds_bucket" and label in l
                         for m in [re.search(r'le="([^"]+)"', l)])
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts))
        self.assertEqual(counts[-1], after[("batchy_http_request_duration_seconds_count",
                                            "{%s}" % label)])
        self.assertGreaterEqual(counts[-1], 4)

    def test_per_step_series(self):
        wf = self.unique("met_s")
        # a step name with a quote and a backslash, which label values escape
        self.load(wf, 'job1:\n  p: 1\n  expected_by: "00:00"\n'
                      'job2:\n  q: x\n'
                      'we"ird\\step:\n  expected_by: "00:00"\n')
        self.ok("open_batch", wf)
        self.ok("close_batch", wf, {"step": "job1"})
        self.ok("fail_batch", wf, {"step": "job2", "error": "boom"})
        text = self.scrape()
        promtool = shutil.which("promtool")
        p = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.assertEqual((p.returncode, p.stdout.decode()), (0, ""))
        s = samples(text)
        state = self.redis.hash_json(wf)

        def get(name, step, extra=""):
            return s.get((name, '{workflow="%s",step="%s"%s}' % (wf, step, extra)))

        self.assertEqual(get("batchy_step_status", "job1", ',status="success"'), 1)
        self.assertEqual(get("batchy_step_status", "job2", ',status="failed"'), 1)
        weird = 'we\\"ird\\\\step'  # we\"ird\\step: as the text format escapes it
        self.assertEqual(get("batchy_step_status", weird, ',status="open"'), 1)
        end = parse_time(state["job1"]["batch_end"]).timestamp()
        start = parse_time(state["job1"]["batch_start"]).timestamp()
        self.assertAlmostEqual(get("batchy_step_last_success_timestamp_seconds", "job1"), end,
                               places=5)
        self.assertAlmostEqual(get("batchy_step_batch_start_timestamp_seconds", "job1"), start,
                               places=5)
        self.assertAlmostEqual(get("batchy_step_last_duration_seconds", "job1"), end - start,
                               places=5)
        self.assertIsNone(get("batchy_step_last_success_timestamp_seconds", "job2"))
        self.assertIsNotNone(get("batchy_step_last_duration_seconds", "job2"))
        self.assertEqual(get("batchy_step_late", "job1"), 0)  # succeeded today
        self.assertEqual(get("batchy_step_late", weird), 1)   # 00:00 passed, still open
        self.assertIsNone(get("batchy_step_late", "job2"))    # no expected_by
        self.assertEqual(s[("batchy_step_series_up", "")], 1)
        # a change shows at the next scrape (Redis tracks what was read)
        self.ok("close_batch", wf, {"step": 'we"ird\\step'})
        s = samples(self.scrape())
        self.assertEqual(get("batchy_step_late", weird), 0)

    def test_redis_series(self):
        s = samples(self.scrape())
        self.assertEqual(s[("batchy_redis_up", "")], 1)
        self.assertGreaterEqual(s[("batchy_redis_connects_total", "")], 1)
        self.assertGreater(s[("batchy_redis_round_trip_seconds_count", "")], 0)
        self.assertEqual(s[("batchy_build_info", '{version="1.0.0"}')], 1)


class ManyWorkflowsTest(ServiceTestCase):
    """A class of its own: thousands of workflows would slow the others'
    scrapes."""

    scrape = MetricsTest.scrape

    def test_thousands_of_workflows_come_whole_and_grouped_by_family(self):
        # More workflows than a scrape makes in one slice, the page sent as
        # it is read: each family's samples together under its own TYPE
        # line, and every workflow's there once, read or remembered.
        prefix = self.unique("met_many")
        n = 2500
        self.redis.fill(prefix, n)
        pages = [self.scrape(), self.scrape()]
        for text in pages:
            family, seen, count = None, set(), {}
            for line in text.splitlines():
                if line.startswith("# TYPE "):
                    family = line.split()[2]
                    self.assertNotIn(family, seen, "a second TYPE line for " + family)
                    seen.add(family)
                elif line and not line.startswith("#"):
                    name = SAMPLE.match(line).group(1)
                    self.assertTrue(name == family or name.startswith(family + "_"),
                                    "%s under %s" % (line, family))
                    if 'workflow="%s' % prefix in line:
                        count[name] = count.get(name, 0) + 1
            self.assertEqual(count, {"batchy_step_status": 2 * n,
                                     "batchy_step_batch_start_timestamp_seconds": 2 * n,
                                     "batchy_step_last_success_timestamp_seconds": 2 * n - n // 5,
                                     "batchy_step_last_duration_seconds": 2 * n})
        s = samples(pages[1])
        for i in (0, 1, 999, 1000, 1001, 2499):
            job2 = "failed" if i % 5 == 0 else "success"
            self.assertEqual(s[("batchy_step_status", '{workflow="%s%05d",step="job2",status="%s"}'
                                % (prefix, i, job2))], 1)


class MetricsRedisDownTest(OwnBatchyMixin, unittest.TestCase):

    cfg_files = {"w.yaml": TWO}

    def test_redis_down_and_held_requests_show(self):
        b = self.start_batchy()
        self.assertEqual(b.get("/load_cfg/w").status, 200)
        tag = b.get("/get_status/w").headers["etag"]
        done = []
        t = threading.Thread(target=lambda: done.append(http_request(
            b.port, "GET", "/get_status/w?wait=600", headers={"If-None-Match": tag})))
        t.start()
        deadline = time.monotonic() + PROMPT
        while samples(b.get("/metrics").text)[("batchy_held_requests", "")] != 1:
            self.assertLess(time.monotonic(), deadline, "the request was never held")
            time.sleep(0.02)
        self.redis.stop()
        try:
            t.join(PROMPT)
            self.assertEqual(done[0].status, 503)
            self.assertEqual(b.get("/get_status/w").status, 503)
            r = b.get("/metrics")
            self.assertEqual(r.status, 200, r)  # without the steps' series, said so
            s = samples(r.text)
            self.assertEqual(s[("batchy_step_series_up", "")], 0)
            self.assertEqual(s[("batchy_redis_up", "")], 0)
            self.assertGreaterEqual(s[("batchy_redis_errors_total", "")], 1)
            self.assertEqual(s[("batchy_held_requests", "")], 0)
        finally:
            self.redis.start()
        deadline = time.monotonic() + PROMPT
        while b.get("/healthz").status != 200:
            self.assertLess(time.monotonic(), deadline, "never back")
            time.sleep(0.05)
        s = samples(b.get("/metrics").text)
        self.assertEqual(s[("batchy_redis_up", "")], 1)
        self.assertGreaterEqual(s[("batchy_redis_connects_total", "")], 2)


class MetricsStepsOffTest(OwnBatchyMixin, unittest.TestCase):

    cfg_files = {"w.yaml": TWO}

    def test_metrics_steps_off_leaves_them_out(self):
        for b in (self.start_batchy(args=("--metrics-steps", "off")),
                  self.start_batchy(env={"BATCHY_METRICS_STEPS": "off"})):
            self.assertEqual(b.get("/load_cfg/w").status, 200)
            text = b.get("/metrics").text
            self.assertNotIn("batchy_step_", text)
            self.assertIn("batchy_http_requests_total", text)


if __name__ == "__main__":
    unittest.main()
