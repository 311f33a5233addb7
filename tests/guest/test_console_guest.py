"""Console ports on a real guest: the window size set with
`setfattr -n user.vport.winsize` is what the guest's tty reports."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))

from test_guest import GuestTest  # noqa: E402


class ConsoleSize(GuestTest):
    ports = ("name=console0,console=on", "name=data")

    def test_winsize_reaches_the_guest_tty(self):
        g = self.boot('''
flag booted
await resized
sleep 0.5
stty size < /dev/hvc0 > "$W/size"
''')
        g.await_flag("booted")
        subprocess.run(["setfattr", "-n", "user.vport.winsize", "-v",
                        "100x40", self.d.path("console0")], check=True)
        g.flag("resized")
        self.assertGuestOk(g)
        # stty prints rows, then columns.
        self.assertEqual(g.read("size").split(), ["40", "100"])


if __name__ == "__main__":
    unittest.main()
