#!/usr/bin/env bash
# The quick-start demo: build vportfs, serve a UML guest's virtio-serial
# device, mount its ports, show bytes crossing both ways, and leave it
# running for you to try until Ctrl-C.  Everything is cleaned up on exit.
#
#   scripts/demo.sh          interactive: waits for Ctrl-C
#   scripts/demo.sh --once   show the exchange, then clean up and exit
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
once=false
case $# in
0) ;;
1) case $1 in
	--once) once=true ;;
	-h | --help)
		sed -n '2,7s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	*)
		echo "demo: unknown argument '$1' (--once, --help)" >&2
		exit 2
		;;
	esac ;;
*)
	echo "demo: one argument at most (--once, --help)" >&2
	exit 2
	;;
esac

scripts/install-deps.sh
build=${VPORTFS_BUILD:-$root/build}
echo "demo: building in $build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target vportfs uml-xstate >/dev/null

work=$(mktemp -d /var/tmp/vportfs-demo.XXXXXX)
mnt=$work/mnt
sock=$work/vhost.sock
mkdir "$mnt"
daemon_pid=
guest_pid=

cleanup() {
	# Every step must run whatever the one before returned.
	set +e
	trap - EXIT INT TERM
	echo
	echo "demo: cleaning up"
	if [ -n "$guest_pid" ]; then
		kill "$guest_pid" 2>/dev/null
		wait "$guest_pid" 2>/dev/null
	fi
	if [ -n "$daemon_pid" ]; then
		kill "$daemon_pid" 2>/dev/null
		wait "$daemon_pid" 2>/dev/null
	fi
	mountpoint -q "$mnt" && umount -l "$mnt"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$build/vportfs" --socket-path "$sock" \
	--port name=console0,console=on \
	--port name=org.qemu.guest_agent.0 \
	--port name=data \
	--log-level info "$mnt" 2>"$work/vportfs.log" &
daemon_pid=$!
for _ in $(seq 100); do mountpoint -q "$mnt" && [ -S "$sock" ] && break; sleep 0.05; done
mountpoint -q "$mnt" || { cat "$work/vportfs.log"; echo "demo: vportfs did not start"; exit 1; }
echo "demo: vportfs serves $sock, ports mounted on $mnt:"
ls -l "$mnt"

# The guest sees the host's files except its private /tmp, /run, /dev:
# what it runs goes in the work dir, under /var/tmp, wherever this
# checkout is.
install -m 0755 examples/guest-demo.sh "$work/guest-demo.sh"
echo "demo: booting a UML guest on it"
scripts/uml-run.sh --socket "$sock" --timeout 100000 --workdir "$work/guest" \
	--console-log "$work/console.log" \
	-- "$work/guest-demo.sh" >"$work/guest.out" 2>&1 &
guest_pid=$!

# The guest is gone (no boot, a panic, its command ended): say what it
# left and stop, instead of waiting for an answer that cannot come.
guest_gone() {
	local rc=0
	wait "$guest_pid" || rc=$?
	guest_pid=
	echo "demo: the guest stopped (uml-run exit status $rc); its output:"
	sed 's/^/demo: | /' "$work/guest.out"
	# uml-run shows the console itself when the guest failed to run.
	grep -q 'last console lines' "$work/guest.out" || console_tail
	exit 1
}

console_tail() {
	echo "demo: last console lines ($work/console.log):"
	{
		grep -a -o -m1 'uml-xstate: .*' "$work/console.log" 2>/dev/null || true
		grep -a -v -E '^ *\[<[0-9a-f]+>\]|uml-xstate: ' "$work/console.log" 2>/dev/null | tail -n 20 || true
	} | sed 's/^/demo: | /'
}

# The guest's agent service opens the port once it is up: ask until it
# answers, for at most a minute, and never after the guest has gone.
out=
deadline=$((SECONDS + 60))
while [ -z "$out" ] && [ "$SECONDS" -lt "$deadline" ]; do
	kill -0 "$guest_pid" 2>/dev/null || guest_gone
	out=$(echo "hello from the host" | timeout 2 sh -c "exec 3<>'$mnt/org.qemu.guest_agent.0'; cat >&3; timeout 1 head -n1 <&3" 2>/dev/null || true)
	[ -n "$out" ] || sleep 0.2
done
if [ -z "$out" ]; then
	echo "demo: no answer from the guest's agent within 60 s"
	console_tail
	exit 1
fi
echo
echo "host -> guest -> host: wrote 'hello from the host' to org.qemu.guest_agent.0, read back:"
echo "    $out"
echo "guest -> host: two lines from $mnt/data:"
# (Through a pipe: GNU head seeks back over what it read too much, and a
# port is not seekable.)
{ timeout 5 cat "$mnt/data" || true; } | head -n 2 | sed 's/^/    /'
echo "guest console ($mnt/console0):"
timeout 1 cat "$mnt/console0" | sed 's/^/    /' || true

if $once; then
	exit 0
fi

cat <<TRY

Try, in another terminal (the guest keeps running until you press Ctrl-C here):
    ls -l $mnt
    cat $mnt/data                                   # guest uptime, every second
    cat $mnt/console0                               # the guest's hvc0 console
    exec 3<>$mnt/org.qemu.guest_agent.0; echo ping >&3; read -r r <&3; echo "\$r"; exec 3>&-
    dd if=$mnt/data bs=1 count=20 iflag=nonblock    # EAGAIN when nothing waits
    cat $mnt/.events                                # JSON line per event
    touch $mnt/extra; ls $mnt; rm $mnt/extra        # hot-plug a port
    getfattr -d -m user.vport $mnt/data             # port state, counters
    setfattr -n user.vport.winsize -v 100x40 $mnt/console0
TRY
echo "demo: running; Ctrl-C (or kill -TERM $$) to stop"
while kill -0 "$guest_pid" 2>/dev/null; do
	sleep 1
done
guest_gone
