#!/bin/sh
# A console kept three ways at once (seed 004: "multiple data sinks, a
# single source"):
#   RUNDIR/console.log   every byte, rotated at 1 MiB, 3 old files kept
#                        (send SIGHUP after logrotate moves it)
#   RUNDIR/console.sock  an interactive console:
#                          socat -,raw,echo=0 UNIX-CONNECT:RUNDIR/console.sock
#   RUNDIR/mnt/console0  the port file: `cat` it, or `echo` into it
# All three get the same bytes.  One of them at a time types into the
# guest: the first to come with input, i.e. a socket client from the
# moment it connects, or the port file opened for writing; a client that
# comes later waits its turn, a second writer of the port file gets EBUSY.
#
# Usage: console-log-socket.sh RUNDIR   (foreground; Ctrl-C stops it)
set -eu
run=${1:?usage: $0 RUNDIR}
here=$(cd "$(dirname "$0")" && pwd)
vportfs=${VPORTFS:-$here/../build/vportfs}
[ -x "$vportfs" ] || vportfs=vportfs
mkdir -p "$run/mnt"
exec "$vportfs" --socket-path "$run/vhost.sock" \
	--chardev "log,id=clog,path=$run/console.log,max-size=1M,max-backups=3" \
	--chardev "socket,id=con,path=$run/console.sock,server=on,wait=off" \
	--port name=console0,console=on,chardev=clog,chardev=con \
	--port name=data \
	"$run/mnt"
