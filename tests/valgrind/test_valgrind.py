"""One scenario under valgrind: the daemon, a simulated guest, a round trip
through a port file and through a chardev, a hot-plug, then SIGTERM.  The
daemon must end with no invalid access and nothing definitely lost
(memcheck), as the ASan suite checks the rest.  Not in tests/integration:
the sanitize suite runs that on an ASan build, which valgrind cannot run."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..",
                                "integration"))

from vpharness import (VPORTFS, VPORTFS_SIM, force_unmount,  # noqa: E402
                       mounted, read_exact, wait_until)
from simctl import Sim  # noqa: E402

VALGRIND = shutil.which("valgrind")


class Memcheck(unittest.TestCase):
    def test_round_trips_hotplug_and_shutdown_are_clean(self):
        self.assertIsNotNone(VALGRIND, "valgrind is not installed")
        d = tempfile.mkdtemp(prefix="vportfs-vg-", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, d, True)
        mnt, sock = os.path.join(d, "mnt"), os.path.join(d, "vhost.sock")
        csock, log = os.path.join(d, "c.sock"), os.path.join(d, "vg.log")
        os.mkdir(mnt)
        self.addCleanup(force_unmount, mnt)
        proc = subprocess.Popen(
            [VALGRIND, "--leak-check=full", "--errors-for-leak-kinds=definite",
             "--error-exitcode=99", "--log-file=" + log, VPORTFS,
             "--socket", sock, "--port", "name=data",
             "--chardev", "socket,id=c,path=%s,server=on,wait=off" % csock,
             "--port", "name=agent,chardev=c", mnt],
            stderr=subprocess.DEVNULL, start_new_session=True)

        def kill():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.addCleanup(kill)
        wait_until(lambda: mounted(mnt) and os.path.exists(sock), 60,
                   what="vportfs under valgrind to mount")
        with Sim(VPORTFS_SIM, sock, timeout=30, connect_timeout=30) as sim:
            nr = sim.wait_port("data", 30)
            sim.open(nr)
            fd = os.open(os.path.join(mnt, "data"), os.O_RDWR)
            try:
                sim.wait_host(nr, True, 30)
                os.write(fd, b"down")
                self.assertEqual(sim.readn(nr, 4, 30), b"down")
                sim.write_all(nr, b"up", 30)
                self.assertEqual(read_exact(fd, 2, 30), b"up")
            finally:
                os.close(fd)
            agent = sim.wait_port("agent", 30)
            sim.open(agent)
            c = socket.socket(socket.AF_UNIX)
            self.addCleanup(c.close)
            c.connect(csock)
            c.sendall(b"ping")
            self.assertEqual(sim.readn(agent, 4, 30), b"ping")
            open(os.path.join(mnt, "hot"), "w").close()
            sim.wait_port("hot", 30)
            os.unlink(os.path.join(mnt, "hot"))
            c.close()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        with open(log, errors="replace") as f:
            report = f.read()
        self.assertEqual(rc, 0, report[-4000:])
        self.assertIn("ERROR SUMMARY: 0 errors", report, report[-4000:])
        self.assertIn("Memcheck", report)  # it did run under valgrind
        self.assertFalse(mounted(mnt))


if __name__ == "__main__":
    unittest.main()
