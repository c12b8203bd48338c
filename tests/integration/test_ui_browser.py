"""The dashboard in a real browser: Debian's headless Chromium, driven by
Selenium (python3-selenium, which Debian's /usr/bin/python3 has: the test
command runs the integration tests with it). Against a real Batchy and
Redis: the overview, a change shown without a reload, the history's pages,
text from Redis that must not run, the layout on a phone and a wide
screen in light and dark, and the actions behind the token.

Slow and end to end: not run again in the sanitizer and valgrind rounds
(run.py leaves END_TO_END modules out with BATCHY_END_TO_END=0)."""
import json
import os
import shutil
import struct
import subprocess
import time
import unittest

from harness import HERE, PROMPT, ServiceTestCase, batchy_bin

END_TO_END = True
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def start_browser(width=1440, height=900):
    """A headless Chromium; fails (never skips) when it is not installed."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        raise AssertionError("python3-selenium missing (%s): run scripts/deps.sh, and the tests "
                             "with /usr/bin/python3" % e)
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            raise AssertionError("%s missing: run scripts/deps.sh" % path)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--window-size=%d,%d" % (width, height)):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


class BrowserCase(ServiceTestCase):
    """One browser per class, on this class's Batchy."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.driver = start_browser()
        except BaseException:
            cls._cleanup_class()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.driver.quit()
        finally:
            super().tearDownClass()

    def setUp(self):
        self.driver.get_log("browser")  # what earlier tests left: theirs

    def tearDown(self):
        # No console errors on any page a test visited (a CSP violation
        # or a script error shows there).
        errors = [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]
        self.assertEqual(errors, [])

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.batchy.port, path)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def wait_for(self, script, what, timeout=PROMPT, *args):
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js("return " + script, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail("%s: not within %ss" % (what, timeout))
            time.sleep(0.02)

    def visit(self, path):
        self.driver.get(self.url(path))
        self.wait_for("document.body.dataset.refreshed", "the page's first rendering")


class DashboardTest(BrowserCase):

    def test_the_overview_lists_every_workflow_with_its_badges(self):
        a, b = self.unique("ui_a"), self.unique("ui_b")
        self.load(a, "job1:\n  p: 1\njob2:\n  q: x\n")
        self.load(b, "job1:\n  p: 1\n")
        self.ok("open_batch", b)
        self.visit("/ui")
        rows = self.js("return [...document.querySelectorAll('tr.workflow')]"
                       ".map(r => [r.dataset.name, r.querySelector('.status').innerText])")
        got = dict(rows)
        self.assertEqual(got[a], "2 new")
        self.assertEqual(got[b], "1 open")
        # filter by name, then by status, as the URL keeps them
        box = self.driver.find_element("id", "filter")
        box.send_keys(a)
        self.wait_for("document.querySelectorAll('tr.workflow').length === 1", "filtered")
        self.assertIn("q=" + a, self.driver.current_url)

    def test_a_fail_turns_its_row_red_without_a_reload(self):
        wf = self.unique("ui_live")
        self.load(wf, "job1:\n  p: 1\n")
        self.ok("open_batch", wf)
        self.visit("/ui")
        self.wait_for("document.getElementById('live').className.includes('on')", "live")
        self.js("window.notReloaded = true")
        row = "document.querySelector('tr.workflow[data-name=\"%s\"]')" % wf
        self.assertIsNone(self.js("return %s.querySelector('.badge.failed')" % row))
        started = time.monotonic()
        self.ok("fail_batch", wf, {"error": "disk full"})
        self.wait_for("%s.querySelector('.badge.failed') && %s.classList.contains('failed')"
                      % (row, row), "the failed badge")
        seconds = time.monotonic() - started
        self.assertIs(self.js("return window.notReloaded"), True)
        # failed workflows come first
        first = self.js("return document.querySelector('tr.workflow').dataset.name")
        self.assertEqual(first, wf)
        print("\n    fail -> red badge in %.0f ms" % (seconds * 1000), end=" ")

    def test_the_workflow_page_shows_its_steps_and_pages_back_through_history(self):
        wf = self.unique("ui_hist")
        self.load(wf, "job1:\n  p: 1\n  expected_by: \"23:59\"\njob2:\n  q: x\n")
        for i in range(23):
            self.ok("open_batch", wf)
            self.ok("close_batch", wf, {"step": "job1"})
            if i == 1:  # on the second page: the 22nd newest
                self.ok("fail_batch", wf, {"step": "job2", "error": "bad file %d" % i})
            else:
                self.ok("close_batch", wf, {"step": "job2", "rows": str(i)})
        self.visit("/ui/" + wf)
        steps = self.js("return [...document.querySelectorAll('tr.step')].map(r => r.dataset.step)")
        self.assertEqual(steps, ["job1", "job2"])
        job2 = self.js("return document.querySelector('tr.step[data-step=job2]').innerText")
        self.assertIn("rows = 22", job2)
        self.assertIn("success", job2)
        history = self.redis.cli("ZREVRANGE", "batchy:batches:" + wf, "0", "-1").split("\n")
        shown = self.js("return [...document.querySelectorAll('tr.batch')].map(r => r.dataset.batch)")
        self.assertEqual(shown, history[:20])
        self.driver.find_element("id", "older").click()
        self.wait_for("document.querySelectorAll('tr.batch').length === 3", "the second page")
        shown = self.js("return [...document.querySelectorAll('tr.batch')].map(r => r.dataset.batch)")
        self.assertEqual(shown, history[20:])
        failed = self.js("return [...document.querySelectorAll('tr.batch.failed')]"
                         ".map(r => r.innerText)")
        self.assertEqual(len(failed), 1)
        self.assertIn("bad file 1", failed[0])
        self.driver.find_element("id", "newer").click()
        self.wait_for("document.querySelectorAll('tr.batch').length === 20", "the first page")

    def test_text_from_redis_is_shown_as_text_and_never_runs(self):
        wf = self.unique("ui_xss")
        evil = ['<img src=x onerror="window.pwned=1">', "<script>window.pwned=2</script>"]
        self.load(wf, "".join("%s:\n  note: '<b onmouseover=window.pwned=3>x</b>'\n" % json.dumps(s)
                              for s in evil))
        self.ok("open_batch", wf)
        self.ok("fail_batch", wf, {"step": evil[0], "error": "<img src=y onerror=window.pwned=4>"})
        for path in ("/ui", "/ui/" + wf):
            self.visit(path)
            time.sleep(0.3)  # long enough for an image's onerror, had one been made
            self.assertIsNone(self.js("return window.pwned"))
            self.assertEqual(self.js("return document.querySelectorAll('main img, main b, "
                                     "main script').length"), 0)
        text = self.js("return document.getElementById('main').innerText")
        for s in evil + ["<img src=y onerror=window.pwned=4>", "<b onmouseover=window.pwned=3>x</b>"]:
            self.assertIn(s, text)


class LayoutTest(BrowserCase):
    """A phone (390 px) and a wide screen (1440 px), light and dark: no
    horizontal scrolling, every workflow's name in view."""

    def test_phone_and_wide_light_and_dark(self):
        long_name = "l" * 60 + "_" + "x" * 60
        for wf in (long_name, self.unique("lay"), self.unique("lay")):
            self.load(wf, "a_step_with_a_long_name_%s:\n  p: 1\njob2:\n  q: x\n" % ("z" * 40))
            self.ok("open_batch", wf)
            self.ok("fail_batch", wf, {"step": "job2", "error": "a long error " * 20})
        backgrounds = {}
        for width in (390, 1440):
            for scheme in ("light", "dark"):
                self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                    "width": width, "height": 844, "deviceScaleFactor": 1, "mobile": width < 600})
                self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
                    "features": [{"name": "prefers-color-scheme", "value": scheme}]})
                for path in ("/ui", "/ui/" + long_name):
                    self.visit(path)
                    where = "%s at %d px, %s" % (path, width, scheme)
                    self.assertLessEqual(
                        self.js("return document.documentElement.scrollWidth"),
                        self.js("return document.documentElement.clientWidth"), where)
                    if path == "/ui":
                        names = self.js("""return [...document.querySelectorAll('a.name')].map(a => {
                            const r = a.getBoundingClientRect();
                            return [a.textContent, r.width > 0 && r.left >= 0 &&
                                    r.right <= document.documentElement.clientWidth];
                        })""")
                        self.assertEqual(len(names), 3, where)
                        self.assertTrue(all(ok for _, ok in names), (where, names))
                backgrounds[(width, scheme)] = self.js(
                    "return getComputedStyle(document.body).backgroundColor")
        self.assertNotEqual(backgrounds[(390, "light")], backgrounds[(390, "dark")])
        self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


class WithoutEventsTest(BrowserCase):
    """A browser without EventSource (or a proxy that breaks it): the page
    refreshes itself."""

    def test_the_page_polls_and_still_shows_changes(self):
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                    {"source": "delete window.EventSource;"})
        wf = self.unique("ui_poll")
        self.load(wf, "job1:\n  p: 1\n")
        self.visit("/ui/" + wf)
        self.assertIn("refreshing every", self.js("return document.getElementById('live').textContent"))
        self.ok("open_batch", wf)
        self.wait_for("document.querySelector('tr.step .badge.open')", "the open step", PROMPT + 6)


class ActionsTest(BrowserCase):
    batchy_args = ("--token", "s3cret")

    def test_actions_need_the_token_which_stays_out_of_urls_and_storage(self):
        wf = self.unique("ui_act")
        self.write_cfg(wf, "job1:\n  p: 1\njob2:\n  q: x\n")
        self.ok("load_cfg", wf, {"token": "s3cret"})  # the access log keeps no query
        self.ok("open_batch", wf, {"token": "s3cret"})
        self.visit("/ui/" + wf)
        self.assertEqual(self.js("return document.querySelectorAll('tr.step button').length"), 0)
        unlock = self.driver.find_element("id", "unlock")
        self.assertTrue(unlock.is_displayed())
        unlock.click()
        self.driver.find_element("id", "dialog-input").send_keys("s3cret")
        self.driver.find_element("id", "dialog-ok").click()
        self.wait_for("document.querySelector('tr.step[data-step=job1] button')", "the actions")
        # close job1: the dialog says what it does, then it is done
        self.js("[...document.querySelectorAll('tr.step[data-step=job1] button')]"
                ".find(b => b.textContent === 'Close').click()")
        said = self.wait_for("document.getElementById('dialog').open && "
                             "document.getElementById('dialog-text').textContent", "the question")
        self.assertIn("close_batch", said)
        self.assertIn("job1", said)
        self.driver.find_element("id", "dialog-ok").click()
        self.wait_for("document.querySelector('tr.step[data-step=job1] .badge.success')",
                      "job1 closed")
        self.assertEqual(self.redis.hash_json(wf)["job1"]["status"], "success")
        # fail job2 with the message typed in
        self.js("[...document.querySelectorAll('tr.step[data-step=job2] button')]"
                ".find(b => b.textContent === 'Fail').click()")
        self.wait_for("document.getElementById('dialog').open", "the question")
        box = self.driver.find_element("id", "dialog-input")
        box.clear()
        box.send_keys("stuck since 3 a.m.")
        self.driver.find_element("id", "dialog-ok").click()
        self.wait_for("document.querySelector('tr.step[data-step=job2] .badge.failed')",
                      "job2 failed")
        self.assertEqual(self.redis.hash_json(wf)["job2"]["error_message"], "stuck since 3 a.m.")
        # cancelling does nothing
        before = self.redis.dump()
        self.js("[...document.querySelectorAll('tr.step[data-step=job2] button')]"
                ".find(b => b.textContent === 'Rewind').click()")
        self.wait_for("document.getElementById('dialog').open", "the question")
        self.driver.find_element("id", "dialog-cancel").click()
        time.sleep(0.2)
        self.assertEqual(self.redis.dump(), before)
        # the token went in headers only: not in a URL, not in storage
        self.assertNotIn("s3cret", self.driver.current_url)
        self.assertEqual(self.js("return localStorage.length + sessionStorage.length"), 0)
        self.assertNotIn("s3cret", self.batchy.log_tail(1000))


class ScreenshotsTest(unittest.TestCase):
    """scripts/screenshots, which makes the README's: eight PNG files of
    the right sizes, written only where it is told (here, the build
    folder), never over the tracked ones."""

    def test_the_script_writes_its_pngs_under_the_build_folder(self):
        root = os.path.dirname(os.path.dirname(HERE))
        tracked = os.path.join(root, "docs", "screenshots")
        before = {n: os.stat(os.path.join(tracked, n)).st_mtime_ns for n in os.listdir(tracked)}
        out = os.path.join(os.path.dirname(os.path.abspath(batchy_bin())), "screenshots-test")
        shutil.rmtree(out, ignore_errors=True)
        p = subprocess.run(["/usr/bin/python3", os.path.join(root, "scripts", "screenshots"), out],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stdout.decode())
        sizes = {}
        for name in os.listdir(out):
            with open(os.path.join(out, name), "rb") as f:
                head = f.read(24)
            self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n", name)
            sizes[name] = struct.unpack(">II", head[16:24])
        want = {}
        for page in ("overview", "workflow"):
            for screen, size in (("wide", (1440, 900)), ("phone", (390, 844))):
                for scheme in ("light", "dark"):
                    want["%s-%s-%s.png" % (page, screen, scheme)] = size
        self.assertEqual(sizes, want)
        after = {n: os.stat(os.path.join(tracked, n)).st_mtime_ns for n in os.listdir(tracked)}
        self.assertEqual(after, before)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
