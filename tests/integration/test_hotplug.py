"""Hot-plug through the directory (SPEC 4): `touch NAME` / open(O_CREAT)
adds a serial port, `rm NAME` removes it; other directory operations are
refused."""
import errno
import os
import select
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

from vpharness import Daemon, VPORTFS_SIM, poll_events, readable, wait_until  # noqa: E402
from simctl import Sim  # noqa: E402
from test_port_files import TEST_TIMEOUT, Blocked, PortTest  # noqa: E402




class HotplugTest(PortTest):
    # data takes nr 1 (0 is kept for a console); 2 and 3 stay free.
    ports = ("name=data", "name=far,nr=4")

    def touch(self, name):
        subprocess.run(["touch", self.d.path(name)], check=True,
                       stderr=subprocess.PIPE, timeout=10)

    def rm(self, name):
        subprocess.run(["rm", self.d.path(name)], check=True,
                       stderr=subprocess.PIPE, timeout=10)

    def listing(self):
        return sorted(os.listdir(self.d.mnt))

    def sim_names(self):
        return {p.nr: p.name for p in self.sim.ports()}

    def assert_errno(self, err, fn, *args):
        with self.assertRaises(OSError) as cm:
            fn(*args)
        self.assertEqual(cm.exception.errno, err,
                         "%s%r: %s" % (fn.__name__, args, cm.exception))

    def check_both_ways(self, name, nr, fd=None):
        if fd is None:
            fd = self.open(os.O_RDWR, name=name)
        self.sim.open(nr)
        self.sim.wait_host(nr, True, 2)
        self.assertEqual(os.write(fd, b"down " + name.encode()),
                         5 + len(name))
        self.assertEqual(self.sim.readn(nr, 5 + len(name)),
                         b"down " + name.encode())
        self.sim.write(nr, b"up " + name.encode())
        wait_until(lambda: readable(fd), 5, what="guest data on " + name)
        self.assertEqual(os.read(fd, 100), b"up " + name.encode())
        return fd


class Add(HotplugTest):
    def test_touch_adds_port_with_lowest_free_number(self):
        self.touch("extra")
        nr = self.sim.wait_port("extra")
        self.assertEqual(nr, 2)
        self.touch("more")
        self.assertEqual(self.sim.wait_port("more"), 3)
        self.touch("last")
        self.assertEqual(self.sim.wait_port("last"), 5)
        self.assertEqual(self.sim_names(), {1: "data", 2: "extra",
                                            3: "more", 4: "far",
                                            5: "last"})
        self.assertEqual(self.listing(), [".events", "data", "extra",
                                          "far", "last", "more"])
        self.assertEqual(os.getxattr(self.d.path("more"), "user.vport.nr"),
                         b"3")
        st = os.stat(self.d.path("extra"))
        self.assertEqual(st.st_mode, 0o100600)

    def test_touched_port_works_both_ways(self):
        self.touch("extra")
        nr = self.sim.wait_port("extra")
        self.check_both_ways("extra", nr)

    def test_open_o_creat_adds_port_and_returns_working_fd(self):
        fd = os.open(self.d.path("made"), os.O_CREAT | os.O_RDWR, 0o600)
        self.fds.append(fd)
        nr = self.sim.wait_port("made")
        self.assertEqual(nr, 2)
        self.check_both_ways("made", nr, fd)

    def test_existing_name_is_not_added_again(self):
        self.touch("data")
        fd = os.open(self.d.path("data"), os.O_CREAT | os.O_RDONLY)
        self.fds.append(fd)
        self.assert_errno(errno.EEXIST, os.open, self.d.path("data"),
                          os.O_CREAT | os.O_EXCL | os.O_RDONLY)
        self.assertEqual(sorted(self.sim_names()), [1, 4])

    def test_names_starting_with_dot_are_einval(self):
        for name in (".hidden", "..x", ".events2"):
            self.assert_errno(errno.EINVAL, os.mknod, self.d.path(name))
            self.assert_errno(errno.EINVAL, os.open, self.d.path(name),
                              os.O_CREAT | os.O_WRONLY)
            r = subprocess.run(["touch", self.d.path(name)],
                               stderr=subprocess.PIPE, text=True)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("Invalid argument", r.stderr)
        self.assertEqual(self.listing(), [".events", "data", "far"])
        self.assertEqual(sorted(self.sim_names()), [1, 4])

    def test_dot_and_dotdot_and_events_are_not_ports(self):
        # The kernel resolves these names itself or finds .events.
        self.assert_errno(errno.EEXIST, os.mknod, self.d.path(".events"))
        self.assert_errno(errno.EEXIST, os.mknod, self.d.path("."))
        self.assertEqual(sorted(self.sim_names()), [1, 4])


class Remove(HotplugTest):
    def test_rm_removes_port_from_guest_and_listing(self):
        self.touch("extra")
        nr = self.sim.wait_port("extra")
        self.rm("extra")
        self.sim.wait_gone(nr, 5)
        self.assertEqual(self.listing(), [".events", "data", "far"])
        self.assertNotIn(nr, self.sim_names())
        self.assert_errno(errno.ENOENT, os.stat, self.d.path("extra"))

    def test_rm_of_configured_port(self):
        self.rm("data")
        self.sim.wait_gone(self.nr, 5)
        self.assertEqual(self.listing(), [".events", "far"])

    def test_fd_of_removed_port_gets_enodev_and_pollhup(self):
        self.touch("extra")
        nr = self.sim.wait_port("extra")
        fd = self.open(os.O_RDWR, name="extra")
        self.sim.open(nr)
        r = Blocked(os.read, fd, 100)
        p = select.poll()
        p.register(fd, select.POLLIN)
        pl = Blocked(p.poll, 10000)
        self.assertTrue(r.still_blocked())
        self.assertTrue(pl.still_blocked(0))
        self.rm("extra")
        self.sim.wait_gone(nr, 5)
        ev = pl.wait()
        self.assertTrue(ev and ev[0][1] & select.POLLHUP)
        with self.assertRaises(OSError) as cm:
            r.wait()
        self.assertEqual(cm.exception.errno, errno.ENODEV)
        self.assert_errno(errno.ENODEV, os.read, fd, 100)
        self.assert_errno(errno.ENODEV, os.write, fd, b"x")
        self.assertTrue(poll_events(fd) & select.POLLHUP)

    def test_rm_waits_for_a_blocked_writer_then_removes_the_port(self):
        # A known FUSE limit (docs/semantics.md): the kernel holds a file's
        # inode lock for the whole of a direct write, and unlink needs it,
        # so `rm` of a port waits while a write to it is blocked (here: the
        # guest has not opened the port).  Interrupting the writer lets
        # `rm` through, and the port is then gone from the guest.
        script = ("import os, sys\n"
                  "fd = os.open(sys.argv[1], os.O_WRONLY)\n"
                  "print('open', flush=True)\n"
                  "os.write(fd, b'never')\n")
        writer = subprocess.Popen([sys.executable, "-c", script,
                                   self.d.path("data")],
                                  stdout=subprocess.PIPE, text=True)
        self.addCleanup(writer.stdout.close)
        self.addCleanup(writer.wait)
        self.addCleanup(writer.kill)
        self.assertEqual(writer.stdout.readline(), "open\n")
        self.sim.wait_host(self.nr, True, 2)
        self.sim.sleep(0.3)  # the write is parked: the guest is not open
        self.assertIsNone(writer.poll())
        rm = subprocess.Popen(["rm", self.d.path("data")],
                              stderr=subprocess.PIPE, text=True)
        self.addCleanup(rm.stderr.close)
        with self.assertRaises(subprocess.TimeoutExpired):
            rm.wait(1)
        writer.kill()  # FUSE_INTERRUPT: we answer, the lock is released
        self.assertEqual(rm.wait(10), 0, rm.stderr.read())
        self.sim.wait_gone(self.nr, 5)
        self.assertNotIn("data", os.listdir(self.d.mnt))

    def test_same_name_added_again_works_while_old_fd_says_enodev(self):
        self.touch("extra")
        nr = self.sim.wait_port("extra")
        old = self.open(os.O_RDWR, name="extra")
        self.sim.open(nr)
        self.sim.wait_host(nr, True, 2)
        self.rm("extra")
        self.sim.wait_gone(nr, 5)
        self.touch("extra")
        nr2 = self.sim.wait_port("extra")
        self.assertEqual(nr2, nr)
        new = self.check_both_ways("extra", nr2)
        self.assert_errno(errno.ENODEV, os.read, old, 100)
        self.assert_errno(errno.ENODEV, os.write, old, b"x")
        self.assertTrue(poll_events(old) & select.POLLHUP)
        # The old fd's close must not close the new port's host side.
        self.close(old)
        self.sim.sleep(0.2)
        self.assertTrue(self.sim.host(nr2))
        self.close(new)
        self.sim.wait_host(nr2, False, 2)

    def test_rm_missing_name_is_enoent(self):
        self.assert_errno(errno.ENOENT, os.unlink, self.d.path("nope"))


class Limits(HotplugTest):
    ports = ("name=data",)
    args = ("--max-ports", "4")

    def test_adding_beyond_max_ports_is_enospc(self):
        self.touch("b")
        self.assertEqual(self.sim.wait_port("b"), 2)
        self.touch("c")
        self.assertEqual(self.sim.wait_port("c"), 3)
        self.assert_errno(errno.ENOSPC, os.mknod, self.d.path("d"))
        r = subprocess.run(["touch", self.d.path("d")],
                           stderr=subprocess.PIPE, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("No space left on device", r.stderr)
        self.assertEqual(self.listing(), [".events", "b", "c", "data"])
        # A freed number is reused.
        self.rm("b")
        self.sim.wait_gone(2, 5)
        self.touch("d")
        self.assertEqual(self.sim.wait_port("d"), 2)


class FileNames(HotplugTest):
    # ".x" has no usable file name: its file is port<nr> (SPEC 4).
    ports = ("name=data", "name=.x", "console=on")

    def test_ports_without_usable_name_are_port_nr(self):
        self.sim.wait_port(".x")
        self.assertEqual(self.listing(), [".events", "data", "port0",
                                          "port2"])
        self.assertEqual(os.getxattr(self.d.path("port2"),
                                     "user.vport.name"), b".x")
        self.assertEqual(os.getxattr(self.d.path("port0"),
                                     "user.vport.name"), b"")
        self.assert_errno(errno.EEXIST, os.mknod, self.d.path("port2"))

    def test_hot_plug_name_of_removed_fallback_is_free_again(self):
        self.sim.wait_port(".x")
        self.rm("port2")
        self.sim.wait_gone(2, 5)
        self.touch("port2")
        self.assertEqual(self.sim.wait_port("port2"), 2)


class FallbackNameCollision(unittest.TestCase):
    """A port named "port2" and a port whose fallback file name is port2:
    the daemon must refuse the configuration or keep the names apart; it
    must not list two files of one name (one port unreachable)."""

    def setUp(self):
        signal.alarm(TEST_TIMEOUT)

    def tearDown(self):
        signal.alarm(0)

    def test_named_port_colliding_with_fallback_name(self):
        d = Daemon(("name=port2", "name=.x"))
        self.addCleanup(d.cleanup)
        try:
            d.start()
        except RuntimeError:
            self.assertEqual(d.proc.returncode, 2, d.read_log())
            return
        sim = Sim(VPORTFS_SIM, d.sock)
        self.addCleanup(sim.close)
        sim.wait_port(".x")
        names = os.listdir(d.mnt)
        self.assertEqual(len(names), len(set(names)),
                         "duplicate directory entries: %r" % sorted(names))
        nrs = {int(os.getxattr(os.path.join(d.mnt, n), "user.vport.nr"))
               for n in names if n != ".events"}
        self.assertEqual(nrs, {1, 2})


class DirectoryOps(HotplugTest):
    def test_mkdir_rename_link_symlink_are_eperm(self):
        self.assert_errno(errno.EPERM, os.mkdir, self.d.path("sub"))
        self.assert_errno(errno.EPERM, os.rename, self.d.path("data"),
                          self.d.path("renamed"))
        self.assert_errno(errno.EPERM, os.rename, self.d.path("data"),
                          self.d.path("far"))
        self.assert_errno(errno.EPERM, os.link, self.d.path("data"),
                          self.d.path("hard"))
        self.assert_errno(errno.EPERM, os.symlink, "data",
                          self.d.path("soft"))
        self.assertEqual(self.listing(), [".events", "data", "far"])
        self.assertEqual(sorted(self.sim_names()), [1, 4])

    def test_rm_events_is_eperm(self):
        self.assert_errno(errno.EPERM, os.unlink, self.d.path(".events"))
        r = subprocess.run(["rm", "-f", self.d.path(".events")],
                           stderr=subprocess.PIPE, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Operation not permitted", r.stderr)
        self.assertIn(".events", os.listdir(self.d.mnt))


if __name__ == "__main__":
    unittest.main()
