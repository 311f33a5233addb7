"""The vportfs command line (SPEC section 6), against the real binary.

Bad options must fail early and cleanly (exit 2, one line naming the
culprit, nothing mounted, no socket left behind); a running daemon must shut
down cleanly on SIGTERM/SIGINT; the listening socket may come from a path
(stale sockets replaced) or from an inherited descriptor; READY=1 goes to
$NOTIFY_SOCKET once the mount is live.
"""
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

import vpharness  # noqa: E402
from vpharness import Daemon, VPORTFS, VPORTFS_SIM, wait_until  # noqa: E402
from simctl import Sim  # noqa: E402

TEST_TIMEOUT = 30
CMD_TIMEOUT = 5


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test took longer than %ds" % TEST_TIMEOUT)


def mounted(path):
    """True if /proc/mounts lists path as a mount point."""
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 1 and \
                    fields[1].replace("\\040", " ") == path:
                return True
    return False


def ensure_unmounted(path):
    """Lazily unmounts path if /proc/mounts lists it.  Unlike
    vpharness.force_unmount this also catches the mount of a daemon that
    died (os.path.ismount is False there: lstat fails with ENOTCONN)."""
    if mounted(path):
        subprocess.run(["umount", "-l", path], stderr=subprocess.DEVNULL)
    if mounted(path):
        subprocess.run(["fusermount3", "-uz", path],
                       stderr=subprocess.DEVNULL)


def stop_and_clean(d):
    """Daemon.cleanup, but unmounting a dead daemon's mount before the
    temp dir is removed."""
    d.stop()
    ensure_unmounted(d.mnt)
    shutil.rmtree(d.dir, ignore_errors=True)


class CliDaemon(Daemon):
    """A Daemon whose command line, environment and inherited descriptors
    the test chooses; stopped and unmounted like any other."""

    def __init__(self, ports=("name=data",), args=(), argv=None, env=None,
                 pass_fds=(), need_socket_file=True):
        super().__init__(ports, args)
        self._argv = argv
        self.env = env
        self.pass_fds = tuple(pass_fds)
        self.need_socket_file = need_socket_file

    def argv(self):
        return self._argv if self._argv is not None else super().argv()

    def start(self, timeout=10.0):
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log,
                                         stderr=subprocess.STDOUT,
                                         start_new_session=True,
                                         env=self.env,
                                         pass_fds=self.pass_fds)
        vpharness._live.append(self)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("vportfs exited with %d:\n%s" %
                                   (self.proc.returncode, self.read_log()))
            return os.path.ismount(self.mnt) and (
                not self.need_socket_file or os.path.exists(self.sock))
        wait_until(up, timeout, what="vportfs to mount")
        return self


class CliTest(unittest.TestCase):
    def setUp(self):
        self.addCleanup(signal.signal, signal.SIGALRM,
                        signal.signal(signal.SIGALRM, _alarm))
        signal.alarm(TEST_TIMEOUT)
        self.addCleanup(signal.alarm, 0)
        self.dir = tempfile.mkdtemp(prefix="vportfs-cli-", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.mnt = os.path.join(self.dir, "mnt")
        self.sock = os.path.join(self.dir, "vhost.sock")
        os.mkdir(self.mnt)
        self.addCleanup(ensure_unmounted, self.mnt)

    def run_vportfs(self, args, timeout=CMD_TIMEOUT, env=None):
        """Runs vportfs to completion; a daemon that does not exit is
        killed, unmounted, and fails the test."""
        proc = subprocess.Popen([VPORTFS] + list(args),
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                start_new_session=True, env=env)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            ensure_unmounted(self.mnt)
            self.fail("vportfs %s did not exit within %ss" %
                      (" ".join(args), timeout))
        return proc.returncode, out.decode(errors="replace"), \
            err.decode(errors="replace")


class BadOptions(CliTest):
    """Each bad option or spec: exit 2, exactly one line on stderr naming
    it, nothing mounted, no socket created."""

    def check_rejected(self, args, *names, socket_arg=True):
        argv = (["--socket", self.sock] if socket_arg else []) + list(args)
        rc, out, err = self.run_vportfs(argv)
        lines = err.splitlines()
        self.assertEqual(rc, 2, "argv %r: status %d, stderr %r" %
                         (argv, rc, err))
        self.assertEqual(len(lines), 1,
                         "argv %r: want one stderr line, got %r" %
                         (argv, err))
        for name in names:
            self.assertIn(name.lower(), lines[0].lower(),
                          "argv %r: %r does not name %r" %
                          (argv, lines[0], name))
        self.assertFalse(mounted(self.mnt), "something got mounted")
        self.assertFalse(os.path.lexists(self.sock), "socket was created")
        return lines[0]

    def test_unknown_option(self):
        self.check_rejected(["--frobnicate", self.mnt], "--frobnicate")

    def test_unknown_short_option(self):
        self.check_rejected(["-Z", self.mnt], "-Z")

    def test_port_without_name(self):
        self.check_rejected(["--port", "nr=3", self.mnt], "--port", "name")

    def test_port_with_unknown_key(self):
        self.check_rejected(["--port", "name=a,colour=red", self.mnt],
                            "--port", "colour")

    def test_port_nr_not_a_number(self):
        self.check_rejected(["--port", "name=a,nr=abc", self.mnt],
                            "--port", "abc")

    def test_duplicate_port_name(self):
        self.check_rejected(["--port", "name=twin0", "--port", "name=twin0",
                             self.mnt], "--port", "twin0")

    def test_port_name_not_utf8(self):
        self.check_rejected(["--port", b"name=raw\xff".decode("utf-8",
                                                            "surrogateescape"),
                             self.mnt], "--port", "UTF-8")

    def test_two_ports_would_be_the_same_file(self):
        # ".x" is no usable file name, so port 2 would be "port2" too.
        self.check_rejected(["--port", "name=port2,nr=1", "--port",
                             "name=.x,nr=2", self.mnt], "--port", "port2")

    def test_max_ports_zero(self):
        self.check_rejected(["--max-ports", "0", self.mnt], "--max-ports")

    def test_max_ports_128_beyond_vhost_user(self):
        self.check_rejected(["--max-ports", "128", self.mnt],
                            "--max-ports", "128")

    def test_bogus_mount_option(self):
        self.check_rejected(["-o", "bogus", self.mnt], "-o", "bogus")

    def test_bad_log_level(self):
        self.check_rejected(["--log-level", "loud", self.mnt],
                            "--log-level", "loud")

    def test_missing_mountpoint(self):
        self.check_rejected(["--port", "name=a"], "mountpoint")

    def test_socket_and_fd_together(self):
        self.check_rejected(["--fd", "3", self.mnt], "--socket", "--fd")

    def test_neither_socket_nor_fd(self):
        self.check_rejected([self.mnt], "--socket", socket_arg=False)


class StartupFailuresInSyslog(CliTest):
    """With --syslog, a start-up failure reaches syslog (where a service
    manager's user looks) as well as stderr.  The daemon runs in a private
    mount namespace whose /dev/log is a socket of the test's."""

    def run_with_syslog(self, args):
        log = os.path.join(self.dir, "log")
        rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(rx.close)
        rx.bind(log)
        rx.settimeout(5)
        script = ('mount -t tmpfs vportfs-test /dev && ln -s "$0" /dev/log '
                  '&& exec "$@"')
        proc = subprocess.run(["unshare", "-m", "--propagation", "private",
                               "sh", "-c", script, log, VPORTFS, "--syslog"]
                              + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=CMD_TIMEOUT)
        msgs = []
        while True:
            try:
                msgs.append(rx.recv(4096).decode(errors="replace"))
            except (socket.timeout, BlockingIOError):
                break
            rx.settimeout(0.2)
        return proc.returncode, proc.stderr.decode(errors="replace"), msgs

    def test_listen_failure_is_in_syslog_and_on_stderr(self):
        bad = os.path.join(self.dir, "no", "such", "dir", "vhost.sock")
        rc, err, msgs = self.run_with_syslog(
            ["--socket", bad, "--port", "name=data", self.mnt])
        self.assertEqual(rc, 1, err)
        self.assertIn("cannot listen on " + bad, err)
        self.assertTrue(any("cannot listen on " + bad in m for m in msgs),
                        msgs)
        self.assertFalse(mounted(self.mnt))

    def test_chardev_that_cannot_open_is_in_syslog(self):
        rc, err, msgs = self.run_with_syslog(
            ["--socket", self.sock, "--chardev",
             "file,id=f,path=/nonexistent-dir/x",
             "--port", "name=data,chardev=f", self.mnt])
        self.assertEqual(rc, 1, err)
        self.assertTrue(any("chardev f" in m for m in msgs), msgs)


class HelpVersion(CliTest):
    def test_help_prints_usage_and_exits_0(self):
        for flag in ("--help", "-h"):
            rc, out, err = self.run_vportfs([flag])
            self.assertEqual(rc, 0, flag)
            self.assertIn("usage", out.lower())
            for opt in ("--socket", "--port", "--max-ports", "-o",
                        "--log-level"):
                self.assertIn(opt, out, "%s does not mention %s" %
                              (flag, opt))
            # Where an unnumbered port goes (a new user asked why not 0).
            self.assertIn("lowest free, 0 only for a console", out)

    def test_version(self):
        for flag in ("--version", "-V"):
            rc, out, err = self.run_vportfs([flag])
            self.assertEqual(rc, 0, flag)
            self.assertRegex(out, r"^vportfs \d+\.\d+(\.\d+)?\S*\n$")
        with open(os.path.join(vpharness.ROOT, "CMakeLists.txt")) as f:
            m = re.search(r"project\(vportfs VERSION (\S+)", f.read())
        if m:
            self.assertEqual(out, "vportfs %s\n" % m.group(1))


class Shutdown(unittest.TestCase):
    """SIGTERM/SIGINT with a frontend connected and a reader blocked on a
    port file: exit 0, the blocked reader ends, the mount and the socket
    are gone."""

    def setUp(self):
        self.addCleanup(signal.signal, signal.SIGALRM,
                        signal.signal(signal.SIGALRM, _alarm))
        signal.alarm(TEST_TIMEOUT)
        self.addCleanup(signal.alarm, 0)
        self.d = Daemon(("name=data",))
        self.addCleanup(stop_and_clean, self.d)
        self.d.start()
        self.sim = Sim(VPORTFS_SIM, self.d.sock)
        self.addCleanup(self.sim.close)
        self.nr = self.sim.wait_port("data")

    def check_signal(self, sig):
        self.sim.open(self.nr)
        out = os.path.join(self.d.dir, "cat.out")
        with open(out, "wb") as f:
            cat = subprocess.Popen(["cat", self.d.path("data")], stdout=f)
        self.addCleanup(lambda: cat.poll() is None and cat.kill())
        self.sim.wait_host(self.nr, True, 5)
        self.sim.write_all(self.nr, b"before\n")
        wait_until(lambda: os.path.getsize(out) == 7, 5,
                   what="cat to copy the guest's bytes")
        time.sleep(0.2)
        self.assertIsNone(cat.poll(), "cat should be blocked reading")
        self.assertTrue(mounted(self.d.mnt))

        self.d.proc.send_signal(sig)
        try:
            self.d.proc.wait(CMD_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("vportfs ignored %s:\n%s" %
                      (signal.Signals(sig).name, self.d.read_log()))
        try:
            cat.wait(CMD_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("cat still blocked after vportfs exited")
        self.assertFalse(mounted(self.d.mnt), "mount left behind")
        self.assertFalse(os.path.lexists(self.d.sock),
                         "socket file left behind")
        self.assertEqual(self.d.stop(), 0, self.d.read_log())
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"before\n")

    def test_sigterm_unmounts_removes_socket_exits_0(self):
        self.check_signal(signal.SIGTERM)

    def test_sigint_unmounts_removes_socket_exits_0(self):
        self.check_signal(signal.SIGINT)

    def test_sighup_does_not_stop_the_daemon(self):
        # SIGHUP reopens log and file chardevs (logrotate): the mount, the
        # socket and a blocked reader carry on.
        self.sim.open(self.nr)
        self.d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        self.assertTrue(self.d.alive(), self.d.read_log())
        self.assertTrue(mounted(self.d.mnt))
        self.assertTrue(os.path.exists(self.d.sock))
        with open(self.d.path("data"), "rb", buffering=0) as f:
            self.sim.write_all(self.nr, b"after\n")
            self.assertEqual(f.read(6), b"after\n")

    def test_sigterm_without_frontend(self):
        self.sim.close()
        time.sleep(0.1)
        self.d.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.d.proc.wait(CMD_TIMEOUT), 0)
        self.assertFalse(mounted(self.d.mnt))
        self.assertFalse(os.path.lexists(self.d.sock))


class ListeningSocket(CliTest):
    def start(self, d):
        self.addCleanup(stop_and_clean, d)
        return d.start()

    def assert_frontend_works(self, path):
        with Sim(VPORTFS_SIM, path) as sim:
            nr = sim.wait_port("data")
            self.assertEqual(sim.info(nr)["name"], "data")

    def test_live_socket_of_another_daemon_is_not_taken_over(self):
        a = self.start(Daemon(("name=data",)))
        b = Daemon(("name=data",))
        self.addCleanup(stop_and_clean, b)
        b.sock = a.sock
        with self.assertRaises(RuntimeError):
            b.start()
        self.assertEqual(b.proc.returncode, 1)
        self.assertIn("Address already in use", b.read_log())
        self.assertFalse(mounted(b.mnt))
        # The first daemon keeps its socket, and it still answers.
        self.assertTrue(os.path.exists(a.sock))
        self.assert_frontend_works(a.sock)

    def test_stale_socket_is_replaced(self):
        d = Daemon(("name=data",))
        # A daemon killed with SIGKILL leaves its bound socket file behind.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(d.sock)
        s.listen(1)
        s.close()
        self.assertTrue(stat.S_ISSOCK(os.lstat(d.sock).st_mode))
        self.start(d)
        self.assertTrue(stat.S_ISSOCK(os.lstat(d.sock).st_mode))
        self.assertEqual(os.lstat(d.sock).st_mode & 0o777, 0o600)
        self.assertFalse("error:" in d.read_log(), d.read_log())
        self.assert_frontend_works(d.sock)

    def test_socket_left_by_killed_daemon_is_replaced(self):
        first = Daemon(("name=data",))
        self.start(first)
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait(CMD_TIMEOUT)
        ensure_unmounted(first.mnt)
        self.assertFalse(mounted(first.mnt))
        self.assertTrue(os.path.lexists(first.sock))
        second = CliDaemon(argv=[VPORTFS, "--socket", first.sock,
                                 "--port", "name=data", self.mnt])
        second.mnt = self.mnt
        second.sock = first.sock
        self.start(second)
        self.assert_frontend_works(first.sock)

    def test_regular_file_at_socket_path_is_refused(self):
        with open(self.sock, "w") as f:
            f.write("precious\n")
        rc, out, err = self.run_vportfs(["--socket", self.sock, "--port",
                                         "name=data", self.mnt])
        self.assertNotEqual(rc, 0)
        self.assertIn(self.sock + ": something that is not a socket is "
                      "there", err)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertFalse(mounted(self.mnt))
        with open(self.sock) as f:
            self.assertEqual(f.read(), "precious\n")

    def test_inherited_listening_socket_with_fd(self):
        path = os.path.join(self.dir, "activated.sock")
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(ls.close)
        ls.bind(path)
        ls.listen(4)
        ls.set_inheritable(True)
        fd = ls.fileno()
        d = CliDaemon(argv=[VPORTFS, "--fd", str(fd), "--port", "name=data",
                            self.mnt], pass_fds=(fd,),
                      need_socket_file=False)
        d.mnt = self.mnt
        self.start(d)
        with Sim(VPORTFS_SIM, path) as sim:
            nr = sim.wait_port("data")
            sim.open(nr)
            fdp = os.open(os.path.join(self.mnt, "data"), os.O_RDWR)
            self.addCleanup(os.close, fdp)
            sim.wait_host(nr, True)
            sim.write_all(nr, b"via --fd")
            r, _, _ = select.select([fdp], [], [], 5)
            self.assertTrue(r, "no data through the inherited socket")
            self.assertEqual(os.read(fdp, 100), b"via --fd")

    def test_fd_that_is_not_a_socket_fails_without_mounting(self):
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        proc = subprocess.Popen([VPORTFS, "--fd", str(r), "--port",
                                 "name=data", self.mnt],
                                stderr=subprocess.PIPE, pass_fds=(r,),
                                start_new_session=True)
        try:
            _, err = proc.communicate(timeout=CMD_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            self.fail("vportfs --fd PIPE did not exit")
        self.assertNotEqual(proc.returncode, 0)
        self.assertTrue(err.strip(), "no message")
        self.assertFalse(mounted(self.mnt))


class Notify(CliTest):
    def check_ready(self, addr, bind_addr):
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(ns.close)
        ns.bind(bind_addr)
        env = dict(os.environ, NOTIFY_SOCKET=addr)
        d = CliDaemon(("name=data",), env=env)
        self.addCleanup(stop_and_clean, d)
        with open(d.log, "wb") as log:
            d.proc = subprocess.Popen(d.argv(), stdout=log,
                                      stderr=subprocess.STDOUT,
                                      start_new_session=True, env=env)
        vpharness._live.append(d)
        r, _, _ = select.select([ns], [], [], 10)
        self.assertTrue(r, "no READY=1 on NOTIFY_SOCKET:\n" + d.read_log())
        msg = ns.recv(4096)
        self.assertTrue(mounted(d.mnt), "READY=1 before the mount is live")
        self.assertTrue(os.path.exists(d.sock),
                        "READY=1 before the socket exists")
        self.assertIn(b"READY=1", msg.split(b"\n"))
        r, _, _ = select.select([ns], [], [], 0.3)
        self.assertFalse(r, "more than one notification")
        self.assertTrue(d.alive())

    def test_ready_sent_to_notify_socket(self):
        path = os.path.join(self.dir, "notify.sock")
        self.check_ready(path, path)

    def test_ready_sent_to_abstract_notify_socket(self):
        name = "vportfs-test-notify-%d-%d" % (os.getpid(), time.monotonic_ns())
        self.check_ready("@" + name, "\0" + name)


class MaxPorts(CliTest):
    def check_max_ports(self, n):
        d = Daemon(("name=data",), ["--max-ports", str(n)])
        self.addCleanup(stop_and_clean, d)
        d.start()
        with Sim(VPORTFS_SIM, d.sock) as sim:
            cols, rows, maxp = sim.config()
            self.assertEqual(maxp, n)
            self.assertEqual(int(sim.status()["max_nr_ports"]), n)
            sim.wait_port("data")

    def test_max_ports_5(self):
        self.check_max_ports(5)

    def test_max_ports_default_31(self):
        d = Daemon(("name=data",))
        self.addCleanup(stop_and_clean, d)
        d.start()
        with Sim(VPORTFS_SIM, d.sock) as sim:
            self.assertEqual(sim.config()[2], 31)

    def test_max_ports_127(self):
        self.check_max_ports(127)


if __name__ == "__main__":
    unittest.main()
