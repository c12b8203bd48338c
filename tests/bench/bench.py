#!/usr/bin/env python3
"""
bench.py - how fast Batchy is on this machine, next to what HTTP and Redis
allow here. Run by scripts/bench.sh (which installs wrk and builds first):

    scripts/bench.sh                 # the whole run, about 17 minutes
    BENCH_SECONDS=2 BENCH_ROUNDS=1 scripts/bench.sh  # shorter, rougher
    BENCH_LONG=0 scripts/bench.sh    # without the 1-million-request run
    python3 tests/bench/bench.py --report var/bench/<run>.json   # a table again

It starts its own redis-server (unix socket, no persistence, in a temp dir),
one batchy (its default of one worker thread per core, access log on, to a
file) and the minimal libmicrohttpd server of tests/bench/minimal.c with as
many threads, then uses wrk at several concurrencies (keep-alive
connections), each run BENCH_ROUNDS times, the scenarios taking turns, and
reports the median run (the machine is shared: single runs move by 20%):

  get_status on a 3-step and a 100-step workflow, open_batch+close_batch
  cycles over many workflows, index, and the minimal server (HTTP limit);
  redis-benchmark of the Redis commands one call needs (Redis limit);
  batchy's and Redis' CPU time per request, batchy's RSS, idle, peak and
  over a long run; time and Redis round trips per open_batch and load_cfg
  on workflows of 1 to 10,000 steps; /workflows and /history at scale
  (BENCH_OPERATING=0 skips it); waiting: the close that makes a waitsy
  ready to its exit, with waitsy held on the other batchy (BENCH_WAITSY_TRIALS
  trials, 100), and BENCH_HELD (10,000) get_status requests held on one
  batchy, its memory and CPU while they wait and the time until all have
  their answer after one open (BENCH_WAITING=0 skips both); replicas: open
  and close with --min-replicas 0 and 1 on a master with one replica
  (BENCH_REPLICAS=0 skips it); dashboard: the
  overview of 1,000 workflows drawn in headless Chromium (BENCH_UI=0 skips
  it).

It prints one table and writes every figure as JSON to var/bench/ (the file
name is printed), for comparing runs. Nothing here asserts a speed: the
machine is shared and noisy; read the ratios.
"""
import csv
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BENCH_BUILD", os.path.join(ROOT, "build"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
LONG = os.environ.get("BENCH_LONG", "1") != "0"
LONG_REQUESTS = int(os.environ.get("BENCH_LONG_REQUESTS", "1000000"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
CONCURRENCIES = [int(c) for c in os.environ.get("BENCH_CONCURRENCY", "1,16,64,256").split(",")]
CYCLE_WORKFLOWS = 1000  # per wrk thread
TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
# batchy's worker threads: its default, one per core (no worker waits for
# Redis, so more do not pay); BATCHY_THREADS=N to measure another count.
# The minimal server gets the same.
THREADS = int(os.environ.get("BATCHY_THREADS") or CORES)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("bench: %s exited at start (%s)" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("bench: %s did not listen on %d" % (what, port))


# ---------------------------------------------------------------- processes

def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def proc_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Servers:
    """redis-server, batchy and the minimal server, in one temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="batchy-bench-")
        self.cfg = os.path.join(self.dir, "cfg")
        os.mkdir(self.cfg)
        self.sock = os.path.join(self.dir, "redis.sock")
        self.procs = []

    def start(self):
        # The socket, and TCP on loopback for the batchy that reads over it.
        self.redis_port = free_port()
        self.redis = self._spawn(["redis-server", "--port", str(self.redis_port),
                                  "--bind", "127.0.0.1", "--unixsocket", self.sock,
                                  "--dir", self.dir, "--save", "", "--appendonly", "no"], "redis")
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.batchy_port, self.batchy = self._batchy("batchy")
        # A second batchy on the same Redis, for calls where another process
        # wrote the workflow last (cost_growth).
        self.other_port, self.other = self._batchy("batchy2")
        # get_status with Redis over TCP, and without the answers kept in
        # memory (--read-cache-mb 0): what reading Redis each time costs.
        self.tcp_port, self.tcp = self._batchy(
            "batchy-tcp", "redis://127.0.0.1:%d/0" % self.redis_port)
        self.nokeep_port, self.nokeep = self._batchy("batchy-nokeep", extra=["--read-cache-mb", "0"])
        self.minimal_port = free_port()
        self.minimal = self._spawn([os.path.join(BUILD, "bench", "minimal"),
                                    str(self.minimal_port), str(THREADS)], "minimal")
        wait_port(self.minimal_port, self.minimal, "minimal server")

    def _batchy(self, name, redis=None, extra=()):
        port = free_port()
        proc = self._spawn([os.path.join(BUILD, "batchy"), "--listen", "127.0.0.1:%d" % port,
                            "--redis", redis or "unix://" + self.sock, "--cfg-dir", self.cfg,
                            "--threads", str(THREADS)] + list(extra), name)
        wait_port(port, proc, name)
        return port, proc

    def _spawn(self, argv, name):
        log = open(os.path.join(self.dir, name + ".log"), "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def redis_cli(self, *args):
        return subprocess.run(["redis-cli", "-s", self.sock] + [str(a) for a in args],
                              stdout=subprocess.PIPE, check=True).stdout.decode()

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- HTTP calls

class Client:
    """One keep-alive connection to batchy, for set-up and the cost runs,
    opened again when batchy closed it (30 s idle while wrk ran)."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(self, path):
        try:
            self.conn.request("GET", path)
            r = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.conn.request("GET", path)
            r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            sys.exit("bench: GET %s -> %d %s" % (path, r.status, body[:300]))
        return body


def workflow_yaml(steps):
    return "".join("step%05d:\n  reprocess_hours: 2\n  target: t%d\n" % (i, i)
                   for i in range(steps))


def load(servers, client, wf, steps):
    with open(os.path.join(servers.cfg, wf + ".yaml"), "w") as f:
        f.write(workflow_yaml(steps))
    client.get("/load_cfg/" + wf)


# ---------------------------------------------------------------- wrk

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def parse_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * UNITS[m.group(2)]


CYCLE_LUA = """
-- close_batch then open_batch on %(n)d workflows per wrk thread, every one
-- opened beforehand: all closes, then all opens, so that a workflow's
-- next call is sent %(n)d requests after the last, long after it was
-- answered (at most 256 are in flight). Should wrk skip a request, or a
-- run end half-way, the next call is still a 200: an open re-opens, and
-- a close of a closed batch is a retry. The requests are built once, in
-- init: formatting one per call would make wrk, on the same two cores,
-- take CPU from what it measures.
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
local requests, i = {}, 0
function init(args)
  for k = 0, 2 * %(n)d - 1 do
    local op = (k < %(n)d) and "close_batch" or "open_batch"
    requests[k] = wrk.format("GET", "/" .. op .. "/cyc" .. id .. "_" .. (k %% %(n)d))
  end
end
function request()
  local r = requests[i]
  i = (i + 1) %% (2 * %(n)d)
  return r
end
"""


def wrk(url, connections, seconds, script=None, pid=None, redis_pid=None):
    threads = min(2, connections)
    # wrk takes whole seconds only.
    argv = ["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % max(1, round(seconds)),
            "--latency",
            "--timeout", "10s"]
    if script:
        argv += ["-s", script]
    cpu0 = proc_cpu_seconds(pid) if pid else 0
    rcpu0 = proc_cpu_seconds(redis_pid) if redis_pid else 0
    out = subprocess.run(argv + [url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         check=True).stdout.decode()
    cpu1 = proc_cpu_seconds(pid) if pid else 0
    rcpu1 = proc_cpu_seconds(redis_pid) if redis_pid else 0
    res = {"connections": connections}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    res["requests"] = int(m.group(1))
    res["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+([\d.]+\w+)" % pct, out, re.M)
        res["p%s_ms" % pct] = parse_ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["errors"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    if pid and res["requests"]:
        res["cpu_us_per_req"] = (cpu1 - cpu0) * 1e6 / res["requests"]
    if redis_pid and res["requests"]:
        res["redis_cpu_us_per_req"] = (rcpu1 - rcpu0) * 1e6 / res["requests"]
    return res


def median_run(runs):
    """The run with the median requests per second, with every run's rate."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["rps_runs"] = [r["rps"] for r in runs]
    return chosen


# ---------------------------------------------------------------- redis-benchmark

def redis_benchmark(servers, clients, *command):
    n = max(20000, int(30000 * SECONDS / 5 * (1 if clients == 1 else 3)))
    out = subprocess.run(["redis-benchmark", "-s", servers.sock, "-c", str(clients), "-n", str(n),
                          "--csv"] + list(command), stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, check=True).stdout.decode()
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
    # "p99_latency_ms","max_latency_ms"; the test's name may hold commas.
    row = list(csv.reader(out.splitlines()))[-1]
    return {"rps": float(row[1]), "p50_ms": float(row[4]), "p99_ms": float(row[6])}


WRITE_SCRIPT = ("redis.call('HSET',KEYS[1],'a',ARGV[1],'b',ARGV[1],'c',ARGV[1]) "
                "redis.call('HSET',KEYS[2],'a',ARGV[1],'b',ARGV[1],'c',ARGV[1]) return 1")


# ---------------------------------------------------------------- cost growth

def commandstats(servers):
    stats = {}
    for line in servers.redis_cli("INFO", "commandstats").splitlines():
        m = re.match(r"cmdstat_(\w+):calls=(\d+)", line)
        if m:
            stats[m.group(1)] = int(m.group(2))
    return stats


def delta(after, before):
    """Commands run between two readings, without the INFO that read them."""
    return {k: v - before.get(k, 0) for k, v in after.items()
            if v != before.get(k, 0) and k != "info"}


def timed_calls(clients, path, n):
    """n calls of path, taking turns among clients; the median in ms."""
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        clients[i % len(clients)].get(path)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e3  # median, ms


def cost_growth(servers, client):
    """Per size: load_cfg calls; open_batch calls in a row on one batchy,
    which knows what it wrote last (the usual case: no read); and open_batch
    calls taking turns between two batchy processes, so that each finds the
    workflow written by the other (its write is refused with what the
    workflow holds, and made again)."""
    other = Client(servers.other_port)
    rows = []
    for steps in (1, 100, 1000, 10000):
        wf = "size%d" % steps
        calls = 20 if steps <= 1000 else 6
        load(servers, client, wf, steps)
        before = commandstats(servers)
        load_ms = timed_calls([client], "/load_cfg/" + wf, calls)
        load_cmds = delta(commandstats(servers), before)
        before = commandstats(servers)
        open_ms = timed_calls([client], "/open_batch/" + wf, calls)
        open_cmds = delta(commandstats(servers), before)
        before = commandstats(servers)
        turns_ms = timed_calls([client, other], "/open_batch/" + wf, calls)
        turns_cmds = delta(commandstats(servers), before)
        # close_batch of one step each time, the others still open
        close_ms = median_ms([lambda i=i: client.get("/close_batch/%s?step=step%05d" % (wf, i))
                              for i in range(min(calls, steps))])
        doc = len(client.get("/get_status/" + wf))
        rows.append({
            "steps": steps, "document_bytes": doc,
            "load_cfg_ms": load_ms, "open_batch_ms": open_ms, "open_turns_ms": turns_ms,
            "close_one_ms": close_ms,
            "load_cfg_redis": {k: v / calls for k, v in load_cmds.items()},
            "open_batch_redis": {k: v / calls for k, v in open_cmds.items()},
            "open_turns_redis": {k: v / calls for k, v in turns_cmds.items()},
        })
    return rows


# Fills Redis as Batchy would have after months: ARGV[1] workflows of 5
# steps (in batchy:workflows) with two snapshots each, or, for one
# workflow, ARGV[2] batch snapshots in its index. Written by a script so
# that filling takes seconds, not the hours of calls it stands for.
FILL_LUA = """
local rec = '{"p": 1, "status": "success", "batch_id": 1795000000, '
  .. '"batch_start": "2026-11-20T06:00:00.000000", "batch_end": "2026-11-20T06:10:00.000000"}'
for i = 1, tonumber(ARGV[1]) do
  local wf = string.format('ops%05d', i)
  redis.call('HSET', wf, 's1', rec, 's2', rec, 's3', rec, 's4', rec, 's5', rec)
  redis.call('HSET', wf .. '-1795000000', 's1', rec)
  redis.call('HSET', wf .. '-1795000000-init', 's1', rec)
  redis.call('SADD', 'batchy:workflows', wf)
end
for i = 1, tonumber(ARGV[2]) do
  local id = 1700000000 + i
  redis.call('HSET', 'deep-' .. id, 's1', rec, 's2', rec)
  redis.call('ZADD', 'batchy:batches:deep', id, id)
end
redis.call('HSET', 'deep', 's1', rec, 's2', rec)
return 'OK'
"""


def operating(servers, client):
    """GET /workflows with 10,000 workflows (and their snapshots) in
    Redis, and GET /history of a workflow with 100,000 batches kept, at
    its newest page and deep in the middle: medians of 20 calls."""
    servers.redis_cli("EVAL", FILL_LUA, "0", "10000", "100000")
    rows = {}
    # The first listing reads every workflow; later ones only those that
    # changed (Redis tracks the reads, rows.c).
    rows["workflows_10000_first_ms"] = median_ms([lambda: client.get("/workflows")])
    rows["workflows_10000_ms"] = median_ms([lambda: client.get("/workflows")] * 20)
    rows["workflows_prefix_ms"] = median_ms([lambda: client.get("/workflows?prefix=ops0001")] * 20)
    # /metrics with the per-step series of the same 10,000 workflows (5 steps
    # each): the first scrape after a restart of what batchy remembers is
    # the /workflows reads above; then only what changed.
    rows["metrics_10000_ms"] = median_ms([lambda: client.get("/metrics")] * 20)
    rows["metrics_10000_bytes"] = len(client.get("/metrics"))
    # Does a scrape hold up API calls? get_status at 16 connections for 3 s,
    # alone, while another client scrapes /metrics back to back, and, for
    # scale, while a process that only burns a core runs (`yes`): on a
    # machine of two cores the scrapes take a core too, and no more should
    # come of them than of any busy process.
    url = "http://127.0.0.1:%d/get_status/ops00001" % servers.batchy_port
    alone = wrk(url, 16, 3)
    burner = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL)
    try:
        busy = wrk(url, 16, 3)
    finally:
        burner.kill()
        burner.wait()
    stop = threading.Event()
    scrapes = [0]

    def scrape():
        c = Client(servers.batchy_port)
        while not stop.is_set():
            c.get("/metrics")
            scrapes[0] += 1

    t = threading.Thread(target=scrape)
    t.start()
    during = wrk(url, 16, 3)
    stop.set()
    t.join(60)
    rows["get_status_p99_alone_ms"] = alone["p99_ms"]
    rows["get_status_p99_scraping_ms"] = during["p99_ms"]
    rows["get_status_rps_alone"] = alone["rps"]
    rows["get_status_rps_scraping"] = during["rps"]
    rows["get_status_p99_busy_ms"] = busy["p99_ms"]
    rows["get_status_rps_busy"] = busy["rps"]
    rows["scrapes_in_3s"] = scrapes[0]
    rows["history_newest_ms"] = median_ms([lambda: client.get("/history/deep")] * 20)
    rows["history_deep_ms"] = median_ms(
        [lambda: client.get("/history/deep?before=1700050000")] * 20)
    rows["history_1000_ms"] = median_ms([lambda: client.get("/history/deep?limit=1000")] * 20)
    return rows


def median_ms(calls):
    """Run each call in turn; the median time in ms."""
    times = []
    for call in calls:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e3


def parallel_closes(servers):
    """For N in 16, 64, 256: a workflow of N steps, one batch open, then N
    clients at once each close (or, one in four, fail) its own step, half
    through each of the two batchy processes. Every answer should be 200:
    calls on different steps do not conflict. Latency of the calls, and how
    many answered 503 (or anything but 200)."""
    rows = []
    client = Client(servers.batchy_port)
    for n in (16, 64, 256):
        for rnd in range(ROUNDS):
            wf = "par%d_%d" % (n, rnd)
            load(servers, client, wf, n)
            client.get("/open_batch/" + wf)
            gate = threading.Barrier(n)
            results = [None] * n

            def call(i):
                port = servers.batchy_port if i % 2 == 0 else servers.other_port
                path = ("/fail_batch/%s?step=step%05d&error=x" if i % 4 == 3 else
                        "/close_batch/%s?step=step%05d") % (wf, i)
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                gate.wait(60)
                t0 = time.perf_counter()
                try:
                    conn.request("GET", path)
                    r = conn.getresponse()
                    r.read()
                    results[i] = (r.status, (time.perf_counter() - t0) * 1e3)
                except OSError:
                    results[i] = (0, (time.perf_counter() - t0) * 1e3)
                finally:
                    conn.close()

            threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(180)
            times = sorted(t for _, t in results)
            rows.append({"calls": n, "round": rnd,
                         "p50_ms": times[n // 2], "p99_ms": times[min(n - 1, n * 99 // 100)],
                         "max_ms": times[-1],
                         "status_503": sum(1 for st, _ in results if st == 503),
                         "not_200": sum(1 for st, _ in results if st != 200)})
    return rows


HELD = int(os.environ.get("BENCH_HELD", "10000"))
TRIALS = int(os.environ.get("BENCH_WAITSY_TRIALS", "100"))


def healthz(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/healthz")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def wait_for(what, check, timeout=60):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            sys.exit("bench: %s did not happen within %ds" % (what, timeout))
        time.sleep(0.002)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def waitsy_wakeups(servers, client):
    """The close that makes a waiting waitsy ready, to its exit: waitsy
    waits on one batchy (--interval 60: it would poll once a minute), the
    close goes to the other; both share Redis. TRIALS times, each on a
    workflow of its own (a step that succeeded today in an earlier batch
    counts: waitsy would be ready at once)."""
    waitsy = os.path.join(BUILD, "waitsy")
    url = "http://127.0.0.1:%d" % servers.other_port
    times = []
    for i in range(TRIALS):
        wf = "wake%d" % i
        load(servers, client, wf, 2)
        client.get("/open_batch/" + wf)
        client.get("/close_batch/%s?step=step00000" % wf)
        p = subprocess.Popen([waitsy, "-wf", wf, "--url", url, "--interval", "60", "-q"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("waitsy's held request", lambda: healthz(servers.other_port)["held"] == 1 or
                 p.poll() is not None)
        if p.poll() is not None:
            sys.exit("bench: waitsy exited %d before the close" % p.returncode)
        t0 = time.perf_counter()
        client.get("/close_batch/%s?step=step00001" % wf)
        p.wait(120)
        times.append((time.perf_counter() - t0) * 1e3)
        if p.returncode != 0:
            sys.exit("bench: waitsy exited %d" % p.returncode)
    return {"trials": len(times), "p50_ms": percentile(times, 50),
            "p99_ms": percentile(times, 99), "max_ms": max(times)}


def replicas(servers, lua):
    """open_batch + close_batch (the cycle of the HTTP table) through two
    Batchy processes on one master with one replica (TCP on loopback): one
    as usual, one with --min-replicas 1, whose writes each wait for the
    replica (WAIT after each pipeline of writes: a group commit)."""
    ports = {"master": free_port(), "replica": free_port()}
    for name, port in ports.items():
        os.mkdir(os.path.join(servers.dir, name))
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                "--dir", os.path.join(servers.dir, name), "--save", "", "--appendonly", "no"]
        if name == "replica":
            argv += ["--replicaof", "127.0.0.1", str(ports["master"])]
        servers._spawn(argv, "redis-" + name)
        wait_port(port, servers.procs[-1], "redis " + name)
    deadline = time.monotonic() + 30
    while ",state=online," not in subprocess.run(
            ["redis-cli", "-p", str(ports["master"]), "INFO", "replication"],
            stdout=subprocess.PIPE).stdout.decode():
        if time.monotonic() > deadline:
            sys.exit("bench: the replica did not come online")
        time.sleep(0.05)
    url = "redis://127.0.0.1:%d/0" % ports["master"]
    batchies = {}
    for n in (0, 1):
        port = free_port()
        proc = servers._spawn([os.path.join(BUILD, "batchy"), "--listen", "127.0.0.1:%d" % port,
                               "--redis", url, "--cfg-dir", servers.cfg, "--threads",
                               str(THREADS), "--quiet", "--min-replicas", str(n)],
                              "batchy-replicas-%d" % n)
        wait_port(port, proc, "batchy --min-replicas %d" % n)
        batchies[n] = (port, proc)
    client = Client(batchies[1][0])  # through the one that waits: the replica has them
    for t in range(2):
        for j in range(CYCLE_WORKFLOWS):
            client.get("/load_cfg/cyc%d_%d" % (t, j))
            client.get("/open_batch/cyc%d_%d" % (t, j))
    rows = []
    for c in (1, 16, 64):
        row = {"connections": c}
        for n, (port, proc) in batchies.items():
            runs = [wrk("http://127.0.0.1:%d" % port, c, SECONDS, lua, proc.pid)
                    for _ in range(ROUNDS)]
            row[n] = median_run(runs)
        rows.append(row)
    return rows


def dashboard():
    """The dashboard's overview of 1,000 workflows, in headless Chromium
    (tests/bench/ui_render.py, run by Debian's python3 with Selenium); None
    without a browser (BENCH_UI=0 skips it)."""
    script = os.path.join(ROOT, "tests", "bench", "ui_render.py")
    if os.environ.get("BENCH_UI", "1") == "0" or not os.path.exists("/usr/bin/chromium"):
        return None
    env = dict(os.environ, BATCHY_BIN=os.path.join(BUILD, "batchy"))
    out = subprocess.run(["/usr/bin/python3", script], stdout=subprocess.PIPE, env=env,
                         check=True, timeout=300).stdout.decode()
    return json.loads(out)


def held_requests(servers, client):
    """HELD get_status requests held on one batchy (started here with
    --max-connections raised, the one setting), all on one workflow: its
    RSS and CPU while they wait, then one close (through the other batchy)
    and the time until every one has its answer."""
    import selectors
    wf = "heldwf"
    load(servers, client, wf, 3)
    port = free_port()
    env = dict(os.environ, BATCHY_MAX_CONNECTIONS=str(HELD + 100))
    log = open(os.path.join(servers.dir, "batchy_held.log"), "wb")
    proc = subprocess.Popen([os.path.join(BUILD, "batchy"), "--listen", "127.0.0.1:%d" % port,
                             "--redis", "unix://" + servers.sock, "--cfg-dir", servers.cfg,
                             "--threads", str(THREADS), "--quiet"], env=env, stdout=log,
                            stderr=log, stdin=subprocess.DEVNULL)
    servers.procs.append(proc)
    wait_port(port, proc, "batchy (held)")
    rss_before = proc_kb(proc.pid, "VmRSS")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/get_status/" + wf)
    r = conn.getresponse()
    r.read()
    etag = r.getheader("ETag")
    conn.close()
    request = ("GET /get_status/%s?wait=600 HTTP/1.1\r\nHost: bench\r\n"
               "If-None-Match: %s\r\n\r\n" % (wf, etag)).encode()
    sel = selectors.DefaultSelector()
    socks = []
    t_hold = time.perf_counter()
    for i in range(HELD):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(request)
        s.setblocking(False)
        state = {"sock": s, "got": b""}
        sel.register(s, selectors.EVENT_READ, state)
        socks.append(state)
        if i % 500 == 499:  # within the listen queue
            wait_for("held requests", lambda: healthz(port)["held"] >= i + 1 - 50)
    wait_for("%d held requests" % HELD, lambda: healthz(port)["held"] == HELD)
    hold_s = time.perf_counter() - t_hold
    time.sleep(1)
    rss_held = proc_kb(proc.pid, "VmRSS")
    cpu0, quiet0 = proc_cpu_seconds(proc.pid), time.perf_counter()
    time.sleep(10)
    idle_cpu = (proc_cpu_seconds(proc.pid) - cpu0) / (time.perf_counter() - quiet0)

    t0 = time.perf_counter()
    client_other = Client(servers.other_port)
    client_other.get("/open_batch/" + wf)
    answered, firsts = 0, []
    statuses = {}
    while answered < HELD and time.perf_counter() - t0 < 60:
        for key, _ in sel.select(timeout=1):
            # An answer's first bytes: the time it came; the rest is read
            # and checked once all have come (the client is Python: kept
            # light here, so that it measures Batchy, not itself).
            state = key.data
            chunk = state["sock"].recv(65536)
            if not state["got"]:
                firsts.append((time.perf_counter() - t0) * 1e3)
                answered += 1
            state["got"] += chunk or b"-"
            if not chunk or b"\r\n\r\n" in state["got"]:
                sel.unregister(state["sock"])
    for state in socks:  # the rest of each answer
        s, got = state["sock"], state["got"]
        s.setblocking(True)
        s.settimeout(10)
        try:
            while b"\r\n\r\n" not in got:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except OSError:
            pass
        st = int(got[9:12]) if got[:5] == b"HTTP/" else 0
        statuses[st] = statuses.get(st, 0) + 1
        s.close()
    sel.close()
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    return {"held": HELD, "answered": answered, "statuses": statuses,
            "seconds_to_hold": hold_s, "rss_kb_before": rss_before, "rss_kb_held": rss_held,
            "idle_cpu_fraction": idle_cpu,
            "first_ms": firsts[0] if firsts else None,
            "p50_ms": percentile(firsts, 50) if firsts else None,
            "all_ms": firsts[-1] if firsts else None}


def round_trips(cmds):
    """Round trips of one call, from the commands Redis counted: a read is
    one HGETALL, a write one EVALSHA of the write script; EXISTS is the
    one-off probe for a free batch id."""
    return cmds.get("hgetall", 0) + cmds.get("evalsha", 0) + cmds.get("exists", 0)


# ---------------------------------------------------------------- main

def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--report":
        with open(sys.argv[2]) as f:  # the table of an earlier run
            print_report(json.load(f))
        return
    for tool in ("wrk", "redis-benchmark", "redis-server", "redis-cli"):
        if not shutil.which(tool):
            sys.exit("bench: %s not found (scripts/bench.sh installs it)" % tool)
    servers = Servers()
    try:
        servers.start()
        run(servers)
    finally:
        servers.stop()


def run(servers):
    started = datetime.now(timezone.utc)
    bpid = servers.batchy.pid
    client = Client(servers.batchy_port)
    load(servers, client, "get3", 3)
    load(servers, client, "get100", 100)
    time.sleep(0.5)
    idle_rss = proc_kb(bpid, "VmRSS")

    lua = os.path.join(servers.dir, "cycle.lua")
    with open(lua, "w") as f:
        f.write(CYCLE_LUA % {"n": CYCLE_WORKFLOWS})
    for t in range(2):
        for j in range(CYCLE_WORKFLOWS):
            load(servers, client, "cyc%d_%d" % (t, j), 3)
            client.get("/open_batch/cyc%d_%d" % (t, j))

    base = "http://127.0.0.1:%d" % servers.batchy_port
    minimal = "http://127.0.0.1:%d/get_status/x" % servers.minimal_port
    rpid = servers.redis.pid
    scenarios = [
        ("minimal server (HTTP limit)", minimal, None, servers.minimal.pid, None),
        ("get_status, 3 steps", base + "/get_status/get3", None, bpid, rpid),
        ("get_status, 3, Redis TCP", "http://127.0.0.1:%d/get_status/get3" % servers.tcp_port,
         None, servers.tcp.pid, rpid),
        ("get_status, 3, not kept", "http://127.0.0.1:%d/get_status/get3" % servers.nokeep_port,
         None, servers.nokeep.pid, rpid),
        ("get_status, 100 steps", base + "/get_status/get100", None, bpid, rpid),
        ("open_batch + close_batch", base, lua, bpid, rpid),
        ("index", base + "/index", None, bpid, None),
    ]
    results = {name: [] for name, _, _, _, _ in scenarios}
    for c in CONCURRENCIES:
        runs = {name: [] for name, _, _, _, _ in scenarios}
        for _ in range(ROUNDS):  # the scenarios take turns: noise hits all alike
            for name, url, script, pid, redis_pid in scenarios:
                r = wrk(url, c, SECONDS, script, pid, redis_pid)
                runs[name].append(r)
                print("  %-30s c=%-4d %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms%s%s" % (
                    name, c, r["rps"], r["p50_ms"] or 0, r["p99_ms"] or 0,
                    "  non-2xx %d" % r["errors"] if r["errors"] else "",
                    "  socket errors %d" % r["socket_errors"] if r["socket_errors"] else ""),
                    file=sys.stderr)
        for name in runs:
            results[name].append(median_run(runs[name]))

    redis = {"hgetall_3": [], "hgetall_100": [], "write_script": []}
    for c in CONCURRENCIES:
        redis["hgetall_3"].append(dict(redis_benchmark(servers, c, "HGETALL", "get3"),
                                       connections=c))
        redis["hgetall_100"].append(dict(redis_benchmark(servers, c, "HGETALL", "get100"),
                                         connections=c))
        redis["write_script"].append(dict(redis_benchmark(
            servers, c, "EVAL", WRITE_SCRIPT, "2", "bench:w1", "bench:w2", "v"), connections=c))
    peak_rss = proc_kb(bpid, "VmHWM")

    long_run = None
    if LONG:  # before the cost runs, whose 10,000-step documents grow the heap
        long_run = long_rss(servers, base + "/get_status/get3", bpid)

    growth = cost_growth(servers, client)
    parallel = parallel_closes(servers)
    repl = replicas(servers, lua) if os.environ.get("BENCH_REPLICAS", "1") != "0" else None
    ops = operating(servers, client) if os.environ.get("BENCH_OPERATING", "1") != "0" else None
    waiting = None
    if os.environ.get("BENCH_WAITING", "1") != "0":
        waiting = {"waitsy": waitsy_wakeups(servers, client),
                   "held": held_requests(servers, client)}

    report = {
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cores": CORES, "kernel": os.uname().release,
                    "batchy_threads": THREADS, "seconds_per_run": SECONDS,
                    "rounds": ROUNDS},
        "http": results, "redis": redis,
        "batchy_rss_kb": {"idle": idle_rss, "peak": peak_rss},
        "cost_growth": growth, "long_run": long_run, "parallel_closes": parallel,
        "operating": ops, "waiting": waiting, "dashboard": dashboard(), "replicas": repl,
    }
    print_report(report)
    out_dir = os.path.join(ROOT, "var", "bench")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, started.strftime("%Y%m%dT%H%M%SZ") + ".json")
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    print("\nwritten: %s" % os.path.relpath(path, ROOT))


def long_rss(servers, url, pid):
    """RSS while batchy answers LONG_REQUESTS get_status calls, in ten
    slices; the first slice warms up (connections, allocator arenas)."""
    probe = wrk(url, 64, 2, None, pid)
    slice_seconds = max(1.0, LONG_REQUESTS / 10 / max(probe["rps"], 1))
    samples, total = [], probe["requests"]
    while total < LONG_REQUESTS:
        r = wrk(url, 64, slice_seconds, None, pid)
        total += r["requests"]
        samples.append({"requests": total, "rss_kb": proc_kb(pid, "VmRSS")})
    return {"requests": total, "samples": samples,
            "growth_kb": samples[-1]["rss_kb"] - samples[0]["rss_kb"]}


def ratio(a, b):
    return a / b if a and b else 0.0


def print_report(rep):
    http_ = rep["http"]
    minimal = {r["connections"]: r for r in http_["minimal server (HTTP limit)"]}
    redis = rep["redis"]
    hg3 = {r["connections"]: r for r in redis["hgetall_3"]}
    hg100 = {r["connections"]: r for r in redis["hgetall_100"]}
    write = {r["connections"]: r for r in redis["write_script"]}

    def redis_limit(name, c):
        if name == "get_status, 3 steps":
            return hg3[c]["rps"]
        if name == "get_status, 100 steps":
            return hg100[c]["rps"]
        if name == "get_status, 3, not kept":
            return hg3[c]["rps"]
        if name == "open_batch + close_batch":
            # Per call: one write round trip (batchy knows what it wrote).
            return write[c]["rps"]
        return None

    print("Batchy benchmark, %s, %d cores, %d threads (batchy and minimal server), "
          "wrk on the same machine, median of %d runs of %gs"
          % (rep["started"], rep["machine"]["cores"], rep["machine"]["batchy_threads"],
             rep["machine"].get("rounds", 1), rep["machine"]["seconds_per_run"]))
    print()
    head = ("%-28s %5s %9s %8s %8s %7s %7s %9s %7s %9s %7s" % (
        "", "conns", "req/s", "p50 ms", "p99 ms", "cpu us", "rds us", "HTTP lim", "x HTTP",
        "Redis lim", "x Redis"))
    print(head)
    print("-" * len(head))
    for name, rows in http_.items():
        for r in rows:
            c = r["connections"]
            m = minimal[c]
            lim = redis_limit(name, c)
            is_base = name.startswith("minimal")
            print(("%-28s %5d %9.0f %8.2f %8.2f %7s %7s %9s %7s %9s %7s%s" % (
                name, c, r["rps"], r["p50_ms"] or 0, r["p99_ms"] or 0,
                "%.0f" % r["cpu_us_per_req"] if "cpu_us_per_req" in r else "",
                "%.1f" % r["redis_cpu_us_per_req"] if "redis_cpu_us_per_req" in r else "",
                "" if is_base else "%.0f" % m["rps"],
                "" if is_base else "%.2f" % ratio(r["rps"], m["rps"]),
                "%.0f" % lim if lim else "", "%.2f" % ratio(r["rps"], lim) if lim else "",
                "  (%d non-2xx)" % r["errors"] if r["errors"] else "")).rstrip())
        print()
    print("p99 at 64 connections, as a multiple of the minimal server's:")
    for name, rows in http_.items():
        if name.startswith("minimal"):
            continue
        for r in rows:
            if r["connections"] == 64 and 64 in minimal:
                print("  %-26s %.2f ms / %.2f ms = %.1fx" % (
                    name, r["p99_ms"], minimal[64]["p99_ms"],
                    ratio(r["p99_ms"], minimal[64]["p99_ms"])))
    print()
    print("Redis alone (redis-benchmark, same socket): req/s by connections")
    for name, rows in redis.items():
        print("  %-14s %s" % (name, "  ".join("c=%d %.0f" % (r["connections"], r["rps"])
                                             for r in rows)))
    print()
    rss = rep["batchy_rss_kb"]
    print("batchy RSS: idle %.1f MB, peak %.1f MB (after every run above)"
          % (rss["idle"] / 1024, rss["peak"] / 1024))
    if rep["long_run"]:
        lr = rep["long_run"]
        print("long run: %d get_status calls at 64 connections, RSS %s MB; growth after the "
              "first slice %+d kB" % (lr["requests"], " ".join(
                  "%.1f" % (s["rss_kb"] / 1024) for s in lr["samples"]), lr["growth_kb"]))
    print()
    print("Cost with the workflow's size (median of sequential calls; Redis round trips")
    print("per call; 'turns': open_batch taking turns between two batchy processes):")
    print("  %7s %10s %9s %6s %9s %6s %9s %6s %9s" % (
        "steps", "doc bytes", "load ms", "trips", "open ms", "trips", "turns ms", "trips",
        "close1 ms"))
    for g in rep["cost_growth"]:
        print("  %7d %10d %9.2f %6s %9.2f %6s %9s %6s %9s" % (
            g["steps"], g["document_bytes"], g["load_cfg_ms"],
            "%g" % round_trips(g["load_cfg_redis"]), g["open_batch_ms"],
            "%g" % round_trips(g["open_batch_redis"]),
            "%.2f" % g["open_turns_ms"] if "open_turns_ms" in g else "",
            "%g" % round_trips(g["open_turns_redis"]) if "open_turns_redis" in g else "",
            "%.2f" % g["close_one_ms"] if "close_one_ms" in g else ""))
    for key, what in (("open_batch_redis", "open_batch"), ("open_turns_redis", "turns")):
        cmds = rep["cost_growth"][-1].get(key)
        if cmds:
            print("  Redis commands per %s (10,000 steps): %s" % (what, ", ".join(
                "%s %g" % (k.upper(), v) for k, v in sorted(cmds.items()))))

    if rep.get("parallel_closes"):
        print()
        print("Parallel closes of distinct steps of one workflow (N clients at once, two batchy")
        print("processes, one in four a fail), each round:")
        print("  %6s %9s %9s %9s %6s %8s" % ("calls", "p50 ms", "p99 ms", "max ms", "503s",
                                            "not 200"))
        for r in rep["parallel_closes"]:
            print("  %6d %9.2f %9.2f %9.2f %6d %8d" % (r["calls"], r["p50_ms"], r["p99_ms"],
                                                       r["max_ms"], r["status_503"],
                                                       r["not_200"]))

    ops = rep.get("operating")
    if ops:
        print()
        print("Operating, median of 20 calls (10,000 workflows of 5 steps with their snapshots;")
        print("one workflow with 100,000 batches kept):")
        if "workflows_10000_first_ms" in ops:
            print("  GET /workflows, all 10,000, the first %8.2f ms" % ops["workflows_10000_first_ms"])
        print("  GET /workflows, all 10,000            %8.2f ms" % ops["workflows_10000_ms"])
        print("  GET /workflows?prefix= (10 of them)   %8.2f ms" % ops["workflows_prefix_ms"])
        if "metrics_10000_ms" in ops:
            print("  GET /metrics, 10,000 workflows' steps %8.2f ms (%.1f MB)"
                  % (ops["metrics_10000_ms"], ops["metrics_10000_bytes"] / 1e6))
        if "get_status_p99_scraping_ms" in ops:
            print("  get_status at 16 connections, p99 and req/s:")
            print("    alone                                %8.2f ms %8.0f/s"
                  % (ops["get_status_p99_alone_ms"], ops["get_status_rps_alone"]))
            print("    /metrics scraped back to back        %8.2f ms %8.0f/s (%d scrapes in 3 s)"
                  % (ops["get_status_p99_scraping_ms"], ops["get_status_rps_scraping"],
                     ops["scrapes_in_3s"]))
            if "get_status_p99_busy_ms" in ops:
                print("    a process burning a core (yes)       %8.2f ms %8.0f/s"
                      % (ops["get_status_p99_busy_ms"], ops["get_status_rps_busy"]))
        print("  GET /history, newest 50               %8.2f ms" % ops["history_newest_ms"])
        print("  GET /history, 50 from the middle      %8.2f ms" % ops["history_deep_ms"])
        print("  GET /history?limit=1000               %8.2f ms" % ops["history_1000_ms"])

    w = rep.get("waiting")
    if w:
        ws, h = w["waitsy"], w["held"]
        print()
        print("Waiting (SPEC 10):")
        print("  close -> waitsy exit, waitsy held on the other batchy (%d trials):"
              % ws["trials"])
        print("      p50 %.1f ms, p99 %.1f ms, max %.1f ms" % (ws["p50_ms"], ws["p99_ms"],
                                                            ws["max_ms"]))
        print("  %d get_status held on one batchy (BATCHY_MAX_CONNECTIONS=%d):"
              % (h["held"], h["held"] + 100))
        print("      RSS %.1f MB (%.1f MB before), CPU while held %.2f%% of a core"
              % (h["rss_kb_held"] / 1024, h["rss_kb_before"] / 1024,
                 100 * h["idle_cpu_fraction"]))
        print("      one open through the other batchy -> answered: first %.1f ms, half %.1f ms, "
              "all %d in %.1f ms (%s)" % (h["first_ms"] or 0, h["p50_ms"] or 0, h["answered"],
                                       h["all_ms"] or 0, ", ".join(
                                           "%s: %d" % kv for kv in sorted(h["statuses"].items()))))

    rr = rep.get("replicas")
    if rr:
        print()
        print("open_batch + close_batch on a master with one replica: --min-replicas 0, then 1")
        print("(each write waits for the replica; one WAIT per pipeline of writes):")
        for row in rr:
            a, b = row.get("0") or row.get(0), row.get("1") or row.get(1)
            print("  c=%-3d  %8.0f req/s p50 %6.2f ms p99 %6.2f ms  |  %8.0f req/s p50 %6.2f ms "
                  "p99 %6.2f ms  (%.2fx the req/s)"
                  % (row["connections"], a["rps"], a["p50_ms"] or 0, a["p99_ms"] or 0,
                     b["rps"], b["p50_ms"] or 0, b["p99_ms"] or 0, b["rps"] / a["rps"]))

    d = rep.get("dashboard")
    if d:
        print()
        print("Dashboard: /ui with %d workflows shown in headless Chromium (opened -> table drawn)"
              % d["workflows"])
        print("  median %d ms of %d loads (%s ms)" % (d["median_ms"], len(d["loads"]),
                                                    ", ".join(str(t) for t in d["loads"])))
        if "changes" in d:
            print("  fail_batch sent -> its row's badge red, no reload: median %d ms (%s ms)"
                  % (d["change_median_ms"], ", ".join(str(t) for t in d["changes"])))


if __name__ == "__main__":
    main()
