"""Sharing a port file between several opens, and closing it (SPEC 4).

Default mode: at most one open with write access, any number of read-only
opens, each of which receives all guest output produced while it is open.
`-o exclusive`: one open of any kind.  Closing: bytes accepted by write()
reach the guest before it hears PORT_OPEN 0; fsync waits for delivery.
"""
import errno
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

from vpharness import readable, wait_until  # noqa: E402
from test_port_files import Blocked, PortTest  # noqa: E402



def read_exactly(fd, n, out, pause=0.0, chunk=1 << 20):
    """Read from fd into bytearray out until n bytes or EOF."""
    while len(out) < n:
        b = os.read(fd, min(chunk, n - len(out)))
        if not b:
            break
        out += b
        if pause:
            time.sleep(pause)
    return len(out)


class Sharing(PortTest):
    def assert_ebusy(self, flags):
        with self.assertRaises(OSError) as cm:
            self.open(flags)
        self.assertEqual(cm.exception.errno, errno.EBUSY)

    def test_second_open_with_write_access_is_ebusy(self):
        w = self.open(os.O_WRONLY)
        self.assert_ebusy(os.O_WRONLY)
        self.assert_ebusy(os.O_RDWR)
        self.close(w)
        rw = self.open(os.O_RDWR)
        self.assert_ebusy(os.O_WRONLY)
        self.assert_ebusy(os.O_RDWR)
        # The writer slot is per port.
        self.open(os.O_RDWR, name="org.qemu.guest_agent.0")
        self.close(rw)
        self.open(os.O_WRONLY)

    def test_any_number_of_read_only_opens_beside_the_writer(self):
        self.open(os.O_RDWR)
        readers = [self.open(os.O_RDONLY) for _ in range(8)]
        self.assertEqual(len(set(readers)), 8)
        self.assert_ebusy(os.O_WRONLY)

    def test_two_readers_each_get_all_guest_output_in_order(self):
        a = self.open(os.O_RDONLY)
        b = self.open(os.O_RDONLY)
        self.guest_open()
        data = b"".join(b"line %03d\n" % i for i in range(200))
        got_a, got_b = bytearray(), bytearray()
        ra = Blocked(read_exactly, a, len(data), got_a)
        rb = Blocked(read_exactly, b, len(data), got_b)
        for i in range(0, len(data), 100):
            self.guest_write(data[i:i + 100])
        ra.wait()
        rb.wait()
        self.assertEqual(bytes(got_a), data)
        self.assertEqual(bytes(got_b), data)

    def test_reader_and_writer_fd_both_receive_guest_output(self):
        rw = self.open(os.O_RDWR)
        r = self.open(os.O_RDONLY)
        self.guest_open()
        self.guest_write(b"to everyone")
        wait_until(lambda: readable(rw) and readable(r), 5,
                   what="both fds readable")
        self.assertEqual(os.read(rw, 100), b"to everyone")
        self.assertEqual(os.read(r, 100), b"to everyone")

    def test_reader_opened_later_gets_only_later_output(self):
        a = self.open(os.O_RDONLY)
        self.guest_open()
        self.guest_write(b"before ")
        wait_until(lambda: readable(a), 5, what="first reader readable")
        b = self.open(os.O_RDONLY | os.O_NONBLOCK)
        with self.assertRaises(BlockingIOError):
            os.read(b, 100)
        self.guest_write(b"after")
        wait_until(lambda: readable(b), 5, what="second reader readable")
        self.assertEqual(os.read(b, 100), b"after")
        with self.assertRaises(BlockingIOError):
            os.read(b, 100)
        got = bytearray()
        read_exactly(a, 12, got)
        self.assertEqual(bytes(got), b"before after")

    def test_closing_one_reader_does_not_disturb_the_other(self):
        a = self.open(os.O_RDONLY)
        b = self.open(os.O_RDONLY)
        self.guest_open()
        self.guest_write(b"first")
        wait_until(lambda: readable(a) and readable(b), 5)
        self.close(a)  # a never read "first"
        self.guest_write(b"second")
        got = bytearray()
        read_exactly(b, 11, got)
        self.assertEqual(bytes(got), b"firstsecond")
        self.guest("wait-tx %d 2000" % self.nr)


class SlowReader(PortTest):
    """The port keeps at most its ring (1 MiB by default) of guest output
    that some reader has not read; past that the guest's writer stalls."""
    sim_args = ("--queue-size", "16")
    PORT_RING = 1 << 20

    def test_slow_reader_throttles_guest_and_nothing_is_lost(self):
        data = os.urandom(3 << 20)
        path = os.path.join(self.d.dir, "stream.bin")
        with open(path, "wb") as f:
            f.write(data)
        fast = self.open(os.O_RDONLY)
        slow = self.open(os.O_RDONLY)
        self.guest_open()
        self.guest("wait-host %d 1 2000" % self.nr)
        got_fast, got_slow = bytearray(), bytearray()
        rf = Blocked(read_exactly, fast, len(data), got_fast)
        writer = Blocked(self.sim.write_file, self.nr, path, 15.0, 60.0)
        # The slow reader has not read anything: the port keeps what it
        # has not read, up to its ring, so the fast reader stalls and so
        # does the guest's writer.
        time.sleep(1.0)
        self.assertTrue(writer.still_blocked(0))
        self.assertGreater(len(got_fast), 0)
        self.assertLessEqual(len(got_fast), self.PORT_RING)
        rs = Blocked(read_exactly, slow, len(data), got_slow, 0.002,
                     65536)
        self.assertEqual(writer.wait(60), len(data))
        rf.wait(30)
        rs.wait(30)
        self.assertEqual(len(got_fast), len(data))
        self.assertEqual(len(got_slow), len(data))
        self.assertTrue(bytes(got_fast) == data, "fast reader data differs")
        self.assertTrue(bytes(got_slow) == data, "slow reader data differs")
        self.assertEqual(os.getxattr(self.d.path("data"),
                                     "user.vport.dropped_bytes"), b"0")


class Exclusive(PortTest):
    args = ("-o", "exclusive")

    def test_second_open_of_any_kind_is_ebusy(self):
        for first in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR):
            fd = self.open(first)
            for second in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR):
                with self.assertRaises(OSError) as cm:
                    self.open(second)
                self.assertEqual(cm.exception.errno, errno.EBUSY,
                                 "flags %o then %o" % (first, second))
            self.close(fd)

    def test_new_open_works_after_close(self):
        fd = self.open(os.O_RDONLY)
        self.close(fd)
        fd = self.open(os.O_RDWR)
        self.guest_open()
        self.assertEqual(os.write(fd, b"again"), 5)
        self.assertEqual(self.guest_readn(5), b"again")
        self.guest_write(b"back")
        wait_until(lambda: readable(fd), 5)
        self.assertEqual(os.read(fd, 10), b"back")

    def test_exclusive_is_per_port(self):
        self.open(os.O_RDONLY)
        self.open(os.O_RDWR, name="org.qemu.guest_agent.0")


class Closing(PortTest):
    """The guest posts no receive buffers until the test says so."""
    sim_args = ("--rx-bufs", "0")

    def rx_total(self):
        return int(self.sim.info(self.nr)["rx_total"])

    def test_closing_writer_bytes_arrive_before_port_open_0(self):
        self.guest_open()
        fd = self.open(os.O_WRONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        data = os.urandom(20000)
        self.assertEqual(os.write(fd, data), len(data))
        self.close(fd)
        time.sleep(0.3)
        self.assertTrue(self.host_connected())
        # Part of the bytes: the host side must still look open.
        self.guest("rx-post %d 2 4096" % self.nr)
        wait_until(lambda: self.rx_total() == 8192, 5,
                   what="two buffers filled")
        time.sleep(0.3)
        self.assertTrue(self.host_connected())
        self.assertEqual(self.rx_total(), 8192)
        self.guest("rx-post %d 8 4096" % self.nr)
        self.assertEqual(self.guest_readn(len(data)), data)
        self.guest("wait-host %d 0 5000" % self.nr)
        self.assertEqual(self.rx_total(), len(data))

    def test_fsync_waits_until_this_fds_bytes_are_in_guest_buffers(self):
        self.guest_open()
        fd = self.open(os.O_WRONLY)
        os.fsync(fd)  # nothing written: returns at once
        data = os.urandom(20000)
        self.assertEqual(os.write(fd, data), len(data))
        f = Blocked(os.fsync, fd)
        self.assertTrue(f.still_blocked())
        self.guest("rx-post %d 2 4096" % self.nr)
        wait_until(lambda: self.rx_total() == 8192, 5)
        self.assertTrue(f.still_blocked())
        self.guest("rx-post %d 3 4096" % self.nr)
        f.wait()
        self.assertEqual(self.guest_readn(len(data)), data)


if __name__ == "__main__":
    unittest.main()
