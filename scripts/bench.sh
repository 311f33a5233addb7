#!/usr/bin/env bash
# Throughput of a port file, driven by the simulated frontend, next to a
# plain pipe carrying the same bytes with the same tools on this machine;
# 1-byte round-trip latency; many ports streaming at once.
#
#   scripts/bench.sh [MiB]     (default 512)
#
# Environment: VPORTFS_BENCH_RTT (round trips, default 10000),
# VPORTFS_BENCH_PORTS (ports streaming at once, default 8).
#
# guest->host: the simulated guest streams into a port; the host reads the
# port file (vportfs-bench --check, 1 MiB reads, pattern verified).
# host->guest: the host writes the port file (vportfs-bench --gen, 1 MiB
# writes); the simulated guest receives into 4 KiB buffers, as Linux does.
# pipe: vportfs-bench --gen | vportfs-bench --check.
# rtt: the simulated guest sends 1 byte, vportfs-bench --echo (the port
# file open read-write) sends it back; median and p99 of N round trips.
# N ports: one simulated guest streams MiB into each of N ports at once
# (TX interleaved in one loop), N host readers (--check) in parallel;
# aggregate MB/s as the guest measures it (first byte to last returned).
# socket chardev: the same two directions through a unix-socket chardev
# (server=on) on another port, the host end read and written by socat;
# next to it, socat between two unix sockets with the same tools.
# MB/s are 10^6 bytes per second, as measured by the receiving side; the
# many-ports row streams MiB on each port at once and reports the total;
# the round trip is 1 byte from the simulated guest, echoed by a host
# process through the same port file.
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-512}
bytes=$((mib * 1024 * 1024))
rtt_count=${VPORTFS_BENCH_RTT:-10000}
nports=${VPORTFS_BENCH_PORTS:-8}

scripts/install-deps.sh
build=${VPORTFS_BENCH_BUILD:-$(pwd)/build-bench}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DVPORTFS_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target vportfs vportfs-bench >/dev/null
bench=$build/vportfs-bench

work=$(mktemp -d /var/tmp/vportfs-bench.XXXXXX)
daemon=
helpers=()
cleanup() {
	set +e
	for p in "${helpers[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${helpers[@]}"; do wait "$p" 2>/dev/null; done
	[ -z "$daemon" ] || { kill "$daemon"; wait "$daemon"; } 2>/dev/null
	mountpoint -q "$work/mnt" && umount -l "$work/mnt"
	rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/mnt"
multi=()
for i in $(seq 0 $((nports - 1))); do multi+=(--port "name=multi$i"); done
"$build/vportfs" --socket-path "$work/sock" --port name=bench "${multi[@]}" \
	--chardev "socket,id=s,path=$work/chr.sock,server=on,wait=off" \
	--port name=sock,chardev=s \
	"$work/mnt" 2>"$work/log" &
daemon=$!
for _ in $(seq 100); do mountpoint -q "$work/mnt" && break; sleep 0.05; done
mountpoint -q "$work/mnt" || { cat "$work/log"; exit 1; }

mbps() { sed -n 's/.*MBps=\([0-9.]*\).*/\1/p' | head -n1; }

# guest -> host
"$bench" --socket "$work/sock" --port bench --mode g2h --bytes "$bytes" >"$work/g2h" &
sim=$!
for _ in $(seq 100); do [ -S "$work/sock" ] && break; sleep 0.05; done
sleep 0.5 # the guest must open its end first, or the host read is EOF
"$bench" --check "$bytes" <"$work/mnt/bench" >"$work/g2h.check"
wait "$sim"
g2h=$(mbps <"$work/g2h")

# host -> guest (a fresh frontend: a new VM on the same daemon)
"$bench" --socket "$work/sock" --port bench --mode h2g --bytes "$bytes" --verify >"$work/h2g" &
sim=$!
"$bench" --gen "$bytes" >"$work/mnt/bench" 2>/dev/null
wait "$sim"
h2g=$(mbps <"$work/h2g")

# the same bytes through a pipe
pipe=$("$bench" --gen "$bytes" 2>/dev/null | "$bench" --check "$bytes" | mbps)

# 1-byte round trips (a fresh frontend again)
"$bench" --socket "$work/sock" --port bench --mode rtt --count "$rtt_count" >"$work/rtt" &
sim=$!
helpers+=("$sim")
sleep 0.5 # as for g2h: the echo's first read is EOF until the guest opens
"$bench" --echo "$work/mnt/bench" 2>"$work/echo.log" &
echo_pid=$!
helpers+=("$echo_pid")
wait "$sim"
wait "$echo_pid" # EOF once the guest closes
helpers=()
rtt_med=$(sed -n 's/.*median_us=\([0-9.]*\).*/\1/p' "$work/rtt")
rtt_p99=$(sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p' "$work/rtt")

# guest -> host through the socket chardev, read by socat
"$bench" --socket "$work/sock" --port sock --mode g2h --bytes "$bytes" >"$work/sg2h" &
sim=$!
helpers+=("$sim")
# (socat would wait for more after the last byte: it is stopped once
# --check has all of them)
exec {sockin}< <(socat -u UNIX-CONNECT:"$work/chr.sock" -)
reader=$!
helpers+=("$reader")
"$bench" --check "$bytes" <&"$sockin" >"$work/sg2h.check"
exec {sockin}<&-
wait "$sim"
kill "$reader" 2>/dev/null || true
helpers=()
sock_g2h=$(mbps <"$work/sg2h")

# host -> guest through it, written by socat (socat ends at the input's
# end; the chardev's client goes with it)
"$bench" --socket "$work/sock" --port sock --mode h2g --bytes "$bytes" --verify >"$work/sh2g" &
sim=$!
helpers+=("$sim")
"$bench" --gen "$bytes" 2>/dev/null | socat -u - UNIX-CONNECT:"$work/chr.sock"
wait "$sim"
helpers=()
sock_h2g=$(mbps <"$work/sh2g")

# socat between two unix sockets, the same tools around it
socat -u UNIX-LISTEN:"$work/plain.sock" - | "$bench" --check "$bytes" >"$work/plain.check" &
plain=$!
helpers+=("$plain")
for _ in $(seq 100); do [ -S "$work/plain.sock" ] && break; sleep 0.05; done
"$bench" --gen "$bytes" 2>/dev/null | socat -u - UNIX-CONNECT:"$work/plain.sock"
wait "$plain"
helpers=()
socat_mbps=$(mbps <"$work/plain.check")

# N ports at once (one more frontend)
ports=()
for i in $(seq 0 $((nports - 1))); do ports+=(--port "multi$i"); done
"$bench" --socket "$work/sock" "${ports[@]}" --mode g2h --bytes "$bytes" >"$work/multi" &
sim=$!
helpers+=("$sim")
sleep 0.5
checks=()
for i in $(seq 0 $((nports - 1))); do
	"$bench" --check "$bytes" <"$work/mnt/multi$i" >"$work/multi$i.check" &
	checks+=($!)
	helpers+=($!)
done
for p in "${checks[@]}"; do wait "$p"; done
wait "$sim"
helpers=()
multi_mbps=$(mbps <"$work/multi")

printf '%-26s %10s\n' "path ($mib MiB)" "MB/s"
printf '%-26s %10s\n' "guest->host port file" "$g2h"
printf '%-26s %10s\n' "host->guest port file" "$h2g"
printf '%-26s %10s\n' "pipe (same tools)" "$pipe"
printf '%-26s %10s\n' "guest->host socket chardev" "$sock_g2h"
printf '%-26s %10s\n' "host->guest socket chardev" "$sock_h2g"
printf '%-26s %10s\n' "socat unix->unix" "$socat_mbps"
printf '%-26s %10s\n' "$nports ports g2h, $mib MiB each" "$multi_mbps"
printf '%-26s %10s\n' "1-byte rtt median (us)" "$rtt_med"
printf '%-26s %10s\n' "1-byte rtt p99 (us)" "$rtt_p99"
