"""The dashboard's files over HTTP (SPEC section 9): where they are served,
with what headers, from the binary or from --ui-dir. What the page does
in a browser is test_ui_browser.py's."""
import os
import re
import shutil
import tempfile
import unittest

from harness import HERE, OwnBatchyMixin, ServiceTestCase

UI_DIR = os.path.join(HERE, "..", "..", "batchy", "ui")


def ui_source(name):
    with open(os.path.join(UI_DIR, name), "rb") as f:
        return f.read()


class UiFilesTest(ServiceTestCase):

    def test_the_page_is_served_at_ui_and_for_each_workflow(self):
        for path in ("/ui", "/ui/", "/ui/sales_daily", "/ui/app.js"):  # app.js: a workflow's name
            r = self.batchy.get(path)
            self.assertEqual(r.status, 200, (path, r))
            self.assertEqual(r.headers["content-type"], "text/html; charset=utf-8", path)
            self.assertEqual(r.body, ui_source("index.html"), path)

    def test_its_files_are_under_a_path_no_workflow_can_take(self):
        for name, ctype in (("app.js", "text/javascript; charset=utf-8"),
                            ("app.css", "text/css; charset=utf-8")):
            r = self.batchy.get("/ui/-/" + name)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers["content-type"], ctype)
            self.assertEqual(r.body, ui_source(name))  # the binary's copy is the tree's
        for path in ("/ui/-/nope.js", "/ui/-/index.htm", "/ui/-/..", "/ui/-/a%2Fb",
                     "/ui/-/app.js/x", "/ui/a/b"):
            r = self.batchy.get(path)
            self.assertIn(r.status, (400, 404), (path, r))
            self.assertEqual(r.json().keys(), {"error"}, path)
        self.assertEqual(self.batchy.get("/ui/-").status, 400)  # not a workflow name

    def test_headers_forbid_inline_script_and_framing(self):
        for path in ("/ui", "/ui/wf1", "/ui/-/app.js", "/ui/-/app.css"):
            r = self.batchy.get(path)
            policy = r.headers["content-security-policy"]
            self.assertIn("script-src 'self'", policy)
            self.assertIn("default-src 'none'", policy)
            self.assertIn("frame-ancestors 'none'", policy)
            self.assertNotIn("unsafe-inline", policy)
            self.assertEqual(r.headers["x-content-type-options"], "nosniff")
            self.assertEqual(r.headers["referrer-policy"], "no-referrer")
        # the page holds no inline script or style for that policy to block
        page = ui_source("index.html").decode()
        self.assertNotIn("<script>", page)
        self.assertNotIn("<style", page)
        self.assertIsNone(re.search(r"\son[a-z]+\s*=|\sstyle\s*=", page))

    def test_read_only_methods_and_no_token(self):
        r = self.batchy.request("HEAD", "/ui")
        self.assertEqual((r.status, r.body), (200, b""))
        r = self.batchy.request("POST", "/ui")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.headers["allow"], "GET, HEAD")

    def test_healthz_says_whether_writes_need_the_token(self):
        self.assertIs(self.batchy.get("/healthz").json()["token"], False)


class UiTokenTest(ServiceTestCase):
    batchy_args = ("--token", "s3cret")

    def test_healthz_says_writes_need_the_token_and_the_page_needs_none(self):
        self.assertIs(self.batchy.get("/healthz").json()["token"], True)
        self.assertEqual(self.batchy.get("/ui").status, 200)


class UiDirTest(OwnBatchyMixin, unittest.TestCase):
    """--ui-dir: the files from a folder, as they are there, to work on
    them without building."""

    def test_files_come_from_the_folder(self):
        folder = tempfile.mkdtemp(prefix="batchy-ui-")
        self.addCleanup(shutil.rmtree, folder, True)
        for name in ("index.html", "app.css"):
            shutil.copy(os.path.join(UI_DIR, name), folder)
        with open(os.path.join(folder, "app.js"), "w") as f:
            f.write("/* edited */\n")
        b = self.start_batchy(args=("--ui-dir", folder))
        self.assertEqual(b.get("/ui/-/app.js").body, b"/* edited */\n")
        self.assertEqual(b.get("/ui").body, ui_source("index.html"))
        os.remove(os.path.join(folder, "app.css"))  # gone: said, and nothing else breaks
        r = b.get("/ui/-/app.css")
        self.assertEqual(r.status, 503, r)
        self.assertIn("app.css", r.json()["error"])
        self.assertEqual(b.get("/index").status, 200)
