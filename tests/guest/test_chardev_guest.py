"""Chardevs with a real guest: seed 000's flow-control scenarios on named
pipes and sockets, and seed 004's console with several sinks and a single
source (docs/chardev.md).

  1. a named pipe nobody reads: the guest's `cat /proc/kallsyms` to it
     waits, the guest keeps running and another port keeps flowing; when a
     host reader opens the pipe everything arrives, sha256 identical
  2. a socket server (wait=off): a host client connects, disconnects and
     connects again; what the guest writes after the reconnect arrives
     (seed 000's "restart netcat" bug)
  3. a socket client with reconnect-ms: its server appears after the guest
     started writing, and nothing is lost
  4. one console port with a rotating log, a socket client and the port
     file: all get the same bytes, only the source types into the guest
"""
import errno
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from test_guest import sha256_file  # noqa: E402
from test_scenarios import ScenarioTest, read_file  # noqa: E402
from vpharness import Daemon, wait_until  # noqa: E402


class Collector:
    """Read a connected socket (or an fd) to EOF on a thread, into a
    file."""

    def __init__(self, sock, path):
        self.sock = sock
        self.path = path
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        with open(self.path, "wb") as f:
            while True:
                try:
                    b = self.sock.recv(1 << 16)
                except OSError:
                    return
                if not b:
                    return
                f.write(b)
                f.flush()

    def size(self):
        try:
            return os.path.getsize(self.path)
        except FileNotFoundError:
            return 0


class ChardevGuestTest(ScenarioTest):
    """A daemon whose --chardev options name files in its own directory:
    `chardevs` is a list of specs with {dir} in them."""
    chardevs = ()

    def setUp(self):
        # ScenarioTest.setUp starts a plain daemon: start ours instead.
        self.d = None
        super().setUp()

    def start_daemon(self, ports, chardevs, before=None):
        if self.d is not None:
            self.d.cleanup()
        d = Daemon(ports)
        self.addCleanup(d.cleanup)
        d.args = []
        for spec in chardevs:
            d.args += ["--chardev", spec.format(dir=d.dir)]
        if before:
            before(d.dir)
        d.start()
        self.d = d
        return d


class PipeNobodyReads(ChardevGuestTest):
    def test_kallsyms_waits_in_the_pipe_and_arrives_whole(self):
        def fifos(dirname):
            os.mkfifo(os.path.join(dirname, "data.in"))
            os.mkfifo(os.path.join(dirname, "data.out"))
        # More than the pipe, the port's ring and the guest's ring hold
        # (the guest's TX ring takes up to one 32 KiB buffer per entry):
        # eight copies of kallsyms, about 9 MB.
        d = self.start_daemon(("name=data,chardev=p,ring-size=64K",
                               "name=flow"),
                              ("pipe,id=p,path={dir}/data",), fifos)
        g = self.boot('''
for i in 1 2 3 4 5 6 7 8; do cat /proc/kallsyms; done > "$W/guest.bin"
(while :; do date >> "$W/dates"; sleep 1; done) &
ticker=$!
(for i in $(seq 1 400); do echo "flow $i"; sleep 0.01; done) > "$P/flow" &
flag started
cat "$W/guest.bin" > "$P/data"
flag written
wait %2
kill $ticker
''')
        g.await_flag("started")
        # The guest's cat fills the pipe, the port's ring, then the
        # guest's ring, and waits there: the rest of the guest goes on.
        want = "".join("flow %d\n" % i for i in range(1, 401)).encode()
        # EOF while the guest has not opened its end yet: read on.
        deadline = time.monotonic() + 60
        with open(d.path("flow"), "rb", buffering=0) as f:
            got = b""
            while len(got) < len(want) and time.monotonic() < deadline:
                b = f.read(1 << 16)
                if not b:
                    time.sleep(0.05)
                got += b
        self.assertEqual(got, want, self.diag(g, "data"))
        wait_until(lambda: len(read_file(os.path.join(d.dir, "dates"))
                               .splitlines()) >= 3, 20,
                   what="the guest's date loop to keep running")
        self.assertFalse(os.path.exists(os.path.join(d.dir, "written")),
                         "nobody read the pipe, yet the guest's cat ended" +
                         self.diag(g, "data"))
        out = os.path.join(d.dir, "host.out")
        guest_bin = os.path.join(d.dir, "guest.bin")
        size = os.path.getsize(guest_bin)
        with open(os.path.join(d.dir, "data.out"), "rb") as src, \
                open(out, "wb") as dst:
            left = size
            while left:
                b = src.read(min(left, 1 << 16))
                self.assertTrue(b, "pipe ended early")
                dst.write(b)
                left -= len(b)
        g.await_flag("written", 60)
        self.assertGuestOk(g)
        self.assertGreater(size, 4 << 20)
        self.assertEqual(sha256_file(out), sha256_file(guest_bin),
                         self.diag(g, "data"))


class SocketServerReconnect(ChardevGuestTest):
    def test_what_the_guest_writes_after_a_reconnect_arrives(self):
        d = self.start_daemon(
            ("name=data,chardev=s",),
            ("socket,id=s,path={dir}/s.sock,server=on,wait=off",))
        path = os.path.join(d.dir, "s.sock")
        g = self.boot('''
await c1
echo one > "$P/data"
flag wrote1
await c2
echo two > "$P/data"
flag wrote2
''')
        c1 = socket.socket(socket.AF_UNIX)
        c1.settimeout(30)
        c1.connect(path)
        g.flag("c1")
        self.assertEqual(c1.recv(100), b"one\n", self.diag(g, "data"))
        g.await_flag("wrote1")
        c1.close()
        # The netcat of seed 000, restarted.
        wait_until(lambda: os.getxattr(d.path("data"),
                                       "user.vport.host_connected") == b"0",
                   10, what="the port to close on the host side")
        c2 = socket.socket(socket.AF_UNIX)
        c2.settimeout(30)
        c2.connect(path)
        g.flag("c2")
        self.assertEqual(c2.recv(100), b"two\n", self.diag(g, "data"))
        c2.close()
        self.assertGuestOk(g)


class SocketClientLateServer(ChardevGuestTest):
    def test_server_that_appears_late_gets_everything(self):
        d = self.start_daemon(
            ("name=data,chardev=c",),
            ("socket,id=c,path={dir}/late.sock,reconnect-ms=100",))
        path = os.path.join(d.dir, "late.sock")
        g = self.boot('''
sha256sum /proc/kallsyms | cut -d' ' -f1 > "$W/sum"
flag writing
cat /proc/kallsyms > "$P/data"
flag written
''')
        g.await_flag("writing")
        time.sleep(2)  # the guest's write waits for a host side
        srv = socket.socket(socket.AF_UNIX)
        self.addCleanup(srv.close)
        srv.bind(path)
        srv.listen(1)
        srv.settimeout(30)
        conn, _ = srv.accept()
        self.addCleanup(conn.close)
        out = os.path.join(d.dir, "host.out")
        col = Collector(conn, out)
        g.await_flag("written", 60)
        self.assertGuestOk(g)
        want = g.read("sum").strip()
        wait_until(lambda: col.size() > 100000 and sha256_file(out) == want,
                   20, what="all of kallsyms through the late server")


class ConsoleSinksSingleSource(ChardevGuestTest):
    """Seed 004: "multiple data sinks, a single source"."""

    def test_log_socket_and_file_get_the_same_bytes_one_types(self):
        d = self.start_daemon(
            ("name=console0,console=on,chardev=clog,chardev=net",),
            ("log,id=clog,path={dir}/console.log,max-size=4K,max-backups=2",
             "socket,id=net,path={dir}/con.sock,server=on,wait=off"))
        log = os.path.join(d.dir, "console.log")
        fd = os.open(d.path("console0"), os.O_RDONLY)
        self.addCleanup(os.close, fd)
        cli = socket.socket(socket.AF_UNIX)
        self.addCleanup(cli.close)
        cli.connect(os.path.join(d.dir, "con.sock"))
        sock_out = os.path.join(d.dir, "sock.out")
        col = Collector(cli, sock_out)
        # hvc0 stays open throughout, so that its raw mode stays.
        g = self.boot('''
exec 4<>/dev/hvc0
stty raw -echo <&4
for i in $(seq 1 600); do echo "console line $i"; done >&4
flag written
head -n 1 <&4 > "$W/typed"
''')
        g.await_flag("written", 60)
        # The port file reads what the socket and the log got.
        file_out = bytearray()
        total = sum(len("console line %d\n" % i) for i in range(1, 601))

        def read_some():
            try:
                os.set_blocking(fd, False)
                file_out.extend(os.read(fd, 1 << 20))
            except BlockingIOError:
                pass
            return len(file_out) >= total
        wait_until(read_some, 20, what="the port file's copy")
        wait_until(lambda: col.size() >= total, 20, what="the socket's copy")
        with open(sock_out, "rb") as f:
            sock_bytes = f.read()
        logs = b""
        for name in ("console.log.2", "console.log.1", "console.log"):
            p = os.path.join(d.dir, name)
            self.assertLessEqual(os.path.getsize(p), 4096, name)
            with open(p, "rb") as f:
                logs += f.read()
        self.assertFalse(os.path.exists(log + ".3"))
        self.assertEqual(bytes(file_out), sock_bytes)
        # Older rotations are gone: the logs hold the newest bytes.
        self.assertTrue(sock_bytes.endswith(logs) and len(logs) > 8192,
                        "%d log bytes" % len(logs))
        # The socket client is the only source (the port file is
        # read-only): it types, and a writer is refused meanwhile.
        with self.assertRaises(OSError) as cm:
            os.open(d.path("console0"), os.O_WRONLY)
        self.assertEqual(cm.exception.errno, errno.EBUSY)
        cli.sendall(b"typed by the socket\n")
        self.assertGuestOk(g)
        self.assertEqual(g.read("typed"), "typed by the socket\n")
