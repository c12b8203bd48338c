#!/usr/bin/env python3
"""
run.py - run the integration tests against a real redis-server and batchy.

    BATCHY_BIN=build/batchy /usr/bin/python3 tests/integration/run.py [FILTER...]

A FILTER is a module name (test_api), a class (test_api.IndexTest) or any part
of a test name (open_after_failure); a test runs when its id contains any of
them. With BATCHY_VALGRIND=1 batchy runs under valgrind.

`-j N` (or BATCHY_TEST_JOBS=N) runs each test class in a process of its own,
N at a time (every class has its own redis-server and batchy, so they do not
meet). Most tests wait on processes and timeouts, so two at a time take
about half as long even on two cores. The reports are printed in order when
all are done, then the total.

The browser tests (test_ui_browser.py) need Debian's python3-selenium: run
this with /usr/bin/python3. BATCHY_END_TO_END=0 leaves out the slow end-to-end
modules (END_TO_END = True: the browser's, the Sentinel failovers'), as the
sanitizer and valgrind rounds of scripts/test.sh do.

The last line is `N passed, N failed` (`, N skipped` when some were); the exit
status is 1 when anything failed or errored (a class whose set-up failed
counts all its tests as failed; a failed clean stop of batchy counts once).
"""
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402  (from HERE)


def flatten(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from flatten(item)
        else:
            yield item


class Result(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.outcome = {}
        self.fixture_errors = 0
        self.test_started = time.monotonic()
        self.first_batchy = 0

    def startTest(self, test):
        super().startTest(test)
        self.test_started = time.monotonic()
        self.first_batchy = len(harness.ALL_BATCHY)

    def _report(self, test):
        """After a failure: the test's time, the machine's load and the
        service logs (harness.failure_report), appended to the failure's
        text so that the summary shows them with the traceback."""
        if not isinstance(test, unittest.TestCase):
            return
        report = harness.failure_report(test, time.monotonic() - self.test_started,
                                        self.first_batchy)
        for listing in (self.failures, self.errors):
            if listing and listing[-1][0] is test:
                listing[-1] = (test, listing[-1][1] + report)
                return

    def _mark(self, test, what):
        if isinstance(test, unittest.TestCase):
            if self.outcome.get(test.id()) != "fail":
                self.outcome[test.id()] = what
        else:  # a class or module fixture (setUpClass / tearDownClass)
            self.fixture_errors += 1

    def addSuccess(self, test):
        super().addSuccess(test)
        self._mark(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._mark(test, "fail")
        self._report(test)

    def addError(self, test, err):
        super().addError(test, err)
        self._mark(test, "fail")
        self._report(test)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.outcome[test.id()] = "fail"
            self._report(subtest)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._mark(test, "skip")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._mark(test, "pass")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._mark(test, "fail")


def option_value(argv, name):
    """The value of `name N` or `nameN` in argv (and argv without it)."""
    rest, value = [], None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == name and i + 1 < len(argv):
            value = argv[i + 1]
            i += 2
            continue
        if a.startswith(name) and a != name:
            value = a[len(name):]
        else:
            rest.append(a)
        i += 1
    return value, rest


def run_sharded(tests, jobs, verbosity):
    """Run each test class in a child process of its own, `jobs` at a time,
    the classes with most tests first (a rough guess of the longest); print
    the reports in order of discovery. Returns the exit status."""
    classes = []
    for t in tests:
        cls = t.id().rsplit(".", 1)[0]
        if not classes or classes[-1][0] != cls:
            classes.append((cls, []))
        classes[-1][1].append(t.id())
    queue = sorted(range(len(classes)), key=lambda i: -len(classes[i][1]))
    started = time.monotonic()
    passed = failed = skipped = 0
    status = 0
    with tempfile.TemporaryDirectory(prefix="batchy-shards-") as tmp:
        def path(kind, i):
            return os.path.join(tmp, "%s.%d" % (kind, i))

        running = {}
        while queue or running:
            while queue and len(running) < jobs:
                i = queue.pop(0)
                with open(path("ids", i), "w") as f:
                    f.write("\n".join(classes[i][1]) + "\n")
                cmd = [sys.executable, os.path.abspath(__file__), "--ids", path("ids", i)]
                if verbosity < 2:
                    cmd.append("-q")
                with open(path("out", i), "w") as out, open(path("err", i), "w") as err:
                    running[i] = subprocess.Popen(cmd, stdout=out, stderr=err,
                                                  stdin=subprocess.DEVNULL)
            for i, proc in list(running.items()):
                if proc.poll() is not None:
                    del running[i]
                    if proc.returncode != 0:
                        status = 1
            time.sleep(0.02)
        for i, (name, _) in enumerate(classes):
            with open(path("err", i)) as f:
                sys.stderr.write(f.read())
            with open(path("out", i)) as f:
                words = f.read().replace(",", "").split()
            if len(words) >= 4 and words[1] == "passed":
                passed += int(words[0])
                failed += int(words[2])
                if "skipped" in words:
                    skipped += int(words[words.index("skipped") - 1])
            else:  # the child died before its summary: count it
                sys.stderr.write("%s: the test process ended without a summary\n" % name)
                failed += 1
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    sys.stderr.write("integration tests took %.1fs, %d classes in %d processes at a time\n"
                     % (time.monotonic() - started, len(classes), jobs))
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return 1 if failed or status else 0


def main(argv):
    jobs, argv = option_value(argv, "-j")
    jobs = int(jobs or os.environ.get("BATCHY_TEST_JOBS") or 1)
    ids_file, argv = option_value(argv, "--ids")
    filters = [a for a in argv if not a.startswith("-")]
    verbosity = 1 if "-q" in argv else 2
    loader = unittest.TestLoader()
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    if ids_file:  # one process of a -j run: exactly these tests
        with open(ids_file) as f:
            only = [line.strip() for line in f if line.strip()]
        by_id = {t.id(): t for t in flatten(suite)}
        missing = [i for i in only if i not in by_id]
        if missing:
            sys.stderr.write("unknown test ids: %s\n" % ", ".join(missing))
            return 1
        suite = [by_id[i] for i in only]
    modules = {f[:-3] for f in os.listdir(HERE) if f.startswith("test_") and f.endswith(".py")}

    def wanted(test_id):
        if not filters or test_id.startswith("unittest.loader"):
            return True  # failed imports show up as a _FailedTest: always keep them
        for f in filters:
            if f in modules:
                if test_id.startswith(f + "."):
                    return True
            elif f in test_id:
                return True
        return False

    tests = [t for t in flatten(suite) if wanted(t.id())]
    if os.environ.get("BATCHY_END_TO_END") == "0":  # not run at all: not counted either
        tests = [t for t in tests
                 if not getattr(sys.modules.get(type(t).__module__), "END_TO_END", False)]
    if jobs > 1 and len({t.id().rsplit(".", 1)[0] for t in tests}) > 1:
        return run_sharded(tests, jobs, verbosity)
    # buffer: what a test prints is shown with its failure, not interleaved
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=verbosity, resultclass=Result,
                                     buffer=True)
    started = time.monotonic()
    # stdout carries the summary line alone: what the tests print (and what
    # a buffered failure mirrors) goes to stderr with the reports
    summary_out, sys.stdout = sys.stdout, sys.stderr
    try:
        result = runner.run(unittest.TestSuite(tests))
    finally:
        sys.stdout = summary_out
    passed = sum(1 for v in result.outcome.values() if v == "pass")
    skipped = sum(1 for v in result.outcome.values() if v == "skip")
    failed = sum(1 for v in result.outcome.values() if v == "fail")
    not_run = sum(1 for t in tests if t.id() not in result.outcome)
    # a class whose setUpClass failed: its tests never ran, count them failed;
    # any other fixture error (tearDownClass: batchy did not exit 0) counts once.
    failed += not_run + (result.fixture_errors - _setup_errors(result))
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    sys.stderr.write("integration tests took %.1fs\n" % (time.monotonic() - started))
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return 1 if failed or not result.wasSuccessful() else 0


def _setup_errors(result):
    """Number of fixture errors that came from a set-up (their tests never ran)."""
    n = 0
    for test, _ in result.errors:
        if not isinstance(test, unittest.TestCase) and "setUp" in str(test):
            n += 1
    return n


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
