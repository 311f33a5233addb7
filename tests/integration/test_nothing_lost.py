"""Nothing written is lost or corrupted (issue 7): guest resets the device
does not hear of, VMs that stop, re-plugged ports, guest closes that race
ahead of their data, host bytes across guest sessions.

Each case is played deterministically by the simulated guest: it can free
and reuse its posted buffers without telling (tx-scribble), publish data
without kicking (tx-withhold-kick), post after an unplug (raw-desc) and
die at any moment (kill).
"""
import errno
import json
import os
import select
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

from vpharness import (Blocked, poll_events, read_exact,  # noqa: E402
                       read_to_eof, readable, wait_until)
from simctl import txq  # noqa: E402
from test_console import drain  # noqa: E402
from test_restart import RestartTest  # noqa: E402


def xattr(path, name):
    return os.getxattr(path, "user.vport." + name)


def stall_behind_full_ring(t, ring):
    """The guest fills the port's ring (`ring` bytes of b"A") and posts
    100 bytes of b"a" that do not fit: that chain stalls in its ring."""
    t.assertEqual(t.sim.write_all(t.nr, b"A" * ring), ring)
    t.guest("wait-tx %d 2000" % t.nr)
    t.sim.write(t.nr, b"a" * 100)
    t.sim.sleep(0.1)


class FreedGuestMemory(RestartTest):
    """A guest that resets the device without telling it frees the TX
    buffers it still sees as posted (UML at device removal).  A read must
    still return the bytes the guest wrote: they left guest memory when
    the device took them."""

    def test_read_after_guest_frees_its_buffers_returns_what_it_wrote(self):
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK)
        self.guest_open()
        self.guest_write(b"pong 1\n")
        wait_until(lambda: readable(fd), 5)
        self.sim.tx_scribble(self.nr, 0xa8)
        self.assertEqual(os.read(fd, 100), b"pong 1\n")

    def test_output_waiting_for_the_next_opener_is_not_guest_memory(self):
        # Nobody had the file open: the bytes wait for the next opener,
        # and the guest's buffers went back long before.
        self.guest_open()
        self.guest_write(b"pong 2\n")
        self.guest("wait-tx %d 2000" % self.nr)
        self.sim.tx_scribble(self.nr, 0xa8)
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK)
        self.assertEqual(read_exact(fd, 7), b"pong 2\n")

    def test_buffers_go_back_before_any_host_read(self):
        self.guest_open()
        self.guest_write(b"x" * 100000)
        self.guest("wait-tx %d 2000" % self.nr)
        self.assertEqual(self.sim.tx_scribble(self.nr, 0xa8), 0)


class OutputOutlivesTheVm(RestartTest):
    """What the guest's write() returned for is delivered after the VM
    stops."""

    def test_reply_then_close_then_power_off(self):
        fd = self.open(os.O_RDONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.guest_open()
        self.guest_write(b"reply\n")
        self.guest("close %d" % self.nr)
        self.drop_sim("kill")
        self.assertEqual(os.read(fd, 100), b"reply\n")
        self.assertEqual(os.read(fd, 100), b"")  # then EOF: no guest



class OutputBeyondTheRing(RestartTest):
    sim_args = ("--queue-size", "16")  # the guest's ring: 16 x 32 KiB

    def test_output_beyond_the_ring_waits_in_the_guest(self):
        # A port keeps at most ring-size bytes nobody read (1 MiB here);
        # the rest stays in the guest, whose writer blocks.
        self.guest_open()
        data = os.urandom(3 << 20)
        written = 0
        for _ in range(200):
            try:
                written += self.sim.write(self.nr, data[written:])
            except Exception:  # ring full: the device took what fits
                break
            self.sim.sleep(0.01)
        self.assertLess(written, len(data))
        wait_until(lambda: int(self.guest("tx-pending %d" % self.nr)) <=
                   (written - (1 << 20)), 5, what="device took 1 MiB")
        self.sim.sleep(0.2)
        in_guest = int(self.guest("tx-pending %d" % self.nr))
        self.assertEqual(in_guest, written - (1 << 20))
        self.drop_sim("kill")
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK)
        self.assertEqual(read_exact(fd, 1 << 20), data[:1 << 20])
        # What the guest had written beyond that died with it: counted.
        self.assertEqual(xattr(self.d.path("data"), "dropped_bytes"),
                         b"%d" % in_guest)


class Replug(RestartTest):
    """A chain posted on a port's TX queue after the port was unplugged is
    the old port's: it never reaches a new port of the same number."""

    def test_buffer_posted_after_unplug_never_reaches_the_new_port(self):
        os.unlink(self.d.path("data"))
        self.sim.wait_gone(self.nr)
        self.sim.raw_desc(txq(self.nr), "hex=%s:-" % b"OLD STREAM".hex())
        self.sim.sleep(0.2)
        with open(self.d.path("data"), "w"):
            pass
        self.assertEqual(self.sim.wait_port("data"), self.nr)
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.guest_open()
        self.guest_write(b"new")
        self.assertEqual(read_exact(fd, 3), b"new")
        self.sim.sleep(0.1)
        with self.assertRaises(BlockingIOError):
            os.read(fd, 100)
        self.assertEqual(xattr(self.d.mnt, "orphan_bytes"), b"10")

    def test_buffer_posted_after_unplug_is_returned_to_the_guest(self):
        os.unlink(self.d.path("data"))
        self.sim.wait_gone(self.nr)
        head = self.sim.raw_desc(txq(self.nr), "hex=%s:-" % b"late".hex())
        self.assertEqual(self.sim.raw_used(txq(self.nr)), (head, 0))


class CloseAfterData(RestartTest):
    """The guest's close ends its session after every byte it wrote before
    closing, even when the device sees the close first."""
    args = ("-o", "session")

    def test_session_gets_data_published_before_the_close(self):
        fd = self.open(os.O_RDONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.guest_open()
        data = os.urandom(256 << 10)
        self.sim.tx_withhold_kick(self.nr, True)
        self.assertEqual(self.sim.write_all(self.nr, data), len(data))
        self.guest("close %d" % self.nr)  # seen before any data kick
        got = read_to_eof(fd)
        self.assertEqual(len(got), len(data))
        self.assertTrue(got == data)
        self.assertEqual(xattr(self.d.path("data"), "dropped_bytes"), b"0")


class SessionBoundaries(RestartTest):
    """-o session: every byte belongs to the session it was written in, and
    an fd opened during a session gets what that session sent before it
    came (found by review)."""
    args = ("-o", "session")
    ports = ("name=data,ring-size=64K",)
    RING = 64 << 10

    def test_first_session_output_before_any_fd(self):
        self.guest_open()
        self.guest_write(b"hello")
        self.guest("wait-tx %d 2000" % self.nr)
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK)
        self.assertEqual(read_exact(fd, 5, 2), b"hello")

    def test_second_session_output_before_its_fd(self):
        fd = self.open(os.O_RDONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.guest_open()
        self.guest_write(b"one")
        self.assertEqual(os.read(fd, 100), b"one")
        self.guest("close %d" % self.nr)
        self.assertEqual(os.read(fd, 100), b"")
        self.guest_open()
        self.guest_write(b"two")
        self.guest("wait-tx %d 2000" % self.nr)
        fd2 = self.open(os.O_RDONLY | os.O_NONBLOCK)
        self.assertEqual(read_exact(fd2, 3, 2), b"two")

    def test_new_session_bytes_never_reach_the_old_sessions_fd(self):
        # The close waits for a chain stalled behind a full ring; the
        # guest reopens and writes meanwhile.
        fd = self.open(os.O_RDONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.guest_open()
        stall_behind_full_ring(self, self.RING)
        self.guest("close %d" % self.nr)
        self.guest_open()
        self.sim.write(self.nr, b"B" * 4)
        self.sim.sleep(0.1)
        self.assertEqual(read_to_eof(fd), b"A" * self.RING + b"a" * 100)

    def test_bytes_written_right_after_an_open_belong_to_its_session(self):
        self.guest_open()
        self.sim.ctrl(self.nr, "PORT_OPEN", 0)
        self.sim.sleep(0.1)
        self.sim.tx_withhold_kick(self.nr, True)
        self.sim.write(self.nr, b"first")         # open(); write() ...
        self.sim.ctrl(self.nr, "PORT_OPEN", 1)    # ... the device sees open
        self.sim.sleep(0.1)
        self.sim.tx_withhold_kick(self.nr, False)
        self.sim.write(self.nr, b"second")
        self.guest("wait-tx %d 2000" % self.nr)
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK)
        self.assertEqual(read_exact(fd, 11, 2), b"firstsecond")


class CloseBehindAFullRing(RestartTest):
    ports = ("name=data,ring-size=64K",)

    def test_close_applies_when_the_last_reader_leaves_unread(self):
        fd = self.open(os.O_RDONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.guest_open()
        stall_behind_full_ring(self, 64 << 10)
        self.guest("close %d" % self.nr)
        self.sim.sleep(0.1)
        self.close(fd)
        wait_until(lambda: xattr(self.d.path("data"), "guest_connected") ==
                   b"0", 2, what="the guest close applied")


class PostedAtPowerOff(RestartTest):
    """What the guest had posted and the device had not yet taken when the
    VM went (its kick not handled) is kept, not lost (found by review)."""
    ports = ("name=data", "name=console0,console=on")

    def test_serial_port(self):
        self.guest_open()
        self.sim.tx_withhold_kick(self.nr, True)
        self.sim.write(self.nr, b"last words\n")
        self.drop_sim("kill")
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK)
        self.assertEqual(os.read(fd, 100), b"last words\n")
        self.assertEqual(xattr(self.d.path("data"), "dropped_bytes"), b"0")

    def test_console_port(self):
        c0 = self.sim.wait_port("console0")
        self.sim.tx_withhold_kick(c0, True)
        self.sim.write(c0, b"panic: oops\n")
        self.drop_sim("kill")
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK, name="console0")
        self.assertEqual(os.read(fd, 100), b"panic: oops\n")


class HostBytesWaitForTheGuest(RestartTest):
    """Host bytes accepted by write() that never reached a guest buffer
    wait for the guest's next open (default mode), as in a socket."""
    sim_args = ("--rx-bufs", "0")

    def host_writes_200000(self):
        fd = self.open(os.O_WRONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.guest_open()
        data = os.urandom(200000)
        self.assertEqual(os.write(fd, data), len(data))
        return fd, data

    def test_guest_close_without_reading_then_reopen(self):
        fd, data = self.host_writes_200000()
        self.guest("close %d" % self.nr)
        self.guest_open()
        self.guest("rx-post %d 64 4096" % self.nr)
        self.assertEqual(self.guest_readn(len(data)), data)
        os.fsync(fd)

    def test_across_a_vm_restart(self):
        fd, data = self.host_writes_200000()
        self.drop_sim("kill")
        self.new_sim()
        self.guest_open()
        self.assertEqual(self.guest_readn(len(data)), data)


class HostBytesBelongToTheSession(RestartTest):
    """-o session: they belong to the session that ended: dropped, counted
    (fsync says EIO), never handed to the next session."""
    args = ("-o", "session")
    sim_args = ("--rx-bufs", "0")

    def test_dropped_with_the_session(self):
        self.guest_open()
        fd = self.open(os.O_WRONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.assertEqual(os.write(fd, b"z" * 200000), 200000)
        self.guest("close %d" % self.nr)
        with self.assertRaises(OSError) as cm:
            os.fsync(fd)
        self.assertEqual(cm.exception.errno, errno.EIO)
        fd2 = self.open(os.O_WRONLY)
        self.guest_open()
        self.guest("wait-host %d 1 2000" % self.nr)
        os.write(fd2, b"next")
        self.guest("rx-post %d 4 4096" % self.nr)
        self.assertEqual(self.guest_readn(4), b"next")


class ConsoleReaders(RestartTest):
    """A console's ring outlives the VM, and so do its readers; a reader
    never receives a byte twice; dropped_bytes counts what no reader got,
    and a reader that fell behind is told in .events."""
    ports = ("name=console0,console=on,ring-size=4096", "name=data")

    def setUp(self):
        super().setUp()
        self.c0 = self.sim.wait_port("console0")

    def test_reader_blocks_across_frontend_loss_and_restart(self):
        fd = self.open(os.O_RDONLY, name="console0")
        self.sim.write(self.c0, b"boot 1\n")
        self.assertEqual(os.read(fd, 100), b"boot 1\n")
        r = Blocked(os.read, fd, 100)
        self.drop_sim("kill")
        self.assertTrue(r.still_blocked(0.5), "console read ended with the VM")
        self.assertFalse(poll_events(fd) & select.POLLHUP)
        self.new_sim()
        self.sim.wait_port("console0")
        self.sim.write(self.c0, b"boot 2\n")
        self.assertEqual(r.wait(), b"boot 2\n")

    def test_reopening_logger_never_gets_a_byte_twice(self):
        log = bytearray()
        for i in range(5):
            self.sim.write(self.c0, b"line %d\n" % i)
            self.sim.wait_tx(self.c0, 2)
            fd = self.open(os.O_RDONLY | os.O_NONBLOCK, name="console0")
            log += drain(fd)
            self.close(fd)
        self.assertEqual(bytes(log),
                         b"".join(b"line %d\n" % i for i in range(5)))

    def test_dropped_bytes_counts_only_what_no_reader_got(self):
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK, name="console0")
        total = 0
        for _ in range(40):  # 40 x 3000 bytes through a 4096-byte ring
            self.sim.write_all(self.c0, b"c" * 3000, 5)
            self.sim.wait_tx(self.c0, 2)
            total += len(drain(fd))
        self.assertEqual(total, 120000)
        self.assertEqual(xattr(self.d.path("console0"), "dropped_bytes"),
                         b"0")
        self.close(fd)
        self.sim.write_all(self.c0, b"d" * 10000, 5)
        self.sim.wait_tx(self.c0, 2)
        self.assertEqual(xattr(self.d.path("console0"), "dropped_bytes"),
                         b"%d" % (10000 - 4096))

    def test_reader_that_fell_behind_is_told_how_much_it_lost(self):
        ev = self.open(os.O_RDONLY | os.O_NONBLOCK, name=".events")
        drain(ev)
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK, name="console0")
        self.sim.write_all(self.c0, b"e" * 10000, 5)
        self.sim.wait_tx(self.c0, 2)
        self.assertEqual(drain(fd), b"e" * 4096)
        wait_until(lambda: readable(ev), 5)
        lines = [json.loads(x) for x in drain(ev).splitlines()]
        lost = [x for x in lines if x["event"] == "reader-overrun"]
        self.assertEqual(len(lost), 1, lines)
        self.assertEqual((lost[0]["port"], lost[0]["lost"]),
                         ("console0", 10000 - 4096))


if __name__ == "__main__":
    unittest.main()
