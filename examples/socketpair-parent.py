#!/usr/bin/env python3
"""A parent process that hands vportfs one end of a socketpair (seed 004):
the guest's "data" port is then this program's own socket, with no path
anybody else could open.  Lines the guest writes are printed; lines typed
here go to the guest.

Usage: socketpair-parent.py RUNDIR   (Ctrl-D or Ctrl-C ends it, and the
daemon with it)
"""
import os
import selectors
import signal
import socket
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
run = sys.argv[1] if len(sys.argv) > 1 else sys.exit(__doc__)
vportfs = os.environ.get("VPORTFS",
                         os.path.join(here, "..", "build", "vportfs"))
if not os.access(vportfs, os.X_OK):
    vportfs = "vportfs"
os.makedirs(os.path.join(run, "mnt"), exist_ok=True)

ours, theirs = socket.socketpair()
daemon = subprocess.Popen(
    [vportfs, "--socket", os.path.join(run, "vhost.sock"),
     "--chardev", "fd,id=pair,fd=%d" % theirs.fileno(),
     "--port", "name=console0,console=on",
     "--port", "name=data,chardev=pair",
     os.path.join(run, "mnt")],
    pass_fds=(theirs.fileno(),))
theirs.close()  # the daemon has it now

sel = selectors.DefaultSelector()
sel.register(ours, selectors.EVENT_READ)
sel.register(sys.stdin, selectors.EVENT_READ)
try:
    while daemon.poll() is None:
        for key, _ in sel.select(0.5):
            if key.fileobj is ours:
                data = ours.recv(65536)
                if not data:
                    sys.exit(0)
                sys.stdout.buffer.write(data)
                sys.stdout.flush()
            else:
                line = sys.stdin.buffer.readline()
                if not line:
                    sys.exit(0)
                ours.sendall(line)
except KeyboardInterrupt:
    pass
finally:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(10)
