"""Port file semantics, default mode (SPEC section 4's table).

Each test runs a real vportfs with a real FUSE mount in a private temp dir,
and the simulated frontend (vportfs-sim) playing the guest, so guest
readiness (open, receive buffers) is set exactly.
"""
import errno
import fcntl
import os
import select
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

from vpharness import close_all, Blocked, Daemon, VPORTFS_SIM, wait_until  # noqa: E402
from simctl import Sim, SimTimeout  # noqa: E402

TEST_TIMEOUT = 60




class PortTest(unittest.TestCase):
    ports = ("name=data", "name=org.qemu.guest_agent.0")
    args = ()
    sim_args = ()

    def setUp(self):
        signal.alarm(TEST_TIMEOUT)
        self.d = Daemon(self.ports, self.args)
        self.addCleanup(self.d.cleanup)
        self.d.start()
        self.sim = Sim(VPORTFS_SIM, self.d.sock, self.sim_args)
        self.addCleanup(self.sim.close)
        self.nr = int(self.sim.cmd("wait-port data 5000"))
        self.fds = []
        self.addCleanup(close_all, self.fds)

    def tearDown(self):
        signal.alarm(0)

    def open(self, flags=os.O_RDWR, name="data"):
        fd = os.open(self.d.path(name), flags)
        self.fds.append(fd)
        return fd

    def close(self, fd):
        self.fds.remove(fd)
        os.close(fd)

    def guest(self, line):
        return self.sim.cmd(line)

    def guest_open(self):
        self.guest("open %d" % self.nr)

    def host_connected(self):
        return self.guest("host %d" % self.nr) == "1"

    def guest_write(self, data):
        self.guest("write %d %s" % (self.nr, data.hex()))

    def stream_guest_to_fd(self, fd, size=2 << 20):
        """The guest sends `size` random bytes on the port; fd must read
        all of them, in order, while the guest is never stalled."""
        data = os.urandom(size)
        got = bytearray()

        def reader():
            while len(got) < len(data):
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                got.extend(b)
        r = Blocked(reader)
        try:
            self.sim.write_all(self.nr, data, 3)
        except SimTimeout as e:
            self.fail("guest stalled after %s of %d bytes; the fd got %d" %
                      (e.partial, len(data), len(got)))
        r.wait()
        self.assertTrue(bytes(got) == data, "the fd got different bytes")

    def guest_readn(self, n, timeout=5000):
        return bytes.fromhex(self.guest("readn %d %d %d" %
                                        (self.nr, n, timeout)))


class OpenClose(PortTest):
    def test_open_tells_guest_host_connected(self):
        self.assertFalse(self.host_connected())
        fd = self.open(os.O_RDONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.close(fd)
        self.guest("wait-host %d 0 2000" % self.nr)

    def test_host_connected_until_last_opener_closes(self):
        a = self.open(os.O_RDONLY)
        b = self.open(os.O_RDONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.close(a)
        time.sleep(0.2)
        self.assertTrue(self.host_connected())
        self.close(b)
        self.guest("wait-host %d 0 2000" % self.nr)

    def test_listing_shows_one_file_per_port(self):
        self.assertEqual(sorted(os.listdir(self.d.mnt)),
                         [".events", "data", "org.qemu.guest_agent.0"])
        st = os.stat(self.d.path("data"))
        self.assertEqual(st.st_mode & 0o777, 0o600)
        self.assertEqual(st.st_uid, os.getuid())


class Read(PortTest):
    def test_read_returns_waiting_data_from_several_guest_buffers(self):
        fd = self.open(os.O_RDONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.guest_open()
        for chunk in (b"one ", b"two ", b"three"):
            self.guest_write(chunk)
        self.guest("wait-port data 100")
        wait_until(lambda: select.select([fd], [], [], 0)[0], 5,
                   what="data to be readable")
        time.sleep(0.1)
        self.assertEqual(os.read(fd, 4096), b"one two three")

    def test_read_blocks_while_guest_open_and_no_data(self):
        fd = self.open(os.O_RDONLY)
        self.guest_open()
        r = Blocked(os.read, fd, 100)
        self.assertTrue(r.still_blocked())
        self.guest_write(b"wake")
        self.assertEqual(r.wait(), b"wake")

    def test_nonblocking_read_without_data_is_eagain(self):
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK)
        self.guest_open()
        with self.assertRaises(BlockingIOError):
            os.read(fd, 100)

    def test_read_is_eof_while_guest_not_open(self):
        fd = self.open(os.O_RDONLY)
        self.assertEqual(os.read(fd, 100), b"")
        fd2 = self.open(os.O_RDONLY | os.O_NONBLOCK)
        self.assertEqual(os.read(fd2, 100), b"")

    def test_guest_close_ends_blocked_read_with_eof(self):
        fd = self.open(os.O_RDONLY)
        self.guest_open()
        r = Blocked(os.read, fd, 100)
        self.assertTrue(r.still_blocked())
        self.guest("close %d" % self.nr)
        self.assertEqual(r.wait(), b"")

    def test_data_written_before_guest_close_is_still_read(self):
        fd = self.open(os.O_RDONLY)
        self.guest_open()
        self.guest_write(b"last words")
        time.sleep(0.2)
        self.guest("close %d" % self.nr)
        time.sleep(0.1)
        self.assertEqual(os.read(fd, 100), b"last words")
        self.assertEqual(os.read(fd, 100), b"")

    def test_large_read_returns_everything_in_order(self):
        fd = self.open(os.O_RDONLY)
        self.guest_open()
        data = os.urandom(300000)
        got = bytearray()
        r = Blocked(self._read_all, fd, len(data), got)
        for i in range(0, len(data), 50000):
            self.guest_write(data[i:i + 50000])
        r.wait(20)
        self.assertEqual(bytes(got), data)

    @staticmethod
    def _read_all(fd, n, out):
        while len(out) < n:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            out += b

    def test_offered_unread_guest_output_is_discarded_at_close(self):
        fd = self.open(os.O_RDONLY)
        self.guest_open()
        self.guest_write(b"stale")
        # The host sees it is readable, then closes without reading.
        wait_until(lambda: select.select([fd], [], [], 0)[0], 5)
        self.close(fd)
        self.guest("wait-host %d 0 2000" % self.nr)
        self.guest("wait-tx %d 2000" % self.nr)
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK)
        with self.assertRaises(BlockingIOError):
            os.read(fd, 100)

    def test_output_after_the_readers_last_look_is_kept_for_the_next(self):
        # Seed 000 (a): a host `cat` got EOF (guest closed), then the
        # guest opens, writes and closes before that cat closes.  Nobody
        # saw those bytes: the next reader gets them.
        fd = self.open(os.O_RDONLY)
        self.assertEqual(os.read(fd, 100), b"")  # EOF: guest not open
        self.guest_open()
        self.guest_write(b"test 42\n")
        time.sleep(0.2)
        self.guest("close %d" % self.nr)
        self.close(fd)
        fd = self.open(os.O_RDONLY)
        self.assertEqual(os.read(fd, 100), b"test 42\n")
        self.assertEqual(os.read(fd, 100), b"")

    def test_output_while_no_host_file_is_open_is_kept_for_the_next(self):
        # The guest still believes the host is open (its PORT_OPEN 0 is on
        # the way) and writes: the bytes wait for the next opener.
        fd = self.open(os.O_RDONLY)
        self.guest_open()
        self.guest("wait-host %d 1 2000" % self.nr)
        self.close(fd)
        self.guest_write(b"in between\n")
        time.sleep(0.2)
        fd = self.open(os.O_RDONLY)
        self.assertEqual(os.read(fd, 100), b"in between\n")

class Write(PortTest):
    def test_write_reaches_guest(self):
        fd = self.open(os.O_WRONLY)
        self.guest_open()
        self.assertEqual(os.write(fd, b"hello guest"), 11)
        self.assertEqual(self.guest_readn(11), b"hello guest")

    def test_one_large_blocking_write_is_accepted_whole(self):
        fd = self.open(os.O_WRONLY)
        self.guest_open()
        data = os.urandom(3 << 20)
        got = bytearray()
        r = Blocked(self._guest_read_into, len(data), got)
        self.assertEqual(os.write(fd, data), len(data))
        r.wait(30)
        self.assertEqual(bytes(got), data)

    def _guest_read_into(self, n, out):
        while len(out) < n:
            out += bytes.fromhex(self.guest("read %d %d 5000" %
                                            (self.nr, min(n - len(out),
                                                          65536))))

    def test_write_blocks_until_guest_opens(self):
        fd = self.open(os.O_WRONLY)
        w = Blocked(os.write, fd, b"early")
        self.assertTrue(w.still_blocked())
        self.guest_open()
        self.assertEqual(w.wait(), 5)
        self.assertEqual(self.guest_readn(5), b"early")

    def test_nonblocking_write_while_guest_not_open_is_eagain(self):
        fd = self.open(os.O_WRONLY | os.O_NONBLOCK)
        with self.assertRaises(BlockingIOError):
            os.write(fd, b"x")

    def test_truncate_and_o_trunc_are_accepted(self):
        fd = self.open(os.O_WRONLY | os.O_TRUNC)
        os.ftruncate(fd, 0)
        os.truncate(self.d.path("data"), 0)

    def test_seek_and_pread_are_espipe(self):
        fd = self.open(os.O_RDWR)
        with self.assertRaises(OSError) as cm:
            os.lseek(fd, 10, os.SEEK_SET)
        self.assertEqual(cm.exception.errno, errno.ESPIPE)
        with self.assertRaises(OSError) as cm:
            os.pread(fd, 10, 5)
        self.assertEqual(cm.exception.errno, errno.ESPIPE)


class WriteWithoutGuestBuffers(PortTest):
    """The guest posts no receive buffers until the test says so."""
    sim_args = ("--rx-bufs", "0")

    def post_buffers(self):
        self.guest("rx-post %d 256 4096" % self.nr)

    def test_write_blocks_when_guest_has_no_buffers_and_ours_is_full(self):
        self.guest_open()
        # Let the guest's initially posted buffers fill first.
        fd = self.open(os.O_WRONLY | os.O_NONBLOCK)
        total = 0
        chunk = b"z" * 65536
        with self.assertRaises(BlockingIOError):
            for _ in range(10000):
                total += os.write(fd, chunk)
        self.assertGreater(total, 0)
        fl = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, fl & ~os.O_NONBLOCK)
        w = Blocked(os.write, fd, b"tail")
        self.assertTrue(w.still_blocked())
        self.post_buffers()
        got = self.guest_readn(total, 20000)
        self.assertEqual(got, chunk * (total // len(chunk)) +
                         chunk[:total % len(chunk)])
        self.assertEqual(w.wait(), 4)
        self.assertEqual(self.guest_readn(4), b"tail")

    def test_closing_writer_loses_nothing_and_close_waits_for_delivery(self):
        self.guest_open()
        fd = self.open(os.O_WRONLY)
        data = os.urandom(200000)
        view = memoryview(data)
        sent = 0
        while sent < len(data):
            sent += os.write(fd, view[sent:])
        self.close(fd)
        time.sleep(0.3)
        # The guest must not see the host close before the bytes.
        self.assertTrue(self.host_connected())
        self.post_buffers()
        self.assertEqual(self.guest_readn(len(data), 20000), data)
        self.guest("wait-host %d 0 5000" % self.nr)

    def test_fsync_waits_through_a_guest_close_for_the_next_open(self):
        # The bytes are not lost when the guest closes first: they wait
        # for its next open, and so does fsync (no false EIO a writer
        # would answer by writing them again).
        self.guest_open()
        fd = self.open(os.O_WRONLY)
        self.assertEqual(os.write(fd, b"y" * 1000), 1000)
        f = Blocked(os.fsync, fd)
        self.assertTrue(f.still_blocked())
        self.guest("close %d" % self.nr)
        self.assertTrue(f.still_blocked(0.3))
        self.guest_open()
        self.guest("rx-post %d 4 4096" % self.nr)
        self.assertEqual(self.guest_readn(1000), b"y" * 1000)
        self.assertEqual(f.wait(), None)

    def test_fsync_waits_until_bytes_are_in_guest_buffers(self):
        self.guest_open()
        fd = self.open(os.O_WRONLY | os.O_NONBLOCK)
        big = b"q" * 65536
        written = 0
        try:
            for _ in range(100):
                written += os.write(fd, big)
        except BlockingIOError:
            pass
        f = Blocked(os.fsync, fd)
        self.assertTrue(f.still_blocked())
        self.post_buffers()
        self.guest_readn(written, 20000)
        f.wait()


class Poll(PortTest):
    def poll(self, fd, timeout_ms=0):
        p = select.poll()
        p.register(fd, select.POLLIN | select.POLLOUT)
        ev = p.poll(timeout_ms)
        return ev[0][1] if ev else 0

    def test_guest_not_open_is_pollin_and_pollhup_without_pollout(self):
        fd = self.open(os.O_RDWR)
        ev = self.poll(fd)
        self.assertTrue(ev & select.POLLIN)
        self.assertTrue(ev & select.POLLHUP)
        self.assertFalse(ev & select.POLLOUT)

    def test_guest_open_no_data_is_pollout_only(self):
        fd = self.open(os.O_RDWR)
        self.guest_open()
        wait_until(lambda: self.poll(fd) & select.POLLOUT, 5)
        self.assertEqual(self.poll(fd), select.POLLOUT)

    def test_poll_wakes_when_guest_writes(self):
        fd = self.open(os.O_RDONLY)
        self.guest_open()
        p = select.poll()
        p.register(fd, select.POLLIN)
        self.assertEqual(p.poll(0), [])
        r = Blocked(p.poll, 10000)
        self.assertTrue(r.still_blocked())
        self.guest_write(b"ping")
        ev = r.wait()
        self.assertTrue(ev and ev[0][1] & select.POLLIN)
        self.assertEqual(os.read(fd, 10), b"ping")

    def test_poll_wakes_with_pollhup_when_guest_closes(self):
        fd = self.open(os.O_RDONLY)
        self.guest_open()
        p = select.poll()
        p.register(fd, select.POLLIN)
        wait_until(lambda: not p.poll(0), 5, what="POLLHUP to clear")
        r = Blocked(p.poll, 10000)
        self.assertTrue(r.still_blocked())
        self.guest("close %d" % self.nr)
        ev = r.wait()
        self.assertTrue(ev and ev[0][1] & select.POLLHUP)

    def test_guest_open_clears_pollhup_and_sets_pollout(self):
        fd = self.open(os.O_WRONLY)
        self.assertTrue(self.poll(fd) & select.POLLHUP)
        self.guest_open()
        wait_until(lambda: self.poll(fd) == select.POLLOUT, 5,
                   what="POLLOUT without POLLHUP")


class Signals(PortTest):
    def test_sigint_interrupts_blocked_cat_at_once(self):
        self.guest_open()
        cat = subprocess.Popen(["cat", self.d.path("data")],
                               stdout=subprocess.DEVNULL)
        self.guest("wait-host %d 1 5000" % self.nr)
        time.sleep(0.3)
        self.assertIsNone(cat.poll())
        t0 = time.monotonic()
        cat.send_signal(signal.SIGINT)
        cat.wait(5)
        self.assertLess(time.monotonic() - t0, 2)
        self.assertEqual(cat.returncode, -signal.SIGINT)

    def test_signal_makes_blocked_read_return_eintr(self):
        fd = self.open(os.O_RDONLY)
        self.guest_open()
        old = signal.signal(signal.SIGUSR1, lambda *a: None)
        self.addCleanup(signal.signal, signal.SIGUSR1, old)
        # Python retries EINTR (PEP 475) unless the handler raises.

        class Interrupted(Exception):
            pass

        def raise_it(*a):
            raise Interrupted()
        signal.signal(signal.SIGUSR1, raise_it)
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1))
        timer.start()
        with self.assertRaises(Interrupted):
            os.read(fd, 10)
        timer.join()

    def test_nonblock_set_later_with_fcntl_gives_eagain(self):
        fd = self.open(os.O_RDWR)
        fl = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        with self.assertRaises(BlockingIOError):
            os.write(fd, b"x")  # guest not open
        self.guest_open()
        with self.assertRaises(BlockingIOError):
            os.read(fd, 10)  # open, no data


class SharedDescription(PortTest):
    def test_reader_and_writer_share_one_file_description(self):
        out = os.path.join(self.d.dir, "cat.out")
        self.guest_open()
        script = ('exec 3<>"$1"; cat <&3 > "$2" & c=$!; '
                  'echo hi >&3; sleep 1; kill $c; wait $c; exit 0')
        sh = subprocess.Popen(["bash", "-c", script, "sh",
                               self.d.path("data"), out])
        self.assertEqual(self.guest_readn(3), b"hi\n")
        self.guest_write(b"back\n")
        self.assertEqual(sh.wait(10), 0)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"back\n")


if __name__ == "__main__":
    unittest.main()
