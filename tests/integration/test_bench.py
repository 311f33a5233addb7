"""scripts/bench.sh: every row printed, with a number, its ceiling and a
ratio (issue 11).  A short run (small sizes, no UML guest: the UML row is
tests/guest/test_bench_guest.py's); no assertion on any number, since
they depend on the machine and on what else runs on it.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))

from vpharness import (BUILD, ROOT, Daemon, force_unmount,  # noqa: E402
                       untraceable_leak_check_off)

BENCH = os.path.join(ROOT, "scripts", "bench.sh")
TIMEOUT = 300

ROW = re.compile(
    r"^(?P<name>\S.*?)\s+(?P<value>-?[0-9]+(?:\.[0-9]+)?)\s+"
    r"(?P<unit>MB/s|us|KiB|bytes|ticks)\s+(?P<ceiling>\S.*?)\s+"
    r"(?P<cvalue>[0-9]+(?:\.[0-9]+)?)\s+(?P<ratio>[0-9]+\.[0-9]{3})\s+"
    r"(?P<target>>=[0-9.]+|<=[0-9.]+|=0|-)\s+(?P<result>PASS|MISS|-)\s+"
    r"(?P<how>\[[0-9]+\])$")


def pattern(n):
    """The first n bytes of the bench's stream: byte i is i % 251."""
    return (bytes(range(251)) * (n // 251 + 1))[:n]


def run_bench(sections, env_extra, timeout=TIMEOUT):
    """bench.sh's output; its processes and mounts gone afterwards."""
    tmp = tempfile.mkdtemp(prefix="vportfs-test-bench-", dir="/var/tmp")
    env = dict(os.environ, BENCH_SECTIONS=sections, BENCH_NO_BUILD="1",
               VPORTFS_BENCH_BUILD=BUILD, BENCH_TMP=tmp)
    env.update(env_extra)
    p = subprocess.Popen([BENCH], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env,
                         start_new_session=True, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM first: bench.sh's trap stops what it started.
        os.killpg(p.pid, signal.SIGTERM)
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
        raise AssertionError("bench.sh still running after %d s:\n%s\n%s" %
                             (timeout, out, err))
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        with open("/proc/mounts") as f:
            stale = [line.split()[1] for line in f
                     if line.split()[1].startswith(tmp + "/")]
        for m in stale:
            force_unmount(m)
        subprocess.run(["rm", "-rf", "--one-file-system", tmp])
    if p.returncode != 0:
        raise AssertionError("bench.sh failed (%d):\n%s\n%s" %
                             (p.returncode, out, err))
    return out, stale


def table(out):
    """{row name: match} for every line between the header and the notes;
    an AssertionError for a line that is not a complete row."""
    lines = out.splitlines()
    head = [i for i, line in enumerate(lines) if line.startswith("row ")]
    if len(head) != 1:
        raise AssertionError("no table header in:\n" + out)
    rows = {}
    for line in lines[head[0] + 1:]:
        if not line.strip():
            break
        m = ROW.match(line)
        if not m:
            raise AssertionError("not a complete row: %r\n%s" % (line, out))
        rows.setdefault(m.group("name"), []).append(m)
    return rows


class BenchCase(unittest.TestCase):
    """Checks of a table; no tests of its own (the guest suite's
    test_bench_guest.py uses it too)."""

    def check_rows(self, out, expected):
        rows = table(out)
        self.assertEqual(sorted(rows), sorted(expected), out)
        for name, ms in rows.items():
            for m in ms:
                # A row with a target says whether it met it.
                if m.group("target") != "-":
                    self.assertIn(m.group("result"), ("PASS", "MISS"),
                                  m.group(0))
                else:
                    self.assertEqual(m.group("result"), "-", m.group(0))
                self.assertIn("\n%s " % m.group("how"), out,
                              "no footnote for " + m.group(0))


class BenchTable(BenchCase):
    def test_every_row_has_a_number_a_ceiling_and_a_ratio(self):
        out, stale = run_bench("port socket rtt ports memory", {
            "BENCH_BYTES": "8M", "BENCH_RTT": "300", "BENCH_IDLE_SECS": "2",
            "BENCH_FDS": "200", "BENCH_REPEAT": "1",
            "BENCH_WARMUP": "1M"})
        self.assertEqual(stale, [], "bench.sh left mounts behind")
        self.check_rows(out, [
            "guest->host port file", "host->guest port file",
            "guest->host port file, vs a pipe",
            "host->guest port file, vs a pipe",
            "guest->host socket chardev", "host->guest socket chardev",
            "1-byte round trip, port file (med)",
            "1-byte round trip, port file (p99)",
            "... on any CPU (med)",
            "1 port guest->host, alone", "8 ports guest->host at once",
            "31 ports guest->host at once", "126 ports guest->host at once",
            "RSS idle, 1 port", "RSS idle, 127 ports",
            "RSS per port (127 vs 1)", "RSS per open file (200 fds)",
            "idle CPU, guest connected",
        ])
        rows = table(out)
        # The round trip's ceilings: null FUSE, the floor, a pipe; the
        # unpinned run's two for scale.
        self.assertEqual(
            sorted(m.group("ceiling") for m in
                   rows["1-byte round trip, port file (med)"]),
            ["null FUSE w+r + pipe (floor)", "null FUSE write+read (med)",
             "pipe round trip (med)"])
        self.assertEqual(
            sorted(m.group("ceiling") for m in
                   rows["... on any CPU (med)"]),
            ["null FUSE write+read (med)", "pipe round trip (med)"])
        # The floor is the sum of the two pinned ceilings.
        ceil = {m.group("ceiling"): float(m.group("cvalue"))
                for m in rows["1-byte round trip, port file (med)"]}
        self.assertAlmostEqual(
            ceil["null FUSE w+r + pipe (floor)"],
            ceil["null FUSE write+read (med)"] +
            ceil["pipe round trip (med)"], delta=0.11)

    def test_sections_print_only_their_rows(self):
        out, _ = run_bench("rtt", {"BENCH_RTT": "200"})
        self.check_rows(out, ["1-byte round trip, port file (med)",
                              "1-byte round trip, port file (p99)",
                              "... on any CPU (med)"])

    def test_bench_perf_profiles_each_row_it_runs(self):
        d = tempfile.mkdtemp(prefix="vportfs-test-perf-", dir="/var/tmp")
        self.addCleanup(subprocess.run, ["rm", "-rf", d])
        out, _ = run_bench("rtt", {"BENCH_RTT": "2000", "BENCH_PERF": d})
        self.check_rows(out, ["1-byte round trip, port file (med)",
                              "1-byte round trip, port file (p99)",
                              "... on any CPU (med)"])
        head = "profile of row 'rtt' (%s/rtt.data)" % d
        self.assertIn(head, out)
        # At least one entry: the share, the process, the symbol.
        after = out.split(head, 1)[1].splitlines()[1:]
        self.assertRegex(after[0] if after else "",
                         r"^\s+[0-9.]+%\s+(vportfs|vportfs-bench)\s")
        self.assertTrue(os.path.getsize(os.path.join(d, "rtt.data")) > 0)


class RoundTripCpus(unittest.TestCase):
    """The round-trip tools say on how many CPUs they may run: bench.sh
    checks that its pinned round trips ran on one."""

    BENCH = os.path.join(BUILD, "vportfs-bench")

    def cpus(self, prefix):
        p = subprocess.run(prefix + [self.BENCH, "--rtt-pipe", "--count",
                                     "20"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        m = re.search(r"\bcpus=([0-9]+)$", p.stdout.strip())
        self.assertIsNotNone(m, p.stdout)
        return int(m.group(1))

    def test_pinned_is_one_cpu(self):
        cpu = min(os.sched_getaffinity(0))
        self.assertEqual(self.cpus(["taskset", "-c", str(cpu)]), 1)

    def test_unpinned_is_every_allowed_cpu(self):
        self.assertEqual(self.cpus([]), len(os.sched_getaffinity(0)))


class CheckSkip(unittest.TestCase):
    """vportfs-bench --check --skip N: N bytes read and checked untimed
    (the guest->host rows' warm-up)."""

    def check(self, *args, data=b""):
        return subprocess.run(
            [os.path.join(BUILD, "vportfs-bench"), "--check", *args],
            input=data, capture_output=True, timeout=60)

    def test_skipped_bytes_are_not_timed(self):
        p = self.check("3000000", "--zero", "--skip", "1000000",
                       data=bytes(3000000))
        self.assertEqual(p.returncode, 0, p.stderr)
        timed = int(re.search(rb"bytes=([0-9]+)", p.stdout).group(1))
        # The clock starts at the read that reaches 1000000 bytes.
        self.assertLessEqual(timed, 2000000)
        self.assertGreater(timed, 2000000 - (1 << 20))

    def test_skipped_bytes_are_checked(self):
        data = bytearray(3000000)
        data[10] = 1
        p = self.check("3000000", "--zero", "--skip", "1000000",
                       data=bytes(data))
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"mismatch at offset 10", p.stderr)

    def test_a_non_zero_byte_is_found_at_its_offset(self):
        # Past the first 64 KiB compared at once, in the third read.
        for at in (2500001, 2 << 20):
            data = bytearray(3000000)
            data[at] = 7
            p = self.check("3000000", "--zero", data=bytes(data))
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"mismatch at offset %d\n" % at, p.stderr)

    def test_skip_must_leave_bytes_to_time(self):
        for args in (["10", "--skip", "10"], ["10", "--skip", "11"]):
            p = self.check(*args)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn(b"--skip", p.stderr)


class GenCheckBuffers(unittest.TestCase):
    """--gen writes from, and --check reads into, page-aligned buffers: on
    a FUSE file opened for direct I/O the kernel cuts a request at
    max_pages pages, so 1 MiB from a buffer 16 bytes into a page (what
    malloc gives) would be two requests, one of 16 bytes."""

    BENCH = os.path.join(BUILD, "vportfs-bench")

    def traced(self, call, args, stdin=None):
        """The buffer address of every `call` (read or write) on fd 0/1
        the tool made, from strace's raw arguments."""
        with tempfile.TemporaryDirectory(prefix="vportfs-test-") as tmp:
            log = os.path.join(tmp, "strace")
            p = subprocess.run(
                ["strace", "-o", log, "-e", "trace=" + call,
                 "-e", "raw=" + call, self.BENCH, *args],
                stdin=stdin, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, timeout=60,
                env=untraceable_leak_check_off())
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(log) as f:
                calls = re.findall(r"^%s\((0x[01]|[01]), (0x[0-9a-f]+), "
                                   % call, f.read(), re.M)
        return [int(addr, 16) for _, addr in calls]

    def test_gen_writes_start_on_a_page(self):
        addrs = self.traced("write", ["--gen", str(5 << 20 | 12345)])
        self.assertGreaterEqual(len(addrs), 6)
        self.assertEqual([a % 4096 for a in addrs], [0] * len(addrs))

    def test_check_reads_into_a_page(self):
        with tempfile.TemporaryFile() as f:
            f.write(bytes(3 << 20))
            f.seek(0)
            addrs = self.traced("read", ["--check", str(3 << 20), "--zero"],
                                stdin=f)
        self.assertGreaterEqual(len(addrs), 3)
        self.assertEqual([a % 4096 for a in addrs], [0] * len(addrs))

    def test_gen_stream_is_the_pattern_across_every_offset(self):
        # 251 writes of 4099 bytes start at every offset of the pattern.
        n = 251 * 4099
        p = subprocess.run([self.BENCH, "--gen", str(n), "--io-size",
                            "4099"], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        want = pattern(n)
        self.assertEqual(len(p.stdout), n)
        if p.stdout != want:
            self.fail("the stream differs at offset %d" %
                      next(i for i in range(n) if p.stdout[i] != want[i]))

    def test_io_size_past_the_pattern_is_refused(self):
        p = subprocess.run([self.BENCH, "--gen", "10",
                            "--io-size", str(8 << 20)],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"--io-size", p.stderr)


class GuestReceiverChecks(unittest.TestCase):
    """The h2g guest (vportfs-bench --mode h2g --verify) checks every byte
    where it lies in its 4 KiB receive buffers (sim_port_consume): a
    wrong byte is found at its stream offset, on a buffer's first byte
    as well as inside one."""

    BENCH = os.path.join(BUILD, "vportfs-bench")
    SIZE = 3 << 20

    def stream(self, bad_at=None, seg_size=None):
        """The guest's exit status, stdout and stderr after `dd` wrote
        SIZE bytes of the pattern, byte `bad_at` changed, to its port (its
        receive buffers in `seg_size`-byte segments if given).  A
        guest that stops at a wrong byte leaves the writer blocked: it is
        killed once the guest is done."""
        data = bytearray(pattern(self.SIZE))
        if bad_at is not None:
            data[bad_at] ^= 0xff
        with Daemon(ports=("name=bench",)) as d, \
                tempfile.NamedTemporaryFile(dir=d.dir) as src:
            src.write(data)
            src.flush()
            guest = subprocess.Popen(
                [self.BENCH, "--socket", d.sock, "--port", "bench",
                 "--mode", "h2g", "--bytes", str(self.SIZE), "--verify"] +
                (["--seg-size", str(seg_size)] if seg_size else []),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            writer = subprocess.Popen(
                ["dd", "if=" + src.name, "of=" + d.path("bench"), "bs=1M"],
                stderr=subprocess.DEVNULL)
            try:
                out, err = guest.communicate(timeout=60)
            finally:
                for p in (guest, writer):
                    if p.poll() is None:
                        p.kill()
                    p.wait()
        return guest.returncode, out, err

    def test_the_pattern_passes(self):
        rc, out, err = self.stream()
        self.assertEqual(rc, 0, err)
        self.assertIn(b"mode=h2g bytes=%d " % self.SIZE, out)

    def test_a_wrong_byte_inside_a_buffer_is_found(self):
        rc, _, err = self.stream(bad_at=(1 << 20) + 4096 * 7 + 123)
        self.assertNotEqual(rc, 0)
        self.assertIn(b"mismatch at offset %d\n" % ((1 << 20) + 4096 * 7
                                                     + 123), err)

    def test_a_wrong_first_byte_of_a_buffer_is_found(self):
        rc, _, err = self.stream(bad_at=4096 * 300)
        self.assertNotEqual(rc, 0)
        self.assertIn(b"mismatch at offset %d\n" % (4096 * 300), err)

    def test_buffers_in_segments_are_read_in_order(self):
        # 1000-byte segments: each run is one segment, and the next
        # starts past the segment's canary.
        rc, out, err = self.stream(seg_size=1000)
        self.assertEqual(rc, 0, err)
        self.assertIn(b"mode=h2g bytes=%d " % self.SIZE, out)
        rc, _, err = self.stream(bad_at=4096 * 5 + 2000, seg_size=1000)
        self.assertNotEqual(rc, 0)
        self.assertIn(b"mismatch at offset %d\n" % (4096 * 5 + 2000), err)


if __name__ == "__main__":
    unittest.main()
