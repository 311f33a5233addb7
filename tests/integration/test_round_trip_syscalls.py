"""The syscalls of a 1-byte round trip (issue 11, the round-trip row).

The simulated guest (vportfs-bench --mode rtt) sends one byte on a port,
vportfs-bench --echo sends it back through the port file; strace -c counts
the daemon's and the guest's syscalls over every trip.  Counts, never
times: what each side does per trip is the behaviour, the bench shows the
speed.

Per trip the daemon reads three things: the TX queue's kick, the echo's
FUSE write and its next FUSE read.  It used to read /dev/fuse on after
each request until EAGAIN (one failing read per wakeup); the guest read
its call socketpair on until EAGAIN after each interrupt.

The same through a socket chardev: the daemon's loop used to restart the
peer's read watch (one epoll_ctl) after every read that found EAGAIN,
though the watch was on already.
"""
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

from vpharness import (BUILD, VPORTFS_SIM, Daemon,  # noqa: E402
                       untraceable_leak_check_off, wait_until)
from simctl import Sim  # noqa: E402

BENCH = os.path.join(BUILD, "vportfs-bench")
TRIPS = 500
WARMUP = 100  # vportfs-bench's RTT_WARMUP: trips before the timed ones
TEST_TIMEOUT = 120


def need_strace():
    """A machine without strace fails here, loudly: install-deps.sh
    installs it."""
    if shutil.which("strace") is None:
        raise AssertionError("strace is missing: run scripts/install-deps.sh")


def strace_counts(path):
    """{syscall: (calls, errors)} from a strace -c summary."""
    counts = {}
    with open(path) as f:
        for line in f:
            cols = line.split()
            if len(cols) not in (5, 6) or not cols[-1].isidentifier():
                continue
            if not cols[3].isdigit() or cols[-1] == "total":
                continue
            errors = int(cols[4]) if len(cols) == 6 else 0
            counts[cols[-1]] = (int(cols[3]), errors)
    return counts


class RoundTripSyscalls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        need_strace()
        signal.alarm(TEST_TIMEOUT)
        cls.tmp = tempfile.mkdtemp(prefix="vportfs-test-rtt-", dir="/var/tmp")
        cls.daemon_out = os.path.join(cls.tmp, "daemon.strace")
        cls.guest_out = os.path.join(cls.tmp, "guest.strace")
        cls.d = Daemon(("name=bench",))
        try:
            cls._run()
        finally:
            cls.d.cleanup()
            signal.alarm(0)

    @classmethod
    def _run(cls):
        cls.d.start()
        port = cls.d.path("bench")
        guest = subprocess.Popen(
            ["strace", "-q", "-c", "-o", cls.guest_out, BENCH,
             "--socket", cls.d.sock, "--port", "bench", "--mode", "rtt",
             "--count", str(TRIPS)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=untraceable_leak_check_off())
        tracer = echo = None
        try:
            wait_until(lambda: os.getxattr(port, "user.vport.guest_connected")
                       == b"1", 30, what="the guest to open the port")
            # Attached once it says so: the trips must all be counted.
            tracer = subprocess.Popen(
                ["strace", "-c", "-o", cls.daemon_out,
                 "-p", str(cls.d.proc.pid)],
                stderr=subprocess.PIPE, text=True)
            line = tracer.stderr.readline()
            if "attached" not in line:
                raise AssertionError("strace cannot attach: " + line)
            echo = subprocess.Popen([BENCH, "--echo", port],
                                    stderr=subprocess.DEVNULL)
            out, err = guest.communicate(timeout=TEST_TIMEOUT)
            if guest.returncode != 0:
                raise AssertionError("rtt guest failed:\n" + out + err)
            cls.guest_report = out
            echo.wait(timeout=30)
        finally:
            for p in (echo, guest):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
            if tracer is not None:
                tracer.send_signal(signal.SIGINT)
                tracer.wait(timeout=30)
                tracer.stderr.close()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def trips(self):
        self.assertIn("mode=rtt count=%d " % TRIPS, self.guest_report)
        return TRIPS + WARMUP

    def test_daemon_reads_each_fuse_request_and_kick_once(self):
        counts = strace_counts(self.daemon_out)
        trips = self.trips()
        reads, failed = counts.get("read", (0, 0))
        # A kick and two FUSE requests a trip, and the echo's open
        # (a few requests) on top.
        self.assertLessEqual(reads, 3 * trips + 20, counts)
        self.assertLessEqual(failed, trips // 10, counts)

    def test_guest_reads_each_interrupt_once(self):
        counts = strace_counts(self.guest_out)
        trips = self.trips()
        reads, failed = counts.get("read", (0, 0))
        # Two interrupts a trip at most (the byte sent, the byte
        # received), one read each; the handshake reads a few more.
        self.assertLessEqual(reads, 2 * trips + 50, counts)
        self.assertLessEqual(failed, trips // 10, counts)


def attach_strace(pid, out, options=("-c",)):
    """strace (by default -c) on pid, output to out, once it says it is
    attached."""
    tracer = subprocess.Popen(["strace", *options, "-o", out, "-p", str(pid)],
                              stderr=subprocess.PIPE, text=True)
    line = tracer.stderr.readline()
    if "attached" not in line:
        tracer.kill()
        tracer.wait()
        tracer.stderr.close()
        raise AssertionError("strace cannot attach: " + line)
    return tracer


def detach_strace(tracer):
    tracer.send_signal(signal.SIGINT)
    tracer.wait(timeout=30)
    tracer.stderr.close()


class ChardevRoundTripSyscalls(unittest.TestCase):
    """1 byte from a socket chardev's peer to the guest and 1 back, N
    times: the watches stay as they are, no epoll_ctl per trip."""

    def setUp(self):
        need_strace()
        signal.alarm(TEST_TIMEOUT)
        self.addCleanup(signal.alarm, 0)
        self.tmp = tempfile.mkdtemp(prefix="vportfs-test-chr-", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.csock = os.path.join(self.tmp, "chr.sock")
        self.d = Daemon(("name=data,chardev=c",), [
            "--chardev", "socket,id=c,path=%s,server=on,wait=off" % self.csock])
        self.addCleanup(self.d.cleanup)
        self.d.start()
        self.sim = Sim(VPORTFS_SIM, self.d.sock)
        self.addCleanup(self.sim.close)

    def test_no_epoll_ctl_per_trip(self):
        nr = self.sim.wait_port("data")
        self.sim.open(nr)
        peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(peer.close)
        peer.connect(self.csock)
        self.sim.wait_host(nr, True)
        out = os.path.join(self.tmp, "daemon.strace")
        tracer = attach_strace(self.d.proc.pid, out)
        try:
            for i in range(TRIPS // 5):
                b = bytes([i % 251])
                peer.sendall(b)
                self.assertEqual(self.sim.readn(nr, 1), b)
                self.sim.write_all(nr, b)
                self.assertEqual(peer.recv(1), b)
        finally:
            detach_strace(tracer)
        counts = strace_counts(out)
        self.assertLessEqual(counts.get("epoll_ctl", (0, 0))[0], 4, counts)


if __name__ == "__main__":
    unittest.main()
