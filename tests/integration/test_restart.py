"""Frontend restart (SPEC 3): when the frontend goes, the mount and the
ports stay; a new connection is a fresh device (a VM restart) served by
the same daemon."""
import errno
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

from vpharness import VPORTFS_SIM, poll_events, read_exact, readable, wait_until  # noqa: E402
from simctl import Sim, SimDisconnected, txq  # noqa: E402
from test_port_files import Blocked, PortTest  # noqa: E402




class RestartTest(PortTest):
    def frontend(self):
        return os.getxattr(self.d.mnt, "user.vport.frontend") == b"1"

    def wait_frontend(self, up):
        wait_until(lambda: self.frontend() == up, 5,
                   what="frontend %s" % ("up" if up else "down"))

    def drop_sim(self, how="disconnect"):
        if how == "disconnect":
            self.sim.disconnect()
        else:
            self.sim.kill()
        self.wait_frontend(False)

    def new_sim(self, args=()):
        self.sim = Sim(VPORTFS_SIM, self.d.sock, args)
        self.addCleanup(self.sim.close)
        self.assertEqual(self.sim.wait_port("data"), self.nr)
        return self.sim

    def assert_errno(self, err, fn, *args):
        with self.assertRaises(OSError) as cm:
            fn(*args)
        self.assertEqual(cm.exception.errno, err)


class MountStays(RestartTest):
    def test_mount_ports_and_fds_stay_when_frontend_goes(self):
        before = sorted(os.listdir(self.d.mnt))
        fd = self.open(os.O_RDWR)
        self.drop_sim()
        self.assertTrue(os.path.ismount(self.d.mnt))
        self.assertEqual(sorted(os.listdir(self.d.mnt)), before)
        self.assertEqual(os.stat(self.d.path("data")).st_mode, 0o100600)
        self.assertTrue(self.d.alive())
        # Guest side gone: EOF, POLLHUP, and writes wait.
        self.assertEqual(os.read(fd, 10), b"")
        self.assertTrue(poll_events(fd) & select.POLLHUP)
        fd2 = self.open(os.O_RDONLY)
        self.assertEqual(os.read(fd2, 10), b"")

    def test_blocked_reader_gets_eof_on_disconnect(self):
        fd = self.open(os.O_RDONLY)
        self.guest_open()
        r = Blocked(os.read, fd, 100)
        self.assertTrue(r.still_blocked())
        self.sim.disconnect()
        self.assertEqual(r.wait(), b"")

    def test_blocked_reader_gets_eof_when_sim_is_killed(self):
        fd = self.open(os.O_RDONLY)
        self.guest_open()
        r = Blocked(os.read, fd, 100)
        self.assertTrue(r.still_blocked())
        self.sim.kill()
        self.assertEqual(r.wait(), b"")

    def test_unread_guest_output_of_dead_vm_survives_it(self):
        # What the guest's write() returned for is the host's, whatever
        # becomes of the VM: a reader gets it after the VM died, before
        # what the next VM sends.
        fd = self.open(os.O_RDONLY | os.O_NONBLOCK)
        self.guest_open()
        self.guest_write(b"from the old VM")
        wait_until(lambda: readable(fd), 5)
        self.drop_sim("kill")
        self.new_sim()
        self.guest_open()
        self.guest_write(b"new")
        self.assertEqual(read_exact(fd, len(b"from the old VMnew")),
                         b"from the old VMnew")


class DaemonGoes(RestartTest):
    """The other way round: the daemon exits while the guest waits on it."""
    sim_args = ("--ctrl-timeout", "5000")

    def test_control_message_to_an_exiting_daemon_ends_disconnected(self):
        # Like UML's guest, whose spin on a control-tx buffer ends when
        # the backend's socket closes: the sim used to wait its whole
        # control deadline and call it a device bug.
        self.guest_open()
        os.kill(self.d.proc.pid, signal.SIGSTOP)  # takes no buffer back
        threading.Timer(0.3, os.kill,
                        (self.d.proc.pid, signal.SIGKILL)).start()
        start = time.monotonic()
        # Disconnected either way: while it waits (the daemon's socket
        # closes under it), or, on a slow machine where the kill comes
        # first, at once ("not connected").
        with self.assertRaises(SimDisconnected):
            self.sim.close_port(self.nr)
        self.assertLess(time.monotonic() - start, 4.0)


class BlockedWriter(RestartTest):
    def test_blocked_writer_waits_for_new_frontend(self):
        fd = self.open(os.O_WRONLY)
        w = Blocked(os.write, fd, b"survivor")  # guest not open
        self.assertTrue(w.still_blocked())
        self.drop_sim()
        self.assertTrue(w.still_blocked())
        self.new_sim(("--rx-bufs", "0"))
        self.assertTrue(w.still_blocked())  # connected, not open yet
        self.guest_open()
        self.assertEqual(w.wait(), 8)
        self.sim.sleep(0.2)
        self.assertEqual(self.guest("rx-bytes %d" % self.nr), "0")
        self.guest("rx-post %d 4 4096" % self.nr)
        self.assertEqual(self.guest_readn(8), b"survivor")

    def test_nonblocking_write_while_disconnected_is_eagain(self):
        fd = self.open(os.O_WRONLY | os.O_NONBLOCK)
        self.guest_open()
        self.assertEqual(os.write(fd, b"a"), 1)
        self.assertEqual(self.guest_readn(1), b"a")
        self.drop_sim("kill")
        with self.assertRaises(BlockingIOError):
            os.write(fd, b"b")
        self.new_sim()
        with self.assertRaises(BlockingIOError):
            os.write(fd, b"b")  # new guest has not opened the port
        self.guest_open()
        wait_until(lambda: poll_events(fd) & select.POLLOUT, 5)
        self.assertEqual(os.write(fd, b"c"), 1)
        self.assertEqual(self.guest_readn(1), b"c")

    def write_undelivered(self):
        """1000 bytes written to a guest without receive buffers."""
        fd = self.open(os.O_WRONLY)
        self.sim.close()
        self.new_sim(("--rx-bufs", "0"))
        self.guest_open()
        self.assertEqual(os.write(fd, b"x" * 1000), 1000)
        return fd

    def test_parked_fsync_waits_for_the_next_vm(self):
        fd = self.write_undelivered()
        f = Blocked(os.fsync, fd)
        self.assertTrue(f.still_blocked())
        self.sim.kill()
        # The bytes wait for the next VM's guest, and fsync with them.
        self.assertTrue(f.still_blocked(0.3))
        self.new_sim()
        self.guest_open()
        self.assertEqual(self.guest_readn(1000), b"x" * 1000)
        self.assertEqual(f.wait(), None)

    def test_parked_fsync_ends_with_eintr(self):
        fd = self.write_undelivered()
        self.sim.kill()
        # A writer that will not wait for the next VM interrupts it.
        p = subprocess.Popen([sys.executable, "-c",
                              "import os, sys; os.fsync(int(sys.argv[1]))",
                              str(fd)], pass_fds=(fd,))
        time.sleep(0.3)
        self.assertIsNone(p.poll())
        p.send_signal(signal.SIGINT)
        self.assertNotEqual(p.wait(5), 0)


class FreshDevice(RestartTest):
    ports = ("name=data", "name=org.qemu.guest_agent.0",
             "name=console0,console=on")

    def test_new_connection_announces_ports_again(self):
        subprocess.run(["touch", self.d.path("hot")], check=True)
        hot = self.sim.wait_port("hot")
        expect = sorted((p.nr, p.name, p.console) for p in self.sim.ports())
        self.assertEqual(expect, [(0, "console0", True), (1, "data", False),
                                  (2, "org.qemu.guest_agent.0", False),
                                  (3, "hot", False)])
        self.assertEqual(hot, 3)
        self.drop_sim()
        self.new_sim()
        self.sim.wait_port("hot")
        self.sim.wait_port("console0")
        self.sim.wait_port("org.qemu.guest_agent.0")
        got = sorted((p.nr, p.name, p.console) for p in self.sim.ports())
        self.assertEqual(got, expect)
        self.assertEqual(os.getxattr(self.d.mnt, "user.vport.driver_ready"),
                         b"1")
        for p in self.sim.ports():
            self.assertEqual(self.sim.info(p.nr)["adds"], "1")

    def test_hotplug_while_no_frontend_shows_in_next_vm(self):
        self.drop_sim()
        os.unlink(self.d.path("org.qemu.guest_agent.0"))
        subprocess.run(["touch", self.d.path("later")], check=True)
        self.new_sim()
        self.assertEqual(self.sim.wait_port("later"), 2)
        got = sorted((p.nr, p.name) for p in self.sim.ports())
        self.assertEqual(got, [(0, "console0"), (1, "data"), (2, "later")])

    def test_host_open_state_is_announced_to_new_guest(self):
        fd = self.open(os.O_RDONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.drop_sim()
        self.new_sim()
        self.guest("wait-host %d 1 2000" % self.nr)
        self.assertFalse(self.sim.host(2))
        self.close(fd)
        self.guest("wait-host %d 0 2000" % self.nr)

    def test_several_connect_disconnect_cycles(self):
        fd = self.open(os.O_RDWR)
        for i in range(5):
            if i:
                self.new_sim()
            self.guest("wait-host %d 1 2000" % self.nr)
            self.guest_open()
            msg = b"cycle %d" % i
            self.assertEqual(os.write(fd, msg), len(msg))
            self.assertEqual(self.guest_readn(len(msg)), msg)
            self.guest_write(msg[::-1])
            wait_until(lambda: readable(fd), 5)
            self.assertEqual(os.read(fd, 100), msg[::-1])
            self.drop_sim("kill" if i % 2 else "disconnect")
            self.assertEqual(os.read(fd, 100), b"")
        self.assertTrue(self.d.alive())
        self.new_sim()
        self.assertEqual(self.sim.bugs()[0], 0)


class SessionRestart(RestartTest):
    args = ("-o", "session")

    def test_fd_is_hung_up_for_good_when_frontend_goes(self):
        old = self.open(os.O_RDWR)
        self.guest_open()
        r = Blocked(os.read, old, 100)
        self.assertTrue(r.still_blocked())
        self.drop_sim("kill")
        self.assertEqual(r.wait(), b"")
        self.assert_errno(errno.EPIPE, os.write, old, b"x")
        self.assertEqual(poll_events(old), select.POLLIN | select.POLLHUP)
        self.close(old)
        self.new_sim()
        self.guest_open()
        new = self.open(os.O_RDWR)
        self.assertEqual(os.write(new, b"new vm"), 6)
        self.assertEqual(self.guest_readn(6), b"new vm")

    def test_old_fd_stays_hung_up_in_the_new_vm(self):
        old = self.open(os.O_RDONLY)
        self.guest_open()
        self.drop_sim()
        self.new_sim()
        self.guest_open()
        new = self.open(os.O_RDONLY)
        self.guest_write(b"vm2")
        wait_until(lambda: readable(new), 5)
        self.assertEqual(os.read(new, 100), b"vm2")
        self.assertEqual(os.read(old, 100), b"")

    def test_hung_fd_kept_open_does_not_stall_new_vm(self):
        old = self.open(os.O_RDONLY)
        self.guest_open()
        self.drop_sim("kill")
        self.assertEqual(os.read(old, 10), b"")
        # 16 x 32 KiB TX ring: a stall shows after 512 KiB.
        self.new_sim(("--queue-size", "16"))
        self.guest_open()
        new = self.open(os.O_RDONLY)
        self.guest("wait-host %d 1 2000" % self.nr)
        # The old VM's hung fd stays open meanwhile.
        self.stream_guest_to_fd(new)

    def test_blocked_writer_opened_before_any_session_waits_for_new_vm(self):
        fd = self.open(os.O_WRONLY)
        w = Blocked(os.write, fd, b"hello")
        self.assertTrue(w.still_blocked())
        self.drop_sim()
        self.assertTrue(w.still_blocked())
        self.new_sim()
        self.guest_open()
        self.assertEqual(w.wait(), 5)
        self.assertEqual(self.guest_readn(5), b"hello")



class RingPauseAndStop(PortTest):
    """Guest output leaves guest memory when it is popped: its buffer goes
    back at once, and the bytes stay readable whatever the frontend does
    with the ring afterwards (SET_VRING_ENABLE 0 and 1, GET_VRING_BASE)."""

    def vring_msg(self, req, q, num):
        payload = struct.pack("<II", q, num).hex()
        return self.sim.cmd("raw-msg %d 9 %s" % (req, payload)).split()

    def held_guest_output(self):
        fd = self.open(os.O_RDONLY)
        self.guest_open()
        self.guest("wait-host %d 1 2000" % self.nr)
        self.guest_write(b"kept over the pause")
        wait_until(lambda: readable(fd), 5)
        return fd, txq(self.nr)

    def test_data_held_over_a_ring_pause_is_delivered(self):
        fd, q = self.held_guest_output()
        self.assertEqual(self.vring_msg(18, q, 0)[2], "0" * 16)  # ack 0
        self.assertEqual(self.vring_msg(18, q, 1)[2], "0" * 16)
        self.assertEqual(os.read(fd, 100), b"kept over the pause")
        self.guest("wait-tx %d 2000" % self.nr)  # its buffer came back

    def test_guest_output_survives_get_vring_base(self):
        fd, q = self.held_guest_output()
        # Its buffer went back to the guest when it was taken, before any
        # host read.
        self.assertEqual(self.sim.queue(q)["used_idx"], "1")
        reply = self.vring_msg(11, q, 0)  # GET_VRING_BASE
        index, base = struct.unpack("<II", bytes.fromhex(reply[2]))
        self.assertEqual((index, base), (q, 1))
        self.assertEqual(os.read(fd, 100), b"kept over the pause")
        self.assertEqual(os.getxattr(self.d.path("data"),
                                     "user.vport.dropped_bytes"), b"0")


if __name__ == "__main__":
    unittest.main()
