"""Chardevs: QEMU-style host backends for ports (docs/chardev.md).

Each test runs a real vportfs with --chardev options, the simulated guest
(vportfs-sim) and a real FUSE mount in private temp dirs under /var/tmp,
and talks to the backend's far side the way a user would: a unix or TCP
socket, a fifo, a pty, inherited descriptors, files and the attributes
of the port's file.  Everything a test makes (daemons, mounts, sockets,
tmpfs mounts, fds) is undone by its cleanups, failed or not.
"""
import errno
import fcntl
import hashlib
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

import vpharness  # noqa: E402
from vpharness import (close_all, Blocked, Daemon, VPORTFS, VPORTFS_SIM,  # noqa: E402
                       force_unmount, mounted, read_exact, wait_until)
from simctl import Sim, SimTimeout  # noqa: E402

TEST_TIMEOUT = 60
T = 5.0          # default wait for something the daemon must do
CMD_TIMEOUT = 10  # a vportfs run that must exit by itself


# ---- helpers -------------------------------------------------------------

def recv_exact(sock, n, timeout=T):
    """n bytes from a socket (AssertionError after timeout or at EOF)."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("got %d of %d bytes (%r...)" %
                                 (len(buf), n, bytes(buf[:64])))
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            continue
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise AssertionError("EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def nothing_arrives(fileobj, wait=0.5):
    """True if no byte (and no EOF) is readable on fileobj within `wait`."""
    r, _, _ = select.select([fileobj], [], [], wait)
    return not r


def inq(sock):
    """Bytes waiting in a socket's receive queue (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD,
                                          b"\0\0\0\0"))[0]


def settle(sock, timeout=T):
    """Wait until no more bytes arrive at a socket nobody reads (its
    queue stays the same for 0.2 s); the queue's length."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        n = inq(sock)
        if n == last:
            return n
        last = n
        time.sleep(0.2)
    return last


def free_tcp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def slurp(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def pattern(n, tag=b""):
    """n bytes of numbered lines: any loss, duplication or reordering
    shows."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += b"%s%07d\n" % (tag, i)
        i += 1
    return bytes(out[:n])


class ChrDaemon(Daemon):
    """A Daemon that may inherit descriptors and may be launched without
    waiting for its mount (wait=on holds the mount back)."""

    def __init__(self, ports, args=(), pass_fds=()):
        super().__init__(ports, args)
        self.pass_fds = tuple(pass_fds)

    def launch(self):
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log,
                                         stderr=subprocess.STDOUT,
                                         start_new_session=True,
                                         pass_fds=self.pass_fds)
        vpharness._live.append(self)
        return self

    def wait_up(self, timeout=10.0):
        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("vportfs exited with %d:\n%s" %
                                   (self.proc.returncode, self.read_log()))
            return os.path.ismount(self.mnt) and os.path.exists(self.sock)
        wait_until(up, timeout, what="vportfs to mount")
        return self

    def start(self, timeout=10.0):
        return self.launch().wait_up(timeout)


def stop_and_clean(d):
    d.stop()
    force_unmount(d.mnt)
    shutil.rmtree(d.dir, ignore_errors=True)


class ChardevTest(unittest.TestCase):
    """A private dir for the test's own files (sockets, logs, fifos), and
    helpers to start a daemon with chardevs and a guest."""

    def setUp(self):
        signal.alarm(TEST_TIMEOUT)
        self.addCleanup(signal.alarm, 0)
        self.dir = tempfile.mkdtemp(prefix="vportfs-chr-", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.fds = []
        self.addCleanup(close_all, self.fds)

    def p(self, name):
        return os.path.join(self.dir, name)

    def daemon(self, ports, chardevs=(), args=(), pass_fds=()):
        """A ChrDaemon (not started) stopped and removed at cleanup."""
        argv = []
        for c in chardevs:
            argv += ["--chardev", c]
        d = ChrDaemon(ports, argv + list(args), pass_fds)
        self.addCleanup(stop_and_clean, d)
        self.d = d
        return d

    def start(self, ports, chardevs=(), args=(), pass_fds=()):
        """Start a daemon and a guest; returns the guest."""
        self.daemon(ports, chardevs, args, pass_fds).start()
        return self.guest()

    def guest(self):
        self.sim = Sim(VPORTFS_SIM, self.d.sock)
        self.addCleanup(self.sim.close)
        return self.sim

    def open(self, name, flags=os.O_RDWR):
        fd = os.open(self.d.path(name), flags)
        self.fds.append(fd)
        return fd

    def close(self, fd):
        self.fds.remove(fd)
        os.close(fd)

    def attr(self, name, key):
        return os.getxattr(self.d.path(name),
                           "user.vport." + key).decode()

    def chr_attr(self, name, cid, key):
        return self.attr(name, "chardev.%s.%s" % (cid, key))

    def wait_attr(self, name, key, value, timeout=T):
        try:
            wait_until(lambda: self.attr(name, key) == value, timeout)
            return
        except TimeoutError:
            pass
        self.fail("user.vport.%s is %s, not %s after %ss" %
                  (key, self.attr(name, key), value, timeout))

    def unix_client(self, path, rcvbuf=None):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.connect(path)
        return s

    def unix_server(self, path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.bind(path)
        s.listen(4)
        return s

    def accept(self, server, timeout=T):
        r, _, _ = select.select([server], [], [], timeout)
        self.assertTrue(r, "the daemon did not connect within %ss" % timeout)
        conn, _ = server.accept()
        self.addCleanup(conn.close)
        return conn

    def alive_and_mounted(self):
        self.assertTrue(self.d.alive(), self.d.read_log())
        self.assertTrue(mounted(self.d.mnt))

    def round_trip(self, name, nr, tag=b"rt"):
        """Both ways through port file `name` (guest port nr)."""
        fd = self.open(name, os.O_RDWR)
        self.sim.open(nr)
        self.sim.wait_host(nr, True)
        self.assertEqual(os.write(fd, b"down-" + tag), 5 + len(tag))
        self.assertEqual(self.sim.readn(nr, 5 + len(tag)), b"down-" + tag)
        self.sim.write_all(nr, b"up-" + tag)
        self.assertEqual(read_exact(fd, 3 + len(tag)), b"up-" + tag)
        self.close(fd)


# ---- 1. the command line -------------------------------------------------

class CliCase(ChardevTest):
    """Runs vportfs to completion and checks how it refused to start."""

    def run_vportfs(self, args, timeout=CMD_TIMEOUT):
        proc = subprocess.Popen([VPORTFS] + list(args),
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            force_unmount(self.mnt)
            self.fail("vportfs %r did not exit" % (args,))
        return proc.returncode, err.decode(errors="replace")

    def setUp(self):
        super().setUp()
        self.mnt = self.p("mnt")
        self.sock = self.p("vhost.sock")
        self.csock = self.p("c.sock")
        os.mkdir(self.mnt)
        self.addCleanup(force_unmount, self.mnt)

    def check_rejected(self, args, *names, status=2, timeout=CMD_TIMEOUT):
        argv = ["--socket", self.sock] + list(args) + [self.mnt]
        rc, err = self.run_vportfs(argv, timeout)
        lines = err.splitlines()
        self.assertEqual(rc, status, "argv %r: status %d, stderr %r" %
                         (argv, rc, err))
        self.assertEqual(len(lines), 1, "argv %r: want one stderr line, "
                         "got %r" % (argv, err))
        # The culprit named by the message itself, not only in an echo
        # of the option it quotes.
        said = lines[0]
        for a in args:
            if "," in a:
                said = said.replace(a, "")
        for name in names:
            self.assertIn(name, said, "argv %r: %r does not name %r" %
                          (argv, lines[0], name))
        self.assertFalse(mounted(self.mnt), "something got mounted")
        self.assertFalse(os.path.lexists(self.sock), "vhost socket made")
        self.assertFalse(os.path.lexists(self.csock), "chardev socket made")
        return lines[0]


class BadSpecs(CliCase):
    """A bad --chardev or chardev=: exit 2, one line naming the culprit,
    nothing mounted, no socket made (vhost-user or chardev)."""

    def test_unknown_backend(self):
        self.check_rejected(["--chardev", "bogusbe,id=a",
                             "--port", "name=d,chardev=a"], "bogusbe")

    def test_missing_id(self):
        self.check_rejected(["--chardev", "null",
                             "--port", "name=d"], "id=")

    def test_unknown_option(self):
        self.check_rejected(["--chardev", "null,id=a,bogus=1",
                             "--port", "name=d,chardev=a"], "bogus")

    def test_a_typo_of_a_required_option_is_named(self):
        # "pth=" is a typo of "path=", not a missing "path=".
        for spec, typo in (("socket,id=a,pth=%s,server=on" % self.csock,
                            "pth"),
                           ("file,id=a,pth=/x", "pth"),
                           ("fd,id=a,fdd=3", "fdd")):
            with self.subTest(spec=spec):
                line = self.check_rejected(
                    ["--chardev", spec, "--port", "name=d,chardev=a"])
                self.assertIn("unknown option '%s'" % typo, line)

    def test_tcp_port_out_of_range(self):
        self.check_rejected(["--chardev", "socket,id=a,port=70000,server=on,"
                             "wait=off", "--port", "name=d,chardev=a"],
                            "port=70000")

    def test_malformed_boolean(self):
        self.check_rejected(["--chardev", "socket,id=a,path=%s,server=maybe"
                             % self.csock, "--port", "name=d,chardev=a"],
                            "server", "maybe")

    def test_duplicate_id(self):
        self.check_rejected(["--chardev", "null,id=twice",
                             "--chardev", "null,id=twice",
                             "--port", "name=d,chardev=twice"], "twice")

    def test_chardev_named_by_two_ports(self):
        self.check_rejected(["--chardev", "null,id=shared",
                             "--port", "name=p1,chardev=shared",
                             "--port", "name=p2,chardev=shared"], "shared")

    def test_port_naming_unknown_chardev(self):
        self.check_rejected(["--port", "name=p,chardev=ghost"], "ghost")

    def test_serial_port_with_nr_0(self):
        self.check_rejected(["--port", "name=x,nr=0"], "nr=0")

    def test_socket_with_path_and_port(self):
        self.check_rejected(["--chardev", "socket,id=a,path=%s,port=4444,"
                             "server=on,wait=off" % self.csock,
                             "--port", "name=d,chardev=a"], "path", "port")

    def test_reconnect_ms_on_server(self):
        self.check_rejected(["--chardev", "socket,id=a,path=%s,server=on,"
                             "wait=off,reconnect-ms=100" % self.csock,
                             "--port", "name=d,chardev=a"], "reconnect-ms")

    def test_wait_on_client(self):
        self.check_rejected(["--chardev", "socket,id=a,path=%s,wait=off"
                             % self.csock, "--port", "name=d,chardev=a"],
                            "wait")

    def test_ringbuf_size_not_power_of_two(self):
        self.check_rejected(["--chardev", "ringbuf,id=rb,size=1000",
                             "--port", "name=d,chardev=rb"], "size")

    def test_ringbuf_size_above_64k(self):
        self.check_rejected(["--chardev", "ringbuf,id=rb,size=128K",
                             "--port", "name=d,chardev=rb"], "size")


class StartupFailures(CliCase):
    """A chardev that cannot be opened: exit 1 naming it, nothing
    mounted, no vhost-user socket."""

    def check_fails(self, args, cid, *names, timeout=CMD_TIMEOUT):
        line = self.check_rejected(args, status=1, timeout=timeout)
        self.assertIn("chardev " + cid, line)
        for n in names:
            self.assertIn(n, line)

    def test_file_in_missing_directory(self):
        self.check_fails(["--chardev", "file,id=f,path=/nonexistent-dir/x",
                          "--port", "name=d,chardev=f"], "f",
                         "/nonexistent-dir/x")

    def test_log_in_missing_directory(self):
        self.check_fails(["--chardev", "log,id=lg,path=/nonexistent-dir/x",
                          "--port", "name=d,chardev=lg"], "lg",
                         "/nonexistent-dir/x")

    # Inherited numbers are checked before the daemon opens anything: once
    # it has, 3 is libev's epoll fd and 4, 5 its eventfds, and a chardev
    # on one of those would abort the daemon (3) or talk to itself.
    def test_fd_not_inherited(self):
        for n in (3, 4, 5):
            with self.subTest(fd=n):
                try:
                    self.check_fails(["--chardev", "fd,id=a,fd=%d" % n,
                                      "--port", "name=d,chardev=a"], "a",
                                     "descriptor %d" % n, timeout=3)
                finally:
                    # fd=3 aborts after mounting: a dead mount is left.
                    force_unmount(self.mnt)

    def test_stdio_without_standard_input(self):
        argv = [VPORTFS, "--socket", self.sock, "--chardev", "stdio,id=io",
                "--port", "name=d,chardev=io", self.mnt]
        p = subprocess.run(argv, stdin=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=CMD_TIMEOUT,
                           preexec_fn=lambda: os.close(0))
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("chardev io: standard input is not open", err)
        self.assertFalse(mounted(self.mnt))

    def test_socket_client_nobody_listens(self):
        self.check_fails(["--chardev", "socket,id=cl,path=%s" % self.csock,
                          "--port", "name=d,chardev=cl"], "cl", self.csock)

    def test_socket_client_stale_socket_file(self):
        # A socket file nobody listens on any more: ECONNREFUSED.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.p("stale.sock"))
        s.close()
        self.check_fails(["--chardev", "socket,id=cl,path=%s"
                          % self.p("stale.sock"),
                          "--port", "name=d,chardev=cl"], "cl")

    def test_socket_server_path_is_a_regular_file(self):
        path = self.p("precious")
        with open(path, "w") as f:
            f.write("keep me\n")
        self.check_fails(["--chardev", "socket,id=srv,path=%s,server=on,"
                          "wait=off" % path,
                          "--port", "name=d,chardev=srv"], "srv", path)
        self.assertEqual(slurp(path), b"keep me\n")

    def test_missing_input_path_leaves_path_untouched(self):
        out = self.p("out.txt")
        with open(out, "w") as f:
            f.write("keep me\n")
        self.check_fails(["--chardev", "file,id=f,path=%s,input-path=%s"
                          % (out, self.p("missing")),
                          "--port", "name=d,chardev=f"], "f", "missing")
        self.assertEqual(slurp(out), b"keep me\n")

    def test_pty_link_over_a_regular_file(self):
        path = self.p("notalink")
        with open(path, "w") as f:
            f.write("keep me\n")
        self.check_fails(["--chardev", "pty,id=tty,link=%s" % path,
                          "--port", "name=d,chardev=tty"], "tty", path)
        self.assertEqual(slurp(path), b"keep me\n")


class SpecSyntax(ChardevTest):
    def test_escaped_comma_and_bare_boolean(self):
        # ",," is a literal comma; a bare "append" is append=on.
        path = self.p("a,b.txt")
        with open(path, "wb") as f:
            f.write(b"old\n")
        sim = self.start(["name=data,chardev=f"],
                         ["file,id=f,path=%s,append" %
                          path.replace(",", ",,")])
        nr = sim.wait_port("data")
        sim.open(nr)
        sim.write_all(nr, b"new\n")
        wait_until(lambda: slurp(path) == b"old\nnew\n", T,
                   what="output appended to the file with a comma")
        self.assertEqual(sorted(os.listdir(self.dir)), ["a,b.txt"])


class Attributes(ChardevTest):
    # An id may contain '.', so "a" is a prefix of "a.b": the key
    # "a.b.backend" must reach chardev "a.b", not stop at "a".
    def test_every_listed_attribute_can_be_read(self):
        self.start(["name=data,chardev=a,chardev=a.b"],
                   ["null,id=a", "ringbuf,id=a.b,size=1K"])
        names = os.listxattr(self.d.path("data"))
        self.assertIn("user.vport.chardev.a.b.backend", names)
        unreadable = []
        for n in names:
            try:
                os.getxattr(self.d.path("data"), n)
            except OSError as e:
                unreadable.append("%s: %s" % (n, e.strerror))
        self.assertEqual(unreadable, [], "listed but unreadable")
        self.assertEqual(self.chr_attr("data", "a", "backend"), "null")
        self.assertEqual(self.chr_attr("data", "a.b", "backend"),
                         "ringbuf")

    def test_attributes_only_on_the_chardevs_port(self):
        self.start(["name=data,chardev=n", "name=other"], ["null,id=n"])
        self.assertFalse([n for n in os.listxattr(self.d.path("other"))
                          if ".chardev." in n])
        with self.assertRaises(OSError) as cm:
            os.getxattr(self.d.path("other"), "user.vport.chardev.n.backend")
        self.assertEqual(cm.exception.errno, errno.ENODATA)


# ---- 2. null -------------------------------------------------------------

class Null(ChardevTest):
    def setUp(self):
        super().setUp()
        self.start(["name=data,chardev=n"], ["null,id=n"])
        self.nr = self.sim.wait_port("data")

    def test_counts_as_host_connected(self):
        self.sim.wait_host(self.nr, True)
        self.assertEqual(self.attr("data", "host_connected"), "1")
        self.assertEqual(self.chr_attr("data", "n", "backend"), "null")
        self.assertEqual(self.chr_attr("data", "n", "connected"), "1")
        self.assertEqual(self.chr_attr("data", "n", "errors"), "0")
        names = os.listxattr(self.d.path("data"))
        for key in ("backend", "connected", "errors"):
            self.assertIn("user.vport.chardev.n." + key, names)

    def test_guest_writes_never_block_and_are_dropped(self):
        self.sim.open(self.nr)
        self.sim.wait_host(self.nr, True)
        data = os.urandom(3 << 20)   # three times the port's ring
        path = self.p("big")
        with open(path, "wb") as f:
            f.write(data)
        self.assertEqual(self.sim.write_file(self.nr, path, 5), len(data))
        self.sim.wait_tx(self.nr, T)
        # Nothing was kept for a later reader.
        fd = self.open("data", os.O_RDONLY | os.O_NONBLOCK)
        with self.assertRaises(BlockingIOError):
            os.read(fd, 100)

    def test_fuse_reader_still_gets_everything_after_it_opened(self):
        self.sim.open(self.nr)
        self.sim.write_all(self.nr, b"before the reader\n")
        self.sim.wait_tx(self.nr)
        fd = self.open("data", os.O_RDONLY)
        data = pattern(600000, b"null-")
        got = bytearray()

        def reader():
            while len(got) < len(data):
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                got.extend(b)
        r = Blocked(reader)
        self.sim.write_all(self.nr, data, T)
        r.wait(T * 2)
        self.assertTrue(bytes(got) == data,
                        "the reader got %d bytes, not the %d written "
                        "after it opened" % (len(got), len(data)))


# ---- 3. file -------------------------------------------------------------

class File(ChardevTest):
    def test_append_off_truncates(self):
        path = self.p("out.txt")
        with open(path, "wb") as f:
            f.write(b"OLD CONTENT THAT MUST GO\n")
        sim = self.start(["name=data,chardev=f"],
                         ["file,id=f,path=%s" % path])
        self.assertEqual(slurp(path), b"")
        nr = sim.wait_port("data")
        sim.open(nr)
        sim.write_all(nr, b"hello\n")
        wait_until(lambda: slurp(path) == b"hello\n", T,
                   what="guest output in the file")
        self.assertEqual(self.chr_attr("data", "f", "backend"), "file")
        self.assertEqual(self.chr_attr("data", "f", "connected"), "1")
        sim.wait_host(nr, True)

    def test_append_on_keeps_content(self):
        path = self.p("out.txt")
        with open(path, "wb") as f:
            f.write(b"old\n")
        sim = self.start(["name=data,chardev=f"],
                         ["file,id=f,path=%s,append=on" % path])
        nr = sim.wait_port("data")
        sim.open(nr)
        sim.write_all(nr, b"hello\n")
        wait_until(lambda: slurp(path) == b"old\nhello\n", T,
                   what="guest output appended")

    def test_input_path_feeds_the_guest_once(self):
        inp = self.p("in.txt")
        content = pattern(100000, b"in-")
        with open(inp, "wb") as f:
            f.write(content)
        sim = self.start(["name=data,chardev=f"],
                         ["file,id=f,path=%s,input-path=%s"
                          % (self.p("out.txt"), inp)])
        nr = sim.wait_port("data")
        sim.open(nr)
        self.assertTrue(sim.readn(nr, len(content), T) == content,
                        "the guest got other bytes than input-path's")
        self.assertEqual(sim.read(nr, 4096, 0.5), b"", "fed more than once")
        sim.write_all(nr, b"out\n")
        wait_until(lambda: slurp(self.p("out.txt")) == b"out\n", T,
                   what="output beside the input")

    def test_sighup_after_mv_makes_a_new_file(self):
        path = self.p("serial.txt")
        sim = self.start(["name=data,chardev=f"],
                         ["file,id=f,path=%s" % path])
        nr = sim.wait_port("data")
        sim.open(nr)
        sim.write_all(nr, b"one\n")
        wait_until(lambda: slurp(path) == b"one\n", T)
        os.rename(path, path + ".1")    # what logrotate does
        sim.write_all(nr, b"two\n")
        wait_until(lambda: slurp(path + ".1") == b"one\ntwo\n", T,
                   what="output to the moved file until SIGHUP")
        self.assertFalse(os.path.exists(path))
        self.d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: os.path.exists(path), T,
                   what="SIGHUP to make a new file at path=")
        sim.write_all(nr, b"three\n")
        wait_until(lambda: slurp(path) == b"three\n", T,
                   what="later output in the new file")
        self.assertEqual(slurp(path + ".1"), b"one\ntwo\n")
        self.alive_and_mounted()
        self.assertEqual(self.chr_attr("data", "f", "errors"), "0")


# ---- 4. log --------------------------------------------------------------

class Log(ChardevTest):
    def test_rotation_at_max_size(self):
        path = self.p("console.log")
        sim = self.start(["name=data,chardev=lg"],
                         ["log,id=lg,path=%s,max-size=1K,max-backups=2"
                          % path])
        nr = sim.wait_port("data")
        sim.open(nr)
        data = pattern(5 * 1024 + 300, b"log-")
        for i in range(0, len(data), 700):
            sim.write_all(nr, data[i:i + 700])
        sim.wait_tx(nr)

        def files():
            return [slurp(path + s) or b"" for s in (".2", ".1", "")]
        wait_until(lambda: b"".join(files()).endswith(data[-300:]), T,
                   what="the log to take the guest's last bytes")
        for s in ("", ".1", ".2"):
            self.assertTrue(os.path.exists(path + s), "no " + path + s)
            self.assertLessEqual(os.path.getsize(path + s), 1024,
                                 path + s)
        self.assertFalse(os.path.exists(path + ".3"))
        joined = b"".join(files())
        self.assertGreater(len(joined), 2048)
        self.assertTrue(data.endswith(joined),
                        "path.2+path.1+path is not a suffix of the output")

    def test_max_backups_0_starts_over(self):
        path = self.p("console.log")
        sim = self.start(["name=data,chardev=lg"],
                         ["log,id=lg,path=%s,max-size=1K,max-backups=0"
                          % path])
        nr = sim.wait_port("data")
        sim.open(nr)
        data = pattern(3000, b"b0-")
        sim.write_all(nr, data)
        wait_until(lambda: (slurp(path) or b"").endswith(data[-100:]), T,
                   what="the log to take the last bytes")
        self.assertEqual(sorted(os.listdir(self.dir)), ["console.log"])
        self.assertEqual(slurp(path), data[2048:])

    def test_log_outlives_guest_sessions_and_vms(self):
        path = self.p("console.log")
        sim = self.start(["name=con,console=on,chardev=lg"],
                         ["log,id=lg,path=%s" % path], ["-o", "session"])
        nr = sim.wait_port("con")
        sim.open(nr)
        sim.write_all(nr, b"session one\n")
        sim.close_port(nr)
        sim.open(nr)
        sim.write_all(nr, b"session two\n")
        wait_until(lambda: slurp(path) == b"session one\nsession two\n", T,
                   what="both sessions in the log")
        sim.close()
        sim2 = self.guest()
        nr = sim2.wait_port("con")
        sim2.open(nr)
        sim2.write_all(nr, b"next vm\n")
        wait_until(lambda: slurp(path) ==
                   b"session one\nsession two\nnext vm\n", T,
                   what="the next VM's output in the same log")
        self.assertEqual(self.chr_attr("con", "lg", "errors"), "0")

    def test_sighup_reopens_a_log_moved_away(self):
        path = self.p("console.log")
        sim = self.start(["name=data,chardev=lg"],
                         ["log,id=lg,path=%s" % path])
        nr = sim.wait_port("data")
        sim.open(nr)
        sim.write_all(nr, b"first\n")
        wait_until(lambda: slurp(path) == b"first\n", T)
        os.rename(path, path + ".old")
        self.d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: os.path.exists(path), T,
                   what="SIGHUP to make a new log")
        sim.write_all(nr, b"second\n")
        wait_until(lambda: slurp(path) == b"second\n", T)
        self.assertEqual(slurp(path + ".old"), b"first\n")
        self.alive_and_mounted()

    def test_full_disk_never_blocks_the_guest(self):
        disk = self.p("tmpfs")
        os.mkdir(disk)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                        disk], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", disk],
                        stderr=subprocess.DEVNULL)
        path = os.path.join(disk, "console.log")
        sim = self.start(["name=data,chardev=lg", "name=other"],
                         ["log,id=lg,path=%s" % path])
        nr = sim.wait_port("data")
        other = sim.wait_port("other")
        sim.open(nr)
        fd = self.open("data", os.O_RDONLY)
        data = pattern(1 << 20, b"disk-")
        got = bytearray()

        def reader():
            while len(got) < len(data):
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                got.extend(b)
        r = Blocked(reader)
        try:
            for i in range(0, len(data), 128 << 10):
                sim.write_all(nr, data[i:i + (128 << 10)], T)
        except SimTimeout as e:
            self.fail("the guest blocked on a full disk after %s bytes"
                      % e.partial)
        r.wait(T * 2)
        self.assertTrue(bytes(got) == data, "the port file reader lost "
                        "bytes (%d of %d)" % (len(got), len(data)))
        self.wait_attr("data", "chardev.lg.errors", "1")
        self.assertEqual(self.chr_attr("data", "lg", "connected"), "0")
        log = slurp(path)
        self.assertTrue(data.startswith(log), "the log is no prefix of "
                        "the output")
        self.assertGreater(len(log), 32 << 10)
        warnings = [ln for ln in self.d.read_log().splitlines()
                    if "chardev lg" in ln]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("warn", warnings[0])
        self.round_trip("other", other)
        self.alive_and_mounted()
        # Room again, and SIGHUP: the log is re-attached.
        os.unlink(path)
        self.d.proc.send_signal(signal.SIGHUP)
        self.wait_attr("data", "chardev.lg.connected", "1")
        sim.write_all(nr, b"disk back\n")
        self.assertEqual(read_exact(fd, 10), b"disk back\n")
        wait_until(lambda: slurp(path) == b"disk back\n", T,
                   what="output logged after SIGHUP")
        self.assertEqual(self.chr_attr("data", "lg", "errors"), "1")


# ---- 5. socket server ----------------------------------------------------

class SocketServer(ChardevTest):
    def setUp(self):
        super().setUp()
        self.path = self.p("qga.sock")
        self.start(["name=data,chardev=qga"],
                   ["socket,id=qga,path=%s,server=on,wait=off" % self.path])
        self.nr = self.sim.wait_port("data")

    def test_host_connected_follows_the_client(self):
        self.assertFalse(self.sim.host(self.nr))
        self.assertEqual(self.attr("data", "host_connected"), "0")
        self.assertEqual(self.chr_attr("data", "qga", "connected"), "0")
        c = self.unix_client(self.path)
        self.sim.wait_host(self.nr, True)
        self.assertEqual(self.attr("data", "host_connected"), "1")
        self.assertEqual(self.chr_attr("data", "qga", "connected"), "1")
        c.close()
        self.sim.wait_host(self.nr, False)
        self.assertEqual(self.attr("data", "host_connected"), "0")
        self.assertEqual(self.chr_attr("data", "qga", "errors"), "0")

    def test_both_ways_and_again_after_reconnect(self):
        self.sim.open(self.nr)
        c = self.unix_client(self.path)
        self.sim.wait_host(self.nr, True)
        self.sim.write_all(self.nr, b"ping")
        self.assertEqual(recv_exact(c, 4), b"ping")
        c.sendall(b"pong")
        self.assertEqual(self.sim.readn(self.nr, 4), b"pong")
        c.close()
        self.sim.wait_host(self.nr, False)
        # The "restart netcat" bug: a new client must work as the first.
        c2 = self.unix_client(self.path)
        self.sim.wait_host(self.nr, True)
        self.sim.write_all(self.nr, b"after reconnect\n")
        self.assertEqual(recv_exact(c2, 16), b"after reconnect\n")
        c2.sendall(b"back again")
        self.assertEqual(self.sim.readn(self.nr, 10), b"back again")
        self.assertTrue(nothing_arrives(c2, 0.3))
        self.assertEqual(self.chr_attr("data", "qga", "errors"), "0")

    def test_output_while_no_client_is_kept_for_the_next(self):
        # Guest output nobody was offered waits in the port's ring for
        # the next endpoint (docs/semantics.md, seed 000).
        self.sim.open(self.nr)
        c = self.unix_client(self.path)
        self.sim.wait_host(self.nr, True)
        self.sim.write_all(self.nr, b"one\n")
        self.assertEqual(recv_exact(c, 4), b"one\n")
        c.close()
        self.sim.wait_host(self.nr, False)
        self.sim.write_all(self.nr, b"between\n")
        self.sim.wait_tx(self.nr)
        c2 = self.unix_client(self.path)
        self.sim.wait_host(self.nr, True)
        self.sim.write_all(self.nr, b"after\n")
        self.assertEqual(recv_exact(c2, 14), b"between\nafter\n")

    def test_second_client_waits_its_turn(self):
        self.sim.open(self.nr)
        c1 = self.unix_client(self.path)
        self.sim.wait_host(self.nr, True)
        self.sim.write_all(self.nr, b"for c1 only\n")
        self.assertEqual(recv_exact(c1, 12), b"for c1 only\n")
        c2 = self.unix_client(self.path)
        c2.sendall(b"early from c2\n")
        self.sim.write_all(self.nr, b"still c1\n")
        self.assertEqual(recv_exact(c1, 9), b"still c1\n")
        c1.sendall(b"from c1\n")
        self.assertEqual(self.sim.readn(self.nr, 8), b"from c1\n")
        self.assertEqual(self.sim.read(self.nr, 4096, 0.5), b"",
                         "the waiting client's input reached the guest")
        self.assertTrue(nothing_arrives(c2, 0.3),
                        "the waiting client got output")
        c1.close()
        self.assertEqual(self.sim.readn(self.nr, 14), b"early from c2\n")
        self.sim.write_all(self.nr, b"now c2\n")
        self.assertEqual(recv_exact(c2, 7), b"now c2\n")
        self.assertTrue(self.sim.host(self.nr))
        self.assertEqual(self.chr_attr("data", "qga", "errors"), "0")

    def test_client_outlives_the_vm(self):
        c = self.unix_client(self.path)
        self.sim.wait_host(self.nr, True)
        self.sim.open(self.nr)
        self.sim.write_all(self.nr, b"vm one\n")
        self.assertEqual(recv_exact(c, 7), b"vm one\n")
        self.sim.close()
        sim2 = self.guest()
        nr = sim2.wait_port("data")
        sim2.wait_host(nr, True)
        sim2.open(nr)
        sim2.write_all(nr, b"vm two\n")
        self.assertEqual(recv_exact(c, 7), b"vm two\n")
        c.sendall(b"to vm two\n")
        self.assertEqual(sim2.readn(nr, 10), b"to vm two\n")

    def test_more_than_16_waiting_clients_are_turned_away(self):
        c1 = self.unix_client(self.path)
        self.sim.wait_host(self.nr, True)
        waiting = [self.unix_client(self.path) for _ in range(16)]
        extra = self.unix_client(self.path)
        r, _, _ = select.select([extra], [], [], T)
        self.assertTrue(r, "the 18th client was neither served nor "
                        "turned away")
        self.assertEqual(extra.recv(10), b"", "turned away: EOF")
        r, _, _ = select.select(waiting, [], [], 0.3)
        self.assertEqual(r, [], "a waiting client was closed")
        self.sim.open(self.nr)
        self.sim.write_all(self.nr, b"c1\n")
        self.assertEqual(recv_exact(c1, 3), b"c1\n")

    # The peer is read (and its input held) also while another endpoint
    # is the port's source, so that its leaving is seen at once and does
    # not keep the host side open.
    def test_client_leaving_while_a_port_file_writes_is_noticed(self):
        self.sim.open(self.nr)
        self.open("data", os.O_RDWR)            # the source
        c = self.unix_client(self.path)
        self.wait_attr("data", "chardev.qga.connected", "1")
        c.close()
        self.wait_attr("data", "chardev.qga.connected", "0")
        self.assertEqual(self.chr_attr("data", "qga", "errors"), "0")

    # The same: the first client left, a second came, the guest writes:
    # the second gets the bytes, and no error is counted.  "Came" is
    # when the daemon took it: bytes the guest wrote before that went to
    # the readers attached then (the file), since a reader opened later
    # gets only later output (docs/semantics.md, sharing).
    def test_next_client_gets_output_after_one_left_while_a_file_writes(
            self):
        self.sim.open(self.nr)
        self.open("data", os.O_RDWR)            # the source
        c1 = self.unix_client(self.path)
        self.wait_attr("data", "chardev.qga.connected", "1")
        c1.close()
        self.wait_attr("data", "chardev.qga.connected", "0")
        c2 = self.unix_client(self.path)
        self.wait_attr("data", "chardev.qga.connected", "1")
        self.sim.write_all(self.nr, b"for whoever is there\n")
        self.assertEqual(recv_exact(c2, 21), b"for whoever is there\n")
        self.assertEqual(self.chr_attr("data", "qga", "errors"), "0")

    def test_socket_file_removed_at_exit(self):
        self.assertTrue(os.path.exists(self.path))
        self.assertEqual(self.d.stop(), 0)
        self.assertFalse(os.path.lexists(self.path))


class SocketServerStale(ChardevTest):
    def test_stale_socket_file_is_replaced(self):
        path = self.p("srv.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()
        sim = self.start(["name=data,chardev=s"],
                         ["socket,id=s,path=%s,server,wait=off" % path])
        nr = sim.wait_port("data")
        sim.open(nr)
        c = self.unix_client(path)
        sim.wait_host(nr, True)
        sim.write_all(nr, b"hi")
        self.assertEqual(recv_exact(c, 2), b"hi")


# ---- 6. wait=on ----------------------------------------------------------

class SocketServerWait(ChardevTest):
    def test_no_mount_until_the_first_client(self):
        path = self.p("con.sock")
        d = self.daemon(["name=data,chardev=con"],
                        ["socket,id=con,path=%s,server=on,wait=on" % path])
        d.launch()
        wait_until(lambda: os.path.exists(path), T,
                   what="the chardev to listen")
        time.sleep(0.5)
        self.assertTrue(d.alive(), d.read_log())
        self.assertFalse(mounted(d.mnt), "mounted before a client came")
        self.assertFalse(os.path.exists(d.sock),
                         "vhost-user socket before a client came")
        c = self.unix_client(path)
        d.wait_up()
        sim = self.guest()
        nr = sim.wait_port("data")
        sim.wait_host(nr, True)
        sim.open(nr)
        sim.write_all(nr, b"to the first client\n")
        self.assertEqual(recv_exact(c, 20), b"to the first client\n")
        c.sendall(b"from it")
        self.assertEqual(sim.readn(nr, 7), b"from it")


    def test_sigterm_while_waiting_leaves_nothing_behind(self):
        path = self.p("con.sock")
        d = self.daemon(["name=data,chardev=con"],
                        ["socket,id=con,path=%s,server=on" % path])
        d.launch()
        wait_until(lambda: os.path.exists(path), T,
                   what="the chardev to listen")
        d.proc.send_signal(signal.SIGHUP)  # reopens: no harm meanwhile
        time.sleep(0.2)
        self.assertTrue(d.alive(), d.read_log())
        d.proc.send_signal(signal.SIGTERM)
        self.assertEqual(d.proc.wait(T), 0, d.read_log())
        self.assertFalse(os.path.lexists(path), "chardev socket left")
        self.assertFalse(os.path.lexists(d.sock))
        self.assertFalse(mounted(d.mnt))

# ---- 7. socket client ----------------------------------------------------

class SocketClient(ChardevTest):
    def setUp(self):
        super().setUp()
        self.path = self.p("collector.sock")
        self.start(["name=data,chardev=up"],
                   ["socket,id=up,path=%s,reconnect-ms=100" % self.path])
        self.nr = self.sim.wait_port("data")
        self.sim.open(self.nr)

    def test_connects_when_the_server_comes_and_reconnects(self):
        self.assertFalse(self.sim.host(self.nr))
        self.assertEqual(self.chr_attr("data", "up", "connected"), "0")
        srv = self.unix_server(self.path)
        conn = self.accept(srv)
        self.sim.wait_host(self.nr, True)
        self.sim.write_all(self.nr, b"hello server\n")
        self.assertEqual(recv_exact(conn, 13), b"hello server\n")
        conn.sendall(b"hello guest\n")
        self.assertEqual(self.sim.readn(self.nr, 12), b"hello guest\n")
        # The server drops the connection and keeps listening.
        conn.close()
        conn2 = self.accept(srv)
        self.sim.wait_host(self.nr, True)
        self.sim.write_all(self.nr, b"again\n")
        self.assertEqual(recv_exact(conn2, 6), b"again\n")
        conn2.sendall(b"in again\n")
        self.assertEqual(self.sim.readn(self.nr, 9), b"in again\n")
        # The server goes away for a while: output waits, nothing lost.
        conn2.close()
        srv.close()
        os.unlink(self.path)
        self.sim.wait_host(self.nr, False)
        self.sim.write_all(self.nr, b"while away\n")
        self.sim.wait_tx(self.nr)
        srv2 = self.unix_server(self.path)
        conn3 = self.accept(srv2)
        self.sim.wait_host(self.nr, True)
        self.sim.write_all(self.nr, b"back\n")
        self.assertEqual(recv_exact(conn3, 16), b"while away\nback\n")
        self.alive_and_mounted()

    # As SocketServer's: while a port file is the source, the server
    # closing the connection is seen, and reconnect-ms reconnects.
    def test_reconnects_while_a_port_file_writes(self):
        self.open("data", os.O_WRONLY)          # the source
        srv = self.unix_server(self.path)
        conn = self.accept(srv)
        self.wait_attr("data", "chardev.up.connected", "1")
        conn.close()
        conn2 = self.accept(srv)
        self.sim.write_all(self.nr, b"to the new connection\n")
        self.assertEqual(recv_exact(conn2, 22), b"to the new connection\n")
        self.assertEqual(self.chr_attr("data", "up", "errors"), "0")

    def test_output_before_the_server_existed_arrives(self):
        # The guest writes while the host side is closed (it acts on a
        # stale PORT_OPEN, or does not care): kept for the first reader.
        early = pattern(50000, b"early-")
        self.sim.write_all(self.nr, early)
        self.sim.wait_tx(self.nr)
        srv = self.unix_server(self.path)
        conn = self.accept(srv)
        self.sim.wait_host(self.nr, True)
        self.sim.write_all(self.nr, b"late\n")
        got = recv_exact(conn, len(early) + 5)
        self.assertTrue(got == early + b"late\n",
                        "the server got %d bytes, other than written"
                        % len(got))


# ---- 8. TCP, telnet ------------------------------------------------------

IAC, WILL, WONT, DO, DONT = 255, 251, 252, 253, 254


class Telnet(ChardevTest):
    def setUp(self):
        super().setUp()
        self.port = free_tcp_port()
        self.start(["name=con,console=on,chardev=t"],
                   ["socket,id=t,host=127.0.0.1,port=%d,server=on,wait=off,"
                    "telnet=on" % self.port])
        self.nr = self.sim.wait_port("con")
        self.sim.open(self.nr)

    def connect(self, rcvbuf=None):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(c.close)
        if rcvbuf:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        c.connect(("127.0.0.1", self.port))
        return c

    def negotiation(self, c):
        """The server's opening commands (all of them IAC x y)."""
        hello = recv_exact(c, 3)
        self.assertEqual(hello[:2], bytes([IAC, WILL]))
        while not nothing_arrives(c, 0.3):
            hello += recv_exact(c, 3)
        for i in range(0, len(hello), 3):
            self.assertEqual(hello[i], IAC, hello)
            self.assertIn(hello[i + 1], (WILL, WONT, DO, DONT), hello)
        return hello

    def test_negotiation_and_escaping(self):
        c = self.connect()
        hello = self.negotiation(c)
        self.assertIn(bytes([IAC, WILL, 1]), hello)   # ECHO
        self.assertIn(bytes([IAC, WILL, 3]), hello)   # SUPPRESS-GO-AHEAD
        self.sim.wait_host(self.nr, True)
        self.sim.write_all(self.nr, b"a\xffb\n")
        self.assertEqual(recv_exact(c, 5), b"a\xff\xffb\n")
        c.sendall(b"x" + bytes([IAC, WILL, 24]) + b"y" + bytes([IAC, IAC])
                  + b"z" + bytes([IAC, DO, 1]) + b"\n")
        self.assertEqual(self.sim.readn(self.nr, 5), b"xy\xffz\n")
        self.assertEqual(self.sim.read(self.nr, 100, 0.3), b"")

    def test_commands_split_across_segments(self):
        c = self.connect()
        self.negotiation(c)
        self.sim.wait_host(self.nr, True)
        for piece in (b"a", bytes([IAC]), bytes([WILL]), bytes([31]), b"b",
                      bytes([IAC]), bytes([IAC]), b"c\n"):
            c.sendall(piece)
            time.sleep(0.02)
        self.assertEqual(self.sim.readn(self.nr, 5), b"ab\xffc\n")



class TelnetFullSocket(ChardevTest):
    # With telnet=on the sink escapes guest output into a buffer of its
    # own; what a full socket left there goes out when the client reads,
    # not with the next guest output.  A unix socket makes
    # it repeatable (its capacity is fixed and shows in FIONREAD); TCP
    # only hides it behind larger buffers.
    def test_escaped_output_goes_out_when_the_client_reads(self):
        path = self.p("t.sock")
        sim = self.start(["name=data,chardev=t"],
                         ["socket,id=t,path=%s,server=on,wait=off,"
                          "telnet=on" % path])
        nr = sim.wait_port("data")
        sim.open(nr)
        c = self.unix_client(path)
        sim.wait_host(nr, True)
        self.assertEqual(recv_exact(c, 2), bytes([IAC, WILL]))
        recv_exact(c, 10)
        # What the socket holds while nobody reads it.
        first = 600 << 10
        sim.write_all(nr, b"x" * first, T)
        cap = settle(c)
        self.assertGreater(cap, 0)
        self.assertEqual(len(recv_exact(c, first, 10)), first)
        # Guest writes about that much, all of it taken while the socket
        # is full; then the client reads: every byte must come.
        for n in range(cap - (8 << 10), cap + (40 << 10), 4 << 10):
            sim.write_all(nr, b"y" * n, T)
            sim.wait_tx(nr, T)
            settle(c)
            got = bytearray()
            deadline = time.monotonic() + T
            while len(got) < n and time.monotonic() < deadline:
                if select.select([c], [], [], 0.2)[0]:
                    got += c.recv(1 << 20)
            self.assertEqual(len(got), n,
                             "guest wrote %d bytes, the client got %d: "
                             "the rest is stuck in the daemon" %
                             (n, len(got)))


# ---- 9. pipe -------------------------------------------------------------

class Pipe(ChardevTest):
    def test_fifo_pair(self):
        base = self.p("vm")
        os.mkfifo(base + ".in")
        os.mkfifo(base + ".out")
        sim = self.start(["name=data,chardev=p", "name=other"],
                         ["pipe,id=p,path=%s" % base])
        nr = sim.wait_port("data")
        other = sim.wait_port("other")
        sim.wait_host(nr, True)
        sim.open(nr)
        data = os.urandom(200 << 10)    # more than a pipe's buffer
        sim.write_all(nr, data, T)
        # Nobody reads P.out: the daemon still serves everything else.
        self.assertIn("data", os.listdir(self.d.mnt))
        self.round_trip("other", other)
        out = os.open(base + ".out", os.O_RDONLY | os.O_NONBLOCK)
        self.fds.append(out)
        got = read_exact(out, len(data), T)
        self.assertEqual(hashlib.sha256(got).hexdigest(),
                         hashlib.sha256(data).hexdigest())
        inp = os.open(base + ".in", os.O_WRONLY | os.O_NONBLOCK)
        self.fds.append(inp)
        os.write(inp, b"into the guest\n")
        self.assertEqual(sim.readn(nr, 15), b"into the guest\n")
        self.assertEqual(self.chr_attr("data", "p", "errors"), "0")

    def test_guest_blocks_until_a_reader_comes_then_all_arrives(self):
        base = self.p("vm")
        os.mkfifo(base + ".in")
        os.mkfifo(base + ".out")
        sim = self.start(["name=data,ring-size=64K,chardev=p", "name=other"],
                         ["pipe,id=p,path=%s" % base])
        nr = sim.wait_port("data")
        other = sim.wait_port("other")
        sim.open(nr)
        data = pattern(2 << 20, b"fifo-")
        big = self.p("big")
        with open(big, "wb") as f:
            f.write(data)
        # 2 MiB fit in the guest's TX ring, not in the pipe and the port.
        self.assertEqual(sim.write_file(nr, big, T), len(data))
        with self.assertRaises(SimTimeout):
            sim.wait_tx(nr, 1.0)
        self.assertGreater(sim.tx_pending(nr), 0)
        self.round_trip("other", other)
        out = os.open(base + ".out", os.O_RDONLY | os.O_NONBLOCK)
        self.fds.append(out)
        got = read_exact(out, len(data), 20)
        self.assertTrue(got == data, "the fifo's reader got other bytes")
        sim.wait_tx(nr, T)
        self.assertEqual(self.chr_attr("data", "p", "errors"), "0")

    def test_single_fifo_missing_is_an_error(self):
        d = self.daemon(["name=data,chardev=p"],
                        ["pipe,id=p,path=%s" % self.p("nothere")])
        with self.assertRaises(RuntimeError):
            d.start()
        self.assertEqual(d.proc.returncode, 1)
        self.assertIn("chardev p", d.read_log())
        self.assertFalse(mounted(d.mnt))


# ---- 10. pty -------------------------------------------------------------

class Pty(ChardevTest):
    def test_pty_with_link(self):
        link = self.p("console.pty")
        sim = self.start(["name=data,chardev=tty"],
                         ["pty,id=tty,link=%s" % link])
        nr = sim.wait_port("data")
        name = os.readlink(link)
        self.assertRegex(name, r"^/dev/pts/\d+$")
        self.assertEqual(self.chr_attr("data", "tty", "pty"), name)
        self.assertIn("user.vport.chardev.tty.pty",
                      os.listxattr(self.d.path("data")))
        sim.wait_host(nr, True)
        # No tty.setraw here: the daemon keeps the terminal raw, so no
        # echo, no ^C signal, no CR/NL translation either way.
        fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
        self.fds.append(fd)
        sim.open(nr)
        out = b"login: \r\n\x03\x04\xff raw\n"
        sim.write_all(nr, out)
        self.assertEqual(read_exact(fd, len(out)), out)
        self.assertEqual(sim.read(nr, 100, 0.3), b"", "echoed")
        os.write(fd, b"root\r\x03\x7f\n")
        self.assertEqual(sim.readn(nr, 8), b"root\r\x03\x7f\n")
        self.assertTrue(nothing_arrives(fd, 0.3), "echoed")
        self.assertEqual(self.d.stop(), 0)
        self.assertFalse(os.path.lexists(link), "link left behind")

    def test_pty_opened_again_after_a_program_closed_it(self):
        sim = self.start(["name=data,chardev=tty"], ["pty,id=tty"])
        nr = sim.wait_port("data")
        name = self.chr_attr("data", "tty", "pty")
        sim.open(nr)
        for i in range(3):
            fd = os.open(name, os.O_RDWR | os.O_NOCTTY)
            self.fds.append(fd)
            sim.write_all(nr, b"round %d\n" % i)
            self.assertEqual(read_exact(fd, 8), b"round %d\n" % i)
            os.write(fd, b"back %d\n" % i)
            self.assertEqual(sim.readn(nr, 7), b"back %d\n" % i)
            self.close(fd)
        sim.wait_host(nr, True)

    def test_output_waits_while_nobody_has_the_pty_open(self):
        sim = self.start(["name=data,chardev=tty"], ["pty,id=tty"],
                         ["--log-level", "info"])
        nr = sim.wait_port("data")
        name = self.chr_attr("data", "tty", "pty")
        self.assertIn("char device redirected to " + name, self.d.read_log())
        sim.open(nr)
        sim.write_all(nr, b"written before anyone looked\n")
        sim.wait_tx(nr)
        fd = os.open(name, os.O_RDWR | os.O_NOCTTY)
        self.fds.append(fd)
        self.assertEqual(read_exact(fd, 29), b"written before anyone looked\n")


# ---- 11. fd --------------------------------------------------------------

class Fd(ChardevTest):
    def test_socketpair_both_ways(self):
        mine, theirs = socket.socketpair()
        self.addCleanup(mine.close)
        self.addCleanup(theirs.close)
        n = theirs.fileno()
        sim = self.start(["name=agent,chardev=a"], ["fd,id=a,fd=%d" % n],
                         pass_fds=(n,))
        theirs.close()
        nr = sim.wait_port("agent")
        sim.wait_host(nr, True)
        sim.open(nr)
        sim.write_all(nr, b'{"execute":"ping"}\n')
        self.assertEqual(recv_exact(mine, 19), b'{"execute":"ping"}\n')
        mine.sendall(b'{"return":{}}\n')
        self.assertEqual(sim.readn(nr, 14), b'{"return":{}}\n')
        self.assertEqual(self.chr_attr("agent", "a", "backend"), "fd")

    def test_peer_closing_its_end_leaves(self):
        mine, theirs = socket.socketpair()
        self.addCleanup(mine.close)
        self.addCleanup(theirs.close)
        n = theirs.fileno()
        sim = self.start(["name=agent,chardev=a"], ["fd,id=a,fd=%d" % n],
                         pass_fds=(n,))
        theirs.close()
        nr = sim.wait_port("agent")
        sim.wait_host(nr, True)
        mine.close()
        sim.wait_host(nr, False)
        self.assertEqual(self.chr_attr("agent", "a", "connected"), "0")
        self.alive_and_mounted()
        # The port file works as without a chardev.
        self.round_trip("agent", nr)

    def test_in_and_out_pipes(self):
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        self.fds += [in_r, in_w, out_r, out_w]
        sim = self.start(["name=agent,chardev=a"],
                         ["fd,id=a,in=%d,out=%d" % (in_r, out_w)],
                         pass_fds=(in_r, out_w))
        for fd in (in_r, out_w):
            self.close(fd)
        nr = sim.wait_port("agent")
        sim.open(nr)
        sim.write_all(nr, b"out through the pipe\n")
        self.assertEqual(read_exact(out_r, 21), b"out through the pipe\n")
        os.write(in_w, b"in through the pipe\n")
        self.assertEqual(sim.readn(nr, 20), b"in through the pipe\n")
        # The input ends: output goes on.
        self.close(in_w)
        sim.write_all(nr, b"still out\n")
        self.assertEqual(read_exact(out_r, 10), b"still out\n")


# ---- 12. ringbuf ---------------------------------------------------------

class Ringbuf(ChardevTest):
    def test_keeps_the_last_size_bytes(self):
        sim = self.start(["name=con,console=on,chardev=rb"],
                         ["ringbuf,id=rb,size=1K"])
        nr = sim.wait_port("con")
        sim.wait_host(nr, True)
        sim.open(nr)
        self.assertEqual(os.getxattr(self.d.path("con"),
                                     "user.vport.chardev.rb.data"), b"")
        data = os.urandom(3000)
        sim.write_all(nr, data)
        sim.wait_tx(nr)
        wait_until(lambda: os.getxattr(self.d.path("con"),
                                       "user.vport.chardev.rb.data")
                   == data[-1024:], T, what="the ring's last 1024 bytes")
        # Reading does not consume.
        self.assertEqual(os.getxattr(self.d.path("con"),
                                     "user.vport.chardev.rb.data"),
                         data[-1024:])
        self.assertEqual(self.chr_attr("con", "rb", "size"), "1024")

    def test_default_64k_ring_full(self):
        sim = self.start(["name=data,chardev=rb"], ["ringbuf,id=rb"])
        nr = sim.wait_port("data")
        sim.open(nr)
        data = os.urandom(100000)
        sim.write_all(nr, data)
        wait_until(lambda: os.getxattr(self.d.path("data"),
                                       "user.vport.chardev.rb.data")
                   == data[-65536:], T, what="the ring's last 64 KiB")

    def test_fewer_bytes_than_the_ring(self):
        sim = self.start(["name=data,chardev=rb"], ["ringbuf,id=rb"])
        nr = sim.wait_port("data")
        sim.open(nr)
        sim.write_all(nr, b"short\n")
        wait_until(lambda: os.getxattr(self.d.path("data"),
                                       "user.vport.chardev.rb.data")
                   == b"short\n", T)
        self.assertEqual(self.chr_attr("data", "rb", "size"), "65536")


# ---- 13. fan-out and one source ------------------------------------------

class FanOut(ChardevTest):
    def test_all_endpoints_get_output_one_source_feeds(self):
        log = self.p("con.log")
        path = self.p("con.sock")
        sim = self.start(["name=con,console=on,chardev=lg,chardev=sk"],
                         ["log,id=lg,path=%s" % log,
                          "socket,id=sk,path=%s,server=on,wait=off" % path])
        nr = sim.wait_port("con")
        sim.open(nr)
        fuse = self.open("con", os.O_RDWR)      # the source
        c = self.unix_client(path)
        self.wait_attr("con", "chardev.sk.connected", "1")
        data = pattern(60000, b"fan-")
        sim.write_all(nr, data)
        self.assertTrue(read_exact(fuse, len(data)) == data, "port file")
        self.assertTrue(recv_exact(c, len(data)) == data, "socket client")
        wait_until(lambda: slurp(log) == data, T, what="the log")
        # The port file writes; the client's input waits its turn.
        c.sendall(b"from the client\n")
        self.assertEqual(os.write(fuse, b"from the file\n"), 14)
        self.assertEqual(sim.readn(nr, 14), b"from the file\n")
        self.assertEqual(sim.read(nr, 100, 0.5), b"",
                         "the client fed the guest beside the file")
        self.close(fuse)
        self.assertEqual(sim.readn(nr, 16), b"from the client\n")
        # Now the client is the source: no writer may open the file.
        with self.assertRaises(OSError) as cm:
            self.open("con", os.O_WRONLY)
        self.assertEqual(cm.exception.errno, errno.EBUSY)
        reader = self.open("con", os.O_RDONLY)
        sim.write_all(nr, b"tail\n")
        self.assertEqual(read_exact(reader, 5), b"tail\n")
        self.assertEqual(recv_exact(c, 5), b"tail\n")
        wait_until(lambda: slurp(log) == data + b"tail\n", T)
        for cid in ("lg", "sk"):
            self.assertEqual(self.chr_attr("con", cid, "errors"), "0")


# ---- 14. re-plug ---------------------------------------------------------

class Replug(ChardevTest):
    def test_socket_client_serves_the_new_port(self):
        path = self.p("s.sock")
        sim = self.start(["name=data,chardev=sk"],
                         ["socket,id=sk,path=%s,server=on,wait=off" % path])
        nr = sim.wait_port("data")
        sim.open(nr)
        c = self.unix_client(path)
        sim.wait_host(nr, True)
        sim.write_all(nr, b"old port\n")
        self.assertEqual(recv_exact(c, 9), b"old port\n")
        subprocess.run(["rm", self.d.path("data")], check=True, timeout=10)
        sim.wait_gone(nr)
        subprocess.run(["touch", self.d.path("data")], check=True,
                       timeout=10)
        nr2 = sim.wait_port("data")
        sim.wait_host(nr2, True)
        self.assertEqual(self.chr_attr("data", "sk", "connected"), "1")
        sim.open(nr2)
        sim.write_all(nr2, b"new port\n")
        self.assertEqual(recv_exact(c, 9), b"new port\n")
        c.sendall(b"to the new port\n")
        self.assertEqual(sim.readn(nr2, 16), b"to the new port\n")
        self.assertEqual(self.chr_attr("data", "sk", "errors"), "0")


# ---- 15. flow control ----------------------------------------------------

class FlowControl(ChardevTest):
    def test_client_that_does_not_read_blocks_its_port_only(self):
        path = self.p("s.sock")
        sim = self.start(["name=data,ring-size=64K,chardev=sk",
                          "name=other"],
                         ["socket,id=sk,path=%s,server=on,wait=off" % path])
        nr = sim.wait_port("data")
        other = sim.wait_port("other")
        sim.open(nr)
        c = self.unix_client(path, rcvbuf=4096)
        sim.wait_host(nr, True)
        data = pattern(3 << 20, b"flow-")
        big = self.p("big")
        with open(big, "wb") as f:
            f.write(data)
        # 3 MiB fit in the guest's TX ring; the device cannot take them
        # all while the client reads nothing.
        self.assertEqual(sim.write_file(nr, big, T), len(data))
        with self.assertRaises(SimTimeout):
            sim.wait_tx(nr, 1.0)
        pending = sim.tx_pending(nr)
        self.assertGreater(pending, 0)
        self.round_trip("other", other)
        self.assertEqual(sim.tx_pending(nr), pending,
                         "the device took guest output nobody can hold")
        got = recv_exact(c, len(data), 20)
        self.assertTrue(got == data, "the client got other bytes")
        sim.wait_tx(nr, T)
        self.assertEqual(sim.tx_pending(nr), 0)


# ---- 16. logfile= --------------------------------------------------------

class Logfile(ChardevTest):
    def test_bytes_sent_to_the_client_are_logged(self):
        path = self.p("s.sock")
        lf = self.p("copy.log")
        with open(lf, "wb") as f:
            f.write(b"stale\n")
        sim = self.start(["name=data,chardev=sk"],
                         ["socket,id=sk,path=%s,server=on,wait=off,"
                          "logfile=%s" % (path, lf)])
        self.assertEqual(slurp(lf), b"")    # logappend=off truncates
        nr = sim.wait_port("data")
        sim.open(nr)
        c = self.unix_client(path)
        sim.wait_host(nr, True)
        data = pattern(20000, b"lf-")
        sim.write_all(nr, data)
        self.assertTrue(recv_exact(c, len(data)) == data)
        wait_until(lambda: slurp(lf) == data, T, what="the logfile")
        # Input from the client is not guest output: not logged.
        c.sendall(b"input\n")
        self.assertEqual(sim.readn(nr, 6), b"input\n")
        self.assertEqual(slurp(lf), data)

    def test_logappend_keeps_old_content(self):
        lf = self.p("copy.log")
        with open(lf, "wb") as f:
            f.write(b"old\n")
        sim = self.start(["name=data,chardev=n"],
                         ["null,id=n,logfile=%s,logappend=on" % lf])
        nr = sim.wait_port("data")
        sim.open(nr)
        sim.write_all(nr, b"new\n")
        wait_until(lambda: slurp(lf) == b"old\nnew\n", T)


# ---- 17. SIGHUP ----------------------------------------------------------

class Sighup(ChardevTest):
    def test_sighup_does_not_stop_the_daemon(self):
        path = self.p("out.txt")
        sim = self.start(["name=data,chardev=f", "name=other"],
                         ["file,id=f,path=%s" % path])
        nr = sim.wait_port("data")
        other = sim.wait_port("other")
        for _ in range(3):
            self.d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.1)
        sim.open(nr)
        sim.write_all(nr, b"after hup\n")
        wait_until(lambda: slurp(path) == b"after hup\n", T)
        self.alive_and_mounted()
        self.round_trip("other", other)
        self.assertEqual(self.d.stop(), 0)


if __name__ == "__main__":
    unittest.main()


# ---- review findings, each a regression test ---------------------------

class InputWaitingItsTurn(ChardevTest):
    def test_input_that_ended_while_waiting_reaches_the_guest_in_its_turn(
            self):
        # a (an fd pipe) is the source; b (a file's input-path) waits, and
        # its input ends while it waits: those bytes still go, in b's turn.
        inp = self.p("in.txt")
        with open(inp, "wb") as f:
            f.write(b"FILE-INPUT\n")
        r, w = os.pipe()
        self.fds += [w]
        dn = os.open("/dev/null", os.O_WRONLY)
        try:
            sim = self.start(["name=p,chardev=a,chardev=b"],
                             ["fd,id=a,in=%d,out=%d" % (r, dn),
                              "file,id=b,path=%s,input-path=%s" %
                              (self.p("out"), inp)],
                             pass_fds=(r, dn))
        finally:
            os.close(r)
            os.close(dn)
        nr = sim.wait_port("p")
        sim.open(nr)
        sim.wait_host(nr, True)
        os.write(w, b"A\n")
        self.assertEqual(sim.readn(nr, 2), b"A\n")
        self.close(w)  # a's input ends: b's turn
        self.assertEqual(sim.readn(nr, 11), b"FILE-INPUT\n")


class LogfileNeverBlocks(ChardevTest):
    def test_a_fifo_nobody_reads_as_logfile_does_not_freeze_the_daemon(
            self):
        fifo = self.p("log.fifo")
        os.mkfifo(fifo)
        # A reader that never reads lets the open succeed.
        holder = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.fds.append(holder)
        sim = self.start(["name=data,chardev=n", "name=other"],
                         ["null,id=n,logfile=%s" % fifo])
        nr = sim.wait_port("data")
        sim.open(nr)
        sim.write_all(nr, pattern(1 << 20))
        # The loop goes on: the mount answers and another port works.  (A
        # daemon blocked on the fifo would hang listdir: wait in a thread.)
        ls = Blocked(os.listdir, self.d.mnt)
        try:
            self.assertIn("other", ls.wait(T))
        except AssertionError:
            self.d.stop(signal.SIGKILL)
            raise
        self.round_trip("other", sim.wait_port("other"))
        self.assertEqual(self.chr_attr("data", "n", "errors"), "1")


class ExclusiveWithChardevs(ChardevTest):
    def test_every_chardev_attaches_to_an_exclusive_port(self):
        sim = self.start(["name=p,chardev=a,chardev=b"],
                         ["ringbuf,id=a,size=1K", "ringbuf,id=b,size=1K"],
                         args=["-o", "exclusive"])
        nr = sim.wait_port("p")
        sim.open(nr)
        sim.write_all(nr, b"both")
        wait_until(lambda: self.chr_attr("p", "b", "data") == "both", T)
        self.assertEqual(self.chr_attr("p", "a", "data"), "both")
        # One port file still, as -o exclusive says.
        self.open("p", os.O_RDONLY)
        with self.assertRaises(OSError) as cm:
            self.open("p", os.O_RDONLY)
        self.assertEqual(cm.exception.errno, errno.EBUSY)


class SourceHangupWhileGuestClosed(ChardevTest):
    def test_client_leaving_with_input_the_guest_cannot_take_is_seen(self):
        path = self.p("s.sock")
        sim = self.start(["name=data,chardev=s"],
                         ["socket,id=s,path=%s,server=on,wait=off" % path])
        sim.wait_port("data")  # the guest does not open it
        a = self.unix_client(path)
        wait_until(lambda: self.chr_attr("data", "s", "connected") == "1",
                   T)
        a.sendall(b"for a guest that never listens\n")
        a.close()
        wait_until(lambda: self.chr_attr("data", "s", "connected") == "0",
                   T, what="the daemon to see the client leave")
        b = self.unix_client(path)
        wait_until(lambda: self.chr_attr("data", "s", "connected") == "1",
                   T, what="the next client to be served")
        b.close()


class LiveSocketNotTakenOver(CliCase):
    def test_server_path_another_daemon_listens_on_is_refused(self):
        path = self.p("shared.sock")
        first = self.daemon(["name=data,chardev=s"],
                            ["socket,id=s,path=%s,server=on,wait=off" %
                             path])
        first.start()
        line = self.check_rejected(
            ["--chardev", "socket,id=t,path=%s,server=on,wait=off" % path,
             "--port", "name=d,chardev=t"], status=1)
        self.assertIn("chardev t", line)
        self.assertIn("another process listens", line)
        # The first daemon's socket is still its own.
        c = self.unix_client(path)
        wait_until(lambda: first.alive() and self.attr_of(
            first, "data", "chardev.s.connected") == "1", T)
        c.close()

    def attr_of(self, d, name, key):
        return os.getxattr(d.path(name), "user.vport." + key).decode()
