"""Console ports on a real guest: the window size set with
`setfattr -n user.vport.winsize` is what the guest's tty reports, and a
console flood does not flood the guest with interrupts."""
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


class ConsoleFlood(GuestTest):
    """Linux spins until each console buffer comes back (hvc writes of up
    to 16 bytes hold a lock), so an interrupt per buffer finds nothing to
    do; enough of them and the guest disables the IRQ, which UML shares
    among all queues ("irq 19: nobody cared"), and every port falls back
    to polling.  The device decides a moment later whether the guest
    still wants one (vu_queue_notify_lazy)."""
    ports = ("name=console0,console=on", "name=data")

    def test_flood_costs_the_guest_no_interrupt_storm(self):
        g = self.boot('''
irqs() { grep virtio-uml /proc/interrupts | awk '{print $2}'; }
before=$(irqs)
seq 1 50000 > /dev/hvc0
echo "$before $(irqs)" > "$W/irqs"
dmesg | grep -i -e "nobody cared" -e "disabling irq" > "$W/bad" || true
exec 3<>"$P/data"
flag opened
await host-open
read -r line <&3
echo "echo $line" >&3
await done
''')
        g.await_flag("opened", 120)
        # A guest read is EOF while no host file has the port open.
        with open(self.d.path("data"), "r+b", buffering=0) as f:
            g.flag("host-open")
            f.write(b"ping\n")
            self.assertEqual(f.read(10), b"echo ping\n")
        g.flag("done")
        self.assertGuestOk(g)
        before, after = (int(x) for x in g.read("irqs").split())
        # 50000 lines are at least 50000 console buffers; an interrupt
        # for each was what the guest got before.
        self.assertLess(after - before, 1000,
                        "%d interrupts for the flood" % (after - before))
        self.assertEqual(g.read("bad"), "")


if __name__ == "__main__":
    unittest.main()
