#!/bin/sh
# A VM's guest agent on a unix socket, as libvirt sets it up for QEMU:
# the guest's org.qemu.guest_agent.0 port is served at RUNDIR/qga.sock, so
# a host tool talks to the agent with
#   socat - UNIX-CONNECT:RUNDIR/qga.sock
# and the same port stays readable in the mount.  The VMM connects to
# RUNDIR/vhost.sock, e.g. UML:
#   linux.uml ... virtio_uml.device=RUNDIR/vhost.sock:3
#
# Usage: guest-agent-socket.sh RUNDIR   (runs in the foreground; Ctrl-C
# unmounts and exits)
set -eu
run=${1:?usage: $0 RUNDIR}
here=$(cd "$(dirname "$0")" && pwd)
vportfs=${VPORTFS:-$here/../build/vportfs}
[ -x "$vportfs" ] || vportfs=vportfs
mkdir -p "$run/mnt"
exec "$vportfs" --socket-path "$run/vhost.sock" \
	--chardev "socket,id=qga,path=$run/qga.sock,server=on,wait=off" \
	--port name=console0,console=on \
	--port name=org.qemu.guest_agent.0,chardev=qga \
	--port name=data \
	"$run/mnt"
