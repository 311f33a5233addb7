#!/bin/sh
# uml-init.sh — PID 1 of the User-Mode-Linux guest booted by uml-run.sh.
#
# The guest's root is the host's / over hostfs, so this script and every
# program it starts are the host's own files. uml-run.sh copies this file
# into the run's work dir and boots with init=<workdir>/init.sh; the script
# finds the work dir from $0. Nothing else crosses the kernel command line,
# which splits on blanks and hands unknown words to init as arguments and
# environment.
#
# Work dir protocol (the host writes the first three, the guest the rest):
#   config          sh assignments: UML_WANT_PORTS, UML_PORT_WAIT, UML_CWD
#   env             NAME=VALUE lines added to the command's environment
#   cmd             the command text, run with sh -c
#   fstab           the guest's own mounts (written here, for mount -a)
#   boots           how many times this script has booted (see UML_BOOT)
#   started         created just before the command runs
#   stdout, stderr  the command's output
#   status          its exit status, written last
#
# Inside a guest command the same file is "$UML_INIT" and offers helpers:
#   "$UML_INIT" links               (re)create /dev/virtio-ports/<name>
#   "$UML_INIT" wait-port NAME [S]  wait up to S s (default 10) for a port
#                                   named NAME, then create the links
#
# The one design choice: as PID 1 this script must never exit (the kernel
# would panic); every step logs and carries on, and the end is always a
# power-off, so a broken step shows up as a failing command, not a hang.
# Second: under UML every fork+exec costs ~50-70 ms (ptrace), so this
# script prefers builtins (read, printf) to cat/grep/date and batches mounts.

PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

WORK=${0%/*}

log() {
	echo "uml-init: $*"
}

# Device nodes for every char and block device the kernel knows, for when
# devtmpfs is missing. Each /sys/dev/{char,block}/MAJ:MIN names its node in
# uevent's DEVNAME.
make_nodes() {
	for type in char block; do
		kind=c
		[ "$type" = block ] && kind=b
		for d in /sys/dev/"$type"/*; do
			[ -r "$d/uevent" ] || continue
			name=$(sed -n 's/^DEVNAME=//p' "$d/uevent")
			[ -n "$name" ] || continue
			[ -e "/dev/$name" ] && continue
			case $name in */*) mkdir -p "/dev/${name%/*}" ;; esac
			mm=${d##*/}
			mknod "/dev/$name" "$kind" "${mm%:*}" "${mm#*:}"
		done
	done
}

# /dev/vportNpM nodes and the /dev/virtio-ports/<name> links udev would
# make. Ports whose name is empty or unusable as a file name get no link.
make_links() {
	for p in /sys/class/virtio-ports/*; do
		[ -d "$p" ] || continue
		[ -d /dev/virtio-ports ] || mkdir -p /dev/virtio-ports
		dev=${p##*/}
		if [ ! -c "/dev/$dev" ] && [ -r "$p/dev" ]; then
			IFS=: read -r maj min <"$p/dev"
			mknod "/dev/$dev" c "$maj" "$min"
		fi
		name=
		read -r name 2>/dev/null <"$p/name"
		case $name in
		'' | . | .. | */*) continue ;;
		esac
		ln -sfn "../$dev" "/dev/virtio-ports/$name"
	done
	# A hot-unplugged port leaves a dangling link behind.
	for l in /dev/virtio-ports/*; do
		[ -L "$l" ] && [ ! -e "$l" ] && rm -f "$l"
	done
	return 0
}

# Sets snap to "vport0p1=name vport0p2=name2 " for every port and named to
# 1 if every port has a name (names come in a later control message than
# the ports). Builtins only: this runs ten times a second.
port_snapshot() {
	snap=
	named=1
	for p in /sys/class/virtio-ports/*; do
		[ -d "$p" ] || continue
		name=
		read -r name 2>/dev/null <"$p/name"
		[ -n "$name" ] || named=0
		snap="$snap${p##*/}=$name "
	done
}

# Whole seconds since boot, without forking date(1).
uptime_s() {
	read -r up _ </proc/uptime
	up=${up%.*}
}

# A virtio-console device (virtio id 3) exists only if virtio_uml reached
# the backend at boot; UML connects once and never retries, so without one
# there is nothing to wait for.
have_console_device() {
	for d in /sys/bus/virtio/devices/*; do
		id=
		read -r id 2>/dev/null <"$d/device"
		[ "$id" = 0x0003 ] && return 0
	done
	return 1
}

# Wait, at most $1 seconds, until the ports have appeared and settled:
# unchanged for 0.5 s with every port named, or for 2 s if some port stays
# unnamed (a port may legitimately have no name).
wait_ports() {
	uptime_s
	deadline=$((up + $1))
	prev=
	stable=0
	while [ "$up" -lt "$deadline" ]; do
		port_snapshot
		if [ -n "$snap" ] && [ "$snap" = "$prev" ]; then
			stable=$((stable + 1))
		else
			stable=0
		fi
		prev=$snap
		if [ "$stable" -ge 20 ] || { [ "$stable" -ge 5 ] && [ "$named" = 1 ]; }; then
			return 0
		fi
		sleep 0.1
		uptime_s
	done
	return 1
}

# Helper mode: called from a guest command, not as init.
if [ "$$" -ne 1 ]; then
	case ${1:-} in
	links)
		make_links
		exit
		;;
	wait-port)
		[ -n "${2:-}" ] || {
			echo "usage: $0 wait-port NAME [SECS]" >&2
			exit 2
		}
		uptime_s
		deadline=$((up + ${3:-10}))
		while [ "$up" -lt "$deadline" ]; do
			for p in /sys/class/virtio-ports/*; do
				name=
				read -r name 2>/dev/null <"$p/name"
				if [ "$name" = "$2" ]; then
					make_links
					exit 0
				fi
			done
			sleep 0.1
			uptime_s
		done
		echo "$0: no virtio port named $2" >&2
		exit 1
		;;
	*)
		echo "usage: $0 links | wait-port NAME [SECS]" >&2
		exit 2
		;;
	esac
fi

log "starting in $WORK"

# The defaults matter only if the host's config is unreadable.
UML_WANT_PORTS=0
UML_PORT_WAIT=10
UML_CWD=/
# A failing "." would end this shell, and with it the guest: test first.
if [ -r "$WORK/config" ]; then
	# shellcheck source=/dev/null
	. "$WORK/config"
else
	log "cannot read $WORK/config"
fi

# -n everywhere: the guest sees the host's /etc, and mount must not write
# the host's mtab/utab. /proc first and alone, because mount -a needs it to
# see what is mounted already (the kernel mounts devtmpfs on /dev itself,
# CONFIG_DEVTMPFS_MOUNT); then the rest in one process.
# /tmp and /run are private on purpose: the host's are hidden, so a guest
# cannot trample host state (sockets, pid files) through hostfs.
mount -n -t proc proc /proc || log "mounting /proc failed"
printf '%s\n' \
	'sysfs /sys sysfs defaults 0 0' \
	'devtmpfs /dev devtmpfs mode=755 0 0' \
	'devpts /dev/pts devpts gid=5,mode=620,ptmxmode=666,X-mount.mkdir 0 0' \
	'tmpfs /dev/shm tmpfs mode=1777,X-mount.mkdir 0 0' \
	'tmpfs /tmp tmpfs mode=1777 0 0' \
	'tmpfs /run tmpfs mode=755 0 0' >"$WORK/fstab"
mount -a -n -T "$WORK/fstab" || log "some mounts failed"

# Without devtmpfs, build the nodes by hand on a tmpfs.
devtmpfs=0
while read -r _ mnt fstype _; do
	[ "$mnt $fstype" = "/dev devtmpfs" ] && devtmpfs=1
done </proc/mounts
if [ "$devtmpfs" = 0 ]; then
	log "no devtmpfs; creating device nodes with mknod"
	mount -n -t tmpfs -o mode=755 tmpfs /dev
	make_nodes
	mkdir -p /dev/pts /dev/shm
	mount -n -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
	mount -n -t tmpfs -o mode=1777 tmpfs /dev/shm
fi
# udev normally makes these: bash's process substitution needs /dev/fd,
# and scripts write to /dev/stderr.
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr

read -r release </proc/sys/kernel/osrelease
module=/usr/lib/uml/modules/$release/kernel/drivers/char/virtio_console.ko
if [ ! -d /sys/module/virtio_console ] && ! insmod "$module"; then
	log "insmod $module failed"
fi

if [ "$UML_WANT_PORTS" = 1 ]; then
	if ! have_console_device; then
		log "no virtio-console device (did virtio_uml reach the socket?)"
	elif wait_ports "$UML_PORT_WAIT"; then
		log "ports: $snap"
	else
		log "ports did not settle within ${UML_PORT_WAIT}s: $snap"
	fi
fi
make_links

# The command's environment: a clean one, plus the host's --env entries
# (later assignments win in env(1), so --env can override the defaults).
set --
while IFS= read -r kv; do
	set -- "$@" "$kv"
done <"$WORK/env"
cmd=
while IFS= read -r line || [ -n "$line" ]; do
	cmd="$cmd$line
"
done <"$WORK/cmd"
cd "$UML_CWD" 2>/dev/null || cd /

# A guest "reboot -f" makes UML re-exec itself: this script runs again in
# the same work dir. The command then runs again too, with UML_BOOT telling
# which boot it is (a VM-restart test acts on it); output accumulates and
# the last boot's status wins.
boot=0
[ -r "$WORK/boots" ] && read -r boot <"$WORK/boots"
boot=$((boot + 1))
echo "$boot" >"$WORK/boots"

: >"$WORK/started"
log "running command (boot $boot)"
env -i PATH="$PATH" HOME=/root TERM=dumb SHELL=/bin/sh USER=root \
	LOGNAME=root UML_WORKDIR="$WORK" UML_INIT="$WORK/init.sh" \
	UML_BOOT="$boot" "$@" \
	/bin/sh -c "$cmd" </dev/null >>"$WORK/stdout" 2>>"$WORK/stderr"
rc=$?
# The host reads it only after the guest has stopped: no rename needed.
echo "$rc" >"$WORK/status"
log "command exited with status $rc"

# hostfs writes through on write(2), but mmap'd writes and metadata may
# still sit in the guest's caches: sync, or the host may miss them.
cd /
sync
poweroff -f
log "poweroff -f failed; trying sysrq"
echo o >/proc/sysrq-trigger
sleep 2
log "cannot power off; waiting for the host's timeout"
while :; do
	sleep 3600
done
