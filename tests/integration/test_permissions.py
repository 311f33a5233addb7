"""Ownership and access (SPEC 4): files belong to the mounting user, mode
0600; `-o allow_other`, `default_permissions`, `uid=`, `gid=`, `mode=` as
FUSE users expect.  Access by another user is tried from a child process
running as nobody (65534)."""
import errno
import json
import os
import select
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

from test_port_files import PortTest  # noqa: E402

NOBODY = 65534

# Runs as nobody: performs the steps named on the command line and prints
# one JSON object per step, {"step": ..., "ok": value} or {"errno": N}.
CHILD = r"""
import json, os, signal, sys
signal.alarm(15)
mnt = sys.argv[1]
fd = None
for step in sys.argv[2:]:
    res = {"step": step}
    try:
        if step == "stat-root":
            res["ok"] = os.stat(mnt).st_mode
        elif step == "listdir":
            res["ok"] = sorted(os.listdir(mnt))
        elif step == "stat-data":
            st = os.stat(os.path.join(mnt, "data"))
            res["ok"] = [st.st_uid, st.st_gid, st.st_mode]
        elif step.startswith("open-"):
            flags = {"open-r": os.O_RDONLY, "open-w": os.O_WRONLY,
                     "open-rw": os.O_RDWR}[step]
            fd = os.open(os.path.join(mnt, "data"), flags)
            res["ok"] = True
        elif step == "write":
            res["ok"] = os.write(fd, b"from nobody")
        elif step == "read":
            res["ok"] = os.read(fd, 100).decode()
        elif step == "events":
            os.close(os.open(os.path.join(mnt, ".events"), os.O_RDONLY))
            res["ok"] = True
        elif step == "touch":
            os.close(os.open(os.path.join(mnt, "newport"),
                             os.O_CREAT | os.O_WRONLY))
            res["ok"] = True
    except OSError as e:
        res["errno"] = e.errno
    print(json.dumps(res), flush=True)
"""


def world_executable(path):
    """Can any user run path (every directory on the way searchable)?"""
    path = os.path.realpath(path)
    try:
        if not os.stat(path).st_mode & 0o001:
            return False
        d = os.path.dirname(path)
        while d != "/":
            if not os.stat(d).st_mode & 0o001:
                return False
            d = os.path.dirname(d)
    except OSError:
        return False
    return True


# The test's own interpreter may live where nobody cannot reach it
# (e.g. under /root/.pyenv).
PYTHON = next((p for p in (sys.executable, "/usr/bin/python3",
                           "/usr/local/bin/python3")
               if world_executable(p)), sys.executable)


def as_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


class PermTest(PortTest):
    def setUp(self):
        super().setUp()
        # The daemon's dir is made by mkdtemp (0700): let nobody reach the
        # mount point.
        os.chmod(self.d.dir, 0o755)

    def nobody(self, *steps, feed=None):
        """Run steps as nobody; returns {step: result}.  feed(result), if
        given, is called with each step's result as soon as it comes, while
        the child waits in its next step."""
        proc = subprocess.Popen([PYTHON, "-c", CHILD, self.d.mnt, *steps],
                                stdout=subprocess.PIPE, cwd="/",
                                preexec_fn=as_nobody)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        self.addCleanup(proc.stdout.close)
        fd = proc.stdout.fileno()
        buf = b""
        out = {}
        for _ in steps:
            while b"\n" not in buf:
                r, _, _ = select.select([fd], [], [], 10)
                self.assertTrue(r, "child as nobody is stuck after %r" % out)
                chunk = os.read(fd, 65536)
                self.assertTrue(chunk, "child as nobody died after %r" % out)
                buf += chunk
            line, _, buf = buf.partition(b"\n")
            res = json.loads(line)
            out[res.pop("step")] = res
            if feed:
                feed(res)
        self.assertEqual(proc.wait(10), 0)
        return out

    def stat(self, name):
        st = os.stat(self.d.path(name))
        return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


class Defaults(PermTest):
    def test_files_belong_to_mounting_user_mode_0600(self):
        me = (os.getuid(), os.getgid())
        self.assertEqual(self.stat("data"), me + (0o600,))
        self.assertEqual(self.stat("org.qemu.guest_agent.0"), me + (0o600,))
        self.assertEqual(self.stat(".events"), me + (0o400,))
        root = os.stat(self.d.mnt)
        self.assertEqual((root.st_uid, root.st_gid), me)
        self.assertTrue(stat.S_ISDIR(root.st_mode))
        self.assertTrue(stat.S_ISREG(os.stat(self.d.path("data")).st_mode))

    def test_chmod_and_chown_are_refused(self):
        with self.assertRaises(OSError) as cm:
            os.chmod(self.d.path("data"), 0o666)
        self.assertEqual(cm.exception.errno, errno.EPERM)
        with self.assertRaises(OSError) as cm:
            os.chown(self.d.path("data"), NOBODY, NOBODY)
        self.assertEqual(cm.exception.errno, errno.EPERM)
        self.assertEqual(self.stat("data")[2], 0o600)

    def test_other_user_cannot_reach_mount_without_allow_other(self):
        res = self.nobody("stat-root", "listdir", "stat-data", "open-r",
                          "events")
        for step in ("stat-root", "listdir", "stat-data", "open-r",
                     "events"):
            self.assertEqual(res[step], {"errno": errno.EACCES}, step)


class ModeUidGid(PermTest):
    args = ("-o", "mode=0640,uid=1234,gid=5678")

    def test_stat_shows_options(self):
        self.assertEqual(self.stat("data"), (1234, 5678, 0o640))
        self.assertEqual(self.stat("org.qemu.guest_agent.0"),
                         (1234, 5678, 0o640))
        self.assertEqual(self.stat(".events"), (1234, 5678, 0o440))
        root = os.stat(self.d.mnt)
        self.assertEqual((root.st_uid, root.st_gid), (1234, 5678))

    def test_hot_plugged_port_gets_same_attributes(self):
        subprocess.run(["touch", self.d.path("hot")], check=True)
        self.assertEqual(self.stat("hot"), (1234, 5678, 0o640))


class AllowOtherOwnedByNobody(PermTest):
    args = ("-o", "allow_other,default_permissions,uid=%d,gid=%d"
            % (NOBODY, NOBODY))

    def test_owner_reads_and_writes_port(self):
        self.guest_open()

        def feed(res):
            if "ok" in res and res["ok"] == len(b"from nobody"):
                self.assertEqual(self.guest_readn(11), b"from nobody")
                self.guest_write(b"to nobody")
        res = self.nobody("stat-data", "open-rw", "write", "read",
                          feed=feed)
        self.assertEqual(res["stat-data"]["ok"],
                         [NOBODY, NOBODY, stat.S_IFREG | 0o600])
        self.assertEqual(res["open-rw"], {"ok": True})
        self.assertEqual(res["write"], {"ok": 11})
        self.assertEqual(res["read"], {"ok": "to nobody"})

    def test_owner_reads_events(self):
        self.assertEqual(self.nobody("events")["events"], {"ok": True})


class AllowOtherOwnedByRoot(PermTest):
    args = ("-o", "allow_other,default_permissions")

    def test_other_user_sees_files_but_gets_eacces_on_open(self):
        res = self.nobody("stat-root", "listdir", "stat-data", "open-r",
                          "open-w", "open-rw", "events")
        self.assertEqual(res["listdir"]["ok"],
                         [".events", "data", "org.qemu.guest_agent.0"])
        self.assertEqual(res["stat-data"]["ok"],
                         [0, 0, stat.S_IFREG | 0o600])
        for step in ("open-r", "open-w", "open-rw", "events"):
            self.assertEqual(res[step], {"errno": errno.EACCES}, step)
        self.assertFalse(self.host_connected())
        # The owner still can.
        fd = self.open(os.O_RDWR)
        self.guest("wait-host %d 1 2000" % self.nr)
        self.assertGreaterEqual(fd, 0)

    def test_other_user_cannot_hot_plug(self):
        res = self.nobody("touch")
        self.assertEqual(res["touch"], {"errno": errno.EACCES})
        self.assertNotIn("newport", os.listdir(self.d.mnt))


if __name__ == "__main__":
    unittest.main()
