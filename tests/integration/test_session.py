"""`-o session`: an fd belongs to one guest session (SPEC 4, seed 001).

Opened before the guest opens its end, reads and writes wait for it; once
the guest closes its end the fd is hung up for good (EOF after the data
already received, EPIPE, POLLHUP), even if the guest reopens.  Only a new
open talks to the new session, and no byte crosses sessions.
"""
import errno
import os
import select
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

from vpharness import poll_events, readable, wait_until  # noqa: E402
from test_port_files import Blocked, PortTest  # noqa: E402




class SessionTest(PortTest):
    args = ("-o", "session")

    def guest_close(self):
        self.guest("close %d" % self.nr)

    def assert_epipe(self, fd, data=b"x"):
        with self.assertRaises(OSError) as cm:
            os.write(fd, data)
        self.assertEqual(cm.exception.errno, errno.EPIPE)


class BeforeGuestOpens(SessionTest):
    def test_read_blocks_not_eof_until_guest_opens(self):
        fd = self.open(os.O_RDONLY)
        r = Blocked(os.read, fd, 100)
        self.assertTrue(r.still_blocked(0.5))
        self.guest_open()
        self.assertTrue(r.still_blocked())
        self.guest_write(b"hello")
        self.assertEqual(r.wait(), b"hello")

    def test_write_blocks_until_guest_opens(self):
        fd = self.open(os.O_WRONLY)
        w = Blocked(os.write, fd, b"early")
        self.assertTrue(w.still_blocked(0.5))
        self.guest_open()
        self.assertEqual(w.wait(), 5)
        self.assertEqual(self.guest_readn(5), b"early")

    def test_nonblocking_read_and_write_are_eagain_not_eof(self):
        fd = self.open(os.O_RDWR | os.O_NONBLOCK)
        with self.assertRaises(BlockingIOError):
            os.read(fd, 100)
        with self.assertRaises(BlockingIOError):
            os.write(fd, b"x")

    def test_poll_reports_nothing_then_pollout_when_guest_opens(self):
        fd = self.open(os.O_RDWR)
        self.assertEqual(poll_events(fd), 0)
        self.guest_open()
        wait_until(lambda: poll_events(fd) == select.POLLOUT, 5,
                   what="POLLOUT once the guest opened")


class GuestCloses(SessionTest):
    def test_read_gets_data_sent_before_close_then_eof(self):
        fd = self.open(os.O_RDWR)
        self.guest_open()
        self.guest_write(b"last words")
        wait_until(lambda: readable(fd), 5)
        self.guest_close()
        wait_until(lambda: poll_events(fd) & select.POLLHUP, 5,
                   what="POLLHUP")
        self.assertEqual(os.read(fd, 100), b"last words")
        self.assertEqual(os.read(fd, 100), b"")
        self.assertEqual(os.read(fd, 100), b"")

    def test_write_after_guest_close_is_epipe(self):
        fd = self.open(os.O_RDWR)
        self.guest_open()
        self.assertEqual(os.write(fd, b"ok"), 2)
        self.assertEqual(self.guest_readn(2), b"ok")
        self.guest_close()
        wait_until(lambda: poll_events(fd) & select.POLLHUP, 5)
        self.assert_epipe(fd)
        fd2 = self.open(os.O_RDONLY)  # a reader may still open
        self.assertTrue(fd2 >= 0)
        self.assert_epipe(fd)

    def test_poll_is_pollin_pollhup_without_pollout(self):
        fd = self.open(os.O_RDWR)
        self.guest_open()
        wait_until(lambda: poll_events(fd) == select.POLLOUT, 5)
        self.guest_close()
        wait_until(lambda: poll_events(fd) != select.POLLOUT, 5)
        self.assertEqual(poll_events(fd), select.POLLIN | select.POLLHUP)

    def test_blocked_read_and_poll_wake_at_guest_close(self):
        fd = self.open(os.O_RDONLY)
        self.guest_open()
        r = Blocked(os.read, fd, 100)
        p = select.poll()
        p.register(fd, select.POLLIN)
        wait_until(lambda: not p.poll(0), 5)
        pl = Blocked(p.poll, 10000)
        self.assertTrue(r.still_blocked())
        self.assertTrue(pl.still_blocked(0))
        self.guest_close()
        self.assertEqual(r.wait(), b"")
        ev = pl.wait()
        self.assertTrue(ev and ev[0][1] & select.POLLHUP)

    def test_guest_sees_host_closed_once_only_hung_fds_remain(self):
        a = self.open(os.O_RDONLY)
        b = self.open(os.O_WRONLY)
        self.guest_open()
        self.guest("wait-host %d 1 2000" % self.nr)
        self.guest_close()
        self.guest("wait-host %d 0 2000" % self.nr)
        self.guest_open()
        time.sleep(0.3)
        self.assertFalse(self.host_connected())
        self.close(b)
        c = self.open(os.O_RDONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.close(c)
        self.guest("wait-host %d 0 2000" % self.nr)
        self.assertEqual(os.read(a, 10), b"")


class GuestReopens(SessionTest):
    def test_old_fd_stays_hung_up_after_guest_reopens(self):
        old = self.open(os.O_RDWR)
        self.guest_open()
        self.guest_close()
        wait_until(lambda: poll_events(old) & select.POLLHUP, 5)
        self.guest_open()
        time.sleep(0.2)
        self.assertEqual(poll_events(old), select.POLLIN | select.POLLHUP)
        self.assertEqual(os.read(old, 100), b"")
        self.assert_epipe(old)

    def test_new_session_bytes_never_reach_old_fd(self):
        old = self.open(os.O_RDONLY)
        self.guest_open()
        self.guest_write(b"s1-data")
        wait_until(lambda: readable(old), 5)
        self.guest_close()
        self.guest_open()
        new = self.open(os.O_RDONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.guest_write(b"s2-data")
        wait_until(lambda: readable(new), 5)
        time.sleep(0.1)
        self.assertEqual(os.read(new, 100), b"s2-data")
        self.assertEqual(os.read(old, 100), b"s1-data")
        self.assertEqual(os.read(old, 100), b"")
        self.assertEqual(os.read(old, 100), b"")

    def test_new_open_talks_to_new_session_both_ways(self):
        old = self.open(os.O_RDWR)
        self.guest_open()
        self.guest_close()
        wait_until(lambda: poll_events(old) & select.POLLHUP, 5)
        self.close(old)  # one writer at a time
        self.guest_open()
        new = self.open(os.O_RDWR)
        self.assertEqual(os.write(new, b"to s2"), 5)
        self.assertEqual(self.guest_readn(5), b"to s2")
        self.guest_write(b"from s2")
        wait_until(lambda: readable(new), 5)
        self.assertEqual(os.read(new, 100), b"from s2")

    def test_hung_writer_does_not_keep_new_writer_out(self):
        # A hung-up fd can never write again; a program that opens the
        # new session before closing the old fd must not get EBUSY.
        old = self.open(os.O_RDWR)
        self.guest_open()
        self.guest_close()
        wait_until(lambda: poll_events(old) & select.POLLHUP, 5)
        self.guest_open()
        try:
            new = self.open(os.O_RDWR)
        except OSError as e:
            self.fail("new open while the hung-up writer is open: %s" % e)
        self.assertEqual(os.write(new, b"s2"), 2)
        self.assertEqual(self.guest_readn(2), b"s2")
        self.assert_epipe(old)

    def test_fd_opened_between_sessions_joins_the_next_one(self):
        self.guest_open()
        self.guest_close()
        fd = self.open(os.O_RDWR)
        r = Blocked(os.read, fd, 100)
        self.assertTrue(r.still_blocked())
        self.guest_open()
        self.guest_write(b"next")
        self.assertEqual(r.wait(), b"next")
        self.assertEqual(os.write(fd, b"hi"), 2)
        self.assertEqual(self.guest_readn(2), b"hi")


class HungFdDoesNotThrottle(SessionTest):
    """A hung-up fd is no reader of the next session: keeping it open must
    not hold the new session's guest buffers.  A small TX ring (16 x 32
    KiB) makes a stall show after 512 KiB."""
    sim_args = ("--queue-size", "16")

    def test_drained_hung_fd_kept_open_does_not_stall_next_session(self):
        old = self.open(os.O_RDONLY)
        self.guest_open()
        self.guest_write(b"s1")
        wait_until(lambda: readable(old), 5)
        self.guest_close()
        self.assertEqual(os.read(old, 10), b"s1")
        self.assertEqual(os.read(old, 10), b"")
        self.guest_open()
        new = self.open(os.O_RDONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.stream_guest_to_fd(new)
        self.assertEqual(os.read(old, 10), b"")

    def test_hung_fd_that_never_reads_does_not_stall_next_session(self):
        # The old fd never reads its session's last bytes: it keeps them
        # (and still gets them, then EOF), but the guest's buffers go back.
        old = self.open(os.O_RDONLY)
        self.guest_open()
        self.guest_write(b"s1")
        wait_until(lambda: readable(old), 5)
        self.guest_close()
        self.guest_open()
        new = self.open(os.O_RDONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.stream_guest_to_fd(new)
        self.assertEqual(os.read(old, 10), b"s1")
        self.assertEqual(os.read(old, 10), b"")


class HostBytesDoNotCross(SessionTest):
    """The guest posts no receive buffers until the test says so."""
    sim_args = ("--rx-bufs", "0")

    def test_bytes_buffered_for_old_session_are_never_delivered(self):
        self.guest_open()
        old = self.open(os.O_WRONLY)
        self.assertEqual(os.write(old, b"stale"), 5)  # buffered by us
        self.guest_close()
        wait_until(lambda: poll_events(old) & select.POLLHUP, 5)
        self.assert_epipe(old, b"more")
        self.close(old)
        self.guest_open()
        self.guest("rx-post %d 4 4096" % self.nr)
        time.sleep(0.2)
        self.assertEqual(self.guest("rx-bytes %d" % self.nr), "0")
        new = self.open(os.O_WRONLY)
        self.assertEqual(os.write(new, b"fresh"), 5)
        self.assertEqual(self.guest_readn(5), b"fresh")
        self.assertEqual(self.guest("read %d 100 300" % self.nr), "")
        self.assertEqual(self.sim.info(self.nr)["rx_total"], "5")


if __name__ == "__main__":
    unittest.main()
