#!/usr/bin/env bash
# Install what is missing, build with -Werror, run every test suite (unit,
# integration, sanitize, fuzz, load, guest) and end with one summary line.
# Exit status is non-zero if anything failed.  CI (.ci/run) runs exactly
# this.
#
#   scripts/test.sh [unit|integration|sanitize|fuzz|load|guest ...]
#                                                        (default: all)
#
# sanitize: the unit and integration suites again, on an ASan+UBSan build
# (build-asan/); any report of either, in any process, fails it.
# fuzz: each libFuzzer harness of tests/fuzz/ for 15 s (60 s in all) from
# its corpus in the repository (tests/fuzz/README.md runs them longer).
# load: tests/load, about a minute: 10,000 open/close and 1,000 hot-plug
# cycles, 127 ports streaming with the simulated guest, 31 in a UML guest;
# each prints the daemon's resident memory and fds before and after, and
# fails if they grew past what the design allows.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(unit integration sanitize fuzz load guest)

scripts/install-deps.sh || { echo "test.sh: installing dependencies failed"; exit 1; }

# A machine without what the tests need fails loudly, never skips.
for need in /dev/fuse /usr/bin/linux.uml; do
	[ -e "$need" ] || { echo "test.sh: $need is missing: cannot test"; exit 1; }
done

build=${VPORTFS_BUILD:-$root/build}
export VPORTFS_BUILD=$build
cmake -S . -B "$build" -DVPORTFS_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
	cmake --build "$build" -j"$(nproc)" >/dev/null ||
	{ cmake --build "$build" 2>&1 | tail -40; echo "test.sh: build FAILED"; exit 1; }

declare -A result
failed=0
vportfs_mounts() { grep ' fuse.vportfs ' /proc/mounts | sort || true; }
mounts_before=$(vportfs_mounts)

run() {
	local name=$1 limit=$2
	shift 2
	echo "=== $name"
	if timeout --kill-after=10 "$limit" "$@"; then
		result[$name]=pass
	else
		result[$name]="FAIL($?)"
		failed=1
	fi
}

# The unit and integration suites on an ASan+UBSan build.  Reports go to
# files, so that one in a daemon whose exit status no test looks at still
# fails the run.
sanitize() {
	local san=${VPORTFS_SAN_BUILD:-$root/build-asan} logs flags
	flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
	flags+=" -fno-omit-frame-pointer"
	if ! { cmake -S . -B "$san" -DVPORTFS_WERROR=ON -DCMAKE_BUILD_TYPE=Debug \
		-DCMAKE_C_FLAGS="$flags" \
		-DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
		-DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" \
		>/dev/null && cmake --build "$san" -j"$(nproc)" >/dev/null; }; then
		echo "test.sh: sanitizer build FAILED"
		result[sanitize]="FAIL(build)"
		failed=1
		return
	fi
	logs=$(mktemp -d /var/tmp/vportfs-san.XXXXXX)
	ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=1" \
	UBSAN_OPTIONS="print_stacktrace=1:log_path=$logs/ubsan" \
	VPORTFS_BUILD=$san run sanitize-unit 300 \
		ctest --test-dir "$san" --output-on-failure --timeout 120
	ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=1" \
	UBSAN_OPTIONS="print_stacktrace=1:log_path=$logs/ubsan" \
	VPORTFS_BUILD=$san run sanitize-integration 1200 \
		python3 -m unittest discover -s tests/integration
	if compgen -G "$logs/*" >/dev/null; then
		echo "test.sh: sanitizer reports:"
		head -n 60 "$logs"/*
		result[sanitize-reports]=FAIL
		failed=1
	fi
	rm -rf "$logs"
}

# A bounded smoke of every fuzz harness; what it finds is new corpus in a
# scratch dir, never written into the repository's.
fuzz() {
	local out=${VPORTFS_FUZZ_BUILD:-$root/build-fuzz} scratch name
	if ! tests/fuzz/build.sh "$out" >/dev/null; then
		echo "test.sh: fuzz build FAILED"
		result[fuzz]="FAIL(build)"
		failed=1
		return
	fi
	scratch=$(mktemp -d /var/tmp/vportfs-fuzz.XXXXXX)
	# A crashing input is kept in the build dir, and named in the output.
	mkdir -p "$out/artifacts"
	for name in chr_spec options virtqueue vhost_user; do
		mkdir -p "$scratch/$name"
		run "fuzz-$name" 120 "$out/fuzz_$name" -max_total_time=15 \
			-print_final_stats=1 -artifact_prefix="$out/artifacts/" \
			"$scratch/$name" "tests/fuzz/corpus/$name"
	done
	rm -rf "$scratch"
}

for s in "${suites[@]}"; do
	case $s in
	unit)
		run unit 300 ctest --test-dir "$build" --output-on-failure --timeout 60 ;;
	integration)
		run integration 900 python3 -m unittest discover -v \
			-s tests/integration
		run valgrind 300 python3 -m unittest discover -v \
			-s tests/valgrind ;;
	sanitize)
		sanitize ;;
	fuzz)
		fuzz ;;
	load)
		run load 240 python3 -m unittest discover -v -s tests/load ;;
	guest)
		run guest-harness 300 tests/guest/test_harness.sh
		run guest 1200 python3 -m unittest discover -v -s tests/guest ;;
	*)
		echo "test.sh: unknown suite '$s' (unit, integration, sanitize," \
			"fuzz, load, guest)"; exit 2 ;;
	esac
done

# Nothing may be left behind by a suite (mounts that were there before,
# e.g. a vportfs the user runs, are not ours to judge).
leftover=$(comm -13 <(echo "$mounts_before") <(vportfs_mounts))
if [ -n "$leftover" ]; then
	echo "test.sh: vportfs mount(s) left behind:"; echo "$leftover"
	failed=1
	result[leftovers]=FAIL
fi

summary=""
for k in "${!result[@]}"; do summary+="$k=${result[$k]} "; done
if [ $failed = 0 ]; then
	echo "test.sh: ALL PASSED: $summary"
else
	echo "test.sh: FAILED: $summary"
fi
exit $failed
