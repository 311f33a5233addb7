"""Real-guest scenarios: the flow-control tests of seed 000 and friends.

Each test boots a UML guest on a real daemon (the Guest/GuestTest helpers
of test_guest.py) and checks exact content, in order:

  (a) Gerd's open-write-close test against a host `while :; do cat; done`
  (b) Gerd's keep-device-open test against the same host loop
  (c) a host reader killed and restarted between guest writes (the "known
      bug" of the seed: data written after the restart must appear)
  (d) 1000 host open-write-closes while the guest keeps reading
  (e) the guest's /dev/hvc0 in the host's console file
  (f) two UML boots, one after the other, on one running daemon
  (g) three guest writers at once, one port opened but never read: no
      head-of-line blocking across ports

Port semantics these tests rely on (SPEC section 4, and the guest driver):
a host read returns EOF while the guest has the port closed; a guest write
blocks until some host opener exists; a host write blocks until the guest
has the port open; a guest read returns EOF while no host opener exists
and no data is buffered, but the port stays open and later reads return
later data.  So a reader that must not lose bytes opens once and keeps
reading past EOF, and a host reader that must see data starts after the
guest opened its end (the guest says so through a flag file written
between its open and its write).
"""
import collections
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from test_guest import GuestTest, sha256_file  # noqa: E402

PORT = "org.kraxel.test"


class ScenarioTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise ScenarioTimeout("test timed out (SIGALRM)")


def lines(prefix, n):
    return "".join("%s%d\n" % (prefix, i) for i in range(1, n + 1))


def describe_lines(got, expected):
    """A short account of how two line lists differ."""
    g = got.splitlines()
    e = expected.splitlines()
    gs, es = set(g), set(e)
    counts = collections.Counter(g)
    missing = [x for x in e if x not in gs]
    dups = sorted(x for x, n in counts.items() if n > 1)
    extra = [x for x in g if x not in es]
    out_of_order = [x for x in g if x in es] != [x for x in e if x in gs]
    return ("%d lines, expected %d; missing %d %s; duplicated %s; "
            "unexpected %s; out of order: %s" %
            (len(g), len(e), len(missing), missing[:20], dups[:20],
             extra[:20], out_of_order))


def read_file(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except FileNotFoundError:
        return "" if mode == "r" else b""


def settle(path, expected, timeout, mode="r"):
    """Wait until the file holds exactly `expected` (or timeout); return
    what it holds then."""
    deadline = time.monotonic() + timeout
    while True:
        got = read_file(path, mode)
        if got == expected or time.monotonic() >= deadline:
            return got
        time.sleep(0.05)


class ScenarioTest(GuestTest):
    ports = ("name=%s" % PORT,)
    timeout = 170

    def setUp(self):
        # The default SIGALRM action kills the runner with no cleanup (the
        # daemon would stay mounted): turn the alarm into a test failure.
        old = signal.signal(signal.SIGALRM, _on_alarm)
        self.addCleanup(signal.signal, signal.SIGALRM, old)
        super().setUp()
        signal.alarm(self.timeout)

    def port_stats(self, port):
        """The port's user.vport.* counters, for failure messages."""
        out = []
        for key in ("guest_connected", "host_connected", "rx_bytes",
                    "tx_bytes", "dropped_bytes"):
            try:
                v = os.getxattr(self.d.path(port), "user.vport." + key)
                out.append("%s=%s" % (key, v.decode(errors="replace")))
            except OSError as e:
                out.append("%s=<%s>" % (key, e.strerror))
        return "\n--- port %s: %s" % (port, " ".join(out))

    def diag(self, g=None, port=None):
        s = ""
        if port is not None:
            s += self.port_stats(port)
        if g is not None:
            s += "\n--- guest output (and console tail):\n" + g.output()
        log = self.d.read_log()
        return s + "\n--- daemon log (last 60 lines):\n" + \
            "\n".join(log.splitlines()[-60:])

    def assertGuestOk(self, g, timeout=60):
        try:
            rc = g.finish(timeout)
        except subprocess.TimeoutExpired:
            self.fail("guest still running after %d s" % timeout +
                      self.diag(g))
        self.assertEqual(rc, 0, "guest script failed" + self.diag(g))

    def host_bash(self, script, *args):
        """A host bash process in its own group, killed at cleanup."""
        p = subprocess.Popen(["bash", "-c", script, "bash"] + list(args),
                             stderr=subprocess.DEVNULL,
                             start_new_session=True)
        self.addCleanup(self.kill_group, p)
        return p

    @staticmethod
    def kill_group(p):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait()

    def cat_loop(self, port, out):
        """`while :; do cat PORT; done >> OUT` on the host."""
        return self.host_bash('while :; do cat "$1"; done >> "$2"',
                              self.d.path(port), out)

    def cat(self, port, out):
        """A host `cat PORT > OUT`, killed at cleanup."""
        with open(out, "wb") as f:
            p = subprocess.Popen(["cat", self.d.path(port)], stdout=f)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        return p

    def cat_from_fd(self, port, out):
        """A host `cat` reading the port through an fd this process opened
        first, so the daemon has counted the host open before we return."""
        fd = os.open(self.d.path(port), os.O_RDONLY)
        try:
            with open(out, "wb") as f:
                p = subprocess.Popen(["cat"], stdin=fd, stdout=f)
        finally:
            os.close(fd)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        return p


class SeedFlowControl(ScenarioTest):
    """Gerd's two tests from seed 000, with a host `while :; do cat; done`.

    The loop spins while the guest has the port closed (cat gets EOF at
    once); a guest write blocks until one of those cats has the port open,
    so nothing may be lost, duplicated or reordered.  The seed sleeps 1 s
    between lines; 0.1 s keeps the test short.

    The guest learns of host opens and closes asynchronously (PORT_OPEN
    control messages), so with the loop opening and closing the port a
    thousand times a second a guest write may go out on a stale "host
    open" and reach the daemon between two cats.  For (a) to pass, such
    bytes must wait for the next host opener instead of being dropped.
    """

    def run_against_cat_loop(self, guest_loop):
        out = os.path.join(self.d.dir, "host.out")
        g = self.boot('''
flag ready
await go
%s
flag written
''' % guest_loop)
        g.await_flag("ready")
        loop = self.cat_loop(PORT, out)
        g.flag("go")
        g.await_flag("written", 120)
        expected = lines("test ", 100)
        got = settle(out, expected, 10)
        self.kill_group(loop)
        stats = self.port_stats(PORT)
        self.assertGuestOk(g)
        self.assertEqual(got, expected, describe_lines(got, expected) +
                         stats + self.diag(g))

    def test_a_open_write_close_lines_arrive_once_in_order(self):
        self.run_against_cat_loop('''
for seq in $(seq 1 100); do
    echo "test $seq" > "$P/%s"
    sleep 0.1
done''' % PORT)

    def test_b_keep_open_lines_arrive_once_in_order(self):
        self.run_against_cat_loop('''
(for seq in $(seq 1 100); do echo "test $seq"; sleep 0.1; done) > "$P/%s"
''' % PORT)


class ReaderRestart(ScenarioTest):
    """The seed's known bug: stop the host reader, restart it, write again;
    what the guest writes after the restart must appear."""

    def test_c_open_write_close_reader_killed_and_restarted(self):
        # Each guest write is one open-write-close of the port; the flag in
        # between tells the host the guest's end is open, so a host cat
        # started then blocks for the data instead of seeing EOF.
        g = self.boot('''
{ flag opened1; echo line1; } > "$P/%s"
flag wrote1
await restarted
{ flag opened2; echo line2; } > "$P/%s"
flag wrote2
''' % (PORT, PORT))
        out1 = os.path.join(self.d.dir, "reader1.out")
        out2 = os.path.join(self.d.dir, "reader2.out")
        g.await_flag("opened1")
        cat1 = self.cat(PORT, out1)
        g.await_flag("wrote1")
        got1 = settle(out1, "line1\n", 10)
        # The guest closed its end: cat1 may have ended with EOF already.
        # Kill it if not, and check it did not die of anything else.
        if cat1.poll() is None:
            cat1.terminate()
        rc1 = cat1.wait(10)
        self.assertIn(rc1, (0, -signal.SIGTERM))
        g.flag("restarted")
        g.await_flag("opened2")
        cat2 = self.cat(PORT, out2)
        g.await_flag("wrote2")
        # The guest closed after line2: the new reader ends with EOF.
        try:
            rc2 = cat2.wait(20)
        except subprocess.TimeoutExpired:
            self.fail("reader 2 got no EOF after the guest closed; it has "
                      "%r" % read_file(out2) + self.diag(g, PORT))
        self.assertGuestOk(g)
        self.assertEqual(got1, "line1\n", self.diag(g))
        self.assertEqual(read_file(out2), "line2\n", self.diag(g))
        self.assertEqual(rc2, 0)

    def test_c_reader_killed_while_blocked_guest_keeps_open(self):
        # Gerd's sequence with the guest holding its end open: the first
        # reader is SIGKILLed while blocked in read(), a second one opens,
        # and the guest's next line must reach it.
        g = self.boot('''
exec 3>"$P/%s"
flag opened
echo line1 >&3
flag wrote1
await restarted
echo line2 >&3
flag wrote2
await close
exec 3>&-
''' % PORT)
        out1 = os.path.join(self.d.dir, "reader1.out")
        out2 = os.path.join(self.d.dir, "reader2.out")
        g.await_flag("opened")
        cat1 = self.cat_from_fd(PORT, out1)
        g.await_flag("wrote1")
        got1 = settle(out1, "line1\n", 10)
        time.sleep(0.3)
        self.assertIsNone(cat1.poll(), "reader 1 ended while the guest "
                          "had the port open" + self.diag(g))
        cat1.kill()
        cat1.wait(10)
        cat2 = self.cat_from_fd(PORT, out2)
        g.flag("restarted")
        g.await_flag("wrote2")
        got2 = settle(out2, "line2\n", 10)
        g.flag("close")
        try:
            rc2 = cat2.wait(20)
        except subprocess.TimeoutExpired:
            self.fail("reader 2 got no EOF after the guest closed" +
                      self.diag(g))
        self.assertGuestOk(g)
        self.assertEqual(got1, "line1\n", self.diag(g))
        self.assertEqual(got2, "line2\n", self.diag(g))
        self.assertEqual(read_file(out2), "line2\n")
        self.assertEqual(rc2, 0)


class HostToGuestOpenWriteClose(ScenarioTest):
    def test_d_1000_host_open_write_close_arrive_in_guest_in_order(self):
        # The guest opens once and reads past EOF (a guest read returns 0
        # while no host opener exists and nothing is buffered; the port
        # stays open).  A reader that reopened per EOF could lose bytes by
        # design of the guest driver: a host write accepted between its
        # EOF and its close would be discarded by that close.
        # dash's read builtin reads one byte per syscall, so it never
        # consumes past a line and costs no process per line.
        g = self.boot('''
exec 3<"$P/%s"
flag reading
while :; do
    if IFS= read -r line <&3; then
        printf '%%s\\n' "$line"
        [ "$line" != line1000 ] || break
    else
        [ -z "$line" ] || printf '%%s' "$line"
        [ ! -e "$W/stop" ] || break
    fi
done > "$W/got"
exec 3<&-
flag finished
''' % PORT)
        g.await_flag("reading")
        t0 = time.monotonic()
        try:
            subprocess.run(
                ["bash", "-c",
                 'for i in $(seq 1 1000); do echo line$i > "$0"; done',
                 self.d.path(PORT)], check=True, timeout=60)
        except subprocess.TimeoutExpired:
            self.fail("host writers still running after 60 s; guest got "
                      "%s" % describe_lines(read_file(
                          os.path.join(self.d.dir, "got")),
                          lines("line", 1000)) + self.diag(g))
        host_secs = time.monotonic() - t0
        try:
            g.await_flag("finished", 30)
        except TimeoutError:
            g.flag("stop")
            g.await_flag("finished", 10)
        self.assertGuestOk(g)
        got = g.read("got")
        expected = lines("line", 1000)
        self.assertEqual(got, expected, describe_lines(got, expected) +
                         " (host loop %.1f s)" % host_secs + self.diag(g))


class Console(ScenarioTest):
    ports = ("name=console0,console=on", "name=%s" % PORT)

    def test_e_guest_hvc0_output_appears_in_host_console_file(self):
        # The guest's hvc tty has the default termios (OPOST|ONLCR), so
        # "hello\n" leaves the guest as "hello\r\n".
        expected = b"hello\r\n"
        g = self.boot('''
[ -c /dev/hvc0 ] || { echo "no /dev/hvc0" >&2; exit 1; }
flag ready
await go
echo hello > /dev/hvc0
flag written
await done
''')
        g.await_flag("ready")
        live = os.path.join(self.d.dir, "live.out")
        # A reader open while the guest prints sees it live...
        reader = self.cat("console0", live)
        time.sleep(0.3)
        g.flag("go")
        g.await_flag("written")
        settle(live, expected, 10, "rb")
        time.sleep(0.5)  # nothing more may follow
        got_live = read_file(live, "rb")
        self.assertIsNone(reader.poll(), "console reader ended while the "
                          "guest console was up" + self.diag(g))
        reader.kill()
        reader.wait()
        # ...and a cat started afterwards gets nothing twice: the live
        # reader had it.  It blocks (a console reader never sees EOF)
        # until the timeout.
        r = subprocess.run(["timeout", "3", "cat", self.d.path("console0")],
                           stdout=subprocess.PIPE, timeout=30)
        g.flag("done")
        self.assertGuestOk(g)
        self.assertEqual(got_live, expected, self.diag(g))
        self.assertEqual(r.stdout, b"", self.diag(g))
        self.assertEqual(r.returncode, 124, "cat of the console file did "
                         "not block")


class TwoBoots(ScenarioTest):
    ports = ("name=data",)

    def one_boot(self, tag, to_host, to_guest):
        g = self.boot('''
exec 3>"$P/data"
flag {t}-opened
printf '%s\\n' "{line}" >&3
exec 3>&-
flag {t}-wrote
await {t}-host-open
cat "$P/data" > "$W/{t}-fromhost"
flag {t}-got
'''.format(t=tag, line=to_host))
        g.await_flag(tag + "-opened")
        r = subprocess.run(["cat", self.d.path("data")],
                           stdout=subprocess.PIPE, timeout=30)
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout.decode(), to_host + "\n", self.diag(g))
        g.await_flag(tag + "-wrote")
        # Host to guest: open first (so the guest's cat blocks instead of
        # seeing EOF), write, close; the guest's cat ends at our close.
        fd = os.open(self.d.path("data"), os.O_WRONLY)
        try:
            g.flag(tag + "-host-open")
            data = to_guest.encode()
            n = 0
            while n < len(data):
                n += os.write(fd, data[n:])
        finally:
            os.close(fd)
        g.await_flag(tag + "-got", 30)
        self.assertGuestOk(g)
        self.assertEqual(g.read(tag + "-fromhost"), to_guest, self.diag(g))
        return g

    def test_f_two_boots_on_one_daemon(self):
        self.one_boot("b1", "first boot says hi",
                      "host to boot 1\n" + lines("one-", 50))
        # Boot 1 is gone: the daemon and its mount stay, the port's guest
        # side is closed (host read EOF, non-blocking write EAGAIN).
        self.assertTrue(self.d.alive(), "daemon died after boot 1" +
                        self.diag())
        self.assertTrue(os.path.ismount(self.d.mnt))
        fd = os.open(self.d.path("data"), os.O_RDWR | os.O_NONBLOCK)
        try:
            with self.assertRaises(BlockingIOError):
                os.write(fd, b"nobody listens")
            self.assertEqual(os.read(fd, 10), b"")
        finally:
            os.close(fd)
        self.one_boot("b2", "second boot, other words",
                      "host to boot 2\n" + lines("two-", 70))
        self.assertTrue(self.d.alive(), "daemon died after boot 2" +
                        self.diag())


class NoHeadOfLineBlocking(ScenarioTest):
    ports = ("name=stream1", "name=stream2", "name=stalled")
    SIZE = 16 << 20

    def test_g_unread_port_does_not_block_the_others(self):
        srcs = []
        for i in (1, 2, 3):
            p = os.path.join(self.d.dir, "src%d" % i)
            with open(p, "wb") as f:
                f.write(os.urandom(self.SIZE))
            srcs.append(p)
        # Sources live on the host's /var/tmp; the guest reads them over
        # hostfs.  The flag between each open and the first write lets the
        # host start its readers only once the guest's end is open.
        g = self.boot('''
await host-ready
{ flag open1; cat "$W/src1"; } > "$P/stream1" &
w1=$!
{ flag open2; cat "$W/src2"; } > "$P/stream2" &
w2=$!
{ flag open3; cat "$W/src3"; } > "$P/stalled" &
w3=$!
wait $w1
wait $w2
flag streams-done
sleep 2
if kill -0 $w3; then echo blocked; else echo exited; fi > "$W/stalled-state"
flag checked
wait $w3
''')
        # The host has "stalled" open but does not read it.
        fd3 = os.open(self.d.path("stalled"), os.O_RDONLY)
        self.addCleanup(os.close, fd3)
        g.flag("host-ready")
        g.await_flag("open1")
        g.await_flag("open2")
        out1 = os.path.join(self.d.dir, "out1")
        out2 = os.path.join(self.d.dir, "out2")
        t0 = time.monotonic()
        c1 = self.cat_from_fd("stream1", out1)
        c2 = self.cat_from_fd("stream2", out2)
        try:
            rc1 = c1.wait(90)
            rc2 = c2.wait(90)
        except subprocess.TimeoutExpired:
            self.fail("readers of stream1/stream2 did not finish while "
                      "'stalled' was unread: %d, %d bytes" %
                      (os.path.getsize(out1), os.path.getsize(out2)) +
                      self.diag(g))
        streams_secs = time.monotonic() - t0
        g.await_flag("checked", 60)
        self.assertEqual((rc1, rc2), (0, 0))
        self.assertEqual(os.path.getsize(out1), self.SIZE)
        self.assertEqual(os.path.getsize(out2), self.SIZE)
        self.assertEqual(sha256_file(out1), sha256_file(srcs[0]))
        self.assertEqual(sha256_file(out2), sha256_file(srcs[1]))
        self.assertEqual(g.read("stalled-state").strip(), "blocked",
                         "the unread port's guest writer was not blocked")
        # Now drain the stalled port: everything it held arrives intact.
        out3 = os.path.join(self.d.dir, "out3")
        with open(out3, "wb") as f:
            while True:
                b = os.read(fd3, 1 << 20)
                if not b:
                    break
                f.write(b)
        self.assertGuestOk(g)
        self.assertEqual(os.path.getsize(out3), self.SIZE)
        self.assertEqual(sha256_file(out3), sha256_file(srcs[2]),
                         "streams took %.1f s" % streams_secs)


if __name__ == "__main__":
    unittest.main()
