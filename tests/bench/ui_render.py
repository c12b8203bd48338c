#!/usr/bin/python3
"""ui_render.py: how long the dashboard's overview of 1,000 workflows takes
to show in headless Chromium, from the page being opened to its table
drawn with every row (the page's own performance.now() at its first
rendering): the median of BENCH_UI_LOADS loads (5) after one to warm up;
then, the page open, how long a failure made through the API takes to
turn its row's badge red (BENCH_UI_LOADS times).
Run by Debian's /usr/bin/python3 (python3-selenium); bench.py runs it and
prints its line. Prints JSON."""
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("BATCHY_BIN", os.path.join(ROOT, "build", "batchy"))
import harness  # noqa: E402
from test_ui_browser import start_browser  # noqa: E402

WORKFLOWS = 1000
LOADS = int(os.environ.get("BENCH_UI_LOADS", "5"))


def main():
    redis = harness.RedisServer()
    batchy = driver = None
    try:
        redis.start()
        batchy = harness.Batchy(redis.url, None, args=("--quiet",)).start()
        redis.fill("wf", WORKFLOWS)
        driver = start_browser()
        times = []
        for i in range(LOADS + 1):
            driver.get("http://127.0.0.1:%d/ui" % batchy.port)
            deadline = time.monotonic() + 30
            while True:
                shown = driver.execute_script("return document.body.dataset.firstShown")
                if shown:
                    break
                if time.monotonic() > deadline:
                    sys.exit("ui_render: the overview did not show")
                time.sleep(0.01)
            rows = driver.execute_script("return document.querySelectorAll('tr.workflow').length")
            if rows != WORKFLOWS:
                sys.exit("ui_render: %d rows shown, not %d" % (rows, WORKFLOWS))
            if i:  # the first load warms the browser's caches up
                times.append(int(shown))
        times.sort()
        # A change while the overview is open: a step failed through the
        # API, to its row's red badge, without a reload (the page follows
        # /events).
        while "on" not in driver.execute_script(
                "return document.getElementById('live').className"):
            time.sleep(0.01)
        changes = []
        for i in range(LOADS):
            wf = "wf%05d" % (i * 5 + 1)  # fill's job2 of these is a success
            row = "document.querySelector('tr.workflow[data-name=\"%s\"] .badge.failed')" % wf
            if driver.execute_script("return " + row):
                sys.exit("ui_render: %s shows failed already" % wf)
            if batchy.get("/open_batch/%s?step=job2" % wf).status != 200:
                sys.exit("ui_render: open_batch refused")
            started = time.monotonic()
            if batchy.get("/fail_batch/%s?step=job2&error=x" % wf).status != 200:
                sys.exit("ui_render: fail_batch refused")
            while not driver.execute_script("return " + row):
                if time.monotonic() - started > 30:
                    sys.exit("ui_render: the failure did not show")
                time.sleep(0.005)
            changes.append(round((time.monotonic() - started) * 1000))
        changes.sort()
        print(json.dumps({"workflows": WORKFLOWS, "loads": times,
                          "median_ms": times[len(times) // 2], "changes": changes,
                          "change_median_ms": changes[len(changes) // 2]}))
    finally:
        if driver:
            driver.quit()
        if batchy:
            batchy.kill()
        redis.cleanup()


if __name__ == "__main__":
    main()
