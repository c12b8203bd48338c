"""Batchy's metrics as Prometheus sees them (SPEC section 11): the example
alert rules checked and tested by promtool, and a real Prometheus (Debian's
package, installed by scripts/deps.sh) started on a free port with a
throw-away data folder, scraping a real Batchy, queried over its HTTP API."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

from harness import REPO_ROOT, SLOW, ServiceTestCase, free_port

RULES = os.path.join(REPO_ROOT, "cfg", "prometheus", "batchy-alerts.yml")
RULE_TESTS = os.path.join(REPO_ROOT, "tests", "prometheus", "alerts_test.yml")


def promtool(*args):
    tool = shutil.which("promtool")
    if not tool:
        raise AssertionError("promtool not found: scripts/deps.sh installs prometheus")
    return subprocess.run([tool] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=120)


class AlertRulesTest(unittest.TestCase):

    def test_the_example_rules_check(self):
        p = promtool("check", "rules", RULES)
        self.assertEqual(p.returncode, 0, p.stdout.decode())
        self.assertIn("SUCCESS: 4 rules found", p.stdout.decode())

    def test_the_example_rules_fire_as_their_tests_say(self):
        p = promtool("test", "rules", RULE_TESTS)
        self.assertEqual(p.returncode, 0, p.stdout.decode())
        self.assertIn("SUCCESS", p.stdout.decode())


class PrometheusScrapeTest(ServiceTestCase):
    """One Prometheus for the class, scraping this class's batchy every
    second."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.prom_dir = tempfile.mkdtemp(prefix="batchy-prometheus-")
        cls.prom_port = free_port()
        config = os.path.join(cls.prom_dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "rule_files: [%s]\n"
                    "scrape_configs:\n  - job_name: batchy\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % (json.dumps(RULES), cls.batchy.port))
        binary = shutil.which("prometheus")
        if not binary:
            cls._cleanup_prometheus()
            raise AssertionError("prometheus not found: scripts/deps.sh installs it")
        cls.prom_log = open(os.path.join(cls.prom_dir, "prometheus.log"), "wb")
        cls.prom = subprocess.Popen(
            [binary, "--config.file=" + config,
             "--storage.tsdb.path=" + os.path.join(cls.prom_dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % cls.prom_port],
            stdout=cls.prom_log, stderr=cls.prom_log, stdin=subprocess.DEVNULL)

    @classmethod
    def _cleanup_prometheus(cls):
        shutil.rmtree(cls.prom_dir, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.prom.poll() is None:
                cls.prom.terminate()
                try:
                    cls.prom.wait(30)
                except subprocess.TimeoutExpired:
                    cls.prom.kill()
                    cls.prom.wait()
            cls.prom_log.close()
        finally:
            cls._cleanup_prometheus()
            super().tearDownClass()

    def query(self, promql):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (
            self.prom_port, urllib.parse.urlencode({"query": promql}))
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        self.assertEqual(body["status"], "success", body)
        return body["data"]["result"]

    def wait_for(self, promql, what, timeout=60 * SLOW):
        """The query's result once it is not empty (Prometheus has scraped
        what the test did), within timeout."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                result = self.query(promql)
                if result:
                    return result
            except OSError as e:  # Prometheus still starting
                last = e
            time.sleep(0.25)
        with open(os.path.join(self.prom_dir, "prometheus.log"), "rb") as f:
            log = f.read()[-2000:].decode("utf-8", "replace")
        self.fail("%s: %r never answered within %ss (%s)\n%s" % (what, promql, timeout, last, log))

    def test_prometheus_sees_a_step_fail_and_a_step_become_late(self):
        wf = self.unique("prom")
        self.load(wf, 'job1:\n  p: 1\njob2:\n  q: x\n  expected_by: "00:00"\n')
        self.ok("open_batch", wf)
        sel = 'workflow="%s",step="job1"' % wf
        self.wait_for('batchy_step_status{%s,status="open"} == 1' % sel, "job1 open")
        self.ok("fail_batch", wf, {"step": "job1", "error": "disk full"})
        self.wait_for('batchy_step_status{%s,status="failed"} == 1' % sel, "job1 failed")
        # its time (00:00 UTC) has passed and it has not succeeded today
        late = self.wait_for('batchy_step_late{workflow="%s",step="job2"} == 1' % wf, "job2 late")
        self.assertEqual(late[0]["metric"]["job"], "batchy")
        up = self.wait_for('up{job="batchy"} == 1', "batchy scraped")
        self.assertEqual(up[0]["value"][1], "1")
        self.wait_for('batchy_redis_up == 1', "Redis up")
        # the example rule loaded in this Prometheus, its alert pending or
        # firing for the failed step
        alerts = self.wait_for('ALERTS{alertname="BatchyStepFailed",workflow="%s"}' % wf,
                               "the BatchyStepFailed alert")
        self.assertIn(alerts[0]["metric"]["alertstate"], ("pending", "firing"))


if __name__ == "__main__":
    unittest.main()
