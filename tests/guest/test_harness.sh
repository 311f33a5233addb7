#!/usr/bin/env bash
# Self-test of scripts/uml-run.sh, the UML guest harness, with no vhost-user
# backend: plain boots, exit status, output, environment, timeout, boot
# failure, an absent socket, SIGTERM and SIGKILL to the harness, two runs
# at once, a guest reboot; the XSTATE helper for hosts with large XSAVE
# areas, and guest threads that copy memory at once; a command the guest
# cannot see; the quick-start demo from a checkout under /tmp, and its fast
# failure when the guest cannot boot. Prints one line per check ("ok - ..." or
# "FAIL - ...") and exits non-zero if any check failed. Takes about 2 minutes (the demo builds
# its checkout).
#
# Leftovers are looked for by each run's work dir, which appears in UML's
# command line (init=<workdir>/init.sh): other UML guests may be running on
# the machine at the same time, so "no linux.uml at all" proves nothing.
# Zombies do not count: the host's init reaps them in its own time.

# Guest commands are single-quoted on purpose: they expand in the guest.
# shellcheck disable=SC2016
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
run=$here/../../scripts/uml-run.sh
modules=(/usr/lib/uml/modules/*)
uname_r=${modules[0]##*/}

# Under /var/tmp: the guest has its own /tmp. Also the cwd, which the
# guest command inherits.
scratch=$(mktemp -d /var/tmp/uml-harness-test.XXXXXX)
trap 'cd / && rm -rf -- "$scratch"' EXIT
cd "$scratch"

failures=0
ok() { echo "ok - $*"; }
fail() {
	echo "FAIL - $*"
	failures=$((failures + 1))
}

# live_procs DIR: how many live (non-zombie) processes of the run in DIR.
live_procs() {
	{ pgrep -f -r D,R,S,T,t,I,W,P -- "$1/init.sh" || true; } | wc -l
}

# result NAME: runs the harness with the remaining args, storing exit
# status, stdout, stderr and wall time in rc, out, err, secs.
result() {
	local name=$1
	shift
	local t0 t1
	t0=$(date +%s%N)
	rc=0
	"$run" "$@" >"$scratch/$name.out" 2>"$scratch/$name.err" || rc=$?
	t1=$(date +%s%N)
	secs=$(((t1 - t0) / 1000000))
	secs=$((secs / 1000)).$(printf '%03d' $((secs % 1000)))
	out=$(cat "$scratch/$name.out")
	err=$(cat "$scratch/$name.err")
}

# 1. A plain boot runs the command and relays its output and status.
result plain -- 'uname -r; ls /sys/class; echo hi; echo to-stderr >&2'
if [ "$rc" = 0 ] && [[ $out == "$uname_r"*tty*hi ]] && [ "$err" = to-stderr ]; then
	ok "plain boot runs the command, relays stdout and stderr (${secs}s)"
else
	fail "plain boot: rc=$rc out=[$out] err=[$err]"
fi
boot1=$secs

# 2. The command's exit status is the harness's.
result exit7 -- 'exit 7'
if [ "$rc" = 7 ]; then
	ok "exit 7 in the guest gives 7"
else
	fail "exit 7 gave $rc: $err"
fi
boot2=$secs

# 3. Several words are one sh -c command; the guest's environment.
touch "/tmp/uml-harness-host-only.$$"
result env --env 'GREETING=it'\''s "quoted"' -- \
	'echo "$GREETING|$PATH|$HOME"; ls /tmp | wc -l; test -d /sys/module/virtio_console && echo module;' \
	'test -L /dev/fd && echo devfd; pwd'
rm -f "/tmp/uml-harness-host-only.$$"
want="it's \"quoted\"|/usr/sbin:/usr/bin:/sbin:/bin|/root
0
module
devfd
$scratch"
if [ "$rc" = 0 ] && [ "$out" = "$want" ]; then
	ok "--env, PATH/HOME, private /tmp, virtio_console loaded, /dev/fd, caller's cwd"
else
	fail "guest environment: rc=$rc out=[$out] want=[$want] err=[$err]"
fi
boot3=$secs

# 4. Timeout: 124, the console tail on stderr, no process left.
result timeout --timeout 10 --workdir "$scratch/to" -- 'echo started; sleep 1000'
left=$(live_procs "$scratch/to")
# The console tail names no file it removed at exit.
if [ "$rc" = 124 ] && [ "$out" = started ] && [[ $err == *"timeout after 10s"* ]] &&
	[ "$left" = 0 ] && [ -z "$(ls -A "$scratch/to")" ] &&
	[[ $err == *"last console lines (--keep keeps the whole log)"* ]]; then
	ok "sleep 1000 with --timeout 10 gives 124 after ${secs}s, nothing left behind"
else
	fail "timeout: rc=$rc after ${secs}s, $left processes left, out=[$out] err=[${err:0:200}]"
fi

# 5. A guest that cannot boot: 125 and the console tail.
result nomem --mem 4M -- 'echo should-not-run'
if [ "$rc" = 125 ] && [ -z "$out" ] && [[ $err == *"did not run the command"* ]]; then
	ok "boot failure (--mem 4M) gives 125 with the console tail"
else
	fail "boot failure: rc=$rc out=[$out] err=[${err:0:200}]"
fi

# 6. A socket nobody listens on: the guest boots without the device and
# does not sit out the port wait.
result nosock --socket "$scratch/nobody.sock" --port-wait 10 -- \
	'ls /sys/class/virtio-ports | wc -l; test -e /dev/virtio-ports || echo no-links'
if [ "$rc" = 0 ] && [ "$out" = "0
no-links" ] && [ "${secs%.*}" -lt 8 ]; then
	ok "absent socket: boots without virtio ports in ${secs}s"
else
	fail "absent socket: rc=$rc after ${secs}s out=[$out] err=[$err]"
fi

# 7. SIGTERM to the harness kills the guest and cleans up.
"$run" --workdir "$scratch/sig" -- 'sleep 1000' >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do
	[ ! -e "$scratch/sig/started" ] || break
	sleep 0.1
done
before=$(live_procs "$scratch/sig")
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
left=$(live_procs "$scratch/sig")
if [ "$rc" = 143 ] && [ "$before" -gt 0 ] && [ "$left" = 0 ] &&
	[ -z "$(ls -A "$scratch/sig")" ]; then
	ok "SIGTERM to the harness: 143, all $before UML processes gone"
else
	fail "SIGTERM: rc=$rc, $before processes before, $left after"
fi

# 8. SIGKILL to the harness: its guard process still kills the guest.
"$run" --workdir "$scratch/kill" -- 'sleep 1000' >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do
	[ ! -e "$scratch/kill/started" ] || break
	sleep 0.1
done
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
for _ in $(seq 30); do
	[ "$(live_procs "$scratch/kill")" != 0 ] || break
	sleep 0.1
done
left=$(live_procs "$scratch/kill")
if [ "$left" = 0 ]; then
	ok "SIGKILL to the harness: no UML process left"
else
	fail "SIGKILL: $left UML processes left"
	pkill -KILL -f -- "$scratch/kill/init.sh" || true
fi

# 9. Two runs at once, from different directories.
(cd / && exec "$run" -- 'echo one; exit 3') >"$scratch/c1.out" 2>&1 &
p1=$!
(cd /var && exec "$run" -- 'echo two; exit 4') >"$scratch/c2.out" 2>&1 &
p2=$!
rc1=0 rc2=0
wait "$p1" || rc1=$?
wait "$p2" || rc2=$?
if [ "$rc1" = 3 ] && [ "$rc2" = 4 ] && [ "$(cat "$scratch/c1.out")" = one ] &&
	[ "$(cat "$scratch/c2.out")" = two ]; then
	ok "two concurrent runs keep their output and status apart"
else
	fail "concurrent runs: rc=$rc1/$rc2 out=[$(cat "$scratch/c1.out")]/[$(cat "$scratch/c2.out")]"
fi

# 10. A guest reboot boots UML again and reruns the command.
result reboot -- 'echo "boot $UML_BOOT"; [ "$UML_BOOT" != 1 ] || reboot -f; exit 9'
if [ "$rc" = 9 ] && [ "$out" = "boot 1
boot 2" ]; then
	ok "reboot -f in the guest reruns the command with UML_BOOT=2 (${secs}s)"
else
	fail "reboot: rc=$rc out=[$out] err=[${err:0:2000}]"
fi

# --- UML 6.1 on any host XSAVE size (docs/uml-xstate.md) ---------------

# 11. Every boot runs with the XSTATE helper, which says what it found.
result xstate --console-log "$scratch/xstate.log" -- 'echo booted'
line=$(grep -a -o -m1 'uml-xstate: .*' "$scratch/xstate.log" || true)
re='^uml-xstate: host XSAVE area (at most )?([0-9]+) bytes( \(CPUID\))?, UML buffer ([0-9]+) bytes: (passthrough|overlay) \(mode auto\)$'
if [ "$rc" = 0 ] && [ "$out" = booted ] && [[ $line =~ $re ]]; then
	host_area=${BASH_REMATCH[2]} uml_buf=${BASH_REMATCH[4]} action=${BASH_REMATCH[5]}
	if { [ "$uml_buf" -ge "$host_area" ] && [ "$action" = passthrough ]; } ||
		{ [ "$uml_buf" -lt "$host_area" ] && [ "$action" = overlay ]; }; then
		ok "helper applied: host XSAVE area $host_area bytes, UML's buffer $uml_buf bytes: $action"
	else
		fail "helper chose $action for host $host_area bytes and UML $uml_buf bytes"
	fi
	if [ "$action" = overlay ]; then
		echo "# this host needs the fix: without it UML panics at boot"
	else
		echo "# this host does not need the fix: UML's own buffer holds its area"
	fi
else
	fail "XSTATE helper report: rc=$rc out=[$out] line=[$line] err=[${err:0:300}]"
fi

# 12-14. Guest programs compute correctly: threads copying and comparing
# memory at once lose nothing, with the helper deciding (auto) and with
# its whole-area path forced on this host (overlay). UML's FXSAVE fallback
# (fxsave) must be caught by the same program, or it proves nothing.
build=${VPORTFS_BUILD:-$here/../../build}
install -m 0755 "$build/vector_stress" "$scratch/vector_stress"
stress_re='^vector_stress: 4 threads x 3000 rounds x 1 MiB: 0 mismatches$'
for mode in auto overlay; do
	UML_XSTATE=$mode result "stress-$mode" --timeout 120 -- "$scratch/vector_stress 4 3000 1"
	if [ "$rc" = 0 ] && [[ $out =~ $stress_re ]]; then
		ok "4 guest threads x 3000 memcpy+memcmp of 1 MiB, helper mode $mode: no mismatch (${secs}s)"
	else
		fail "vector stress, mode $mode: rc=$rc out=[$out] err=[${err:0:300}]"
	fi
done
UML_XSTATE=fxsave result stress-fxsave --timeout 120 -- "$scratch/vector_stress 4 3000 1"
if [ "$rc" != 0 ] && ! [[ $out =~ $stress_re ]]; then
	ok "the FXSAVE fallback is caught: rc=$rc, out=[${out:0:80}]"
else
	fail "FXSAVE fallback not caught by the vector stress: rc=$rc out=[$out]"
fi

# 15-16. A UML whose buffer is smaller than the host's area (as on AMX
# hosts, emulated here with 832 bytes, the size older builds pass): with
# the helper off it panics as reported, fast and with the reason; with the
# helper it boots.
UML_XSTATE=off UML_XSTATE_EMULATE=832 result small-off --timeout 60 -- 'echo should-not-run'
if [ "$rc" = 125 ] && [ -z "$out" ] && [[ $err == *"ptrace set fp regs failed, errno = 14"* ]] &&
	[[ $err == *"uml-xstate: UML buffer 832 bytes (emulated): passed through unchanged"* ]] &&
	[ "${secs%.*}" -lt 20 ]; then
	ok "an 832-byte UML without the helper panics (errno 14), reported in ${secs}s"
else
	fail "832-byte UML, helper off: rc=$rc after ${secs}s out=[$out] err=[${err:0:400}]"
fi
UML_XSTATE_EMULATE=832 result small-auto --console-log "$scratch/small.log" -- 'echo booted'
if [ "$rc" = 0 ] && [ "$out" = booted ] &&
	grep -a -q 'UML buffer 832 bytes (emulated): overlay (mode auto)' "$scratch/small.log"; then
	ok "an 832-byte UML with the helper boots and runs the command"
else
	fail "832-byte UML with the helper: rc=$rc out=[$out] err=[${err:0:300}]"
fi

# 17. Bad helper settings are refused before booting.
UML_XSTATE=bogus result badmode -- 'true'
if [ "$rc" = 125 ] && [[ $err == *"bad UML_XSTATE: bogus"* ]]; then
	ok "UML_XSTATE=bogus refused with 125"
else
	fail "UML_XSTATE=bogus: rc=$rc err=[$err]"
fi

# 18. A reboot UML botches (killed by a signal right after "reboot:
# Restarting system", as UML 6.1 sometimes is) is redone by the harness.
# A stand-in kernel does that on its first run and, on its second, what a
# guest would: write the command's output and status in the work dir.
fake=$scratch/fake-uml
cat >"$fake" <<'FAKE'
#!/bin/bash
for a in "$@"; do case $a in init=*) work=${a#init=}; work=${work%/init.sh} ;; esac; done
if [ ! -e "$work/fake-booted" ]; then
	: >"$work/fake-booted"
	echo "reboot: Restarting system"
	kill -ABRT $$
fi
: >"$work/started"
echo second-boot >"$work/stdout"
echo 0 >"$work/status"
FAKE
chmod +x "$fake"
UML_KERNEL=$fake result redo --workdir "$scratch/redo" -- 'true'
if [ "$rc" = 0 ] && [ "$out" = second-boot ] &&
	[[ $err == *"UML killed by signal 6 while rebooting; starting it again"* ]]; then
	ok "a reboot UML botched (SIGABRT) is redone, and said so"
else
	fail "botched reboot: rc=$rc out=[$out] err=[${err:0:300}]"
fi
rm -rf -- "$scratch/redo"

# --- Checkouts at any path ------------------------------------------------

# 19. A program the guest cannot see (its /tmp is its own) is refused with
# the reason, not run into "not found".
result hidden -- '/tmp/somewhere/prog --flag'
if [ "$rc" = 125 ] && [[ $err == *"the guest cannot see /tmp/somewhere/prog"* ]] &&
	[ "${secs%.*}" -lt 5 ]; then
	ok "a command under the host's /tmp is refused at once with the reason"
else
	fail "hidden command: rc=$rc after ${secs}s err=[$err]"
fi

# 20-21. The quick start's demo from a checkout under /tmp, built there:
# it shows the exchange; and when the guest cannot boot it stops within
# seconds with the reason and a non-zero status.
repo=$(cd "$here/../.." && pwd)
checkout=$(mktemp -d /tmp/vportfs-checkout.XXXXXX)
trap 'cd / && rm -rf -- "$scratch" "$checkout"' EXIT
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - --) | tar -xf - -C "$checkout"
t0=$SECONDS
rc=0
(unset VPORTFS_BUILD; exec timeout 300 "$checkout/scripts/demo.sh" --once) \
	>"$scratch/demo.out" 2>&1 || rc=$?
if [ "$rc" = 0 ] && grep -q 'GUEST SAYS: HELLO FROM THE HOST' "$scratch/demo.out" &&
	grep -q 'vportfs demo guest up' "$scratch/demo.out"; then
	ok "scripts/demo.sh --once from a checkout under /tmp ($((SECONDS - t0))s, build included)"
else
	fail "demo from $checkout: rc=$rc: $(tail -n 15 "$scratch/demo.out")"
fi
t0=$SECONDS
rc=0
(unset VPORTFS_BUILD; UML_XSTATE=off UML_XSTATE_EMULATE=832 exec timeout 120 \
	"$checkout/scripts/demo.sh" --once) >"$scratch/demo-fail.out" 2>&1 || rc=$?
took=$((SECONDS - t0))
if [ "$rc" = 1 ] && [ "$took" -lt 30 ] &&
	grep -q 'ptrace set fp regs failed' "$scratch/demo-fail.out"; then
	ok "demo.sh with a guest that panics at boot stops in ${took}s with the reason, status 1"
else
	fail "demo with a panicking guest: rc=$rc after ${took}s: $(tail -n 15 "$scratch/demo-fail.out")"
fi

echo "# boot+run+poweroff wall time of small commands: ${boot1}s ${boot2}s ${boot3}s"
if [ "$failures" = 0 ]; then
	echo "# all harness checks passed"
else
	echo "# $failures harness check(s) failed"
fi
[ "$failures" = 0 ]
