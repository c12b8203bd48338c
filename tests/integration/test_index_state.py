"""
test_index_state.py - scripts/index-state: state written without Batchy's
indexes (by the original Python service, or by an earlier Batchy) becomes
what every write through Batchy makes it.

- IndexStateTest: a workflow, its batch snapshots and a load snapshot,
  written with redis-cli as the original wrote them, are in neither
  GET /workflows nor GET /history before, and are after (history: exactly
  those batches, newest first); the script adds the three index keys and
  changes nothing else; run again it adds nothing and says so; --dry-run
  prints what it would add and writes nothing; keys that are not hashes,
  snapshots of a name that is not a workflow name, ids Batchy never writes,
  snapshots of a workflow that does not exist and batchy:* keys are left
  alone; more keys than one chunk are all indexed.
- RetentionAfterIndexTest: once indexed, the next open_batch of a batchy
  with BATCHY_KEEP_BATCHES=3 keeps exactly the 3 newest batch snapshots,
  and the next load_cfg the 10 newest load snapshots.
- CommandLineTest: a Redis that cannot be reached is exit 2 with a clear
  message; a usage error is 64; --help is 0.
"""
import json
import os
import subprocess
import unittest

from harness import REPO_ROOT, OwnBatchyMixin, ServiceTestCase, free_port

INDEX_STATE = os.path.join(REPO_ROOT, "scripts", "index-state")
# Batch ids and times as the original wrote them (2016, whole seconds).
DAY = 86400
FIRST = 1451692740


def run_index_state(*args):
    """(exit status, stdout, stderr) of scripts/index-state ARGS."""
    out = subprocess.run([INDEX_STATE] + list(args), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=120)
    return (out.returncode, out.stdout.decode("utf-8", "replace"),
            out.stderr.decode("utf-8", "replace"))


def py_json(obj):
    """A record as the original's json.dumps wrote it."""
    return json.dumps(obj)


def legacy_record(batch_id, status="success"):
    """A step of batch batch_id (FIRST + k days) as the original wrote it."""
    day = 1 + (batch_id - FIRST) // DAY
    return {"status": status, "from_date": "2015-12-31 23:59", "batch_id": batch_id,
            "batch_start": "2016-01-%02dT23:59:00" % day,
            "batch_end": "2016-01-%02dT23:59:30" % day, "param1": "hello"}


def write_original(redis, wf, ids, inits=(FIRST - 3600,)):
    """What the original left in Redis for wf: the workflow hash (its last
    batch), a snapshot <wf>-<id> per batch and <wf>-<epoch>-init per load,
    written with redis-cli, no index."""
    for bid in ids:
        redis.set_state("%s-%d" % (wf, bid), {"job1": py_json(legacy_record(bid)),
                                              "job2": py_json(legacy_record(bid, "failure"))})
    for epoch in inits:
        redis.set_state("%s-%d-init" % (wf, epoch), {"job1": py_json({"param1": "hello",
                                                                      "status": "new"})})
    last = max(ids)
    redis.set_state(wf, {"job1": py_json(legacy_record(last)),
                         "job2": py_json(legacy_record(last, "failure"))})


def summary(out):
    """{"workflows": (indexed, already), "batch snapshots": ..., "load snapshots": ...}
    from the summary lines."""
    counts = {}
    for line in out.splitlines():
        what, sep, rest = line.partition(":")
        if sep and what in ("workflows", "batch snapshots", "load snapshots"):
            words = rest.replace(",", "").split()
            counts[what] = (int(words[0]), int(words[words.index("already") - 1]))
    return counts


class IndexStateTest(ServiceTestCase):

    def setUp(self):
        # each test counts what the whole database holds
        self.redis.cli("FLUSHDB")

    def index(self, *args):
        rc, out, err = run_index_state(*(list(args) + [self.redis.url]))
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(err, "")
        return out

    def history_ids(self, wf):
        doc = self.ok("history", wf, {"limit": 1000})
        self.assertIsNone(doc["next_before"])
        return [b["batch_id"] for b in doc["batches"]]

    def listed(self):
        r = self.batchy.get("/workflows")
        self.assertEqual(r.status, 200, r)
        return {w["name"]: w for w in r.json()["workflows"]}

    def test_original_state_is_listed_and_has_its_history_after_indexing(self):
        wf = self.unique("orig")
        ids = [FIRST + DAY * k for k in (3, 0, 4, 1, 2)]
        epoch = FIRST - 3600
        write_original(self.redis, wf, ids, inits=(epoch,))
        # and one written by Batchy, indexed already
        mine = self.unique("mine")
        self.load(mine, "job1:\n  p: 1\n")
        self.ok("open_batch", mine)
        self.assertEqual(self.history_ids(wf), [])
        self.assertNotIn(wf, self.listed())
        self.assertIn(mine, self.listed())
        before = self.redis.dump()

        out = self.index()
        self.assertEqual(summary(out), {"workflows": (1, 1), "batch snapshots": (5, 1),
                                        "load snapshots": (1, 1)}, out)
        self.assertIn("nothing was deleted", out)
        self.assertIn("next write through Batchy", out)

        self.assertEqual(self.history_ids(wf), sorted(ids, reverse=True))
        batch = self.ok("history", wf)["batches"][0]
        self.assertEqual(batch["steps"]["job1"]["status"], "success")
        self.assertEqual(batch["steps"]["job2"]["status"], "failed")
        row = self.listed()[wf]
        self.assertEqual(row["steps"], 2)
        self.assertEqual(row["batch_id"], max(ids))
        self.assertEqual(row["counts"], {"success": 1, "failed": 1})
        # the three indexes of wf were added; nothing else changed
        after = self.redis.dump()
        added = {k for k in after if k not in before}
        self.assertEqual(added, {"batchy:batches:" + wf, "batchy:inits:" + wf})
        for key, value in before.items():
            if key != "batchy:workflows":
                self.assertEqual(after[key], value, key)
        self.assertEqual(sorted(self.redis.cli("SMEMBERS", "batchy:workflows").split()),
                         sorted([wf, mine]))
        self.assertEqual(self.redis.cli("ZRANGE", "batchy:inits:" + wf, "0", "-1", "WITHSCORES")
                         .split(), [str(epoch), str(epoch)])
        self.assertEqual(self.redis.cli("ZRANGE", "batchy:batches:" + wf, "0", "-1").split(),
                         [str(i) for i in sorted(ids)])

    def test_a_second_run_changes_nothing_and_says_so(self):
        wf = self.unique("twice")
        write_original(self.redis, wf, [FIRST, FIRST + DAY])
        first = self.index()
        self.assertEqual(summary(first), {"workflows": (1, 0), "batch snapshots": (2, 0),
                                          "load snapshots": (1, 0)}, first)
        before = self.redis.dump()
        out = self.index()
        self.assertEqual(self.redis.dump(), before)
        self.assertEqual(summary(out), {"workflows": (0, 1), "batch snapshots": (0, 2),
                                        "load snapshots": (0, 1)}, out)
        self.assertIn("nothing to add: every workflow and snapshot found was already indexed",
                      out)
        self.assertNotIn("would add", out)

    def test_dry_run_prints_what_it_would_add_and_writes_nothing(self):
        wf = self.unique("dry")
        ids = [FIRST, FIRST + DAY, FIRST + 2 * DAY]
        write_original(self.redis, wf, ids, inits=(FIRST - 60,))
        before = self.redis.dump()
        out = self.index("--dry-run")
        self.assertEqual(self.redis.dump(), before, "--dry-run wrote to Redis")
        lines = [line for line in out.splitlines() if line.startswith("would add ")]
        self.assertEqual(sorted(lines), sorted(
            ["would add %s to batchy:workflows" % wf,
             "would add %s-%d-init to batchy:inits:%s" % (wf, FIRST - 60, wf)] +
            ["would add %s-%d to batchy:batches:%s" % (wf, i, wf) for i in ids]))
        self.assertEqual(summary(out), {"workflows": (1, 0), "batch snapshots": (3, 0),
                                        "load snapshots": (1, 0)}, out)
        self.assertIn("dry run: nothing was written", out)
        self.assertEqual(self.history_ids(wf), [])
        # what it said is what a real run does
        self.assertEqual(summary(self.index()), summary(out))
        self.assertEqual(self.history_ids(wf), sorted(ids, reverse=True))
        # and a dry run after that has nothing to add
        self.assertEqual(summary(self.index("--dry-run")), {
            "workflows": (0, 1), "batch snapshots": (0, 3), "load snapshots": (0, 1)})

    def test_keys_that_are_not_batchy_hashes_are_left_alone(self):
        wf = self.unique("real")
        write_original(self.redis, wf, [FIRST], inits=())
        r = self.redis
        r.cli("SET", "plain_string", "x")                    # a workflow name, not a hash
        r.cli("RPUSH", "%s-%d" % (wf, FIRST + DAY), "x")     # a snapshot name, a list
        r.cli("SADD", "%s-%d-init" % (wf, FIRST), "x")       # a load snapshot name, a set
        r.cli("HSET", "orders-2024-5", "job1", "{}")         # of "orders-2024": not a name
        r.cli("HSET", "orders-2024-5-init", "job1", "{}")
        r.cli("HSET", "bad name-5", "job1", "{}")            # of "bad name": not a name
        r.cli("HSET", "-5", "job1", "{}")
        r.cli("HSET", "%s-007" % wf, "job1", "{}")           # an id Batchy never writes
        r.cli("HSET", "%s-1000000000000000" % wf, "job1", "{}")
        r.cli("HSET", "nosuchwf-5", "job1", "{}")            # its workflow does not exist
        r.cli("HSET", "nosuchwf-5-init", "job1", "{}")
        r.cli("HSET", "batchy:foo", "job1", "{}")            # Batchy's, not a workflow
        r.cli("HSET", "has:colon", "job1", "{}")             # not a workflow name
        r.cli("HSET", "caf\u00e9", "job1", "{}")
        before = self.redis.dump()
        out = self.index()
        self.assertEqual(summary(out), {"workflows": (1, 0), "batch snapshots": (1, 0),
                                        "load snapshots": (0, 0)}, out)
        self.assertEqual(r.keys("batchy:*"),
                         sorted(["batchy:workflows", "batchy:batches:" + wf, "batchy:foo"]))
        self.assertEqual(r.cli("SMEMBERS", "batchy:workflows"), wf)
        self.assertEqual(r.cli("ZRANGE", "batchy:batches:" + wf, "0", "-1"), str(FIRST))
        after = self.redis.dump()
        for key, value in before.items():
            self.assertEqual(after[key], value, key)
        for key, why in [
                ("plain_string", "a string, not a hash"),
                ("%s-%d" % (wf, FIRST + DAY), "a list, not a hash"),
                ("%s-%d-init" % (wf, FIRST), "a set, not a hash"),
                ("orders-2024-5", "a batch snapshot of 'orders-2024', which is not a workflow"),
                ("orders-2024-5-init", "a load snapshot of 'orders-2024', which is not a "),
                ("bad name-5", "of 'bad name', which is not a workflow name"),
                ("-5", "of '', which is not a workflow name"),
                ("%s-007" % wf, "id Batchy never writes (007"),
                ("%s-1000000000000000" % wf, "id Batchy never writes"),
                ("nosuchwf-5", "a workflow that does not exist"),
                ("nosuchwf-5-init", "a workflow that does not exist")]:
            self.assertIn("left alone: %s: " % key, out)
            line = [x for x in out.splitlines() if x.startswith("left alone: %s: " % key)][0]
            self.assertIn(why, line)
        self.assertIn("left alone: 11 keys named like Batchy's (see above), 2 other keys (not "
                      "workflow or snapshot names), 1 index keys (batchy:*)", out)
        self.assertEqual(self.history_ids(wf), [FIRST])
        # once the workflow exists, its snapshots are indexed by the next run
        r.cli("HSET", "nosuchwf", "job1", py_json({"status": "new"}))
        out = self.index()
        self.assertEqual(summary(out), {"workflows": (1, 1), "batch snapshots": (1, 1),
                                        "load snapshots": (1, 0)}, out)
        self.assertEqual(self.history_ids("nosuchwf"), [5])

    def test_an_index_key_of_the_wrong_type_is_exit_1_and_named(self):
        wf = self.unique("wrongidx")
        write_original(self.redis, wf, [FIRST], inits=(FIRST - 60,))
        self.redis.cli("SET", "batchy:inits:" + wf, "x")
        rc, out, err = run_index_state(self.redis.url)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("left alone: %s-%d-init: its index batchy:inits:%s is a string, not a "
                      "sorted set: fix that key by hand, then run this again"
                      % (wf, FIRST - 60, wf), out)
        self.assertEqual(summary(out), {"workflows": (1, 0), "batch snapshots": (1, 0),
                                        "load snapshots": (0, 0)}, out)
        self.assertEqual(self.redis.cli("GET", "batchy:inits:" + wf), "x")
        self.redis.cli("DEL", "batchy:inits:" + wf)
        rc, out, err = run_index_state(self.redis.url)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(summary(out), {"workflows": (0, 1), "batch snapshots": (0, 1),
                                        "load snapshots": (1, 0)}, out)

    def test_a_redis_that_refuses_writes_is_exit_2(self):
        wf = self.unique("nowrite")
        write_original(self.redis, wf, [FIRST])
        self.redis.cli("CONFIG", "SET", "min-replicas-to-write", "1")
        self.addCleanup(self.redis.cli, "CONFIG", "SET", "min-replicas-to-write", "0")
        before = self.redis.dump()
        rc, out, err = run_index_state(self.redis.url)
        self.assertEqual(rc, 2, out + err)
        self.assertIn("index-state: cannot write the indexes: NOREPLICAS", err)
        self.assertIn("Run this again", err)
        self.assertEqual(self.redis.dump(), before)
        # a dry run only reads: it still answers
        self.assertEqual(summary(self.index("--dry-run"))["batch snapshots"], (1, 0))

    def test_more_keys_than_one_chunk_are_all_indexed(self):
        wf = self.unique("big")
        write_original(self.redis, wf, [FIRST], inits=())
        # 1,200 more snapshots, and 30 workflows: more than a chunk of each
        self.redis.cli("EVAL", "for i = 1, 1200 do redis.call('HSET', ARGV[1] .. '-' .. "
                       "(tonumber(ARGV[2]) + i), 'job1', '{}') end "
                       "for i = 1, 600 do redis.call('HSET', 'w' .. i, 'job1', '{}') end",
                       "0", wf, str(FIRST))
        out = self.index()
        self.assertEqual(summary(out), {"workflows": (601, 0), "batch snapshots": (1201, 0),
                                        "load snapshots": (0, 0)}, out)
        self.assertEqual(self.redis.cli("ZCARD", "batchy:batches:" + wf), "1201")
        self.assertEqual(self.redis.cli("SCARD", "batchy:workflows"), "601")
        page = self.ok("history", wf, {"limit": 2})
        self.assertEqual([b["batch_id"] for b in page["batches"]], [FIRST + 1200, FIRST + 1199])


class RetentionAfterIndexTest(OwnBatchyMixin, unittest.TestCase):
    cfg_files = {"legacy.yaml": "job1:\n  param1: hello\njob2:\n  param1: hello\n"}

    def test_the_next_writes_trim_what_was_indexed(self):
        ids = [FIRST + DAY * k for k in range(6)]
        inits = [FIRST - 3600 * (k + 1) for k in range(12)]
        write_original(self.redis, "legacy", ids, inits=inits)
        rc, out, err = run_index_state(self.redis.url)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(summary(out), {"workflows": (1, 0), "batch snapshots": (6, 0),
                                        "load snapshots": (12, 0)}, out)
        # the script itself deleted nothing
        self.assertEqual(len(self.redis.keys("legacy-*")), 18)

        b = self.start_batchy(env={"BATCHY_KEEP_BATCHES": "3"})
        r = b.get("/open_batch/legacy")
        self.assertEqual(r.status, 200, r)
        new = r.json()["job1"]["batch_id"]
        self.assertGreater(new, max(ids))
        kept = sorted(ids + [new])[-3:]
        snaps = [k for k in self.redis.keys("legacy-*") if not k.endswith("-init")]
        self.assertEqual(sorted(int(k.split("-")[1]) for k in snaps), kept)
        self.assertEqual(self.redis.cli("ZRANGE", "batchy:batches:legacy", "0", "-1").split(),
                         [str(i) for i in kept])
        h = b.get("/history/legacy")
        self.assertEqual(h.status, 200, h)
        self.assertEqual([x["batch_id"] for x in h.json()["batches"]], kept[::-1])

        self.assertEqual(len(self.redis.keys("legacy-*-init")), 12)
        r = b.get("/load_cfg/legacy?keep=state")
        self.assertEqual(r.status, 200, r)
        left = sorted(int(k.split("-")[1]) for k in self.redis.keys("legacy-*-init"))
        self.assertEqual(len(left), 10, left)
        self.assertEqual(left[:9], sorted(inits)[-9:])  # and the one just written
        self.assertEqual(int(self.redis.cli("ZCARD", "batchy:inits:legacy")), 10)


class CommandLineTest(unittest.TestCase):

    def test_a_redis_that_cannot_be_reached_is_exit_2(self):
        url = "redis://127.0.0.1:%d/0" % free_port()
        for args in ([url], ["--dry-run", url]):
            rc, out, err = run_index_state(*args)
            self.assertEqual(rc, 2, out + err)
            self.assertIn("index-state: cannot read Redis: Could not connect to Redis", err)
            self.assertEqual(out, "")

    def test_usage_errors_are_exit_64_and_help_is_0(self):
        for args in (["--bogus"], ["redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"],
                     ["http://127.0.0.1:6379/"]):
            rc, out, err = run_index_state(*args)
            self.assertEqual(rc, 64, (args, out, err))
            self.assertIn("usage: scripts/index-state [--dry-run] [REDIS_URL]", err)
            self.assertEqual(out, "")
        rc, out, err = run_index_state("--help")
        self.assertEqual(rc, 0, err)
        self.assertIn("--dry-run", out)
        self.assertIn("Exit status", out)


if __name__ == "__main__":
    unittest.main()
