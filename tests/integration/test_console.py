"""Console ports (SPEC 2): guest output never stalls the guest, a bounded
ring keeps the newest bytes and counts the dropped ones, RESIZE through the
user.vport.winsize attribute, emergency write to the first console port."""
import errno
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

from vpharness import VPORTFS_SIM, readable, wait_until  # noqa: E402
from simctl import Sim  # noqa: E402
from test_port_files import Blocked, PortTest  # noqa: E402

RING = 4096



def drain(fd):
    """Everything readable now from a non-blocking fd."""
    out = bytearray()
    while True:
        try:
            b = os.read(fd, 1 << 20)
        except BlockingIOError:
            return bytes(out)
        if not b:
            return bytes(out)
        out += b


class ConsoleTest(PortTest):
    # console0 gets nr 0 (kept for a console), data 1, console1 2.
    ports = ("name=console0,console=on,ring-size=%d" % RING, "name=data",
             "name=console1,console=on")

    def setUp(self):
        super().setUp()
        self.c0 = self.sim.wait_port("console0")
        self.c1 = self.sim.wait_port("console1")

    def xattr(self, name, attr):
        return os.getxattr(self.d.path(name), "user.vport." + attr).decode()

    def setfattr(self, name, value):
        return subprocess.run(["setfattr", "-n", "user.vport.winsize", "-v",
                               value, self.d.path(name)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)

    def emerg(self, text):
        """Emergency write, as Linux's early console does it: one 32-bit
        SET_CONFIG of emerg_wr (offset 8) per character.  (The sim's own
        `emerg TEXT` command is not used: its tokenizer hands it an empty
        text, so it always writes 0 bytes.)"""
        for b in text:
            self.sim.cmd("set-config 8 %02x000000" % b)
        return len(text)

    def sim_winsize(self, nr):
        info = self.sim.info(nr)
        return int(info["cols"]), int(info["rows"])


class Output(ConsoleTest):
    def test_numbers_and_console_flag(self):
        self.assertEqual((self.c0, self.nr, self.c1), (0, 1, 2))
        ports = {p.nr: p for p in self.sim.ports()}
        self.assertTrue(ports[0].console)
        self.assertTrue(ports[2].console)
        self.assertFalse(ports[1].console)

    def test_output_beyond_ring_never_stalls_guest_without_reader(self):
        data = os.urandom(3 * RING + 123)
        self.assertEqual(self.sim.write_all(self.c0, data, 5), len(data))
        self.sim.wait_tx(self.c0, 2)
        self.assertEqual(self.sim.tx_pending(self.c0), 0)
        self.assertFalse(self.sim.host(self.c0))

    def test_megabytes_on_default_ring_never_stall_guest(self):
        data = os.urandom(3 << 20)
        path = os.path.join(self.d.dir, "big.bin")
        with open(path, "wb") as f:
            f.write(data)
        self.assertEqual(self.sim.write_file(self.c1, path, 5), len(data))
        self.sim.wait_tx(self.c1, 5)
        self.assertEqual(self.xattr("console1", "dropped_bytes"),
                         str(2 << 20))
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK, name="console1")
        got = drain(fd)
        self.assertEqual(len(got), 1 << 20)
        self.assertTrue(got == data[-(1 << 20):], "ring content differs")

    def test_late_reader_gets_newest_ring_bytes(self):
        data = os.urandom(3 * RING + 123)
        self.sim.write_all(self.c0, data, 5)
        self.sim.wait_tx(self.c0, 2)
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK, name="console0")
        self.assertEqual(drain(fd), data[-RING:])
        with self.assertRaises(BlockingIOError):
            os.read(fd, 100)
        self.sim.write(self.c0, b"live")
        wait_until(lambda: readable(fd), 5)
        self.assertEqual(drain(fd), b"live")

    def test_backlog_smaller_than_ring_is_read_whole(self):
        self.sim.write_all(self.c0, b"boot messages\n", 5)
        self.sim.wait_tx(self.c0, 2)
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK, name="console0")
        self.assertEqual(drain(fd), b"boot messages\n")
        self.assertEqual(self.xattr("console0", "dropped_bytes"), "0")

    def test_dropped_bytes_counts_exactly(self):
        self.assertEqual(self.xattr("console0", "dropped_bytes"), "0")
        self.sim.write_all(self.c0, b"a" * 10000, 5)
        self.sim.wait_tx(self.c0, 2)
        self.assertEqual(self.xattr("console0", "dropped_bytes"),
                         str(10000 - RING))
        self.assertEqual(self.xattr("console0", "rx_bytes"), "10000")
        self.sim.write_all(self.c0, b"b" * 100, 5)
        self.sim.wait_tx(self.c0, 2)
        self.assertEqual(self.xattr("console0", "dropped_bytes"),
                         str(10100 - RING))
        r = subprocess.run(["getfattr", "--absolute-names", "--only-values",
                            "-n", "user.vport.dropped_bytes",
                            self.d.path("console0")],
                           stdout=subprocess.PIPE, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout, str(10100 - RING))

    def test_reader_blocks_then_gets_console_output(self):
        fd = self.open(os.O_RDONLY, name="console0")
        self.sim.wait_host(self.c0, True, 2)
        r = Blocked(os.read, fd, 100)
        self.assertTrue(r.still_blocked())
        self.sim.write(self.c0, b"login: ")
        self.assertEqual(r.wait(), b"login: ")

    def test_host_writes_reach_console(self):
        fd = self.open(os.O_WRONLY, name="console0")
        self.assertEqual(os.write(fd, b"root\n"), 5)
        self.assertEqual(self.sim.readn(self.c0, 5), b"root\n")


class Winsize(ConsoleTest):
    def test_setfattr_sends_resize(self):
        self.assertEqual(self.sim_winsize(self.c0), (0, 0))
        r = self.setfattr("console0", "100x40")
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_until(lambda: self.sim_winsize(self.c0) == (100, 40), 5,
                   what="RESIZE 100x40")
        self.assertEqual(self.xattr("console0", "winsize"), "100x40")
        self.assertEqual(self.setfattr("console0", "80x24").returncode, 0)
        wait_until(lambda: self.sim_winsize(self.c0) == (80, 24), 5,
                   what="RESIZE 80x24")
        self.assertEqual(self.sim_winsize(self.c1), (0, 0))

    def test_invalid_values_are_einval(self):
        self.assertEqual(self.setfattr("console0", "90x30").returncode, 0)
        # setfattr reads a leading 0x as hex: quote it to pass the text.
        for shown, arg in (("100", "100"), ("0x40", '"0x40"'),
                           ("ax b", "ax b"), ("70000x1", "70000x1"),
                           ("100x0", "100x0"), ("x40", "x40"),
                           ("100x", "100x"), ("-1x5", "-1x5"),
                           ("", '""')):
            r = self.setfattr("console0", arg)
            self.assertNotEqual(r.returncode, 0, shown)
            self.assertIn("Invalid argument", r.stderr, shown)
            with self.assertRaises(OSError) as cm:
                os.setxattr(self.d.path("console0"), "user.vport.winsize",
                            shown.encode())
            self.assertEqual(cm.exception.errno, errno.EINVAL, shown)
        self.sim.sleep(0.2)
        self.assertEqual(self.sim_winsize(self.c0), (90, 30))
        self.assertEqual(self.xattr("console0", "winsize"), "90x30")

    def test_winsize_on_non_console_port_fails(self):
        r = self.setfattr("data", "100x40")
        self.assertNotEqual(r.returncode, 0)
        with self.assertRaises(OSError) as cm:
            os.setxattr(self.d.path("data"), "user.vport.winsize", b"100x40")
        self.assertEqual(cm.exception.errno, errno.ENOTSUP)
        with self.assertRaises(OSError) as cm:
            os.getxattr(self.d.path("data"), "user.vport.winsize")
        self.assertEqual(cm.exception.errno, errno.ENODATA)
        self.sim.sleep(0.2)
        self.assertEqual(self.sim_winsize(self.nr), (0, 0))

    def test_winsize_is_sent_again_to_a_new_guest(self):
        self.assertEqual(self.setfattr("console1", "132x50").returncode, 0)
        wait_until(lambda: self.sim_winsize(self.c1) == (132, 50), 5)
        self.sim.disconnect()
        wait_until(lambda: os.getxattr(self.d.mnt, "user.vport.frontend")
                   == b"0", 5)
        sim2 = Sim(VPORTFS_SIM, self.d.sock)
        self.addCleanup(sim2.close)
        self.assertEqual(sim2.wait_port("console1"), self.c1)
        wait_until(lambda: (int(sim2.info(self.c1)["cols"]),
                            int(sim2.info(self.c1)["rows"])) == (132, 50), 5,
                   what="RESIZE replayed to the new guest")


class Emergency(ConsoleTest):
    def test_emergency_write_reaches_first_console_port(self):
        fd0 = self.open(os.O_RDONLY | os.O_NONBLOCK, name="console0")
        fd1 = self.open(os.O_RDONLY | os.O_NONBLOCK, name="console1")
        data = self.open(os.O_RDONLY | os.O_NONBLOCK, name="data")
        self.guest_open()
        self.assertEqual(self.emerg(b"panic: oops\n"), 12)
        wait_until(lambda: readable(fd0), 5, what="emergency bytes")
        time.sleep(0.1)
        self.assertEqual(drain(fd0), b"panic: oops\n")
        self.assertEqual(drain(fd1), b"")
        with self.assertRaises(BlockingIOError):
            os.read(data, 10)

    def test_emergency_write_without_reader_lands_in_ring(self):
        self.emerg(b"early\n")
        self.sim.sleep(0.1)
        fd0 = self.open(os.O_RDONLY | os.O_NONBLOCK, name="console0")
        self.assertEqual(drain(fd0), b"early\n")
        self.assertEqual(self.xattr("console0", "rx_bytes"), "6")


if __name__ == "__main__":
    unittest.main()
