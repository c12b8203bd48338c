"""
harness.py - the shared start/stop code of the integration tests.

Every test class starts its own redis-server on a free port in a temp dir and
its own batchy process (BATCHY_BIN, default build/batchy) pointed at it, and
stops both (SIGTERM, asserting batchy exits 0) when the class is done, even
when something failed. Tests talk to batchy over real HTTP and read or write
Redis with `redis-cli` of the server they started, never any other.

With BATCHY_VALGRIND=1 batchy runs under valgrind (leaks and errors make it
exit 99, which the stop check reports together with the valgrind log).
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse
from collections import OrderedDict, namedtuple
from datetime import datetime, timedelta, timezone

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
WORKFLOWS_DIR = os.path.join(HERE, "workflows")
REPO_CFG_DIR = os.path.join(REPO_ROOT, "cfg")

VALGRIND = os.environ.get("BATCHY_VALGRIND") == "1"
# A shell starts a background job with SIGINT ignored, and an ignored
# signal stays ignored across exec: every batchy and waitsy of a test run
# started that way would ignore SIGINT. Handled here (as Python does when it
# starts with SIGINT at its default), it is back to the default in them.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# Everything that waits for batchy waits this many times longer under valgrind.
SLOW = 5 if VALGRIND else 1
# The bound for "at once" (a signal obeyed, a timeout kept, an answer while
# Redis is down): generous for the slowest build (valgrind) on a machine
# whose cores are all busy. Tests that use it make the wrong behaviour take
# far longer (a 60 s hang, an hour-long interval), so the bound still tells
# right from wrong. No test counts how many things happen in a wall-clock
# window: tests wait for an event with a long deadline instead.
PROMPT = 5 * SLOW
START_TIMEOUT = 30 if VALGRIND else 10
STOP_TIMEOUT = 60 if VALGRIND else 10
VERSION = "1.0.0"
ORIGIN = "1776-07-04T23:59:00.000000"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")


def batchy_bin():
    path = os.environ.get("BATCHY_BIN", "build/batchy")
    if not os.path.isabs(path):
        path = os.path.join(REPO_ROOT, path)
    return path


def free_port():
    """A TCP port nobody listens on right now (bind to 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- times

def utcnow():
    return datetime.now(timezone.utc)


def parse_time(text):
    """Parse a canonical batchy time (26 chars, UTC) into an aware datetime."""
    if not isinstance(text, str) or not TIME_RE.match(text):
        raise AssertionError("not a canonical batchy time: %r" % (text,))
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)


def python_time(text):
    """A canonical batchy time as the original's infa output wrote it:
    Python's own str() of the naive UTC datetime, the reference."""
    return str(parse_time(text).replace(tzinfo=None))


def fmt_time(dt):
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


# ---------------------------------------------------------------- HTTP

class Response(namedtuple("Response", "status headers body")):
    """(status, headers with lower-case names, body bytes)."""

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self, ordered=False):
        hook = OrderedDict if ordered else None
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise AssertionError("response body is not valid UTF-8 (%s): %r" % (e, self))
        try:
            return json.loads(text, object_pairs_hook=hook)
        except ValueError as e:
            raise AssertionError("response body is not JSON (%s): %r" % (e, self))

    @property
    def content_type(self):
        return self.headers.get("content-type", "")

    def __repr__(self):
        body = self.body if len(self.body) < 600 else self.body[:600] + b"..."
        return "<HTTP %s %s %r>" % (self.status, self.content_type, body)


def http_request(port, method, path, headers=None, body=None, timeout=None):
    """Send one request with the path exactly as given; return a Response."""
    timeout = timeout or 15 * SLOW
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        elif method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", "0")
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        return Response(resp.status, hdrs, data)
    finally:
        conn.close()


def raw_request(port, data, timeout=None, allow_timeout=False):
    """Send raw bytes; read until the server closes or the reply (with its
    Content-Length) is complete. Returns (status or None, reply bytes).
    A server that neither answers nor closes within timeout raises
    TimeoutError, unless allow_timeout (then whatever arrived is returned)."""
    timeout = timeout or 15 * SLOW
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except ConnectionError:
            pass  # the server may answer and close before reading everything
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                reply = b"".join(chunks)
                head, sep, rest = reply.partition(b"\r\n\r\n")
                if sep:
                    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                    if m and len(rest) >= int(m.group(1)):
                        break
        except ConnectionResetError:
            pass
        except socket.timeout:
            if not allow_timeout and not chunks:
                raise TimeoutError("no answer within %ss to %r" % (timeout, data[:120]))
    reply = b"".join(chunks)
    m = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
    return (int(m.group(1)) if m else None), reply


def q(value):
    """Percent-encode one path segment or query value completely."""
    return urllib.parse.quote(value, safe="")


# ---------------------------------------------------------------- Redis

DUMP_SCRIPT = (
    "local out = {} "
    "for _, k in ipairs(redis.call('KEYS', '*')) do "
    "  local t = redis.call('TYPE', k).ok "
    "  if t == 'hash' then "
    "    local h = redis.call('HGETALL', k) local m = {} "
    "    for i = 1, #h, 2 do m[h[i]] = h[i + 1] end "
    "    out[k] = m "
    "  else out[k] = {['<type>'] = t} end "
    "end "
    "return cjson.encode(out)"
)


FILL_SCRIPT = """
local ok = '{"p": 1, "status": "success", "batch_id": 1795000000, '
  .. '"batch_start": "2026-11-20T06:00:00.000000", "batch_end": "2026-11-20T06:10:00.000000"}'
local failed = '{"p": 1, "status": "failed", "batch_id": 1795000000, '
  .. '"batch_start": "2026-11-20T06:00:00.000000", "batch_end": "2026-11-20T06:10:00.000000"}'
for i = 0, tonumber(ARGV[2]) - 1 do
  local wf = string.format('%s%05d', ARGV[1], i)
  redis.call('HSET', wf, 'job1', ok, 'job2', i % 5 == 0 and failed or ok)
  redis.call('SADD', 'batchy:workflows', wf)
end
return 'OK'
"""


class RedisServer:
    """A private redis-server on a free port (or a given one), in a temp dir."""

    def __init__(self, port=None, extra_args=()):
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.dir = tempfile.mkdtemp(prefix="batchy-redis-")
        self.proc = None
        self.log = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self, timeout=10):
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.dir, "--save", "", "--appendonly", "no"] + self.extra_args,
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited with %s: %s" % (
                    self.proc.returncode, self.read_log()))
            if self.ping():
                return self
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer PING in %ss" % timeout)

    def read_log(self):
        try:
            with open(os.path.join(self.dir, "redis.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-3000:]
        except OSError:
            return ""

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
                return reply.startswith(b"+PONG") or reply.startswith(b"-NOAUTH")
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self.log:
            self.log.close()
            self.log = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cli(self, *args, db=0, password=None):
        """Run `redis-cli -p PORT -n DB --raw ARGS...`; return stdout as text
        with the one trailing newline removed."""
        cmd = ["redis-cli", "-p", str(self.port), "-n", str(db), "--raw"]
        if password:
            cmd += ["--no-auth-warning", "-a", password]
        out = subprocess.run(cmd + [str(a) for a in args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15,
                             stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise RuntimeError("redis-cli %r failed: %r" % (args, out.stderr))
        text = out.stdout.decode("utf-8", "surrogateescape")
        if text.endswith("\n"):
            text = text[:-1]
        if text.startswith(("ERR ", "WRONGTYPE")):
            raise RuntimeError("redis-cli %r: %s" % (args, text))
        return text

    def dump(self):
        """Every key of the database: {key: {field: value}} for hashes."""
        return json.loads(self.cli("EVAL", DUMP_SCRIPT, "0"))

    def keys(self, pattern="*"):
        text = self.cli("KEYS", pattern)
        return sorted(k for k in text.split("\n") if k)

    def hash_json(self, key):
        """The hash `key` with every value parsed as JSON: {field: object}."""
        h = self.dump().get(key)
        if h is None:
            return None
        return {k: json.loads(v) for k, v in h.items()}

    def fill(self, prefix, n):
        """n workflows <prefix>00000.. of two steps, listed in batchy:workflows
        as load_cfg lists them: every fifth failed, the others a success.
        Written by a script: thousands take a moment, not minutes of calls."""
        return self.cli("EVAL", FILL_SCRIPT, "0", prefix, str(n))

    def commandstats(self):
        """{command: calls} from INFO commandstats (scripts' commands too)."""
        counts = {}
        for line in self.cli("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, _, rest = line[len("cmdstat_"):].partition(":")
                counts[name] = int(rest.split(",")[0].split("=")[1])
        return counts

    def set_state(self, key, steps):
        """Replace hash `key` by {step: record}; dict records are written as
        compact JSON, strings as they are."""
        self.cli("DEL", key)
        args = []
        for name, rec in steps.items():
            args += [name, rec if isinstance(rec, str) else
                     json.dumps(rec, separators=(",", ":"))]
        if args:
            self.cli("HSET", key, *args)


# ---------------------------------------------------------------- batchy

# Every Batchy made in this process, in order: a failed test's report shows
# the log tails of those it made and of its class's batchy.
ALL_BATCHY = []
LOG_TAIL_LINES = 40


class SentinelSet:
    """Redis Sentinel on loopback, as the failover tests want it: a master,
    `replicas` replicas and `sentinels` sentinels (Debian's redis-server and
    redis-sentinel), each on a free port in a temp dir of its own, watching
    a master named `name` (quorum 2, down after `down_after_ms`). Every
    server has the same replica-priority, so that the sentinels promote the
    replica that has received the most. Servers are numbered in
    self.servers (0: the first master).

    A sentinel PINGs each server every second, or every down-after when
    that is less: with down-after at 1000 ms, a master it has just been
    told of by a switch, whose first PING answer comes a moment late on a
    busy machine, is taken for down, and failed over in turn (seen in
    the sentinels' logs: +sdown of the new master a second after
    +switch-master, -sdown a moment later). 2000 ms leaves a PING's
    worth of margin."""

    def __init__(self, replicas=2, sentinels=3, name="batchy", down_after_ms=2000,
                 failover_timeout_ms=2000):
        self.name = name
        self.down_after_ms = down_after_ms
        # A sentinel starts no new failover of the same master within twice
        # this of the last: failovers in a row wait that long (failover_gap).
        self.failover_timeout_ms = failover_timeout_ms
        self.servers = []
        self.sentinels = []
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.nreplicas = replicas

    def start(self):
        master = RedisServer()
        master.start()
        self.servers.append(master)
        for _ in range(self.nreplicas):
            r = RedisServer(extra_args=["--replicaof", "127.0.0.1", str(master.port)])
            r.start()
            self.servers.append(r)
        for port in self.sentinel_ports:
            d = tempfile.mkdtemp(prefix="batchy-sentinel-")
            conf = os.path.join(d, "sentinel.conf")
            with open(conf, "w") as f:
                f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                        "sentinel monitor %s 127.0.0.1 %d 2\n"
                        "sentinel down-after-milliseconds %s %d\n"
                        "sentinel failover-timeout %s %d\n"
                        "sentinel parallel-syncs %s 2\n"
                        % (port, d, self.name, master.port, self.name, self.down_after_ms,
                           self.name, self.failover_timeout_ms, self.name))
            log = open(os.path.join(d, "sentinel.log"), "ab")
            proc = subprocess.Popen(["redis-sentinel", conf], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
            self.sentinels.append({"port": port, "dir": d, "proc": proc, "log": log})
        self.wait_for(lambda: self.replicas_in_sync(master, self.nreplicas) and all(
            self.sentinel_master(s["port"]) == master.port for s in self.sentinels),
            "the sentinels to see the master and its replicas")
        return self

    def failover_gap(self):
        """Seconds to leave between a failover and the next."""
        return 2 * self.failover_timeout_ms / 1000 + 1

    def url(self, db=0, sentinels=None):
        hosts = ",".join("127.0.0.1:%d" % p for p in (sentinels or self.sentinel_ports))
        return "sentinel://%s/%s/%d" % (hosts, self.name, db)

    @staticmethod
    def wait_for(check, what, timeout=30):
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError("waited %ss for %s" % (timeout, what))
            time.sleep(0.05)

    @staticmethod
    def cli(port, *args):
        out = subprocess.run(["redis-cli", "-p", str(port), "--raw"] + [str(a) for a in args],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10,
                             stdin=subprocess.DEVNULL)
        return out.stdout.decode("utf-8", "replace").strip()

    def sentinel_master(self, port):
        """The master's port as the sentinel on `port` names it, or None."""
        try:
            lines = self.cli(port, "SENTINEL", "get-master-addr-by-name", self.name).split("\n")
            return int(lines[1]) if len(lines) == 2 else None
        except (ValueError, subprocess.SubprocessError):
            return None

    def switched_to(self, port):
        """The master's port in the sentinel on `port`'s own record (None
        if it does not answer): it changes with its +switch-master, at the
        end of a failover. (get-master-addr-by-name names the promoted
        replica earlier, from the moment the leader starts moving the other
        replicas to it.)"""
        try:
            lines = self.cli(port, "SENTINEL", "MASTER", self.name).split("\n")
            fields = dict(zip(lines[0::2], lines[1::2]))
            return int(fields["port"])
        except (KeyError, ValueError, subprocess.SubprocessError):
            return None

    @staticmethod
    def replicas_in_sync(master, n):
        """Whether master has n replicas online."""
        info = SentinelSet.cli(master.port, "INFO", "replication")
        return info.count(",state=online,") >= n

    def master(self):
        """The server every sentinel names as the master (None while they
        disagree)."""
        ports = {self.sentinel_master(s["port"]) for s in self.sentinels}
        for srv in self.servers:
            if ports == {srv.port}:
                return srv
        return None

    def agreed_master(self, other_than=None, timeout=30):
        """The master once every sentinel names it (and it is not
        other_than): the sentinels that did not lead a failover learn of
        it from the others' hello messages, every 2 s, later on a busy
        machine."""
        found = []
        self.wait_for(lambda: found.append(self.master()) or
                      (found[-1] is not None and found[-1] is not other_than),
                      "the sentinels to agree on a master", timeout)
        return found[-1]

    def describe(self):
        """What each server says of its role and each sentinel of the
        master, the end of each server's log and each sentinel's last
        warnings: the failure report of a failover test."""
        out = []
        for i, srv in enumerate(self.servers):
            if not (srv.proc and srv.proc.poll() is None):
                out.append("server %d (port %d): not running" % (i, srv.port))
                continue
            try:
                info = self.cli(srv.port, "INFO", "replication").splitlines()
            except subprocess.SubprocessError as e:  # a report must not fail itself
                info = ["(INFO: %s)" % e]
            keep = [line for line in info if line.split(":")[0] in (
                "role", "master_port", "master_link_status", "master_sync_in_progress",
                "connected_slaves") or line.startswith(("slave", "(INFO"))]
            out.append("server %d (port %d): %s" % (i, srv.port, " ".join(keep)))
        for i, srv in enumerate(self.servers):
            tail = srv.read_log().splitlines()[-8:]
            out.append("server %d's log ends:\n  %s" % (i, "\n  ".join(tail)))
        for s in self.sentinels:
            # its warnings ("#": +sdown, +odown, +switch-master...)
            try:
                with open(os.path.join(s["dir"], "sentinel.log"), "rb") as f:
                    tail = [line for line in f.read().decode("utf-8", "replace").splitlines()
                            if " # " in line][-25:]
            except OSError:
                tail = []
            out.append("sentinel on port %d names port %s as the master; its log ends:\n  %s" % (
                s["port"], self.sentinel_master(s["port"]), "\n  ".join(tail)))
        return "\n".join(out)

    def cleanup(self):
        for s in self.sentinels:
            if s["proc"].poll() is None:
                s["proc"].kill()
                s["proc"].wait(10)
            s["log"].close()
            shutil.rmtree(s["dir"], ignore_errors=True)
        for srv in self.servers:
            srv.cleanup()


class Batchy:
    """One batchy process. stderr goes to a file (the access log)."""

    def __init__(self, redis_url=None, cfg_dir=None, args=(), env=None, port=None,
                 workdir=None, listen=True, nofile=None):
        ALL_BATCHY.append(self)
        self.saved_tail = ""  # the log's tail, kept when cleanup removes the file
        self.port = port or free_port()
        self.workdir = workdir or tempfile.mkdtemp(prefix="batchy-run-")
        self.own_workdir = workdir is None
        self.redis_url = redis_url
        self.cfg_dir = cfg_dir
        self.args = list(args)
        self.env = env
        self.listen = listen
        self.nofile = nofile  # its descriptor limit: n, or (soft, hard) (prlimit)
        self.proc = None
        self.stderr_path = os.path.join(self.workdir, "batchy.stderr")
        self.stdout_path = os.path.join(self.workdir, "batchy.stdout")

    def command(self):
        cmd = [batchy_bin()]
        if self.listen:
            cmd += ["--listen", "127.0.0.1:%d" % self.port]
        if self.redis_url:
            cmd += ["--redis", self.redis_url]
        if self.cfg_dir:
            cmd += ["--cfg-dir", self.cfg_dir]
        cmd += self.args
        if VALGRIND:
            # batchy is linked with mimalloc: valgrind must replace that
            # malloc, not only libc's, to see the heap.
            cmd = ["valgrind", "--soname-synonyms=somalloc=*mimalloc*", "--leak-check=full",
                   "--show-leak-kinds=definite,indirect",
                   "--errors-for-leak-kinds=definite,indirect",
                   "--error-exitcode=99",
                   "--log-file=%s" % os.path.join(self.workdir, "vg.%p.log")] + cmd
        if self.nofile:
            soft, hard = self.nofile if isinstance(self.nofile, tuple) else (self.nofile,) * 2
            cmd = ["prlimit", "--nofile=%d:%d" % (soft, hard), "--"] + cmd
        return cmd

    def start(self, timeout=START_TIMEOUT):
        if not os.path.exists(batchy_bin()):
            raise RuntimeError("batchy binary not found at %s (set BATCHY_BIN or run make)"
                               % batchy_bin())
        env = dict(os.environ)
        for name in list(env):
            if name.startswith("BATCHY_") and name not in ("BATCHY_BIN", "BATCHY_VALGRIND"):
                del env[name]
        env.pop("REDIS_URL", None)
        env.update(self.env or {})
        self.err_file = open(self.stderr_path, "ab")
        self.out_file = open(self.stdout_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=self.out_file, stderr=self.err_file,
                                     stdin=subprocess.DEVNULL, env=env, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("batchy exited with %s at start; stderr:\n%s" % (
                    self.proc.returncode, self.stderr()))
            try:
                r = http_request(self.port, "GET", "/index", timeout=2 * SLOW)
                if r.status == 200:
                    return self
                last = r
            except OSError as e:
                last = e
            time.sleep(0.02)
        self.kill()
        raise RuntimeError("batchy did not answer GET /index in %ss (last: %r); stderr:\n%s"
                           % (timeout, last, self.stderr()))

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def valgrind_logs(self):
        out = []
        for name in sorted(os.listdir(self.workdir)):
            if name.startswith("vg.") and name.endswith(".log"):
                with open(os.path.join(self.workdir, name), "rb") as f:
                    out.append("==> %s <==\n%s" % (name, f.read().decode("utf-8", "replace")))
        return "\n".join(out)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        """Wait for exit; return the exit status, or None on timeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Send sig and wait; return the exit status (None if it had to be
        killed). Closes the log files."""
        if self.proc is None:
            return 0
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(sig)
            rc = self.wait(timeout)
            if rc is None:
                self.kill()
        for f in (getattr(self, "err_file", None), getattr(self, "out_file", None)):
            if f:
                f.close()
        return rc

    def stop_checked(self, sig=signal.SIGTERM):
        """Stop with sig; raise AssertionError unless batchy exited 0."""
        if self.proc is None:
            return
        rc = self.stop(sig)
        if rc != 0:
            detail = "batchy exit status after %s: %s (expected 0)\n--- stderr (tail):\n%s" % (
                signal.Signals(sig).name, "timeout, killed" if rc is None else rc,
                self.stderr()[-4000:])
            if VALGRIND:
                detail += "\n--- valgrind:\n" + self.valgrind_logs()
            raise AssertionError(detail)

    def cleanup(self):
        try:
            self.stop()
        finally:
            if self.own_workdir:
                self.saved_tail = self.log_tail()
                shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines=LOG_TAIL_LINES):
        """The last lines of batchy's stderr (its access log and errors)."""
        text = self.stderr() or self.saved_tail
        return "\n".join(text.splitlines()[-lines:])

    # HTTP shortcuts
    def request(self, method, path, headers=None, body=None, timeout=None):
        return http_request(self.port, method, path, headers, body, timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)


# ---------------------------------------------------------------- failure reports

def failure_report(test, seconds, first_batchy):
    """What the runner prints after a failed test, to tell a timing failure
    (a slow build, a busy machine) from a real one: how long the test took
    and how loaded the machine was, then the log tails of the batchy
    processes it used (its class's, and those made from index first_batchy
    on) and of its class's redis-server."""
    case = getattr(test, "test_case", test)  # a subTest: its test's attributes
    load = " ".join("%.2f" % x for x in os.getloadavg())
    out = ["--- %s took %.1fs in the %s build, %d cores, load average %s" % (
        test.id(), seconds, "valgrind" if VALGRIND else
        ("sanitizer" if "san" in batchy_bin() else "plain"), os.cpu_count(), load)]
    seen = []
    for b in [getattr(case, "batchy", None)] + ALL_BATCHY[first_batchy:]:
        if isinstance(b, Batchy) and b not in seen:
            seen.append(b)
            state = "running" if b.running() else "exited %s" % (
                b.proc.returncode if b.proc else "(never started)")
            out.append("--- batchy on port %d (%s), last %d lines of its log:\n%s" % (
                b.port, state, LOG_TAIL_LINES, b.log_tail()))
    sentinels = getattr(case, "sentinels", None)
    if isinstance(sentinels, SentinelSet):
        out.append("--- the servers and sentinels:\n" + sentinels.describe())
    redis = getattr(case, "redis", None)
    if isinstance(redis, RedisServer):
        tail = "\n".join(redis.read_log().splitlines()[-10:])
        out.append("--- redis-server on port %d, last lines of its log:\n%s" % (redis.port, tail))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- test base

class ServiceTestCase(unittest.TestCase):
    """A test class with its own redis-server and batchy (started once per
    class). Subclasses may set batchy_args / batchy_env / start_redis."""

    batchy_args = ()
    batchy_env = None
    start_redis = True
    _counter = 0

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="batchy-it-")
        cls.cfg_dir = os.path.join(cls.tmp, "cfg")
        os.mkdir(cls.cfg_dir)
        cls.redis = RedisServer()
        cls.batchy = None
        try:
            if cls.start_redis:
                cls.redis.start()
            cls.batchy = Batchy(cls.redis.url, cls.cfg_dir, cls.batchy_args, cls.batchy_env,
                                workdir=cls.tmp)
            cls.batchy.start()
        except BaseException:
            cls._cleanup_class()
            raise

    @classmethod
    def _cleanup_class(cls):
        try:
            if cls.batchy:
                cls.batchy.stop_checked()
        finally:
            try:
                if cls.batchy:
                    cls.batchy.kill()
                cls.redis.cleanup()
            finally:
                shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        cls._cleanup_class()

    # ---- names and files
    @classmethod
    def unique(cls, prefix="wf"):
        ServiceTestCase._counter += 1
        return "%s%d" % (prefix, ServiceTestCase._counter)

    def write_cfg(self, wf, text, ext=".yaml", cfg_dir=None):
        path = os.path.join(cfg_dir or self.cfg_dir, wf + ext)
        with open(path, "wb") as f:
            f.write(text.encode("utf-8") if isinstance(text, str) else text)
        return path

    def copy_workflow(self, filename):
        """Copy tests/integration/workflows/<filename> into the cfg dir."""
        shutil.copy(os.path.join(WORKFLOWS_DIR, filename), os.path.join(self.cfg_dir, filename))

    def load(self, wf, text=None, ext=".yaml"):
        """Write cfg (if text given), call load_cfg, assert 200; return the doc."""
        if text is not None:
            self.write_cfg(wf, text, ext)
        r = self.batchy.get("/load_cfg/" + wf)
        self.assertEqual(r.status, 200, r)
        return r.json()

    # ---- calls
    def call(self, endpoint, wf, query=None, method="GET", suffix=""):
        path = "/%s/%s%s" % (endpoint, wf, suffix)
        if query:
            path += "?" + (query if isinstance(query, str) else urllib.parse.urlencode(query, doseq=True))
        return self.batchy.request(method, path)

    def ok(self, endpoint, wf, query=None, method="GET", suffix=""):
        r = self.call(endpoint, wf, query, method, suffix)
        self.assertEqual(r.status, 200, "%s %s/%s%s?%s -> %r" % (method, endpoint, wf, suffix, query, r))
        self.assertTrue(r.content_type.startswith("application/json"), r)
        return r.json()

    def open_batch(self, wf, query=None):
        doc = self.ok("open_batch", wf, query)
        self.assert_answer_is_stored(wf, doc)
        return doc

    def close_batch(self, wf, query=None):
        doc = self.ok("close_batch", wf, query)
        self.assert_answer_is_stored(wf, doc)
        return doc

    def fail_batch(self, wf, query=None):
        doc = self.ok("fail_batch", wf, query)
        self.assert_answer_is_stored(wf, doc)
        return doc

    def assert_answer_is_stored(self, wf, doc):
        """After a successful open/close/fail: the answer is what <wf> holds,
        and <wf> equals the snapshot of its current batch."""
        self.assertEqual(self.redis.hash_json(wf), doc, "answer differs from Redis key %s" % wf)
        self.assert_latest_matches_snapshot(wf)

    def get_status(self, wf, query=None):
        return self.ok("get_status", wf, query)

    # ---- assertions
    def assert_error(self, r, status, contains=None):
        """r is a JSON error with the given status (or one of them)."""
        statuses = status if isinstance(status, (tuple, list, set)) else (status,)
        self.assertIn(r.status, statuses, r)
        self.assertTrue(r.content_type.startswith("application/json"), r)
        doc = r.json()
        self.assertIsInstance(doc, dict, r)
        self.assertIsInstance(doc.get("error"), str, r)
        self.assertTrue(doc["error"].strip(), r)
        if contains:
            self.assertIn(contains, doc["error"], r)
        return doc["error"]

    def assert_time_near(self, text, before, after, slack=1.5):
        t = parse_time(text)
        self.assertGreaterEqual(t, before - timedelta(seconds=slack * SLOW), text)
        self.assertLessEqual(t, after + timedelta(seconds=slack * SLOW), text)
        return t

    def assert_latest_matches_snapshot(self, wf):
        """Each step of <wf> equals that step in the snapshot of its own
        batch (SPEC 4: after a partial open, steps may be in different
        batches); returns the current (largest) batch id."""
        latest = self.redis.hash_json(wf)
        self.assertIsNotNone(latest, "no key %s" % wf)
        current = max(int(rec.get("batch_id") or 0) for rec in latest.values())
        self.assertGreater(current, 0, "%s has no batch" % wf)
        snaps = {}
        for step, rec in latest.items():
            bid = int(rec.get("batch_id") or 0)
            if not bid:
                continue
            if bid not in snaps:
                snaps[bid] = self.redis.hash_json("%s-%d" % (wf, bid))
                self.assertIsNotNone(snaps[bid], "no snapshot %s-%d" % (wf, bid))
            self.assertEqual(rec, snaps[bid].get(step), "%s: step %s differs from %s-%d"
                             % (wf, step, wf, bid))
        return current

    def assert_service_up(self):
        r = self.batchy.get("/index")
        self.assertEqual(r.status, 200, r)


class TwoBatchyTestCase(ServiceTestCase):
    """A ServiceTestCase with a second batchy (self.second) on the same
    Redis and cfg dir, started with second_args and batchy_env."""

    second_args = ()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.second = None
        try:
            cls.second = Batchy(cls.redis.url, cls.cfg_dir, args=cls.second_args,
                                env=cls.batchy_env)
            cls.second.start()
        except BaseException:
            if cls.second:
                cls.second.cleanup()
            cls._cleanup_class()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.second.stop_checked()
        finally:
            cls.second.cleanup()
            super().tearDownClass()


class OwnBatchyMixin:
    """For tests that start batchy themselves (with their own options, on a
    chosen port, several times): one redis-server and a cfg dir holding
    `cfg_files` ({name: text}) per class, the server started with
    `redis_args`; every batchy started with start_batchy is cleaned up after
    its test."""

    cfg_files = {}
    redis_args = ()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="batchy-own-")
        cls.cfg_dir = os.path.join(cls.tmp, "cfg")
        os.mkdir(cls.cfg_dir)
        for name, text in cls.cfg_files.items():
            with open(os.path.join(cls.cfg_dir, name), "w") as f:
                f.write(text)
        cls.redis = RedisServer(extra_args=cls.redis_args)
        try:
            cls.redis.start()
        except BaseException:
            cls.redis.cleanup()
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.redis.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.started = []

    def tearDown(self):
        for b in self.started:
            b.cleanup()
        super().tearDown()

    def start_batchy(self, **kw):
        """Start a batchy on this class's Redis and cfg dir (unless kw says
        otherwise) and return it, answering."""
        kw.setdefault("redis_url", self.redis.url)
        kw.setdefault("cfg_dir", self.cfg_dir)
        b = Batchy(**kw)
        self.started.append(b)
        return b.start()


# ---------------------------------------------------------------- waitsy
#
# Waitsy (WAITSY_BIN, default build/waitsy) is run as a plain subprocess;
# with BATCHY_VALGRIND=1 it runs under valgrind too (exit 99 = leak or error,
# reported with the valgrind log). Tests control its clock with libfaketime
# (faketime_env), never by waiting for midnight.
import atexit  # noqa: E402  (only the waitsy helpers need it)

WAITSY_TIMEOUT = 30 * SLOW
# The progress and message lines: "YYYY-MM-DD HH:MM:SS <text>".
STAMP_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (.*)$")
FAKETIME_LIBS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)
_VG_DIR = None


def waitsy_bin():
    path = os.environ.get("WAITSY_BIN", "build/waitsy")
    if not os.path.isabs(path):
        path = os.path.join(REPO_ROOT, path)
    return path


def waitsy_valgrind_dir():
    """Where valgrind writes waitsy's logs (vgw.<pid>.log)."""
    global _VG_DIR
    if _VG_DIR is None:
        _VG_DIR = tempfile.mkdtemp(prefix="waitsy-vg-")
        atexit.register(_remove_clean_valgrind_dir, _VG_DIR)
    return _VG_DIR


def _remove_clean_valgrind_dir(path):
    """At exit: remove the log directory unless a log holds something."""
    try:
        if all(os.path.getsize(os.path.join(path, n)) == 0 for n in os.listdir(path)):
            shutil.rmtree(path, ignore_errors=True)
    except OSError:
        pass


def waitsy_command(args, ignore_signals=(), valgrind=True):
    """The argv that runs waitsy with args (under valgrind with VALGRIND,
    unless valgrind=False);
    with ignore_signals, waitsy starts with those signals ignored, as a
    shell starts a background job or after `trap '' INT`."""
    if not os.path.exists(waitsy_bin()):
        raise AssertionError("waitsy binary not found at %s (set WAITSY_BIN or run make)"
                             % waitsy_bin())
    cmd = [waitsy_bin()] + [str(a) for a in args]
    if VALGRIND and valgrind:
        cmd = ["valgrind", "-q", "--leak-check=full",
               "--show-leak-kinds=definite,indirect",
               "--errors-for-leak-kinds=definite,indirect",
               "--error-exitcode=99",
               "--log-file=%s" % os.path.join(waitsy_valgrind_dir(), "vgw.%p.log")] + cmd
    if ignore_signals:
        traps = "".join("trap '' %s; " % signal.Signals(sig).name[3:] for sig in ignore_signals)
        cmd = ["sh", "-c", traps + 'exec "$@"', "sh"] + cmd  # exec: the same pid
    return cmd


def waitsy_env(env=None):
    """os.environ without Batchy's settings, proxies or an inherited fake
    clock, then the test's own variables (a value of None removes one)."""
    full = dict(os.environ)
    for name in list(full):
        if name.startswith("BATCHY_") and name not in ("BATCHY_BIN", "BATCHY_VALGRIND"):
            del full[name]
        elif name.startswith("FAKETIME"):
            del full[name]
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                 "all_proxy", "no_proxy", "NO_PROXY", "LD_PRELOAD", "DONT_FAKE_MONOTONIC"):
        full.pop(name, None)
    for name, value in (env or {}).items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    return full


def waitsy_valgrind_log(pid):
    """The valgrind log of the waitsy process `pid` ("" when none)."""
    if not VALGRIND:
        return ""
    path = os.path.join(waitsy_valgrind_dir(), "vgw.%d.log" % pid)
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _check_valgrind(pid, returncode, args):
    if VALGRIND and returncode == 99:
        raise AssertionError("waitsy %r: valgrind found errors or leaks (exit 99):\n%s"
                             % (list(args), waitsy_valgrind_log(pid)))


def run_waitsy(args, env=None, timeout=None, cwd=None, ignore_signals=(), valgrind=True):
    """Run waitsy to its end; a CompletedProcess with stdout and stderr as
    text, plus .elapsed (seconds). Under valgrind, exit 99 fails the test
    with the valgrind log. valgrind=False runs it natively even then: for
    the many runs that only parse a command line, which the unit tests
    already run under valgrind."""
    timeout = timeout or WAITSY_TIMEOUT
    started = time.monotonic()
    proc = subprocess.Popen(waitsy_command(args, ignore_signals, valgrind), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=waitsy_env(env), cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError("waitsy %r did not end within %ss\n--- stdout:\n%s\n--- stderr:\n%s"
                             % (list(args), timeout, out.decode("utf-8", "replace"),
                                err.decode("utf-8", "replace")))
    result = subprocess.CompletedProcess(proc.args, proc.returncode,
                                         out.decode("utf-8", "replace"),
                                         err.decode("utf-8", "replace"))
    result.elapsed = time.monotonic() - started
    _check_valgrind(proc.pid, proc.returncode, args)
    return result


class WaitsyProcess:
    """A waitsy running in the background (for signals and restarts);
    stdout and stderr go to files, read at any time with .stdout() and
    .stderr()."""

    def __init__(self, args, env=None, cwd=None, ignore_signals=()):
        self.args = list(args)
        self.dir = tempfile.mkdtemp(prefix="waitsy-run-")
        self.out_path = os.path.join(self.dir, "stdout")
        self.err_path = os.path.join(self.dir, "stderr")
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(waitsy_command(args, ignore_signals), stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err,
                                     env=waitsy_env(env), cwd=cwd)
        self.returncode = None

    def _read(self, path):
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout(self):
        return self._read(self.out_path)

    def stderr(self):
        return self._read(self.err_path)

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def running(self):
        return self.proc.poll() is None

    def wait_for(self, predicate, timeout, what="the expected output"):
        """Poll until predicate(stdout, stderr) is true; fail after timeout
        seconds or when waitsy ends first."""
        deadline = time.monotonic() + timeout
        while True:
            out, err = self.stdout(), self.stderr()
            if predicate(out, err):
                return out, err
            if self.proc.poll() is not None:
                out, err = self.stdout(), self.stderr()
                if predicate(out, err):
                    return out, err
                raise AssertionError("waitsy ended (exit %s) before %s\n--- stdout:\n%s\n"
                                     "--- stderr:\n%s" % (self.proc.returncode, what, out, err))
            if time.monotonic() > deadline:
                raise AssertionError("no %s from waitsy within %ss\n--- stdout:\n%s\n"
                                     "--- stderr:\n%s" % (what, timeout, out, err))
            time.sleep(0.02)

    def wait(self, timeout=None):
        """Wait for the end; return the exit status (AssertionError with the
        output when it does not end within timeout)."""
        timeout = timeout or WAITSY_TIMEOUT
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("waitsy %r still running after %ss\n--- stdout:\n%s\n"
                                 "--- stderr:\n%s" % (self.args, timeout, self.stdout(),
                                                      self.stderr()))
        _check_valgrind(self.proc.pid, self.returncode, self.args)
        return self.returncode

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for f in (self._out, self._err):
            f.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_waitsy(args, env=None, cwd=None, ignore_signals=()):
    """Start waitsy in the background; a WaitsyProcess (call cleanup())."""
    return WaitsyProcess(args, env, cwd, ignore_signals)


def faketime_lib():
    """libfaketime's preload library; a clear failure (never a skip) when
    the faketime package is not installed."""
    for path in FAKETIME_LIBS:
        if os.path.exists(path):
            return path
    try:
        out = subprocess.run(["dpkg", "-L", "libfaketime"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=10)
        for line in out.stdout.decode("utf-8", "replace").splitlines():
            if line.endswith("/libfaketime.so.1") and os.path.exists(line):
                return line
    except (OSError, subprocess.TimeoutExpired):
        pass
    raise AssertionError("libfaketime.so.1 not found (looked in %s): the waitsy tests need "
                         "the faketime package (apt-get install faketime)"
                         % ", ".join(FAKETIME_LIBS))


def faketime_env(when, env=None):
    """Environment that starts waitsy's wall clock at `when` (an aware
    datetime; whole seconds) and lets it run on. FAKETIME_FMT=%s with
    "@<epoch>" is used because libfaketime reads "@YYYY-MM-DD HH:MM:SS" in
    the process's local time zone (TZ), and an epoch means the same instant
    in every zone. The monotonic clock stays real (timeouts and sleeps).
    ASan refuses a preloaded library before its runtime unless told not to
    check (verify_asan_link_order=0); other builds ignore ASAN_OPTIONS."""
    if when.tzinfo is None:
        raise ValueError("faketime_env needs an aware datetime, not %r" % (when,))
    epoch = int(when.timestamp())
    asan = os.environ.get("ASAN_OPTIONS", "")
    full = {
        "LD_PRELOAD": faketime_lib(),
        "FAKETIME_FMT": "%s",
        "FAKETIME": "@%d" % epoch,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_NO_CACHE": "1",
        "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0",
    }
    full.update(env or {})
    return full


def stamped(text):
    """The lines of waitsy output as (stamp, text) pairs; an AssertionError
    names any line without the "YYYY-MM-DD HH:MM:SS " stamp."""
    out = []
    for line in text.splitlines():
        m = STAMP_RE.match(line)
        if not m:
            raise AssertionError("line without a time stamp: %r in:\n%s" % (line, text))
        out.append((m.group(1), m.group(2)))
    return out
