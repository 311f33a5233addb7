#!/usr/bin/env bash
# uml-run.sh — boot a User-Mode-Linux guest, run one command in it, return
# the command's exit status. The guest harness of tests/guest/.
#
# The guest's root is the host's / over hostfs, so it runs the host's
# binaries and sees the host's files (except /tmp, /run, /dev, /proc, /sys,
# which it mounts privately). With --socket it gets a virtio-console device
# served over vhost-user from SOCK (the vportfs daemon must already listen:
# UML connects once, at boot), and /dev/virtio-ports/<name> links.
#
# The one design choice: the host and the guest talk only through files in
# a per-run work dir under /var/tmp (visible to both over hostfs), never
# through the kernel command line or the UML console, so commands, output
# and status survive any quoting and any console noise.
#
# Exit status: the command's; 124 on timeout; 125 if the guest did not run
# the command (boot failure, bad usage). In both error cases the tail of
# the console log goes to stderr.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: uml-run.sh [options] -- GUEST_COMMAND...

Boots linux.uml with the host's / as root and runs GUEST_COMMAND in it with
sh -c (several words are joined with spaces, as ssh does). The command's
stdout and stderr are copied to ours once the guest has stopped.

  --socket SOCK        vhost-user socket of a virtio-console backend
                       (virtio_uml.device=SOCK:3); omit for a plain boot
  --timeout SECS       whole run, boot included (default 60) -> exit 124
  --mem SIZE           guest memory (default 256M)
  --port-wait SECS     with --socket, how long the guest waits for its
                       virtio ports to appear and settle (default 10)
  --env NAME=VALUE     add to the command's environment (repeatable)
  --workdir DIR        work dir (default: mktemp -d /var/tmp/uml-run.XXXXXX);
                       must be visible in the guest, so not under /tmp
  --console-log FILE   UML console and kernel log (default WORKDIR/console.log)
  --keep               keep the work dir (and the console log in it) and
                       print its name on stderr; so does UML_RUN_KEEP=1
  -h, --help           this text

Inside the guest: PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root, stdin is
/dev/null, the cwd is the caller's if the guest can see it (else /),
$UML_WORKDIR is the work dir, and "$UML_INIT" wait-port NAME [SECS] waits
for a hot-plugged port and creates its /dev/virtio-ports link. A guest
"reboot -f" boots UML again and reruns the command with UML_BOOT=2, 3, ...
(1 on the first boot); the output of all boots is kept, the last status
returned.
Whatever the guest runs or reads must be outside /tmp, /run, /dev, /proc
and /sys, which it mounts privately: a command whose program lies there
is refused (exit 125) instead of failing inside the guest.

UML 6.1 and large host XSAVE areas (AVX-512, AMX): linux.uml always runs
with the uml-xstate.so helper preloaded (docs/uml-xstate.md), built from
this checkout if missing. It gives UML's FPU save and restore the host's
full XSAVE area and writes one "uml-xstate:" line to the console log.

Environment:
  UML_KERNEL           the kernel binary (default linux.uml)
  UML_XSTATE           the helper's mode: auto (default: full area only
                       where UML's buffer is too small), overlay (always),
                       fxsave (hide XSTATE: UML's FXSAVE fallback, which
                       corrupts guest programs; for tests), off
  UML_XSTATE_EMULATE   for tests: act as a UML whose buffer is N bytes
  UML_XSTATE_PRELOAD   the helper's path (default: BUILD/uml-xstate.so,
                       BUILD being $VPORTFS_BUILD or the checkout's build/)
EOF
}

die_usage() {
	echo "uml-run: $*" >&2
	echo "uml-run: try --help" >&2
	exit 125
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
init_src=$script_dir/uml-init.sh

socket=
timeout=60
mem=256M
port_wait=10
workdir=
console_log=
keep=${UML_RUN_KEEP:-0}
envs=()

while [ $# -gt 0 ]; do
	case $1 in
	--socket | --timeout | --mem | --port-wait | --env | --workdir | --console-log)
		[ $# -ge 2 ] || die_usage "$1 needs a value"
		case $1 in
		--socket) socket=$2 ;;
		--timeout) timeout=$2 ;;
		--mem) mem=$2 ;;
		--port-wait) port_wait=$2 ;;
		--env) envs+=("$2") ;;
		--workdir) workdir=$2 ;;
		--console-log) console_log=$2 ;;
		esac
		shift 2
		;;
	--keep)
		keep=1
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	--)
		shift
		break
		;;
	*) die_usage "unknown option: $1" ;;
	esac
done
[ $# -gt 0 ] || die_usage "no guest command given"
command_text="$*"

[[ $timeout =~ ^[1-9][0-9]*$ ]] || die_usage "bad --timeout: $timeout"
[[ $port_wait =~ ^[0-9]+$ ]] || die_usage "bad --port-wait: $port_wait"
[[ $keep == [01] ]] || die_usage "UML_RUN_KEEP must be 0 or 1"
[[ $mem =~ ^[1-9][0-9]*[KMG]?$ ]] || die_usage "bad --mem: $mem"
for kv in ${envs[@]+"${envs[@]}"}; do
	[[ $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die_usage "bad --env: $kv"
	[[ $kv != *$'\n'* ]] || die_usage "--env values cannot hold newlines"
done

kernel=$(command -v "${UML_KERNEL:-linux.uml}") ||
	die_usage "UML kernel ${UML_KERNEL:-linux.uml} not found (apt-get install user-mode-linux)"

case ${UML_XSTATE:-auto} in
auto | overlay | fxsave | off) ;;
*) die_usage "bad UML_XSTATE: $UML_XSTATE (auto, overlay, fxsave or off)" ;;
esac
if [ -n "${UML_XSTATE_EMULATE:-}" ]; then
	[[ $UML_XSTATE_EMULATE =~ ^[1-9][0-9]*$ ]] &&
		[ "$UML_XSTATE_EMULATE" -ge 512 ] && [ "$UML_XSTATE_EMULATE" -le 1048576 ] ||
		die_usage "bad UML_XSTATE_EMULATE: $UML_XSTATE_EMULATE (512 to 1048576 bytes)"
fi

# The XSTATE helper (see --help): found in the build dir, or built there.
repo=$(cd "$script_dir/.." && pwd)
# XSAVE is x86's: elsewhere there is nothing to fix and no helper.
preload=${UML_XSTATE_PRELOAD:-}
if [ -z "$preload" ] && [ "$(uname -m)" = x86_64 ]; then
	build=${VPORTFS_BUILD:-$repo/build}
	preload=$build/uml-xstate.so
	stale=0
	for src in "$repo"/src/uml/*.c "$repo/include/vportfs/uml_xstate.h"; do
		[ "$preload" -nt "$src" ] || stale=1
	done
	if [ "$stale" = 1 ]; then
		{
			[ -f "$build/CMakeCache.txt" ] ||
				cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
			cmake --build "$build" --target uml-xstate
		} >/dev/null 2>&1 ||
			die_usage "cannot build $preload (cmake --build $build --target uml-xstate)"
	fi
fi
[ -z "$preload" ] || [ -f "$preload" ] ||
	die_usage "UML_XSTATE_PRELOAD: no such file: $preload"

# Paths that go on the kernel command line: it splits on blanks, and
# virtio_uml cuts the socket path at the first ':'.
cmdline_safe() {
	[[ $1 =~ ^[A-Za-z0-9._/+@%,-]+$ ]]
}

# Whether the guest sees this host path as the host does: it mounts its own
# /tmp, /run, /dev, /proc and /sys over the host's.
guest_visible() {
	local p
	p=$(realpath -m -- "$1")
	case $p/ in
	/tmp/* | /run/* | /dev/* | /proc/* | /sys/*) return 1 ;;
	esac
	return 0
}

if [ -n "$socket" ]; then
	[[ $socket == /* ]] || socket=$PWD/$socket
	cmdline_safe "$socket" ||
		die_usage "socket path must match [A-Za-z0-9._/+@%,-]: $socket"
	# sun_path is 108 bytes with the NUL.
	[ ${#socket} -le 107 ] || die_usage "socket path too long: $socket"
	[ -S "$socket" ] ||
		echo "uml-run: warning: no socket at $socket; the guest gets no virtio-console device" >&2
fi

# A program the guest cannot see fails there with a bare "not found";
# say why here instead. Only the first word: the rest is the command's.
read -r first_word _ <<<"$command_text" || true
if [[ ${first_word:-} == /* ]] && ! guest_visible "$first_word"; then
	die_usage "the guest cannot see $first_word (it has its own /tmp, /run, /dev, /proc and /sys): copy it under /var/tmp"
fi

created_workdir=0
if [ -n "$workdir" ]; then
	# Checked before creating it, so a rejected path leaves nothing behind.
	workdir=$(realpath -m -- "$workdir")
	cmdline_safe "$workdir" ||
		die_usage "work dir path must match [A-Za-z0-9._/+@%,-]: $workdir"
	guest_visible "$workdir" ||
		die_usage "work dir $workdir is hidden from the guest (use /var/tmp)"
	mkdir -p -- "$workdir"
else
	workdir=$(mktemp -d /var/tmp/uml-run.XXXXXX)
	created_workdir=1
fi

default_log=0
if [ -z "$console_log" ]; then
	console_log=$workdir/console.log
	default_log=1
fi
[[ $console_log == /* ]] || console_log=$PWD/$console_log

# Everything this run puts in the work dir, so that a caller's --workdir is
# emptied of our files only.
run_files=(init.sh config env cmd fstab boots started stdout stderr status)

uml_pid=
watchdog_pid=
guard_fd=
cleaned=0

# Kill the UML process group outright: everything UML leaves is in the
# work dir (its memory file is already unlinked), so a clean shutdown buys
# nothing. The pid as well as the group: a signal may come before the
# background subshell has reached setsid. Reaping the main process inside
# the redirect keeps bash's "Killed" job notice off stderr.
# Returns once no live process of the group remains; zombies do not count
# (UML's helpers are reparented to the host's init, which reaps them when
# it gets round to it).
kill_uml() {
	[ -n "$uml_pid" ] || return 0
	{
		kill -KILL -- "-$uml_pid" "$uml_pid"
		wait "$uml_pid"
	} 2>/dev/null || true
	local _
	for _ in $(seq 50); do
		pgrep -g "$uml_pid" -r D,R,S,T,t,I,W,P >/dev/null || break
		sleep 0.1
	done
	uml_pid=
	release_guard
}

# Stand the guard down (see start_guard). In a subshell that ignores
# SIGPIPE, in case the guard is already gone.
release_guard() {
	[ -n "$guard_fd" ] || return 0
	(
		trap '' PIPE
		echo released >&"$guard_fd"
	) 2>/dev/null || true
	exec {guard_fd}>&-
	guard_fd=
}

# A SIGKILL of this script runs no trap, and UML, in its own session,
# would live on. So a guard process waits on a pipe whose write end only
# this script holds (UML and the watchdog started before it, so they have
# no copy): EOF without a "released" means we died, and the guard kills the
# UML group and the watchdog and removes a work dir we made. It ignores
# the signals a caller sends to our whole process group (Ctrl-C, timeout
# (1)), so that it is still there if a SIGKILL follows.
start_guard() {
	local pgid=$1 watchdog=$2 dir=
	[ "$created_workdir" = 0 ] || [ "$keep" = 1 ] || dir=$workdir
	# Its stdout/stderr go to /dev/null: a caller reading our output
	# through a pipe must see EOF when we exit, not when the guard does.
	exec {guard_fd}> >(
		trap '' INT TERM HUP
		exec >/dev/null 2>&1
		word=
		read -r word || true
		if [ "$word" != released ]; then
			kill -KILL -- "-$pgid" "$watchdog"
			[ -z "$dir" ] || rm -rf -- "$dir"
		fi
	)
}

# shellcheck disable=SC2317 # invoked from traps
cleanup() {
	[ "$cleaned" = 0 ] || return 0
	cleaned=1
	kill_uml
	if [ -n "$watchdog_pid" ]; then
		kill "$watchdog_pid" 2>/dev/null || true
		wait "$watchdog_pid" 2>/dev/null || true
	fi
	if [ "$keep" = 1 ]; then
		echo "uml-run: kept $workdir" >&2
		return 0
	fi
	if [ "$created_workdir" = 1 ]; then
		rm -rf -- "$workdir"
	else
		(cd "$workdir" && rm -rf -- "${run_files[@]}" uml)
		[ "$default_log" = 0 ] || rm -f -- "$console_log"
	fi
}

# shellcheck disable=SC2317 # invoked from traps
on_signal() {
	trap - INT TERM HUP
	cleanup
	exit "$1"
}

trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP

# Stale files from an earlier --keep run in the same dir would fake a result.
(cd "$workdir" && rm -rf -- "${run_files[@]}" uml)

shq() {
	printf "'%s'" "${1//\'/\'\\\'\'}"
}

install -m 0755 "$init_src" "$workdir/init.sh"
printf '%s\n' "$command_text" >"$workdir/cmd"
: >"$workdir/env"
for kv in ${envs[@]+"${envs[@]}"}; do
	printf '%s\n' "$kv" >>"$workdir/env"
done
guest_cwd=/
! guest_visible "$PWD" || guest_cwd=$PWD
{
	echo "UML_WANT_PORTS=$([ -n "$socket" ] && echo 1 || echo 0)"
	echo "UML_PORT_WAIT=$port_wait"
	echo "UML_CWD=$(shq "$guest_cwd")"
} >"$workdir/config"

uml_args=(
	"mem=$mem"
	rootfstype=hostfs rootflags=/ rw
	"init=$workdir/init.sh"
	# All consoles and serial lines to null, except con0's output (the
	# kernel log and init's messages), which goes to fd 1 = the log file.
	con=null ssl=null "con0=null,fd:1"
	# The mconsole socket and pid file go in the work dir, not ~/.uml,
	# so that a killed run leaves nothing behind and runs never collide.
	"uml_dir=$workdir/uml" umid=guest
)
[ -z "$socket" ] || uml_args+=("virtio_uml.device=$socket:3")

# setsid: UML is several host processes (kernel, one per guest address
# space, I/O helpers); a session of its own lets us kill them all as one
# group, and keeps the caller's Ctrl-C from reaching them behind our back.
# A background job of a non-interactive shell is no group leader, so
# setsid does not fork and $! is UML's pid = its process group id.
# TMPDIR: UML creates (and unlinks) its guest-memory file there.
# ulimit -c 0: a guest panic makes UML abort(), which would dump 256M+ core.
# stdin /dev/null: UML must never read the caller's terminal.
# LD_PRELOAD: the XSTATE helper (see --help); helpers UML execs inherit it
# and are untouched by it.
# LIBC_FATAL_STDERR_: glibc's fatal messages (a failed malloc check before
# an abort) go to stderr, the console log, instead of a tty UML lacks.
# $1: ">" for the first boot, ">>" to append to the console log.
start_uml() {
	local redirect=$1
	(
		cd "$workdir"
		ulimit -c 0
		# shellcheck disable=SC2016 # expanded by eval below
		eval 'exec '"$redirect"'"$console_log" 2>&1'
		[ -z "$preload" ] || export LD_PRELOAD=$preload${LD_PRELOAD:+:$LD_PRELOAD}
		TMPDIR=$workdir LIBC_FATAL_STDERR_=1 \
			exec setsid "$kernel" "${uml_args[@]}"
	) </dev/null &
	uml_pid=$!
	start_guard "$uml_pid" "$watchdog_pid"
}

# Did UML die in the host-side part of a reboot the guest asked for (its
# console ends with the kernel's "reboot: Restarting system")?  UML 6.1
# re-executes itself there, and was seen here killed by SIGABRT instead,
# about once in 80 reboots (see docs/uml-xstate.md).
died_rebooting() {
	[ "$uml_status" -gt 128 ] && [ ! -e "$workdir/status" ] &&
		[ "$(grep -a -v '^ *$' -- "$console_log" | tail -n 1)" = "reboot: Restarting system" ]
}

sleep "$timeout" >/dev/null 2>&1 &
watchdog_pid=$!
start_uml ">"
reboot_redos=0
while :; do
	# (stderr: bash's own "Aborted" notice when a panic aborts UML.)
	# The status is UML's when it ended first: said with the console tail.
	uml_status=0
	wait -n "$uml_pid" "$watchdog_pid" 2>/dev/null || uml_status=$?
	timed_out=0
	if kill -0 "$uml_pid" 2>/dev/null; then
		timed_out=1
	fi
	# UML's main process is gone; helpers it left get the same treatment.
	kill_uml
	# Do the reboot UML botched: what it would have done next is exec
	# itself with the same arguments, in the same work dir.
	if [ "$timed_out" = 0 ] && [ "$reboot_redos" -lt 10 ] && died_rebooting; then
		reboot_redos=$((reboot_redos + 1))
		echo "uml-run: UML killed by signal $((uml_status - 128)) while rebooting; starting it again" |
			tee -a "$console_log" >&2
		start_uml ">>"
		continue
	fi
	break
done
kill "$watchdog_pid" 2>/dev/null || true
wait "$watchdog_pid" 2>/dev/null || true
watchdog_pid=

# The guest's output, even after a timeout: it helps to see how far it got.
[ ! -f "$workdir/stdout" ] || cat -- "$workdir/stdout"
[ ! -f "$workdir/stderr" ] || cat -- "$workdir/stderr" >&2

# The last lines that say something: a panic's call trace (" [<addr>] ...")
# would push the reason off the end.
console_tail() {
	# Name the log only if it outlives us (ours goes at exit unless --keep).
	local where=$console_log
	[ "$default_log" = 0 ] || [ "$keep" = 1 ] || where="--keep keeps the whole log"
	echo "uml-run: $1; last console lines ($where):" >&2
	{
		grep -a -o -m1 'uml-xstate: .*' -- "$console_log" 2>/dev/null || true
		grep -a -v -E '^ *\[<[0-9a-f]+>\]|uml-xstate: ' -- "$console_log" 2>/dev/null | tail -n 20 || true
	} | sed 's/^/uml-run: | /' >&2
}

if [ "$timed_out" = 1 ]; then
	if [ -e "$workdir/started" ]; then
		console_tail "timeout after ${timeout}s while the command ran"
	else
		console_tail "timeout after ${timeout}s before the command started"
	fi
	exit 124
fi

status=$(cat -- "$workdir/status" 2>/dev/null || true)
if [[ $status =~ ^[0-9]+$ ]] && [ "$status" -le 255 ]; then
	exit "$status"
fi
how="UML exit status $uml_status"
[ "$uml_status" -le 128 ] || how="UML killed by signal $((uml_status - 128))"
if [ -e "$workdir/started" ]; then
	console_tail "the guest stopped before the command finished ($how)"
else
	console_tail "the guest did not run the command (boot failure, $how)"
fi
exit 125
