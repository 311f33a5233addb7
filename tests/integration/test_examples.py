"""The configurations in examples/ run as documented: each is started the
way its header says, a simulated guest connects, and bytes go both ways
through its chardev."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

from vpharness import (ROOT, VPORTFS, VPORTFS_SIM, force_unmount,  # noqa: E402
                       mounted, wait_until)
from simctl import Sim  # noqa: E402

EXAMPLES = os.path.join(ROOT, "examples")


class ExampleTest(unittest.TestCase):
    def setUp(self):
        self.run_dir = tempfile.mkdtemp(prefix="vportfs-example-",
                                        dir="/var/tmp")
        self.mnt = os.path.join(self.run_dir, "mnt")
        self.addCleanup(shutil.rmtree, self.run_dir, True)
        self.addCleanup(force_unmount, self.mnt)

    def start(self, argv, **kw):
        env = dict(os.environ, VPORTFS=VPORTFS)
        log = open(os.path.join(self.run_dir, "example.log"), "wb")
        self.addCleanup(log.close)
        p = subprocess.Popen(argv, env=env, stdout=kw.pop("stdout", log),
                             stderr=log, start_new_session=True, **kw)

        def stop():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        self.addCleanup(stop)

        def up():
            if p.poll() is not None:
                raise AssertionError("example exited %d:\n%s" %
                                     (p.returncode, self.log()))
            return mounted(self.mnt)
        wait_until(up, 10, what="the example to mount")
        sim = Sim(VPORTFS_SIM, os.path.join(self.run_dir, "vhost.sock"))
        self.addCleanup(sim.close)
        return p, sim

    def log(self):
        with open(os.path.join(self.run_dir, "example.log"),
                  errors="replace") as f:
            return f.read()

    def connect(self, name):
        c = socket.socket(socket.AF_UNIX)
        self.addCleanup(c.close)
        c.settimeout(10)
        c.connect(os.path.join(self.run_dir, name))
        return c

    def recv_exactly(self, c, n):
        got = b""
        while len(got) < n:
            b = c.recv(n - len(got))
            self.assertTrue(b, "socket closed after %r" % got)
            got += b
        return got

    def test_guest_agent_on_a_unix_socket(self):
        _, sim = self.start([os.path.join(EXAMPLES, "guest-agent-socket.sh"),
                             self.run_dir])
        nr = sim.wait_port("org.qemu.guest_agent.0")
        sim.open(nr)
        c = self.connect("qga.sock")
        sim.wait_host(nr, True, 5)
        c.sendall(b'{"execute":"guest-ping"}\n')
        self.assertEqual(sim.readn(nr, 25), b'{"execute":"guest-ping"}\n')
        sim.write_all(nr, b'{"return":{}}\n')
        self.assertEqual(self.recv_exactly(c, 14), b'{"return":{}}\n')
        self.assertTrue(os.path.exists(os.path.join(
            self.mnt, "org.qemu.guest_agent.0")))

    def test_console_logged_on_a_socket_and_in_the_mount(self):
        _, sim = self.start([os.path.join(EXAMPLES, "console-log-socket.sh"),
                             self.run_dir])
        nr = sim.wait_port("console0")
        sim.open(nr)
        c = self.connect("console.sock")
        fd = os.open(os.path.join(self.mnt, "console0"), os.O_RDONLY)
        self.addCleanup(os.close, fd)
        sim.write_all(nr, b"login: ")
        self.assertEqual(self.recv_exactly(c, 7), b"login: ")
        self.assertEqual(os.read(fd, 100), b"login: ")
        log = os.path.join(self.run_dir, "console.log")
        wait_until(lambda: os.path.getsize(log) == 7, 5,
                   what="the console log")
        c.sendall(b"root\n")
        self.assertEqual(sim.readn(nr, 5), b"root\n")

    def test_socketpair_handed_over_by_a_parent(self):
        p, sim = self.start([sys.executable,
                             os.path.join(EXAMPLES, "socketpair-parent.py"),
                             self.run_dir],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.addCleanup(p.stdout.close)
        nr = sim.wait_port("data")
        sim.open(nr)
        sim.wait_host(nr, True, 5)
        sim.write_all(nr, b"hello parent\n")
        self.assertEqual(p.stdout.readline(), b"hello parent\n")
        p.stdin.write(b"hello guest\n")
        p.stdin.flush()
        self.assertEqual(sim.readn(nr, 12), b"hello guest\n")
        # Its input ending ends it, and the daemon with it.
        p.stdin.close()
        self.assertEqual(p.wait(10), 0)
        wait_until(lambda: not mounted(self.mnt), 10,
                   what="the daemon to unmount")


class DemoArguments(unittest.TestCase):
    """scripts/demo.sh takes --once or --help; anything else is refused
    before it installs, builds or boots anything (it used to be ignored,
    and the demo ran until Ctrl-C)."""

    DEMO = os.path.join(ROOT, "scripts", "demo.sh")

    def run_demo(self, *args):
        return subprocess.run([self.DEMO, *args], capture_output=True,
                              text=True, timeout=20)

    def test_help_prints_the_usage(self):
        p = self.run_demo("--help")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("scripts/demo.sh --once", p.stdout)
        self.assertNotIn("building", p.stdout)

    def test_an_unknown_argument_is_refused(self):
        for args in (["--bogus"], ["--once", "extra"]):
            p = self.run_demo(*args)
            self.assertEqual(p.returncode, 2, (args, p.stdout, p.stderr))
            self.assertIn("demo:", p.stderr)
            self.assertNotIn("building", p.stdout)


if __name__ == "__main__":
    unittest.main()
