"""QEMU's "Backend program conventions" (docs/interop/vhost-user.rst) and
life under systemd, against the real binary:

  --socket-path (and the --socket alias); --fd with a listening socket
  and with a connected one; --print-capabilities wherever it stands;
  --socket-group and --socket-mode; --config FILE; socket activation for
  real through systemd-socket-activate, with the NOTIFY_SOCKET messages
  (READY=1, STATUS=, STOPPING=1).
"""
import grp
import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

import vpharness  # noqa: E402
from vpharness import VPORTFS, VPORTFS_SIM, wait_until  # noqa: E402
from simctl import Sim  # noqa: E402
from test_cli import CliDaemon, CliTest, mounted, stop_and_clean  # noqa: E402


def port_round_trip(test, sim, mnt, name="data"):
    """Bytes cross port `name` both ways."""
    nr = sim.wait_port(name)
    sim.open(nr)
    fd = os.open(os.path.join(mnt, name), os.O_RDWR)
    test.addCleanup(os.close, fd)
    sim.wait_host(nr, True)
    sim.write_all(nr, b"to the host")
    r, _, _ = select.select([fd], [], [], 5)
    test.assertTrue(r, "nothing from the guest")
    test.assertEqual(os.read(fd, 100), b"to the host")
    os.write(fd, b"to the guest")
    test.assertEqual(sim.readn(nr, 12), b"to the guest")


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, test, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        test.addCleanup(self.sock.close)
        self.sock.bind(path)
        self.path = path
        self.messages = []

    def wait_for(self, pred, timeout=10, what="a notification"):
        """Collects messages until one satisfies pred; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            for m in self.messages:
                if pred(m):
                    return m
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.sock], [], [], max(left, 0))
            if not r:
                raise AssertionError("no %s on NOTIFY_SOCKET; got %r" %
                                     (what, self.messages))
            self.messages.append(self.sock.recv(4096).decode())

    def wait_key(self, key, value_has="", timeout=10):
        def has(m):
            return any(line.startswith(key + "=") and value_has in line
                       for line in m.split("\n"))
        return self.wait_for(has, timeout, "%s=...%s" % (key, value_has))


class SocketPath(CliTest):
    def check(self, option):
        d = CliDaemon(argv=[VPORTFS, option, self.sock, "--port",
                            "name=data", self.mnt])
        d.mnt, d.sock = self.mnt, self.sock
        self.addCleanup(stop_and_clean, d)
        d.start()
        with Sim(VPORTFS_SIM, self.sock) as sim:
            port_round_trip(self, sim, self.mnt)
        # Created 0600 unless told otherwise.
        self.assertEqual(stat.S_IMODE(os.stat(self.sock).st_mode), 0o600)

    def test_socket_path(self):
        self.check("--socket-path")

    def test_socket_is_an_alias(self):
        self.check("--socket")


class SocketAccess(CliTest):
    """--socket-group and --socket-mode, so that a QEMU running as another
    user can connect."""

    def test_group_and_mode_are_set_on_the_socket(self):
        group = grp.getgrnam("nogroup").gr_gid
        d = CliDaemon(argv=[VPORTFS, "--socket-path", self.sock,
                            "--socket-group", "nogroup", "--socket-mode",
                            "0660", "--port", "name=data", self.mnt])
        d.mnt, d.sock = self.mnt, self.sock
        self.addCleanup(stop_and_clean, d)
        d.start()
        st = os.stat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(st.st_gid, group)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        with Sim(VPORTFS_SIM, self.sock) as sim:
            port_round_trip(self, sim, self.mnt)

    def test_unknown_group_is_a_bad_option(self):
        rc, _, err = self.run_vportfs(["--socket-path", self.sock,
                                       "--socket-group", "no-such-grp-x",
                                       self.mnt])
        self.assertEqual(rc, 2)
        self.assertIn("no-such-grp-x", err)
        self.assertFalse(os.path.exists(self.sock))
        self.assertFalse(mounted(self.mnt))


class PrintCapabilities(CliTest):
    def check(self, args):
        rc, out, err = self.run_vportfs(args)
        self.assertEqual(rc, 0, err)
        self.assertEqual(err, "")
        # The schema's object for a console backend, and nothing else.
        self.assertEqual(json.loads(out), {"type": "console"})
        self.assertFalse(mounted(self.mnt))

    def test_alone(self):
        self.check(["--print-capabilities"])

    def test_after_bad_options_and_arguments(self):
        self.check(["--bogus", "-x", "--max-ports", "0", "--port", "nr=zz",
                    "a", "b", "--print-capabilities"])

    def test_before_a_full_command_line(self):
        self.check(["--print-capabilities", "--socket-path", self.sock,
                    "--port", "name=data", self.mnt])
        self.assertFalse(os.path.exists(self.sock))


class InheritedFd(CliTest):
    """--fd: a listening socket is in test_cli.ListeningSocket; here the
    connected one (crosvm, libvirt's vhost-user-gpu launcher)."""

    def test_connected_socket_serves_that_vm_then_exits(self):
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(mine.close)
        self.addCleanup(theirs.close)
        mine.set_inheritable(True)
        theirs.set_inheritable(True)
        d = CliDaemon(argv=[VPORTFS, "--fd", str(mine.fileno()), "--port",
                            "name=data", self.mnt],
                      pass_fds=(mine.fileno(),), need_socket_file=False)
        d.mnt = self.mnt
        self.addCleanup(stop_and_clean, d)
        d.start()
        mine.close()
        sim = Sim(VPORTFS_SIM, "fd:%d" % theirs.fileno(),
                  pass_fds=(theirs.fileno(),))
        self.addCleanup(sim.close)
        theirs.close()
        port_round_trip(self, sim, self.mnt)
        # Nobody else can connect: when this VM goes, so does vportfs,
        # cleanly.
        sim.disconnect()
        d.proc.wait(10)
        self.assertEqual(d.proc.returncode, 0, d.read_log())
        self.assertFalse(mounted(self.mnt))

    def test_datagram_socket_is_refused(self):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        a.set_inheritable(True)
        proc = subprocess.run([VPORTFS, "--fd", str(a.fileno()), "--port",
                               "name=data", self.mnt],
                              capture_output=True, text=True,
                              pass_fds=(a.fileno(),), timeout=10)
        # A bad option, checked before anything is opened.
        self.assertEqual(proc.returncode, 2)
        self.assertIn("--fd %d: not a stream socket" % a.fileno(),
                      proc.stderr)
        self.assertFalse(mounted(self.mnt))


class InheritedFdChecked(CliTest):
    """--fd N is checked before vportfs opens a descriptor of its own,
    which could otherwise take number N and be served as the VMM's."""

    def test_fd_that_is_not_open_is_a_bad_option(self):
        rc, _, err = self.run_vportfs(
            ["--fd", "9", "--chardev",
             "socket,id=c,path=%s,server=on,wait=off" %
             os.path.join(self.dir, "c.sock"),
             "--port", "name=data,chardev=c", self.mnt])
        self.assertEqual(rc, 2, err)
        self.assertIn("--fd 9: not an open descriptor", err)
        self.assertFalse(mounted(self.mnt))

    def test_two_activated_sockets_are_a_bad_configuration(self):
        a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        # Numbers 3 and 4 in the child, LISTEN_PID its own pid.
        script = ("import os, sys; os.dup2(%d, 3); os.dup2(%d, 4); "
                  "os.environ.update(LISTEN_PID=str(os.getpid()), "
                  "LISTEN_FDS='2'); os.execv(sys.argv[1], sys.argv[1:])"
                  % (a.fileno(), b.fileno()))
        proc = subprocess.run([sys.executable, "-c", script, VPORTFS,
                               "--port", "name=data", self.mnt],
                              capture_output=True, text=True, timeout=10,
                              pass_fds=(a.fileno(), b.fileno()))
        # Exit 2: systemd's RestartPreventExitStatus=2 does not retry it.
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("passed 2 sockets", proc.stderr)
        self.assertFalse(mounted(self.mnt))


class ConfigFile(CliTest):
    def write_config(self, text):
        path = os.path.join(self.dir, "vm1.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_options_and_mountpoint_from_the_file(self):
        conf = self.write_config(
            "# vm1\n"
            "socket-path %s\n"
            "port name=data\n"
            "port name=console0,nr=0,console=on\n"
            "log-level info\n"
            "mountpoint %s\n" % (self.sock, self.mnt))
        d = CliDaemon(argv=[VPORTFS, "--config", conf])
        d.mnt, d.sock = self.mnt, self.sock
        self.addCleanup(stop_and_clean, d)
        d.start()
        self.assertEqual(sorted(os.listdir(self.mnt)),
                         [".events", "console0", "data"])
        with Sim(VPORTFS_SIM, self.sock) as sim:
            port_round_trip(self, sim, self.mnt)

    def test_command_line_overrides_the_file(self):
        other = os.path.join(self.dir, "other.sock")
        conf = self.write_config("socket-path %s\nport name=data\n"
                                 "mountpoint /nonexistent\n" % other)
        d = CliDaemon(argv=[VPORTFS, "--config", conf, "--socket-path",
                            self.sock, self.mnt])
        d.mnt, d.sock = self.mnt, self.sock
        self.addCleanup(stop_and_clean, d)
        d.start()
        self.assertFalse(os.path.exists(other))
        with Sim(VPORTFS_SIM, self.sock) as sim:
            port_round_trip(self, sim, self.mnt)

    def test_error_names_file_and_line(self):
        conf = self.write_config("socket-path %s\n\n# max-ports\n"
                                 "max-ports 200\n" % self.sock)
        rc, _, err = self.run_vportfs(["--config", conf, self.mnt])
        self.assertEqual(rc, 2)
        self.assertIn("%s:4: --max-ports '200'" % conf, err)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertFalse(mounted(self.mnt))
        self.assertFalse(os.path.exists(self.sock))


class LogLevels(CliTest):
    """virtiofsd's level names: each shows its own and the levels above,
    no more; off shows nothing."""

    def run_with(self, level):
        d = CliDaemon(argv=[VPORTFS, "--socket-path", self.sock,
                            "--log-level", level, "--port", "name=data",
                            self.mnt])
        d.mnt, d.sock = self.mnt, self.sock
        self.addCleanup(stop_and_clean, d)
        d.start()
        with Sim(VPORTFS_SIM, self.sock) as sim:
            port_round_trip(self, sim, self.mnt)
            # A warning: an event for a port that does not exist.
            sim.ctrl(30, "PORT_OPEN", 1)
            sim.sleep(0.2)
        return d.read_log()

    def test_trace_shows_every_control_message(self):
        log = self.run_with("trace")
        self.assertIn("trace: control from the guest: port 1 event 6", log)
        self.assertIn("trace: control to the guest:", log)
        self.assertIn("trace: frontend: SET_MEM_TABLE", log)
        self.assertIn("debug: ", log)

    def test_debug_shows_no_trace(self):
        log = self.run_with("debug")
        self.assertIn("debug: ", log)
        self.assertNotIn("trace: ", log)

    def test_warn_is_the_default_level(self):
        log = self.run_with("warn")
        self.assertIn("warn: guest control event", log)
        self.assertNotIn("info: ", log)

    def test_off_shows_nothing(self):
        self.assertEqual(self.run_with("off"), "")


class SocketActivation(CliTest):
    """systemd-socket-activate (Debian's systemd package) listens, and on
    the first connection starts vportfs with LISTEN_FDS and LISTEN_FDNAMES,
    as vportfs@.socket would."""

    def test_activated_socket_notify_and_stop(self):
        notify = NotifySocket(self, os.path.join(self.dir, "notify.sock"))
        launcher = subprocess.Popen(
            ["systemd-socket-activate", "-l", self.sock,
             "--fdname=vhost-user",
             "-E", "NOTIFY_SOCKET=" + notify.path,
             VPORTFS, "--port", "name=data", "--port",
             "name=console0,nr=0,console=on", self.mnt],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)

        def cleanup():
            if launcher.poll() is None:
                os.killpg(launcher.pid, signal.SIGKILL)
                launcher.wait()
            launcher.stderr.close()
        self.addCleanup(cleanup)
        wait_until(lambda: os.path.exists(self.sock), 5,
                   what="systemd-socket-activate to listen")
        # vportfs starts only now, on the first connection.
        self.assertFalse(mounted(self.mnt))
        with Sim(VPORTFS_SIM, self.sock) as sim:
            ready = notify.wait_key("READY", "1")
            self.assertTrue(mounted(self.mnt), "READY=1 before the mount")
            self.assertIn("STATUS=", ready)
            port_round_trip(self, sim, self.mnt)
            # A person can read what is going on, named by the socket.
            notify.wait_key("STATUS", "VM connected on vhost-user")
            # The console port is open in the guest too (the sim, like Linux,
            # opens it itself).
            notify.wait_key("STATUS", "2 open in the guest, 1 on the host")
        notify.wait_key("STATUS", "waiting for a VM on vhost-user")
        os.killpg(launcher.pid, signal.SIGTERM)
        launcher.wait(10)
        notify.wait_key("STOPPING", "1")
        self.assertEqual(launcher.returncode, 0,
                         launcher.stderr.read().decode())
        self.assertFalse(mounted(self.mnt))


if __name__ == "__main__":
    unittest.main()
