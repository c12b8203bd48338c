"""Waiting without polling (SPEC section 10): get_status's ETag and
conditional requests, held requests (?wait=), change notices through Redis
between Batchy processes, and the /events stream."""
import http.client
import json
import re
import signal
import socket
import threading
import time
import unittest

from harness import (PROMPT, SLOW, STOP_TIMEOUT, OwnBatchyMixin, ServiceTestCase,
                     TwoBatchyTestCase, http_request)

TWO = "job1:\n  p: 1\njob2:\n  q: x\n"


class ETagTest(ServiceTestCase):

    def setUp(self):
        self.wf = self.unique("etag")
        self.load(self.wf, TWO)

    def etag(self, path=None):
        r = self.batchy.get(path or "/get_status/" + self.wf)
        self.assertEqual(r.status, 200, r)
        tag = r.headers.get("etag")
        self.assertRegex(tag, r'^"[0-9a-f]{16}"$')
        return tag

    def conditional(self, tag, path=None, method="GET"):
        return self.batchy.request(method, path or "/get_status/" + self.wf,
                                   headers={"If-None-Match": tag})

    def test_unchanged_workflow_answers_304_with_the_same_etag_and_no_body(self):
        tag = self.etag()
        self.assertEqual(self.etag(), tag)
        for method in ("GET", "HEAD"):
            r = self.conditional(tag, method=method)
            self.assertEqual(r.status, 304, (method, r))
            self.assertEqual(r.headers.get("etag"), tag)
            self.assertEqual(r.body, b"")

    def test_every_change_gives_another_etag(self):
        seen = {self.etag()}
        self.ok("open_batch", self.wf)
        seen.add(self.etag())
        self.ok("close_batch", self.wf, {"step": "job1"})
        seen.add(self.etag())
        # by hand, with redis-cli: one field of one step
        self.redis.cli("HSET", self.wf, "job2", '{"q": "y", "status": "open"}')
        tag = self.etag()
        self.assertNotIn(tag, seen)
        seen.add(tag)
        self.assertEqual(len(seen), 4)
        r = self.conditional(min(seen - {tag}))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("etag"), tag)
        self.assertEqual(r.json()["job2"]["q"], "y")

    def test_if_none_match_lists_star_and_weak_tags(self):
        tag = self.etag()
        for header in ("*", '"0000000000000000", %s' % tag, "W/" + tag, ' %s ,"x"' % tag):
            self.assertEqual(self.conditional(header).status, 304, header)
        for header in ('"0000000000000000"', tag[:-2] + '"', "", "W/"):
            self.assertEqual(self.conditional(header).status, 200, header)

    def test_snapshots_have_etags_too(self):
        bid = self.ok("open_batch", self.wf)["job1"]["batch_id"]
        path = "/get_status/%s-%d" % (self.wf, bid)
        tag = self.etag(path)
        self.assertEqual(self.conditional(tag, path).status, 304)
        self.ok("close_batch", self.wf)
        self.assertEqual(self.conditional(tag, path).status, 200)

    def test_errors_have_no_etag(self):
        r = self.batchy.get("/get_status/nothing_loaded_here")
        self.assertEqual(r.status, 404)
        self.assertIsNone(r.headers.get("etag"))


class Held:
    """A get_status sent now on its own thread; .result() waits for it."""

    def __init__(self, port, path, tag, wait, timeout=None):
        self.sent = time.monotonic()
        self.answered = None
        self.response = self.error = None
        headers = {"If-None-Match": tag} if tag else {}
        sep = "&" if "?" in path else "?"

        def run():
            try:
                self.response = http_request(port, "GET", "%s%swait=%s" % (path, sep, wait),
                                             headers=headers, timeout=timeout or wait + 30 * SLOW)
            except Exception as e:  # reported by result()
                self.error = e
            self.answered = time.monotonic()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self, timeout):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError("the held request was not answered within %ss" % timeout)
        if self.error:
            raise self.error
        return self.response


def wait_held(batchy, n, timeout=PROMPT):
    """Wait until batchy holds n requests (healthz says how many)."""
    deadline = time.monotonic() + timeout
    while True:
        held = batchy.get("/healthz").json().get("held")
        if held == n or time.monotonic() > deadline:
            return held
        time.sleep(0.02)


class HeldRequestTest(TwoBatchyTestCase):
    """?wait= on get_status, a change made through the other Batchy."""

    def setUp(self):
        self.wf = self.unique("held")
        self.load(self.wf, TWO)
        self.path = "/get_status/" + self.wf

    def etag(self, batchy=None, path=None):
        # What Redis holds now: right after a write through the other
        # process, a read from memory may not have had the invalidation
        # yet (the README's "across processes").
        r = (batchy or self.second).get(path or self.path, headers={"Cache-Control": "no-cache"})
        self.assertEqual(r.status, 200, r)
        return r.headers["etag"]

    def hold(self, tag=None, wait=60, path=None, batchy=None):
        return Held((batchy or self.second).port, path or self.path,
                    tag or self.etag(path=path), wait)

    def test_a_change_through_the_other_batchy_answers_the_held_request(self):
        tag = self.etag()
        held = self.hold(tag)
        self.assertEqual(wait_held(self.second, 1), 1)
        self.assertIsNone(held.answered, "answered before anything changed")
        changed = time.monotonic()
        self.ok("open_batch", self.wf)  # through the first batchy
        r = held.result(PROMPT)
        self.assertGreaterEqual(held.answered, changed)
        self.assertEqual(r.status, 200, r)
        self.assertNotEqual(r.headers["etag"], tag)
        self.assertEqual(r.headers["etag"], self.etag())
        self.assertEqual(r.json()["job1"]["status"], "open")
        self.assertEqual(r.json(), self.second.get(self.path).json())

    def test_nothing_changing_answers_304_after_wait_seconds(self):
        tag = self.etag()
        held = self.hold(tag, wait=1)
        r = held.result(1 + PROMPT)
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.headers["etag"], tag)
        self.assertEqual(r.body, b"")
        self.assertGreaterEqual(held.answered - held.sent, 1.0)

    def test_wait_answers_at_once_without_if_none_match_or_when_it_no_longer_holds(self):
        for tag in (None, '"0000000000000000"'):
            headers = {"If-None-Match": tag} if tag else {}
            start = time.monotonic()
            r = self.second.get(self.path + "?wait=600", headers=headers)
            self.assertEqual(r.status, 200, (tag, r))
            self.assertLess(time.monotonic() - start, PROMPT)
            self.assertEqual(r.headers["etag"], self.etag())

    def test_wait_outside_1_to_600_is_a_400_that_changes_nothing(self):
        tag = self.etag()
        before = self.redis.dump()
        for bad in ("0", "601", "-1", "1.5", "abc", "", "%205", "1e2", "0600x", "99999999999"):
            r = self.second.get(self.path + "?wait=" + bad, headers={"If-None-Match": tag})
            self.assertEqual(r.status, 400, (bad, r))
            self.assertIn("wait must be a whole number of seconds from 1 to 600", r.json()["error"])
        for good in ("1", "600", "0600"):
            r = self.second.get(self.path + "?wait=" + good, headers={"If-None-Match": '"x"'})
            self.assertEqual(r.status, 200, (good, r))
        self.assertEqual(self.redis.dump(), before)

    def test_a_change_by_hand_is_seen_within_seconds(self):
        tag = self.etag()
        held = self.hold(tag)
        self.assertEqual(wait_held(self.second, 1), 1)
        self.redis.cli("HSET", self.wf, "job2", '{"q": "by hand", "status": "new"}')
        r = held.result(PROMPT + 3)  # the re-check runs every 2 s
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["job2"]["q"], "by hand")

    def test_many_waiters_of_one_workflow_all_get_the_change(self):
        tag = self.etag()
        helds = [self.hold(tag) for _ in range(40)]
        self.assertEqual(wait_held(self.second, 40), 40)
        # held requests hold no worker: other requests are answered meanwhile
        for _ in range(5):
            self.assertEqual(self.second.get("/index").status, 200)
        self.ok("open_batch", self.wf)
        new = self.etag()
        for h in helds:
            r = h.result(PROMPT)
            self.assertEqual((r.status, r.headers["etag"]), (200, new), r)
        self.assertEqual(wait_held(self.second, 0), 0)

    def test_a_workflow_deleted_while_held_answers_404(self):
        held = self.hold()
        self.assertEqual(wait_held(self.second, 1), 1)
        self.redis.cli("DEL", self.wf)
        r = held.result(PROMPT + 3)
        self.assertEqual(r.status, 404, r)

    def test_snapshots_and_batch_ids_can_be_held_too(self):
        bid = self.ok("open_batch", self.wf)["job1"]["batch_id"]
        for form in ("/get_status/%s-%d", "/get_status/%s?batch_id=%d"):
            path = form % (self.wf, bid)
            held = self.hold(path=path)
            self.assertEqual(wait_held(self.second, 1), 1, path)
            self.ok("close_batch", self.wf, {"step": "job1"})
            r = held.result(PROMPT)
            self.assertEqual(r.status, 200, (path, r))
            self.assertEqual(r.json()["job1"]["status"], "success")
            self.ok("open_batch", self.wf, {"step": "job1"})
            bid = self.redis.hash_json(self.wf)["job1"]["batch_id"]

    def test_a_write_that_changes_nothing_wakes_no_one(self):
        self.ok("open_batch", self.wf)
        self.ok("close_batch", self.wf)
        tag = self.etag()
        held = self.hold(tag, wait=2)
        self.assertEqual(wait_held(self.second, 1), 1)
        # a retried close: nothing to write
        self.ok("close_batch", self.wf)
        r = held.result(2 + PROMPT)
        self.assertEqual(r.status, 304, r)
        self.assertGreaterEqual(held.answered - held.sent, 2.0)


def read_until(sock, pattern, timeout):
    """Read from sock until pattern (bytes regex) matches what came; return it."""
    got = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, got):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("%r not seen within %ss; got %r" % (pattern, timeout, got[-400:]))
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("closed before %r; got %r" % (pattern, got[-400:]))
        got += chunk
    return got


def open_stream(port, query="", rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /events%s HTTP/1.1\r\nHost: x\r\n\r\n" % query.encode())
    return s


def events_of(text):
    import json
    return [json.loads(line[6:]) for line in text.decode().split("\n") if line.startswith("data: ")]


class EventStreamTest(TwoBatchyTestCase):

    def setUp(self):
        self.wf = self.unique("ev")
        # The second process hears of the load in its own time (later
        # under valgrind): on a stream opened after the load, its event
        # could come first. Wait for it here, on a stream of its own.
        with open_stream(self.second.port, "?wf=" + self.wf) as s:
            read_until(s, rb": batchy events\n\n", PROMPT)
            self.load(self.wf, TWO)
            got = read_until(s, rb"data: [^\n]*\n\n", PROMPT)
            self.assertEqual(events_of(got)[0]["counts"], {"new": 2})

    def test_one_event_per_change_with_batch_id_and_counts(self):
        with open_stream(self.second.port) as s:
            head = read_until(s, rb": batchy events\n\n", PROMPT)
            self.assertRegex(head, rb"^HTTP/1\.1 200 ")
            self.assertIn(b"content-type: text/event-stream", head.lower())
            bid = self.ok("open_batch", self.wf)["job1"]["batch_id"]
            # (changes closer together than a read may share one event, with
            # the state after both: the close waits for the open's event)
            got = read_until(s, rb"data: [^\n]*\n\n", PROMPT)
            self.ok("close_batch", self.wf, {"step": "job1"})
            got += read_until(s, rb"data: [^\n]*\n\n", PROMPT)
            evs = [e for e in events_of(got) if e["workflow"] == self.wf]
            self.assertEqual(evs[0], {"workflow": self.wf, "batch_id": bid,
                                      "counts": {"open": 2}, "updated": evs[0]["updated"]})
            self.assertEqual(evs[1]["counts"], {"open": 1, "success": 1})
            self.assertEqual(evs[1]["batch_id"], bid)

    def test_a_change_is_one_event_whether_it_publishes_or_is_made_by_hand(self):
        # A write through Batchy comes to the stream's process twice (its
        # change notice and Redis' invalidation of the key it read); a
        # hand edit only as an invalidation, and well before the 2 s
        # re-check of what is held (streams have none).
        with open_stream(self.second.port, "?wf=" + self.wf) as s:
            read_until(s, rb": batchy events\n\n", PROMPT)
            got = b""
            self.ok("open_batch", self.wf)
            got += read_until(s, rb"data: [^\n]*\n\n", PROMPT)
            self.redis.cli("HSET", self.wf, "job3", json.dumps({"status": "failed"}))
            got += read_until(s, rb"data: [^\n]*\n\n", PROMPT)
            self.ok("close_batch", self.wf, {"step": "job1"})
            got += read_until(s, rb"data: [^\n]*\n\n", PROMPT)
            # A hand write of what is there already: Redis invalidates the
            # key all the same, and the read it brings finds no change.
            self.redis.cli("HSET", self.wf, "job2", self.redis.cli("HGET", self.wf, "job2"))
            # and nothing more: no change came twice
            s.settimeout(1.0 * SLOW)
            try:
                got += s.recv(65536)
            except socket.timeout:
                pass
            counts = [e["counts"] for e in events_of(got)]
            self.assertEqual(counts, [{"open": 2}, {"open": 2, "failed": 1},
                                      {"open": 1, "success": 1, "failed": 1}], got)

    def test_an_idle_stream_gets_a_comment_every_15_seconds(self):
        with open_stream(self.second.port, "?wf=" + self.wf) as s:
            read_until(s, rb": batchy events\n\n", PROMPT)
            # (the comments of all streams share one clock: the first may
            # come sooner)
            for _ in range(2):
                read_until(s, rb"(^|\n):\n\n", 15 + PROMPT)

    def test_wf_filter(self):
        other = self.unique("ev_other")
        self.load(other, TWO)
        with open_stream(self.second.port, "?wf=%s,nothing_here" % self.wf) as s:
            read_until(s, rb": batchy events\n\n", PROMPT)
            self.ok("open_batch", other)
            self.ok("open_batch", self.wf)
            got = read_until(s, rb"data: .*\n\n", PROMPT)
            self.assertEqual([e["workflow"] for e in events_of(got)], [self.wf])

    def test_bad_wf_names_are_a_400(self):
        for bad in ("a,,b", ",", "x-12", "a/b", "%00"):
            r = self.second.get("/events?wf=" + bad)
            self.assertEqual(r.status, 400, (bad, r))

    def test_a_reader_that_does_not_read_is_cut(self):
        wf = self.unique("ev_slow_" + "x" * 90)
        self.load(wf, TWO)
        s = open_stream(self.second.port, "?wf=" + wf, rcvbuf=4096)
        try:
            read_until(s, rb": batchy events\n\n", PROMPT)
            # Events of ~250 bytes, never read meanwhile: far more than the
            # stream's 64 KiB and the sockets' buffers hold.
            conn = http.client.HTTPConnection("127.0.0.1", self.batchy.port, timeout=30 * SLOW)
            for i in range(2000):
                conn.request("GET", "/open_batch/" + wf)
                self.assertEqual(conn.getresponse().read()[:1], b"{")
            conn.close()
            # Read now: what was buffered, then the end, without the last
            # chunk that ends a stream cleanly.
            got, s_end = b"", time.monotonic() + PROMPT
            s.settimeout(PROMPT)
            try:
                while time.monotonic() < s_end:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    got += chunk
                else:
                    self.fail("the stream was never cut")
            except ConnectionResetError:
                pass
            except socket.timeout:
                self.fail("the stream was never cut")
            self.assertNotIn(b"\r\n0\r\n\r\n", got)
            self.assertLess(got.count(b"data: "), 2000)
        finally:
            s.close()
        self.assertEqual(self.second.get("/index").status, 200)


class StoppingAndRedisTest(OwnBatchyMixin, unittest.TestCase):
    """Held requests and streams at SIGTERM, and while Redis goes away."""

    cfg_files = {"w.yaml": TWO}

    def setUp(self):
        super().setUp()
        self.b = self.start_batchy()
        r = self.b.get("/load_cfg/w")
        self.assertEqual(r.status, 200, r)
        self.tag = self.b.get("/get_status/w").headers["etag"]

    def test_notices_are_heard_only_while_something_waits(self):
        def subscribers():
            out = self.redis.cli("PUBSUB", "NUMSUB", "batchy:changes:0").split()
            return int(out[-1])

        self.assertEqual(subscribers(), 0)  # nothing waits: writes publish to no one
        held = Held(self.b.port, "/get_status/w", self.tag, 600)
        self.assertEqual(wait_held(self.b, 1), 1)
        deadline = time.monotonic() + PROMPT
        while subscribers() != 1:
            self.assertLess(time.monotonic(), deadline, "never subscribed")
            time.sleep(0.02)
        self.assertEqual(self.b.get("/open_batch/w").status, 200)
        self.assertEqual(held.result(PROMPT).status, 200)

    def test_sigterm_answers_held_requests_and_ends_streams(self):
        helds = [Held(self.b.port, "/get_status/w", self.tag, 600) for _ in range(3)]
        s = open_stream(self.b.port)
        try:
            read_until(s, rb": batchy events\n\n", PROMPT)
            self.assertEqual(wait_held(self.b, 3), 3)
            self.b.send_signal(signal.SIGTERM)
            for h in helds:
                r = h.result(PROMPT)
                self.assertEqual(r.status, 304, r)
                self.assertEqual(r.headers["etag"], self.tag)
            read_until(s, rb"(^|\r\n)0\r\n\r\n$", PROMPT)  # the stream's last chunk
        finally:
            s.close()
        self.assertEqual(self.b.wait(STOP_TIMEOUT), 0)

    def test_held_requests_ignore_the_client_timeout(self):
        b = self.start_batchy(env={"BATCHY_CLIENT_TIMEOUT": "1"})
        held = Held(b.port, "/get_status/w", self.tag, 3)
        r = held.result(3 + PROMPT)
        self.assertEqual(r.status, 304, r)
        self.assertGreaterEqual(held.answered - held.sent, 3.0)

    def test_streams_ignore_the_client_timeout(self):
        b = self.start_batchy(env={"BATCHY_CLIENT_TIMEOUT": "1"})
        with open_stream(b.port, "?wf=w") as s:
            read_until(s, rb": batchy events\n\n", PROMPT)
            time.sleep(2.5)  # idle past the client timeout
            self.assertEqual(b.get("/open_batch/w").status, 200)
            got = read_until(s, rb"data: [^\n]*\n\n", PROMPT)
            self.assertEqual(events_of(got)[0]["counts"], {"open": 2})

    def test_redis_going_away_answers_503_and_notices_come_back(self):
        held = Held(self.b.port, "/get_status/w", self.tag, 600)
        self.assertEqual(wait_held(self.b, 1), 1)
        self.redis.stop()
        try:
            r = held.result(PROMPT)
            self.assertEqual(r.status, 503, r)
            self.assertIn("Redis", r.json()["error"])
        finally:
            self.redis.start()
        # the subscription is back by itself: a change through another
        # batchy wakes a request held on this one
        other = self.start_batchy()
        deadline = time.monotonic() + PROMPT
        while self.b.get("/healthz").json().get("notices") is not True:
            self.assertLess(time.monotonic(), deadline, "notices never came back")
            time.sleep(0.05)
        r = other.get("/load_cfg/w")
        self.assertEqual(r.status, 200, r)
        tag = self.b.get("/get_status/w").headers["etag"]
        held = Held(self.b.port, "/get_status/w", tag, 600)
        self.assertEqual(wait_held(self.b, 1), 1)
        self.assertEqual(other.get("/open_batch/w").status, 200)
        r = held.result(PROMPT)
        self.assertEqual(r.status, 200, r)


if __name__ == "__main__":
    unittest.main()
