"""batchy-run (SPEC section 13): a job run as a step, with real processes:
the window and parameters exported, the outcome recorded (close with
duration_s, fail with the exit status and the tail of stderr), stderr
passed through, SIGTERM passed on, Batchy down at the end and back within
the retry window, a stale batch, a step that is not open."""
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest

from harness import (PROMPT, VALGRIND, Batchy, OwnBatchyMixin, ServiceTestCase, free_port,
                     waitsy_bin, waitsy_env, waitsy_valgrind_dir, waitsy_valgrind_log)

TWO = "load:\n  rows: 5\n  table: t x\nreport:\n  p: 1\n"


def run_bin():
    return os.environ.get("RUN_BIN") or os.path.join(os.path.dirname(waitsy_bin()), "batchy-run")


def command(args):
    cmd = [run_bin()] + [str(a) for a in args]
    if VALGRIND:
        cmd = ["valgrind", "-q", "--leak-check=full", "--show-leak-kinds=definite,indirect",
               "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
               "--trace-children=no",
               "--log-file=%s" % os.path.join(waitsy_valgrind_dir(), "vgw.%p.log")] + cmd
    return cmd


def start(args, cwd, env=None):
    return subprocess.Popen(command(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd, env=waitsy_env(env))


def finish(test, proc, timeout=None):
    try:
        out, err = proc.communicate(timeout=timeout or PROMPT * 6)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        test.fail("batchy-run did not end: %r" % err)
    if VALGRIND and proc.returncode == 99:
        test.fail("valgrind: %s" % waitsy_valgrind_log(proc.pid))
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def wait_file(test, path):
    deadline = time.monotonic() + PROMPT * 3
    while not os.path.exists(path):
        test.assertLess(time.monotonic(), deadline, "%s never appeared" % path)
        time.sleep(0.02)


class BatchyRunTest(ServiceTestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="batchy-run-test-")

    def url(self):
        return "http://127.0.0.1:%d" % self.batchy.port

    def run_job(self, wf, script, *options, env=None):
        p = start(["-wf", wf, "--step", "load", "--url", self.url()] + list(options) +
                  ["--", "sh", "-c", script], self.dir, env)
        return finish(self, p)

    def test_success_exports_the_window_and_closes_with_the_duration(self):
        wf = self.unique("br_ok")
        self.load(wf, TWO)
        opened = self.ok("open_batch", wf)
        rc, out, err = self.run_job(wf, "env | grep ^BATCHY_ | sort > env.txt; "
                                        "echo said on stderr >&2; echo said on stdout; exit 0")
        self.assertEqual(rc, 0, err)
        self.assertIn("said on stdout", out)  # inherited
        self.assertIn("said on stderr", err)  # passed through
        with open(os.path.join(self.dir, "env.txt")) as f:
            env = dict(line.rstrip("\n").split("=", 1) for line in f)
        load = opened["load"]
        self.assertEqual(env["BATCHY_WORKFLOW"], wf)
        self.assertEqual(env["BATCHY_STEP"], "load")
        self.assertEqual(env["BATCHY_BATCH_ID"], str(load["batch_id"]))
        self.assertEqual(env["BATCHY_FROM_DATE"], load["from_date"])
        self.assertEqual(env["BATCHY_TO_DATE"], load["to_date"])
        self.assertEqual(env["BATCHY_LOAD_ROWS"], "5")
        self.assertEqual(env["BATCHY_LOAD_TABLE"], "t x")
        self.assertEqual(env["BATCHY_LOAD_STATUS"], "open")
        state = self.redis.hash_json(wf)
        self.assertEqual(state["load"]["status"], "success")
        self.assertEqual(state["load"]["batch_id"], load["batch_id"])
        self.assertGreaterEqual(float(state["load"]["duration_s"]), 0)
        self.assertEqual(state["report"]["status"], "open")  # only its own step

    def test_failure_records_the_exit_status_and_the_tail_of_stderr(self):
        wf = self.unique("br_fail")
        self.load(wf, TWO)
        self.ok("open_batch", wf)
        rc, _, err = self.run_job(
            wf, "i=0; while [ $i -lt 40 ]; do i=$((i+1)); "
                "printf 'line %02d of a long complaint about the input file\\n' $i >&2; done; "
                "printf '\\033[31mred\\033[0m and a tab\\there\\n' >&2; exit 3")
        self.assertEqual(rc, 3, err)
        self.assertIn("line 01", err)  # all of it shown as it came
        msg = self.redis.hash_json(wf)["load"]["error_message"]
        self.assertEqual(self.redis.hash_json(wf)["load"]["status"], "failed")
        self.assertTrue(msg.startswith("exit 3: ..."), msg)
        self.assertLessEqual(len(msg.encode()), 1000)
        self.assertIn("line 40 of a long complaint", msg)  # the newest lines kept
        self.assertNotIn("line 01", msg)
        self.assertIn("[31mred[0m and a tab here", msg)  # control characters removed
        self.assertNotIn("\x1b", msg)
        self.assertIn(" | ", msg)  # lines joined

    def test_sigterm_is_passed_on_and_the_failure_recorded(self):
        wf = self.unique("br_term")
        self.load(wf, TWO)
        self.ok("open_batch", wf)
        p = start(["-wf", wf, "--step", "load", "--url", self.url(), "--", "sh", "-c",
                   "trap 'echo got TERM >&2; exit 7' TERM; touch ready; "
                   "while :; do sleep 0.05; done"], self.dir)
        wait_file(self, os.path.join(self.dir, "ready"))
        p.send_signal(signal.SIGTERM)
        rc, _, err = finish(self, p)
        self.assertEqual(rc, 7, err)
        self.assertIn("got TERM", err)
        state = self.redis.hash_json(wf)["load"]
        self.assertEqual(state["status"], "failed")
        self.assertEqual(state["error_message"], "exit 7: got TERM")

    def test_a_step_not_open_runs_nothing(self):
        wf = self.unique("br_new")
        self.load(wf, TWO)  # new: never opened
        rc, _, err = self.run_job(wf, "touch ran")
        self.assertEqual(rc, 65, err)
        self.assertIn("not open", err)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "ran")))
        rc, _, err = self.run_job("br_no_such_wf", "touch ran")
        self.assertEqual(rc, 65, err)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "ran")))

    def test_open_opens_that_step_only(self):
        wf = self.unique("br_open")
        self.load(wf, TWO)
        rc, _, err = self.run_job(wf, "exit 0", "--open")
        self.assertEqual(rc, 0, err)
        state = self.redis.hash_json(wf)
        self.assertEqual(state["load"]["status"], "success")
        self.assertEqual(state["report"]["status"], "new")  # never opened

    def test_a_stale_batch_cannot_be_closed(self):
        # The job of an old batch ends after the step was opened again:
        # its close names its batch, and Batchy refuses it.
        wf = self.unique("br_stale")
        self.load(wf, TWO)
        self.ok("open_batch", wf)
        p = start(["-wf", wf, "--step", "load", "--url", self.url(), "--", "sh", "-c",
                   "touch ready; sleep 0.5"], self.dir)
        wait_file(self, os.path.join(self.dir, "ready"))
        reopened = self.ok("open_batch", wf, {"step": "load"})
        rc, _, err = finish(self, p)
        self.assertEqual(rc, 75, err)
        self.assertIn("not recorded", err)
        state = self.redis.hash_json(wf)["load"]
        self.assertEqual(state["status"], "open")  # the new batch, untouched
        self.assertEqual(state["batch_id"], reopened["load"]["batch_id"])

    def test_a_command_that_cannot_run_fails_its_step(self):
        wf = self.unique("br_missing")
        self.load(wf, TWO)
        self.ok("open_batch", wf)
        p = start(["-wf", wf, "--step", "load", "--url", self.url(), "--",
                   "no-such-command-here"], self.dir)
        rc, _, err = finish(self, p)
        self.assertEqual(rc, 127, err)
        msg = self.redis.hash_json(wf)["load"]["error_message"]
        self.assertIn("exit 127: batchy-run: cannot run no-such-command-here", msg)

    def test_usage_errors_exit_64(self):
        for args in ([], ["-wf", "x"], ["-wf", "x", "--step", "s"], ["--nope"],
                     ["-wf", "bad/name", "--step", "s", "--", "true"],
                     ["-wf", "x", "--step", "s", "--timeout", "soon", "--", "true"]):
            p = start(args, self.dir)
            rc, _, err = finish(self, p)
            self.assertEqual(rc, 64, (args, err))
            self.assertIn("batchy-run: ", err)

    def test_help_and_version(self):
        rc, out, _ = finish(self, start(["--help"], self.dir))
        self.assertEqual(rc, 0)
        self.assertTrue(out.startswith("Usage: batchy-run -wf WF --step STEP"), out)
        rc, out, _ = finish(self, start(["--version"], self.dir))
        self.assertEqual((rc, out), (0, self.batchy.get("/index").text.replace(
            "Batchy", "batchy-run")))


class BatchyRunUnreachableTest(OwnBatchyMixin, unittest.TestCase):
    cfg_files = {"brd.yaml": TWO, "bru.yaml": TWO}

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="batchy-run-test-")

    def test_batchy_unreachable_at_the_start_runs_nothing(self):
        p = start(["-wf", "bru", "--step", "load", "--url", "http://127.0.0.1:%d" % free_port(),
                   "--timeout", "1", "--", "touch", "ran"], self.dir)
        rc, _, err = finish(self, p)
        self.assertEqual(rc, 69, err)
        self.assertIn("cannot reach Batchy", err)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "ran")))

    def test_batchy_down_at_the_end_and_back_within_the_retry_window(self):
        b = self.start_batchy()
        port = b.port
        self.assertEqual(b.get("/load_cfg/brd").status, 200)
        self.assertEqual(b.get("/open_batch/brd").status, 200)
        p = start(["-wf", "brd", "--step", "load", "--url", "http://127.0.0.1:%d" % port, "--",
                   "sh", "-c", "touch ready; sleep 1"], self.dir)
        wait_file(self, os.path.join(self.dir, "ready"))
        b.stop()  # down before the job ends
        time.sleep(2.5)  # the job ended, the first tries failed
        again = self.start_batchy(port=port)
        rc, _, err = finish(self, p)
        self.assertEqual(rc, 0, err)
        self.assertIn("retrying", err)
        state = json.loads(self.redis.cli("HGET", "brd", "load"))
        self.assertEqual(state["status"], "success")
        self.assertEqual(again.get("/get_status/brd").json()["load"]["status"], "success")


if __name__ == "__main__":
    unittest.main()
