"""Hot-plug on a real guest: `touch NAME` in the mount adds a port the
guest's virtio_console sees, `rm NAME` removes it, and the same name can
come back and carry data again (the Linux driver takes back its buffers on
unplug and rewinds its ring: the device must follow)."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))

from test_guest import GuestTest  # noqa: E402


class HotPlug(GuestTest):
    ports = ("name=console0,console=on", "name=data")

    def test_plug_unplug_replug_seen_by_guest_and_carrying_data(self):
        g = self.boot('''
flag booted
await plugged
"$UML_INIT" wait-port extra 20
ls /sys/class/virtio-ports > "$W/after-plug"
exec 3>"$P/extra"
flag guest-open
echo "hello from extra" >&3
exec 3>&-
await unplugged
i=0
while [ -e /sys/class/virtio-ports/vport0p2 ] && [ $i -lt 100 ]; do
    sleep 0.1; i=$((i+1))
done
ls /sys/class/virtio-ports > "$W/after-unplug"
"$UML_INIT" links
ls /dev/virtio-ports > "$W/links-after-unplug"
flag checked-unplug
await replugged
"$UML_INIT" wait-port extra 20
exec 3>"$P/extra"
flag guest-open-again
echo "extra is back" >&3
exec 3>&-
cat /dev/virtio-ports/data > "$W/data-got" &
reader=$!
await data-sent
wait $reader
''')
        g.await_flag("booted")
        # touch: hot-plug port "extra" with the lowest free number (2).
        subprocess.run(["touch", self.d.path("extra")], check=True)
        g.flag("plugged")
        # A host read is EOF until the guest has its end open.
        g.await_flag("guest-open")
        with open(self.d.path("extra"), "rb") as f:
            self.assertEqual(f.readline(), b"hello from extra\n")
        ports = g.read("after-plug").split()
        self.assertIn("vport0p2", ports)

        os.unlink(self.d.path("extra"))
        self.assertNotIn("extra", os.listdir(self.d.mnt))
        g.flag("unplugged")
        g.await_flag("checked-unplug")
        self.assertNotIn("vport0p2", g.read("after-unplug").split())
        self.assertNotIn("extra", g.read("links-after-unplug").split())

        subprocess.run(["touch", self.d.path("extra")], check=True)
        g.flag("replugged")
        g.await_flag("guest-open-again")
        with open(self.d.path("extra"), "rb") as f:
            self.assertEqual(f.readline(), b"extra is back\n")
        # The other ports were not disturbed by the unplug.
        with open(self.d.path("data"), "wb") as f:
            f.write(b"data still works\n")
        g.flag("data-sent")
        self.assertGuestOk(g)
        self.assertEqual(g.read("data-got"), "data still works\n")


if __name__ == "__main__":
    unittest.main()
