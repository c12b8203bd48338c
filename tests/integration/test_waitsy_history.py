"""
test_waitsy_history.py - Waitsy judging a day by Batchy's history (SPEC
section 9, last bullet): a step is done for a day when any of its batches
kept in history succeeded that day, not only its latest record. Against a
real batchy and redis-server: an hourly workflow re-opened right after its
success, --date of an earlier day once later batches opened, a failure on
the day that never turned into a success, how few history pages are read;
and against a server without /history (the original service, an older
Batchy), which waitsy must still serve as before.

Batches of earlier days are written straight into Redis as Batchy writes
them: the snapshot hash <wf>-<id> and its id in the sorted set
batchy:batches:<wf> (member and score the id). Every request waitsy sends
goes through a small recording server in front of batchy, so the tests can
count them.
"""
import http.server
import json
import re
import signal
import threading
import unittest
from datetime import datetime, time as dtime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import harness
from harness import (ServiceTestCase, fmt_time, http_request, parse_time, run_waitsy, stamped,
                     start_waitsy)

TWO = "a:\n  p: 1\nb:\n"
INTERVAL = "0.2"


def utc(day, hour=0, minute=0, second=0):
    """An aware UTC datetime on `day` (a date)."""
    return datetime.combine(day, dtime(hour, minute, second), tzinfo=timezone.utc)


def epoch(dt):
    return int(dt.timestamp())


def record(status, start, end=None, message=None):
    """A step's record as Batchy keeps it in a snapshot."""
    rec = {"status": status, "batch_id": epoch(start), "batch_start": fmt_time(start),
           "batch_end": fmt_time(end) if end else None, "from_date": fmt_time(start),
           "to_date": fmt_time(start)}
    if message is not None:
        rec["error_message"] = message
    return rec


def texts(output):
    return [text for _, text in stamped(output)]


# ---------------------------------------------------------------- servers

class Recorder:
    """An HTTP server on 127.0.0.1 that records every path it is asked for
    and answers with answer(path) -> (status, body bytes, content type), or
    forwards to `target_port` (batchy) when that returns None."""

    def __init__(self, answer=None, target_port=None):
        self.paths = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with recorder.lock:
                    recorder.paths.append(self.path)
                reply = answer(self.path) if answer else None
                if reply is None:
                    r = http_request(target_port, "GET", self.path)
                    reply = (r.status, r.body, r.content_type or "application/json")
                status, body, ctype = reply
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def taken(self):
        """The paths asked for since the last call, and forget them."""
        with self.lock:
            out, self.paths = self.paths, []
        return out

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


NOT_FOUND_HTML = (b"<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n"
                  b"<h1>Not Found</h1>\n<p>The requested URL was not found on the server.</p>\n")


class Original:
    """A stand-in for the original Python service (or an older Batchy):
    get_status/<wf> answers the document set in `docs` (as the original's
    json.dumps wrote it), everything else a Flask-like HTML 404, unless
    `history` says what /history/... answers."""

    def __init__(self):
        self.docs = {}
        self.history = None  # (status, body, content type) for /history/...
        self.recorder = Recorder(self.answer)
        self.url = self.recorder.url

    def answer(self, path):
        parts = urlsplit(path).path.split("/")
        if len(parts) == 3 and parts[1] == "get_status" and parts[2] in self.docs:
            return 200, json.dumps(self.docs[parts[2]]).encode(), "application/json"
        if len(parts) == 3 and parts[1] == "history" and self.history:
            return self.history
        return 404, NOT_FOUND_HTML, "text/html; charset=utf-8"


# ---------------------------------------------------------------- assertions

class HistoryCase(unittest.TestCase):

    def show(self, res):
        return "exit %s after %.1fs\n--- stdout:\n%s--- stderr:\n%s" % (
            res.returncode, getattr(res, "elapsed", -1), res.stdout, res.stderr)

    def assert_exit(self, res, code):
        self.assertEqual(res.returncode, code, self.show(res))

    def assert_ready(self, res, wf, day, steps):
        """Exit 0, "<wf>: n/n steps done for <day>" then the ready line,
        nothing on stderr."""
        self.assert_exit(res, 0)
        lines = texts(res.stdout)
        self.assertEqual(lines[-2], "%s: %d/%d %s done for %s"
                         % (wf, steps, steps, "step" if steps == 1 else "steps", day),
                         self.show(res))
        self.assertTrue(lines[-1].startswith("ready: %s done for %s after " % (wf, day)),
                        self.show(res))
        self.assertEqual(res.stderr, "", self.show(res))

    def assert_not_ready(self, res, progress_start):
        """--once and not ready: exit 3, the progress line starts so, then
        the not-ready line; nothing on stderr."""
        self.assert_exit(res, 3)
        lines = texts(res.stdout)
        self.assertEqual(len(lines), 2, self.show(res))
        self.assertTrue(lines[0].startswith(progress_start), self.show(res))
        self.assertEqual(lines[1], "not ready (--once); exit 3")
        self.assertEqual(res.stderr, "", self.show(res))

    def history_requests(self, paths, wf):
        """The (limit, before) of each history request among paths, in order,
        after checking that every request is get_status/<wf> or history/<wf>."""
        out = []
        for path in paths:
            parts = urlsplit(path)
            if parts.path == "/get_status/%s" % wf:
                continue
            self.assertEqual(parts.path, "/history/%s" % wf, paths)
            query = parse_qs(parts.query, strict_parsing=True)
            self.assertEqual(sorted(query), ["before", "limit"], path)
            out.append((int(query["limit"][0]), int(query["before"][0])))
        return out


# ---------------------------------------------------------------- with history

class WaitsyHistoryTest(ServiceTestCase, HistoryCase):
    """Waitsy against a batchy with history, through a recording server."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.front = Recorder(target_port=cls.batchy.port)

    @classmethod
    def tearDownClass(cls):
        cls.front.stop()
        super().tearDownClass()

    def setUp(self):
        self.front.taken()

    def waitsy(self, *args, env=None):
        return run_waitsy(["--url", self.front.url] + list(args), env=env)

    def new_wf(self, text=TWO):
        wf = self.unique("hw")
        self.load(wf, text)
        return wf

    def write_batches(self, wf, batches):
        """Write snapshots <wf>-<id> and index them as Batchy does, in one
        EVAL: batches is [(start, {step: record})], any order."""
        script = ("for i = 1, #ARGV, 2 do "
                  "  local id = ARGV[i] local steps = cjson.decode(ARGV[i + 1]) "
                  "  for name, rec in pairs(steps) do "
                  "    redis.call('HSET', KEYS[1] .. '-' .. id, name, rec) end "
                  "  redis.call('ZADD', 'batchy:batches:' .. KEYS[1], id, id) "
                  "end return #ARGV / 2")
        args = []
        for start, steps in batches:
            texts_ = {name: json.dumps(rec, separators=(",", ":")) for name, rec in steps.items()}
            args += [str(epoch(start)), json.dumps(texts_)]
        self.assertEqual(self.redis.cli("EVAL", script, "1", wf, *args), str(len(batches)))

    def today(self):
        return harness.utcnow().date()

    # ------------------------------------------------------------ re-opened
    def test_hourly_workflow_reopened_at_once_after_its_success_is_ready(self):
        wf = self.new_wf()
        self.open_batch(wf)
        closed = self.close_batch(wf)
        day = parse_time(closed["a"]["batch_end"]).date()
        reopened = self.open_batch(wf)
        if parse_time(reopened["a"]["batch_start"]).date() != day:
            return  # UTC midnight passed between the close and the open
        self.front.taken()
        res = self.waitsy("-wf", wf, "--date", day.isoformat(), "--once")
        self.assert_ready(res, wf, day.isoformat(), 2)
        # get_status says open again; one page of history, the first, has the success
        paths = self.front.taken()
        self.assertEqual(paths[0], "/get_status/%s" % wf)
        self.assertEqual(self.history_requests(paths, wf),
                         [(100, epoch(utc(day + timedelta(days=2))))])
        self.assertEqual(len(paths), 2, paths)
        # the same without --date, on the day it ran
        res = self.waitsy("-wf", wf, "--once")
        if self.today() == day:
            self.assert_ready(res, wf, day.isoformat(), 2)
        # and waiting: ready at the first poll, the command runs
        res = self.waitsy("-wf", wf, "--date", day.isoformat(), "--interval", INTERVAL,
                          "--", "sh", "-c", "echo ran")
        self.assert_exit(res, 0)
        self.assertEqual(res.stdout.splitlines()[-1], "ran", self.show(res))

    def test_ready_from_get_status_alone_reads_no_history(self):
        wf = self.new_wf()
        self.open_batch(wf)
        day = parse_time(self.close_batch(wf)["a"]["batch_end"]).date().isoformat()
        res = self.waitsy("-wf", wf, "--date", day, "--once")
        self.assert_ready(res, wf, day, 2)
        self.assertEqual(self.front.taken(), ["/get_status/%s" % wf])

    # ------------------------------------------------------------ earlier days
    def earlier_days(self, wf):
        """Batches of three days ago (D) and around it, then today's, real
        ones: closed, and opened again. Returns D."""
        d = self.today() - timedelta(days=3)
        self.write_batches(wf, [
            # the day before D: a succeeded, b failed
            (utc(d - timedelta(days=1), 9), {
                "a": record("success", utc(d - timedelta(days=1), 9),
                            utc(d - timedelta(days=1), 9, 5)),
                "b": record("failed", utc(d - timedelta(days=1), 9),
                            utc(d - timedelta(days=1), 9, 5), "old failure")}),
            # started the day before D, ended on D: b succeeded on D
            (utc(d - timedelta(days=1), 23, 50), {
                "a": record("failed", utc(d - timedelta(days=1), 23, 50), utc(d, 0, 10), "x"),
                "b": record("success", utc(d - timedelta(days=1), 23, 50), utc(d, 0, 10))}),
            # D 10:00: a succeeded, b failed
            (utc(d, 10), {
                "a": record("success", utc(d, 10), utc(d, 10, 5)),
                "b": record("failed", utc(d, 10), utc(d, 10, 5), "disk full")}),
            # the day after D: both succeeded
            (utc(d + timedelta(days=1), 1), {
                "a": record("success", utc(d + timedelta(days=1), 1),
                            utc(d + timedelta(days=1), 1, 5)),
                "b": record("success", utc(d + timedelta(days=1), 1),
                            utc(d + timedelta(days=1), 1, 5))}),
        ])
        self.open_batch(wf)
        self.close_batch(wf)
        self.open_batch(wf)
        return d

    def test_earlier_date_is_ready_when_a_batch_succeeded_that_day(self):
        wf = self.new_wf()
        d = self.earlier_days(wf)
        self.front.taken()
        res = self.waitsy("-wf", wf, "--date", d.isoformat(), "--once")
        self.assert_ready(res, wf, d.isoformat(), 2)
        # one page, starting a day after the end of D: later batches are skipped
        self.assertEqual(self.history_requests(self.front.taken(), wf),
                         [(100, epoch(utc(d + timedelta(days=2))))])
        # b alone: the batch that ran over midnight into D
        res = self.waitsy("-wf", wf, "--date", d.isoformat(), "--step", "b", "--once")
        self.assert_ready(res, wf, d.isoformat(), 1)
        # the day after D too; waiting for it ends at the first poll
        after = (d + timedelta(days=1)).isoformat()
        res = self.waitsy("-wf", wf, "--date", after, "--interval", INTERVAL,
                          "--timeout", "30")
        self.assert_ready(res, wf, after, 2)

    def test_earlier_date_without_a_success_of_a_step_that_day_is_not_ready(self):
        wf = self.new_wf()
        d = self.earlier_days(wf)
        before = (d - timedelta(days=1)).isoformat()
        # the day before D: b only failed (and its success after midnight is D's)
        res = self.waitsy("-wf", wf, "--date", before, "--once")
        self.assert_not_ready(res, "%s: 1/2 steps done for %s; waiting on b (" % (wf, before))
        res = self.waitsy("-wf", wf, "--date", before, "--step", "a", "--once")
        self.assert_ready(res, wf, before, 1)
        # a failure on an earlier day, the step's latest record being today's:
        # waiting, never --fail-fast's failure
        res = self.waitsy("-wf", wf, "--date", before, "--fail-fast", "--once")
        self.assert_exit(res, 3)
        self.assertEqual(res.stderr, "", self.show(res))
        # two days before D: nothing at all
        older = (d - timedelta(days=2)).isoformat()
        res = self.waitsy("-wf", wf, "--date", older, "--once")
        self.assert_not_ready(res, "%s: 0/2 steps done for %s; waiting on a (open since "
                              % (wf, older))

    def test_local_time_decides_the_day_of_a_success_in_history(self):
        wf = self.new_wf("a:\n")
        d = self.today() - timedelta(days=3)
        # 03:00 UTC the day after D is 22:00 on D in EST (UTC-5)
        end = utc(d + timedelta(days=1), 3)
        self.write_batches(wf, [(end - timedelta(minutes=5),
                                 {"a": record("success", end - timedelta(minutes=5), end)})])
        self.open_batch(wf)
        env = {"TZ": "EST5"}
        res = self.waitsy("-wf", wf, "--date", d.isoformat(), "--local", "--once", env=env)
        self.assert_ready(res, wf, d.isoformat(), 1)
        res = self.waitsy("-wf", wf, "--date", d.isoformat(), "--once", env=env)
        self.assert_exit(res, 3)
        after = (d + timedelta(days=1)).isoformat()
        res = self.waitsy("-wf", wf, "--date", after, "--once", env=env)
        self.assert_ready(res, wf, after, 1)
        res = self.waitsy("-wf", wf, "--date", after, "--local", "--once", env=env)
        self.assert_exit(res, 3)

    # ------------------------------------------------------------ failures
    def test_step_failed_on_the_day_and_never_succeeded_that_day_is_awaited(self):
        wf = self.new_wf()
        d = self.today()
        # a success of the day before, in history, does not count
        yesterday = utc(d - timedelta(days=1), 12)
        self.write_batches(wf, [(yesterday, {
            "a": record("success", yesterday, yesterday + timedelta(minutes=1)),
            "b": record("success", yesterday, yesterday + timedelta(minutes=1))})])
        self.open_batch(wf)
        self.close_batch(wf, {"step": "a"})
        self.fail_batch(wf, {"step": "b", "error": "disk full"})
        self.open_batch(wf, {"step": "b"})
        doc = self.fail_batch(wf, {"step": "b", "error": "disk full again"})
        day = parse_time(doc["b"]["batch_end"]).date().isoformat()
        if day != d.isoformat():
            return  # UTC midnight passed
        at = parse_time(doc["b"]["batch_end"]).strftime("%H:%M:%S")
        res = self.waitsy("-wf", wf, "--date", day, "--once")
        self.assert_not_ready(res, "%s: 1/2 steps done for %s; waiting on b (failed at %s)"
                              % (wf, day, at))
        res = self.waitsy("-wf", wf, "--date", day, "--fail-fast", "--interval", INTERVAL)
        self.assert_exit(res, 1)
        self.assertEqual(texts(res.stderr),
                         ["waitsy: failed: %s: step b failed at %s: disk full again; exit 1"
                          % (wf, at)])
        # a re-run that succeeds makes it ready, even once opened again
        self.open_batch(wf, {"step": "b"})
        self.close_batch(wf, {"step": "b"})
        doc = self.open_batch(wf)
        if parse_time(doc["b"]["batch_start"]).date().isoformat() != day:
            return
        res = self.waitsy("-wf", wf, "--date", day, "--fail-fast", "--once")
        self.assert_ready(res, wf, day, 2)

    def test_failure_after_a_success_on_the_same_day_stops_nothing(self):
        wf = self.new_wf()
        self.open_batch(wf)
        day = parse_time(self.close_batch(wf)["a"]["batch_end"]).date().isoformat()
        self.open_batch(wf)
        doc = self.fail_batch(wf, {"error": "second run broke"})
        if parse_time(doc["a"]["batch_end"]).date().isoformat() != day:
            return  # UTC midnight passed
        res = self.waitsy("-wf", wf, "--date", day, "--fail-fast", "--once")
        self.assert_ready(res, wf, day, 2)

    # ------------------------------------------------------------ paging
    def test_pages_back_only_while_batches_can_concern_the_day(self):
        # every ten minutes for five days around D: the first page (100) does
        # not reach D, the second is sized to reach the day before D
        wf = self.new_wf()
        d = self.today() - timedelta(days=4)
        first = utc(d - timedelta(days=2))
        batches = []
        for i in range(5 * 144):
            start = first + timedelta(minutes=10 * i)
            end = start + timedelta(minutes=5)
            batches.append((start, {"a": record("failed", start, end),
                                    "b": record("failed", start, end)}))
        # a succeeded on D only in a batch that started the day before
        batches.append((utc(d - timedelta(days=1), 23, 55), {
            "a": record("success", utc(d - timedelta(days=1), 23, 55), utc(d, 0, 5)),
            "b": record("failed", utc(d - timedelta(days=1), 23, 55), utc(d, 0, 5))}))
        self.write_batches(wf, batches)
        self.open_batch(wf)
        self.front.taken()

        res = self.waitsy("-wf", wf, "--date", d.isoformat(), "--step", "a", "--once")
        self.assert_ready(res, wf, d.isoformat(), 1)
        pages = self.history_requests(self.front.taken(), wf)
        self.assertEqual(len(pages), 2, pages)
        self.assertEqual(pages[0], (100, epoch(utc(d + timedelta(days=2)))))
        # the second starts below the first page's last id, and is sized to
        # reach the day before D at once
        last_of_first = epoch(utc(d + timedelta(days=2))) - 100 * 600
        self.assertEqual(pages[1][1], last_of_first)
        self.assertGreaterEqual(pages[1][0], (last_of_first - epoch(utc(d - timedelta(days=1))))
                                // 600)
        self.assertLessEqual(pages[1][0], 1000)

        # b never succeeded: the same two pages, no more (the second reaches
        # below the day before D), and not ready
        res = self.waitsy("-wf", wf, "--date", d.isoformat(), "--once")
        self.assert_not_ready(res, "%s: 1/2 steps done for %s; waiting on b (open since "
                              % (wf, d.isoformat()))
        self.assertEqual(self.history_requests(self.front.taken(), wf), pages)

    def test_verbose_shows_each_history_request(self):
        wf = self.new_wf()
        self.open_batch(wf)
        day = parse_time(self.close_batch(wf)["a"]["batch_end"]).date()
        self.open_batch(wf)
        res = self.waitsy("-wf", wf, "--date", day.isoformat(), "--once", "-v")
        self.assert_exit(res, 0)
        err = texts(res.stderr)
        self.assertTrue(any(re.match(r"^GET %s/history/%s\?limit=100&before=%d -> 200, \d+ bytes "
                                     r"in " % (re.escape(self.front.url), wf,
                                               epoch(utc(day + timedelta(days=2)))), line)
                            for line in err), self.show(res))


# ---------------------------------------------------------------- without history

class WaitsyWithoutHistoryTest(HistoryCase):
    """Waitsy against a server without /history: get_status as before."""

    def setUp(self):
        self.server = Original()
        self.addCleanup(self.server.recorder.stop)
        self.day = harness.utcnow().date() - timedelta(days=1)
        end = utc(self.day, 6)
        self.success = record("success", end - timedelta(minutes=5), end)
        self.reopened = record("open", end + timedelta(seconds=1))

    def waitsy(self, *args):
        return run_waitsy(["--url", self.server.url, "-wf", "wf1", "--date",
                           self.day.isoformat()] + list(args))

    def test_ready_from_get_status(self):
        self.server.docs["wf1"] = {"a": self.success, "b": self.success}
        res = self.waitsy("--once")
        self.assert_ready(res, "wf1", self.day.isoformat(), 2)
        self.assertEqual(self.server.recorder.taken(), ["/get_status/wf1"])

    def test_reopened_step_is_awaited_as_before_and_history_is_asked_once(self):
        self.server.docs["wf1"] = {"a": self.success, "b": self.reopened}
        res = self.waitsy("--once")
        self.assert_not_ready(res, "wf1: 1/2 steps done for %s; waiting on b (open since 06:00:01)"
                              % self.day.isoformat())
        paths = self.server.recorder.taken()
        self.assertEqual(len(paths), 2, paths)
        self.assertEqual(paths[0], "/get_status/wf1")
        self.assertTrue(paths[1].startswith("/history/wf1?"), paths)
        # polling: history is not asked again once it answered 404
        w = start_waitsy(["--url", self.server.url, "-wf", "wf1", "--date", self.day.isoformat(),
                          "--interval", INTERVAL, "--timeout", str(harness.WAITSY_TIMEOUT)])
        try:
            w.wait_for(lambda out, err: out.count(" steps done for ") >= 3,
                       harness.WAITSY_TIMEOUT, "three progress lines")
            w.send_signal(signal.SIGTERM)
            self.assertEqual(w.wait(), 143)
            polls = w.stdout().count(" steps done for ")
            self.assertEqual(w.stderr(), "")
        finally:
            w.cleanup()
        paths = self.server.recorder.taken()
        self.assertTrue(paths[1].startswith("/history/wf1?"), paths)
        self.assertEqual(paths[:1] + paths[2:], ["/get_status/wf1"] * (len(paths) - 1))
        # (SIGTERM may have come after a request and before its line)
        self.assertIn(len(paths) - 1, (polls, polls + 1), paths)
        # and the re-run's success makes it ready
        self.server.docs["wf1"]["b"] = self.success
        res = self.waitsy("--once")
        self.assert_ready(res, "wf1", self.day.isoformat(), 2)

    def test_answers_that_are_not_history_fall_back_silently(self):
        self.server.docs["wf1"] = {"a": self.success, "b": self.reopened}
        answers = [
            (200, b"<html>a login page</html>", "text/html"),
            (200, b'{"a": {"status": "open"}}', "application/json"),
            (200, b"[]", "application/json"),
            (400, b'{"error": "bad request"}', "application/json"),
            (403, b"forbidden", "text/plain"),
            (409, b'{"error": "snapshot wf1-1 is not valid JSON"}', "application/json"),
        ]
        for answer in answers:
            with self.subTest(answer=answer):
                self.server.history = answer
                self.server.recorder.taken()
                res = self.waitsy("--once")
                self.assert_not_ready(res, "wf1: 1/2 steps done for %s; waiting on b (open "
                                      "since 06:00:01)" % self.day.isoformat())
                self.assertEqual(len(self.server.recorder.taken()), 2)
                res = self.waitsy("--once", "-v")
                self.assert_exit(res, 3)
                self.assertIn("judging by the latest records only", res.stderr)

    def test_history_5xx_is_retried_like_get_status(self):
        self.server.docs["wf1"] = {"a": self.success, "b": self.reopened}
        self.server.history = (503, b'{"error": "Redis is unreachable"}', "application/json")
        res = self.waitsy("--once")
        self.assert_exit(res, 3)
        self.assertEqual(texts(res.stdout), ["not ready (--once); exit 3"])
        self.assertEqual(texts(res.stderr), ["waitsy: Batchy at %s answered 503: Redis is "
                                             "unreachable" % self.server.url])

    def test_fail_fast_as_before(self):
        self.server.docs["wf1"] = {"a": self.success,
                                   "b": record("failed", utc(self.day, 7), utc(self.day, 7, 8, 9),
                                               "boom")}
        res = self.waitsy("--fail-fast", "--interval", INTERVAL)
        self.assert_exit(res, 1)
        self.assertEqual(texts(res.stderr),
                         ["waitsy: failed: wf1: step b failed at 07:08:09: boom; exit 1"])
        self.assertEqual(texts(res.stdout),
                         ["wf1: 1/2 steps done for %s; waiting on b (failed at 07:08:09)"
                          % self.day.isoformat()])
        # without --fail-fast: waiting
        res = self.waitsy("--once")
        self.assert_exit(res, 3)


if __name__ == "__main__":
    unittest.main()
