"""Extended attributes (SPEC 4), through the getfattr/setfattr tools.

On a port: user.vport.nr, .name, .console, .guest_connected,
.host_connected, .rx_bytes, .tx_bytes, .dropped_bytes.  On the mount root:
user.vport.frontend, .driver_ready, .max_ports, .features.
"""
import ctypes
import errno
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))

from vpharness import readable, wait_until  # noqa: E402
from test_port_files import PortTest  # noqa: E402

PORT_ATTRS = ["console", "dropped_bytes", "guest_connected",
              "host_connected", "name", "nr", "rx_bytes", "tx_bytes"]
ROOT_ATTRS = ["driver_ready", "features", "frontend", "max_ports", "orphan_bytes"]

VIRTIO_CONSOLE_F_MULTIPORT = 1 << 1
VIRTIO_F_VERSION_1 = 1 << 32
VHOST_USER_F_PROTOCOL_FEATURES = 1 << 30



class XattrTest(PortTest):
    ports = ("name=data", "name=console0,console=on")

    def target(self, name):
        return self.d.mnt if name is None else self.d.path(name)

    def getfattr(self, name, attr):
        """Value via getfattr; raises AssertionError with its stderr."""
        r = subprocess.run(["getfattr", "--absolute-names", "--only-values",
                            "-n", "user.vport." + attr, self.target(name)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def getfattr_fails(self, name, attr):
        r = subprocess.run(["getfattr", "--absolute-names", "-n", attr,
                            self.target(name)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        self.assertNotEqual(r.returncode, 0)
        return r.stderr

    def dump(self, name):
        r = subprocess.run(["getfattr", "--absolute-names", "-d", "-m",
                            "user.vport", self.target(name)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = {}
        for line in r.stdout.splitlines():
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition("=")
            self.assertTrue(value.startswith('"') and value.endswith('"'),
                            line)
            out[key] = value[1:-1]
        return out

    def wait_attr(self, name, attr, value):
        wait_until(lambda: self.getfattr(name, attr) == value, 5,
                   what="user.vport.%s == %s" % (attr, value))


class PortAttributes(XattrTest):
    def test_initial_values(self):
        self.assertEqual(self.dump("data"), {
            "user.vport.nr": str(self.nr),
            "user.vport.name": "data",
            "user.vport.console": "0",
            "user.vport.guest_connected": "0",
            "user.vport.host_connected": "0",
            "user.vport.rx_bytes": "0",
            "user.vport.tx_bytes": "0",
            "user.vport.dropped_bytes": "0",
        })

    def test_console_port_values(self):
        self.assertEqual(self.getfattr("console0", "nr"), "0")
        self.assertEqual(self.getfattr("console0", "name"), "console0")
        self.assertEqual(self.getfattr("console0", "console"), "1")
        # A console is open in the guest from the start (hvc).
        self.assertEqual(self.getfattr("console0", "guest_connected"), "1")
        names = set(self.dump("console0"))
        self.assertEqual(names, {"user.vport." + a for a in PORT_ATTRS} |
                         {"user.vport.winsize"})

    def test_values_follow_opens_and_data(self):
        fd = self.open(os.O_RDWR)
        self.wait_attr("data", "host_connected", "1")
        self.assertEqual(self.getfattr("data", "guest_connected"), "0")
        self.guest_open()
        self.wait_attr("data", "guest_connected", "1")
        self.guest_write(b"12345")
        wait_until(lambda: readable(fd), 5)
        self.assertEqual(self.getfattr("data", "rx_bytes"), "5")
        self.assertEqual(os.read(fd, 100), b"12345")
        self.assertEqual(os.write(fd, b"abcdefg"), 7)
        self.assertEqual(self.guest_readn(7), b"abcdefg")
        self.assertEqual(self.getfattr("data", "tx_bytes"), "7")
        self.guest_write(b"x" * 1000)
        wait_until(lambda: readable(fd), 5)
        self.assertEqual(self.getfattr("data", "rx_bytes"), "1005")
        self.guest("close %d" % self.nr)
        self.wait_attr("data", "guest_connected", "0")
        self.assertEqual(self.getfattr("data", "host_connected"), "1")
        self.close(fd)
        self.wait_attr("data", "host_connected", "0")
        # The 1000 bytes were offered (poll said readable) and left unread:
        # discarded at the last close, and counted.
        self.assertEqual(self.getfattr("data", "dropped_bytes"), "1000")
        self.assertEqual(self.getfattr("data", "tx_bytes"), "7")

    def test_listxattr_lists_port_attributes(self):
        self.assertEqual(sorted(os.listxattr(self.d.path("data"))),
                         ["user.vport." + a for a in PORT_ATTRS])
        self.assertEqual(sorted(self.dump("data")),
                         ["user.vport." + a for a in PORT_ATTRS])


class RootAttributes(XattrTest):
    def test_values_with_frontend_connected(self):
        attrs = self.dump(None)
        self.assertEqual(sorted(attrs),
                         ["user.vport." + a for a in ROOT_ATTRS])
        self.assertEqual(attrs["user.vport.frontend"], "1")
        self.assertEqual(attrs["user.vport.driver_ready"], "1")
        self.assertEqual(attrs["user.vport.max_ports"], "31")
        self.assertEqual(attrs["user.vport.orphan_bytes"], "0")
        feats = attrs["user.vport.features"]
        self.assertTrue(feats.startswith("0x"), feats)
        value = int(feats, 16)
        self.assertTrue(value & VIRTIO_CONSOLE_F_MULTIPORT, feats)
        self.assertTrue(value & VIRTIO_F_VERSION_1, feats)
        # What the guest acked, less the vhost-user transport bit.
        acked = int(self.sim.state()["acked_features"], 16)
        self.assertEqual(value, acked & ~VHOST_USER_F_PROTOCOL_FEATURES)

    def test_values_after_frontend_disconnects(self):
        self.sim.disconnect()
        self.wait_attr(None, "frontend", "0")
        self.assertEqual(self.getfattr(None, "driver_ready"), "0")
        self.assertEqual(self.getfattr(None, "features"), "0x0")
        self.assertEqual(self.getfattr(None, "max_ports"), "31")
        self.assertEqual(self.getfattr("data", "guest_connected"), "0")
        self.assertEqual(self.getfattr("console0", "guest_connected"), "0")

    def test_listxattr_lists_root_attributes(self):
        self.assertEqual(sorted(os.listxattr(self.d.mnt)),
                         ["user.vport." + a for a in ROOT_ATTRS])


class MaxPorts(XattrTest):
    args = ("--max-ports", "7")

    def test_max_ports_reflects_option(self):
        self.assertEqual(self.getfattr(None, "max_ports"), "7")


class Errors(XattrTest):
    def test_unknown_names_are_enodata(self):
        for name, attr in ((None, "user.vport.nope"),
                           ("data", "user.vport.nope"),
                           ("data", "user.other"),
                           ("data", "user.vport.frontend"),
                           (None, "user.vport.nr"),
                           ("data", "user.vport.winsize"),
                           (".events", "user.vport.nr")):
            err = self.getfattr_fails(name, attr)
            self.assertIn("No such attribute", err, (name, attr))
            with self.assertRaises(OSError) as cm:
                os.getxattr(self.target(name), attr)
            self.assertEqual(cm.exception.errno, errno.ENODATA, (name, attr))

    def test_xattrs_stay_enabled_after_unknown_name(self):
        # A daemon answering ENOSYS would turn xattrs off mount-wide.
        self.getfattr_fails("data", "user.vport.nope")
        self.assertEqual(self.getfattr("data", "name"), "data")

    def test_setting_read_only_attributes_fails(self):
        for name, attr in (("data", "nr"), ("data", "name"),
                           ("data", "rx_bytes"), (None, "frontend"),
                           (None, "max_ports")):
            before = self.getfattr(name, attr)
            r = subprocess.run(["setfattr", "-n", "user.vport." + attr,
                                "-v", "5", self.target(name)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
            self.assertNotEqual(r.returncode, 0, attr)
            self.assertIn("Operation not permitted", r.stderr, attr)
            with self.assertRaises(OSError) as cm:
                os.setxattr(self.target(name), "user.vport." + attr, b"5")
            self.assertEqual(cm.exception.errno, errno.EPERM, attr)
            with self.assertRaises(OSError) as cm:
                os.removexattr(self.target(name), "user.vport." + attr)
            self.assertEqual(cm.exception.errno, errno.EPERM, attr)
            self.assertEqual(self.getfattr(name, attr), before)

    def test_setting_unknown_attribute_fails(self):
        with self.assertRaises(OSError) as cm:
            os.setxattr(self.d.path("data"), "user.vport.nope", b"1")
        self.assertEqual(cm.exception.errno, errno.ENOTSUP)
        self.assertNotIn("user.vport.nope", os.listxattr(self.d.path("data")))

    def test_small_buffer_is_erange(self):
        # getxattr with a too-small buffer, then the size probe.
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(2)
        n = libc.getxattr(self.d.path("data").encode(), b"user.vport.name",
                          buf, ctypes.c_size_t(2))
        self.assertEqual(n, -1)
        self.assertEqual(ctypes.get_errno(), errno.ERANGE)
        n = libc.getxattr(self.d.path("data").encode(), b"user.vport.name",
                          None, ctypes.c_size_t(0))
        self.assertEqual(n, 4)


class RemovedPort(XattrTest):
    def test_attributes_of_removed_port_fd_are_gone(self):
        fd = self.open(os.O_RDONLY)
        os.unlink(self.d.path("data"))
        self.guest("wait-gone %d 5000" % self.nr)
        with self.assertRaises(OSError) as cm:
            os.getxattr(fd, "user.vport.nr")
        self.assertEqual(cm.exception.errno, errno.ENODATA)


if __name__ == "__main__":
    unittest.main()
