"""Drive vportfs-sim, the simulated virtio-console guest, from Python tests.

    with Sim(SIM_BIN, sock_path) as sim:
        nr = sim.wait_port("org.test.0")
        sim.open(nr)
        sim.wait_host(nr, True)
        sim.write_all(nr, b"hello")
        assert sim.readn(nr, 5) == b"world"

Every method sends one command line and reads its one reply line with a
hard timeout (select on the pipe), so a hung daemon fails the test instead
of hanging it.  A reply "err device-bug: ..." raises DeviceBug: the daemon
broke the virtio or vhost-user spec.  Python 3.11 standard library only.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass

__all__ = [
    "Sim",
    "SimError",
    "SimTimeout",
    "DeviceBug",
    "SimDisconnected",
    "PortInfo",
    "VHOST_USER",
    "CTRL",
]

# vhost-user request numbers, for raw_msg().
VHOST_USER = {
    "GET_FEATURES": 1,
    "SET_FEATURES": 2,
    "SET_OWNER": 3,
    "RESET_OWNER": 4,
    "SET_MEM_TABLE": 5,
    "SET_VRING_NUM": 8,
    "SET_VRING_ADDR": 9,
    "SET_VRING_BASE": 10,
    "GET_VRING_BASE": 11,
    "SET_VRING_KICK": 12,
    "SET_VRING_CALL": 13,
    "SET_VRING_ERR": 14,
    "GET_PROTOCOL_FEATURES": 15,
    "SET_PROTOCOL_FEATURES": 16,
    "GET_QUEUE_NUM": 17,
    "SET_VRING_ENABLE": 18,
    "SET_BACKEND_REQ_FD": 21,
    "GET_CONFIG": 24,
    "SET_CONFIG": 25,
}

# virtio-console control events, for ctrl().
CTRL = {
    "DEVICE_READY": 0,
    "PORT_ADD": 1,
    "PORT_REMOVE": 2,
    "PORT_READY": 3,
    "CONSOLE_PORT": 4,
    "RESIZE": 5,
    "PORT_OPEN": 6,
    "PORT_NAME": 7,
}


def rxq(nr: int) -> int:
    """Receive (device -> driver) queue of port nr."""
    return 0 if nr == 0 else 2 * nr + 2


def txq(nr: int) -> int:
    """Transmit (driver -> device) queue of port nr."""
    return rxq(nr) + 1


class SimError(Exception):
    """The sim answered 'err ...' (message in .reply)."""

    def __init__(self, cmd: str, reply: str, stderr: str = ""):
        self.cmd = cmd
        self.reply = reply
        self.stderr = stderr
        shown = reply if len(reply) <= 300 else reply[:300] + f"... ({len(reply)} chars)"
        msg = f"{cmd!r} -> {shown!r}"
        if stderr:
            msg += f"\n--- vportfs-sim stderr (tail) ---\n{stderr}"
        super().__init__(msg)


class SimTimeout(SimError):
    """A wait ran out of time.  .partial holds bytes/count got so far."""

    def __init__(self, cmd: str, reply: str, stderr: str = "", partial=None):
        super().__init__(cmd, reply, stderr)
        self.partial = partial


class DeviceBug(SimError):
    """The daemon violated the virtio / vhost-user spec."""


class SimDisconnected(SimError):
    """The vhost-user connection is gone (daemon closed it, or sim died)."""


@dataclass
class PortInfo:
    nr: int
    name: str
    console: bool
    host: bool
    guest: bool


def _unescape_name(s: str) -> str:
    return urllib.parse.unquote(s, errors="surrogateescape")


def _escape_text(data: bytes) -> str:
    """bytes -> writestr TEXT (escapes everything that is not plain)."""
    out = []
    for b in data:
        c = chr(b)
        if c == "\\":
            out.append("\\\\")
        elif 0x21 <= b < 0x7F:
            out.append(c)
        elif c == " ":
            out.append("\\s")
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


class Sim:
    """A running vportfs-sim process connected to a daemon.

    binary:  path of the vportfs-sim executable.
    socket:  the daemon's vhost-user socket.
    args:    extra command-line options (e.g. ["--no-event-idx"]).
    timeout: default per-command timeout in seconds (also passed to the sim
             as --timeout); every reply read gets this plus `slack`.
    """

    def __init__(
        self,
        binary: str,
        socket: str,
        args: list[str] | tuple[str, ...] = (),
        timeout: float = 5.0,
        connect_timeout: float = 5.0,
        slack: float = 5.0,
        env: dict | None = None,
        verbose: bool = False,
        pass_fds: tuple[int, ...] = (),
    ):
        self.timeout = timeout
        self.slack = slack
        self._buf = b""
        self._stderr = tempfile.TemporaryFile(prefix="vportfs-sim-err-")
        cmd = [
            binary,
            "--socket",
            socket,
            "--timeout",
            str(int(timeout * 1000)),
            "--connect-timeout",
            str(int(connect_timeout * 1000)),
            *args,
        ]
        if verbose:
            cmd.append("--verbose")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            start_new_session=True,
            pass_fds=pass_fds,
        )
        try:
            greeting = self._read_line(connect_timeout + timeout + slack, "<connect>")
        except BaseException:
            self.close()
            raise
        if not greeting.startswith("ok ready"):
            self.close()
            raise SimError("<connect>", greeting, self.stderr_tail())
        self.ready = self._kv(greeting[len("ok ready") :])

    # ---- plumbing ------------------------------------------------------

    @staticmethod
    def _kv(s: str) -> dict[str, str]:
        out = {}
        for tok in s.split():
            k, _, v = tok.partition("=")
            out[k] = v
        return out

    def stderr_tail(self, limit: int = 4000) -> str:
        try:
            self._stderr.flush()
            size = self._stderr.seek(0, os.SEEK_END)
            self._stderr.seek(max(0, size - limit))
            return self._stderr.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""

    def _read_line(self, timeout: float, cmd: str) -> str:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SimTimeout(cmd, "no reply from vportfs-sim", self.stderr_tail())
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                rc = self.proc.poll()
                raise SimDisconnected(
                    cmd, f"vportfs-sim exited (status {rc})", self.stderr_tail()
                )
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode(errors="surrogateescape")

    def cmd(self, line: str, timeout: float | None = None) -> str:
        """Sends one command; returns the text after 'ok' ('' if none).

        Raises DeviceBug, SimTimeout ('err timeout ...'), SimDisconnected
        or SimError.  timeout (seconds) bounds the wait for the reply; give
        it when the command itself carries a longer [ms] argument.
        """
        if "\n" in line:
            raise ValueError("one command per line")
        if self.proc.poll() is not None:
            raise SimDisconnected(line, "vportfs-sim is not running", self.stderr_tail())
        try:
            self.proc.stdin.write(line.encode(errors="surrogateescape") + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise SimDisconnected(line, "vportfs-sim is gone", self.stderr_tail()) from None
        wait = (timeout if timeout is not None else self.timeout) + self.slack
        reply = self._read_line(wait, line)
        if reply == "ok":
            return ""
        if reply.startswith("ok "):
            return reply[3:]
        short = line if len(line) < 200 else line[:200] + "..."
        if reply.startswith("err device-bug"):
            raise DeviceBug(short, reply, self.stderr_tail())
        if reply.startswith("err timeout"):
            rest = reply[len("err timeout") :].strip()
            raise SimTimeout(short, reply, self.stderr_tail(), partial=rest)
        if reply.startswith("err disconnected"):
            raise SimDisconnected(short, reply, self.stderr_tail())
        raise SimError(short, reply, self.stderr_tail())

    def _t(self, timeout: float | None) -> tuple[str, float]:
        """-> (' MS' argument, seconds to wait for the reply)."""
        t = self.timeout if timeout is None else timeout
        return f" {int(t * 1000)}", t

    # ---- state ---------------------------------------------------------

    def status(self) -> dict[str, str]:
        return self._kv(self.cmd("status"))

    def state(self) -> dict[str, str]:
        return self._kv(self.cmd("state"))

    def stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in self._kv(self.cmd("stats")).items()}

    def bugs(self) -> tuple[int, str]:
        count, _, msg = self.cmd("bugs").partition(" ")
        return int(count), msg

    def bug_clear(self) -> None:
        self.cmd("bug-clear")

    def config(self) -> tuple[int, int, int]:
        cols, rows, maxp = self.cmd("config").split()
        return int(cols), int(rows), int(maxp)

    def queue(self, qidx: int) -> dict[str, str]:
        return self._kv(self.cmd(f"queue {qidx}"))

    # ---- ports ---------------------------------------------------------

    def wait_port(self, name: str, timeout: float | None = None) -> int:
        if not name or any(c in name for c in " \t\n"):
            raise ValueError("wait_port: name must be non-empty, no whitespace")
        a, t = self._t(timeout)
        return int(self.cmd(f"wait-port {name}{a}", t))

    def ports(self) -> list[PortInfo]:
        out = []
        for tok in self.cmd("ports").split():
            nr, name, *flags = tok.split(":")
            kv = dict(f.split("=", 1) for f in flags)
            out.append(
                PortInfo(
                    nr=int(nr),
                    name=_unescape_name(name),
                    console=kv.get("console") == "1",
                    host=kv.get("host") == "1",
                    guest=kv.get("guest") == "1",
                )
            )
        return out

    def info(self, nr: int) -> dict[str, str]:
        kv = self._kv(self.cmd(f"info {nr}"))
        kv["name"] = _unescape_name(kv.get("name", ""))
        return kv

    def open(self, nr: int) -> None:
        self.cmd(f"open {nr}")

    def close_port(self, nr: int) -> None:
        self.cmd(f"close {nr}")

    def host(self, nr: int) -> bool:
        return self.cmd(f"host {nr}") == "1"

    def wait_host(self, nr: int, state: bool = True, timeout: float | None = None) -> None:
        a, t = self._t(timeout)
        self.cmd(f"wait-host {nr} {int(bool(state))}{a}", t)

    def wait_gone(self, nr: int, timeout: float | None = None) -> None:
        a, t = self._t(timeout)
        self.cmd(f"wait-gone {nr}{a}", t)

    # ---- data ----------------------------------------------------------

    def write(self, nr: int, data: bytes) -> int:
        """Queues what fits in the TX ring now; returns bytes queued."""
        return int(self.cmd(f"write {nr} {data.hex() or '-'}"))

    def write_all(self, nr: int, data: bytes, timeout: float | None = None) -> int:
        """Queues everything, waiting for ring space (stall timeout)."""
        a, t = self._t(timeout)
        wait = t * (1 + len(data) // (1 << 20))
        try:
            return int(self.cmd(f"write-all {nr} {data.hex() or '-'}{a}", wait))
        except SimTimeout as e:
            e.partial = int(e.partial or 0)
            raise

    def writestr(self, nr: int, text: str | bytes) -> int:
        if isinstance(text, str):
            text = text.encode()
        return int(self.cmd(f"writestr {nr} {_escape_text(text)}"))

    def write_file(self, nr: int, path: str, timeout: float | None = None,
                   reply_timeout: float | None = None) -> int:
        """Streams a file; timeout bounds each stall, reply_timeout the
        whole command (default: generous, by file size)."""
        a, t = self._t(timeout)
        if reply_timeout is None:
            reply_timeout = t + os.path.getsize(path) / (1 << 20)
        try:
            return int(self.cmd(f"write-file {nr} {path}{a}", reply_timeout))
        except SimTimeout as e:
            e.partial = int(e.partial or 0)
            raise

    def wait_tx(self, nr: int, timeout: float | None = None) -> None:
        a, t = self._t(timeout)
        self.cmd(f"wait-tx {nr}{a}", t)

    def tx_pending(self, nr: int) -> int:
        return int(self.cmd(f"tx-pending {nr}"))

    def read(self, nr: int, maxbytes: int = 65536, timeout: float | None = None) -> bytes:
        """Waits up to timeout for >= 1 byte; b'' if none came."""
        a, t = self._t(timeout)
        return bytes.fromhex(self.cmd(f"read {nr} {maxbytes}{a}", t))

    def readn(self, nr: int, n: int, timeout: float | None = None) -> bytes:
        """Exactly n bytes; SimTimeout with .partial (bytes) otherwise."""
        a, t = self._t(timeout)
        try:
            return bytes.fromhex(self.cmd(f"readn {nr} {n}{a}", t + n / (1 << 22)))
        except SimTimeout as e:
            try:
                e.partial = bytes.fromhex(e.partial or "")
            except ValueError:
                e.partial = b""
            raise

    def read_file(self, nr: int, path: str, n: int, timeout: float | None = None,
                  reply_timeout: float | None = None) -> int:
        a, t = self._t(timeout)
        if reply_timeout is None:
            reply_timeout = t + n / (1 << 20)
        try:
            return int(self.cmd(f"read-file {nr} {path} {n}{a}", reply_timeout))
        except SimTimeout as e:
            e.partial = int(e.partial or 0)
            raise

    def rx_withhold(self, nr: int, withhold: bool = True) -> None:
        self.cmd(f"rx-withhold {nr} {int(bool(withhold))}")

    def tx_withhold_kick(self, nr: int, withhold: bool = True) -> None:
        """Publish TX chains of port nr without kicking (True), or kick
        for them now (False)."""
        self.cmd(f"tx-withhold-kick {nr} {int(withhold)}")

    def tx_scribble(self, nr: int, byte: int) -> int:
        """The guest frees its posted TX buffers of port nr, without
        telling the device, and reuses the memory.  Returns how many."""
        return int(self.cmd(f"tx-scribble {nr} {byte}"))

    def rx_post(self, nr: int, count: int, size: int) -> int:
        return int(self.cmd(f"rx-post {nr} {count} {size}"))

    def rx_avail(self, nr: int) -> int:
        return int(self.cmd(f"rx-avail {nr}"))

    def rx_bytes(self, nr: int) -> int:
        return int(self.cmd(f"rx-bytes {nr}"))

    # ---- fault injection -----------------------------------------------

    def ctrl(self, port_id: int, event: int | str, value: int, extra: bytes = b"") -> None:
        ev = event if isinstance(event, int) else CTRL[event]
        tail = f" {extra.hex()}" if extra else ""
        self.cmd(f"ctrl {port_id} {ev} {value}{tail}")

    def raw_msg(
        self,
        request: int | str,
        flags: int = 0x1,
        payload: bytes = b"",
        size: int | None = None,
        fds: list[str] | tuple[str, ...] = (),
        timeout: float | None = None,
    ) -> tuple[int, int, bytes] | None:
        """Sends any vhost-user message.  Returns (request, flags, payload)
        of the reply, or None if none came.  fds: 'eventfd', 'devnull',
        'memfd:SIZE', 'sock'."""
        req = request if isinstance(request, int) else VHOST_USER[request]
        line = f"raw-msg {req} {flags} {payload.hex() or '-'}"
        if size is not None:
            line += f" size={size}"
        for f in fds:
            line += f" fd={f}"
        t = self.timeout
        if timeout is not None:
            line += f" timeout={int(timeout * 1000)}"
            t = timeout
        reply = self.cmd(line, t)
        if reply == "noreply":
            return None
        parts = reply.split(" ")
        data = bytes.fromhex(parts[2]) if len(parts) > 2 else b""
        return int(parts[0]), int(parts[1], 16), data

    def raw_desc(self, qidx: int, descs: str, *opts: str) -> int:
        """Posts a hand-made chain (see vportfs-sim --help for the DESC
        syntax; opts: 'indirect', 'ring-addr=A', ...).  Returns the head."""
        extra = (" " + " ".join(opts)) if opts else ""
        return int(self.cmd(f"raw-desc {qidx}{extra} {descs}"))

    def raw_head(self, qidx: int, head: int) -> None:
        self.cmd(f"raw-head {qidx} {head}")

    def raw_avail_idx(self, qidx: int, idx: int) -> None:
        self.cmd(f"raw-avail-idx {qidx} {idx}")

    def raw_used(self, qidx: int, timeout: float | None = None) -> tuple[int, int]:
        a, t = self._t(timeout)
        head, length = self.cmd(f"raw-used {qidx}{a}", t).split()
        return int(head), int(length)

    def kick(self, qidx: int) -> None:
        self.cmd(f"kick {qidx}")

    def flood(self, qidx: int) -> None:
        """A sim thread keeps qidx full of chains the device must refuse,
        re-posting each one as soon as it comes back (see sim.h)."""
        self.cmd(f"flood {qidx}")

    def flood_stop(self) -> int:
        """Stops the flood; returns how many chains it posted."""
        return int(self.cmd("flood-stop"))

    def emerg(self, text: bytes) -> int:
        return int(self.cmd(f"emerg {_escape_text(text)}"))

    def sleep(self, seconds: float) -> None:
        self.cmd(f"sleep {int(seconds * 1000)}", seconds)

    def disconnect(self) -> None:
        self.cmd("disconnect")

    # ---- lifetime ------------------------------------------------------

    def close(self) -> None:
        """Asks the sim to quit, then kills it if it does not."""
        proc = self.proc
        if proc.poll() is None:
            try:
                proc.stdin.write(b"quit\n")
                proc.stdin.flush()
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self._stderr.close()

    def kill(self) -> None:
        """SIGKILL at once: the VM dies without a word."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> "Sim":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
