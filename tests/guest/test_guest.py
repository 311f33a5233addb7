"""Real-guest tests: a UML guest (Debian's linux.uml) on a real vportfs.

The guest's root is the host's / over hostfs, so the host and guest meet in
the daemon's private directory under /var/tmp: the guest script and flag
files for synchronisation live there.  Every boot has a timeout, every
daemon is stopped and unmounted, whatever happens.
"""
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))

from vpharness import ROOT, Daemon, wait_until  # noqa: E402

UML_RUN = os.path.join(ROOT, "scripts", "uml-run.sh")
BOOT_TIMEOUT = 120
TEST_TIMEOUT = 180


class Guest:
    """A UML guest running one shell script, booted on a daemon."""

    def __init__(self, daemon, script, timeout=BOOT_TIMEOUT):
        self.d = daemon
        self.w = daemon.dir
        path = os.path.join(self.w, "guest.sh")
        with open(path, "w") as f:
            f.write("set -e\nW=%s\nP=/dev/virtio-ports\n" % self.w)
            f.write("flag() { : > \"$W/$1\"; }\n")
            f.write("await() { while [ ! -e \"$W/$1\" ]; do sleep 0.05; "
                    "done; }\n")
            f.write(script)
        self.out = open(os.path.join(self.w, "guest.out"), "wb")
        self.proc = subprocess.Popen(
            [UML_RUN, "--socket", daemon.sock, "--timeout", str(timeout),
             "--", "sh", path],
            stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)

    def flag(self, name):
        with open(os.path.join(self.w, name), "w"):
            pass

    def await_flag(self, name, timeout=60):
        p = os.path.join(self.w, name)

        def seen():
            if self.proc.poll() is not None and not os.path.exists(p):
                raise AssertionError("guest ended (%d) before '%s':\n%s" %
                                     (self.proc.returncode, name,
                                      self.output()))
            return os.path.exists(p)
        wait_until(seen, timeout, 0.05, "guest flag " + name)

    def read(self, name):
        with open(os.path.join(self.w, name)) as f:
            return f.read()

    def output(self):
        self.out.flush()
        with open(self.out.name, errors="replace") as f:
            return f.read()

    def finish(self, timeout=60):
        rc = self.proc.wait(timeout)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.out.close()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class GuestTest(unittest.TestCase):
    ports = ("name=console0,console=on", "name=org.qemu.guest_agent.0",
             "name=data")
    args = ()

    def setUp(self):
        signal.alarm(TEST_TIMEOUT)
        self.d = Daemon(self.ports, self.args)
        self.addCleanup(self.d.cleanup)
        self.d.start()

    def tearDown(self):
        signal.alarm(0)

    def boot(self, script, timeout=BOOT_TIMEOUT):
        g = Guest(self.d, script, timeout)
        self.addCleanup(g.kill)
        return g

    def assertGuestOk(self, g):
        rc = g.finish()
        self.assertEqual(rc, 0, "guest script failed:\n" + g.output() +
                         "\n--- daemon log:\n" + self.d.read_log())


class Discovery(GuestTest):
    def test_guest_sees_configured_names_and_host_nonblock_write_is_eagain(self):
        g = self.boot('''
for p in /sys/class/virtio-ports/*; do cat "$p/name"; done > "$W/names"
flag listed
await done
''')
        g.await_flag("listed")
        names = g.read("names").split()
        self.assertEqual(sorted(names), ["console0", "data",
                                         "org.qemu.guest_agent.0"])
        # The guest has not opened "data": a non-blocking write must not
        # be accepted, a read is EOF.
        fd = os.open(self.d.path("data"), os.O_RDWR | os.O_NONBLOCK)
        try:
            with self.assertRaises(BlockingIOError):
                os.write(fd, b"nobody listens")
            self.assertEqual(os.read(fd, 10), b"")
        finally:
            os.close(fd)
        g.flag("done")
        self.assertGuestOk(g)


class GuestToHost(GuestTest):
    def test_kallsyms_arrives_byte_identical(self):
        g = self.boot('''
exec 3>"$P/data"
flag opened
cat /proc/kallsyms >&3
exec 3>&-
sha256sum /proc/kallsyms | cut -d' ' -f1 > "$W/sum"
''')
        g.await_flag("opened")
        out = os.path.join(self.d.dir, "host.out")
        with open(out, "wb") as f:
            subprocess.run(["cat", self.d.path("data")], stdout=f,
                           check=True, timeout=60)
        self.assertGuestOk(g)
        self.assertGreater(os.path.getsize(out), 100000)
        self.assertEqual(sha256_file(out), g.read("sum").strip())

    def test_guest_close_ends_host_blocked_cat_with_eof(self):
        g = self.boot('''
exec 3>"$P/data"
flag opened
await reading
sleep 1
exec 3>&-
flag closed
''')
        g.await_flag("opened")
        cat = subprocess.Popen(["cat", self.d.path("data")],
                               stdout=subprocess.PIPE)
        self.addCleanup(lambda: cat.poll() is None and cat.kill())
        time.sleep(0.5)
        self.assertIsNone(cat.poll(), "cat returned while the guest was open")
        g.flag("reading")
        t0 = time.monotonic()
        out, _ = cat.communicate(timeout=30)
        # The guest holds the port open for 1 s after "reading": an EOF
        # before that would not come from its close.
        self.assertGreater(time.monotonic() - t0, 0.8)
        self.assertEqual(cat.returncode, 0)
        self.assertEqual(out, b"")
        g.await_flag("closed")
        self.assertGuestOk(g)

    def test_guest_writer_blocks_without_host_reader_and_guest_keeps_running(self):
        # The host opens the port but does not read: the guest's writer
        # must block (its ring fills), a guest loop must keep ticking, and
        # everything must arrive once the host reads.
        g = self.boot('''
( while :; do echo tick >> /tmp/ticks; sleep 0.1; done ) &
ticker=$!
head -c 16777216 /dev/urandom > /tmp/src
sha256sum /tmp/src | cut -d' ' -f1 > "$W/sum"
await host-open
cat /tmp/src > "$P/data" &
writer=$!
sleep 3
before=$(wc -l < /tmp/ticks)
sleep 2
after=$(wc -l < /tmp/ticks)
kill -0 $writer && echo blocked > "$W/writer-state" || echo done > "$W/writer-state"
echo $((after - before)) > "$W/ticks"
flag checked
wait $writer
kill $ticker
''')
        fd = os.open(self.d.path("data"), os.O_RDONLY)
        try:
            g.flag("host-open")
            g.await_flag("checked", 90)
            self.assertEqual(g.read("writer-state").strip(), "blocked")
            self.assertGreaterEqual(int(g.read("ticks")), 5,
                                    "the guest stalled while its writer "
                                    "was blocked")
            h = hashlib.sha256()
            n = 0
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                h.update(b)
                n += len(b)
        finally:
            os.close(fd)
        self.assertGuestOk(g)
        self.assertEqual(n, 16 << 20)
        self.assertEqual(h.hexdigest(), g.read("sum").strip())


class StreamInterrupts(GuestTest):
    """Linux takes its transmit buffers back at every write and waits for
    an interrupt only when the ring is full, so the device interrupts a
    streaming writer only when it may be waiting
    (vu_queue_notify_moderated); each interrupt is a SIGIO to UML."""

    def test_a_streaming_writer_costs_no_interrupt_per_buffer(self):
        # 2048 writes of 32 KiB (the driver's largest buffer): one
        # interrupt each before.
        g = self.boot('''
irqs() { grep virtio-uml /proc/interrupts | awk '{print $2}'; }
exec 3>"$P/data"
flag opened
await reading
before=$(irqs)
dd if=/dev/zero bs=32k count=2048 >&3 2>/dev/null
echo "$before $(irqs)" > "$W/irqs"
exec 3>&-
''')
        g.await_flag("opened")
        fd = os.open(self.d.path("data"), os.O_RDONLY)
        n = 0
        try:
            g.flag("reading")
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                self.assertEqual(b.count(0), len(b))
                n += len(b)
        finally:
            os.close(fd)
        self.assertGuestOk(g)
        self.assertEqual(n, 2048 * 32768)
        before, after = (int(x) for x in g.read("irqs").split())
        self.assertLess(after - before, 512,
                        "%d interrupts for 2048 buffers" % (after - before))


class HostToGuest(GuestTest):
    def test_16mib_random_file_arrives_identical(self):
        src = os.path.join(self.d.dir, "src")
        with open(src, "wb") as f:
            f.write(os.urandom(16 << 20))
        g = self.boot('''
await host-open
sha256sum < "$P/data" | cut -d' ' -f1 > "$W/sum"
''')
        # Opening first makes the guest's read block instead of seeing EOF;
        # our write blocks until the guest opens its end.
        fd = os.open(self.d.path("data"), os.O_WRONLY)
        err = []

        def writer():
            try:
                with open(src, "rb") as f:
                    while True:
                        b = f.read(1 << 20)
                        if not b:
                            break
                        v = memoryview(b)
                        while v:
                            v = v[os.write(fd, v):]
            except OSError as e:
                err.append(e)
            finally:
                os.close(fd)
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        g.flag("host-open")
        t.join(90)
        self.assertFalse(t.is_alive(), "host writer still blocked")
        self.assertEqual(err, [])
        self.assertGuestOk(g)
        self.assertEqual(g.read("sum").strip(), sha256_file(src))


if __name__ == "__main__":
    unittest.main()
