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
[ "${1:-}" = --once ] && once=true

scripts/install-deps.sh
build=${VPORTFS_BUILD:-$root/build}
echo "demo: building in $build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target vportfs >/dev/null

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

"$build/vportfs" --socket "$sock" \
	--port name=console0,console=on \
	--port name=org.qemu.guest_agent.0 \
	--port name=data \
	--log-level info "$mnt" 2>"$work/vportfs.log" &
daemon_pid=$!
for _ in $(seq 100); do mountpoint -q "$mnt" && [ -S "$sock" ] && break; sleep 0.05; done
mountpoint -q "$mnt" || { cat "$work/vportfs.log"; echo "demo: vportfs did not start"; exit 1; }
echo "demo: vportfs serves $sock, ports mounted on $mnt:"
ls -l "$mnt"

echo "demo: booting a UML guest on it"
scripts/uml-run.sh --socket "$sock" --timeout 100000 --workdir "$work/guest" \
	-- "$root/examples/guest-demo.sh" >"$work/guest.out" 2>&1 &
guest_pid=$!

# The guest's agent service opens the port once it is up.
for _ in $(seq 200); do
	out=$(echo "hello from the host" | timeout 2 sh -c "exec 3<>'$mnt/org.qemu.guest_agent.0'; cat >&3; timeout 1 head -n1 <&3" 2>/dev/null || true)
	[ -n "$out" ] && break
	sleep 0.2
done
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
	[ -n "$out" ] || { echo "demo: no answer from the guest"; exit 1; }
	exit 0
fi

cat <<TRY

Try, in another terminal (the guest keeps running until you press Ctrl-C here):
    ls -l $mnt
    cat $mnt/data                                   # guest uptime, every second
    cat $mnt/console0                               # the guest's hvc0 console
    exec 3<>$mnt/org.qemu.guest_agent.0; echo ping >&3; head -n1 <&3; exec 3>&-
    dd if=$mnt/data bs=1 count=20 iflag=nonblock    # EAGAIN when nothing waits
    cat $mnt/.events                                # JSON line per event
    touch $mnt/extra; ls $mnt; rm $mnt/extra        # hot-plug a port
    getfattr -d -m user.vport $mnt/data             # port state, counters
    setfattr -n user.vport.winsize -v 100x40 $mnt/console0
TRY
echo "demo: running; Ctrl-C to stop"
wait "$guest_pid" || true
