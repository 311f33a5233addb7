"""Load: 127 ports (the vhost-user limit: a queue is named in 8 bits, 256
queues, (127 + 1) * 2 of them) on one daemon, `--max-ports 127`, with the
simulated guest (vportfs-sim), every port streaming in both directions at
once and every byte checked.

Port 0 is a console (the daemon keeps nr 0 for one, as QEMU does), ports
1-126 are generic.  The host side is one thread polling all 127 port
files (O_RDWR | O_NONBLOCK) and reading and writing whatever each is ready
for; the guest side is the test's main thread, going round the ports with
the sim's non-blocking `write` and `read`.  Each stream is its own slice
of one random block (offsets differ per port and direction), so a byte
that went to the wrong port, or twice, or not at all, is a mismatch at
its place.

The guest keeps at most OUTSTANDING bytes per port written and not yet
read by the host: less than the console's 1 MiB ring, so port 0 never
drops output (a console ring drops the oldest bytes when it overflows),
and the sim's TX rings never hold more than that per port.
"""
import os
import signal
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

from vpharness import close_all, Daemon, VPORTFS_SIM  # noqa: E402
from simctl import Sim  # noqa: E402
from loadstat import (G2H, H2G, KIB, MIB, Streams, Usage,  # noqa: E402
                      host_side, report, throughput)

TEST_TIMEOUT = 150

NPORTS = 127
PER_PORT = 1 * MIB       # each way, per port, in the measured run
WARMUP = 128 * KIB       # each way, per port, before "before"
OUTSTANDING = 512 * KIB  # guest->host bytes in flight per port
GUEST_CHUNK = 64 * KIB   # one sim `write`
GUEST_READ = 256 * KIB   # one sim `read`

# The daemon's per-port buffers (include/vportfs/vser.h): a ring of guest
# output, VSER_PORT_RING_DEFAULT = VSER_CONSOLE_RING_DEFAULT = 1 MiB, and
# a buffer of host bytes waiting for guest receive buffers,
# VSER_OUT_BUF_DEFAULT = 256 KiB, made at the port's first host write.
# Both are malloc'd whole and touched as far as used: streaming touches
# all of them.  So the design bounds the growth of a run at
# 127 * (1 MiB + 256 KiB) = 158.75 MiB, plus a few MiB for the rest
# (libfuse's 1 MiB request buffers, readers' cursors, control messages).
PORT_BUFFERS = 1 * MIB + 256 * KIB
SLACK = 8 * MIB


class ManyPorts(unittest.TestCase):
    def setUp(self):
        signal.alarm(TEST_TIMEOUT)
        ports = ["name=port0,console=on"]
        ports += ["name=port%d" % i for i in range(1, NPORTS)]
        self.d = Daemon(ports, ["--max-ports", str(NPORTS)])
        self.addCleanup(self.d.cleanup)
        self.d.start()
        # 64 receive buffers of 4 KiB per port (Linux posts a whole ring;
        # 256 KiB is plenty here and keeps guest memory at 32 MiB for
        # them), and guest memory for those plus the TX buffers in flight.
        self.sim = Sim(VPORTFS_SIM, self.d.sock,
                       ["--ports", str(NPORTS), "--rx-bufs", "64",
                        "--mem-mb", "256"], timeout=10)
        self.addCleanup(self.sim.close)
        self.fds = []
        self.addCleanup(close_all, self.fds)

    def tearDown(self):
        signal.alarm(0)

    def guest_side(self, st, nrs, deadline):
        """Round the ports with the sim: queue guest output while less
        than OUTSTANDING is in flight, take what the host sent."""
        while not st.done():
            if st.error:
                return
            if time.monotonic() > deadline:
                raise AssertionError("streams still running: " +
                                     st.totals())
            progress = False
            for i, nr in enumerate(nrs):
                pos = st.g2h_sent[i]
                room = min(GUEST_CHUNK, st.size - pos,
                           OUTSTANDING - (pos - st.g2h_got[i]))
                if room > 0:
                    data = st.expected(i, G2H, pos, room).hex()
                    n = int(self.sim.cmd("write %d %s" % (nr, data)))
                    st.g2h_sent[i] = pos + n
                    progress |= n > 0
                if st.h2g_got[i] < st.size:
                    b = bytes.fromhex(self.sim.cmd("read %d %d 0" %
                                                   (nr, GUEST_READ)))
                    if b:
                        pos = st.h2g_got[i]
                        if pos + len(b) > st.size or \
                                st.expected(i, H2G, pos, len(b)) != b:
                            raise AssertionError(
                                "port %d: the guest read %d bytes at %d "
                                "that the host did not write there" %
                                (i, len(b), pos))
                        st.h2g_got[i] = pos + len(b)
                        progress = True
            if not progress:
                self.sim.cmd("sleep 1")

    def stream(self, nrs, fds, size):
        """Every port, both ways at once, size bytes each way; returns
        the seconds it took."""
        st = Streams(NPORTS, size)
        t0 = time.monotonic()
        deadline = t0 + 90
        host = threading.Thread(target=host_side,
                                args=(st, fds, deadline), daemon=True)
        host.start()
        try:
            self.guest_side(st, nrs, deadline)
        except BaseException as e:
            st.error = st.error or e
        host.join(max(0.0, deadline - time.monotonic()) + 5)
        secs = time.monotonic() - t0
        if st.error:
            raise st.error
        self.assertFalse(host.is_alive(), "host side still running")
        self.assertTrue(st.done())
        for nr in nrs:
            self.sim.wait_tx(nr, 10)
        return secs

    def test_127_ports_stream_both_ways_at_once(self):
        self.assertEqual(self.sim.config()[2], NPORTS)
        nrs = [self.sim.wait_port("port%d" % i) for i in range(NPORTS)]
        self.assertEqual(sorted(nrs), list(range(NPORTS)))
        for i in range(NPORTS):
            self.fds.append(os.open(self.d.path("port%d" % i),
                                    os.O_RDWR | os.O_NONBLOCK))
        for nr in nrs:
            self.sim.open(nr)
        for nr in nrs:
            self.sim.wait_host(nr, True)
        self.stream(nrs, self.fds, WARMUP)
        before = Usage(self.d.proc.pid)
        secs = self.stream(nrs, self.fds, PER_PORT)
        after = Usage(self.d.proc.pid)
        total = 2 * NPORTS * PER_PORT
        report("127 ports x %d MiB each way" % (PER_PORT // MIB), before,
               after, "%d MiB in all, %s" %
               (total // MIB, throughput(total, secs)))
        self.assertEqual(os.getxattr(self.d.path("port0"),
                                     "user.vport.dropped_bytes"), b"0")
        limit = NPORTS * PORT_BUFFERS + SLACK
        self.assertLess(after.own - before.own, limit,
                        "the daemon's own memory grew by %d KiB: more "
                        "than 127 ports' buffers (%d KiB)" %
                        ((after.own - before.own) // KIB, limit // KIB))
        self.assertLess(after.hwm - before.rss, limit + after.guest,
                        "the daemon's peak exceeds its buffers and the "
                        "guest's pages")
        self.assertLessEqual(after.fds, before.fds)


if __name__ == "__main__":
    unittest.main()
