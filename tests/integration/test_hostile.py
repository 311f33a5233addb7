"""A hostile guest or frontend (SPEC sections 2 and 3, "the guest is
untrusted"): nothing it sends may crash or hang the daemon.

After each attack the daemon must still be running and a port file must
still carry bytes both ways: on the same connection when the attack only
spoils one buffer or one message, or through a fresh simulated frontend
after `disconnect` when the attack ends the connection (a new frontend is a
new VM: a fresh device).

A watchdog kills the daemon if a test runs too long, so a daemon that hangs
fails the test (a FUSE call blocked on a live but stuck daemon cannot be
interrupted any other way) instead of hanging the run.
"""
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

from vpharness import close_all, Blocked, Daemon, VPORTFS_SIM, read_exact, wait_until  # noqa: E402
from simctl import CTRL, Sim, SimDisconnected, SimError, rxq, txq  # noqa: E402

TEST_TIMEOUT = 30
CTRL_TXQ = 3


def ctrl_msg(port_id, event, value):
    return struct.pack("<IHH", port_id, event, value)


def mounted(path):
    """True if /proc/mounts lists path as a mount point."""
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        return any(len(l.split()) > 1 and l.split()[1] == path for l in f)


def ensure_unmounted(path):
    """Lazily unmounts path if /proc/mounts lists it: also the mount of a
    daemon that died, which vpharness.force_unmount misses
    (os.path.ismount is False when lstat fails with ENOTCONN)."""
    if mounted(path):
        subprocess.run(["umount", "-l", path], stderr=subprocess.DEVNULL)


def stop_and_clean(d):
    """Daemon.cleanup, but unmounting a dead daemon's mount before the
    temp dir is removed."""
    d.stop()
    ensure_unmounted(d.mnt)
    shutil.rmtree(d.dir, ignore_errors=True)


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test ran longer than %ds; daemon killed" %
                      TEST_TIMEOUT)




def write_all(fd, data, timeout=5.0):
    """Writes data to a non-blocking port file, waiting with select."""
    deadline = time.monotonic() + timeout
    view = memoryview(data)
    while view:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("write still blocked with %d bytes left" %
                                 len(view))
        select.select([], [fd], [], left)
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            time.sleep(0.01)




class HostileTest(unittest.TestCase):
    ports = ("name=data", "name=other")
    sim_args = ()

    def setUp(self):
        self.addCleanup(signal.signal, signal.SIGALRM,
                        signal.signal(signal.SIGALRM, _alarm))
        self.d = Daemon(self.ports)
        self.addCleanup(stop_and_clean, self.d)
        self._watchdog = threading.Timer(TEST_TIMEOUT, self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()
        self.addCleanup(self._watchdog.cancel)
        self.d.start()
        self.sim = self.new_sim(self.sim_args)
        self.nr = self.sim.wait_port("data")
        self.other = self.sim.wait_port("other")
        self.fds = []
        self.addCleanup(close_all, self.fds)

    def _expire(self):
        # Kill the daemon first: that aborts the FUSE connection, so a main
        # thread stuck in a FUSE call returns and sees the alarm.
        if self.d.proc is not None and self.d.proc.poll() is None:
            os.killpg(self.d.proc.pid, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGALRM)

    def tearDown(self):
        self._watchdog.cancel()
        self.assert_daemon_healthy()

    # ---- helpers -------------------------------------------------------

    def new_sim(self, args=()):
        sim = Sim(VPORTFS_SIM, self.d.sock, list(args))
        self.addCleanup(sim.close)
        return sim

    def open(self, name="data", flags=os.O_RDWR):
        fd = os.open(self.d.path(name), flags)
        self.fds.append(fd)
        return fd

    def close(self, fd):
        self.fds.remove(fd)
        os.close(fd)

    def assert_daemon_healthy(self):
        log = self.d.read_log()
        self.assertIsNone(self.d.proc.poll(),
                          "vportfs died (status %s):\n%s" %
                          (self.d.proc.returncode, log))
        errors = [l for l in log.splitlines()
                  if l.startswith("vportfs: error:")]
        self.assertEqual(errors, [], "internal errors in the log:\n" + log)

    def daemon_sockets(self):
        n = 0
        fd_dir = "/proc/%d/fd" % self.d.proc.pid
        for name in os.listdir(fd_dir):
            try:
                if os.readlink(os.path.join(fd_dir, name)).startswith(
                        "socket:"):
                    n += 1
            except OSError:
                pass
        return n

    def wait_frontend_gone(self):
        """Until the daemon has dropped the frontend connection: only its
        listening socket is left."""
        wait_until(lambda: self.daemon_sockets() == 1, 5,
                   what="vportfs to drop the frontend connection")

    def assert_port_works(self, sim, name="data", pending=b""):
        """Bytes cross port `name` both ways, from open to close.  The
        guest first gets `pending`: host bytes an earlier VM never took."""
        nr = sim.wait_port(name)
        fd = os.open(self.d.path(name), os.O_RDWR | os.O_NONBLOCK)
        try:
            sim.wait_host(nr, True)
            sim.open(nr)
            out = ("guest to host on %s" % name).encode()
            sim.write_all(nr, out)
            self.assertEqual(read_exact(fd, len(out)), out)
            back = ("host to guest on %s" % name).encode()
            write_all(fd, back)
            self.assertEqual(sim.readn(nr, len(pending) + len(back)),
                             pending + back)
        finally:
            os.close(fd)
        sim.wait_host(nr, False)

    def fresh_frontend_works(self, pending=b""):
        """The current frontend goes away; a new one is a fresh device
        (its guest first gets `pending` on port data, see
        assert_port_works)."""
        try:
            self.sim.disconnect()
        except SimError:
            pass
        self.sim.close()
        self.wait_frontend_gone()
        sim = self.new_sim()
        self.assertEqual(sim.bugs()[0], 0)
        self.assert_port_works(sim, "data", pending)
        self.assert_port_works(sim, "other")
        return sim

    def assert_no_device_bug(self, sim=None):
        count, msg = (sim or self.sim).bugs()
        self.assertEqual(count, 0, msg)


# ---- malformed descriptor chains ----------------------------------------

# (name, options, descriptors).  {P}: hex of a payload that must never take
# effect (bytes a reader must not see / a control message that must not be
# obeyed); {B}: guest memory base; {E}: first address past guest memory.
CHAINS = [
    ("addr_beyond_memory", (), "{E+4096}:16:-"),
    ("addr_below_memory", (), "0x1000:16:-"),
    ("addr_zero", (), "0:16:-"),
    ("len_crosses_end_of_memory", (), "{E-8}:64:-"),
    ("len_0xffffffff", (), "{B}:0xffffffff:-"),
    ("good_descriptor_then_bad_one", (), "hex={P}:-,{E}:16:-"),
    ("descriptor_loop_to_itself", (), "hex={P}:-:n:@0"),
    ("descriptor_loop_of_two", (), "hex={P}:-:n:@1,buf=8:-:n:@0"),
    ("next_out_of_range", (), "hex={P}:-:n:999"),
    ("indirect_len_not_multiple_of_16", ("indirect", "ring-len=15"),
     "hex={P}:-"),
    ("indirect_len_zero", ("indirect", "ring-len=0"), "hex={P}:-"),
    ("indirect_len_huge", ("indirect", "ring-len=0xfffffff0"), "hex={P}:-"),
    ("indirect_table_beyond_memory", ("indirect", "ring-addr={E}"),
     "hex={P}:-"),
    ("indirect_table_at_zero", ("indirect", "ring-addr=0"), "hex={P}:-"),
    ("indirect_with_next_flag", ("indirect", "ring-flags=n"), "hex={P}:-"),
    ("nested_indirect", ("indirect",), "hex={P}:-:i"),
    ("loop_inside_indirect_table", ("indirect",),
     "hex={P}:-:n:@1,buf=8:-:n:@0"),
    ("next_out_of_indirect_table", ("indirect",), "hex={P}:-:n:@5"),
    ("indirect_entry_beyond_memory", ("indirect",), "hex={P}:-,{E}:16:-"),
]


def _expand(text, payload, base, end):
    return (text.replace("{P}", payload.hex())
            .replace("{B}", "%#x" % base)
            .replace("{E+4096}", "%#x" % (end + 4096))
            .replace("{E-8}", "%#x" % (end - 8))
            .replace("{E}", "%#x" % end))


class ChainTest(HostileTest):
    """A host reader is open on `data` and the guest has it open, so a
    chain the device wrongly accepted would be held and read."""

    LEAK = b"LEAKED!"

    def setUp(self):
        super().setUp()
        st = self.sim.state()
        self.base = int(st["guest_base"], 16)
        self.end = self.base + int(st["mem_size"])
        self.reader = self.open("data", os.O_RDWR | os.O_NONBLOCK)
        self.sim.wait_host(self.nr, True)
        self.sim.open(self.nr)

    def post(self, qidx, descs, opts, payload):
        text = _expand(descs, payload, self.base, self.end)
        opts = [_expand(o, payload, self.base, self.end) for o in opts]
        return self.sim.raw_desc(qidx, text, *opts)

    def assert_data_flows(self, marker):
        """Exactly `marker` from the guest, and host bytes to the guest."""
        self.sim.write_all(self.nr, marker)
        self.assertEqual(read_exact(self.reader, len(marker)), marker)
        with self.assertRaises(BlockingIOError, msg="extra bytes"):
            os.read(self.reader, 4096)
        back = b"host still writes"
        write_all(self.reader, back)
        self.assertEqual(self.sim.readn(self.nr, len(back)), back)
        self.assert_no_device_bug()


class TxChains(ChainTest):
    """Malformed chains on a port's transmit queue: returned unused
    (len 0), nothing read from them, the port goes on working."""

    def attack(self, descs, opts):
        q = txq(self.nr)
        head = self.post(q, descs, opts, self.LEAK)
        self.assertEqual(self.sim.raw_used(q, 3), (head, 0))
        self.assert_data_flows(b"after the bad chain")
        self.assert_port_works(self.sim, "other")

    def test_writable_descriptor_in_tx_chain(self):
        # Device-writable buffers have no place on a transmit queue
        # (see vportfs-sim --help, raw-desc example).
        q = txq(self.nr)
        head = self.post(q, "hex={P}:-,buf:64:w", (), self.LEAK)
        self.assertEqual(self.sim.raw_used(q, 3), (head, 0))
        self.assert_data_flows(b"after the writable chain")

    def test_many_bad_chains_fill_the_ring(self):
        q = txq(self.nr)
        heads = [self.post(q, "{E}:16:-", (), b"") for _ in range(300 // 2)]
        got = [self.sim.raw_used(q, 3) for _ in heads]
        self.assertEqual(sorted(got), sorted((h, 0) for h in heads))
        self.assert_data_flows(b"after many bad chains")


class CtrlChains(ChainTest):
    """Malformed chains on the control transmit queue.  The payload is a
    PORT_OPEN(data, 0): a device that obeyed it would close the port."""

    def attack(self, descs, opts):
        head = self.post(CTRL_TXQ, descs, opts,
                         ctrl_msg(self.nr, CTRL["PORT_OPEN"], 0))
        # Linux takes control-tx buffers back by polling when it sends the
        # next message; so does the sim.  An unreturned chain is a
        # device bug ("control-tx buffer not returned").
        self.sim.open(self.nr)
        self.assertEqual(self.sim.raw_used(CTRL_TXQ, 3), (head, 0))
        self.assert_data_flows(b"after the bad control chain")
        # The control queue still works: guest close and reopen.
        self.sim.close_port(self.nr)
        wait_until(lambda: self._eof(), 5, what="EOF after guest close")
        self.sim.open(self.nr)
        self.assert_data_flows(b"after close and reopen")

    def _eof(self):
        try:
            return os.read(self.reader, 4096) == b""
        except BlockingIOError:
            return False

    def test_short_control_message(self):
        head = self.post(CTRL_TXQ, "hex=010000:-", (), b"")
        self.sim.open(self.nr)
        self.assertEqual(self.sim.raw_used(CTRL_TXQ, 3), (head, 0))
        self.assert_data_flows(b"after a 3-byte control message")

    def test_control_message_split_over_descriptors(self):
        # Legal, if odd (the device must not assume a descriptor layout):
        # PORT_OPEN(data, 0) in two pieces is obeyed.
        m = ctrl_msg(self.nr, CTRL["PORT_OPEN"], 0)
        head = self.post(CTRL_TXQ, "hex=%s:-,hex=%s:-" % (m[:3].hex(),
                                                          m[3:].hex()),
                         (), b"")
        # A harmless message, to make the sim reap control-tx.
        self.sim.ctrl(self.nr, "PORT_READY", 1)
        self.assertEqual(self.sim.raw_used(CTRL_TXQ, 3), (head, 0))
        wait_until(lambda: self._eof(), 5, what="EOF after guest close")
        with self.assertRaises(BlockingIOError):
            os.write(self.reader, b"guest is closed")
        self.sim.open(self.nr)
        self.assert_data_flows(b"after reopen")

    def test_control_log_is_rate_limited(self):
        # A guest must not be able to flood the daemon's log.
        before = len(self.d.read_log().splitlines())
        for i in range(40):
            self.sim.ctrl(self.nr, "PORT_READY", 0)
            self.sim.ctrl(0, "DEVICE_READY", 0)
            self.sim.ctrl(7, "PORT_OPEN", 1)
            self.sim.ctrl(self.nr, 99, 1)
        self.sim.sleep(0.1)
        lines = self.d.read_log().splitlines()[before:]
        self.assertLess(len(lines), 60,
                        "160 bad control messages gave %d log lines:\n%s" %
                        (len(lines), "\n".join(lines[:20])))
        self.assert_data_flows(b"after the flood")


def _add_chain_tests():
    for name, opts, descs in CHAINS:
        def tx(self, descs=descs, opts=opts):
            self.attack(descs, opts)

        def ctrl(self, descs=descs, opts=opts):
            self.attack(descs, opts)
        tx.__name__ = "test_tx_" + name
        ctrl.__name__ = "test_ctrl_" + name
        setattr(TxChains, tx.__name__, tx)
        setattr(CtrlChains, ctrl.__name__, ctrl)


_add_chain_tests()


class RxChains(ChainTest):
    """Malformed receive buffers: the device must skip them, not write
    host bytes into them or outside guest memory."""
    sim_args = ("--rx-bufs", "0")

    def attack_rx(self, descs, opts=()):
        q = rxq(self.nr)
        head = self.post(q, descs, opts, b"")
        data = b"host bytes"
        os.write(self.reader, data)
        self.assertEqual(self.sim.raw_used(q, 3), (head, 0))
        self.sim.rx_post(self.nr, 8, 4096)
        self.assertEqual(self.sim.readn(self.nr, len(data)), data)
        self.assert_data_flows(b"guest still writes")

    def test_rx_buffer_beyond_memory(self):
        self.attack_rx("{E}:4096:w")

    def test_rx_buffer_crossing_end_of_memory(self):
        self.attack_rx("{E-8}:4096:w")

    def test_rx_buffer_device_readable_only(self):
        self.attack_rx("buf:4096:-")

    def test_rx_indirect_loop(self):
        self.attack_rx("buf:64:nw:@1,buf:64:nw:@0", ("indirect",))


# ---- broken rings ----------------------------------------------------------


class FloodedNeighbour(HostileTest):
    """A second sim thread, playing a guest vCPU, keeps port `other`'s
    transmit queue full of chains the device must refuse, re-posting each
    the moment it comes back.  The port beside it streams both ways and
    the mount answers while the flood goes on.  (That one vq_pop() call
    gives the loop back after a ring's worth is shown deterministically by
    test_virtqueue's test_pop_gives_the_loop_back_after_a_ring_of_bad_chains;
    here the race is real, and on two cores the flood thread is preempted
    often enough that an unbounded loop also ends now and then.)"""

    SIZE = 4 << 20

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="vportfs-flood.", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_port_beside_a_flooded_queue_streams_both_ways(self):
        fd = self.open("data")
        self.sim.wait_host(self.nr, True)
        self.sim.open(self.nr)
        self.sim.flood(txq(self.other))
        try:
            t0 = time.monotonic()
            self._stream(fd)
            took = time.monotonic() - t0
            # The mount still answers.
            self.assertIn("data", os.listdir(self.d.mnt))
            self.assertEqual(
                os.getxattr(self.d.path("other"), "user.vport.name"),
                b"other")
        finally:
            posted = self.sim.flood_stop()
        # The flood was on all along: many rings' worth went round.
        self.assertGreater(posted, 20 * 256)
        # The queue stays the flood's: the sim refuses to post on it.
        with self.assertRaisesRegex(SimError, "flood"):
            self.sim.write(self.other, b"x")
        with self.assertRaisesRegex(SimError, "flood"):
            self.sim.flood(txq(self.other))
        print(f"\nflood: {posted} refused chains posted while "
              f"2 x {self.SIZE >> 20} MiB crossed the port beside in "
              f"{took:.2f} s ({2 * self.SIZE / took / 1e6:.0f} MB/s)",
              file=sys.stderr)

    def _stream(self, fd):
        to_guest = os.urandom(self.SIZE)
        got = os.path.join(self.tmp, "got")
        writer = threading.Thread(target=write_all, args=(fd, to_guest))
        writer.start()
        self.assertEqual(self.sim.read_file(self.nr, got, self.SIZE),
                         self.SIZE)
        writer.join(10)
        with open(got, "rb") as f:
            self.assertTrue(f.read() == to_guest, "host to guest differs")

        from_guest = os.path.join(self.tmp, "from_guest")
        with open(from_guest, "wb") as f:
            f.write(os.urandom(self.SIZE))
        box = []
        reader = threading.Thread(
            target=lambda: box.append(read_exact(fd, self.SIZE, 20)))
        reader.start()
        self.sim.write_file(self.nr, from_guest)
        reader.join(20)
        with open(from_guest, "rb") as f:
            self.assertTrue(box and box[0] == f.read(),
                            "guest to host differs")


class BrokenRings(HostileTest):
    def test_avail_idx_jump_on_tx_queue(self):
        q = txq(self.nr)
        idx = int(self.sim.queue(q)["avail_idx"])
        reader = self.open("data", os.O_RDONLY | os.O_NONBLOCK)
        self.sim.wait_host(self.nr, True)
        self.sim.raw_avail_idx(q, (idx + 1000) & 0xffff)
        self.sim.sleep(0.2)
        self.assertTrue(self.d.alive())
        self.assert_port_works(self.sim, "other")
        self.close(reader)
        self.fresh_frontend_works()

    def test_avail_idx_jump_on_rx_queue(self):
        q = rxq(self.nr)
        idx = int(self.sim.queue(q)["avail_idx"])
        self.sim.open(self.nr)
        fd = self.open("data", os.O_WRONLY | os.O_NONBLOCK)
        self.sim.raw_avail_idx(q, (idx + 257) & 0xffff)
        try:
            n = os.write(fd, b"into a broken ring")
        except BlockingIOError:
            n = 0
        self.sim.sleep(0.2)
        self.assertTrue(self.d.alive())
        self.assert_port_works(self.sim, "other")
        self.close(fd)
        # What the write accepted waits for the next VM's guest.
        self.fresh_frontend_works(b"into a broken ring"[:n])

    def test_avail_ring_head_out_of_range(self):
        q = txq(self.nr)
        reader = self.open("data", os.O_RDONLY | os.O_NONBLOCK)
        self.sim.wait_host(self.nr, True)
        self.sim.open(self.nr)
        self.sim.raw_head(q, 4000)
        self.sim.sleep(0.2)
        self.assertTrue(self.d.alive())
        self.assert_port_works(self.sim, "other")
        self.close(reader)
        self.fresh_frontend_works()


# ---- raw vhost-user messages ----------------------------------------------


class FrontendMessages(HostileTest):
    def assert_failure_ack(self, reply, request):
        self.assertIsNotNone(reply, "no reply to a NEED_REPLY message")
        req, flags, payload = reply
        self.assertEqual(req, request)
        self.assertEqual(flags, 0x5)
        self.assertEqual(len(payload), 8)
        self.assertNotEqual(int.from_bytes(payload, "little"), 0,
                            "request reported success")

    def test_unknown_request_with_need_reply(self):
        self.assert_failure_ack(self.sim.raw_msg(999, 0x9), 999)
        self.assert_failure_ack(self.sim.raw_msg(0x7fffffff, 0x9,
                                                 b"\0" * 16), 0x7fffffff)
        self.assert_no_device_bug()
        self.assert_port_works(self.sim, "data")

    def test_guest_memory_shrunk_under_the_daemon(self):
        # The frontend cuts its memory file after SET_MEM_TABLE: the
        # daemon's next access to guest memory would be SIGBUS.  It must
        # survive, drop that frontend, and serve the next one.
        self.sim.cmd("shrink-mem 0")
        self.sim.cmd("kick %d" % txq(self.nr))
        self.wait_frontend_gone()
        self.assertIsNone(self.d.proc.poll(), "the daemon died")
        self.assertIn("memory shrank", self.d.read_log())
        sim = self.new_sim()
        self.assert_port_works(sim, "data")

    def test_unknown_request_without_need_reply(self):
        self.assertIsNone(self.sim.raw_msg(999, 0x1))
        self.assert_port_works(self.sim, "data")

    def test_set_vring_num_bad_index(self):
        payload = struct.pack("<II", 9999, 3)
        self.assert_failure_ack(self.sim.raw_msg("SET_VRING_NUM", 0x9,
                                                 payload), 8)
        payload = struct.pack("<II", 9999, 256)
        self.assert_failure_ack(self.sim.raw_msg("SET_VRING_NUM", 0x9,
                                                 payload), 8)
        self.assert_port_works(self.sim, "data")

    def test_get_config_size_4096(self):
        # Header asks for 4096 bytes; the message carries no config bytes.
        reply = self.sim.raw_msg("GET_CONFIG", 0x1,
                                 struct.pack("<III", 0, 4096, 0))
        self.assertIsNotNone(reply, "no reply to GET_CONFIG")
        req, flags, payload = reply
        self.assertEqual((req, flags), (24, 0x5))
        self.assertLess(len(payload), 12,
                        "GET_CONFIG of 4096 bytes answered as a success")
        self.assertEqual(self.sim.config()[2], 31)
        self.assert_port_works(self.sim, "data")

    def test_get_config_size_4096_with_payload(self):
        # The whole 4096 bytes sent along: larger than any message may be.
        # Either a failure reply or the end of the connection is fine.
        try:
            reply = self.sim.raw_msg("GET_CONFIG", 0x1,
                                     struct.pack("<III", 0, 4096, 0) +
                                     bytes(4096))
        except SimDisconnected:
            reply = None
        if reply is not None:
            self.assertLess(len(reply[2]), 12)
        self.assertTrue(self.d.alive())
        self.fresh_frontend_works()

    def test_set_mem_table_nine_regions(self):
        regions = b"".join(struct.pack("<QQQQ", 0x100000 * (i + 1), 4096,
                                       0x7f0000000000 + 0x100000 * (i + 1),
                                       0) for i in range(8))
        payload = struct.pack("<II", 9, 0) + regions
        self.assert_failure_ack(self.sim.raw_msg("SET_MEM_TABLE", 0x9,
                                                 payload,
                                                 fds=["memfd:4096"] * 8),
                                5)
        self.assert_no_device_bug()
        self.assert_port_works(self.sim, "data")

    def test_set_mem_table_region_larger_than_its_file(self):
        # Mapping past the end of a memfd would SIGBUS on first touch.
        st = self.sim.state()
        region = struct.pack("<QQQQ", int(st["guest_base"], 16),
                             int(st["mem_size"]),
                             int(st["guest_base"], 16) +
                             int(st["user_offset"], 16), 0)
        payload = struct.pack("<II", 1, 0) + region + bytes(7 * 32)
        self.assert_failure_ack(self.sim.raw_msg("SET_MEM_TABLE", 0x9,
                                                 payload,
                                                 fds=["memfd:4096"]), 5)
        self.assert_port_works(self.sim, "data")

    def test_bad_version_ends_connection_only(self):
        try:
            self.sim.raw_msg("GET_FEATURES", 0x2)
        except SimError:
            pass
        self.wait_frontend_gone()
        self.assertTrue(self.d.alive())
        self.fresh_frontend_works()


# ---- control messages from the guest ------------------------------------


class GuestControl(HostileTest):
    def ctrl_rx(self):
        return self.sim.stats()["ctrl_rx"]

    def test_port_ready_and_open_for_missing_port(self):
        for event in ("PORT_READY", "PORT_OPEN"):
            self.sim.ctrl(7, event, 1)
            self.sim.ctrl(7, event, 0)
        self.sim.sleep(0.1)
        self.assert_no_device_bug()
        self.assert_port_works(self.sim, "data")

    def test_port_ready_and_open_beyond_max_ports(self):
        for pid in (31, 511, 0x7fffffff, 0xffffffff):
            for event in ("PORT_READY", "PORT_OPEN", "PORT_REMOVE"):
                self.sim.ctrl(pid, event, 1)
        self.sim.sleep(0.1)
        self.assert_no_device_bug()
        self.assert_port_works(self.sim, "data")

    def test_unknown_event(self):
        for event in (99, 0xffff, CTRL["PORT_NAME"], CTRL["PORT_ADD"],
                      CTRL["RESIZE"], CTRL["CONSOLE_PORT"]):
            self.sim.ctrl(self.nr, event, 1, b"junk")
        self.sim.sleep(0.1)
        self.assert_no_device_bug()
        self.assert_port_works(self.sim, "data")

    def test_repeated_port_ready_is_idempotent(self):
        fd = self.open("data", os.O_RDONLY)
        self.sim.wait_host(self.nr, True)
        before = self.ctrl_rx()
        for _ in range(3):
            self.sim.ctrl(self.nr, "PORT_READY", 1)
        self.sim.sleep(0.3)
        self.assertEqual(self.ctrl_rx(), before,
                         "the device answered a repeated PORT_READY "
                         "(name or open state sent again)")
        self.assertEqual(self.sim.info(self.nr)["name"], "data")
        self.assertTrue(self.sim.host(self.nr))
        self.close(fd)
        self.assert_port_works(self.sim, "data")

    def test_repeated_device_ready_restarts_the_driver_side(self):
        # As QEMU's device does: a driver that says DEVICE_READY again (a
        # reloaded module) gets every port announced again, and the ports
        # work after it readies them.
        before = self.ctrl_rx()
        self.sim.ctrl(0, "DEVICE_READY", 1)
        wait_until(lambda: self.ctrl_rx() >= before + 2, 5,
                   what="the ports to be announced again")
        self.sim.sleep(0.2)
        self.assert_no_device_bug()
        self.assert_port_works(self.sim, "data")

    def test_port_ready_0_then_port_works_after_restart(self):
        # The guest failing to set up a port must not wedge the device.
        self.sim.ctrl(self.nr, "PORT_READY", 0)
        self.sim.ctrl(0, "DEVICE_READY", 0)
        self.sim.sleep(0.1)
        self.assert_no_device_bug()
        self.fresh_frontend_works()


# ---- misbehaving frontend connections -----------------------------------


class FrontendConnections(HostileTest):
    def raw_connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.settimeout(5)
        s.connect(self.d.sock)
        return s

    def test_half_header_then_silence(self):
        self.sim.close()
        self.wait_frontend_gone()
        s = self.raw_connect()
        s.sendall(struct.pack("<I", 1)[:3] + b"\x01\x00")  # 5 of 12 bytes
        wait_until(lambda: self.daemon_sockets() == 2, 5,
                   what="vportfs to accept the connection")
        # The mount still answers, at once: guest side not open -> EOF.
        t0 = time.monotonic()
        self.assertIn("data", os.listdir(self.d.mnt))
        fd = self.open("data", os.O_RDWR)
        r = Blocked(os.read, fd, 100)
        self.assertEqual(r.wait(2), b"")
        other = self.open("other", os.O_WRONLY | os.O_NONBLOCK)
        with self.assertRaises(BlockingIOError):
            os.write(other, b"x")
        self.assertLess(time.monotonic() - t0, 2)
        self.close(fd)
        s.close()
        self.wait_frontend_gone()
        sim = self.new_sim()
        self.assert_port_works(sim, "data")

    def test_second_frontend_is_refused_first_keeps_working(self):
        s = self.raw_connect()
        try:
            s.sendall(struct.pack("<III", 1, 0x1, 0))  # GET_FEATURES
            got = s.recv(4096)
        except (BrokenPipeError, ConnectionResetError):
            got = b""  # closed before or while we wrote: refused
        except socket.timeout:
            self.fail("second frontend neither refused nor closed")
        self.assertEqual(got, b"", "second frontend got an answer")
        with self.assertRaises(SimError):
            Sim(VPORTFS_SIM, self.d.sock, connect_timeout=1).close()
        self.assert_no_device_bug()
        self.assert_port_works(self.sim, "data")
        self.assert_port_works(self.sim, "other")

    def test_frontend_disconnect_ends_blocked_cat_with_eof(self):
        self.sim.open(self.nr)
        out = os.path.join(self.d.dir, "cat.out")
        with open(out, "wb") as f:
            cat = subprocess.Popen(["cat", self.d.path("data")], stdout=f)
        self.addCleanup(lambda: cat.poll() is None and cat.kill())
        self.sim.wait_host(self.nr, True)
        self.sim.write_all(self.nr, b"hello\n")
        wait_until(lambda: os.path.getsize(out) == 6, 5,
                   what="cat to copy the guest's bytes")
        time.sleep(0.2)
        self.assertIsNone(cat.poll(), "cat should be blocked reading")
        self.sim.disconnect()
        try:
            self.assertEqual(cat.wait(5), 0)
        except subprocess.TimeoutExpired:
            self.fail("cat still blocked after the frontend went away")
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"hello\n")
        self.fresh_frontend_works()

    def test_frontend_killed_ends_blocked_read_with_eof(self):
        fd = self.open("data", os.O_RDONLY)
        self.sim.open(self.nr)
        r = Blocked(os.read, fd, 100)
        self.assertTrue(r.still_blocked())
        self.sim.kill()
        self.assertEqual(r.wait(5), b"")
        self.close(fd)
        self.wait_frontend_gone()
        sim = self.new_sim()
        self.assert_port_works(sim, "data")


class BlockedWriterAcrossRestart(HostileTest):
    """The guest posts no receive buffers, so a host writer blocks."""
    sim_args = ("--rx-bufs", "0")

    def test_blocked_writer_survives_frontend_restart(self):
        self.sim.open(self.nr)
        fd = self.open("data", os.O_WRONLY)
        data = os.urandom(1 << 20)
        w = Blocked(os.write, fd, data)
        self.assertTrue(w.still_blocked(0.5))
        self.sim.disconnect()
        self.wait_frontend_gone()
        self.assertTrue(w.still_blocked(0.5),
                        "blocked write ended when the frontend left: %r" %
                        (w.error or w.result,))
        sim = self.new_sim()
        nr = sim.wait_port("data")
        sim.wait_host(nr, True)
        self.assertTrue(w.still_blocked(0.2),
                        "write completed before the new guest opened")
        sim.open(nr)
        self.assertEqual(w.wait(5), len(data))
        got = bytearray()
        while True:
            # 'read' answers 'ok' (nothing) once no byte came in 300 ms.
            chunk = bytes.fromhex(sim.cmd("read %d 65536 300" % nr, 0.3))
            if not chunk:
                break
            got += chunk
        # What the dead VM never received is gone with it; the rest of
        # the write reaches the new one, in order.
        self.assertGreater(len(got), 0)
        self.assertEqual(bytes(got), data[len(data) - len(got):])
        self.close(fd)
        self.assert_port_works(sim, "data")

    def test_writer_made_blocking_with_fcntl_survives_restart(self):
        # Opened O_NONBLOCK to fill the buffer, then made blocking with
        # fcntl: the blocked write must keep waiting like any other.
        self.sim.open(self.nr)
        fd = self.open("data", os.O_WRONLY | os.O_NONBLOCK)
        total = 0
        with self.assertRaises(BlockingIOError):
            for _ in range(1000):
                total += os.write(fd, b"z" * 65536)
        self.assertGreater(total, 0)
        os.set_blocking(fd, True)
        w = Blocked(os.write, fd, b"tail")
        self.assertTrue(w.still_blocked())
        old_guest_got = self.sim.rx_bytes(self.nr)
        self.sim.disconnect()
        self.wait_frontend_gone()
        self.assertTrue(w.still_blocked(0.5),
                        "blocked write ended when the frontend left: %r" %
                        (w.error or w.result,))
        sim = self.new_sim()
        nr = sim.wait_port("data")
        sim.wait_host(nr, True)
        sim.open(nr)
        self.assertEqual(w.wait(5), 4)
        # What the dead VM's guest never took comes first, then the rest:
        # accepted bytes wait for the guest's next open, as in a socket.
        got = sim.readn(nr, total + 4 - old_guest_got, 10)
        self.assertEqual(got, b"z" * (total - old_guest_got) + b"tail")
        self.close(fd)
        self.assert_port_works(sim, "data")

    def test_writer_waiting_for_guest_open_survives_restart(self):
        fd = self.open("data", os.O_WRONLY)
        w = Blocked(os.write, fd, b"early")
        self.assertTrue(w.still_blocked())
        self.sim.disconnect()
        self.wait_frontend_gone()
        self.assertTrue(w.still_blocked(0.3))
        sim = self.new_sim()
        nr = sim.wait_port("data")
        sim.open(nr)
        self.assertEqual(w.wait(5), 5)
        self.assertEqual(sim.readn(nr, 5), b"early")


if __name__ == "__main__":
    unittest.main()
