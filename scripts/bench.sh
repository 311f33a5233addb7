#!/usr/bin/env bash
# Throughput of a port file, driven by the simulated frontend, next to a
# plain pipe carrying the same bytes with the same tools on this machine.
#
#   scripts/bench.sh [MiB]     (default 512)
#
# guest->host: the simulated guest streams into a port; the host reads the
# port file (vportfs-bench --check, 1 MiB reads, pattern verified).
# host->guest: the host writes the port file (vportfs-bench --gen, 1 MiB
# writes); the simulated guest receives into 4 KiB buffers, as Linux does.
# pipe: vportfs-bench --gen | vportfs-bench --check.
# MB/s are 10^6 bytes per second, as measured by the receiving side.
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-512}
bytes=$((mib * 1024 * 1024))

scripts/install-deps.sh
build=${VPORTFS_BENCH_BUILD:-$(pwd)/build-bench}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DVPORTFS_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target vportfs vportfs-bench >/dev/null
bench=$build/vportfs-bench

work=$(mktemp -d /var/tmp/vportfs-bench.XXXXXX)
daemon=
cleanup() {
	set +e
	[ -z "$daemon" ] || { kill "$daemon"; wait "$daemon"; } 2>/dev/null
	mountpoint -q "$work/mnt" && umount -l "$work/mnt"
	rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/mnt"
"$build/vportfs" --socket "$work/sock" --port name=bench "$work/mnt" 2>"$work/log" &
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

printf '%-22s %10s\n' "path ($mib MiB)" "MB/s"
printf '%-22s %10s\n' "guest->host port file" "$g2h"
printf '%-22s %10s\n' "host->guest port file" "$h2g"
printf '%-22s %10s\n' "pipe (same tools)" "$pipe"
