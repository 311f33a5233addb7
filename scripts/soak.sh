#!/usr/bin/env bash
# The agent-exchange soak of issue 7: one daemon, one UML guest rebooting
# N times (default 100), each boot writing "pong N" to a port and rebooting
# at once; every message must arrive byte for byte (no bytes of freed guest
# memory, none lost).  Too long for CI, which runs the same test with 5
# boots (tests/guest/test_nothing_lost_guest.py).  About 4.5 s per boot on
# an idle machine; run it on one.
#
#   scripts/soak.sh [BOOTS]
set -euo pipefail
cd "$(dirname "$0")/.."
boots=${1:-100}
[[ $boots =~ ^[1-9][0-9]*$ ]] || { echo "soak.sh: BOOTS must be a positive number" >&2; exit 2; }
scripts/install-deps.sh
build=${VPORTFS_BUILD:-$PWD/build}
export VPORTFS_BUILD=$build
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
cd tests/guest
VPORTFS_SOAK_BOOTS=$boots exec python3 -m unittest -v \
	test_nothing_lost_guest.AgentAcrossReboots
