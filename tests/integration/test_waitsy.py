"""
test_waitsy.py - Waitsy, the command-line waiter, against a real batchy and
redis-server: readiness and the target day, exit statuses, the command after
`--`, signals, Batchy going away and coming back, output, HTTP (path prefix,
token, proxies answering oddly) and the command line.

The day is never waited for: tests pick it with --date, write batch times
straight into Redis (set_state), or start waitsy's clock where they want it
with libfaketime (harness.faketime_env).
"""
import http.server
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import unittest
from datetime import datetime, timedelta, timezone

import harness
from harness import (OwnBatchyMixin, PROMPT, ServiceTestCase, SLOW, VERSION, faketime_env,
                     free_port, http_request, parse_time, run_waitsy, stamped, start_waitsy)

THREE = "a:\n  p: 1\nb:\nc:\n"
INTERVAL = "0.2"
# "+14" all year round, and US Eastern without summer time: fixed offsets,
# no tzdata needed.
TZ_PLUS14 = "<+14>-14"
TZ_EST = "EST5"


def iso(dt):
    """An aware datetime as a batchy time text."""
    return harness.fmt_time(dt)


def utc(*fields):
    return datetime(*fields, tzinfo=timezone.utc)


def success(end, start=None):
    start = start or (end - timedelta(minutes=5))
    return {"status": "success", "batch_start": iso(start), "batch_end": iso(end),
            "batch_id": int(start.timestamp())}


def failed(end, message=None):
    rec = {"status": "failed", "batch_start": iso(end - timedelta(minutes=5)),
           "batch_end": iso(end), "batch_id": int(end.timestamp()) - 300}
    if message is not None:
        rec["error_message"] = message
    return rec


def opened(start):
    return {"status": "open", "batch_start": iso(start), "batch_end": None,
            "batch_id": int(start.timestamp())}


def texts(output):
    """The texts of stamped lines, without their time stamps."""
    return [text for _, text in stamped(output)]


class WaitsyCase(unittest.TestCase):
    """Assertions shared by every waitsy test class."""

    def show(self, res):
        return "exit %s after %.1fs\n--- stdout:\n%s--- stderr:\n%s" % (
            res.returncode, getattr(res, "elapsed", -1), res.stdout, res.stderr)

    def assert_exit(self, res, code):
        self.assertEqual(res.returncode, code, self.show(res))

    def assert_ready(self, res, wfs, date, command=None):
        """Exit 0; stdout ends with a progress line saying every workflow is
        done, then the ready line; nothing on stderr."""
        self.assert_exit(res, 0)
        lines = texts(res.stdout)
        self.assertGreaterEqual(len(lines), 2, self.show(res))
        ready = "ready: %s done for %s after " % (", ".join(wfs), date)
        self.assertTrue(lines[-1].startswith(ready), self.show(res))
        self.assertRegex(lines[-1], r" after \d+ s(; running .*)?$")
        if command:
            self.assertTrue(lines[-1].endswith("; running %s" % command), self.show(res))
        progress = lines[-2].split(" | ")
        self.assertEqual(len(progress), len(wfs), self.show(res))
        for wf, part in zip(wfs, progress):
            self.assertRegex(part, r"^%s: (\d+)/\1 steps? done for %s$" % (re.escape(wf), date))
        self.assertEqual(res.stderr, "", self.show(res))
        return lines

    def assert_error_line(self, res, code, *needles):
        """Exit `code`; the last stderr line is "<stamp> waitsy: ... ; exit
        <code>" and holds every needle."""
        self.assert_exit(res, code)
        lines = texts(res.stderr)
        self.assertTrue(lines, self.show(res))
        last = lines[-1]
        self.assertTrue(last.startswith("waitsy: "), self.show(res))
        self.assertTrue(last.endswith("; exit %d" % code), self.show(res))
        for needle in needles:
            self.assertIn(needle, last, self.show(res))
        return last

    def assert_stamp_near(self, stamp, when, local_offset=None, slack=None):
        """A line's stamp is the fake clock (`when`, UTC, or shifted by
        local_offset hours) give or take start-up time."""
        shown = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
        expected = when.astimezone(timezone.utc).replace(tzinfo=None)
        if local_offset is not None:
            expected += timedelta(hours=local_offset)
        slack = slack if slack is not None else 5 * SLOW
        self.assertTrue(expected <= shown <= expected + timedelta(seconds=slack),
                        "stamp %s is not the fake clock %s (+%ss): libfaketime did not reach "
                        "waitsy" % (stamp, expected, slack))


class WaitsyTest(ServiceTestCase, WaitsyCase):
    """Waitsy against the class's batchy."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.url = "http://127.0.0.1:%d" % cls.batchy.port
        cls.files = tempfile.mkdtemp(prefix="waitsy-files-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.files, ignore_errors=True)
        super().tearDownClass()

    def waitsy(self, *args, env=None, url=None, timeout=None):
        """Run waitsy with --url of the class batchy (or url) first."""
        return run_waitsy(["--url", url or self.url] + list(args), env=env, timeout=timeout)

    def new_wf(self, text=THREE):
        wf = self.unique("w")
        self.load(wf, text)
        return wf

    def succeed_today(self, wf, steps=None):
        """Open a batch and close `steps` (all by default) for real; return
        the UTC day of their batch_end (the target day of the test)."""
        self.open_batch(wf)
        doc = self.close_batch(wf, {"step": ",".join(steps)} if steps else None)
        closed = [doc[s]["batch_end"] for s in (steps or doc)]
        days = {parse_time(t).date().isoformat() for t in closed}
        self.assertEqual(len(days), 1, closed)
        return days.pop()

    def path(self, name):
        return os.path.join(self.files, "%s-%s" % (self._testMethodName, name))

    # ------------------------------------------------------------ exit statuses
    def test_ready_exits_0_with_a_progress_line_and_the_ready_line(self):
        wf = self.new_wf()
        day = self.succeed_today(wf)
        res = self.waitsy("-wf", wf, "--date", day, "--interval", INTERVAL)
        lines = self.assert_ready(res, [wf], day)
        self.assertEqual(lines[-2], "%s: 3/3 steps done for %s" % (wf, day))
        self.assertEqual(len(lines), 2, self.show(res))

    def test_ready_today_without_date(self):
        wf = self.new_wf()
        before = harness.utcnow().date().isoformat()
        day = self.succeed_today(wf)
        res = self.waitsy("-wf", wf, "--once")
        after = harness.utcnow().date().isoformat()
        if before != after:  # UTC midnight passed during the test: no verdict
            return
        self.assert_ready(res, [wf], day)

    def test_not_ready_with_once_exits_3(self):
        wf = self.new_wf()
        self.open_batch(wf)
        day = harness.utcnow().date().isoformat()
        res = self.waitsy("-wf", wf, "--once", "--date", day)
        self.assert_exit(res, 3)
        lines = texts(res.stdout)
        self.assertEqual(len(lines), 2, self.show(res))
        self.assertTrue(lines[0].startswith("%s: 0/3 steps done for %s; waiting on a (open since "
                                            % (wf, day)), self.show(res))
        self.assertEqual(lines[1], "not ready (--once); exit 3")
        self.assertEqual(res.stderr, "")

    def test_timeout_exits_2_after_its_progress_lines(self):
        # The first poll always happens; how many follow within the second
        # depends on the machine's speed, so only the upper bound is asserted.
        wf = self.new_wf()
        self.open_batch(wf)
        self.close_batch(wf, {"step": "a"})
        res = self.waitsy("-wf", wf, "--date", "2030-01-02", "--timeout", "1",
                          "--interval", INTERVAL)
        self.assert_error_line(res, 2, "timed out after 1 s waiting for %s on 2030-01-02" % wf)
        lines = texts(res.stdout)
        self.assertGreaterEqual(len(lines), 1, self.show(res))
        self.assertLessEqual(len(lines), 8, "more than one line per poll?\n" + self.show(res))
        for line in lines:
            self.assertTrue(line.startswith("%s: 0/3 steps done for 2030-01-02; waiting on a "
                                            "(last success " % wf), self.show(res))
        self.assertEqual(len(texts(res.stderr)), 1, self.show(res))
        self.assertGreaterEqual(res.elapsed, 1.0)

    def test_fail_fast_with_a_step_failed_today_exits_1_with_the_error_message(self):
        wf = self.new_wf()
        self.open_batch(wf)
        self.close_batch(wf, {"step": "a"})
        doc = self.fail_batch(wf, {"step": "b", "error": "disk full on /data"})
        day = parse_time(doc["b"]["batch_end"]).date().isoformat()
        at = parse_time(doc["b"]["batch_end"]).strftime("%H:%M:%S")
        res = self.waitsy("-wf", wf, "--date", day, "--fail-fast", "--interval", INTERVAL)
        self.assert_error_line(res, 1, "failed: %s: step b failed at %s: disk full on /data"
                               % (wf, at))
        lines = texts(res.stdout)
        self.assertEqual(len(lines), 1, self.show(res))
        self.assertIn("1/3 steps done for %s; waiting on b (failed at %s), c (open since "
                      % (day, at), lines[0])
        # a failed step that is not awaited stops nothing
        res = self.waitsy("-wf", wf, "--date", day, "--fail-fast", "--step", "a")
        self.assert_ready(res, [wf], day)
        res = self.waitsy("-wf", wf, "--date", day, "--fail-fast", "--step", "a,c", "--once")
        self.assert_exit(res, 3)
        self.assertEqual(res.stderr, "", self.show(res))

    def test_failed_step_without_fail_fast_is_still_awaited(self):
        wf = self.new_wf()
        self.open_batch(wf)
        doc = self.fail_batch(wf, {"step": "a", "error": "boom"})
        day = parse_time(doc["a"]["batch_end"]).date().isoformat()
        res = self.waitsy("-wf", wf, "--date", day, "--once")
        self.assert_exit(res, 3)
        self.assertEqual(res.stderr, "", self.show(res))
        lines = texts(res.stdout)
        self.assertIn("waiting on a (failed at ", lines[0])
        self.assertEqual(lines[-1], "not ready (--once); exit 3")
        # it keeps polling (two progress lines, however slow the machine),
        # and a re-run that succeeds makes it ready
        self.close_batch(wf, {"step": "b,c"})
        w = start_waitsy(["--url", self.url, "-wf", wf, "--date", day, "--interval", INTERVAL,
                          "--timeout", str(harness.WAITSY_TIMEOUT)])
        try:
            out, _ = w.wait_for(lambda out, err: out.count("waiting on a (failed at ") >= 2,
                                harness.WAITSY_TIMEOUT, "a second progress line")
            self.assertTrue(w.running(), out)
            doc = self.open_batch(wf)
            again = parse_time(doc["a"]["batch_start"]).date().isoformat()
            self.close_batch(wf)
            rc = w.wait()
            out, err = w.stdout(), w.stderr()
            if again != day:  # UTC midnight passed: the re-run is another day's
                return
            self.assertEqual(rc, 0, "exit %s\n--- stdout:\n%s--- stderr:\n%s" % (rc, out, err))
            lines = texts(out)
            for line in lines[:2]:
                self.assertTrue(line.startswith("%s: 2/3 steps done for %s; waiting on a (failed "
                                                "at " % (wf, day)), out)
            self.assertTrue(lines[-1].startswith("ready: %s done for %s after " % (wf, day)), out)
            self.assertEqual(err, "")
        finally:
            w.cleanup()

    def test_step_failed_yesterday_does_not_trigger_fail_fast(self):
        wf = self.unique("w")
        self.redis.set_state(wf, {
            "a": failed(utc(2026, 11, 22, 23, 59, 59), "old failure"),
            "b": success(utc(2026, 11, 23, 6, 0, 0)),
        })
        res = self.waitsy("-wf", wf, "--date", "2026-11-23", "--fail-fast", "--once")
        self.assert_exit(res, 3)
        self.assertEqual(res.stderr, "", self.show(res))
        self.assertEqual(texts(res.stdout), [
            "%s: 1/2 steps done for 2026-11-23; waiting on a (failed at 2026-11-22 23:59:59)" % wf,
            "not ready (--once); exit 3"])
        # the same failure on the target day stops it
        res = self.waitsy("-wf", wf, "--date", "2026-11-22", "--fail-fast", "--once")
        self.assert_error_line(res, 1, "step a failed at 23:59:59: old failure")

    # ------------------------------------------------------------ workflows and steps
    def test_unknown_workflow_exits_4(self):
        wf = self.unique("nowf")
        res = self.waitsy("-wf", wf, "--interval", INTERVAL)
        self.assert_error_line(res, 4, "get_status/%s: workflow '%s' is not loaded" % (wf, wf))
        self.assertEqual(res.stdout, "", self.show(res))
        self.assertEqual(len(texts(res.stderr)), 1)
        res = self.waitsy("-wf", wf, "--once", "-q")
        self.assert_error_line(res, 4, "get_status/%s: " % wf)
        self.assertEqual(res.stdout, "", self.show(res))

    def test_unknown_step_exits_4_and_lists_the_steps(self):
        wf = self.new_wf()
        res = self.waitsy("-wf", wf, "--step", "a,zz", "--interval", INTERVAL)
        self.assert_error_line(res, 4, "%s has no step 'zz' (its steps: a, b, c)" % wf)
        self.assertEqual(res.stdout, "", self.show(res))

    def test_step_restricts_what_is_awaited(self):
        wf = self.new_wf()
        day = self.succeed_today(wf, ["a", "c"])
        res = self.waitsy("-wf", wf, "--date", day, "--once")
        self.assert_exit(res, 3)
        self.assertIn("2/3 steps done for %s; waiting on b (open since " % day, res.stdout)
        res = self.waitsy("-wf", wf, "--date", day, "--step", "a,c", "--once")
        lines = self.assert_ready(res, [wf], day)
        self.assertEqual(lines[-2], "%s: 2/2 steps done for %s" % (wf, day))
        res = self.waitsy("-wf", wf, "--date", day, "--step", "c", "--step", "a", "--once")
        self.assert_ready(res, [wf], day)
        res = self.waitsy("-wf", wf, "--date", day, "--step", "a", "--once")
        lines = self.assert_ready(res, [wf], day)
        self.assertEqual(lines[-2], "%s: 1/1 step done for %s" % (wf, day))
        res = self.waitsy("-wf", wf, "--date", day, "--step", "a,b", "--once")
        self.assert_exit(res, 3)
        self.assertIn("%s: 1/2 steps done for %s; waiting on b (open since " % (wf, day),
                      res.stdout)

    def test_several_workflows_are_ready_only_when_all_are(self):
        first, second = self.new_wf(), self.new_wf("x:\ny:\n")
        day = self.succeed_today(first)
        self.open_batch(second)
        res = self.waitsy("-wf", first, "-wf", second, "--date", day, "--once")
        self.assert_exit(res, 3)
        lines = texts(res.stdout)
        parts = lines[0].split(" | ")
        self.assertEqual(len(parts), 2, self.show(res))
        self.assertEqual(parts[0], "%s: 3/3 steps done for %s" % (first, day))
        self.assertTrue(parts[1].startswith("%s: 0/2 steps done for %s; waiting on x (open since "
                                            % (second, day)), self.show(res))
        self.close_batch(second)
        if parse_time(self.get_status(second)["x"]["batch_end"]).date().isoformat() != day:
            return  # UTC midnight passed between the two closes
        res = self.waitsy("-wf", first, "--workflow", second, "--date", day, "--once")
        self.assert_ready(res, [first, second], day)
        # --step applies to every workflow: a step of one only is unknown in the other
        res = self.waitsy("-wf", first, "-wf", second, "--step", "x", "--once")
        self.assert_error_line(res, 4, "%s has no step 'x' (its steps: a, b, c)" % first)

    def test_progress_line_describes_each_waiting_step(self):
        wf = self.unique("w")
        day = utc(2026, 11, 23)
        self.redis.set_state(wf, {
            "done": success(day + timedelta(hours=5)),
            "old": success(day - timedelta(hours=1)),
            "open": opened(day + timedelta(hours=6, seconds=1)),
            "oldopen": opened(day - timedelta(days=2)),
            "fail": failed(day + timedelta(hours=7, minutes=8, seconds=9), "x"),
            "new": {"status": "new"},
            "nostatus": {"p": 1},
        })
        res = self.waitsy("-wf", wf, "--date", "2026-11-23", "--once")
        self.assert_exit(res, 3)
        line = texts(res.stdout)[0]
        self.assertTrue(line.startswith("%s: 1/7 steps done for 2026-11-23; waiting on " % wf),
                        line)
        self.assertTrue(line.endswith(" and 1 more"), line)
        shown = re.findall(r"(\w+) \(([^)]*)\)", line.split("; waiting on ", 1)[1])
        expected = {
            "old": "last success 2026-11-22 23:00:00",
            "open": "open since 06:00:01",
            "oldopen": "open since 2026-11-21 00:00:00",
            "fail": "failed at 07:08:09",
            "new": "status new",
            "nostatus": "no status",
        }
        self.assertEqual(len(shown), 5, line)
        for name, desc in shown:
            self.assertEqual(desc, expected[name], line)
        # one awaited step: "0/1 step"
        res = self.waitsy("-wf", wf, "--date", "2026-11-23", "--step", "new", "--once")
        self.assertEqual(texts(res.stdout)[0],
                         "%s: 0/1 step done for 2026-11-23; waiting on new (status new)" % wf)

    def test_names_and_messages_with_control_characters_stay_on_one_line(self):
        wf = self.unique("w")
        end = utc(2026, 11, 23, 6, 0, 0)
        self.redis.set_state(wf, {
            "we\nird": {"status": "new"},
            "b": failed(end, "first line\nsecond line\r\x1b[31mred \u202egnp.exe"),
            "c": {"status": "strange\nstatus"},
        })
        res = self.waitsy("-wf", wf, "--date", "2026-11-23", "--once")
        self.assert_exit(res, 3)
        lines = texts(res.stdout)
        self.assertEqual(len(lines), 2, self.show(res))
        self.assertIn("b (failed at 06:00:00)", lines[0])
        self.assertIn("c (status strange status)", lines[0])
        self.assertIn("we ird (status new)", lines[0])
        res = self.waitsy("-wf", wf, "--date", "2026-11-23", "--fail-fast")
        self.assert_error_line(res, 1, "step b failed at 06:00:00: first line second line")
        self.assertNotIn("\x1b", res.stderr)
        self.assertNotIn("\u202e", res.stderr)  # no bidirectional override either
        self.assertEqual(len(res.stderr.splitlines()), 1, self.show(res))
        # a long message is cut, still on the one line
        self.redis.set_state(wf, {"b": failed(end, "x" * 5000)})
        res = self.waitsy("-wf", wf, "--date", "2026-11-23", "--fail-fast")
        last = self.assert_error_line(res, 1, "step b failed at 06:00:00: xxx")
        self.assertLess(len(last), 1000, last)
        self.assertEqual(len(res.stderr.splitlines()), 1, self.show(res))

    # ------------------------------------------------------------ the target day
    def test_date_counts_a_success_on_that_day_only(self):
        wf = self.unique("w")
        self.redis.set_state(wf, {"a": success(utc(2026, 11, 22, 23, 59, 59, 999999)),
                                  "b": success(utc(2026, 11, 22, 0, 0, 0))})
        res = self.waitsy("-wf", wf, "--date", "2026-11-22", "--once")
        self.assert_ready(res, [wf], "2026-11-22")
        for other in ("2026-11-23", "2026-11-21", "2025-11-22"):
            with self.subTest(date=other):
                res = self.waitsy("-wf", wf, "--date", other, "--once")
                self.assert_exit(res, 3)
                self.assertIn("0/2 steps done for %s; waiting on a (last success 2026-11-22 "
                              "23:59:59), b (last success 2026-11-22 00:00:00)" % other, res.stdout)

    def test_local_counts_the_local_date_of_batch_end(self):
        cases = [
            # zone, batch_end (UTC), its UTC day, its local day, local clock
            (TZ_PLUS14, utc(2026, 11, 23, 12, 30), "2026-11-23", "2026-11-24", "02:30:00"),
            (TZ_EST, utc(2026, 11, 24, 3, 0), "2026-11-24", "2026-11-23", "22:00:00"),
        ]
        for tz, end, utc_day, local_day, local_clock in cases:
            with self.subTest(tz=tz):
                wf = self.unique("w")
                self.redis.set_state(wf, {"a": success(end)})
                env = {"TZ": tz}
                res = self.waitsy("-wf", wf, "--local", "--date", local_day, "--once", env=env)
                self.assert_ready(res, [wf], local_day)
                res = self.waitsy("-wf", wf, "--local", "--date", utc_day, "--once", env=env)
                self.assert_exit(res, 3)
                self.assertIn("waiting on a (last success %s %s)" % (local_day, local_clock),
                              res.stdout)
                res = self.waitsy("-wf", wf, "--date", utc_day, "--once", env=env)
                self.assert_ready(res, [wf], utc_day)
                res = self.waitsy("-wf", wf, "--date", local_day, "--once", env=env)
                self.assert_exit(res, 3)
                self.assertIn("waiting on a (last success %s %s)"
                              % (utc_day, end.strftime("%H:%M:%S")), res.stdout)

    def test_today_under_faketime(self):
        today = utc(2031, 3, 15)
        wf = self.unique("w")
        self.redis.set_state(wf, {
            "yesterday": success(today - timedelta(microseconds=1)),
            "today": success(today),
            "reopened": opened(today + timedelta(seconds=1)),
        })
        now = today + timedelta(seconds=5)
        env = faketime_env(now)
        res = self.waitsy("-wf", wf, "--once", env=env)
        self.assert_exit(res, 3)
        (stamp, line), last = stamped(res.stdout)
        self.assert_stamp_near(stamp, now)
        self.assertTrue(line.startswith("%s: 1/3 steps done for 2031-03-15; waiting on " % wf),
                        line)
        self.assertIn("reopened (open since 00:00:01)", line)
        self.assertIn("yesterday (last success 2031-03-14 23:59:59)", line)
        self.assertNotIn("today (", line)
        self.assertEqual(last[1], "not ready (--once); exit 3")
        res = self.waitsy("-wf", wf, "--step", "today", "--once", env=env)
        self.assert_ready(res, [wf], "2031-03-15")
        self.assert_stamp_near(stamped(res.stdout)[0][0], now)
        for step in ("yesterday", "reopened"):
            with self.subTest(step=step):
                res = self.waitsy("-wf", wf, "--step", step, "--once", env=env)
                self.assert_exit(res, 3)
        # the day before, yesterday's success is today's
        env = faketime_env(today - timedelta(hours=12))
        res = self.waitsy("-wf", wf, "--step", "yesterday", "--once", env=env)
        self.assert_ready(res, [wf], "2031-03-14")

    def test_reopened_after_a_real_success_today_stays_done_from_history(self):
        # SPEC section 9: the success is in history, though the latest
        # record is open again (against a server without history, the
        # step is awaited again: test_waitsy_history)
        wf = self.new_wf()
        day = self.succeed_today(wf)
        self.assert_ready(self.waitsy("-wf", wf, "--date", day, "--once"), [wf], day)
        doc = self.open_batch(wf)
        if parse_time(doc["a"]["batch_start"]).date().isoformat() != day:
            return  # UTC midnight passed
        self.assert_ready(self.waitsy("-wf", wf, "--date", day, "--once"), [wf], day)

    def test_local_today_under_faketime(self):
        wf = self.unique("w")
        # 11:00 UTC on the 23rd is 01:00 on the 24th at +14
        self.redis.set_state(wf, {"a": success(utc(2026, 11, 23, 11, 0))})
        now = utc(2026, 11, 24, 0, 30)  # 14:30 on the 24th at +14
        env = faketime_env(now, {"TZ": TZ_PLUS14})
        res = self.waitsy("-wf", wf, "--local", "--once", env=env)
        self.assert_ready(res, [wf], "2026-11-24")
        self.assert_stamp_near(stamped(res.stdout)[0][0], now, local_offset=14)
        res = self.waitsy("-wf", wf, "--once", env=env)
        self.assert_exit(res, 3)
        (stamp, line), _ = stamped(res.stdout)
        self.assert_stamp_near(stamp, now)
        self.assertEqual(line, "%s: 0/1 step done for 2026-11-24; waiting on a "
                               "(last success 2026-11-23 11:00:00)" % wf)
        # and the other way round: 20:00 UTC on the 23rd is 15:00 on the 23rd
        # in EST, which is still the local "today" at 03:00 UTC on the 24th
        self.redis.set_state(wf, {"a": success(utc(2026, 11, 23, 20, 0))})
        now = utc(2026, 11, 24, 3, 0)
        env = faketime_env(now, {"TZ": TZ_EST})
        res = self.waitsy("-wf", wf, "--local", "--once", env=env)
        self.assert_ready(res, [wf], "2026-11-23")
        self.assert_stamp_near(stamped(res.stdout)[0][0], now, local_offset=-5)
        res = self.waitsy("-wf", wf, "--once", env=env)
        self.assert_exit(res, 3)
        self.assertIn("0/1 step done for 2026-11-24; waiting on a (last success 2026-11-23 "
                      "20:00:00)", res.stdout)

    def test_target_day_stays_the_day_waitsy_started(self):
        # started a little before midnight: a success just after midnight
        # belongs to the next day and does not count, however long it waits
        wf = self.unique("w")
        day = utc(2031, 7, 1)
        self.redis.set_state(wf, {"a": success(day + timedelta(days=1, microseconds=1))})
        margin = 2 * SLOW
        now = day + timedelta(days=1, seconds=-margin)
        w = start_waitsy(["--url", self.url, "-wf", wf, "--interval", "0.5",
                          "--timeout", str(harness.WAITSY_TIMEOUT)], env=faketime_env(now))
        try:
            # waits until it has polled after midnight, however long that takes
            out, _ = w.wait_for(lambda out, err: "\n2031-07-02 " in "\n" + out,
                                harness.WAITSY_TIMEOUT, "a progress line after midnight")
            self.assertTrue(w.running(), out)
            w.send_signal(signal.SIGTERM)
            self.assertEqual(w.wait(), 143)
            out = w.stdout()
        finally:
            w.cleanup()
        lines = stamped(out)
        self.assertEqual(lines[-1][1][:len("interrupted by SIGTERM")], "interrupted by SIGTERM")
        lines = lines[:-1]
        self.assert_stamp_near(lines[0][0], now, slack=margin - 0.5)
        self.assertTrue(lines[-1][0].startswith("2031-07-02 "), out)
        for _, text in lines:
            self.assertEqual(text, "%s: 0/1 step done for 2031-07-01; waiting on a "
                                   "(last success 2031-07-02 00:00:00)" % wf)

    # ------------------------------------------------------------ the command
    def test_command_runs_when_ready_and_its_exit_status_is_passed_through(self):
        wf = self.new_wf()
        day = self.succeed_today(wf)
        flag = self.path("ran")
        res = self.waitsy("-wf", wf, "--date", day, "--interval", INTERVAL, "--",
                          "sh", "-c", 'echo ran > "$1"; echo from the command; exit 7', "sh", flag)
        self.assert_exit(res, 7)
        self.assertTrue(os.path.exists(flag), "the command did not run")
        lines = res.stdout.splitlines()
        self.assertEqual(lines[-1], "from the command", self.show(res))
        self.assertRegex(lines[-2], r" ready: %s done for %s after \d+ s; running sh$"
                         % (wf, day))
        self.assertEqual(res.stderr, "", self.show(res))
        # exit 0 too, and the arguments arrive as given, never reordered
        res = self.waitsy("-wf", wf, "--date", day, "--once", "--", "sh", "-c",
                          'printf "%s|" "$@"', "sh", "-wf", "--once", "a b", "--")
        self.assert_exit(res, 0)
        self.assertTrue(res.stdout.endswith("-wf|--once|a b|--|"), self.show(res))

    def test_command_inherits_only_stdin_stdout_and_stderr(self):
        wf = self.unique("w")
        self.redis.set_state(wf, {"a": success(utc(2026, 11, 22, 10, 0))})
        res = self.waitsy("-wf", wf, "--date", "2026-11-22", "--", "sh", "-c",
                          'ls -l /proc/$$/fd')
        self.assert_exit(res, 0)
        fds = re.findall(r"(?m) (\d+) -> (.*)$", res.stdout)
        # valgrind's own log file is valgrind's business, not waitsy's
        if harness.VALGRIND:
            fds = [(fd, t) for fd, t in fds if harness.waitsy_valgrind_dir() not in t]
        fds = [fd for fd, _ in fds]
        self.assertEqual(sorted(fds), ["0", "1", "2"], self.show(res))

    def test_command_is_not_run_when_not_ready(self):
        wf = self.new_wf()
        self.open_batch(wf)
        flag = self.path("ran")
        command = ["--", "sh", "-c", 'echo ran > "$1"', "sh", flag]
        res = self.waitsy("-wf", wf, "--once", *command)
        self.assert_exit(res, 3)
        self.assertEqual(texts(res.stdout)[-1], "not ready (--once); exit 3")
        res = self.waitsy("-wf", wf, "--timeout", "0.5", "--interval", INTERVAL, *command)
        self.assert_error_line(res, 2, "timed out")
        self.fail_batch(wf, {"step": "a", "error": "nope"})
        res = self.waitsy("-wf", wf, "--fail-fast", "--once", *command)
        self.assert_error_line(res, 1, "nope")
        res = self.waitsy("-wf", self.unique("nowf"), "--once", *command)
        self.assert_error_line(res, 4)
        self.assertFalse(os.path.exists(flag), "the command ran although waitsy was not ready")

    def test_command_not_found_exits_127_and_not_executable_126(self):
        wf = self.new_wf()
        day = self.succeed_today(wf)
        res = self.waitsy("-wf", wf, "--date", day, "--once", "--", "no-such-command-waitsy")
        self.assert_error_line(res, 127, "cannot run no-such-command-waitsy")
        self.assertIn("; running no-such-command-waitsy", res.stdout)
        plain = self.path("not-executable")
        with open(plain, "w") as f:
            f.write("#!/bin/sh\necho never\n")
        os.chmod(plain, 0o644)
        res = self.waitsy("-wf", wf, "--date", day, "--once", "--", plain)
        self.assert_error_line(res, 126, "cannot run %s" % plain)
        self.assertNotIn("never", res.stdout)

    # ------------------------------------------------------------ signals
    def interrupt_while_waiting(self, sig, code, name):
        wf = self.new_wf()
        self.open_batch(wf)
        flag = self.path("ran")
        # an hour between polls: ending at once and ending at the next poll
        # are far apart, whatever the machine's speed
        w = start_waitsy(["--url", self.url, "-wf", wf, "--interval", "3600", "--",
                          "sh", "-c", 'echo ran > "$1"', "sh", flag])
        try:
            w.wait_for(lambda out, err: " steps done for " in out, 10 * SLOW,
                       "a first progress line")
            time.sleep(0.2)  # now asleep until the next poll
            sent = time.monotonic()
            w.send_signal(sig)
            rc = w.wait(PROMPT + 5)
            took = time.monotonic() - sent
            out, err = w.stdout(), w.stderr()
            detail = "exit %s after %.1fs\n--- stdout:\n%s--- stderr:\n%s" % (rc, took, out, err)
            self.assertEqual(rc, code, detail)
            self.assertLess(took, PROMPT, detail)
            lines = texts(out)
            self.assertEqual(len(lines), 2, detail)
            self.assertIn(" steps done for ", lines[0])
            self.assertRegex(lines[1], r"^interrupted by %s after \d+ s; exit %d$" % (name, code))
            self.assertEqual(err, "", detail)
            self.assertFalse(os.path.exists(flag), "the command ran after " + name)
        finally:
            w.cleanup()

    def test_sigint_while_waiting_exits_130(self):
        self.interrupt_while_waiting(signal.SIGINT, 130, "SIGINT")

    def test_sigterm_while_waiting_exits_143(self):
        self.interrupt_while_waiting(signal.SIGTERM, 143, "SIGTERM")

    def test_sigint_ignored_at_start_stays_ignored(self):
        # `waitsy ... &` in a script, or after trap '' INT: Ctrl-C is not for it
        wf = self.new_wf()
        self.open_batch(wf)
        w = start_waitsy(["--url", self.url, "-wf", wf, "--interval", "5"],
                         ignore_signals=(signal.SIGINT,))
        try:
            w.wait_for(lambda out, err: " steps done for " in out, 10 * SLOW,
                       "a first progress line")
            w.send_signal(signal.SIGINT)
            time.sleep(0.5 * SLOW)
            self.assertTrue(w.running(), "an ignored SIGINT stopped waitsy:\n" + w.stdout())
            w.send_signal(signal.SIGTERM)
            self.assertEqual(w.wait(2 * SLOW + 1), 143, w.stdout() + w.stderr())
            self.assertNotIn("SIGINT", w.stdout())
        finally:
            w.cleanup()

    def test_command_gets_the_signal_dispositions_waitsy_started_with(self):
        wf = self.unique("w")
        self.redis.set_state(wf, {"a": success(utc(2026, 11, 22, 10, 0))})
        args = ["-wf", wf, "--date", "2026-11-22", "--url", self.url, "--",
                "sh", "-c", 'kill -%s $$; echo survived']
        for name, sig in (("INT", signal.SIGINT), ("TERM", signal.SIGTERM)):
            with self.subTest(name):
                command = args[:-1] + [args[-1] % name]
                res = run_waitsy(command)  # default: the signal kills the command
                self.assertEqual(res.returncode, -sig, self.show(res))
                self.assertNotIn("survived", res.stdout)
                res = run_waitsy(command, ignore_signals=(sig,))  # ignored: stays ignored
                self.assert_exit(res, 0)
                self.assertEqual(res.stdout.splitlines()[-1], "survived", self.show(res))

    # ------------------------------------------------------------ output
    def test_quiet_prints_nothing_on_stdout(self):
        wf = self.new_wf()
        day = self.succeed_today(wf, ["a", "b"])
        with self.subTest("ready"):
            res = self.waitsy("-wf", wf, "--date", day, "--step", "a,b", "-q")
            self.assert_exit(res, 0)
            self.assertEqual((res.stdout, res.stderr), ("", ""))
        with self.subTest("not ready"):
            res = self.waitsy("-wf", wf, "--date", day, "--once", "--quiet")
            self.assert_exit(res, 3)
            self.assertEqual((res.stdout, res.stderr), ("", ""))
        with self.subTest("timeout"):
            res = self.waitsy("-wf", wf, "--date", day, "--timeout", "0.5", "--interval",
                              INTERVAL, "-q")
            self.assert_error_line(res, 2, "timed out after ")
            self.assertEqual(res.stdout, "")
        self.fail_batch(wf, {"step": "c", "error": "quietly broken"})
        with self.subTest("failure"):
            res = self.waitsy("-wf", wf, "--date", day, "--fail-fast", "-q")
            self.assert_error_line(res, 1, "quietly broken")
            self.assertEqual(res.stdout, "")
        with self.subTest("unknown workflow"):
            res = self.waitsy("-wf", self.unique("nowf"), "-q")
            self.assert_error_line(res, 4, "not loaded")
            self.assertEqual(res.stdout, "")
        with self.subTest("unknown step"):
            res = self.waitsy("-wf", wf, "--step", "zz", "-q")
            self.assert_error_line(res, 4, "has no step 'zz'")
            self.assertEqual(res.stdout, "")

    def test_one_progress_line_per_poll(self):
        # -v logs each request on stderr: as many progress lines as requests,
        # and no more polls than the interval allows (a slow machine makes
        # fewer, never more)
        wf = self.new_wf()
        self.open_batch(wf)
        for interval in (INTERVAL, "0.5"):
            with self.subTest(interval=interval):
                res = self.waitsy("-wf", wf, "--timeout", "1", "--interval", interval, "-v")
                self.assert_exit(res, 2)
                lines = texts(res.stdout)
                requests = [line for line in texts(res.stderr)
                            if line.startswith("GET %s/get_status/%s -> 200" % (self.url, wf))]
                self.assertGreaterEqual(len(lines), 1, self.show(res))
                self.assertEqual(len(lines), len(requests), self.show(res))
                self.assertLessEqual(len(lines), 1 / float(interval) + 2, self.show(res))
                self.assertTrue(all(line.startswith(wf + ": 0/3 steps done") for line in lines),
                                self.show(res))

    def test_verbose_adds_request_lines_on_stderr(self):
        wf = self.new_wf()
        day = self.succeed_today(wf)
        res = self.waitsy("-wf", wf, "--date", day, "-v")
        self.assert_exit(res, 0)
        self.assertIn("ready: %s done for %s" % (wf, day), texts(res.stdout)[-1])
        err = texts(res.stderr)
        self.assertTrue(any(re.match(r"^GET %s/get_status/%s -> 200, \d+ bytes in "
                                     % (re.escape(self.url), wf), line) for line in err),
                        self.show(res))
        quiet = self.waitsy("-wf", wf, "--date", day, "--verbose")
        self.assert_exit(quiet, 0)
        self.assertIn("/get_status/%s -> 200" % wf, quiet.stderr)

    # ------------------------------------------------------------ command line forms
    def test_single_dash_and_equals_forms(self):
        wf = self.new_wf()
        day = self.succeed_today(wf)
        forms = [["-wf", wf], ["--workflow=%s" % wf], ["--workflow", wf], ["--wf", wf],
                 ["--wf=%s" % wf], ["-wf=%s" % wf]]
        for form in forms:
            with self.subTest(form=form):
                res = run_waitsy(["--url=%s" % self.url] + form + ["--date=%s" % day,
                                                                   "--interval=0.2", "--once"])
                self.assert_ready(res, [wf], day)

    def test_batchy_url_environment_is_used_when_url_is_absent(self):
        wf = self.new_wf()
        day = self.succeed_today(wf)
        res = run_waitsy(["-wf", wf, "--date", day, "--once"], env={"BATCHY_URL": self.url})
        self.assert_ready(res, [wf], day)
        # --url wins over the variable
        res = run_waitsy(["-wf", wf, "--date", day, "--once", "--url", self.url],
                         env={"BATCHY_URL": "http://127.0.0.1:%d" % free_port()})
        self.assert_ready(res, [wf], day)

    def test_default_url_is_port_5000_on_loopback(self):
        res = run_waitsy(["-wf", "wf1", "--once", "-v"])
        self.assertIn(res.returncode, (0, 3, 4, 64), self.show(res))  # whatever listens there
        first = texts(res.stderr)[0]
        self.assertRegex(first, r"^waiting for 1 workflow\(s\) on \d{4}-\d\d-\d\d at "
                                r"http://127\.0\.0\.1:5000, every 10\.0 s$")

    def test_once_with_batchy_unreachable_exits_3(self):
        url = "http://127.0.0.1:%d" % free_port()
        res = self.waitsy("-wf", "wf1", "--once", url=url)
        self.assert_exit(res, 3)
        self.assertEqual(texts(res.stdout), ["not ready (--once); exit 3"])
        err = texts(res.stderr)
        self.assertEqual(len(err), 1, self.show(res))
        self.assertTrue(err[0].startswith("waitsy: cannot reach Batchy at %s: " % url), err)
        res = self.waitsy("-wf", "wf1", "--once", "-q", url=url)
        self.assert_exit(res, 3)
        self.assertEqual(res.stdout, "")
        self.assertIn("cannot reach Batchy", res.stderr)

    def test_retry_backoff_doubles_up_to_the_interval(self):
        # the pauses waitsy reports, in order: 1 s, 2 s, then the interval
        url = "http://127.0.0.1:%d" % free_port()
        w = start_waitsy(["--url", url, "-wf", "wf1", "--interval", "2",
                          "--timeout", str(harness.WAITSY_TIMEOUT)])
        try:
            w.wait_for(lambda out, err: "(attempt 3)" in err, harness.WAITSY_TIMEOUT,
                       "a third retry line")
            w.send_signal(signal.SIGTERM)
            self.assertEqual(w.wait(), 143)
            out, err = w.stdout(), texts(w.stderr())
        finally:
            w.cleanup()
        detail = "--- stdout:\n%s--- stderr:\n%s" % (out, "\n".join(err))
        prefix = "waitsy: cannot reach Batchy at %s: " % url
        self.assertGreaterEqual(len(err), 3, detail)
        for n, pause in enumerate((1, 2, 2), 1):
            self.assertTrue(err[n - 1].startswith(prefix), detail)
            self.assertTrue(err[n - 1].endswith(" (attempt %d); retrying in %d s" % (n, pause)),
                            detail)
        self.assertEqual(texts(out)[-1][:len("interrupted by SIGTERM")], "interrupted by SIGTERM")
        # a timeout ends the retries with exit 2
        res = self.waitsy("-wf", "wf1", "--interval", "2", "--timeout", "0.5", url=url)
        self.assert_error_line(res, 2, "timed out after ")
        err = texts(res.stderr)
        self.assertTrue(all(line.startswith(prefix) for line in err[:-1]), self.show(res))
        self.assertEqual(res.stdout, "", self.show(res))


class WaitsyRestartTest(OwnBatchyMixin, WaitsyCase):
    """Batchy killed and started again on the same port while waitsy waits."""
    cfg_files = {"wr1.yaml": THREE}

    def test_batchy_killed_and_restarted_on_the_same_port(self):
        port = free_port()
        url = "http://127.0.0.1:%d" % port
        first = self.start_batchy(port=port)
        for call in ("/load_cfg/wr1", "/open_batch/wr1"):
            r = first.get(call)
            self.assertEqual(r.status, 200, r)
        w = start_waitsy(["-wf", "wr1", "--url", url, "--interval", "1",
                          "--timeout", str(120 * SLOW)])
        try:
            w.wait_for(lambda out, err: "0/3 steps done" in out, 10 * SLOW, "a progress line")
            first.kill()
            w.wait_for(lambda out, err: "(attempt 2)" in err, 10 * SLOW, "a second retry line")
            self.assertTrue(w.running())
            second = self.start_batchy(port=port)
            r = second.get("/close_batch/wr1")
            self.assertEqual(r.status, 200, r)
            day = parse_time(r.json()["a"]["batch_end"]).date().isoformat()
            rc = w.wait(10 * SLOW)
            out, err = w.stdout(), w.stderr()
            detail = "exit %s\n--- stdout:\n%s--- stderr:\n%s" % (rc, out, err)
            self.assertEqual(rc, 0, detail)
            lines = texts(out)
            self.assertTrue(lines[0].startswith("wr1: 0/3 steps done for %s; waiting on a (open "
                                                "since " % day), detail)
            self.assertEqual(lines[-2], "wr1: 3/3 steps done for %s" % day, detail)
            self.assertRegex(lines[-1], r"^ready: wr1 done for %s after \d+ s$" % day)
            retries = texts(err)
            self.assertGreaterEqual(len(retries), 2, detail)
            for n, line in enumerate(retries, 1):
                # down: cannot reach; just restarted: maybe a 503 while it
                # connects to Redis
                self.assertRegex(line, r"^waitsy: (cannot reach Batchy at %s: |Batchy at %s "
                                       r"answered 503)" % (re.escape(url), re.escape(url)), detail)
                self.assertTrue(line.endswith(" (attempt %d); retrying in 1 s" % n), detail)
            for line in retries[:2]:
                self.assertTrue(line.startswith("waitsy: cannot reach Batchy at %s: " % url),
                                detail)
        finally:
            w.cleanup()


# ---------------------------------------------------------------- HTTP

class Proxy:
    """A reverse proxy at http://127.0.0.1:<port>/batchy/... forwarding to
    batchy, which records what it got and can answer otherwise: queue
    actions with .then(...); the default is to forward."""

    def __init__(self, target_port, prefix="/batchy"):
        self.target_port = target_port
        self.prefix = prefix
        self.requests = []  # (path, Authorization header or None)
        self.actions = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, status, body, ctype="application/json", headers=()):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                with proxy.lock:
                    proxy.requests.append((self.path, self.headers.get("Authorization")))
                    action = proxy.actions.pop(0) if proxy.actions else ("forward",)
                kind = action[0]
                if kind == "hang":
                    proxy.release.wait(60)
                    self.close_connection = True
                    return
                if kind == "answer":
                    _, status, body, ctype, headers = action
                    self.answer(status, body, ctype, headers)
                    return
                if self.path.startswith("http://"):  # as a forward proxy
                    path = "/" + self.path.split("/", 3)[3]
                    r = http_request(proxy.target_port, "GET", path)
                    self.answer(r.status, r.body, r.content_type or "application/json")
                    return
                if not self.path.startswith(proxy.prefix + "/"):
                    self.answer(404, b"<html><body><h1>Not Found</h1></body></html>",
                                "text/html")
                    return
                r = http_request(proxy.target_port, "GET", self.path[len(proxy.prefix):])
                self.answer(r.status, r.body, r.content_type or "application/json")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d%s" % (self.port, prefix)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def then(self, status=None, body=b"", ctype="application/json", headers=(), times=1,
             hang=False):
        with self.lock:
            for _ in range(times):
                self.actions.append(("hang",) if hang else
                                    ("answer", status, body, ctype, tuple(headers)))

    def paths(self):
        with self.lock:
            return [p for p, _ in self.requests]

    def auth(self):
        with self.lock:
            return [a for _, a in self.requests]

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class WaitsyHttpTest(ServiceTestCase, WaitsyCase):
    """Waitsy through a reverse proxy with a path prefix."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.wf = cls.unique("h")
        cls.write_cfg(cls, cls.wf, THREE)
        r = cls.batchy.get("/load_cfg/" + cls.wf)
        assert r.status == 200, r
        cls.batchy.get("/open_batch/" + cls.wf)
        r = cls.batchy.get("/close_batch/" + cls.wf)
        assert r.status == 200, r
        cls.day = parse_time(r.json()["a"]["batch_end"]).date().isoformat()

    def setUp(self):
        self.proxy = Proxy(self.batchy.port)
        self.addCleanup(self.proxy.stop)

    def ready_args(self, *extra):
        return ["-wf", self.wf, "--date", self.day, "--interval", INTERVAL] + list(extra)

    def test_url_with_a_path_prefix(self):
        for url in (self.proxy.url, self.proxy.url + "/", self.proxy.url + "//"):
            with self.subTest(url=url):
                del self.proxy.requests[:]
                res = run_waitsy(self.ready_args("--url", url))
                self.assert_ready(res, [self.wf], self.day)
                self.assertEqual(self.proxy.paths(), ["/batchy/get_status/%s" % self.wf])

    def test_token_is_sent_as_a_bearer_header(self):
        cases = [
            ("option", ["--token", "s3cret"], None, "Bearer s3cret"),
            ("option with =", ["--token=s3cret"], None, "Bearer s3cret"),
            ("environment", [], {"BATCHY_TOKEN": "s3cret"}, "Bearer s3cret"),
            ("option wins", ["--token", "mine"], {"BATCHY_TOKEN": "theirs"}, "Bearer mine"),
            ("none", [], None, None),
            ("empty variable", [], {"BATCHY_TOKEN": ""}, None),
        ]
        for name, args, env, header in cases:
            with self.subTest(name):
                del self.proxy.requests[:]
                res = run_waitsy(self.ready_args("--url", self.proxy.url, *args), env=env)
                self.assert_ready(res, [self.wf], self.day)
                self.assertEqual(self.proxy.auth(), [header])
                self.assertNotIn("s3cret", res.stdout + res.stderr)

    def test_5xx_answers_are_retried_then_ready(self):
        self.proxy.then(502, b"<html>Bad Gateway</html>", "text/html", times=2)
        res = run_waitsy(self.ready_args("--url", self.proxy.url))
        self.assert_exit(res, 0)
        err = texts(res.stderr)
        self.assertEqual(len(err), 2, self.show(res))
        for n, line in enumerate(err, 1):
            self.assertEqual(line, "waitsy: Batchy at %s answered 502 (attempt %d); retrying in "
                                   "1 s" % (self.proxy.url, n))
        lines = texts(res.stdout)
        self.assertEqual(lines[-2], "%s: 3/3 steps done for %s" % (self.wf, self.day))
        self.assertRegex(lines[-1], r"^ready: %s done for %s after [23] s$" % (self.wf, self.day))
        self.assertEqual(len(self.proxy.paths()), 3)

    def test_503_from_batchy_is_retried_with_its_error(self):
        self.proxy.then(503, b'{"error": "Redis is unreachable"}')
        res = run_waitsy(self.ready_args("--url", self.proxy.url))
        self.assert_exit(res, 0)
        self.assertEqual(texts(res.stderr), [
            "waitsy: Batchy at %s answered 503: Redis is unreachable (attempt 1); retrying in 1 s"
            % self.proxy.url])

    def test_401_and_403_exit_64(self):
        for status in (401, 403):
            with self.subTest(status=status):
                self.proxy.then(status, b'{"error": "missing or wrong token"}')
                res = run_waitsy(self.ready_args("--url", self.proxy.url, "--token", "bad"))
                self.assert_error_line(res, 64, "refused get_status/%s (%d: missing or wrong token)"
                                       % (self.wf, status), "check --token or BATCHY_TOKEN")
                self.assertEqual(res.stdout, "")

    def test_other_4xx_exits_64(self):
        self.proxy.then(400, b'{"error": "bad request"}')
        res = run_waitsy(self.ready_args("--url", self.proxy.url))
        self.assert_error_line(res, 64, "(400: bad request)")

    def test_redirect_exits_64(self):
        self.proxy.then(301, b"", "text/html",
                        headers=[("Location", "https://elsewhere.example/b")])
        res = run_waitsy(self.ready_args("--url", self.proxy.url))
        self.assert_error_line(res, 64, "redirects (301) to https://elsewhere.example/b")
        self.assertEqual(len(self.proxy.paths()), 1, "the redirect was followed")
        # a Location with a password, or with terminal escapes, is not printed as is
        self.proxy.then(302, b"", "text/html",
                        headers=[("Location", "https://u:s3cret@elsewhere.example/b")])
        res = run_waitsy(self.ready_args("--url", self.proxy.url))
        self.assert_error_line(res, 64, "redirects (302) to https://elsewhere.example/b")
        self.assertNotIn("s3cret", res.stderr)
        self.proxy.then(307, b"", "text/html",
                        headers=[("Location", "https://elsewhere.example/\x1b[2J\x9bb")])
        res = run_waitsy(self.ready_args("--url", self.proxy.url))
        self.assert_error_line(res, 64, "redirects (307) to ")
        self.assertNotIn("\x1b", res.stderr)
        self.assertNotIn("\x9b", res.stderr)

    def test_404_page_that_is_not_batchy_exits_64_and_mentions_url(self):
        # the wrong prefix: the proxy answers its own HTML 404 (and so does
        # <prefix>/index): no Batchy there, not an unknown workflow
        url = "http://127.0.0.1:%d/wrong" % self.proxy.port
        res = run_waitsy(self.ready_args("--url", url))
        self.assert_error_line(res, 64, "404", "--url")
        self.assertEqual(res.stdout, "")
        self.assertEqual(self.proxy.paths(), ["/wrong/get_status/%s" % self.wf, "/wrong/index"])

    def test_unknown_workflow_through_the_proxy_exits_4(self):
        wf = self.unique("nowf")
        res = run_waitsy(["-wf", wf, "--url", self.proxy.url + "/", "--once"])
        self.assert_error_line(res, 4, "get_status/%s: workflow '%s' is not loaded" % (wf, wf))
        self.assertEqual(res.stdout, "")

    def test_workflow_with_no_steps_exits_4(self):
        self.proxy.then(200, b"{}")
        res = run_waitsy(self.ready_args("--url", self.proxy.url))
        self.assert_error_line(res, 4, "%s has no steps" % self.wf)

    def test_200_that_is_not_a_workflow_document_exits_64(self):
        # a login page, or JSON that is no workflow: no Batchy at --url
        for body, ctype in ((b"<html>a login page</html>", "text/html"),
                            (b"[1, 2]", "application/json"),
                            (b'{"a": "not a record"}', "application/json")):
            with self.subTest(body=body):
                del self.proxy.requests[:]
                self.proxy.then(200, body, ctype)
                res = run_waitsy(self.ready_args("--url", self.proxy.url))
                self.assert_error_line(res, 64, "--url")
                self.assertEqual(res.stdout, "")
                self.assertEqual(len(self.proxy.paths()), 1)

    def test_proxy_variables_are_honoured_except_for_loopback(self):
        direct = "http://127.0.0.1:%d" % self.batchy.port
        proxy_env = {"http_proxy": "http://127.0.0.1:%d" % self.proxy.port}
        res = run_waitsy(self.ready_args("--url", direct, "--once"), env=proxy_env)
        self.assert_ready(res, [self.wf], self.day)
        self.assertEqual(self.proxy.paths(), [], "a loopback Batchy went through the proxy")
        for name in ("NO_PROXY", "no_proxy"):
            with self.subTest(name):
                del self.proxy.requests[:]
                env = dict(proxy_env, **{name: "elsewhere.example"})
                res = run_waitsy(self.ready_args("--url", direct, "--once"), env=env)
                self.assert_ready(res, [self.wf], self.day)
                self.assertEqual(self.proxy.paths(), ["%s/get_status/%s" % (direct, self.wf)])

    def test_batchy_url_environment_with_a_prefix(self):
        res = run_waitsy(["-wf", self.wf, "--date", self.day, "--once"],
                         env={"BATCHY_URL": self.proxy.url + "/"})
        self.assert_ready(res, [self.wf], self.day)
        self.assertEqual(self.proxy.paths(), ["/batchy/get_status/%s" % self.wf])

    def test_timeout_holds_when_batchy_stops_answering(self):
        # Batchy answers once ("not ready"), then accepts and never answers:
        # --timeout must still end waitsy about on time.
        # (a hang lasts 60 s; the timeout is long enough that the first
        # poll ends within it even under valgrind)
        self.proxy.then(200, b'{"a": {"status": "open"}}')
        self.proxy.then(hang=True, times=20)
        limit = 2 * SLOW
        res = run_waitsy(["-wf", self.wf, "--url", self.proxy.url, "--timeout", str(limit),
                          "--interval", "3600"], timeout=limit + PROMPT + 10)
        self.assert_error_line(res, 2, "timed out after ")
        self.assertLess(res.elapsed, limit + PROMPT, self.show(res))
        self.assertEqual(len(self.proxy.paths()), 2)

    def test_timeout_0_with_batchy_not_answering(self):
        self.proxy.then(hang=True, times=20)
        res = run_waitsy(["-wf", self.wf, "--url", self.proxy.url, "--timeout", "0"],
                         timeout=PROMPT + 10)
        self.assert_error_line(res, 2, "timed out after ")
        self.assertLess(res.elapsed, PROMPT, self.show(res))

    def test_sigterm_during_a_request_that_hangs_exits_143(self):
        self.proxy.then(hang=True, times=20)
        w = start_waitsy(["-wf", self.wf, "--url", self.proxy.url, "--", "true"])
        try:
            deadline = time.monotonic() + 10 * SLOW
            while not self.proxy.paths() and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertTrue(self.proxy.paths(), "waitsy sent no request")
            time.sleep(0.2)
            sent = time.monotonic()
            w.send_signal(signal.SIGTERM)
            rc = w.wait(PROMPT + 5)
            took = time.monotonic() - sent
            detail = "exit %s after %.1fs\n--- stdout:\n%s--- stderr:\n%s" % (
                rc, took, w.stdout(), w.stderr())
            self.assertEqual(rc, 143, detail)
            self.assertLess(took, PROMPT, detail)
            self.assertRegex(w.stdout(), r"(?m)^\S+ \S+ interrupted by SIGTERM after \d+ s; "
                                         r"exit 143\n\Z")
        finally:
            w.cleanup()


# ---------------------------------------------------------------- command line

USAGE_ERRORS = [
    ("no -wf", []),
    ("no -wf with options", ["--once", "--interval", "1"]),
    ("-wf without a value", ["-wf"]),
    ("--workflow without a value", ["--once", "--workflow"]),
    ("name with a space", ["-wf", "bad name"]),
    ("snapshot-like name", ["-wf", "wf1-123"]),
    ("name starting with a dash", ["-wf", "-x"]),
    ("empty name", ["--workflow="]),
    ("unknown option", ["-wf", "wf1", "--bogus"]),
    ("unknown short option", ["-wf", "wf1", "-x"]),
    ("stray argument", ["-wf", "wf1", "stray"]),
    ("lone dash", ["-wf", "wf1", "-"]),
    ("-- with nothing after", ["-wf", "wf1", "--"]),
    ("month 13", ["-wf", "wf1", "--date", "2026-13-01"]),
    ("November 31", ["-wf", "wf1", "--date", "2026-11-31"]),
    ("February 29 of 2026", ["-wf", "wf1", "--date", "2026-02-29"]),
    ("date word", ["-wf", "wf1", "--date", "tomorrow"]),
    ("date with a time", ["-wf", "wf1", "--date", "2026-11-23T00:00"]),
    ("short date", ["-wf", "wf1", "--date", "2026-1-3"]),
    ("interval 0", ["-wf", "wf1", "--interval", "0"]),
    ("interval -1", ["-wf", "wf1", "--interval", "-1"]),
    ("interval abc", ["-wf", "wf1", "--interval", "abc"]),
    ("interval nan", ["-wf", "wf1", "--interval", "nan"]),
    ("interval inf", ["-wf", "wf1", "--interval", "inf"]),
    ("interval below 0.1", ["-wf", "wf1", "--interval", "0.05"]),
    ("interval over a day", ["-wf", "wf1", "--interval", "86401"]),
    ("interval empty", ["-wf", "wf1", "--interval="]),
    ("timeout -5", ["-wf", "wf1", "--timeout", "-5"]),
    ("timeout over 366 days", ["-wf", "wf1", "--timeout", "31622401"]),
    ("timeout 10s", ["-wf", "wf1", "--timeout", "10s"]),
    ("-q and -v", ["-wf", "wf1", "-q", "-v"]),
    ("--quiet and --verbose", ["-wf", "wf1", "--verbose", "--quiet"]),
    ("empty step", ["-wf", "wf1", "--step", ""]),
    ("empty step in a list", ["-wf", "wf1", "--step", "a,,b"]),
    ("trailing comma", ["-wf", "wf1", "--step", "a,"]),
    ("step with brackets", ["-wf", "wf1", "--step", "a[1]"]),
    ("ftp url", ["-wf", "wf1", "--url", "ftp://x"]),
    ("url with a query", ["-wf", "wf1", "--url", "http://host/?q=1"]),
    ("url with a fragment", ["-wf", "wf1", "--url", "http://host/#x"]),
    ("not a url", ["-wf", "wf1", "--url", "notaurl"]),
    ("url without host", ["-wf", "wf1", "--url", "http://"]),
    ("url with a space", ["-wf", "wf1", "--url", "http://ho st/"]),
    ("token with a space", ["-wf", "wf1", "--token", "a b"]),
    ("empty token", ["-wf", "wf1", "--token", ""]),
    ("--once=1", ["-wf", "wf1", "--once=1"]),
    ("--local=yes", ["-wf", "wf1", "--local=yes"]),
    ("--fail-fast=", ["-wf", "wf1", "--fail-fast="]),
]


class WaitsyCommandLineTest(WaitsyCase):
    """Usage errors, --help, --version: no Batchy needed (a usage error
    must be refused before any request; the URL points nowhere)."""

    def test_usage_errors_exit_64(self):
        nowhere = "http://127.0.0.1:%d" % free_port()
        for name, args in USAGE_ERRORS:
            with self.subTest(name, args=args):
                # Parsing only: test_waitsy.c runs it under valgrind.
                res = run_waitsy(args, env={"BATCHY_URL": nowhere}, valgrind=False)
                self.assert_usage_error(res)

    def test_bad_environment_values_exit_64(self):
        cases = [
            ({"BATCHY_URL": "ftp://x"}, "BATCHY_URL"),
            ({"BATCHY_URL": "http://host/?q=1"}, "BATCHY_URL"),
            ({"BATCHY_TOKEN": "a b"}, "BATCHY_TOKEN"),
        ]
        for env, name in cases:
            with self.subTest(env=env):
                res = run_waitsy(["-wf", "wf1", "--once"], env=env, valgrind=False)
                self.assert_usage_error(res)
                self.assertIn(name, res.stderr)
                self.assertNotIn("a b", res.stderr)

    def test_url_that_libcurl_refuses_is_a_usage_error(self):
        # passes the first check (http://, a host, no query) but is no URL:
        # the same two-line usage error as any other bad --url
        for url in ("http://127.0.0.1:99999", "http://127.0.0.1:1:2", "http://x:abc/"):
            with self.subTest(url=url):
                res = run_waitsy(["-wf", "wf1", "--once", "--url", url])
                self.assert_usage_error(res)
                self.assertIn("--url", res.stderr)
        res = run_waitsy(["-wf", "wf1", "--once"], env={"BATCHY_URL": "http://127.0.0.1:99999"})
        self.assert_usage_error(res)
        self.assertIn("BATCHY_URL", res.stderr)

    def test_url_password_is_not_echoed(self):
        res = run_waitsy(["-wf", "wf1", "--url", "http://u:s3cret@host/?x"])
        self.assert_usage_error(res)
        self.assertNotIn("s3cret", res.stderr)
        res = run_waitsy(["-wf", "wf1", "--url", "http://u:s3cret@127.0.0.1:%d" % free_port(),
                          "--once"])
        self.assert_exit(res, 3)
        self.assertNotIn("s3cret", res.stdout + res.stderr)

    def assert_usage_error(self, res):
        self.assert_exit(res, 64)
        self.assertEqual(res.stdout, "", self.show(res))
        lines = res.stderr.splitlines()
        self.assertEqual(len(lines), 2, self.show(res))
        self.assertTrue(lines[0].startswith("waitsy: "), self.show(res))
        self.assertGreater(len(lines[0]), len("waitsy: "), self.show(res))
        self.assertEqual(lines[1], "Try 'waitsy --help' for the options.")

    def test_help_lists_every_option_with_examples(self):
        options = ["-wf", "--workflow", "--step", "--url", "--date", "--local", "--interval",
                   "--timeout", "--fail-fast", "--once", "--token", "-q", "--quiet", "-v",
                   "--verbose", "-h", "--help", "--version"]
        for opt in ("--help", "-h"):
            with self.subTest(opt=opt):
                res = run_waitsy([opt])
                self.assert_exit(res, 0)
                self.assertEqual(res.stderr, "")
                for word in options:
                    self.assertRegex(res.stdout, r"(?m)(^|[\s,])%s\b" % re.escape(word),
                                     "--help does not mention %s" % word)
                for variable in ("$BATCHY_URL", "$BATCHY_TOKEN"):
                    self.assertIn(variable, res.stdout)
                self.assertRegex(res.stdout, r"(?m)^\s+waitsy -wf \S+.*$", "no example")
                self.assertIn(" -- ", res.stdout)
        res = run_waitsy(["-wf", "wf1", "--help"])
        self.assert_exit(res, 0)
        self.assertIn("--fail-fast", res.stdout)

    def test_version(self):
        res = run_waitsy(["--version"])
        self.assert_exit(res, 0)
        self.assertEqual(res.stdout, "waitsy %s\n" % VERSION)
        self.assertEqual(res.stderr, "")


if __name__ == "__main__":
    unittest.main()
