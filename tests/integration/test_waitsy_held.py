"""
test_waitsy_held.py - Waitsy waking on a held get_status between polls
(SPEC section 10): after a poll that found a workflow not ready, it sends
GET get_status/<wf>?wait=S with If-None-Match: <the ETag of that poll>, and
polls again as soon as Batchy answers that the workflow changed.

Against a real batchy and redis-server: a close wakes a waitsy whose
interval is a minute. Against small servers of the test's own (http.server
on loopback), which record every request: one that sends no ETag (an older
Batchy, the original service) is polled every interval as before; ones that
send an ETag but do not hold (answer at once, 200 with the same ETag, 503,
400) are never polled in a tight loop; one that holds as Batchy does wakes
waitsy at once, and its held requests keep --interval, --timeout and
signals.
"""
import http.server
import json
import re
import signal
import threading
import time
import unittest
from urllib.parse import parse_qs, urlsplit

import harness
from harness import (PROMPT, SLOW, ServiceTestCase, parse_time, run_waitsy, stamped,
                     start_waitsy)

THREE = "a:\n  p: 1\nb:\nc:\n"
DAY = "2030-01-02"
WAITING = {"a": {"status": "open", "batch_id": 1893571200,
                 "batch_start": DAY + "T08:00:00.000000", "batch_end": None}}
DONE = {"a": {"status": "success", "batch_id": 1893571200,
              "batch_start": DAY + "T08:00:00.000000", "batch_end": DAY + "T08:05:00.000000"}}


def texts(output):
    """The texts of stamped lines, without their time stamps."""
    return [text for _, text in stamped(output)]


# ---------------------------------------------------------------- a server of our own

class Stub:
    """A server on 127.0.0.1 answering get_status/<wf> from `docs` ({wf:
    document}), /index as Batchy does, and 404 to anything else (no
    history). Every request is recorded as (monotonic time, path, query
    dict, If-None-Match or None).

    `etags`: whether get_status answers carry an ETag ("<wf>-<version>",
    quoted; change() makes a new version). `held` says how a request with
    wait= and If-None-Match is answered:
      "hold"      as Batchy: 200 with the new state as soon as the workflow
                  changes (at once if it changed already), else 304 after
                  wait= seconds;
      "304"       304 at once (a server that ignores wait=, or is stopping);
      "200-same"  200 at once with the same ETag (ignores If-None-Match);
      "200-new"   200 at once with a new ETag each time (a workflow that
                  changes all the time);
      "503", "400"  that status at once, with a Batchy error body."""

    def __init__(self, docs, etags=True, held="hold"):
        self.docs = {wf: json.loads(json.dumps(doc)) for wf, doc in docs.items()}
        self.versions = {wf: 1 for wf in docs}
        self.etags = etags
        self.held = held
        self.requests = []
        self.cond = threading.Condition()
        self.stopping = False
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body=b"", ctype="application/json", etag=None):
                self.send_response(status)
                if status != 304:
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                if etag:
                    self.send_header("ETag", etag)
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)

            def do_GET(self):
                try:
                    self.answer()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # waitsy has gone

            def answer(self):
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                inm = self.headers.get("If-None-Match")
                with stub.cond:
                    stub.requests.append((time.monotonic(), url.path, query, inm))
                    stub.cond.notify_all()
                parts = url.path.split("/")
                if url.path == "/index":
                    self.reply(200, b"Batchy %s" % harness.VERSION.encode(), "text/plain")
                    return
                if len(parts) != 3 or parts[1] != "get_status" or parts[2] not in stub.docs:
                    self.reply(404, b'{"error": "not here"}')
                    return
                wf = parts[2]
                if "wait" in query and inm:
                    if stub.held in ("503", "400"):
                        self.reply(int(stub.held), b'{"error": "held requests: no"}')
                        return
                    if stub.held == "304":
                        self.reply(304, etag=stub.etag(wf))
                        return
                    if stub.held == "200-new":
                        stub.change(wf, stub.docs[wf])
                    elif stub.held == "hold":
                        with stub.cond:
                            stub.cond.wait_for(lambda: stub.etag(wf) != inm or stub.stopping,
                                               timeout=int(query["wait"]))
                            unchanged = stub.etag(wf) == inm
                        if unchanged:
                            self.reply(304, etag=inm)
                            return
                with stub.cond:
                    body, etag = json.dumps(stub.docs[wf]).encode(), stub.etag(wf)
                self.reply(200, body, etag=etag if stub.etags else None)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def etag(self, wf):
        return '"%s-%d"' % (wf, self.versions[wf])

    def change(self, wf, doc):
        """Give wf a new state (and a new ETag); wakes held requests."""
        with self.cond:
            self.docs[wf] = doc
            self.versions[wf] += 1
            self.cond.notify_all()

    def taken(self):
        with self.cond:
            return list(self.requests)

    def polls(self):
        """The get_status requests without wait=: waitsy's polls."""
        return [r for r in self.taken() if r[1].startswith("/get_status/") and "wait" not in r[2]]

    def holds(self):
        """The get_status requests with wait=: the held ones."""
        return [r for r in self.taken() if r[1].startswith("/get_status/") and "wait" in r[2]]

    def wait_for_holds(self, n, timeout):
        """Block until n held requests have arrived; AssertionError with the
        requests seen when they do not in time."""
        with self.cond:
            if not self.cond.wait_for(lambda: len([r for r in self.requests if "wait" in r[2]])
                                      >= n, timeout):
                raise AssertionError("no %d held request(s) within %ss; requests: %r"
                                     % (n, timeout, self.requests))

    def stop(self):
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- assertions

class HeldCase(unittest.TestCase):

    def show(self, res):
        return "exit %s after %.1fs\n--- stdout:\n%s--- stderr:\n%s" % (
            res.returncode, getattr(res, "elapsed", -1), res.stdout, res.stderr)

    def assert_exit(self, res, code):
        self.assertEqual(res.returncode, code, self.show(res))

    def assert_gaps_at_least(self, requests, seconds, detail):
        """Consecutive requests arrived at least `seconds` apart (a lower
        bound only: a slow machine makes them further apart, never closer)."""
        times = [t for t, _, _, _ in requests]
        for earlier, later in zip(times, times[1:]):
            self.assertGreaterEqual(later - earlier, seconds, "requests %.3fs apart:\n%s"
                                    % (later - earlier, detail))


# ---------------------------------------------------------------- against batchy

class WaitsyHeldTest(ServiceTestCase, HeldCase):
    """Waitsy against the class's batchy, which holds get_status."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.url = "http://127.0.0.1:%d" % cls.batchy.port

    def test_close_through_the_api_wakes_waitsy_at_once(self):
        wf = self.unique("held")
        self.load(wf, THREE)
        self.open_batch(wf)
        started_day = harness.utcnow().date().isoformat()
        # a minute between polls: an exit within PROMPT of the close can
        # only come from the held request
        w = start_waitsy(["--url", self.url, "-wf", wf, "--interval", "60", "-v"])
        try:
            w.wait_for(lambda out, err: "0/3 steps done" in out, 10 * SLOW,
                       "a first progress line")
            # the held request follows the progress line: let it reach batchy
            time.sleep(0.5 * SLOW)
            early = [line for line in texts(w.stderr()) if "?wait=" in line]
            self.assertEqual(early, [], "the held get_status was answered before anything "
                                        "changed: does batchy hold requests (?wait=, SPEC "
                                        "section 10)?\n" + w.stderr())
            closed = time.monotonic()
            doc = self.close_batch(wf)
            rc = w.wait(PROMPT)
            took = time.monotonic() - closed
            out, err = w.stdout(), w.stderr()
        finally:
            w.cleanup()
        detail = "exit %s %.2fs after the close\n--- stdout:\n%s--- stderr:\n%s" % (
            rc, took, out, err)
        self.assertEqual(rc, 0, detail)
        self.assertLess(took, PROMPT, detail)
        day = parse_time(doc["a"]["batch_end"]).date().isoformat()
        if day != started_day:  # UTC midnight passed during the test: no verdict
            return
        lines = texts(out)
        self.assertEqual(len(lines), 3, detail)  # two polls, the ready line
        self.assertTrue(lines[0].startswith("%s: 0/3 steps done for %s" % (wf, day)), detail)
        self.assertEqual(lines[1], "%s: 3/3 steps done for %s" % (wf, day), detail)
        self.assertRegex(lines[2], r"^ready: %s done for %s after \d+ s$" % (wf, day))
        # -v: the poll, the held request answered 200, then the poll that
        # found it ready
        err_lines = texts(err)
        base = r"^GET %s/get_status/%s" % (re.escape(self.url), wf)
        held = [i for i, line in enumerate(err_lines)
                if re.match(base + r"\?wait=(\d+) -> ", line)]
        polls = [i for i, line in enumerate(err_lines) if re.match(base + r" -> 200, ", line)]
        self.assertEqual(len(held), 1, detail)
        self.assertEqual(len(polls), 2, detail)
        m = re.match(base + r"\?wait=(\d+) -> (\d+), ", err_lines[held[0]])
        self.assertIn(int(m.group(1)), (59, 60), detail)  # the time to the next poll
        self.assertEqual(m.group(2), "200", detail)
        self.assertLess(polls[0], held[0], detail)
        self.assertLess(held[0], polls[1], "the last poll did not follow the held "
                                           "request's answer\n" + detail)


# ---------------------------------------------------------------- against stubs

class WaitsyHeldStubTest(HeldCase):
    """Waitsy against servers of the test's own (Stub)."""

    def stub(self, docs=None, **kw):
        s = Stub(docs or {"wf1": WAITING}, **kw)
        self.addCleanup(s.stop)
        return s

    def run_for(self, stub, seconds, *args):
        """Run waitsy against `stub` for `seconds` (from its first request),
        then stop it with SIGTERM; (stdout, stderr, a detail text)."""
        w = start_waitsy(["--url", stub.url, "-wf", "wf1", "--date", DAY] + list(args))
        try:
            w.wait_for(lambda out, err: stub.taken(), 10 * SLOW, "a first request")
            time.sleep(seconds)
            w.send_signal(signal.SIGTERM)
            rc = w.wait(PROMPT + 5)
            out, err = w.stdout(), w.stderr()
        finally:
            w.cleanup()
        detail = "exit %s\n--- stdout:\n%s--- stderr:\n%s\nrequests: %r" % (
            rc, out, err, stub.taken())
        self.assertEqual(rc, 143, detail)
        return out, err, detail

    def test_server_without_etag_is_polled_every_interval(self):
        stub = self.stub(etags=False)
        out, err, detail = self.run_for(stub, 2, "--interval", "0.5")
        polls = stub.polls()
        self.assertEqual(stub.holds(), [], detail)
        self.assertTrue(all(inm is None for _, _, _, inm in stub.taken()), detail)
        self.assertGreaterEqual(len(polls), 2, detail)
        self.assert_gaps_at_least(polls, 0.45, detail)
        progress = [line for line in texts(out) if " step done for " in line]
        self.assertEqual(len(progress), len(polls), detail)
        self.assertEqual(err, "", detail)

    def test_servers_that_do_not_hold_are_not_polled_in_a_tight_loop(self):
        # each answers every held request at once: waitsy sleeps out the
        # rest of the interval, then polls
        for mode in ("304", "200-same", "503", "400"):
            with self.subTest(mode):
                stub = self.stub(held=mode)
                out, err, detail = self.run_for(stub, 3, "--interval", "1")
                polls, holds = stub.polls(), stub.holds()
                self.assertGreaterEqual(len(holds), 1, detail)
                self.assertLessEqual(len(polls), 3 / 1 + 2, detail)
                self.assertLessEqual(len(holds), len(polls), detail)
                self.assert_gaps_at_least(polls, 0.9, detail)
                for _, path, query, inm in holds:
                    self.assertEqual((path, query["wait"], inm), ("/get_status/wf1", "1",
                                                                  '"wf1-1"'), detail)
                self.assertEqual(err, "", detail)

    def test_a_workflow_that_changes_all_the_time_is_polled_at_most_every_tenth_second(self):
        stub = self.stub(held="200-new")
        out, err, detail = self.run_for(stub, 2, "--interval", "1")
        polls = stub.polls()
        self.assertLessEqual(len(polls), 2 / 0.1 + 3, detail)
        # The first change is followed at once (a change after a quiet
        # spell must wake waitsy without delay); from then on, the polls
        # that changes bring on are a tenth of a second apart at least.
        self.assert_gaps_at_least(polls[1:], 0.09, detail)
        # one line per poll, but for a poll in flight when waitsy was stopped
        lines = len([line for line in texts(out) if " step done for " in line])
        self.assertIn(len(polls) - lines, (0, 1), detail)

    def test_a_change_wakes_waitsy_on_the_first_workflow_not_ready(self):
        stub = self.stub({"wfa": DONE, "wfb": WAITING})
        w = start_waitsy(["--url", stub.url, "-wf", "wfa", "-wf", "wfb", "--date", DAY,
                          "--interval", "60", "-v"])
        try:
            stub.wait_for_holds(1, 10 * SLOW)
            changed = time.monotonic()
            stub.change("wfb", DONE)
            rc = w.wait(PROMPT)
            took = time.monotonic() - changed
            out, err = w.stdout(), w.stderr()
        finally:
            w.cleanup()
        detail = "exit %s %.2fs after the change\n--- stdout:\n%s--- stderr:\n%s" % (
            rc, took, out, err)
        self.assertEqual(rc, 0, detail)
        self.assertLess(took, PROMPT, detail)
        lines = texts(out)
        self.assertEqual(lines[-2], "wfa: 1/1 step done for %s | wfb: 1/1 step done for %s"
                         % (DAY, DAY), detail)
        self.assertEqual(len(lines), 3, detail)
        requests = [(path, query, inm) for _, path, query, inm in stub.taken()
                    if path.startswith("/get_status/")]
        self.assertEqual(requests[:3], [("/get_status/wfa", {}, None),
                                        ("/get_status/wfb", {}, None),
                                        ("/get_status/wfb", {"wait": "60"}, '"wfb-1"')],
                         detail)
        self.assertEqual(requests[3:], [("/get_status/wfa", {}, None),
                                        ("/get_status/wfb", {}, None)], detail)
        self.assertRegex(err, r"GET %s/get_status/wfb\?wait=60 -> 200, " % re.escape(stub.url))

    def test_a_held_request_is_at_most_600_s_and_a_signal_ends_it(self):
        stub = self.stub()
        w = start_waitsy(["--url", stub.url, "-wf", "wf1", "--date", DAY,
                          "--interval", "3600"])
        try:
            stub.wait_for_holds(1, 10 * SLOW)
            time.sleep(0.2)
            sent = time.monotonic()
            w.send_signal(signal.SIGTERM)
            rc = w.wait(PROMPT + 5)
            took = time.monotonic() - sent
            out, err = w.stdout(), w.stderr()
        finally:
            w.cleanup()
        detail = "exit %s after %.1fs\n--- stdout:\n%s--- stderr:\n%s" % (rc, took, out, err)
        self.assertEqual(rc, 143, detail)
        self.assertLess(took, PROMPT, detail)
        self.assertEqual(stub.holds()[0][2], {"wait": "600"}, detail)
        lines = texts(out)
        self.assertEqual(len(lines), 2, detail)
        self.assertRegex(lines[1], r"^interrupted by SIGTERM after \d+ s; exit 143$")
        self.assertEqual(err, "", detail)

    def test_a_held_request_never_outlasts_the_timeout(self):
        stub = self.stub()
        res = run_waitsy(["--url", stub.url, "-wf", "wf1", "--date", DAY, "--interval", "60",
                          "--timeout", "2.5"])
        self.assert_exit(res, 2)
        detail = self.show(res) + "requests: %r" % stub.taken()
        self.assertLess(res.elapsed, 2.5 + PROMPT, detail)
        holds = stub.holds()
        self.assertGreaterEqual(len(holds), 1, detail)
        self.assertTrue(all(1 <= int(q["wait"]) <= 2 for _, _, q, _ in holds), detail)
        self.assertRegex(res.stderr, r"timed out after [23] s waiting for wf1")


if __name__ == "__main__":
    unittest.main()
