"""Installing (SPEC section 14): `make install` and `make uninstall` into a
temporary DESTDIR, the man pages clean under `mandoc -T lint`, each
program's --help against its man page's synopsis, the systemd unit checked
by `systemd-analyze` (these machines run no systemd), and the Debian
package built by `make deb` (into the build folder), extracted with
`dpkg-deb -x` and its batchy run against a throw-away Redis.

Slow and end to end: not run again in the sanitizer and valgrind rounds."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import HERE, Batchy, RedisServer, batchy_bin

END_TO_END = True
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
VERSION = "1.0.0"
PROGRAMS = {"batchy": "8", "waitsy": "1", "batchy-run": "1"}


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600,
                          stdin=subprocess.DEVNULL, **kw)


def build_dir():
    return os.path.dirname(os.path.abspath(batchy_bin()))


class InstallTest(unittest.TestCase):

    def setUp(self):
        self.dest = tempfile.mkdtemp(prefix="batchy-install-")
        self.addCleanup(shutil.rmtree, self.dest, True)

    def make(self, *targets, **vars):
        args = ["make", "-s", "-C", ROOT, "BUILD=" + build_dir(), "DESTDIR=" + self.dest]
        args += ["%s=%s" % kv for kv in vars.items()] + list(targets)
        p = run(args)
        self.assertEqual(p.returncode, 0, p.stdout.decode())

    def files(self):
        return sorted(os.path.relpath(os.path.join(d, f), self.dest)
                      for d, _, fs in os.walk(self.dest) for f in fs)

    def test_install_and_uninstall(self):
        self.make("install", PREFIX="/usr")
        files = self.files()
        for want in ("usr/bin/batchy", "usr/bin/waitsy", "usr/bin/batchy-run",
                     "usr/share/man/man8/batchy.8", "usr/share/man/man1/waitsy.1",
                     "usr/share/man/man1/batchy-run.1", "lib/systemd/system/batchy.service",
                     "etc/default/batchy", "etc/batchy/cfg/sales_daily.yaml",
                     "usr/share/doc/batchy/examples/sales_daily.yaml"):
            self.assertIn(want, files)
        with open(os.path.join(self.dest, "lib/systemd/system/batchy.service")) as f:
            unit = f.read()
        self.assertIn("ExecStart=/usr/bin/batchy $BATCHY_OPTS", unit)
        self.assertIn("EnvironmentFile=-/etc/default/batchy", unit)
        # settings an operator changed survive an uninstall; the rest goes
        with open(os.path.join(self.dest, "etc/default/batchy"), "a") as f:
            f.write("BATCHY_TOKEN=changed\n")
        self.make("uninstall", PREFIX="/usr")
        self.assertEqual(self.files(), ["etc/default/batchy"])

    def test_prefix_usr_local_keeps_everything_under_it(self):
        self.make("install")  # PREFIX=/usr/local by default
        self.assertTrue(all(f.startswith("usr/local/") for f in self.files()), self.files())
        with open(os.path.join(self.dest, "usr/local/lib/systemd/system/batchy.service")) as f:
            self.assertIn("ExecStart=/usr/local/bin/batchy", f.read())

    def test_man_pages_are_clean_and_match_each_help(self):
        for program, section in PROGRAMS.items():
            page = os.path.join(ROOT, "docs", "man", "%s.%s" % (program, section))
            p = run(["mandoc", "-T", "lint", "-W", "warning", page])
            self.assertEqual((p.returncode, p.stdout.decode()), (0, ""), program)
            text = run(["mandoc", "-T", "ascii", page]).stdout.decode()
            text = re.sub(".\b", "", text)  # no overstrike
            synopsis = text.split("SYNOPSIS", 1)[1].split("DESCRIPTION", 1)[0]
            binary = os.path.join(build_dir(), program)
            help_text = run([binary, "--help"]).stdout.decode()
            in_synopsis = set(re.findall(r"--[a-z][a-z-]+", synopsis))
            in_help = set(re.findall(r"--[a-z][a-z-]+", help_text))
            self.assertTrue(in_synopsis, program)
            self.assertEqual(in_synopsis - in_help, set(), program)  # --help says each
            self.assertEqual(in_help - set(re.findall(r"--[a-z][a-z-]+", text)), set(),
                             program)  # and the page, each of --help's
            version = run([binary, "--version"]).stdout.decode().strip()
            self.assertEqual(version, "%s %s" % (program, VERSION))

    def test_the_unit_passes_systemd_analyze(self):
        self.make("install", PREFIX="/usr")
        unit = os.path.join(self.dest, "batchy.service")
        with open(os.path.join(self.dest, "lib/systemd/system/batchy.service")) as f:
            text = f.read()
        with open(unit, "w") as f:  # its binary where it is installed here
            f.write(text.replace("/usr/bin/batchy", os.path.join(self.dest, "usr/bin/batchy")))
        p = run(["systemd-analyze", "verify", "--man=no", unit])
        self.assertEqual((p.returncode, p.stdout.decode()), (0, ""))
        p = run(["systemd-analyze", "security", "--offline=yes", unit])
        out = p.stdout.decode()
        m = re.search(r"Overall exposure level for batchy.service: ([\d.]+) (\w+)", out)
        self.assertIsNotNone(m, out)
        self.assertLessEqual(float(m.group(1)), 2.0, out)
        self.assertEqual(m.group(2), "OK", out)


class PackageTest(unittest.TestCase):

    def test_the_package_builds_and_its_batchy_opens_a_batch(self):
        for old in os.listdir(build_dir()):
            if old.startswith("batchy_") and old.endswith(".deb"):
                os.remove(os.path.join(build_dir(), old))
        # niced: the suite runs it beside the failover and browser tests
        p = run(["nice", "-n", "15", "make", "-s", "-C", ROOT, "BUILD=" + build_dir(), "deb"])
        self.assertEqual(p.returncode, 0, p.stdout.decode()[-3000:])
        debs = [f for f in os.listdir(build_dir()) if f.startswith("batchy_") and f.endswith(".deb")]
        self.assertEqual(len(debs), 1, debs)
        self.assertTrue(debs[0].startswith("batchy_%s-" % VERSION), debs)
        deb = os.path.join(build_dir(), debs[0])
        tmp = tempfile.mkdtemp(prefix="batchy-deb-")
        self.addCleanup(shutil.rmtree, tmp, True)
        root, control = os.path.join(tmp, "root"), os.path.join(tmp, "control")
        self.assertEqual(run(["dpkg-deb", "-x", deb, root]).returncode, 0)
        self.assertEqual(run(["dpkg-deb", "-e", deb, control]).returncode, 0)
        for f in ("usr/bin/batchy", "usr/bin/waitsy", "usr/bin/batchy-run",
                  "usr/share/man/man8/batchy.8.gz", "usr/share/man/man1/waitsy.1.gz",
                  "usr/share/man/man1/batchy-run.1.gz", "lib/systemd/system/batchy.service",
                  "etc/default/batchy", "usr/share/doc/batchy/copyright"):
            self.assertTrue(os.path.exists(os.path.join(root, f)), f)
        fields = run(["dpkg-deb", "-f", deb]).stdout.decode()
        depends = re.search(r"^Depends: (.*)$", fields, re.M).group(1)
        for lib in ("libhiredis", "libmicrohttpd", "libyaml", "libcjson", "libcurl4",
                    "libmimalloc", "liburiparser"):
            self.assertIn(lib, depends)
        self.assertNotIn("-dev", depends)  # the runtime libraries only
        with open(os.path.join(control, "postinst")) as f:
            self.assertIn("adduser --system", f.read())
        with open(os.path.join(control, "conffiles")) as f:
            self.assertIn("/etc/default/batchy", f.read())
        version = run([os.path.join(root, "usr/bin/batchy"), "--version"]).stdout.decode()
        self.assertEqual(version.strip(), "batchy %s" % VERSION)
        # the extracted batchy against a throw-away Redis
        redis = RedisServer()
        self.addCleanup(redis.cleanup)
        redis.start()
        cfg = os.path.join(tmp, "cfg")
        os.mkdir(cfg)
        shutil.copy(os.path.join(root, "etc/batchy/cfg/sales_daily.yaml"), cfg)
        b = Batchy(redis.url, cfg, args=("--quiet",))
        b_bin = os.path.join(root, "usr/bin/batchy")
        b.command = lambda: [b_bin, "--listen", "127.0.0.1:%d" % b.port, "--redis",
                             redis.url, "--cfg-dir", cfg, "--quiet"]
        self.addCleanup(b.cleanup)
        b.start()
        self.assertEqual(b.get("/load_cfg/sales_daily").status, 200)
        r = b.get("/open_batch/sales_daily")
        self.assertEqual(r.status, 200, r)
        self.assertIn('"status": "open"', redis.cli("HGET", "sales_daily",
                                                      sorted(r.json())[0]))


if __name__ == "__main__":
    unittest.main()
