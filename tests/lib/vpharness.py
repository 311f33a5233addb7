"""Test harness: run a real vportfs daemon on a private temp dir.

Every daemon started here is stopped, and its mount removed, when the test
ends, when the test process exits, or when it is killed by a signal the
runner forwards (SIGTERM): nothing may stay mounted or running.
"""
import atexit
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("VPORTFS_BUILD", os.path.join(ROOT, "build"))
VPORTFS = os.path.join(BUILD, "vportfs")
VPORTFS_SIM = os.path.join(BUILD, "vportfs-sim")

_live = []


def untraceable_leak_check_off():
    """The environment for a program run under strace: LeakSanitizer
    (sanitize suite) cannot work under ptrace and fails the exit."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                           ":detect_leaks=0").lstrip(":")
    return env


def wait_until(pred, timeout=5.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out waiting for " + what)
        time.sleep(interval)


def mounted(path):
    """Is something mounted at path?  Read /proc/mounts: os.path.ismount
    says False for the mount of a FUSE daemon that died (stat fails)."""
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        for line in f:
            target = line.split()[1].replace("\\040", " ")
            if target == path:
                return True
    return False


def force_unmount(path):
    if mounted(path):
        subprocess.run(["umount", "-l", path], stderr=subprocess.DEVNULL)
    if mounted(path):
        subprocess.run(["fusermount3", "-uz", path], stderr=subprocess.DEVNULL)


def readable(fd):
    """Would a read on fd return at once?"""
    return bool(select.select([fd], [], [], 0)[0])


def poll_events(fd, timeout_ms=0):
    """The revents poll(2) reports for POLLIN|POLLOUT on fd, or 0."""
    p = select.poll()
    p.register(fd, select.POLLIN | select.POLLOUT)
    ev = p.poll(timeout_ms)
    return ev[0][1] if ev else 0


class Blocked:
    """Run fn in a thread; tell whether it is still blocked."""

    def __init__(self, fn, *args):
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(fn,) + args,
                                       daemon=True)
        self.thread.start()

    def _run(self, fn, *args):
        try:
            self.result = fn(*args)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def still_blocked(self, after=0.3):
        self.thread.join(after)
        return self.thread.is_alive()

    def wait(self, timeout=10):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError("call still blocked after %ss" % timeout)
        if self.error:
            raise self.error
        return self.result


class Daemon:
    """vportfs --socket DIR/vhost.sock [ports] DIR/mnt, in a private dir."""

    def __init__(self, ports=("name=data",), args=(), tmp_parent="/var/tmp"):
        self.dir = tempfile.mkdtemp(prefix="vportfs-test-", dir=tmp_parent)
        self.sock = os.path.join(self.dir, "vhost.sock")
        self.mnt = os.path.join(self.dir, "mnt")
        self.log = os.path.join(self.dir, "daemon.log")
        os.mkdir(self.mnt)
        self.ports = list(ports)
        self.args = list(args)
        self.proc = None

    def argv(self):
        argv = [VPORTFS, "--socket-path", self.sock]
        for p in self.ports:
            argv += ["--port", p]
        return argv + self.args + [self.mnt]

    def start(self, timeout=10.0):
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log,
                                         stderr=subprocess.STDOUT,
                                         start_new_session=True)
        _live.append(self)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("vportfs exited with %d:\n%s" %
                                   (self.proc.returncode, self.read_log()))
            return os.path.ismount(self.mnt) and os.path.exists(self.sock)
        wait_until(up, timeout, what="vportfs to mount")
        return self

    def path(self, name):
        return os.path.join(self.mnt, name)

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stop the daemon; returns its exit status (None if killed)."""
        status = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                status = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        elif self.proc is not None:
            status = self.proc.returncode
        force_unmount(self.mnt)
        if self in _live:
            _live.remove(self)
        return status

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def _cleanup_all(*_):
    for d in list(_live):
        try:
            d.cleanup()
        except Exception:
            pass


atexit.register(_cleanup_all)


def _on_term(signum, frame):
    _cleanup_all()
    raise SystemExit(128 + signum)


class TestTimeout(Exception):
    """A test's signal.alarm went off."""


def _on_alarm(signum, frame):
    # Raised in the main thread, wherever it is blocked (a read on a port
    # file returns EINTR first): the test fails and its cleanups run,
    # instead of SIGALRM's default action killing the runner and leaving
    # daemons and mounts behind.
    raise TestTimeout("test timed out (signal.alarm)")


signal.signal(signal.SIGTERM, _on_term)
signal.signal(signal.SIGALRM, _on_alarm)


def close_all(fds):
    """Closes every descriptor in the list fds, for a test's cleanup: one
    the test already closed is skipped."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def read_exact(fd, n, timeout=5.0):
    """n bytes from a port file, waiting with select (AssertionError after
    `timeout` seconds or at EOF)."""
    deadline = time.monotonic() + timeout
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("read %r, wanted %d bytes" % (buf, n))
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        try:
            chunk = os.read(fd, n - len(buf))
        except BlockingIOError:
            continue
        if not chunk:
            raise AssertionError("EOF after %r, wanted %d bytes" % (buf, n))
        buf += chunk
    return buf


def read_to_eof(fd, chunk=1 << 20):
    """Everything a blocking fd gives until EOF."""
    out = bytearray()
    while True:
        b = os.read(fd, chunk)
        if not b:
            return bytes(out)
        out += b
