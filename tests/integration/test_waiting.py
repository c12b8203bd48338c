"""Waiting without polling (SPEC section 10), the part that has landed:
get_status's ETag and conditional requests."""
import unittest

from harness import ServiceTestCase

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


if __name__ == "__main__":
    unittest.main()
