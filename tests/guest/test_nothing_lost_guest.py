"""Nothing written is lost or corrupted, on a real UML guest (issue 7):
an agent-style exchange across guest reboots, a reply written just before
power-off, session tails in -o session, console readers across a reboot.

VPORTFS_SOAK_BOOTS sets the number of reboots of the agent exchange
(default 5; scripts/soak.sh runs 100).
"""
import os
import select
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vpharness import read_to_eof  # noqa: E402
from test_scenarios import ScenarioTest, describe_lines, lines, settle  # noqa: E402

SOAK_BOOTS = int(os.environ.get("VPORTFS_SOAK_BOOTS", "5"))


class FdReader:
    """One host fd kept open on a port file, read in a thread until told to
    stop: EOF while the guest is away is not the end (default mode), so it
    reads on.  Everything read is in .data."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.data = bytearray()
        self.eofs = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            try:
                b = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                continue
            if b:
                self.data += b
            else:
                self.eofs += 1
                time.sleep(0.02)

    def close(self):
        self.stop = True
        self.thread.join(5)
        os.close(self.fd)


class AgentAcrossReboots(ScenarioTest):
    """An agent answers once per boot and the guest reboots at once
    (`reboot -f` right after its write and close): every message arrives,
    byte for byte, never bytes of freed guest memory."""
    ports = ("name=org.qemu.guest_agent.0",)
    timeout = 60 + 10 * SOAK_BOOTS  # a boot takes 3-7 s, more on a busy host

    def test_pong_per_boot_arrives_exactly(self):
        port = self.d.path("org.qemu.guest_agent.0")
        r = FdReader(port)
        self.addCleanup(r.close)
        g = self.boot('''
printf 'pong %%s\\n' "$UML_BOOT" > "$P/org.qemu.guest_agent.0"
[ "$UML_BOOT" -ge %d ] || reboot -f
''' % SOAK_BOOTS, timeout=30 + 10 * SOAK_BOOTS)
        self.assertGuestOk(g, 30 + 10 * SOAK_BOOTS)
        expected = "".join("pong %d\n" % i for i in range(1, SOAK_BOOTS + 1))
        wait = time.monotonic() + 10
        while len(r.data) < len(expected) and time.monotonic() < wait:
            time.sleep(0.05)
        got = bytes(r.data).decode(errors="replace")
        self.assertEqual(got, expected, describe_lines(got, expected) +
                         self.diag(g, "org.qemu.guest_agent.0"))
        redone = g.output().count("while rebooting; starting it again")
        sys.stderr.write("[%d boots, %d reboots redone by uml-run] " %
                         (SOAK_BOOTS, redone))


class ReplyBeforePowerOff(ScenarioTest):
    ports = ("name=data",)

    def test_reply_then_poweroff_is_read_after(self):
        fd = os.open(self.d.path("data"), os.O_RDONLY)
        self.addCleanup(os.close, fd)
        g = self.boot('''
echo reply > "$P/data"
poweroff -f
''')
        try:
            g.finish(60)  # uml-run: the command never finished (125)
        except subprocess.TimeoutExpired:
            self.fail("guest did not power off" + self.diag(g))
        self.assertEqual(read_to_eof(fd), b"reply\n", self.diag(g, "data"))


class SessionTails(ScenarioTest):
    """-o session: a session ends after every byte the guest wrote before
    closing."""
    ports = ("name=data",)
    args = ("-o", "session")

    def test_256k_in_32k_writes_then_close_20_rounds(self):
        src = os.path.join(self.d.dir, "src")
        with open(src, "wb") as f:
            f.write(os.urandom(256 << 10))
        with open(src, "rb") as f:
            want = f.read()
        g = self.boot('''
for i in $(seq 1 20); do
    exec 3>"$P/data"
    flag open$i
    await go$i
    dd if="$W/src" bs=32k count=8 status=none >&3
    exec 3>&-
done
flag done
''')
        short = []
        for i in range(1, 21):
            g.await_flag("open%d" % i)
            fd = os.open(self.d.path("data"), os.O_RDONLY)
            try:
                g.flag("go%d" % i)
                got = read_to_eof(fd)
            finally:
                os.close(fd)
            if got != want:
                short.append((i, len(got)))
        g.await_flag("done")
        self.assertGuestOk(g)
        self.assertEqual(short, [], "rounds cut short (round, bytes)" +
                         self.diag(g, "data"))
        self.assertEqual(os.getxattr(self.d.path("data"),
                                     "user.vport.dropped_bytes"), b"0")

    def test_seed_000_open_write_close_loop(self):
        out = os.path.join(self.d.dir, "host.out")
        loop = self.host_bash(
            'while :; do timeout 5 cat "$1" >> "$2"; done',
            self.d.path("data"), out)
        g = self.boot('''
for seq in $(seq 1 100); do
    echo "test $seq" > "$P/data"
    sleep 0.05
done
flag written
''')
        g.await_flag("written", 120)
        expected = lines("test ", 100)
        got = settle(out, expected, 10)
        self.kill_group(loop)
        self.assertGuestOk(g)
        self.assertEqual(got, expected, describe_lines(got, expected) +
                         self.diag(g, "data"))


class ConsoleAcrossReboot(ScenarioTest):
    """A console reader blocks across a guest reboot and VM stop; a logger
    that reopens on EOF writes each byte once."""
    ports = ("name=console0,console=on",)

    def test_reader_outlives_reboot_and_logger_gets_no_repeats(self):
        r = FdReader(self.d.path("console0"))
        self.addCleanup(r.close)
        log = os.path.join(self.d.dir, "log")
        logger = self.host_bash(
            'while :; do timeout 1 cat "$1" >> "$2"; done',
            self.d.path("console0"), log)
        g = self.boot('''
echo "console boot $UML_BOOT" > /dev/hvc0
sleep 1
[ "$UML_BOOT" -ge 2 ] || reboot -f
''')
        self.assertGuestOk(g)
        expected = b"console boot 1\r\nconsole boot 2\r\n"
        deadline = time.monotonic() + 10
        while bytes(r.data) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the VM is gone: nothing more, and no EOF
        self.assertEqual(bytes(r.data), expected, self.diag(g))
        self.assertEqual(r.eofs, 0, "console reader saw EOF")
        self.kill_group(logger)
        with open(log, "rb") as f:
            logged = f.read()
        # Each byte once, in order.  A line may be missing: a console gives
        # a new opener what no reader has received, and the FdReader may
        # take a line while the logger is between two of its cats.
        lines = logged.splitlines(keepends=True)
        want = expected.splitlines(keepends=True)
        self.assertEqual(lines, [x for x in want if x in lines],
                         self.diag(g))
        self.assertTrue(lines, "the logger got nothing" + self.diag(g))


if __name__ == "__main__":
    unittest.main()
