#!/usr/bin/env bash
# One table, in one run: every path a port's bytes take, each next to its
# own ceiling measured here and now, the ratio, and the target of issue 11
# (PASS/MISS; a MISS does not fail the script).  docs/performance.md says
# what each row measures and why its ceiling is the ceiling.
#
#   scripts/bench.sh [MiB]        (or BENCH_BYTES; default 512 MiB)
#
# Environment:
#   BENCH_BYTES       bytes per throughput row, with K/M/G (512M); the
#                     N-port rows split them over the N ports
#   BENCH_UML_BYTES   bytes of the UML rows (BENCH_BYTES, 64 KiB multiple)
#   BENCH_REPEAT      runs of each throughput row, the median printed (3)
#   BENCH_WARMUP      guest->host rows: untimed bytes per port first (8M, one
#                     TX ring of 256 32 KiB buffers; BENCH_BYTES/16 if less)
#   BENCH_RTT         round trips per latency row (10000)
#   BENCH_IDLE_SECS   idle-CPU window (10)
#   BENCH_FDS         open files of the per-open-file row (1000)
#   BENCH_PORTS_LIST  N of the N-port rows ("1 8 31 126": a device of 127
#                     ports has 126 generic ones, port 0 being a console's)
#   BENCH_SECTIONS    which rows: any of port socket rtt ports memory uml
#                     (default: all)
#   BENCH_PERF        a directory: also record a perf profile (perf record
#                     -g) of the daemon and the simulated guest during the
#                     first run of each row, keep it there as ROW.data, and
#                     print each one's top entries after the table.
#                     Profiling slows the rows: such a run's numbers are
#                     not for comparison
#   BENCH_TMP         where the work dir goes (/var/tmp: a UML guest must
#                     see it)
#   VPORTFS_BENCH_BUILD  build dir (default build-bench, Release),
#                     configured and built first unless BENCH_NO_BUILD=1
#
# Every byte is checked: vportfs-bench --check verifies the pattern (or
# zeros) it reads, the simulated guest verifies what it receives, the
# round trips compare each byte that comes back.  Exit status: 0 when
# every row was measured, 1 when one could not be (a failed transfer).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

size_bytes() {
	local v=$1 n
	case $v in
	*[kK]) n=$((${v%?} * 1024)) ;;
	*[mM]) n=$((${v%?} * 1024 * 1024)) ;;
	*[gG]) n=$((${v%?} * 1024 * 1024 * 1024)) ;;
	*) n=$v ;;
	esac
	[[ $n =~ ^[1-9][0-9]*$ ]] || {
		echo "bench: bad size '$v'" >&2
		exit 2
	}
	echo "$n"
}

if [ $# -gt 0 ]; then
	bytes=$(size_bytes "${1}M")
else
	bytes=$(size_bytes "${BENCH_BYTES:-512M}")
fi
uml_bytes=$(size_bytes "${BENCH_UML_BYTES:-$bytes}")
uml_count=$(((uml_bytes + 65535) / 65536))
uml_bytes=$((uml_count * 65536))
rtt_count=${BENCH_RTT:-${VPORTFS_BENCH_RTT:-10000}}
idle_secs=${BENCH_IDLE_SECS:-10}
nfds=${BENCH_FDS:-1000}
repeat=${BENCH_REPEAT:-3}
# one TX ring (256 x 32 KiB), less for short runs
warmup=$(size_bytes "${BENCH_WARMUP:-$(((bytes / 16) < (8 << 20) ? bytes / 16 : 8 << 20))}")
ports_list=${BENCH_PORTS_LIST:-1 8 31 126}
sections=" ${BENCH_SECTIONS:-port socket rtt ports memory uml} "
want() { [[ $sections == *" $1 "* ]]; }

build=${VPORTFS_BENCH_BUILD:-$root/build-bench}
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
	scripts/install-deps.sh
	cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DVPORTFS_TESTS=OFF >/dev/null
	cmake --build "$build" -j"$(nproc)" --target vportfs vportfs-bench \
		vportfs-nullfs uml-xstate >/dev/null
fi
bench=$build/vportfs-bench
for b in vportfs vportfs-bench vportfs-nullfs; do
	[ -x "$build/$b" ] || {
		echo "bench: $build/$b is missing (build it, or unset BENCH_NO_BUILD)" >&2
		exit 1
	}
done

perf_dir=${BENCH_PERF:-}
if [ -n "$perf_dir" ]; then
	command -v perf >/dev/null || {
		echo "bench: BENCH_PERF needs perf (Debian's linux-perf)" >&2
		exit 1
	}
	mkdir -p "$perf_dir"
	perf_dir=$(cd "$perf_dir" && pwd)
fi
work=$(mktemp -d "${BENCH_TMP:-/var/tmp}/vportfs-bench.XXXXXX")
pids=()    # every process we started, killed at exit
mounts=()  # every mount point, unmounted at exit
# Still our child (not a reaped pid that was reused)?
ours() { [ "$(awk '{ print $4 }' "/proc/$1/stat" 2>/dev/null)" = $$ ]; }
cleanup() {
	set +e
	for p in "${pids[@]}"; do ! ours "$p" || kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	for m in "${mounts[@]}"; do mountpoint -q "$m" && umount -l "$m"; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() {
	echo "bench: $*" >&2
	for l in "$work"/*.log; do
		[ -s "$l" ] && { echo "--- $l" >&2; tail -n 20 "$l" >&2; }
	done
	exit 1
}

wait_mount() {
	for _ in $(seq 200); do mountpoint -q "$1" && return 0; sleep 0.05; done
	die "nothing mounted on $1"
}

# daemon NAME ARGS...: a vportfs on $work/NAME.sock and $work/NAME; its
# pid in $daemon_pid.
daemon() {
	local name=$1
	shift
	mkdir "$work/$name"
	"$build/vportfs" --socket-path "$work/$name.sock" "$@" "$work/$name" \
		2>"$work/$name.log" &
	pids+=($!)
	mounts+=("$work/$name")
	daemon_pid=$!
	wait_mount "$work/$name"
}

# Until the guest has opened each port file given (user.vport.
# guest_connected): before that a host read is EOF.
wait_guest_open() {
	python3 - "$@" <<'EOF' || die "the guest never opened $*"
import os, sys, time
deadline = time.monotonic() + 60
for p in sys.argv[1:]:
    while os.getxattr(p, "user.vport.guest_connected") != b"1":
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.01)
EOF
}

# Until FILE has a line matching RE (a background tool's report).
wait_line() {
	for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
	die "no '$2' in $1"
}

# The median of its arguments (the lower middle one of an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
field() { sed -n "s/.*\<$1=\([0-9.]*\).*/\1/p" "$2" | head -n1; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# A run of the simulated guest in the background: its pid in $sim.
sim_pin=() # a command the simulated guest runs under (taskset)
sim_bg() {
	local out=$1
	shift
	"${sim_pin[@]}" "$bench" "$@" >"$out" 2>"$out.log" &
	sim=$!
	pids+=("$sim")
}

declare -A V # results by key

# prof_start ROW PID...: with BENCH_PERF, profile these processes until
# prof_stop; the first run of a row only.
profiled=()
prof=
prof_start() {
	local name=$1
	shift
	[ -n "$perf_dir" ] && [[ " ${profiled[*]} " != *" $name "* ]] || return 0
	perf record -g -o "$perf_dir/$name.data" -p "$(IFS=,; echo "$*")" \
		>/dev/null 2>"$perf_dir/$name.log" &
	prof=$!
	profiled+=("$name")
	sleep 0.5 # perf attaches
}
prof_stop() {
	[ -n "$prof" ] || return 0
	kill -INT "$prof" 2>/dev/null
	wait "$prof" || true
	prof=
}

# ---- memory and idle CPU (first: fresh daemons; the idle window runs
# while the other sections do, its daemon untouched by them) -------------
for n in $ports_list; do
	if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 126 ]; then
		echo "bench: BENCH_PORTS_LIST: 1 to 126 ports (the generic ports of a 127-port device)" >&2
		exit 2
	fi
done
if want memory || want ports; then
	many_ports=()
	# Port 0 is for a console (QEMU's rule, kept by vportfs): a device of
	# 127 ports has 126 generic ones, m1..m126, and the console c0.
	for i in $(seq 1 126); do many_ports+=(--port "name=m$i"); done
	daemon many --max-ports 127 --port name=c0,console=on "${many_ports[@]}"
	many_pid=$daemon_pid
fi
if want memory; then
	daemon one --port name=p0
	one_pid=$daemon_pid
	sim_bg "$work/idle-one" --socket "$work/one.sock" --port p0 --mode idle
	idle_one=$sim
	idle_args=(--port c0)
	for i in $(seq 1 126); do idle_args+=(--port "m$i"); done
	sim_bg "$work/idle-many" --socket "$work/many.sock" --max-ports 127 \
		"${idle_args[@]}" --mode idle
	idle_many=$sim
	wait_line "$work/idle-one" ready
	wait_line "$work/idle-many" ready
	sleep 1 # the daemons settle
	V[rss_one]=$(rss_kib "$one_pid")
	V[rss_many]=$(rss_kib "$many_pid")
	idle_t0=$(ticks "$many_pid")
	idle_start=$(date +%s.%N)
fi

# ---- port files and the null FUSE file ---------------------------------
if want port || want socket || want rtt || want uml; then
	daemon main --port name=bench \
		--chardev "socket,id=s,path=$work/chr.sock,server=on,wait=off" \
		--port name=sock,chardev=s
	main_pid=$daemon_pid
fi
if want port || want rtt; then
	mkdir "$work/null"
	"$build/vportfs-nullfs" "$work/null" 2>"$work/nullfs.log" &
	null_pid=$!
	pids+=($!)
	mounts+=("$work/null")
	wait_mount "$work/null"
fi
port=$work/main/bench

if want port; then
	g2h=() nullr=() h2g=() nullw=() pipe=()
	for _ in $(seq "$repeat"); do
		# guest -> host: the sim streams, the host reads the port file
		# (the first TX ring's worth untimed, as in the N-port rows:
		# a running VM's buffers are not fresh memory)
		sim_bg "$work/g2h" --socket "$work/main.sock" --port bench --mode g2h \
			--warmup "$warmup" --bytes "$bytes"
		wait_guest_open "$port"
		prof_start g2h "$main_pid" "$sim"
		"$bench" --check $((warmup + bytes)) --skip "$warmup" <"$port" >"$work/g2h.check" ||
			die "g2h check failed"
		prof_stop
		wait "$sim" || die "g2h guest failed"
		g2h+=("$(field MBps "$work/g2h.check")")
		# the same reader on the null FUSE file
		"$bench" --check $((warmup + bytes)) --skip "$warmup" <"$work/null/null" \
			>"$work/nullr.check" || die "null read failed"
		nullr+=("$(field MBps "$work/nullr.check")")

		# host -> guest (a fresh frontend: a new VM on the same daemon)
		sim_bg "$work/h2g" --socket "$work/main.sock" --port bench --mode h2g \
			--bytes "$bytes" --verify
		wait_guest_open "$port"
		prof_start h2g "$main_pid" "$sim"
		"$bench" --gen "$bytes" >"$port" 2>"$work/h2g.gen" || die "h2g writer failed"
		prof_stop
		wait "$sim" || die "h2g guest failed (or saw a wrong byte)"
		h2g+=("$(field MBps "$work/h2g.gen")")
		"$bench" --gen "$bytes" >"$work/null/null" 2>"$work/nullw.gen" || die "null write failed"
		nullw+=("$(field MBps "$work/nullw.gen")")

		# the same tools through a pipe
		"$bench" --gen "$bytes" 2>/dev/null | "$bench" --check "$bytes" >"$work/pipe.check" ||
			die "pipe check failed"
		pipe+=("$(field MBps "$work/pipe.check")")
	done
	V[g2h]=$(median "${g2h[@]}")
	V[null_read]=$(median "${nullr[@]}")
	V[h2g]=$(median "${h2g[@]}")
	V[null_write]=$(median "${nullw[@]}")
	V[pipe]=$(median "${pipe[@]}")
fi

# Is every thread of process $1 allowed on exactly one CPU?
on_one_cpu() {
	local t
	for t in /proc/"$1"/task/*; do
		[[ $(taskset -c -p "${t##*/}") =~ :\ *[0-9]+$ ]] || return 1
	done
}

# rtt_run SUFFIX [CPU]: the three round trips ([5]), every process on CPU
# when one is given (the daemon and the null FUSE server moved there for
# the while, and back); results in V[rtt$SUFFIX], V[rtt_null$SUFFIX]...
rtt_run() {
	local sfx=$1 cpu=${2:-} pin=() p mask=()
	if [ -n "$cpu" ]; then
		pin=(taskset -c "$cpu")
		for p in "$main_pid" "$null_pid"; do
			mask+=("$(taskset -p "$p" | awk '{ print $NF }')") ||
				die "cannot read the CPU affinity of $p"
			taskset -a -p -c "$cpu" "$p" >/dev/null &&
				on_one_cpu "$p" || die "cannot keep $p on CPU $cpu"
		done
	fi
	sim_pin=("${pin[@]}")
	sim_bg "$work/rtt" --socket "$work/main.sock" --port bench \
		--mode rtt --count "$rtt_count"
	sim_pin=()
	wait_guest_open "$port"
	prof_start "rtt$sfx" "$main_pid" "$sim"
	"${pin[@]}" "$bench" --echo "$port" 2>"$work/echo.log" &
	echo_pid=$!
	pids+=("$echo_pid")
	wait "$sim" || die "rtt guest failed"
	prof_stop
	wait "$echo_pid" || die "rtt echo failed" # EOF once the guest closes
	V[rtt$sfx]=$(field median_us "$work/rtt")
	V[rtt_p99$sfx]=$(field p99_us "$work/rtt")
	"${pin[@]}" "$bench" --rtt-file "$work/null/null" --count "$rtt_count" \
		>"$work/rtt-null" || die "null FUSE round trips failed"
	V[rtt_null$sfx]=$(field median_us "$work/rtt-null")
	V[rtt_null_p99$sfx]=$(field p99_us "$work/rtt-null")
	"${pin[@]}" "$bench" --rtt-pipe --count "$rtt_count" >"$work/rtt-pipe" ||
		die "pipe round trips failed"
	V[rtt_pipe$sfx]=$(field median_us "$work/rtt-pipe")
	if [ -n "$cpu" ]; then
		# Each tool says on how many CPUs it was allowed to run.
		for f in rtt rtt-null rtt-pipe; do
			[ "$(field cpus "$work/$f")" = 1 ] ||
				die "$f ran on more than one CPU: $(cat "$work/$f")"
		done
		taskset -a -p "${mask[0]}" "$main_pid" >/dev/null &&
			taskset -a -p "${mask[1]}" "$null_pid" >/dev/null ||
			die "cannot give the servers their CPUs back"
	fi
}

if want rtt; then
	# The first CPU we may use: the round trips are measured on it
	# (docs/performance.md, "Why the round trips run on one CPU").
	rtt_cpu=$(taskset -c -p $$ | sed 's/.*: *//; s/[-,].*//')
	rtt_run "" "$rtt_cpu"
	rtt_run _free
	V[rtt_floor]=$(awk -v a="${V[rtt_null]}" -v b="${V[rtt_pipe]}" 'BEGIN { printf "%.1f", a + b }')
fi

if want socket; then
	sg2h=() sh2g=() socat=()
	for _ in $(seq "$repeat"); do
		# guest -> host through the socket chardev, read by socat
		sim_bg "$work/sg2h" --socket "$work/main.sock" --port sock --mode g2h --bytes "$bytes"
		# (socat would wait for more after the last byte: it is stopped
		# once --check has all of them)
		exec {sockin}< <(socat -u UNIX-CONNECT:"$work/chr.sock" -)
		reader=$!
		pids+=("$reader")
		"$bench" --check "$bytes" <&"$sockin" >"$work/sg2h.check" || die "chardev g2h check failed"
		exec {sockin}<&-
		wait "$sim" || die "chardev g2h guest failed"
		kill "$reader" 2>/dev/null || true
		sg2h+=("$(field MBps "$work/sg2h.check")")

		# host -> guest through it, written by socat (socat ends at the
		# input's end; the chardev's client goes with it)
		sim_bg "$work/sh2g" --socket "$work/main.sock" --port sock --mode h2g \
			--bytes "$bytes" --verify
		"$bench" --gen "$bytes" 2>/dev/null | socat -u - UNIX-CONNECT:"$work/chr.sock"
		wait "$sim" || die "chardev h2g guest failed (or saw a wrong byte)"
		sh2g+=("$(field MBps "$work/sh2g")")

		# socat between two unix sockets, the same tools around it
		socat -u UNIX-LISTEN:"$work/plain.sock" - | "$bench" --check "$bytes" >"$work/plain.check" &
		plain=$!
		pids+=("$plain")
		for _ in $(seq 100); do [ -S "$work/plain.sock" ] && break; sleep 0.05; done
		"$bench" --gen "$bytes" 2>/dev/null | socat -u - UNIX-CONNECT:"$work/plain.sock"
		wait "$plain" || die "socat check failed"
		socat+=("$(field MBps "$work/plain.check")")
		rm -f "$work/plain.sock"
	done
	V[sock_g2h]=$(median "${sg2h[@]}")
	V[sock_h2g]=$(median "${sh2g[@]}")
	V[socat]=$(median "${socat[@]}")
fi

# ---- the rest of the memory rows, the end of the idle window ------------
if want memory; then
	left=$(awk -v s="$idle_start" -v n="$(date +%s.%N)" -v w="$idle_secs" \
		'BEGIN { l = w - (n - s); print (l > 0 ? l : 0) }')
	sleep "$left"
	idle_t1=$(ticks "$many_pid")
	idle_end=$(date +%s.%N)
	V[idle_ticks]=$((idle_t1 - idle_t0))
	V[idle_window]=$(awk -v s="$idle_start" -v e="$idle_end" 'BEGIN { printf "%.1f", e - s }')
	kill "$idle_many" 2>/dev/null || true
	wait "$idle_many" || true

	# per open file: the idle guest holds p0 open; the host opens it
	# read-only $nfds times (any number of readers may share a port)
	rss0=$(rss_kib "$one_pid")
	python3 - "$work/one/p0" "$nfds" "$work/fds.ready" <<'EOF' &
import os, resource, signal, sys
path, n, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < n + 16:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 16), hard))
fds = [os.open(path, os.O_RDONLY) for _ in range(n)]
open(ready, "w").close()
signal.pause()
EOF
	holder=$!
	pids+=("$holder")
	for _ in $(seq 600); do [ -e "$work/fds.ready" ] && break; sleep 0.05; done
	[ -e "$work/fds.ready" ] || die "could not open $nfds files on a port"
	sleep 0.5
	rss1=$(rss_kib "$one_pid")
	kill "$holder"
	wait "$holder" 2>/dev/null || true
	V[rss_fd]=$(awk -v a="$rss0" -v b="$rss1" -v n="$nfds" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
	kill "$idle_one" 2>/dev/null || true
	wait "$idle_one" || true
fi

# ---- N ports at once ----------------------------------------------------
if want ports; then
	for n in $ports_list; do
		per=$((bytes / n))
		args=()
		files=()
		for i in $(seq 1 "$n"); do
			args+=(--port "m$i")
			files+=("$work/many/m$i")
		done
		# one guest and one set of readers, $repeat timed rounds
		# (starting 126 readers takes seconds on a busy machine)
		# enough guest memory for every port's TX ring full of 32 KiB
		# buffers
		sim_bg "$work/ports$n" --socket "$work/many.sock" --max-ports 127 \
			--mem-mb $((64 + n * 9)) "${args[@]}" --mode g2h \
			--warmup "$warmup" --rounds "$repeat" --bytes "$per"
		wait_guest_open "${files[@]}"
		prof_start "ports$n" "$many_pid" "$sim"
		checks=()
		for f in "${files[@]}"; do
			"$bench" --check $((warmup + repeat * per)) <"$f" >/dev/null \
				2>>"$work/ports$n.check.log" &
			checks+=($!)
			pids+=($!)
		done
		for p in "${checks[@]}"; do wait "$p" || die "a reader of $n ports failed"; done
		wait "$sim" || die "the guest of $n ports failed"
		prof_stop
		mapfile -t vals < <(sed -n 's/.*MBps=\([0-9.]*\).*/\1/p' "$work/ports$n")
		V[ports$n]=$(median "${vals[@]}")
	done
fi

# ---- a UML guest's dd -----------------------------------------------------
if want uml; then
	# $repeat runs of each in one boot, port and pipe alternating; the
	# host's reader of run i opens the port before the guest's dd i.
	cat >"$work/uml-guest.sh" <<EOF
set -e
W=$work
exec 3>/dev/virtio-ports/bench
: >"\$W/uml.opened"
for i in \$(seq $repeat); do
	while [ ! -e "\$W/uml.reading.\$i" ]; do sleep 0.05; done
	sleep 0.5 # the host's open reaches the guest driver
	dd if=/dev/zero bs=64k count=$uml_count >&3 2>"\$W/uml.port.\$i"
	dd if=/dev/zero bs=64k count=$uml_count 2>/dev/null | dd of=/dev/null bs=64k 2>"\$W/uml.pipe.\$i"
done
exec 3>&-
EOF
	VPORTFS_BUILD=$build scripts/uml-run.sh --socket "$work/main.sock" \
		--timeout $((90 + repeat * uml_bytes / 5000000)) -- sh "$work/uml-guest.sh" \
		>"$work/uml.log" 2>&1 &
	uml=$!
	pids+=("$uml")
	for _ in $(seq 1800); do
		[ -e "$work/uml.opened" ] && break
		kill -0 "$uml" 2>/dev/null || break
		sleep 0.05
	done
	[ -e "$work/uml.opened" ] || die "the UML guest never opened its port"
	prof_start uml "$main_pid"
	for i in $(seq "$repeat"); do
		exec {umlin}<"$port"
		# cat's reads (the issue's row is `cat` reading): 128 KiB into
		# a page-aligned buffer.  docs/performance.md compares them
		# with 1 MiB reads.
		"$bench" --check "$uml_bytes" --zero --io-size 131072 <&"$umlin" >"$work/uml.check" 2>"$work/uml-check.log" &
		ucheck=$!
		pids+=("$ucheck")
		exec {umlin}<&-
		: >"$work/uml.reading.$i"
		wait "$ucheck" || die "the host reader of the UML guest's bytes failed"
		if [ "$i" = 1 ]; then prof_stop; fi
	done
	wait "$uml" || die "the UML guest failed"
	dd_mbps() { awk '/copied/ { printf "%.1f", $1 / $(NF - 3) / 1e6 }' "$1"; }
	ports=() pipes=()
	for i in $(seq "$repeat"); do
		ports+=("$(dd_mbps "$work/uml.port.$i")")
		pipes+=("$(dd_mbps "$work/uml.pipe.$i")")
	done
	V[uml_port]=$(median "${ports[@]}")
	V[uml_pipe]=$(median "${pipes[@]}")
fi

# ---- the table ----------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN { printf "%g MiB", b / 1048576 }'; }
echo "vportfs bench, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r)," \
	"$(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) CPUs;" \
	"$(mib "$bytes") per throughput row, median of $repeat runs"
fmt='%-36s %10s %-5s  %-30s %10s  %7s  %-7s %-5s %s\n'
# shellcheck disable=SC2059
printf "$fmt" row value unit ceiling value ratio target result how
# row NAME VALUE UNIT CEILING_NAME CEILING_VALUE TARGET HOW
# TARGET: ">=R" or "<=R" on the ratio, "=0" on the value, or "-".
row() {
	local name=$1 v=$2 unit=$3 cname=$4 c=$5 target=$6 how=$7 ratio res
	ratio=$(awk -v v="$v" -v c="$c" 'BEGIN { if (c > 0) printf "%.3f", v / c; else print "n/a" }')
	case $target in
	'>='*) res=$(awk -v r="$ratio" -v t="${target#>=}" 'BEGIN { print (r >= t ? "PASS" : "MISS") }') ;;
	'<='*) res=$(awk -v r="$ratio" -v t="${target#<=}" 'BEGIN { print (r <= t ? "PASS" : "MISS") }') ;;
	'=0') res=$(awk -v v="$v" 'BEGIN { print (v == 0 ? "PASS" : "MISS") }') ;;
	*) res=- ;;
	esac
	# shellcheck disable=SC2059
	printf "$fmt" "$name" "$v" "$unit" "$cname" "$c" "$ratio" "$target" "$res" "$how"
}
if want port; then
	row "guest->host port file" "${V[g2h]}" MB/s "null FUSE file, read" "${V[null_read]}" '>=0.6' '[1]'
	row "host->guest port file" "${V[h2g]}" MB/s "null FUSE file, write" "${V[null_write]}" '>=0.6' '[2]'
	row "guest->host port file, vs a pipe" "${V[g2h]}" MB/s "pipe, same tools" "${V[pipe]}" - '[3]'
	row "host->guest port file, vs a pipe" "${V[h2g]}" MB/s "pipe, same tools" "${V[pipe]}" - '[3]'
fi
if want socket; then
	row "guest->host socket chardev" "${V[sock_g2h]}" MB/s "socat unix->unix" "${V[socat]}" - '[4]'
	row "host->guest socket chardev" "${V[sock_h2g]}" MB/s "socat unix->unix" "${V[socat]}" - '[4]'
fi
if want rtt; then
	row "1-byte round trip, port file (med)" "${V[rtt]}" us "null FUSE write+read (med)" "${V[rtt_null]}" '<=1.3' '[5]'
	row "1-byte round trip, port file (p99)" "${V[rtt_p99]}" us "null FUSE write+read (p99)" "${V[rtt_null_p99]}" - '[5]'
	row "1-byte round trip, port file (med)" "${V[rtt]}" us "null FUSE w+r + pipe (floor)" "${V[rtt_floor]}" - '[5]'
	row "1-byte round trip, port file (med)" "${V[rtt]}" us "pipe round trip (med)" "${V[rtt_pipe]}" - '[5]'
	row "... on any CPU (med)" "${V[rtt_free]}" us "null FUSE write+read (med)" "${V[rtt_null_free]}" - '[5]'
	row "... on any CPU (med)" "${V[rtt_free]}" us "pipe round trip (med)" "${V[rtt_pipe_free]}" - '[5]'
fi
if want ports; then
	first=
	for n in $ports_list; do
		[ -n "$first" ] || first=$n
		target=-
		[ "$n" != 126 ] || target='>=0.9'
		label="$n ports guest->host at once"
		[ "$n" != 1 ] || label="1 port guest->host, alone"
		row "$label" "${V[ports$n]}" MB/s "$first port(s), aggregate" "${V[ports$first]}" "$target" '[6]'
	done
fi
if want memory; then
	row "RSS idle, 1 port" "${V[rss_one]}" KiB "4 MiB + 64 KiB/port" $((4096 + 64)) '<=1' '[7]'
	row "RSS idle, 127 ports" "${V[rss_many]}" KiB "4 MiB + 64 KiB/port" $((4096 + 127 * 64)) '<=1' '[7]'
	row "RSS per port (127 vs 1)" "$(awk -v a="${V[rss_one]}" -v b="${V[rss_many]}" 'BEGIN { printf "%.1f", (b - a) / 126 }')" \
		KiB "64 KiB/port" 64 '<=1' '[7]'
	row "RSS per open file ($nfds fds)" "${V[rss_fd]}" bytes "64 KiB (a port's budget)" 65536 - '[7]'
	row "idle CPU, guest connected" "${V[idle_ticks]}" ticks "one CPU for ${V[idle_window]} s" \
		"$(awk -v w="${V[idle_window]}" -v h="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", w * h }')" '=0' '[8]'
fi
if want uml; then
	row "UML guest dd -> port file" "${V[uml_port]}" MB/s "in-guest pipe, dd | dd" "${V[uml_pipe]}" '>=0.8' '[9]'
fi
cat <<EOF

MB/s are 10^6 bytes/s, the median of $repeat runs (BENCH_REPEAT), port and
ceiling runs interleaved; us are microseconds; every byte is verified.
[1] simulated guest (vportfs-bench --mode g2h, 32 KiB TX buffers) into a
    port; host reader vportfs-bench --check (1 MiB read()s, pattern
    checked), timed by the reader from the read that ends the guest's
    untimed $(mib "$warmup") --warmup (its buffers' first touch) to its last.
    Ceiling: the same reader, with the same --skip, on vportfs-nullfs's
    file (same open flags, init flags and loop as a port file; reads
    return the pattern).
[2] host writer vportfs-bench --gen (1 MiB write()s) into the port file,
    timed by the writer the same way; the simulated guest receives into
    4 KiB buffers and checks the pattern.  Ceiling: the same writer on the
    null FUSE file, which discards.
[3] for scale, not a ceiling: vportfs-bench --gen | vportfs-bench --check
    through a pipe, timed by the reader.
[4] simulated guest <-> unix-socket chardev (server=on) <-> socat
    (UNIX-CONNECT) <-> pipe <-> --check / --gen; g2h timed by --check, h2g
    by the guest (first byte to last, pattern checked).  Ceiling: --gen |
    socat UNIX-CONNECT -> socat UNIX-LISTEN | --check, timed by --check.
[5] $rtt_count round trips after 100 warm-up ones: the simulated guest
    sends 1 byte, vportfs-bench --echo (the port file open read-write)
    sends it back.  Ceilings: vportfs-bench --rtt-file, 1-byte write()
    then 1-byte read() on one fd of the null FUSE file (two FUSE round
    trips); vportfs-bench --rtt-pipe, 1 byte to a child and back over two
    pipes.  Every process of these rows on CPU ${rtt_cpu:-0} (taskset): a
    round trip then costs the work it does, not where the scheduler put
    its processes (a wakeup across this VM's CPUs costs tens of us, and
    two processes share a CPU or not by chance).  The floor is the null
    FUSE round trip plus a pipe round trip: a port's trip is the null's
    four hand-offs plus the guest's kick and interrupt, two more.  "On
    any CPU": the same three, unpinned, for scale.
[6] one simulated guest streams $(mib "$bytes")/N into each of N ports at
    once (TX interleaved in one loop), N --check readers in parallel;
    $repeat timed rounds (median) after $(mib "$warmup") per port untimed
    (--warmup: guest buffers and rings touched once, as in a running VM);
    aggregate MB/s as the guest measures it (first byte queued to last
    buffer returned); ratio to the first row.  A daemon with --max-ports 127 (126 generic ports:
    port 0 is for a console).
[7] VmRSS of fresh daemons (one with 1 port, one with 127), each with a
    simulated guest connected that has every port open and sends nothing
    (vportfs-bench --mode idle); per port: the difference / 126; per open
    file: the 1-port daemon's growth while a process holds $nfds read-only
    fds on its port, / $nfds.
[8] utime+stime (/proc/PID/stat) of the 127-port daemon over the window,
    its guest connected and idle; the other rows run meanwhile, on other
    daemons.
[9] a UML guest on the daemon: dd if=/dev/zero bs=64k count=$uml_count to
    /dev/virtio-ports/bench while vportfs-bench --check --zero reads the
    port file (128 KiB reads, as cat makes them; zeros checked); next, in
    the same guest, dd if=/dev/zero bs=64k count=$uml_count | dd
    of=/dev/null bs=64k; $repeat times each in one boot, alternating, the
    medians.  Both from dd's own summary line (bytes / seconds), so boot
    time is out.
EOF
for name in "${profiled[@]}"; do
	echo
	echo "profile of row '$name' ($perf_dir/$name.data): top entries, by process and symbol"
	perf report -i "$perf_dir/$name.data" --no-children --sort comm,dso,sym \
		-g none --stdio --percent-limit 1.5 2>/dev/null | grep -v '^#' | grep . | head -n 15
done
