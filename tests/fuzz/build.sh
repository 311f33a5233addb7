#!/bin/sh
# Build the libFuzzer harnesses of tests/fuzz/ with clang, ASan and UBSan.
#
#   tests/fuzz/build.sh OUTDIR        (from anywhere)
#
# Environment: CC (default clang), FUZZ_CFLAGS (default: -g -O1
# -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined;
# replace it for, e.g., -fsanitize=fuzzer,memory), EXTRA_CFLAGS (added).
# None of these harnesses needs json-c, libev, libfuse or cmocka: each is
# linked from the exact sources it tests, and libc.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

CC=${CC:-clang}
FUZZ_CFLAGS=${FUZZ_CFLAGS:--g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined}
EXTRA_CFLAGS=${EXTRA_CFLAGS:-}
WARN="-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes"
DEFS="-std=gnu11 -D_GNU_SOURCE -DVPORTFS_VERSION=\"fuzz\" -Iinclude -Isrc"

build() {
	name=$1
	shift
	echo "  CC $out/$name"
	# shellcheck disable=SC2086 # the flag lists split on purpose
	$CC $FUZZ_CFLAGS $WARN $DEFS $EXTRA_CFLAGS -o "$out/$name" "$@"
}

build fuzz_chr_spec tests/fuzz/fuzz_chr_spec.c \
	src/chardev/spec.c
build fuzz_options tests/fuzz/fuzz_options.c \
	src/cli/options.c src/util/log.c src/util/utf8.c
build fuzz_virtqueue tests/fuzz/fuzz_virtqueue.c \
	src/device/virtqueue.c src/util/log.c
build fuzz_vhost_user -Itests/unit tests/fuzz/fuzz_vhost_user.c \
	src/device/vhost_user.c src/device/virtqueue.c src/util/log.c \
	tests/unit/fake_loop.c
