"""Load with a real guest: 31 ports in a UML guest, every one streaming in
both directions at once, sha256-checked both ways.

31 is as many ports as a UML guest can have: UML's virtio_uml takes at
most 64 virtqueues, two per port plus the control pair, so
max_nr_ports = 31, the daemon's default `--max-ports` (and QEMU's
virtio-serial default).  Port 0 is a console (the daemon keeps nr 0 for
one, as QEMU does): in the guest it is /dev/hvc0, put in raw mode with
echo off so that it carries any byte unchanged; ports 1-30 are
/dev/virtio-ports/port1..30.

Guest to host: the guest `cat`s a file of random bytes the host made (over
hostfs) into each port; the host checks every byte at its place as it
reads, and the sha256 of all it read against the guest's sha256sum of
what it sent.  Host to guest: the host writes each
port's own random bytes; the guest's `head -c N | sha256sum` per port
must give the sha256 of what the host wrote.  The guest opens each port
once (one open per port, as its driver allows) and both its processes
share that fd.  The host is one thread polling all 31 port files
(loadstat.host_side).

The Guest/GuestTest helpers of tests/guest boot UML (with the XSTATE
helper on large-XSAVE hosts: docs/uml-xstate.md) with a timeout, and stop
the guest and the daemon and unmount on any failure.
"""
import hashlib
import os
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "guest"))
sys.path.insert(0, HERE)

from test_guest import GuestTest  # noqa: E402
from loadstat import (G2H, H2G, KIB, MIB, Streams, Usage,  # noqa: E402
                      host_side, report, throughput)

NPORTS = 31
PER_PORT = 2 * MIB  # each way, per port
# The daemon's per-port buffers (include/vportfs/vser.h): a 1 MiB ring of
# guest output (VSER_PORT_RING_DEFAULT, VSER_CONSOLE_RING_DEFAULT) and a
# 256 KiB buffer of host bytes (VSER_OUT_BUF_DEFAULT), malloc'd whole and
# touched as far as used.  A run may grow the daemon by at most
# 31 * 1.25 MiB = 38.75 MiB, plus port 0's larger ring (PER_PORT, not
# 1 MiB), plus a few MiB for the rest (libfuse's 1 MiB request buffer,
# readers' cursors, control messages).
PORT_BUFFERS = 1 * MIB + 256 * KIB
# The streams take 20-40 s here: the whole guest run (uml-run --timeout)
# and the streams get more, within GuestTest's alarm (180 s).
STREAM_TIMEOUT = 100
BOOT_TIMEOUT = 150
SLACK = 8 * MIB


class GuestPorts(GuestTest):
    # A console never stalls the guest: past its ring the oldest bytes
    # go.  Port 0's ring holds a whole stream, so that none can be lost
    # to a host reader the loaded machine runs late.
    ports = ["name=port0,console=on,ring-size=%dM" % (PER_PORT // MIB)] + \
        ["name=port%d" % i for i in range(1, NPORTS)]

    def test_31_ports_stream_both_ways_at_once(self):
        st = Streams(NPORTS, PER_PORT)
        for i in range(NPORTS):
            with open(os.path.join(self.d.dir, "g2h.%d" % i), "wb") as f:
                f.write(st.expected(i, G2H))
        g = self.boot('''
N=%d
for i in $(seq 1 %d); do
    [ -e "$P/port$i" ] || { echo "no port$i" >&2; exit 1; }
done
stream() {
    exec 3<>"$2"
    # The hvc driver resets a tty's termios at its last close: set it on
    # the fd that stays open.
    [ "$1" != 0 ] || stty raw -echo -iexten <&3
    flag "open.$1"
    await go
    cat "$W/g2h.$1" >&3 &
    head -c $N <&3 | sha256sum | cut -d' ' -f1 > "$W/h2g.$1.sum"
    wait
    sha256sum < "$W/g2h.$1" | cut -d' ' -f1 > "$W/g2h.$1.sum"
    flag "done.$1"
}
flag ready
await host-open
stream 0 /dev/hvc0 &
for i in $(seq 1 %d); do stream $i "$P/port$i" & done
wait
''' % (PER_PORT, NPORTS - 1, NPORTS - 1), timeout=BOOT_TIMEOUT)
        g.await_flag("ready", 60)
        fds = []

        def close_fds():
            for fd in fds:
                os.close(fd)
        self.addCleanup(close_fds)
        for i in range(NPORTS):
            fds.append(os.open(self.d.path("port%d" % i),
                               os.O_RDWR | os.O_NONBLOCK))
        g.flag("host-open")
        for i in range(NPORTS):
            g.await_flag("open.%d" % i, 30)
        before = Usage(self.d.proc.pid)
        t0 = time.monotonic()
        deadline = t0 + STREAM_TIMEOUT
        host = threading.Thread(target=host_side, args=(st, fds, deadline),
                                daemon=True)
        host.start()
        g.flag("go")
        host.join(deadline - time.monotonic() + 5)
        self.assertFalse(host.is_alive(), "host side still running")
        if st.error:
            self.fail("%s%s" % (st.error, self.diag(g)))
        for i in range(NPORTS):
            g.await_flag("done.%d" % i, max(5, deadline - time.monotonic()))
        secs = time.monotonic() - t0
        after = Usage(self.d.proc.pid)
        self.assertGuestOk(g)
        total = 2 * NPORTS * PER_PORT
        report("31 UML ports x %d MiB each way" % (PER_PORT // MIB), before,
               after, "%d MiB in all, %s" %
               (total // MIB, throughput(total, secs)))
        for i in range(NPORTS):
            self.assertEqual(
                g.read("h2g.%d.sum" % i).strip(),
                hashlib.sha256(st.expected(i, H2G)).hexdigest(),
                "port %d: the guest got other bytes than the host wrote" %
                i)
            self.assertEqual(
                st.g2h_hash[i].hexdigest(), g.read("g2h.%d.sum" % i).strip(),
                "port %d: the host got other bytes than the guest sent" % i)
        self.assertEqual(os.getxattr(self.d.path("port0"),
                                     "user.vport.dropped_bytes"), b"0")
        limit = NPORTS * PORT_BUFFERS + (PER_PORT - MIB) + SLACK
        self.assertLess(after.own - before.own, limit,
                        "the daemon's own memory grew by %d KiB: more "
                        "than 31 ports' buffers (%d KiB)" %
                        ((after.own - before.own) // KIB, limit // KIB))
        self.assertLessEqual(after.fds, before.fds)

    def diag(self, g):
        log = self.d.read_log()
        return ("\n--- guest output:\n" + g.output() +
                "\n--- daemon log (last 40 lines):\n" +
                "\n".join(log.splitlines()[-40:]))


if __name__ == "__main__":
    unittest.main()
