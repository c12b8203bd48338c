"""Batchy through Redis Sentinel (SPEC section 12) when something is wrong:
a malformed URL exits 64 at start; no sentinel reachable, or a master they
do not know, and Batchy starts all the same, answers 503 saying why (in
healthz too), and recovers by itself once they answer. And the healthy
case: which master healthz names, and writes through it; a failover asked
of the sentinels, followed at once even when the sentinel listed first
hangs. Failovers under load are test_failover.py's."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import PROMPT, Batchy, RedisServer, SentinelSet, batchy_bin, free_port


class SentinelUrlTest(unittest.TestCase):

    def test_a_malformed_sentinel_url_exits_64_at_start(self):
        for url in ("sentinel://127.0.0.1:26379", "sentinel:///batchy", "sentinel://h:x/batchy",
                    "sentinel://h:1/batchy/db", "sentinel://h:1/batchy?password=x",
                    "sentinel://:secret@/batchy"):
            p = subprocess.run([batchy_bin(), "--redis", url], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30, stdin=subprocess.DEVNULL)
            self.assertEqual(p.returncode, 64, (url, p.stderr))
            err = p.stderr.decode()
            self.assertIn("Sentinel URL", err)
            self.assertNotIn("secret", err)  # a URL is never repeated: it may hold a password


class SentinelTest(unittest.TestCase):

    def setUp(self):
        # failover-timeout also bounds how long the sentinel leading a
        # failover waits to see the replica it promoted say "master": past
        # it, the failover is aborted and the master stays. 5 s, not 2 s,
        # so that a busy machine rarely gets there (fail_over asks again
        # if it does).
        self.sentinels = SentinelSet(failover_timeout_ms=5000)
        self.addCleanup(self.sentinels.cleanup)

    def start_batchy(self, url):
        b = Batchy(url, None, args=("--quiet",))
        self.addCleanup(b.cleanup)
        os.makedirs(os.path.join(b.workdir, "cfg"))  # its ./cfg
        return b.start()

    def wait_healthy(self, b):
        deadline = time.monotonic() + PROMPT
        while True:
            r = b.get("/healthz")
            if r.status == 200:
                return r.json()
            self.assertLess(time.monotonic(), deadline, r)
            time.sleep(0.05)

    def fail_over(self):
        """SENTINEL FAILOVER, asked of the first sentinel until it has
        switched to another master; when it did (time.monotonic())."""
        old = self.sentinels.servers[0]
        leader = self.sentinels.sentinel_ports[0]
        deadline = time.monotonic() + 90
        while True:
            # A sentinel refuses (NOGOODSLAVE) until it has seen a replica
            # fit to promote in its own rounds of INFO: ask until it agrees.
            said = SentinelSet.cli(leader, "SENTINEL", "FAILOVER", "batchy")
            self.assertLess(time.monotonic(), deadline, "SENTINEL FAILOVER: %s" % said)
            if said != "OK":
                time.sleep(0.5)
                continue
            # The failover is over when the sentinel that led it records
            # another master (+switch-master). It may also give up
            # (-failover-abort-slave-timeout: the promoted replica was not
            # seen as a master within the failover timeout) and leave the
            # master where it was: Batchy rightly stays, and it is asked
            # again. Each step of a failover is bounded by that timeout.
            asked = time.monotonic()
            while (self.sentinels.switched_to(leader) in (None, old.port) and
                   time.monotonic() < asked + 3 * self.sentinels.failover_timeout_ms / 1000):
                time.sleep(0.05)
            if self.sentinels.switched_to(leader) not in (None, old.port):
                break
        return time.monotonic()

    def wait_moved(self, b, first, switched):
        """healthz once b names a master other than first, within PROMPT
        of the switch."""
        while True:
            health = b.get("/healthz")
            # (a PING answered just before the connection moved has no
            # master to name: the next healthz has)
            if health.status == 200 and health.json().get("master") not in (None, first):
                return health
            self.assertLess(time.monotonic(), switched + PROMPT, health)
            time.sleep(0.05)

    def test_no_sentinel_answers_503_saying_why_then_recovers(self):
        b = self.start_batchy(self.sentinels.url())  # not started yet: nothing listens
        for path in ("/healthz", "/get_status/wf1"):
            r = b.get(path)
            self.assertEqual(r.status, 503, r)
            self.assertIn("sentinel 127.0.0.1:", r.json()["error"])
        self.sentinels.start()
        health = self.wait_healthy(b)
        self.assertEqual(health["master"], "127.0.0.1:%d" % self.sentinels.servers[0].port)

    def test_an_unknown_master_is_503_saying_so(self):
        self.sentinels.start()
        url = self.sentinels.url().replace("/batchy/", "/nosuch/")
        b = self.start_batchy(url)
        r = b.get("/healthz")
        self.assertEqual(r.status, 503, r)
        self.assertIn("knows no master named 'nosuch'", r.json()["error"])
        self.assertEqual(b.get("/open_batch/wf1").status, 503)

    def test_the_first_sentinels_down_the_others_answer(self):
        self.sentinels.start()
        dead = [free_port(), free_port()]  # listed first, nobody listens there
        b = self.start_batchy(self.sentinels.url(sentinels=dead + self.sentinels.sentinel_ports))
        health = self.wait_healthy(b)
        master = self.sentinels.servers[0]
        self.assertEqual(health["master"], "127.0.0.1:%d" % master.port)
        # writes reach the master, and replicas get them
        with open("%s/cfg/hw.yaml" % b.workdir, "w") as f:
            f.write("job:\n  p: 1\n")
        self.assertEqual(b.get("/load_cfg/hw").status, 200)
        self.assertEqual(b.get("/open_batch/hw").status, 200)
        self.assertIn('"status": "open"', SentinelSet.cli(master.port, "HGET", "hw", "job"))

    def test_a_demoted_master_is_left_for_the_new_one(self):
        # A failover asked of the sentinels while the master is alive: it
        # becomes a replica (writes to it: READONLY), and a sentinel says
        # +switch-master; Batchy moves to the new master by itself.
        self.sentinels.start()
        b = self.start_batchy(self.sentinels.url())
        first = self.wait_healthy(b)["master"]
        with open("%s/cfg/dm.yaml" % b.workdir, "w") as f:
            f.write("job:\n  p: 1\n")
        self.assertEqual(b.get("/load_cfg/dm").status, 200)
        # on every replica before the failover: it is asked, not forced by
        # a master's death, and waits for no replica to catch up
        for replica in self.sentinels.servers[1:]:
            self.sentinels.wait_for(lambda r=replica: SentinelSet.cli(r.port, "EXISTS", "dm") == "1",
                                    "the load on the replicas")
        # Nothing but healthz (a PING, which a replica answers too): only
        # the sentinel's word moves Batchy
        health = self.wait_moved(b, first, self.fail_over())
        new = self.sentinels.agreed_master(other_than=self.sentinels.servers[0])
        self.assertEqual(health.json()["master"], "127.0.0.1:%d" % new.port)
        self.assertEqual(b.get("/open_batch/dm").status, 200)
        self.assertIn('"status": "open"', SentinelSet.cli(new.port, "HGET", "dm", "job"))

    def test_the_sentinel_heard_from_is_asked_first(self):
        # The URL lists first a sentinel whose host hangs (a redis-sentinel
        # stopped: it takes connections and never answers). Batchy asks
        # first the sentinel it is subscribed to, which knows of a switch
        # as soon as it tells of it: a failover is followed at once, not
        # after a minute's timeout (nor sent back to the master just
        # demoted, by a sentinel that has not heard yet).
        self.sentinels.start()
        hung_port = free_port()  # nothing there yet: refused, skipped at once
        b = Batchy(self.sentinels.url(sentinels=[hung_port] + self.sentinels.sentinel_ports),
                   None, args=("--quiet",), env={"BATCHY_REDIS_TIMEOUT_MS": "60000"})
        self.addCleanup(b.cleanup)
        os.makedirs(os.path.join(b.workdir, "cfg"))
        b.start()
        first = self.wait_healthy(b)["master"]
        subscribed = self.sentinels.sentinel_ports[0]
        self.sentinels.wait_for(
            lambda: "cmd=subscribe" in SentinelSet.cli(subscribed, "CLIENT", "LIST"),
            "Batchy's subscription to the first sentinel that answers")
        d = tempfile.mkdtemp(prefix="batchy-hung-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        with open(os.path.join(d, "sentinel.conf"), "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\n" % (hung_port, d))
        hung = subprocess.Popen(["redis-sentinel", os.path.join(d, "sentinel.conf")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)

        def stop_hung():
            hung.send_signal(signal.SIGCONT)
            hung.kill()
            hung.wait(10)
        self.addCleanup(stop_hung)
        self.sentinels.wait_for(lambda: SentinelSet.cli(hung_port, "PING") == "PONG",
                                "the sentinel listed first")
        hung.send_signal(signal.SIGSTOP)
        health = self.wait_moved(b, first, self.fail_over())
        new = self.sentinels.agreed_master(other_than=self.sentinels.servers[0])
        self.assertEqual(health.json()["master"], "127.0.0.1:%d" % new.port)
        with open("%s/cfg/hf.yaml" % b.workdir, "w") as f:
            f.write("job:\n  p: 1\n")
        self.assertEqual(b.get("/load_cfg/hf").status, 200)
        self.assertEqual(SentinelSet.cli(new.port, "EXISTS", "hf"), "1")


class ReplicaTest(unittest.TestCase):
    """A write that reaches a replica (a master just demoted, before
    anyone says so) is refused whole: 503 saying nothing was written."""

    def test_a_write_to_a_replica_is_503_and_writes_nothing(self):
        master = RedisServer()
        self.addCleanup(master.cleanup)
        master.start()
        replica = RedisServer(extra_args=["--replicaof", "127.0.0.1", str(master.port)])
        self.addCleanup(replica.cleanup)
        replica.start()
        b = Batchy(replica.url, None, args=("--quiet",))
        self.addCleanup(b.cleanup)
        os.makedirs(os.path.join(b.workdir, "cfg"))
        with open(os.path.join(b.workdir, "cfg", "ro.yaml"), "w") as f:
            f.write("job:\n  p: 1\n")
        b.start()
        for _ in range(2):  # and again on the connection made anew
            r = b.get("/load_cfg/ro")
            self.assertEqual(r.status, 503, r)
            self.assertIn("nothing was written", r.json()["error"])
        self.assertEqual(master.cli("KEYS", "*"), "")
        self.assertEqual(b.get("/healthz").status, 200)  # reads still work there


    def test_min_replicas_answers_200_only_once_replicas_hold_the_write(self):
        master = RedisServer()
        self.addCleanup(master.cleanup)
        master.start()
        # a timeout generous for a busy machine: the first write waits it out
        b = Batchy(master.url, None, args=("--quiet", "--min-replicas", "1",
                                           "--replica-timeout", "3000"))
        self.addCleanup(b.cleanup)
        os.makedirs(os.path.join(b.workdir, "cfg"))
        with open(os.path.join(b.workdir, "cfg", "mr.yaml"), "w") as f:
            f.write("job:\n  p: 1\n")
        b.start()
        # no replica: written on the master, and said to be only there
        r = b.get("/load_cfg/mr")
        self.assertEqual(r.status, 503, r)
        self.assertIn("on the Redis master only (0 of the 1 replicas asked for acknowledged it "
                      "within 3000 ms", r.json()["error"])
        self.assertIn("get_status", r.json()["error"])
        self.assertIn("job", master.cli("HKEYS", "mr"))
        self.assertEqual(b.get("/get_status/mr").status, 200)  # reads wait for nobody
        # a replica: 200, and the replica has it
        replica = RedisServer(extra_args=["--replicaof", "127.0.0.1", str(master.port)])
        self.addCleanup(replica.cleanup)
        replica.start()
        SentinelSet.wait_for(lambda: SentinelSet.replicas_in_sync(master, 1), "the replica")
        r = b.get("/open_batch/mr")
        self.assertEqual(r.status, 200, r)
        self.assertIn('"status": "open"', replica.cli("HGET", "mr", "job"))


if __name__ == "__main__":
    unittest.main()
