"""
test_faults.py - faults, with real processes: Redis killed and restarted
under load, a Redis that answers slowly, slow and abusive HTTP clients, and
batchy itself killed in the middle of writes. After each, scripts/check-state
walks every key and finds every workflow agreeing with its snapshot.
"""
import json
import os
import signal
import socket
import subprocess
import threading
import time
import unittest
from collections import Counter

from harness import (PROMPT, REPO_ROOT, SLOW, VALGRIND, Batchy, OwnBatchyMixin, http_request)

CHECK_STATE = os.path.join(REPO_ROOT, "scripts", "check-state")
# The run command's Redis: every write is on disk before Redis answers it.
DURABLE_REDIS = ("--appendonly", "yes", "--appendfsync", "always")
TWO_STEPS = "extract:\n  p: 1\nload:\n  reprocess_hours: 2\n"


class LoadWorker(threading.Thread):
    """One client looping over its own workflows: open_batch, then
    close_batch (or fail_batch every third time) of the batch it opened.
    Records every status, every connection error, and the batch of every
    close and fail that was answered 200."""

    def __init__(self, port, workflows, fail_every=3):
        super().__init__(daemon=True)
        self.port = port
        self.workflows = workflows
        self.fail_every = fail_every
        self.stop = threading.Event()
        self.statuses = Counter()
        self.errors = []
        self.ended = []  # (wf, batch_id, "success" | "failed")

    def call(self, path):
        try:
            r = http_request(self.port, "GET", path, timeout=30 * SLOW)
        except OSError as e:
            self.errors.append("%s: %r" % (path, e))
            return None
        self.statuses[r.status] += 1
        return r

    def run(self):
        n = 0
        while not self.stop.is_set():
            wf = self.workflows[n % len(self.workflows)]
            n += 1
            r = self.call("/open_batch/" + wf)
            if r is None or r.status != 200:
                time.sleep(0.02)  # Redis is down: do not spin
                continue
            batch = r.json()["extract"]["batch_id"]
            status = "failed" if n % self.fail_every == 0 else "success"
            endpoint = "fail_batch" if status == "failed" else "close_batch"
            r = self.call("/%s/%s?batch_id=%d" % (endpoint, wf, batch))
            if r is not None and r.status == 200:
                self.ended.append((wf, batch, status))


def run_check_state(redis):
    out = subprocess.run([CHECK_STATE, redis.url], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60)
    return out.returncode, out.stdout.decode("utf-8", "replace")


class FaultTestCase(OwnBatchyMixin, unittest.TestCase):
    def load_workflows(self, b, count, prefix):
        names = ["%s%d" % (prefix, i) for i in range(count)]
        for wf in names:
            with open(os.path.join(self.cfg_dir, wf + ".yaml"), "w") as f:
                f.write(TWO_STEPS)
            r = b.get("/load_cfg/" + wf)
            self.assertEqual(r.status, 200, r)
        return names

    def start_load(self, port, workflows, clients):
        workers = [LoadWorker(port, workflows[i::clients]) for i in range(clients)]
        for w in workers:
            w.start()
        return workers

    def stop_load(self, workers):
        for w in workers:
            w.stop.set()
        for w in workers:
            w.join(60 * SLOW)
            self.assertFalse(w.is_alive(), "a client is stuck")
        statuses = sum((w.statuses for w in workers), Counter())
        return statuses, [e for w in workers for e in w.errors], [e for w in workers for e in w.ended]

    def assert_state_agrees(self):
        rc, out = run_check_state(self.redis)
        self.assertEqual(rc, 0, out)
        self.assertIn("all agree", out)

    def assert_ended_batches_kept(self, ended):
        """Every close or fail answered 200 is in its batch's snapshot."""
        self.assertTrue(ended, "no batch was closed: the load did nothing")
        dump = self.redis.dump()
        lost = []
        for wf, batch, status in ended:
            snap = dump.get("%s-%d" % (wf, batch), {})
            for step in ("extract", "load"):
                if json.loads(snap.get(step, "{}")).get("status") != status:
                    lost.append((wf, batch, step, status, snap.get(step)))
        self.assertEqual(lost, [], "closes answered 200 but not in Redis")


class RedisKilledUnderLoadTest(FaultTestCase):
    """Redis as the run command starts it (AOF, appendfsync always), killed
    with SIGKILL while four clients open and close batches."""
    redis_args = DURABLE_REDIS

    def test_redis_killed_under_load_gives_503_then_recovers_and_loses_no_close(self):
        b = self.start_batchy(args=("--threads", "4"))
        workflows = self.load_workflows(b, 8, "kl")
        workers = self.start_load(b.port, workflows, 4)
        time.sleep(1.0 * SLOW)
        self.redis.stop(signal.SIGKILL)
        time.sleep(0.5 * SLOW)
        # down: every call is a prompt, JSON 503; nothing else
        for path in ("/healthz", "/get_status/kl0", "/open_batch/kl0", "/close_batch/kl0"):
            started = time.monotonic()
            r = b.get(path)
            self.assertEqual(r.status, 503, (path, r))
            self.assertIn("Redis is unreachable", r.json()["error"])
            self.assertLess(time.monotonic() - started, PROMPT, path)
        time.sleep(0.5 * SLOW)
        self.redis.start()  # same port and dir: replays the append-only file
        back = time.monotonic()
        while True:
            r = b.get("/get_status/kl0")
            if r.status == 200:
                break
            self.assertLess(time.monotonic() - back, PROMPT,
                            "still %d %s %s s after Redis was back" % (r.status, r.body, PROMPT))
            time.sleep(0.05)
        time.sleep(1.0 * SLOW)
        statuses, errors, ended = self.stop_load(workers)

        self.assertTrue(b.running(), "batchy died")
        self.assertEqual(errors, [], "a call got no HTTP answer")
        self.assertEqual(set(statuses), {200, 503}, statuses)
        # Redis killed again once the load has stopped: what it answered
        # before is on disk, so it is all there after the restart.
        self.redis.stop(signal.SIGKILL)
        self.redis.start()
        self.assert_ended_batches_kept(ended)
        self.assert_state_agrees()
        self.assertEqual(b.get("/open_batch/kl1").status, 200)


class SlowRedisTest(FaultTestCase):
    """A Redis that does not answer (CLIENT PAUSE) for longer than a call
    may take with batchy's command timeout of half a second, with two worker
    threads. (A pause cannot be lifted early: CLIENT UNPAUSE waits too.)"""

    TIMEOUT_MS = 500
    # seconds a call may take: "at once" for a busy machine, and the pause
    # lasts 3 s longer, so a call held by it is still told apart
    LIMIT = 3 * TIMEOUT_MS / 1000 + PROMPT
    PAUSE_MS = int((LIMIT + 3) * 1000)

    def paused_calls(self, b, paths):
        """Pause Redis, send paths concurrently; return [(path, status, seconds)]."""
        results = []

        def call(path):
            started = time.monotonic()
            r = b.get(path, timeout=60 * SLOW)
            results.append((path, r.status, time.monotonic() - started))

        self.redis.cli("CLIENT", "PAUSE", self.PAUSE_MS, "ALL")
        threads = []
        for i, path in enumerate(paths):
            threads.append(threading.Thread(target=call, args=(path,)))
            threads[-1].start()
            time.sleep(0.05 if i == 0 else 0)
        for t in threads:
            t.join(60 * SLOW)
        return results

    def test_slow_redis_times_out_with_503_and_frees_the_workers(self):
        b = self.start_batchy(args=("--threads", "2"),
                              env={"BATCHY_REDIS_TIMEOUT_MS": str(self.TIMEOUT_MS)})
        self.load_workflows(b, 1, "slow")
        self.assertEqual(b.get("/open_batch/slow0").status, 200)
        # Both workers get a request that waits for Redis, then a third
        # request that needs no Redis comes in behind them.
        results = self.paused_calls(b, ["/get_status/slow0", "/close_batch/slow0", "/index"])
        limit = self.LIMIT
        by_path = {p: (s, t) for p, s, t in results}
        self.assertEqual(len(by_path), 3, results)
        for path in ("/get_status/slow0", "/close_batch/slow0"):
            status, took = by_path[path]
            self.assertEqual(status, 503, results)
            self.assertLess(took, limit, "%s held %.2fs by a paused Redis" % (path, took))
        status, took = by_path["/index"]
        self.assertEqual(status, 200, results)
        self.assertLess(took, limit, "/index waited %.2fs for a worker" % took)
        # once the pause is over: the close may or may not have been applied
        # (503 says so); either way the workflow agrees with its snapshot
        # and serves again
        deadline = time.monotonic() + self.PAUSE_MS / 1000 + 5 * SLOW
        while b.get("/get_status/slow0").status != 200:
            self.assertLess(time.monotonic(), deadline, "no recovery after the pause")
            time.sleep(0.1)
        self.assert_state_agrees()
        self.assertEqual(b.get("/open_batch/slow0").status, 200)


class SlowClientTest(FaultTestCase):
    """Clients that send nothing, or a byte at a time; a client timeout of
    2 seconds."""

    TIMEOUT = 2

    def start(self, **kw):
        env = {"BATCHY_CLIENT_TIMEOUT": str(self.TIMEOUT)}
        env.update(kw.pop("env", {}))
        return self.start_batchy(env=env, **kw)

    def closed_after(self, sock, send=b"", every=0.25, within=None):
        """Send `send` a byte every `every` seconds (then nothing) until the
        server closes; return (seconds, bytes sent, what was received)."""
        within = within or (self.TIMEOUT + 3) * SLOW
        started = time.monotonic()
        sent, got = 0, b""
        sock.settimeout(every)
        while time.monotonic() - started < within:
            if sent < len(send):
                try:
                    sock.send(send[sent:sent + 1])
                    sent += 1
                except OSError:
                    return time.monotonic() - started, sent, got
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return time.monotonic() - started, sent, got
            if not chunk:
                return time.monotonic() - started, sent, got
            got += chunk
        self.fail("connection still open after %.1fs (sent %d bytes, got %r)"
                  % (within, sent, got[:100]))

    def test_connection_that_sends_nothing_is_closed_after_the_timeout(self):
        b = self.start()
        with socket.create_connection(("127.0.0.1", b.port)) as s:
            took, _, got = self.closed_after(s)
        self.assertEqual(got, b"")
        self.assertGreaterEqual(took, self.TIMEOUT - 0.5)

    def test_request_sent_a_byte_at_a_time_is_cut_after_the_timeout(self):
        # four bytes a second: never idle long enough for an inactivity
        # timeout, so only the request deadline can end it
        b = self.start()
        request = b"GET /get_status/wf1 HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
        with socket.create_connection(("127.0.0.1", b.port)) as s:
            took, sent, got = self.closed_after(s, request)
        self.assertLess(sent, len(request), "the whole request went through")
        self.assertGreaterEqual(took, self.TIMEOUT - 0.5)
        self.assertNotIn(b"HTTP/1.1 200", got)
        self.assertEqual(b.get("/index").status, 200)

    def test_body_sent_a_byte_at_a_time_is_cut_after_the_timeout(self):
        b = self.start()
        body = b"step=" + b"x" * 200
        head = (b"POST /close_batch/wf1 HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body))
        with socket.create_connection(("127.0.0.1", b.port)) as s:
            s.sendall(head)
            took, sent, got = self.closed_after(s, body)
        self.assertLess(sent, len(body))
        self.assertNotIn(b"HTTP/1.1 200", got)

    def test_keep_alive_connection_may_live_longer_than_the_timeout(self):
        # the deadline is per request: a client that sends each request
        # promptly keeps its connection as long as it likes
        b = self.start()
        with socket.create_connection(("127.0.0.1", b.port), timeout=10 * SLOW) as s:
            for _ in range(4):
                s.sendall(b"GET /index HTTP/1.1\r\nHost: x\r\n\r\n")
                reply = s.recv(4096)
                self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply)
                time.sleep(self.TIMEOUT * 0.6)

    def test_time_batchy_waits_for_redis_does_not_count_against_the_client(self):
        b = self.start(env={"BATCHY_REDIS_TIMEOUT_MS": "10000"})
        self.load_workflows(b, 1, "wait")
        self.redis.cli("CLIENT", "PAUSE", int((self.TIMEOUT + 1.5) * 1000), "ALL")
        started = time.monotonic()
        r = b.get("/get_status/wait0", timeout=30 * SLOW)
        self.assertEqual(r.status, 200, r)
        self.assertGreater(time.monotonic() - started, self.TIMEOUT)

    def test_the_soft_descriptor_limit_is_raised_as_the_connections_need(self):
        if VALGRIND:  # reported as skipped, in that round only
            self.skipTest("valgrind fixes a process' descriptor limit when it starts it "
                          "(it keeps the top descriptors for itself): nothing to raise")
        hard = 4000
        b = self.start(env={"BATCHY_MAX_CONNECTIONS": "3000"}, nofile=(1024, hard))
        with open("/proc/%d/limits" % b.proc.pid) as f:
            line = next(l for l in f if l.startswith("Max open files"))
        self.assertEqual(line.split()[3:5], ["3064", str(hard)], line)
        b2 = self.start(env={"BATCHY_MAX_CONNECTIONS": "9000"}, nofile=(1024, hard))
        with open("/proc/%d/limits" % b2.proc.pid) as f:
            line = next(l for l in f if l.startswith("Max open files"))
        self.assertEqual(line.split()[3:5], [str(hard)] * 2, line)  # as far as it may

    def test_flood_of_connections_stays_within_descriptors_and_recovers(self):
        # 256 descriptors, soft and hard (batchy raises its soft limit as
        # far as the hard one lets it): batchy keeps its connections below
        # that (192), so a flood of 500 never makes it fail to accept, open
        # a file, or reach Redis; the connections it took are cut after the
        # timeout.
        b = self.start(nofile=256)
        self.load_workflows(b, 1, "flood")
        rss_before = rss_kb(b.proc.pid)
        flood = []
        try:
            for _ in range(500):
                try:
                    flood.append(socket.create_connection(("127.0.0.1", b.port), timeout=5))
                except OSError:
                    break  # the listen backlog is full: the flood is at its peak
            self.assertGreater(len(flood), 200, "the flood did not get going")
            for s in flood[:50]:
                s.sendall(b"GET /get_status/flood0 HTTP/1.1\r\n")  # and never more
            time.sleep(0.5 * SLOW)
            fds = len(os.listdir("/proc/%d/fd" % b.proc.pid))
            self.assertLess(fds, 256)
            grown = rss_kb(b.proc.pid) - rss_before
            self.assertLess(grown, 64 * 1024, "RSS grew %d kB under the flood" % grown)
            # while the flood holds on: the cut connections make room
            deadline = time.monotonic() + (self.TIMEOUT + 5) * SLOW
            while True:
                try:
                    r = b.get("/get_status/flood0", timeout=2 * SLOW)
                    if r.status == 200:
                        break
                except OSError:
                    pass
                self.assertLess(time.monotonic(), deadline, "no answer while the flood held on")
                time.sleep(0.2)
        finally:
            for s in flood:
                s.close()
        self.assertTrue(b.running())
        self.assertEqual(b.get("/open_batch/flood0").status, 200)
        self.assertNotIn("Too many open files", b.stderr())


class ConnectionLimitTest(FaultTestCase):
    """A connection limit of 20, filled by clients that connect and send
    nothing. The client timeout is long: a connection left waiting for an
    idle one to be cut would wait minutes, not the PROMPT seconds allowed."""

    LIMIT = 20
    CLIENT_TIMEOUT = 300

    def start(self):
        return self.start_batchy(args=("--threads", "2"), env={
            "BATCHY_MAX_CONNECTIONS": str(self.LIMIT),
            "BATCHY_CLIENT_TIMEOUT": str(self.CLIENT_TIMEOUT)})

    def connect(self, port, count):
        return [socket.create_connection(("127.0.0.1", port), timeout=PROMPT)
                for _ in range(count)]

    def assert_closed_unanswered(self, port):
        """A request on a new connection: batchy closes it without an answer
        within PROMPT seconds."""
        got = b""
        with socket.create_connection(("127.0.0.1", port), timeout=PROMPT) as s:
            try:
                s.sendall(b"GET /index HTTP/1.1\r\nHost: x\r\n\r\n")
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
            except (ConnectionResetError, BrokenPipeError):
                pass  # closed with the request unread: the kernel resets
            except socket.timeout:
                self.fail("a connection past the limit still open after %ss" % PROMPT)
        self.assertEqual(got, b"")

    def assert_served_within_prompt(self, b, path="/index"):
        """GET path is answered 200 within PROMPT seconds, retried while
        batchy refuses it (it may not have seen clients leave yet)."""
        deadline = time.monotonic() + PROMPT
        while True:
            try:
                r = b.get(path, timeout=PROMPT)
                break
            except OSError as e:
                self.assertLess(time.monotonic(), deadline, "no room after clients left: %r" % e)
                time.sleep(0.05)
        self.assertEqual(r.status, 200, r)

    def test_connection_past_the_limit_is_closed_at_once_and_room_is_served_at_once(self):
        b = self.start()
        idle = self.connect(b.port, 2 * self.LIMIT)
        try:
            for _ in range(3):
                self.assert_closed_unanswered(b.port)
            # the connections batchy took are kept, and served meanwhile
            idle[0].sendall(b"GET /index HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(idle[0].recv(4096).startswith(b"HTTP/1.1 200"))
            # clients leave: the next one is served as soon as there is room
            for s in idle[:self.LIMIT // 2]:
                s.close()
            self.assert_served_within_prompt(b)
        finally:
            for s in idle:
                s.close()
        # the refused connections took no place for good: with all but one
        # place taken again, a client is still served
        idle = self.connect(b.port, self.LIMIT - 1)
        try:
            self.assert_served_within_prompt(b)
        finally:
            for s in idle:
                s.close()
        # once batchy has seen them leave (not at the same instant)
        self.assert_served_within_prompt(b, "/healthz")
        b.stop_checked()  # exits 0: under the sanitizers, no leak or error either


class BatchyKilledMidWriteTest(FaultTestCase):
    """batchy killed with SIGKILL three times while four clients open,
    close and fail batches; restarted on the same port each time."""

    def test_batchy_killed_under_load_never_leaves_a_workflow_and_its_snapshot_apart(self):
        port = None
        workflows = None
        ended = []
        for round_ in range(3):
            b = self.start_batchy(args=("--threads", "4"), port=port)
            port = b.port
            if workflows is None:
                workflows = self.load_workflows(b, 8, "bk")
            self.assert_state_agrees()
            workers = self.start_load(port, workflows, 4)
            time.sleep((0.7 + 0.3 * round_) * SLOW)
            b.proc.send_signal(signal.SIGKILL)
            b.proc.wait(10 * SLOW)
            statuses, errors, done = self.stop_load(workers)
            ended += done
            self.assertEqual(set(statuses) - {200}, set(), statuses)
            self.assertGreater(statuses[200], 0)
            self.assert_state_agrees()
        b = self.start_batchy(port=port)
        self.assert_ended_batches_kept(ended)
        for wf in workflows:
            self.assertEqual(b.get("/get_status/" + wf).status, 200)
            r = b.get("/open_batch/" + wf)
            self.assertEqual(r.status, 200, r)
        self.assert_state_agrees()


class CheckStateTest(FaultTestCase):
    """scripts/check-state itself: it must see what it is there to see."""

    def test_check_state_reports_each_kind_of_disagreement(self):
        b = self.start_batchy()
        wfs = self.load_workflows(b, 4, "cs")
        for wf in wfs[1:]:
            self.assertEqual(b.get("/open_batch/" + wf).status, 200)
        self.assert_state_agrees()
        rc, out = run_check_state(self.redis)
        self.assertIn("4 workflows, 7 snapshots: all agree", out)
        # cs0: loaded, then edited by hand; cs1: its snapshot edited;
        # cs2: its snapshot deleted; cs3: a value that is not JSON
        self.redis.cli("HSET", "cs0", "extract", '{"p":2,"status":"new"}')
        batch1 = self.redis.hash_json("cs1")["load"]["batch_id"]
        self.redis.cli("HSET", "cs1-%d" % batch1, "load", '{"status":"success"}')
        batch2 = self.redis.hash_json("cs2")["load"]["batch_id"]
        self.redis.cli("DEL", "cs2-%d" % batch2)
        self.redis.cli("HSET", "cs3", "extract", "not json")
        rc, out = run_check_state(self.redis)
        self.assertEqual(rc, 1, out)
        lines = out.splitlines()
        self.assertEqual(len(lines), 5, out)
        self.assertIn("cs0: no batch_id and not equal to its newest -init snapshot", out)
        self.assertIn("cs1: differs from cs1-%d in step(s) load" % batch1, out)
        self.assertIn("cs2: current batch %d has no snapshot cs2-%d" % (batch2, batch2), out)
        self.assertIn("cs3: a value is not a JSON object", out)
        self.assertEqual(lines[-1], "4 workflows, 6 snapshots: 4 problem(s)")

    def test_check_state_exits_2_when_redis_cannot_be_read(self):
        out = subprocess.run([CHECK_STATE, "redis://127.0.0.1:1/0"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=60)
        self.assertEqual(out.returncode, 2, out)
        self.assertIn(b"cannot read Redis", out.stderr)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


if __name__ == "__main__":
    unittest.main()
