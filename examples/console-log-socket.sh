#!/bin/sh
# A console kept three ways at once (seed 004: "multiple data sinks, a
# single source"):
#   RUNDIR/console.log   every byte, rotated at 1 MiB, 3 old files kept
#                        (send SIGHUP after logrotate moves it)
#   RUNDIR/console.sock  an interactive console:
#                          socat -,raw,echo=0 UNIX-CONNECT:RUNDIR/console.sock
#   RUNDIR/mnt/console0  the port file: `cat` it, or `echo` into it
# All three get the same bytes; the first that writes is the one that
# types into the guest, the others wait their turn.
#
# Usage: console-log-socket.sh RUNDIR   (foreground; Ctrl-C stops it)
set -eu
run=${1:?usage: $0 RUNDIR}
here=$(cd "$(dirname "$0")" && pwd)
vportfs=${VPORTFS:-$here/../build/vportfs}
[ -x "$vportfs" ] || vportfs=vportfs
mkdir -p "$run/mnt"
exec "$vportfs" --socket "$run/vhost.sock" \
	--chardev "log,id=clog,path=$run/console.log,max-size=1M,max-backups=3" \
	--chardev "socket,id=con,path=$run/console.sock,server=on,wait=off" \
	--port name=console0,console=on,chardev=clog,chardev=con \
	--port name=data \
	"$run/mnt"
