"""When a host write is answered: before or after its copy into the guest
(issue 11, the host->guest row).

A write that completes with 64 KiB or more is answered first and copied
into the guest's receive buffers after, so that the writer prepares its
next write while the daemon copies.  A smaller one is copied first: its
copy costs less than the reply.

strace holds the daemon at the exit of every writev (its FUSE replies)
for a while: the writer's write() has returned, the daemon has not gone
on.  The guest's RX used index, read from guest memory meanwhile, shows
whether the bytes were placed before the reply.  Order, never time.
"""
import os
import signal
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

from vpharness import VPORTFS_SIM, Daemon  # noqa: E402
from simctl import Sim, rxq  # noqa: E402
from test_round_trip_syscalls import (  # noqa: E402
    attach_strace, detach_strace, need_strace)

TEST_TIMEOUT = 120
HOLD_US = 3_000_000  # how long the daemon stays at each reply's exit
RX_BUF = 4096        # the simulated guest's receive buffers


class WriteReplyOrder(unittest.TestCase):
    def setUp(self):
        need_strace()
        signal.alarm(TEST_TIMEOUT)
        self.addCleanup(signal.alarm, 0)
        self.d = Daemon(("name=data",))
        self.addCleanup(self.d.cleanup)
        self.d.start()
        self.sim = Sim(VPORTFS_SIM, self.d.sock)
        self.addCleanup(self.sim.close)
        self.nr = self.sim.wait_port("data")
        self.sim.open(self.nr)
        self.fd = os.open(self.d.path("data"), os.O_WRONLY)
        self.addCleanup(os.close, self.fd)
        self.sim.wait_host(self.nr, True)

    def used_idx(self):
        return int(self.sim.queue(rxq(self.nr))["used_idx"])

    def hold_replies(self):
        """Every writev of the daemon (its FUSE replies) stops at its
        exit for HOLD_US, once strace says it is attached."""
        return attach_strace(
            self.d.proc.pid, os.devnull,
            ("-e", "trace=writev",
             "-e", "inject=writev:delay_exit=%d" % HOLD_US))

    def write_held(self, data):
        """write() data while the daemon is held after each reply; the
        RX used index before the write and when write() returned."""
        before = self.used_idx()
        tracer = self.hold_replies()
        try:
            self.assertEqual(os.write(self.fd, data), len(data))
            after = self.used_idx()
        finally:
            detach_strace(tracer)
        return before, after

    def test_large_write_is_answered_before_its_copy(self):
        data = bytes(i % 251 for i in range(256 << 10))
        before, after = self.write_held(data)
        # Answered: the guest has none of it yet.
        self.assertEqual(after, before)
        # Then copied, every byte.
        self.assertEqual(self.sim.readn(self.nr, len(data)), data)
        self.assertEqual((self.used_idx() - before) & 0xffff,
                         len(data) // RX_BUF)

    def test_small_write_is_copied_before_its_answer(self):
        before, after = self.write_held(b"x" * 100)
        # One receive buffer, used before the reply.
        self.assertEqual((after - before) & 0xffff, 1)
        self.assertEqual(self.sim.readn(self.nr, 100), b"x" * 100)


if __name__ == "__main__":
    unittest.main()
