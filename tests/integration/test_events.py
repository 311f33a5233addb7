""".events (SPEC 4): a hidden file streaming one JSON object per line to
each reader, from the moment it opened it."""
import errno
import json
import os
import select
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

from vpharness import close_all, VPORTFS_SIM, Daemon, wait_until  # noqa: E402
from simctl import Sim  # noqa: E402
from test_port_files import TEST_TIMEOUT, Blocked, PortTest  # noqa: E402


class EventReader:
    """Reads JSON lines from a non-blocking .events fd."""

    def __init__(self, test, fd):
        self.test = test
        self.fd = fd
        self.buf = b""

    def _fill(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return False
        self.test.assertNotEqual(chunk, b"", ".events gave EOF")
        self.buf += chunk
        return True

    def take(self, n, timeout=5.0):
        """The next n events (dicts); fails if they do not come."""
        deadline = time.monotonic() + timeout
        while self.buf.count(b"\n") < n:
            left = deadline - time.monotonic()
            if left <= 0:
                self.test.fail("wanted %d events, have %r" % (n, self.buf))
            self._fill(left)
        out = []
        for _ in range(n):
            line, _, self.buf = self.buf.partition(b"\n")
            out.append(json.loads(line))
        return out

    def none_left(self, wait=0.3):
        time.sleep(wait)
        self._fill(0)
        self.test.assertEqual(self.buf, b"", "unexpected events")


def brief(events):
    """(event, port, nr) triples; port and nr None for device events."""
    return [(e["event"], e.get("port"), e.get("nr")) for e in events]


class EventsTest(PortTest):
    """.events is opened before the frontend connects."""

    def setUp(self):
        signal.alarm(TEST_TIMEOUT)
        self.d = Daemon(self.ports, self.args)
        self.addCleanup(self.d.cleanup)
        self.d.start()
        self.fds = []
        self.addCleanup(close_all, self.fds)
        self.t0 = time.time()
        self.ev = self.events()
        self.sim = Sim(VPORTFS_SIM, self.d.sock, self.sim_args)
        self.addCleanup(self.sim.close)
        self.nr = self.sim.wait_port("data")

    def events(self):
        return EventReader(self, self.open(os.O_RDONLY | os.O_NONBLOCK,
                                           name=".events"))

    def touch(self, name):
        subprocess.run(["touch", self.d.path(name)], check=True, timeout=10)


class Stream(EventsTest):
    def test_hidden_from_ls_listed_by_ls_a(self):
        ls = subprocess.run(["ls", self.d.mnt], stdout=subprocess.PIPE,
                            text=True, check=True).stdout.split()
        ls_a = subprocess.run(["ls", "-a", self.d.mnt],
                              stdout=subprocess.PIPE, text=True,
                              check=True).stdout.split()
        self.assertNotIn(".events", ls)
        self.assertIn(".events", ls_a)
        self.assertEqual(os.stat(self.d.path(".events")).st_mode, 0o100400)

    def test_frontend_up_and_driver_ready_on_connect(self):
        evs = self.ev.take(2)
        self.assertEqual(brief(evs), [("frontend-up", None, None),
                                      ("driver-ready", None, None)])
        for e in evs:
            self.assertEqual(sorted(e), ["event", "time"])
            self.assertIsInstance(e["time"], float)
            self.assertGreaterEqual(e["time"], self.t0 - 1)
            self.assertLessEqual(e["time"], time.time() + 1)
        self.assertLessEqual(evs[0]["time"], evs[1]["time"])
        self.ev.none_left()

    def test_hotplug_events(self):
        self.ev.take(2)
        self.touch("extra")
        nr = self.sim.wait_port("extra")
        os.unlink(self.d.path("extra"))
        self.sim.wait_gone(nr)
        evs = self.ev.take(4)
        # touch opens and closes the new file: host-open, host-close.
        self.assertEqual(brief(evs), [("port-added", "extra", nr),
                                      ("host-open", "extra", nr),
                                      ("host-close", "extra", nr),
                                      ("port-removed", "extra", nr)])
        for e in evs:
            self.assertEqual(sorted(e), ["event", "nr", "port", "time"])
            self.assertIsInstance(e["nr"], int)
        self.ev.none_left()

    def test_guest_and_host_open_close_events(self):
        self.ev.take(2)
        fd = self.open(os.O_RDONLY)
        self.guest_open()
        self.guest("close %d" % self.nr)
        self.close(fd)
        self.guest("wait-host %d 0 2000" % self.nr)
        self.assertEqual(brief(self.ev.take(4)), [
            ("host-open", "data", self.nr),
            ("guest-open", "data", self.nr),
            ("guest-close", "data", self.nr),
            ("host-close", "data", self.nr)])
        self.ev.none_left()

    def test_second_reader_does_not_change_host_events(self):
        self.ev.take(2)
        a = self.open(os.O_RDONLY)
        b = self.open(os.O_RDONLY)
        self.close(a)
        self.close(b)
        self.assertEqual(brief(self.ev.take(2)), [
            ("host-open", "data", self.nr), ("host-close", "data", self.nr)])
        self.ev.none_left()

    def test_frontend_down_and_up_again(self):
        self.ev.take(2)
        self.guest_open()
        self.assertEqual(brief(self.ev.take(1)),
                         [("guest-open", "data", self.nr)])
        self.sim.disconnect()
        self.assertEqual(brief(self.ev.take(2)), [
            ("guest-close", "data", self.nr), ("frontend-down", None, None)])
        wait_until(lambda: os.getxattr(self.d.mnt, "user.vport.frontend")
                   == b"0", 5)
        sim2 = Sim(VPORTFS_SIM, self.d.sock)
        self.addCleanup(sim2.close)
        sim2.wait_port("data")
        self.assertEqual(brief(self.ev.take(2)), [
            ("frontend-up", None, None), ("driver-ready", None, None)])
        sim2.kill()
        self.assertEqual(brief(self.ev.take(1)),
                         [("frontend-down", None, None)])
        self.ev.none_left()

    def test_each_reader_gets_events_from_when_it_opened(self):
        self.ev.take(2)
        self.touch("one")
        self.sim.wait_port("one")
        late = self.events()
        self.touch("two")
        self.sim.wait_port("two")
        got = [e for e in brief(self.ev.take(6)) if e[0] == "port-added"]
        self.assertEqual([g[1] for g in got], ["one", "two"])
        got_late = brief(late.take(3))
        self.assertEqual([g[:2] for g in got_late], [
            ("port-added", "two"), ("host-open", "two"),
            ("host-close", "two")])
        late.none_left()

    def test_cat_streams_events(self):
        self.ev.take(2)
        cat = subprocess.Popen(["cat", self.d.path(".events")],
                               stdout=subprocess.PIPE)
        self.addCleanup(cat.wait)
        self.addCleanup(cat.kill)
        self.addCleanup(cat.stdout.close)
        time.sleep(0.3)
        self.touch("seen")
        nr = self.sim.wait_port("seen")
        r, _, _ = select.select([cat.stdout], [], [], 5)
        self.assertTrue(r, "cat printed nothing")
        line = cat.stdout.readline()
        self.assertEqual(brief([json.loads(line)]),
                         [("port-added", "seen", nr)])
        self.assertIsNone(cat.poll())  # still streaming


class Reading(EventsTest):
    def test_blocking_read_waits_for_an_event(self):
        self.ev.take(2)
        fd = self.open(os.O_RDONLY, name=".events")
        r = Blocked(os.read, fd, 65536)
        self.assertTrue(r.still_blocked(0.5))
        self.touch("wake")
        line = r.wait().split(b"\n")[0]
        self.assertEqual(json.loads(line)["event"], "port-added")

    def test_nonblocking_read_without_events_is_eagain(self):
        self.ev.take(2)
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK, name=".events")
        with self.assertRaises(BlockingIOError):
            os.read(fd, 65536)

    def test_poll_wakes_on_new_event(self):
        self.ev.take(2)
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK, name=".events")
        p = select.poll()
        p.register(fd, select.POLLIN)
        self.assertEqual(p.poll(0), [])
        w = Blocked(p.poll, 10000)
        self.assertTrue(w.still_blocked())
        self.guest_open()
        ev = w.wait()
        self.assertTrue(ev and ev[0][1] & select.POLLIN)
        self.assertEqual(brief([json.loads(os.read(fd, 65536))]),
                         [("guest-open", "data", self.nr)])

    def test_small_reads_get_the_line_in_pieces(self):
        self.ev.take(2)
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK, name=".events")
        self.guest_open()
        wait_until(lambda: select.select([fd], [], [], 0)[0], 5)
        data = b""
        while not data.endswith(b"\n"):
            data += os.read(fd, 7)
        self.assertEqual(json.loads(data)["event"], "guest-open")

    def test_open_for_writing_is_eacces(self):
        for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND):
            with self.assertRaises(OSError) as cm:
                os.open(self.d.path(".events"), flags)
            self.assertEqual(cm.exception.errno, errno.EACCES)
        r = subprocess.run(["sh", "-c", 'echo x > "$1"', "sh",
                            self.d.path(".events")], stderr=subprocess.PIPE)
        self.assertNotEqual(r.returncode, 0)


class Overflow(EventsTest):
    """A reader that does not read loses its oldest lines, counted and
    reported as "lost" in the next line it gets (pfs_events.h)."""
    LONG = "L" * 200
    ports = ("name=data", "name=" + LONG)
    QUEUE = 256 << 10

    def test_lost_lines_are_counted_and_reported(self):
        self.ev.take(2)
        nr = self.sim.wait_port(self.LONG)
        idle = self.events()  # never read until the end
        cycles = 700  # 1401 lines of ~280 bytes: well over 256 KiB
        total = 2 * cycles + 1
        kept = []
        for i in range(cycles):
            self.sim.open(nr)
            self.sim.close_port(nr)
            if i % 50 == 49:  # this reader keeps up
                kept += self.ev.take(100)
        self.sim.open(nr)  # the last event
        kept += self.ev.take(total - len(kept))
        self.ev.none_left(0.2)
        self.assertFalse([e for e in kept if "lost" in e])
        raw = b""
        while True:
            try:
                chunk = os.read(idle.fd, 1 << 20)
            except BlockingIOError:
                break
            raw += chunk
        self.assertLessEqual(len(raw), self.QUEUE)
        lines = raw.split(b"\n")
        self.assertEqual(lines[-1], b"")
        evs = [json.loads(line) for line in lines[:-1]]
        self.assertEqual(brief(evs[-1:]), [("guest-open", self.LONG, nr)])
        lost = sum(e.get("lost", 0) for e in evs)
        self.assertEqual(len(evs) + lost, total,
                         "%d lines received, %d reported lost"
                         % (len(evs), lost))


    def test_overflow_after_partial_read_keeps_lines_whole(self):
        self.ev.take(2)
        nr = self.sim.wait_port(self.LONG)
        reader = self.events()
        self.sim.open(nr)
        wait_until(lambda: select.select([reader.fd], [], [], 0)[0], 5)
        head = os.read(reader.fd, 10)  # part of the first line
        self.assertEqual(head, b'{"event":"')
        for _ in range(700):
            self.sim.close_port(nr)
            self.sim.open(nr)
        self.sim.sleep(0.2)
        raw = head
        while True:
            try:
                raw += os.read(reader.fd, 1 << 20)
            except BlockingIOError:
                break
        for line in raw.split(b"\n")[:-1]:
            try:
                json.loads(line)
            except ValueError:
                self.fail("broken line: %r" % line[:120])


class Names(EventsTest):
    def test_quotes_backslash_control_chars_are_valid_json(self):
        self.ev.take(2)
        name = 'q"uo\\te\x01\x1f\t\x7fé'
        os.mknod(self.d.path(name))
        ev = self.ev.take(1)[0]
        self.assertEqual(ev["event"], "port-added")
        self.assertEqual(ev["port"], name)
        self.assertEqual(ev["nr"], 3)  # after data and the guest agent

    def test_name_that_is_not_utf8_still_gives_valid_json(self):
        self.ev.take(2)
        name = os.fsencode(self.d.path("raw")) + b"\xff\xfe"
        try:
            os.mknod(name)
        except OSError as e:
            # Refusing such a name is fine too.
            self.assertEqual(e.errno, errno.EINVAL)
            return
        select.select([self.ev.fd], [], [], 5)
        line = os.read(self.ev.fd, 65536).split(b"\n")[0]
        try:
            ev = json.loads(line)
        except ValueError as e:
            self.fail("not JSON (%s): %r" % (e, line))
        self.assertEqual(ev["event"], "port-added")
        self.assertTrue(ev["port"].startswith("raw"))


if __name__ == "__main__":
    unittest.main()
