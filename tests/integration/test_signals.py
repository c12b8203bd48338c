"""
test_signals.py - stopping (SIGTERM, SIGINT: exit 0) and the command line
and environment options of SPEC section 6.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Batchy, OwnBatchyMixin, RedisServer, batchy_bin, free_port, http_request, SLOW

THREE = "job1:\n  p: 1\njob2:\njob3:\n"


def run_batchy(args, env=None, timeout=10):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHY_") and k != "REDIS_URL"}
    full_env.update(env or {})
    return subprocess.run([batchy_bin()] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, env=full_env, timeout=timeout)


class SignalsAndOptionsTest(OwnBatchyMixin, unittest.TestCase):
    cfg_files = {"wf1.yaml": THREE}

    def assert_stops_with_zero(self, b, sig):
        b.send_signal(sig)
        rc = b.wait(harness.STOP_TIMEOUT)
        self.assertIsNotNone(rc, "batchy did not exit within %ss after %s" % (harness.STOP_TIMEOUT, sig.name))
        self.assertEqual(rc, 0, "exit status after %s; stderr:\n%s%s" % (
            sig.name, b.stderr()[-3000:], ("\n" + b.valgrind_logs()) if harness.VALGRIND else ""))
        with self.assertRaises(OSError):
            http_request(b.port, "GET", "/index", timeout=2)

    # ---- signals
    def test_sigterm_ends_batchy_with_status_zero(self):
        b = self.start_batchy()
        self.assertEqual(b.get("/load_cfg/wf1").status, 200)
        self.assertEqual(b.get("/open_batch/wf1").status, 200)
        self.assert_stops_with_zero(b, signal.SIGTERM)

    def test_sigint_ends_batchy_with_status_zero(self):
        b = self.start_batchy()
        self.assertIn(b.get("/get_status/wf1").status, (200, 404))
        self.assert_stops_with_zero(b, signal.SIGINT)

    def test_sigterm_with_an_idle_client_connection_still_exits(self):
        b = self.start_batchy()
        idle = socket.create_connection(("127.0.0.1", b.port))
        try:
            idle.sendall(b"GET /index HTTP/1.1\r\nHost: x\r\n\r\n")
            idle.recv(4096)  # answered; the keep-alive connection stays open
            self.assert_stops_with_zero(b, signal.SIGTERM)
        finally:
            idle.close()

    def test_sigterm_answers_the_request_in_flight_before_exiting(self):
        # An open that is under way when SIGTERM comes must still get its
        # answer: a client that got none would retry and open a second batch.
        # "Under way" is an event, not a delay: the signal goes once batchy
        # has read the request (its socket's receive queue is empty) while
        # Redis is busy. Redis stays busy for less than its 5 s script limit,
        # and batchy waits for Redis longer than that.
        b = self.start_batchy(env={"BATCHY_REDIS_TIMEOUT_MS": "10000"})
        self.assertEqual(b.get("/load_cfg/wf1").status, 200)
        busy_us = int(min(1.5 * SLOW, 4) * 1000000)
        busy = ("local t = redis.call('TIME') "
                "repeat local n = redis.call('TIME') "
                "until (n[1] - t[1]) * 1000000 + (n[2] - t[2]) > %d" % busy_us)
        sleeper = subprocess.Popen(["redis-cli", "-p", str(self.redis.port), "EVAL", busy, "0"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.2)  # Redis is busy: the open below waits on it
            with socket.create_connection(("127.0.0.1", b.port), timeout=30 * SLOW) as s:
                s.sendall(b"GET /open_batch/wf1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                self.wait_until_read(b.port, s.getsockname()[1])
                b.send_signal(signal.SIGTERM)
                reply = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
        finally:
            sleeper.wait(10)
        head, _, body = reply.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), reply[:300])
        self.assertEqual(b.wait(), 0)
        latest = self.redis.hash_json("wf1")
        self.assertEqual(latest["job1"]["batch_id"], json.loads(body)["job1"]["batch_id"])

    def wait_until_read(self, server_port, client_port):
        """Wait until the server side of the connection from client_port to
        server_port has nothing left to read (/proc/net/tcp, rx_queue)."""
        deadline = time.monotonic() + 10 * SLOW
        local, remote = "%04X" % server_port, "%04X" % client_port
        while time.monotonic() < deadline:
            with open("/proc/net/tcp") as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if (fields[1].endswith(":" + local) and fields[2].endswith(":" + remote)
                            and int(fields[4].split(":")[1], 16) == 0):
                        return
            time.sleep(0.005)
        self.fail("batchy did not read the request within %ss" % (10 * SLOW))

    def test_sigterm_right_after_start_exits_zero(self):
        b = self.start_batchy()
        self.assert_stops_with_zero(b, signal.SIGTERM)

    # ---- options
    def test_version_prints_version_and_exits_zero(self):
        for opt in ("--version", "-V"):
            with self.subTest(opt=opt):
                out = run_batchy([opt])
                self.assertEqual(out.returncode, 0, out)
                self.assertEqual(out.stdout.decode().strip().splitlines()[0], "batchy 1.0.0")

    def test_help_exits_zero_and_lists_options(self):
        for opt in ("--help", "-h"):
            with self.subTest(opt=opt):
                out = run_batchy([opt])
                self.assertEqual(out.returncode, 0, out)
                text = out.stdout.decode()
                for word in ("--listen", "--redis", "--cfg-dir", "--threads", "--token", "--quiet"):
                    self.assertIn(word, text)

    def test_unknown_option_exits_64_with_usage_on_stderr(self):
        for args in (["--bogus"], ["-Z"], ["--listen"]):
            with self.subTest(args=args):
                out = run_batchy(args)
                self.assertEqual(out.returncode, 64, out)
                err = out.stderr.decode()
                self.assertIn(args[0], err, out)
                self.assertTrue("usage" in err.lower() or "--help" in err, out)
                self.assertEqual(out.stdout, b"", out)

    def test_bad_option_values_and_stray_arguments_exit_nonzero(self):
        for args in (["--threads", "many"], ["--threads", "0"], ["stray"]):
            with self.subTest(args=args):
                out = run_batchy(args + ["--listen", "127.0.0.1:%d" % free_port()], timeout=10 * SLOW)
                self.assertNotEqual(out.returncode, 0, out)
                self.assertTrue(out.stderr.strip(), out)

    def test_bad_listen_address_exits_nonzero(self):
        out = run_batchy(["--listen", "not-an-address", "--redis", self.redis.url])
        self.assertNotEqual(out.returncode, 0, out)
        self.assertTrue(out.stderr.strip(), out)

    def test_bad_redis_url_exits_nonzero(self):
        out = run_batchy(["--listen", "127.0.0.1:%d" % free_port(), "--redis", "http://x"])
        self.assertNotEqual(out.returncode, 0, out)
        self.assertTrue(out.stderr.strip(), out)

    def test_batchy_listen_environment_sets_the_address(self):
        port = free_port()
        b = self.start_batchy(listen=False, port=port, env={"BATCHY_LISTEN": "127.0.0.1:%d" % port})
        self.assertEqual(b.get("/load_cfg/wf1").status, 200)

    def test_command_line_wins_over_environment(self):
        port, other = free_port(), free_port()
        b = self.start_batchy(port=port, env={"BATCHY_LISTEN": "127.0.0.1:%d" % other})
        self.assertEqual(b.get("/healthz").status, 200)
        with self.assertRaises(OSError):
            http_request(other, "GET", "/index", timeout=2)

    def test_redis_and_cfg_dir_from_environment(self):
        b = self.start_batchy(redis_url=None, cfg_dir=None,
                       env={"BATCHY_REDIS_URL": self.redis.url, "BATCHY_CFG_DIR": self.cfg_dir})
        r = b.get("/load_cfg/wf1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(b.get("/healthz").status, 200)

    def test_redis_url_environment_fallback(self):
        b = self.start_batchy(redis_url=None, env={"REDIS_URL": self.redis.url})
        self.assertEqual(b.get("/healthz").status, 200)

    def test_batchy_redis_url_wins_over_redis_url(self):
        b = self.start_batchy(redis_url=None, env={"BATCHY_REDIS_URL": self.redis.url,
                                            "REDIS_URL": "redis://127.0.0.1:%d/0" % free_port()})
        self.assertEqual(b.get("/healthz").status, 200)

    def test_short_options(self):
        port = free_port()
        b = self.start_batchy(listen=False, redis_url=None, cfg_dir=None, port=port,
                       args=["-l", "127.0.0.1:%d" % port, "-r", self.redis.url, "-c", self.cfg_dir,
                             "-t", "2"])
        self.assertEqual(b.get("/load_cfg/wf1").status, 200)

    def test_cfg_dir_default_is_cfg_under_working_directory(self):
        work = tempfile.mkdtemp(prefix="batchy-cwd-")
        try:
            os.mkdir(os.path.join(work, "cfg"))
            with open(os.path.join(work, "cfg", "cwdwf.yaml"), "w") as f:
                f.write(THREE)
            b = Batchy(self.redis.url, None, workdir=work)
            self.started.append(b)
            b.start()
            r = b.get("/load_cfg/cwdwf")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(b.stop(), 0)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def test_redis_url_database_number_is_used(self):
        with open(os.path.join(self.cfg_dir, "dbwf.yaml"), "w") as f:
            f.write(THREE)
        b = self.start_batchy(redis_url="redis://127.0.0.1:%d/3" % self.redis.port)
        self.assertEqual(b.get("/load_cfg/dbwf").status, 200)
        self.assertEqual(self.redis.cli("HEXISTS", "dbwf", "job1", db=3), "1")
        self.assertEqual(self.redis.cli("EXISTS", "dbwf", db=0), "0")

    def test_redis_password_in_url(self):
        secured = RedisServer(extra_args=["--requirepass", "pw0rd"])
        try:
            secured.start()
            b = self.start_batchy(redis_url="redis://:pw0rd@127.0.0.1:%d/0" % secured.port)
            self.assertEqual(b.get("/healthz").status, 200)
            self.assertEqual(b.get("/load_cfg/wf1").status, 200)
            self.assertEqual(secured.cli("HEXISTS", "wf1", "job1", password="pw0rd"), "1")
            self.assertNotIn("pw0rd", b.stderr())
            wrong = self.start_batchy(redis_url="redis://:nope@127.0.0.1:%d/0" % secured.port)
            self.assertEqual(wrong.get("/healthz").status, 503)
        finally:
            for b in self.started:
                b.cleanup()
            self.started = []
            secured.cleanup()

    def test_unix_socket_redis_url(self):
        sock_dir = tempfile.mkdtemp(prefix="bty-sock-")
        path = os.path.join(sock_dir, "r.sock")
        over_unix = RedisServer(extra_args=["--unixsocket", path, "--unixsocketperm", "700"])
        try:
            over_unix.start()
            b = self.start_batchy(redis_url="unix://%s?db=2" % path)
            self.assertEqual(b.get("/healthz").status, 200)
            self.assertEqual(b.get("/load_cfg/wf1").status, 200)
            self.assertEqual(over_unix.cli("HEXISTS", "wf1", "job1", db=2), "1")
        finally:
            for b in self.started:
                b.cleanup()
            self.started = []
            over_unix.cleanup()
            shutil.rmtree(sock_dir, ignore_errors=True)

    def test_quiet_writes_no_access_log(self):
        b = self.start_batchy(args=["-q"])
        self.assertEqual(b.get("/get_status/quietwf").status, 404)
        self.assertEqual(b.get("/index").status, 200)
        time.sleep(0.2)
        self.assertNotIn("/get_status/quietwf", b.stderr())
        self.assertEqual(b.stop(), 0)

    def test_listen_port_in_use_exits_nonzero(self):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            out = run_batchy(["--listen", "127.0.0.1:%d" % port, "--redis", self.redis.url],
                             timeout=15 * SLOW)
            self.assertNotEqual(out.returncode, 0, out)
            self.assertTrue(out.stderr.strip(), out)


    def test_second_batchy_on_the_same_port_exits_nonzero(self):
        # two batchy on one port must not share it (SO_REUSEPORT)
        first = self.start_batchy()
        out = run_batchy(["--listen", "127.0.0.1:%d" % first.port, "--redis", self.redis.url],
                         timeout=15 * SLOW)
        self.assertNotEqual(out.returncode, 0, out)
        self.assertIn(b"cannot listen", out.stderr)
        self.assertEqual(first.get("/index").status, 200)

    def test_bad_values_of_the_newer_options_exit_64_saying_which(self):
        # --min-replicas, --replica-timeout, --read-cache-mb, --metrics-steps,
        # --ui-dir: on the command line and in the environment alike
        cases = [(["--min-replicas", "-1"], {}, "--min-replicas must be 0-100"),
                 (["--min-replicas", "many"], {}, "--min-replicas must be 0-100"),
                 (["--replica-timeout", "0"], {}, "--replica-timeout must be 1-60000 ms"),
                 (["--read-cache-mb", "lots"], {}, "--read-cache-mb must be 0-1000000"),
                 (["--metrics-steps", "yes"], {}, "--metrics-steps must be on or off"),
                 (["--ui-dir", "x" * 2000], {}, "--ui-dir too long"),
                 ([], {"BATCHY_MIN_REPLICAS": "101"}, "BATCHY_MIN_REPLICAS must be 0-100"),
                 ([], {"BATCHY_REPLICA_TIMEOUT": "60001"}, "BATCHY_REPLICA_TIMEOUT must be"),
                 ([], {"BATCHY_READ_CACHE_MB": "-5"}, "BATCHY_READ_CACHE_MB must be"),
                 ([], {"BATCHY_UI_DIR": "x" * 2000}, "BATCHY_UI_DIR too long")]
        for args, env, says in cases:
            with self.subTest(args=args, env=list(env)):
                out = run_batchy(args, env=env)
                self.assertEqual(out.returncode, 64, out)
                self.assertIn(says.encode(), out.stderr)
                self.assertEqual(out.stdout, b"", out)

    def test_redis_url_errors_never_show_the_password(self):
        for url in ("redis://etl:s3cret@localhost/abc", "redis://:s3cret@localhost:99999",
                    "rediss://:s3cret@localhost"):
            with self.subTest(url=url):
                out = run_batchy(["--redis", url])
                self.assertEqual(out.returncode, 64, out)
                self.assertIn(b"Redis URL", out.stderr)
                self.assertNotIn(b"s3cret", out.stderr + out.stdout)


if __name__ == "__main__":
    unittest.main()
