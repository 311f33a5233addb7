"""What a load test measures about the daemon: resident memory and open
fds, read from /proc before and after a run, and the one output line per
run (`load: ...`) that the closing note of a test run quotes.

Resident memory comes in two figures:

  rss   VmRSS (and VmHWM, its peak) from /proc/PID/status: everything
        resident in the daemon's address space;
  own   the same without the guest's memory: the daemon maps the guest's
        RAM (MAP_SHARED, from SET_MEM_TABLE), and every guest page it
        reads or writes counts in VmRSS although it is the guest's.  So
        `own` is the Rss of the daemon's private mappings (heap, stacks,
        binaries, libraries) from /proc/PID/smaps; shared mappings are
        left out: the daemon has no shared mapping but guest memory.

Bounds on growth are asserted on `own` (what the daemon allocates);
`rss` is printed next to it, and bounded too where the guest's pages the
daemon can touch are few.
"""
import hashlib
import os
import select
import sys
import time

KIB = 1024
MIB = 1024 * 1024


class Usage:
    """One look at a process: VmRSS, VmHWM, own (bytes) and open fds."""

    def __init__(self, pid):
        self.pid = pid
        status = {}
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                fields = value.split()
                if len(fields) == 2 and fields[1] == "kB":
                    status[key] = int(fields[0]) * KIB
        self.rss = status["VmRSS"]
        self.hwm = status["VmHWM"]
        self.own = 0
        self.guest = 0
        shared = False
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                first = line.split(None, 2)
                if not first:
                    continue
                if first[0].endswith(":"):
                    if first[0] == "Rss:":
                        n = int(first[1]) * KIB
                        if shared:
                            self.guest += n
                        else:
                            self.own += n
                    continue
                # A mapping's header: "start-end perms offset dev inode
                # [path]"; perms end in 's' (shared) or 'p' (private).
                perms = first[1] if len(first) > 1 else ""
                shared = len(perms) == 4 and perms[3] == "s"
        self.fds = len(os.listdir("/proc/%d/fd" % pid))
        self.when = time.monotonic()


def mib(n):
    return "%.1f MiB" % (n / MIB)


def signed_mib(n):
    return "%+.2f MiB" % (n / MIB)


def report(what, before, after, extra=""):
    """Print one line, always in this form:

    load: WHAT: rss before X MiB after Y MiB (hwm Z MiB), own before A
    after B (+D MiB), fds N -> M, T s[, EXTRA]

    on stderr, where unittest's -v lines go."""
    line = ("load: %s: rss before %s after %s (hwm %s), own before %s "
            "after %s (%s), fds %d -> %d, %.1f s" %
            (what, mib(before.rss), mib(after.rss), mib(after.hwm),
             mib(before.own), mib(after.own),
             signed_mib(after.own - before.own), before.fds, after.fds,
             after.when - before.when))
    if extra:
        line += ", " + extra
    print(line, file=sys.stderr, flush=True)
    return line


def throughput(nbytes, secs):
    """MB/s (10^6 bytes per second), as scripts/bench.sh prints them."""
    return "%.1f MB/s" % (nbytes / 1e6 / secs if secs > 0 else 0.0)


# ---- streams: every port, both ways at once --------------------------------

G2H, H2G = 0, 1
STRIDE = 4099  # bytes between the starts of two streams in the block


class Streams:
    """What every port carries each way, and how far each side got.

    Each stream (port, way) is its own slice of one random block, starting
    STRIDE bytes after the one before: a byte that went to another port,
    twice, or not at all is a mismatch at its place."""

    def __init__(self, nports, size):
        self.nports = nports
        self.size = size
        self.block = os.urandom(size + (2 * nports + 1) * STRIDE)
        self.view = memoryview(self.block)
        self.g2h_sent = [0] * nports  # queued by the guest
        self.g2h_got = [0] * nports   # read and checked by the host
        self.h2g_sent = [0] * nports  # accepted by the host's write()
        self.h2g_got = [0] * nports   # read and checked by the guest
        # sha256 of what the host read, as it read it
        self.g2h_hash = [hashlib.sha256() for _ in range(nports)]
        self.error = None

    def expected(self, port, way, pos=0, n=None):
        off = (2 * port + way) * STRIDE + pos
        return self.view[off:off + (self.size - pos if n is None else n)]

    def mismatch(self, port, way, pos, got):
        """Where got, found at pos of stream (port, way), first differs."""
        want = bytes(self.expected(port, way, pos, len(got)))
        for k in range(min(len(want), len(got))):
            if want[k] != got[k]:
                return "first at %d: got %s, sent %s" % (
                    pos + k, got[k:k + 12].hex(), want[k:k + 12].hex())
        return "%d bytes more than the stream's %d" % (
            pos + len(got) - self.size, self.size)

    def host_done(self):
        s = self.size
        return (all(x == s for x in self.g2h_got) and
                all(x == s for x in self.h2g_sent))

    def done(self):
        return self.host_done() and all(x == self.size
                                        for x in self.h2g_got)

    def totals(self):
        return "guest->host %d/%d bytes, host->guest %d/%d" % (
            sum(self.g2h_got), self.size * self.nports,
            sum(self.h2g_sent), self.size * self.nports)


def host_side(st, fds, deadline, write_size=256 * KIB):
    """The host's end of every stream: one poll over all port files
    (opened O_RDWR | O_NONBLOCK; fds[i] is stream i), reading what the
    guest sent and checking it at its place, writing what the guest has
    room for.  Returns when the host has read and written everything;
    the first error goes to st.error (run it on a thread)."""
    try:
        p = select.poll()
        by_fd = {fd: i for i, fd in enumerate(fds)}
        registered = {}
        while not st.error:
            if time.monotonic() > deadline:
                raise AssertionError("host side timed out: " + st.totals())
            for i, fd in enumerate(fds):
                ev = 0
                if st.g2h_got[i] < st.size:
                    ev |= select.POLLIN
                if st.h2g_sent[i] < st.size:
                    ev |= select.POLLOUT
                if ev != registered.get(fd, 0):
                    if ev:
                        p.register(fd, ev)
                    else:
                        p.unregister(fd)
                    registered[fd] = ev
            if not any(registered.values()):
                return
            for fd, ev in p.poll(50):
                i = by_fd[fd]
                moved = False
                if ev & (select.POLLIN | select.POLLHUP) and \
                        st.g2h_got[i] < st.size:
                    try:
                        b = os.read(fd, 1 << 20)
                    except BlockingIOError:
                        b = None
                    if b == b"":
                        raise AssertionError("port %d: EOF after %d bytes" %
                                             (i, st.g2h_got[i]))
                    if b:
                        pos = st.g2h_got[i]
                        if pos + len(b) > st.size or \
                                st.expected(i, G2H, pos, len(b)) != b:
                            raise AssertionError(
                                "port %d: the host read %d bytes at %d "
                                "that the guest did not send there (%s)" %
                                (i, len(b), pos,
                                 st.mismatch(i, G2H, pos, b)))
                        st.g2h_hash[i].update(b)
                        st.g2h_got[i] = pos + len(b)
                        moved = True
                if ev & select.POLLOUT and st.h2g_sent[i] < st.size:
                    pos = st.h2g_sent[i]
                    n = min(write_size, st.size - pos)
                    try:
                        st.h2g_sent[i] += os.write(
                            fd, st.expected(i, H2G, pos, n))
                        moved = True
                    except BlockingIOError:
                        pass
                if ev & (select.POLLHUP | select.POLLERR) and not moved:
                    raise AssertionError("port %d: poll says %#x; %s" %
                                         (i, ev, st.totals()))
    except BaseException as e:  # noqa: BLE001 - the test reports it
        st.error = e
