"""Load: many short lifetimes on one daemon, with the simulated guest
(vportfs-sim) connected, and no growth.

  10,000 open/close cycles on one port (half of them write a line to the
  guest, half read what the guest wrote), every byte checked both ways;
  1,000 hot-plug/unplug cycles through the mount (`touch NAME`, `rm NAME`),
  the guest seeing each add and each remove, every tenth port opened,
  used and unplugged under its open fd.

Each run comes after a warm-up of the same loop, so that what the first
cycles allocate for good (libfuse's request buffer, the hub's and the
device's tables, malloc's arenas) is in "before".  Then the daemon's own
resident memory (loadstat: VmRSS without the guest's pages) may grow by
less than a bound per run that a leak of 100 bytes a cycle would break
(the bounds catch from ~27 bytes an open/close and ~131 bytes a
hot-plug up), and its open fds not at all.
"""
import errno
import os
import signal
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

from vpharness import close_all, Daemon, VPORTFS_SIM, read_exact  # noqa: E402
from simctl import Sim  # noqa: E402
from loadstat import KIB, MIB, Usage, report  # noqa: E402

TEST_TIMEOUT = 120


class SimLoadTest(unittest.TestCase):
    """A daemon and a simulated guest connected to it."""
    ports = ("name=data",)
    args = ()

    def setUp(self):
        signal.alarm(TEST_TIMEOUT)
        self.d = Daemon(self.ports, self.args)
        self.addCleanup(self.d.cleanup)
        self.d.start()
        self.sim = Sim(VPORTFS_SIM, self.d.sock, timeout=10)
        self.addCleanup(self.sim.close)
        self.fds = []
        self.addCleanup(close_all, self.fds)

    def tearDown(self):
        signal.alarm(0)

    def usage(self):
        self.assertTrue(self.d.alive(), "the daemon died:\n" +
                        self.d.read_log())
        return Usage(self.d.proc.pid)

    def assert_bounded(self, before, after, own_limit, rss_limit=None):
        grew = after.own - before.own
        self.assertLess(grew, own_limit,
                        "the daemon's own memory grew by %d KiB (limit %d "
                        "KiB)" % (grew // KIB, own_limit // KIB))
        if rss_limit is not None:
            self.assertLess(after.rss - before.rss, rss_limit,
                            "VmRSS grew by %d KiB (limit %d KiB)" %
                            ((after.rss - before.rss) // KIB,
                             rss_limit // KIB))
        self.assertLessEqual(after.fds, before.fds,
                             "the daemon's open fds grew")


class OpenCloseCycles(SimLoadTest):
    """10,000 opens and closes of one port file while the guest has its end
    open: each cycle is a whole host session (the guest sees PORT_OPEN 1
    and 0 for each), a hub endpoint and a device reader made and freed.

    Bound: nothing in a cycle is meant to stay (the endpoint, its reader
    cursor, its parked requests and the control messages are all freed
    by the close), and runs here grow the daemon's own memory by 0 KiB.
    A leak of 100 bytes a cycle would be ~977 KiB over 10,000 cycles;
    256 KiB catches anything from ~27 bytes a cycle up."""
    CYCLES = 10000
    WARMUP = 500
    GUEST_EVERY = 50  # the guest writes a line every 50 cycles

    def run_cycles(self, first, count):
        """Cycles first..first+count-1: even ones write a line to the
        guest, odd ones read (non-blocking) what the guest wrote; every
        GUEST_EVERY cycles the guest writes a line and reads what came.
        Returns (what the guest wrote, what the host read, what the host
        wrote, what the guest read).

        The guest reads as it goes, as a guest program would: a guest
        that never reads would leave the host's lines in the daemon's
        256 KiB host buffer (each line takes a whole 4 KiB receive buffer
        once the guest's 256 are used up), and that buffer's pages,
        touched as far as it fills, would grow with the number of
        cycles, to 256 KiB: bounded, but no measure of a leak."""
        path = self.d.path("data")
        to_host, from_guest, to_guest = [], bytearray(), []
        in_guest = bytearray()
        for i in range(first, first + count):
            if i % self.GUEST_EVERY == 0:
                line = b"guest %d\n" % i
                self.assertEqual(self.sim.write(self.nr, line), len(line))
                to_host.append(line)
                in_guest += bytes.fromhex(self.sim.cmd(
                    "read %d 65536 0" % self.nr))
            if i % 2 == 0:
                line = b"host %d\n" % i
                fd = os.open(path, os.O_WRONLY)
                try:
                    self.assertEqual(os.write(fd, line), len(line))
                finally:
                    os.close(fd)
                to_guest.append(line)
            else:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                try:
                    while True:
                        b = os.read(fd, 65536)
                        self.assertNotEqual(b, b"", "EOF while the guest "
                                            "had the port open")
                        from_guest += b
                except BlockingIOError:
                    pass
                finally:
                    os.close(fd)
        return b"".join(to_host), from_guest, b"".join(to_guest), in_guest

    def check_exchange(self, to_host, from_guest, to_guest, in_guest):
        """What the cycles carried, whole: the host's lines in the guest,
        the guest's lines on the host (after one last reader takes what
        arrived after the last odd cycle)."""
        in_guest += self.sim.readn(self.nr, len(to_guest) - len(in_guest),
                                   10)
        self.assertTrue(in_guest == to_guest, "the guest got other bytes "
                        "than the host's %d lines" % to_guest.count(b"\n"))
        self.sim.wait_tx(self.nr, 10)
        fd = os.open(self.d.path("data"), os.O_RDONLY)
        try:
            rest = len(to_host) - len(from_guest)
            if rest > 0:
                from_guest += read_exact(fd, rest, 10)
        finally:
            os.close(fd)
        self.assertTrue(bytes(from_guest) == to_host,
                        "the host read other bytes than the guest's %d "
                        "lines" % to_host.count(b"\n"))

    def test_10000_open_close_cycles(self):
        self.nr = self.sim.wait_port("data")
        self.sim.open(self.nr)
        self.check_exchange(*self.run_cycles(0, self.WARMUP))
        before = self.usage()
        t0 = time.monotonic()
        sent = self.run_cycles(self.WARMUP, self.CYCLES)
        secs = time.monotonic() - t0
        self.check_exchange(*sent)
        self.sim.wait_host(self.nr, False, 10)
        after = self.usage()
        report("10000 open/close", before, after,
               "%.0f cycles/s" % (self.CYCLES / secs))
        # VmRSS also counts the guest's pages the daemon touches: here its
        # control buffers and the 256 receive buffers of 4 KiB it posted
        # once (1 MiB), which the warm-up has mostly touched already.
        self.assert_bounded(before, after, 256 * KIB,
                            256 * KIB + 1 * MIB + 64 * KIB)


class HotplugCycles(SimLoadTest):
    """1,000 hot-plugs and unplugs through the mount while a guest is
    connected: `touch hot` (open(O_CREAT), as touch does), the guest sees
    PORT_ADD and PORT_NAME and answers PORT_READY; `rm hot`, the guest
    sees PORT_REMOVE.  Every tenth port is opened on both sides, carries
    a line each way and is unplugged under its open fd (ENODEV, then the
    close frees what the gone port still held).

    Bound: a cycle makes and frees a hub port, a device port with its
    1 MiB ring and 256 KiB host buffer, control messages and an inode,
    and runs here grow the daemon's own memory by 0 KiB.  A leak of any
    of these is a hundred bytes or more a cycle: 128 KiB over 1,000
    cycles catches anything from ~131 bytes a cycle up (a lost port or
    endpoint struct, ring, or FUSE inode; a lost name only if longer).

    VmRSS is printed but not bounded here: it also counts the guest's
    pages the daemon wrote to, and the simulated guest gives each new
    port receive buffers from fresh parts of its 64 MiB."""
    CYCLES = 1000
    WARMUP = 50
    USE_EVERY = 10

    def touch(self, name):
        fd = os.open(self.d.path(name),
                     os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY,
                     0o666)
        os.close(fd)

    def run_cycles(self, first, count):
        name = "hot"
        path = self.d.path(name)
        for i in range(first, first + count):
            self.touch(name)
            nr = self.sim.wait_port(name)
            fd = None
            if i % self.USE_EVERY == 0:
                fd = os.open(path, os.O_RDWR)
                self.fds.append(fd)
                self.sim.open(nr)
                self.sim.wait_host(nr, True)
                line = b"to guest %d\n" % i
                self.assertEqual(os.write(fd, line), len(line))
                self.assertEqual(self.sim.readn(nr, len(line)), line)
                line = b"to host %d\n" % i
                self.sim.write_all(nr, line)
                self.assertEqual(read_exact(fd, len(line)), line)
            os.unlink(path)
            self.sim.wait_gone(nr)
            if fd is not None:
                with self.assertRaises(OSError) as cm:
                    os.read(fd, 10)
                self.assertEqual(cm.exception.errno, errno.ENODEV)
                self.fds.remove(fd)
                os.close(fd)
        self.assertEqual(sorted(os.listdir(self.d.mnt)),
                         [".events", "data"])

    def check_port_works(self, name):
        nr = self.sim.wait_port(name)
        fd = os.open(self.d.path(name), os.O_RDWR)
        self.fds.append(fd)
        self.sim.open(nr)
        self.sim.wait_host(nr, True)
        os.write(fd, b"down " + name.encode())
        self.assertEqual(self.sim.readn(nr, 5 + len(name)),
                         b"down " + name.encode())
        self.sim.write_all(nr, b"up " + name.encode())
        self.assertEqual(read_exact(fd, 3 + len(name)),
                         b"up " + name.encode())

    def test_1000_hotplug_unplug_cycles(self):
        self.sim.wait_port("data")
        self.run_cycles(0, self.WARMUP)
        before = self.usage()
        t0 = time.monotonic()
        self.run_cycles(self.WARMUP, self.CYCLES)
        secs = time.monotonic() - t0
        after = self.usage()
        report("1000 hot-plug/unplug", before, after,
               "%.0f cycles/s" % (self.CYCLES / secs))
        self.assert_bounded(before, after, 128 * KIB)
        # Still a working device: the configured port and a new one.
        self.check_port_works("data")
        self.touch("last")
        self.check_port_works("last")


if __name__ == "__main__":
    unittest.main()
