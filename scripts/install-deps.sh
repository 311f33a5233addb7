#!/usr/bin/env bash
# Install every Debian package that building, testing and the demo need.
# Idempotent: installs only what is missing, so a second run is quick.
set -euo pipefail

packages=(
	build-essential cmake pkg-config
	libfuse3-dev fuse3 libev-dev libcmocka-dev libjson-c-dev
	systemd
	attr user-mode-linux socat python3 util-linux procps kmod
	clang libclang-rt-14-dev valgrind linux-perf
	mandoc dpkg-dev apt strace
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
