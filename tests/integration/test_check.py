"""
test_check.py - `batchy --check FILE...` (SPEC section 9): workflow files
validated offline as load_cfg would, without Redis or a server.

Each problem is one line on stderr, naming the file as it was given:
`path:line:column: reason` for what cfg_parse refuses, `path: reason` for a
file that cannot be read (missing, a directory, a pipe, over 1 MiB) or whose
name load_cfg/<name> could not load. Nothing is printed for a valid file.
Exit 0 when every file is valid, 1 when any is not, 64 (as every usage error
of batchy) for `--check` without a file. The BATCHY_* settings of the server
do not matter, and no connection is made.

batchy runs as harness.Batchy builds its command line: under valgrind with
BATCHY_VALGRIND=1 (exit 99, a leak or an error, fails the test with the
valgrind log).
"""
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

import harness
from harness import Batchy, REPO_CFG_DIR, SLOW, VALGRIND

VALID = "job1:\n  p: 1\njob2:\n  from_date: 2024-01-01\n"
MIB = 1024 * 1024
NAME_RULE = ("workflow name must be 1-128 characters of A-Z a-z 0-9 _ . -, "
             "starting with a letter, digit or _")


def check_env(env=None):
    """The test process's environment without batchy's settings (as
    harness.Batchy starts batchy), plus env."""
    full = {k: v for k, v in os.environ.items()
            if not (k.startswith("BATCHY_") and k not in ("BATCHY_BIN", "BATCHY_VALGRIND"))
            and k != "REDIS_URL"}
    full.update(env or {})
    return full


def run_batchy(args, cwd, env=None):
    """Run batchy with args to its end, in cwd; a CompletedProcess with text
    stdout and stderr."""
    b = Batchy(listen=False, args=args)
    try:
        proc = subprocess.run(b.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=check_env(env), cwd=cwd,
                              timeout=30 * SLOW)
        if VALGRIND and proc.returncode == 99:
            raise AssertionError("batchy %r: valgrind found errors or leaks (exit 99):\n%s"
                                 % (args, b.valgrind_logs()))
        return subprocess.CompletedProcess(args, proc.returncode,
                                           proc.stdout.decode("utf-8", "replace"),
                                           proc.stderr.decode("utf-8", "replace"))
    finally:
        b.cleanup()


class CheckTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="batchy-check-")
        os.mkdir(os.path.join(self.tmp, "cfg"))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, name, text):
        """Write cfg/<name> (text or bytes); return its path as given to
        batchy, relative to the directory it runs in."""
        path = os.path.join("cfg", name)
        with open(os.path.join(self.tmp, path), "wb") as f:
            f.write(text.encode("utf-8") if isinstance(text, str) else text)
        return path

    def check(self, *paths, env=None):
        return run_batchy(["--check"] + list(paths), self.tmp, env)

    def assert_result(self, res, status, stderr):
        """Exactly this exit status and stderr, and nothing on stdout."""
        self.assertEqual((res.returncode, res.stderr, res.stdout), (status, stderr, ""), res)

    # ---- valid files
    def test_valid_files_exit_0_and_print_nothing(self):
        examples = sorted(os.path.join(REPO_CFG_DIR, n) for n in os.listdir(REPO_CFG_DIR)
                          if n.endswith((".yaml", ".yml")))
        self.assertTrue(examples, "no example workflows in %s" % REPO_CFG_DIR)
        res = self.check(self.write("wf1.yaml", VALID), self.write("wf_2.yml", VALID), *examples)
        self.assert_result(res, 0, "")

    def test_a_file_of_exactly_1_mib_is_valid(self):
        head = VALID + "# "
        res = self.check(self.write("big.yaml", head + "x" * (MIB - len(head) - 1) + "\n"))
        self.assert_result(res, 0, "")

    # ---- what cfg_parse refuses: path:line:column
    def test_a_yaml_error_is_reported_as_path_line_column_and_exits_1(self):
        res = self.check(self.write("bad.yaml", "job1:\n  p: [1, 2\n"))
        self.assert_result(res, 1, "cfg/bad.yaml:3:1: did not find expected ',' or ']' "
                                   "(while parsing a flow sequence at line 2, column 6)\n")

    def test_an_invalid_field_is_reported_at_its_line_and_column(self):
        res = self.check(self.write("wf1.yml", "job1:\n  a: 1\njob2:\n  status: bogus\n"))
        self.assert_result(res, 1, 'cfg/wf1.yml:4:11: status must be one of new, open, '
                                   'success, failed, not "bogus"\n')

    def test_an_empty_file_is_invalid_as_load_cfg_says(self):
        res = self.check(self.write("empty.yaml", ""))
        self.assert_result(res, 1, "cfg/empty.yaml:1:1: no steps: the file must map at least "
                                   "one step name to its parameters\n")

    def test_the_path_is_named_as_given(self):
        self.write("bad.yaml", "- a\n")
        path = os.path.join(self.tmp, "cfg", "..", "cfg", "bad.yaml")
        res = self.check(path)
        self.assertEqual(res.returncode, 1, res)
        self.assertTrue(res.stderr.startswith(path + ":1:1: "), res)
        self.assertEqual(res.stderr.count("\n"), 1, res)

    # ---- several files
    def test_of_several_files_only_the_bad_one_is_reported(self):
        res = self.check(self.write("wf1.yaml", VALID), self.write("wf2.yaml", "job1: 5\n"),
                         self.write("wf3.yaml", VALID))
        self.assertEqual(res.returncode, 1, res)
        self.assertEqual(res.stdout, "", res)
        lines = res.stderr.splitlines()
        self.assertEqual(len(lines), 1, res)
        self.assertTrue(lines[0].startswith("cfg/wf2.yaml:1:7: "), res)

    def test_every_bad_file_is_reported_in_the_order_given(self):
        res = self.check(self.write("wf2.yaml", "- a\n"), self.write("wf1.yaml", VALID),
                         "cfg/none.yaml", self.write("wf0.yaml", "job1: [\n"))
        self.assertEqual(res.returncode, 1, res)
        self.assertEqual([line.split(":")[0] for line in res.stderr.splitlines()],
                         ["cfg/wf2.yaml", "cfg/none.yaml", "cfg/wf0.yaml"], res)

    # ---- files that cannot be read: path: reason
    def test_a_missing_file(self):
        res = self.check("cfg/none.yaml")
        self.assert_result(res, 1, "cfg/none.yaml: No such file or directory\n")

    def test_a_directory(self):
        os.mkdir(os.path.join(self.tmp, "cfg", "dir.yaml"))
        res = self.check("cfg/dir.yaml")
        self.assert_result(res, 1, "cfg/dir.yaml: not a regular file (a directory)\n")

    def test_a_named_pipe_nobody_writes_to_is_refused_without_waiting(self):
        os.mkfifo(os.path.join(self.tmp, "cfg", "fifo.yaml"))
        res = self.check("cfg/fifo.yaml")  # run_batchy's timeout would fail a hang
        self.assert_result(res, 1, "cfg/fifo.yaml: not a regular file\n")

    def test_a_file_over_1_mib(self):
        path = self.write("big.yaml", VALID + "#" * (MIB - len(VALID)) + "\n")
        res = self.check(path)
        self.assert_result(res, 1, "cfg/big.yaml: 1048577 bytes; a workflow file is 1 MiB "
                                   "(1048576 bytes) at most\n")

    # ---- names load_cfg/<name> could not load: path: bad file name: reason
    def test_a_file_name_that_is_no_workflow_name(self):
        cases = [
            ("bad name.yaml", NAME_RULE),
            ("-dash.yaml", NAME_RULE),
            (".yaml", NAME_RULE),
            ("x" * 129 + ".yaml", NAME_RULE),
            ("wf1-20240101.yaml", "workflow name must not end in -<digits> or -<digits>-init: "
                                  "those are batch snapshot keys"),
            ("wf1-1700000000-init.yml", "workflow name must not end in -<digits> or "
                                        "-<digits>-init: those are batch snapshot keys"),
            ("wf1.json", "load_cfg reads <workflow>.yaml or <workflow>.yml"),
            ("wf1.YAML", "load_cfg reads <workflow>.yaml or <workflow>.yml"),
        ]
        for name, reason in cases:
            with self.subTest(name=name):
                res = self.check(self.write(name, VALID))
                self.assert_result(res, 1, "cfg/%s: bad file name: %s\n" % (name, reason))

    def test_a_name_of_128_characters_and_dots_is_valid(self):
        res = self.check(self.write("x" * 128 + ".yaml", VALID),
                         self.write("sales.daily_v2.yml", VALID))
        self.assert_result(res, 0, "")

    def test_a_bad_name_and_bad_content_are_two_lines(self):
        res = self.check(self.write("bad name.yaml", "- a\n"))
        self.assertEqual(res.returncode, 1, res)
        self.assertEqual(res.stderr.splitlines(), [
            "cfg/bad name.yaml: bad file name: " + NAME_RULE,
            "cfg/bad name.yaml:1:1: the top level must map step names to their parameters "
            "(step: {param: value})"], res)

    def test_a_control_character_in_a_path_stays_on_its_line(self):
        res = self.check(self.write("a\nb.yaml", VALID))
        self.assert_result(res, 1, "cfg/a?b.yaml: bad file name: %s\n" % NAME_RULE)

    # ---- the command line and the environment
    def test_check_without_a_file_is_a_usage_error(self):
        res = self.check()
        self.assert_result(res, 64, "batchy: --check needs at least one FILE\n"
                                    "Try 'batchy --help'.\n")

    def test_help_lists_check(self):
        res = run_batchy(["--help"], self.tmp)
        self.assertEqual((res.returncode, res.stderr), (0, ""), res)
        self.assertIn("      --check FILE...     validate workflow files", res.stdout)

    def test_the_server_settings_in_the_environment_do_not_matter(self):
        # A port where something listens: a check that connected to Redis
        # would leave a connection waiting there.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as fake_redis:
            fake_redis.bind(("127.0.0.1", 0))
            fake_redis.listen(8)
            fake_redis.setblocking(False)
            port = fake_redis.getsockname()[1]
            bad = {"BATCHY_REDIS_URL": "http://x", "BATCHY_LISTEN": "nowhere",
                   "BATCHY_THREADS": "0", "BATCHY_CFG_DIR": "/nonexistent",
                   "BATCHY_REDIS_TIMEOUT_MS": "1"}
            for env in (bad, {"REDIS_URL": "redis://127.0.0.1:%d/0" % port},
                        {"BATCHY_REDIS_URL": "redis://127.0.0.1:%d/0" % port}):
                with self.subTest(env=env):
                    self.assert_result(self.check(self.write("wf1.yaml", VALID), env=env), 0, "")
                    res = self.check(self.write("wf2.yml", "job1: 5\n"), env=env)
                    self.assertEqual(res.returncode, 1, res)
                    self.assertTrue(res.stderr.startswith("cfg/wf2.yml:1:7: "), res)
                    self.assertEqual(res.stderr.count("\n"), 1, res)
            with self.assertRaises(BlockingIOError):
                fake_redis.accept()
        # The same settings are an error when batchy would serve.
        res = run_batchy(["--listen", "127.0.0.1:%d" % harness.free_port()], self.tmp,
                         {"BATCHY_REDIS_URL": "http://x"})
        self.assert_result(res, 64, "batchy: the Redis URL must start with redis://, unix:// or "
                                    "sentinel://\nTry 'batchy --help'.\n")


if __name__ == "__main__":
    unittest.main()
