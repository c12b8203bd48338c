#!/usr/bin/env python3
"""
run.py - run the integration tests against a real redis-server and batchy.

    BATCHY_BIN=build/batchy python3 tests/integration/run.py [FILTER...]

A FILTER is a module name (test_api), a class (test_api.IndexTest) or any part
of a test name (open_after_failure); a test runs when its id contains any of
them. With BATCHY_VALGRIND=1 batchy runs under valgrind.

The last line is `N passed, N failed` (`, N skipped` when some were); the exit
status is 1 when anything failed or errored (a class whose set-up failed
counts all its tests as failed; a failed clean stop of batchy counts once).
"""
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


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

    def addError(self, test, err):
        super().addError(test, err)
        self._mark(test, "fail")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.outcome[test.id()] = "fail"

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._mark(test, "skip")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._mark(test, "pass")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._mark(test, "fail")


def main(argv):
    filters = [a for a in argv if not a.startswith("-")]
    verbosity = 1 if "-q" in argv else 2
    loader = unittest.TestLoader()
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
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
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=verbosity, resultclass=Result)
    started = time.monotonic()
    result = runner.run(unittest.TestSuite(tests))
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
