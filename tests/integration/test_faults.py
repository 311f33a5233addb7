"""Faults (issue 9, "Hardening"): a process on either side dies at the
worst moment, the mount goes away under the daemon, the daemon is stopped
with every kind of request parked.

In each case the daemon lives (unless it is told to stop), nothing it
accepted is lost, and the next connection or the next opener works.  The
processes that die are real processes (SIGKILL), not threads: what the
kernel does with their FUSE requests is part of what is shown.  What a
killed process had been handed it takes with it; the tests account for it
from what that process reported before it died, never from timing.

A watchdog kills the daemon if a test runs too long (a FUSE call blocked
on a live but stuck daemon cannot be interrupted any other way), so a hang
fails the test instead of the run.
"""
import errno
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

from vpharness import (close_all, Blocked, Daemon, VPORTFS_SIM, force_unmount,  # noqa: E402
                       mounted, read_exact, read_to_eof, wait_until)
from simctl import Sim  # noqa: E402

TEST_TIMEOUT = 40
WAIT = 10  # any one wait for a process or a state: guards against hangs
MiB = 1 << 20

# Child programs.  Each prints "ready" just before the call that blocks,
# and one line saying how that call ended.

# argv: PORT OUT.  Reads PORT until EOF, appending each chunk to OUT as
# soon as it has it: OUT holds what the process got, but for its last read
# if it is killed between the read and the write (<= CHUNK bytes).
READER = r"""
import os, sys
CHUNK = 65536
fd = os.open(sys.argv[1], os.O_RDONLY)
out = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
print("ready", flush=True)
while True:
    b = os.read(fd, CHUNK)
    if not b:
        break
    os.write(out, b)
print("eof", flush=True)
"""
READ_CHUNK = 65536

# argv: PORT DATA CHUNK.  Writes the file DATA to PORT, CHUNK bytes per
# write(), and prints the running total after each write that returned.
WRITER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
with open(sys.argv[2], "rb") as f:
    data = f.read()
chunk = int(sys.argv[3])
total = 0
print("ready", flush=True)
while total < len(data):
    total += os.write(fd, data[total:total + chunk])
    print(total, flush=True)
print("done", flush=True)
"""

# argv: FD.  One read on an inherited descriptor.
READ_INHERITED = r"""
import os, sys
print("ready", flush=True)
print("read", len(os.read(int(sys.argv[1]), 100)), flush=True)
"""

# argv: PORT.  One read on a fresh open.
READ_ONCE = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("ready", flush=True)
try:
    print("read", os.read(fd, 100).hex(), flush=True)
except OSError as e:
    print("errno", e.errno, flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""

# argv: PORT.  One write too large for a guest without receive buffers.
WRITE_BIG = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
print("ready", flush=True)
try:
    print("wrote", os.write(fd, b"w" * (1 << 20)), flush=True)
except OSError as e:
    print("errno", e.errno, flush=True)
"""

# argv: PORT.  Bytes the guest cannot take yet, then fsync.
FSYNC = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.write(fd, b"s" * 1000)
print("ready", flush=True)
try:
    os.fsync(fd)
    print("synced", flush=True)
except OSError as e:
    print("errno", e.errno, flush=True)
"""

# argv: PORT.  poll() for input with no timeout.
POLL_IN = r"""
import os, select, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
p = select.poll()
p.register(fd, select.POLLIN)
print("ready", flush=True)
print("revents", p.poll()[0][1], flush=True)
"""


def xattr(path, name):
    return int(os.getxattr(path, "user.vport." + name))


def stop_and_clean(d):
    """Daemon.cleanup, but also unmounting the mount of a daemon that
    died (vpharness.force_unmount reads /proc/mounts)."""
    d.stop()
    force_unmount(d.mnt)
    shutil.rmtree(d.dir, ignore_errors=True)


class Child:
    """A python child program (above) whose stdout lines are read with a
    timeout."""

    def __init__(self, test, program, *args, pass_fds=()):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", program] + [str(a) for a in args],
            stdout=subprocess.PIPE, pass_fds=pass_fds)
        test.addCleanup(self.kill)
        self._buf = b""
        self.lines = []
        self._next = 0  # the line line() returns next

    def _pump(self, timeout):
        fd = self.proc.stdout.fileno()
        if select.select([fd], [], [], timeout)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                return False
            self._buf += chunk
            *done, self._buf = self._buf.split(b"\n")
            self.lines += [l.decode() for l in done]
        return True

    def line(self, timeout=WAIT):
        """The next line it prints (AssertionError if none comes)."""
        deadline = time.monotonic() + timeout
        n = self._next
        while len(self.lines) <= n:
            left = deadline - time.monotonic()
            if left <= 0 or not self._pump(left):
                raise AssertionError("child printed nothing more; said %r" %
                                     self.lines)
        self._next = n + 1
        return self.lines[n]

    def drain(self):
        """Every line printed so far (without waiting)."""
        fd = self.proc.stdout.fileno()
        while select.select([fd], [], [], 0)[0] and self._pump(0):
            pass
        return self.lines

    def wait_blocked(self):
        """Until it printed "ready" and then sleeps in the kernel, using
        no CPU and printing nothing, over 5 looks 50 ms apart: the call
        after "ready" is blocked (a sleep of one FUSE round trip is not
        taken for it)."""
        self.assert_line("ready")
        seen = []

        def look():
            with open("/proc/%d/stat" % self.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open("/proc/%d/wchan" % self.proc.pid) as f:
                wchan = f.read()
            # state, where it sleeps, user and system CPU time, output
            return (fields[0], wchan, fields[11], fields[12],
                    len(self.drain()))

        def settled():
            now = look()
            if now[0] != "S" or now[1] in ("", "0"):
                seen.clear()
                return False
            if seen and seen[-1] != now:
                seen.clear()
            seen.append(now)
            return len(seen) >= 5
        wait_until(settled, WAIT, interval=0.05, what="the child to block")

    def assert_line(self, want):
        got = self.line()
        if got != want:
            raise AssertionError("child said %r, wanted %r" % (got, want))

    def kill(self):
        """Cleanup.  A child stuck in an unanswered FUSE request cannot
        die before its daemon does: the daemon's cleanup frees it."""
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(1)
            except subprocess.TimeoutExpired:
                pass
        self.proc.stdout.close()

    def end(self, timeout=WAIT):
        """Its last line, once it exited (AssertionError if it does not
        within timeout)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("child still blocked after %ss; said %r" %
                                 (timeout, self.lines)) from None
        while self._pump(WAIT):
            pass
        return self.lines[-1] if self.lines else ""


class FaultTest(unittest.TestCase):
    ports = ("name=data", "name=other")
    sim_args = ()

    def setUp(self):
        self.d = Daemon(self.ports)
        self.addCleanup(stop_and_clean, self.d)
        self._watchdog = threading.Timer(TEST_TIMEOUT, self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()
        self.addCleanup(self._watchdog.cancel)
        self.d.start()
        self.sim = self.new_sim(self.sim_args)
        self.nr = self.sim.wait_port("data")
        self.fds = []
        self.addCleanup(close_all, self.fds)

    def _expire(self):
        # Kill the daemon first: that aborts the FUSE connection, so a main
        # thread stuck in a FUSE call returns and sees the alarm
        # (vpharness turns SIGALRM into an exception).
        if self.d.proc is not None and self.d.proc.poll() is None:
            os.killpg(self.d.proc.pid, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGALRM)

    # ---- helpers -------------------------------------------------------

    def new_sim(self, args=()):
        sim = Sim(VPORTFS_SIM, self.d.sock, list(args))
        self.addCleanup(sim.close)
        return sim

    def open(self, flags, name="data"):
        fd = os.open(self.d.path(name), flags)
        self.fds.append(fd)
        return fd

    def close(self, fd):
        self.fds.remove(fd)
        os.close(fd)

    def data_file(self, size):
        data = os.urandom(size)
        path = os.path.join(self.d.dir, "data.bin")
        with open(path, "wb") as f:
            f.write(data)
        return data, path

    def out_file(self, name="out.bin"):
        return os.path.join(self.d.dir, name)

    def assert_alive(self):
        self.assertIsNone(self.d.proc.poll(), "vportfs died (status %s):\n%s"
                          % (self.d.proc.returncode, self.d.read_log()))
        errors = [l for l in self.d.read_log().splitlines()
                  if l.startswith("vportfs: error:")]
        self.assertEqual(errors, [], self.d.read_log())

    def guest_open(self, nr, name="data"):
        """The guest opens port nr, and the daemon knows it."""
        self.sim.open(nr)
        wait_until(lambda: xattr(self.d.path(name), "guest_connected"), WAIT,
                   what="the daemon to see the guest open")

    def frontend_up(self):
        return os.getxattr(self.d.mnt, "user.vport.frontend") == b"1"

    def kill_frontend(self):
        self.sim.kill()
        wait_until(lambda: not self.frontend_up(), WAIT,
                   what="the daemon to see the frontend go")

    def assert_both_ways(self, sim, name="data"):
        """A fresh open of port `name` carries bytes both ways."""
        nr = sim.wait_port(name)
        fd = self.open(os.O_RDWR | os.O_NONBLOCK, name)
        sim.wait_host(nr, True)
        sim.open(nr)
        sim.write_all(nr, b"guest to host")
        self.assertEqual(read_exact(fd, 13), b"guest to host")
        self.assertEqual(os.write(fd, b"host to guest"), 13)
        self.assertEqual(sim.readn(nr, 13), b"host to guest")
        self.close(fd)
        sim.wait_host(nr, False)

    def assert_stopped_cleanly(self):
        """The daemon exited 0, its mount and its socket are gone."""
        try:
            status = self.d.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.fail("vportfs still running:\n" + self.d.read_log())
        self.assertEqual(status, 0, self.d.read_log())
        self.assertFalse(mounted(self.d.mnt), "mount left behind")
        self.assertFalse(os.path.lexists(self.d.sock),
                         "socket file left behind")


# ---- 1. the frontend dies mid-transfer ------------------------------------

class FrontendKilledMidTransfer(FaultTest):
    """SIGKILL on the VM (the simulated frontend) while megabytes cross the
    port; then a new VM on the same socket.  Its rings hold 16 buffers, so
    the transfer is under way, not queued whole in the guest's ring."""
    size = 4 * MiB
    sim_args = ("--queue-size", "16")

    def test_host_to_guest(self):
        # Accepted write() bytes are never lost: what the dead VM's guest
        # had in its buffers died with it (tx_bytes counts it), every
        # byte after it reaches the next VM's guest, in order.
        data, path = self.data_file(self.size)
        self.sim.open(self.nr)
        w = Child(self, WRITER, self.d.path("data"), path, MiB)
        w.assert_line("ready")
        old = bytearray()
        while len(old) < MiB:
            chunk = self.sim.read(self.nr, MiB, 5)
            self.assertTrue(chunk, "the guest stopped receiving")
            old += chunk
        self.kill_frontend()
        placed = xattr(self.d.path("data"), "tx_bytes")
        self.assertEqual(bytes(old), data[:len(old)])
        self.assertLessEqual(len(old), placed)
        self.assertLess(placed, len(data))
        self.assertIsNone(w.proc.poll(), "the writer should wait")
        self.assert_alive()
        self.assertEqual(sorted(os.listdir(self.d.mnt)),
                         [".events", "data", "other"])

        self.sim = self.new_sim()
        self.assertEqual(self.sim.wait_port("data"), self.nr)
        self.sim.open(self.nr)
        rest = self.sim.readn(self.nr, len(data) - placed, 30)
        self.assertTrue(rest == data[placed:],
                        "the next guest did not get the rest of the write")
        self.assertEqual(w.end(), "done")
        self.assertEqual(w.lines[-2], str(len(data)))
        self.assertEqual(w.proc.returncode, 0)
        self.assertEqual(self.sim.read(self.nr, 100, 0.2), b"",
                         "bytes beyond the write")
        self.assert_both_ways(self.sim)
        self.assert_both_ways(self.sim, "other")
        self.assert_alive()

    def test_guest_to_host(self):
        # What the guest was told was consumed (its buffers came back on
        # the used ring) is the host's: a reader that was streaming gets
        # all of it, then EOF, and nothing the guest did not send.
        data = os.urandom(self.size)
        out = self.out_file()
        self.guest_open(self.nr)  # else the reader's first read is EOF
        r = Child(self, READER, self.d.path("data"), out)
        r.assert_line("ready")
        self.sim.wait_host(self.nr, True)
        sent = 0
        while os.path.getsize(out) < MiB:
            self.assertLess(sent, len(data), "the reader got too little")
            sent += self.sim.write_all(self.nr, data[sent:sent + MiB // 4])
        consumed = sent - self.sim.tx_pending(self.nr)
        self.kill_frontend()
        self.assertEqual(r.end(), "eof")
        with open(out, "rb") as f:
            got = f.read()
        self.assertGreaterEqual(len(got), consumed)
        self.assertLess(len(got), len(data))
        self.assertTrue(got == data[:len(got)],
                        "the reader got other bytes than the guest sent")
        self.assertEqual(xattr(self.d.path("data"), "rx_bytes"), len(got))
        self.assert_alive()
        self.assertEqual(sorted(os.listdir(self.d.mnt)),
                         [".events", "data", "other"])

        self.sim = self.new_sim()
        self.assertEqual(self.sim.wait_port("data"), self.nr)
        self.assertEqual(self.sim.bugs()[0], 0)
        self.assert_both_ways(self.sim)
        self.assert_both_ways(self.sim, "other")
        self.assert_alive()


# ---- 2. a reader dies -----------------------------------------------------

class ReaderKilled(FaultTest):
    def test_parked_read_on_a_shared_description_consumes_nothing(self):
        # The killed process's read was parked on the same open file
        # description as ours: had the daemon answered it after the kill
        # (an interrupt not honoured), the bytes would have gone to the
        # dead process, and the kill would have waited for them.
        fd = self.open(os.O_RDONLY)
        self.sim.open(self.nr)
        c = Child(self, READ_INHERITED, fd, pass_fds=(fd,))
        c.wait_blocked()
        c.proc.kill()
        try:
            c.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.fail("a reader parked in read() could not be killed")
        self.sim.write_all(self.nr, b"every byte, none lost")
        self.assertEqual(read_exact(fd, 21), b"every byte, none lost")
        self.assert_alive()

    def test_parked_reader_killed_then_a_new_reader_gets_every_byte(self):
        self.sim.open(self.nr)
        c = Child(self, READ_ONCE, self.d.path("data"))
        c.wait_blocked()
        c.proc.kill()
        c.proc.wait(WAIT)
        # Its file is released: the guest sees the host side closed.
        self.sim.wait_host(self.nr, False)
        self.sim.write_all(self.nr, b"for the next reader")
        self.sim.wait_tx(self.nr)
        fd = self.open(os.O_RDONLY)
        self.assertEqual(read_exact(fd, 19), b"for the next reader")
        self.assertEqual(xattr(self.d.path("data"), "dropped_bytes"), 0)
        self.assert_alive()


class ReaderKilledWhileStreaming(FaultTest):
    """The guest streams 8 MiB through rings of 16 buffers (512 KiB), so
    what the reader has not taken yet is at most those and the port's
    ring (1 MiB): the reader is killed in the middle of the stream."""
    sim_args = ("--queue-size", "16")

    def test_next_reader_gets_the_rest_and_the_gap_is_accounted_for(self):
        # What the killed reader recorded is the stream's start, what the
        # next reader gets is its end; between them only what the killed
        # one was handed and did not record (one read at most), and what
        # it had been offered and left unread, which its close discards
        # and counts (dropped_bytes).
        data = os.urandom(8 * MiB)
        out = self.out_file()
        self.guest_open(self.nr)
        c = Child(self, READER, self.d.path("data"), out)
        c.assert_line("ready")
        self.sim.wait_host(self.nr, True)
        sent = 0
        while os.path.getsize(out) < 2 * MiB:
            self.assertLess(sent, 6 * MiB, "the reader does not read")
            sent += self.sim.write_all(self.nr, data[sent:sent + MiB // 4])
        c.proc.kill()
        c.proc.wait(WAIT)
        fd = self.open(os.O_RDONLY)
        rest = Blocked(read_to_eof, fd)
        self.assertEqual(self.sim.write_all(self.nr, data[sent:]),
                         len(data) - sent)
        self.sim.close_port(self.nr)  # EOF for the reader after the data
        last = rest.wait(WAIT)
        with open(out, "rb") as f:
            first = f.read()
        self.assertTrue(first == data[:len(first)],
                        "the killed reader got other bytes than sent")
        self.assertGreaterEqual(len(last), len(data) - sent)
        self.assertTrue(last == data[len(data) - len(last):],
                        "the next reader's bytes are not the stream's end")
        dropped = xattr(self.d.path("data"), "dropped_bytes")
        unrecorded = len(data) - len(first) - dropped - len(last)
        self.assertGreaterEqual(unrecorded, 0, "bytes counted twice")
        self.assertLessEqual(unrecorded, READ_CHUNK,
                             "lost more than the killed reader's last read")
        self.assertEqual(xattr(self.d.path("data"), "rx_bytes"), len(data))
        self.close(fd)
        self.assert_alive()
        self.assert_both_ways(self.sim)


# ---- 3. a writer dies -----------------------------------------------------

class WriterKilledWhileBlocked(FaultTest):
    """The guest posts no receive buffers: our 256 KiB buffer fills and
    the writer blocks."""
    sim_args = ("--rx-bufs", "0")

    def test_what_write_returned_for_reaches_the_guest(self):
        data, path = self.data_file(MiB)
        self.guest_open(self.nr)
        w = Child(self, WRITER, self.d.path("data"), path, 65536)
        w.wait_blocked()
        said = [l for l in w.drain() if l.isdigit()]
        self.assertTrue(said, "no write() returned before the buffer filled")
        told = int(said[-1])
        self.assertLess(told, len(data))
        w.proc.kill()
        try:
            w.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.fail("a writer blocked in write() could not be killed")
        self.assert_alive()

        # The next writer is not kept out by the dead one.
        def open_writer():
            try:
                return self.open(os.O_WRONLY)
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                return None
        fd = wait_until(open_writer, WAIT, what="a new writer to get in")
        nxt = Blocked(os.write, fd, b"NEXT WRITER")
        self.sim.rx_post(self.nr, 256, 4096)
        got = bytearray()
        while not got.endswith(b"NEXT WRITER"):
            chunk = self.sim.read(self.nr, MiB, 5)
            self.assertTrue(chunk, "the guest got %d bytes, then nothing" %
                            len(got))
            got += chunk  # the sim re-posts the buffers it read
        self.assertEqual(nxt.wait(WAIT), 11)
        body = bytes(got[:-len(b"NEXT WRITER")])
        self.assertGreaterEqual(len(body), told,
                                "bytes write() returned for were lost")
        self.assertLessEqual(len(body), told + 65536)
        self.assertTrue(body == data[:len(body)],
                        "the guest got other bytes than were written")
        self.close(fd)
        self.assert_alive()


# ---- 4. the mount goes away under the daemon ------------------------------

class Unmount(FaultTest):
    def fusermount(self, *args):
        return subprocess.run(["fusermount3", "-u", *args, self.d.mnt],
                              capture_output=True, text=True, timeout=WAIT)

    def test_plain_unmount_with_a_port_open_is_busy(self):
        fd = self.open(os.O_RDWR)
        self.sim.open(self.nr)
        p = self.fusermount()
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("busy", p.stderr)
        self.assertTrue(mounted(self.d.mnt))
        self.assert_alive()
        self.assertEqual(os.write(fd, b"still here"), 10)
        self.assertEqual(self.sim.readn(self.nr, 10), b"still here")
        self.sim.write_all(self.nr, b"and back")
        self.assertEqual(read_exact(fd, 8), b"and back")
        self.assert_both_ways(self.sim, "other")

    def test_lazy_unmount_serves_open_ports_then_stops(self):
        # `fusermount3 -u -z` detaches the mount at once; the kernel keeps
        # the FUSE session while port files are open.  The daemon serves
        # them (a parked read gets the guest's next bytes; writes reach the
        # guest), and when the last one closes the session ends and the
        # daemon stops as on SIGTERM: socket removed, exit 0.
        fd = self.open(os.O_RDWR)
        self.sim.open(self.nr)
        c = Child(self, READ_ONCE, self.d.path("data"))
        c.wait_blocked()
        p = self.fusermount("-z")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertFalse(mounted(self.d.mnt))
        with self.assertRaises(FileNotFoundError):
            os.open(self.d.path("data"), os.O_RDONLY)
        self.assertIsNone(c.proc.poll(), "the parked read ended")
        self.assert_alive()
        self.assertTrue(os.path.exists(self.d.sock))
        self.sim.write_all(self.nr, b"after the detach")
        self.assertEqual(c.end(), "read " + b"after the detach".hex())
        self.assertEqual(read_exact(fd, 16), b"after the detach")
        self.assertEqual(os.write(fd, b"still served"), 12)
        self.assertEqual(self.sim.readn(self.nr, 12), b"still served")
        self.assert_alive()
        self.close(fd)
        self.assert_stopped_cleanly()

    def test_lazy_unmount_then_the_last_parked_reader_is_interrupted(self):
        self.sim.open(self.nr)
        c = Child(self, READ_ONCE, self.d.path("data"))
        c.wait_blocked()
        self.assertEqual(self.fusermount("-z").returncode, 0)
        self.assert_alive()
        c.proc.send_signal(signal.SIGINT)
        self.assertEqual(c.end(), "interrupted")  # EINTR, not a hang
        self.assert_stopped_cleanly()

    def test_unmount_of_an_idle_mount_stops_the_daemon(self):
        # Nothing open: the FUSE session ends at once, and the daemon
        # stops as on SIGTERM, its frontend connected or not.
        self.sim.open(self.nr)
        p = self.fusermount()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assert_stopped_cleanly()


# ---- 5. SIGTERM with every kind of request parked --------------------------

class SigtermWithRequestsParked(FaultTest):
    ports = ("name=data", "name=other", "name=sync", "name=polled",
             "name=console0,console=on")
    sim_args = ("--rx-bufs", "0")

    def test_every_parked_request_is_answered(self):
        for name in ("data", "other", "sync", "polled"):
            self.guest_open(self.sim.wait_port(name), name)
        kids = {}
        for what, program, name in (
                ("write", WRITE_BIG, "data"), ("read", READ_ONCE, "other"),
                ("fsync", FSYNC, "sync"), ("poll", POLL_IN, "polled"),
                ("console", READ_ONCE, "console0"),
                # Last: each open above is an event it would get.
                ("events", READ_ONCE, ".events")):
            kids[what] = Child(self, program, self.d.path(name))
            kids[what].wait_blocked()
        self.d.proc.send_signal(signal.SIGTERM)
        self.assert_stopped_cleanly()
        said = {k: c.end() for k, c in kids.items()}
        self.assertEqual(said["write"], "errno %d" % errno.EPIPE)
        self.assertEqual(said["read"], "read ")  # EOF
        self.assertEqual(said["fsync"], "errno %d" % errno.EIO)
        self.assertEqual(said["console"], "read ")
        self.assertEqual(said["events"], "read ")
        revents = int(said["poll"].split()[1])
        self.assertTrue(revents & (select.POLLERR | select.POLLHUP),
                        "poll ended with %#x" % revents)
        for k, c in kids.items():
            self.assertEqual(c.proc.returncode, 0, k)
        # What write() had accepted for `data` dies with the daemon: it
        # says so, with the count.
        lost = re.findall(r"warn: port (\d+) \(data\): (\d+) bytes written "
                          r"on the host never reached the guest",
                          self.d.read_log())
        self.assertEqual(len(lost), 1, self.d.read_log())
        self.assertEqual(int(lost[0][0]), self.nr)
        self.assertGreater(int(lost[0][1]), 0)


if __name__ == "__main__":
    unittest.main()
