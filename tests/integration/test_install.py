"""Installing and packaging (issue 10), from the build in $VPORTFS_BUILD.

`cmake --install` puts every file where it belongs, with the units and
QEMU's description file naming the binary where that install put it, and
nothing else (not the simulated frontend).  `cpack -G DEB` makes a
package whose Depends name the libraries and fuse3, which apt can satisfy
(simulated: nothing on the machine changes).  The packaged binary runs,
mounts and serves a simulated guest, also as the service unit confines it
(its capability bounding set and no_new_privs); its units verify; its man
page lints clean and documents every option its --help lists.

Every scratch directory is under /var/tmp and removed; every daemon is
stopped and its mount removed, whatever happens.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

import vpharness  # noqa: E402
from vpharness import (BUILD, ROOT, VPORTFS_SIM, Daemon,  # noqa: E402
                       force_unmount, mounted, read_exact)
from simctl import Sim  # noqa: E402

TEST_TIMEOUT = 60
CMD_TIMEOUT = 60
PREFIX = "/opt/vportfs-install-test"

# Relative to the prefix: what an install must hold, and only that.
INSTALLED = {
    "bin/vportfs",
    "share/man/man1/vportfs.1.gz",
    "lib/systemd/system/vportfs@.service",
    "lib/systemd/system/vportfs@.socket",
    "share/qemu/vhost-user/50-vportfs.json",
    "share/doc/vportfs/README.md",
    "share/doc/vportfs/chardev.md",
    "share/doc/vportfs/semantics.md",
    "share/doc/vportfs/examples/vm1.conf",
}
# Shared libraries the package must depend on, and the fusermount3 helper.
DEPENDS = {"libfuse3-3", "libev4", "libjson-c5", "fuse3"}


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(vportfs VERSION (\S+)", f.read()).group(1)


def run(argv, **kw):
    """Runs argv to completion; its CompletedProcess, output as text."""
    kw.setdefault("timeout", CMD_TIMEOUT)
    return subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kw)


def read_file(path):
    """Its bytes, or None if it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def files_under(root):
    out = set()
    for d, _, names in os.walk(root):
        for n in names:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


def unit_settings(path):
    """{key: [values]} of a unit file (comments and sections ignored)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[" or "=" not in line:
                continue
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def exec_start_binary(unit):
    return unit_settings(unit)["ExecStart"][0].split()[0]


def check_description_file(test, path, binary):
    """QEMU's docs/interop/vhost-user.json, VhostUserBackend."""
    with open(path) as f:
        desc = json.load(f)
    test.assertEqual(desc["type"], "console")
    test.assertEqual(desc["binary"], binary)
    test.assertIsInstance(desc["description"], str)
    test.assertLessEqual(set(desc), {"description", "type", "binary",
                                     "tags"})


class ScratchTest(unittest.TestCase):
    """A per-class scratch dir under /var/tmp; a per-test alarm."""

    @classmethod
    def scratch(cls):
        d = tempfile.mkdtemp(prefix="vportfs-install-", dir="/var/tmp")
        cls.addClassCleanup(shutil.rmtree, d, ignore_errors=True)
        return d

    def setUp(self):
        self.addCleanup(signal.alarm, 0)
        signal.alarm(TEST_TIMEOUT)


class CmakeInstall(ScratchTest):
    @classmethod
    def setUpClass(cls):
        cls.dir = cls.scratch()
        cls.destdir = os.path.join(cls.dir, "root")
        env = dict(os.environ, DESTDIR=cls.destdir)
        cls.result = run(["cmake", "--install", BUILD, "--prefix", PREFIX],
                         env=env)
        cls.root = cls.destdir + PREFIX

    def test_every_file_and_nothing_else(self):
        self.assertEqual(self.result.returncode, 0, self.result.stdout)
        # Nothing went outside DESTDIR+prefix, and everything is there.
        self.assertEqual(files_under(self.destdir),
                         {os.path.join(PREFIX, f).lstrip("/")
                          for f in INSTALLED})
        self.assertTrue(os.access(os.path.join(self.root, "bin/vportfs"),
                                  os.X_OK))

    def test_units_and_json_name_the_installed_binary(self):
        self.assertEqual(self.result.returncode, 0, self.result.stdout)
        binary = PREFIX + "/bin/vportfs"
        check_description_file(self, os.path.join(
            self.root, "share/qemu/vhost-user/50-vportfs.json"), binary)
        for unit in ("vportfs@.service", "vportfs@.socket"):
            with open(os.path.join(self.root, "lib/systemd/system",
                                   unit)) as f:
                text = f.read()
            self.assertNotRegex(text, r"@[A-Z_]+@", unit + " not configured")
        self.assertEqual(exec_start_binary(os.path.join(
            self.root, "lib/systemd/system/vportfs@.service")), binary)

    def test_simulated_frontend_only_on_request(self):
        dest = os.path.join(self.dir, "sim")
        r = run(["cmake", "--install", BUILD, "--prefix", PREFIX,
                 "--component", "sim"], env=dict(os.environ, DESTDIR=dest))
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(files_under(dest),
                         {PREFIX.lstrip("/") + "/bin/vportfs-sim"})


class UnderTheUnit(Daemon):
    """The packaged binary, optionally behind a command that confines it."""

    def __init__(self, binary, wrapper=()):
        super().__init__(("name=data",))
        self.binary = binary
        self.wrapper = list(wrapper)

    def argv(self):
        argv = super().argv()
        return self.wrapper + [self.binary] + argv[1:]


class DebianPackage(ScratchTest):
    @classmethod
    def setUpClass(cls):
        cls.dir = cls.scratch()
        out = os.path.join(cls.dir, "deb")
        r = run(["cpack", "-G", "DEB", "--config",
                 os.path.join(BUILD, "CPackConfig.cmake"), "-B", out])
        debs = [f for f in os.listdir(out) if f.endswith(".deb")] \
            if os.path.isdir(out) else []
        if r.returncode != 0 or len(debs) != 1:
            raise AssertionError("cpack failed (%d), made %r:\n%s" %
                                 (r.returncode, debs, r.stdout))
        cls.deb = os.path.join(out, debs[0])
        cls.root = os.path.join(cls.dir, "root")
        r = run(["dpkg-deb", "-x", cls.deb, cls.root])
        if r.returncode != 0:
            raise AssertionError("dpkg-deb -x: " + r.stdout)
        cls.vportfs = os.path.join(cls.root, "usr/bin/vportfs")

    def field(self, name):
        r = run(["dpkg-deb", "-f", self.deb, name])
        self.assertEqual(r.returncode, 0, r.stdout)
        return r.stdout.strip()

    def test_control_fields(self):
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        self.assertEqual(os.path.basename(self.deb),
                         "vportfs_%s_%s.deb" % (project_version(), arch))
        self.assertEqual(self.field("Package"), "vportfs")
        self.assertEqual(self.field("Version"), project_version())
        self.assertEqual(self.field("Architecture"), arch)
        names = {d.split()[0] for d in
                 re.split(r"[,|]", self.field("Depends"))}
        self.assertLessEqual(DEPENDS, names, self.field("Depends"))

    def test_contents(self):
        self.assertEqual(files_under(self.root),
                         {os.path.join("usr", f) for f in INSTALLED})
        check_description_file(self, os.path.join(
            self.root, "usr/share/qemu/vhost-user/50-vportfs.json"),
            "/usr/bin/vportfs")
        self.assertEqual(exec_start_binary(os.path.join(
            self.root, "usr/lib/systemd/system/vportfs@.service")),
            "/usr/bin/vportfs")

    def test_apt_can_satisfy_it(self):
        # A simulation: resolves the Depends against the archive's lists
        # on this machine, downloads and installs nothing.
        r = run(["apt-get", "install", "--simulate", "-o",
                 "Debug::NoLocking=true", self.deb],
                env=dict(os.environ, LC_ALL="C"))
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertRegex(r.stdout, r"(?m)^Inst vportfs ")
        self.assertNotRegex(r.stdout, r"(?m)^(E|W): ")

    def test_binary_runs(self):
        r = run([self.vportfs, "--version"])
        self.assertEqual((r.returncode, r.stdout),
                         (0, "vportfs %s\n" % project_version()))
        r = subprocess.run([self.vportfs, "--print-capabilities"],
                           stdout=subprocess.PIPE, timeout=CMD_TIMEOUT)
        self.assertEqual(r.returncode, 0)
        self.assertEqual(json.loads(r.stdout)["type"], "console")

    def confinement(self):
        """setpriv arguments giving what the service unit gives: its
        capability bounding set, and no_new_privs."""
        unit = unit_settings(os.path.join(
            self.root, "usr/lib/systemd/system/vportfs@.service"))
        self.assertEqual(unit["NoNewPrivileges"], ["yes"])
        caps = " ".join(unit["CapabilityBoundingSet"]).split()
        self.assertTrue(caps)
        bset = ",".join(["-all"] + ["+" + c.lower().replace("cap_", "", 1)
                                    for c in caps])
        return ["setpriv", "--no-new-privs", "--bounding-set", bset]

    def test_mounts_and_serves_a_guest_as_the_unit_confines_it(self):
        wrapper = self.confinement() if os.geteuid() == 0 else []
        d = UnderTheUnit(self.vportfs, wrapper)
        self.addCleanup(d.cleanup)
        d.start()
        self.assertTrue(mounted(d.mnt))
        with Sim(VPORTFS_SIM, d.sock) as sim:
            nr = sim.wait_port("data")
            sim.open(nr)
            fd = os.open(d.path("data"), os.O_RDWR)
            try:
                sim.wait_host(nr, True)
                sim.write_all(nr, b"from the guest\n")
                self.assertEqual(read_exact(fd, 15), b"from the guest\n")
                os.write(fd, b"from the host\n")
                self.assertEqual(sim.readn(nr, 14), b"from the host\n")
            finally:
                os.close(fd)
        self.assertEqual(d.stop(), 0, d.read_log())
        self.assertFalse(mounted(d.mnt))
        self.assertFalse(os.path.lexists(d.sock))

    def test_packaged_example_configuration_runs(self):
        # examples/vm1.conf as packaged, its system paths moved into a
        # scratch dir; the socket and mount point given on the command
        # line, as the service unit gives its own.
        run_dir = tempfile.mkdtemp(prefix="vportfs-vm1-", dir=self.dir)
        with open(os.path.join(self.root, "usr/share/doc/vportfs/examples/"
                               "vm1.conf")) as f:
            conf = f.read()
        self.assertNotIn("mountpoint", re.sub(r"(?m)^#.*\n", "", conf))
        conf = conf.replace("/var/log/", run_dir + "/") \
                   .replace("/run/vportfs/", run_dir + "/")
        path = os.path.join(run_dir, "vm1.conf")
        with open(path, "w") as f:
            f.write(conf)
        d = UnderTheUnit(self.vportfs)
        d.ports = []
        d.args = ["--config", path]
        self.addCleanup(d.cleanup)
        d.start()
        self.assertEqual(sorted(os.listdir(d.mnt)),
                         [".events", "console0", "data",
                          "org.qemu.guest_agent.0"])
        with Sim(VPORTFS_SIM, d.sock) as sim:
            self.assertEqual(sim.config()[2], 31)
            nr = sim.wait_port("console0")
            sim.open(nr)
            sim.write_all(nr, b"console line\n")
            log = os.path.join(run_dir, "vportfs-vm1-console.log")
            vpharness.wait_until(
                lambda: read_file(log) == b"console line\n", 5,
                what="the console line in the log chardev")
        self.assertTrue(os.path.exists(os.path.join(run_dir,
                                                    "vm1-qga.sock")))
        self.assertEqual(d.stop(), 0, d.read_log())

    def test_units_verify(self):
        # The packaged units, with ExecStart= pointing at the extracted
        # binary (systemd-analyze checks that it is executable).
        units = os.path.join(self.dir, "units")
        os.makedirs(units, exist_ok=True)
        for unit in ("vportfs@.service", "vportfs@.socket"):
            with open(os.path.join(self.root, "usr/lib/systemd/system",
                                   unit)) as f:
                text = f.read()
            with open(os.path.join(units, unit), "w") as f:
                f.write(text.replace("ExecStart=/usr/bin/vportfs ",
                                     "ExecStart=%s " % self.vportfs))
        r = run(["systemd-analyze", "verify", "--man=no",
                 os.path.join(units, "vportfs@vm1.service"),
                 os.path.join(units, "vportfs@vm1.socket")])
        self.assertEqual((r.returncode, r.stdout), (0, ""))

    def test_man_page_lints_clean_and_has_every_option(self):
        page = os.path.join(self.root, "usr/share/man/man1/vportfs.1.gz")
        r = run(["mandoc", "-T", "lint", "-W", "warning", page])
        self.assertEqual((r.returncode, r.stdout), (0, ""))
        text = run(["mandoc", "-T", "ascii", page]).stdout
        text = re.sub(".\b", "", text)  # overstrike: bold, underline
        helped = set(re.findall(r"(?<![\w-])--?[a-zA-Z][\w-]*",
                                run([self.vportfs, "--help"]).stdout))
        self.assertIn("--socket-path", helped)
        for opt in sorted(helped):
            self.assertRegex(text, r"(?<![\w-])%s(?![\w-])" % re.escape(opt),
                             "%s is in --help, not in the man page" % opt)


def tearDownModule():
    # Belt and braces: nothing of ours stays mounted.
    for d in list(vpharness._live):
        d.cleanup()
        force_unmount(d.mnt)


if __name__ == "__main__":
    unittest.main()
