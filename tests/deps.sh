#!/bin/bash
# SPDX-License-Identifier: MIT
# `make deps`: install every Debian and npm package gdroot's build, tests and
# demo need. Idempotent: installs only what is missing, and runs apt-get
# update only when it has something to install.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)

APT_PACKAGES=(
	# build
	make gcc clang pkg-config
	libcurl4-openssl-dev libjansson-dev libxml2-dev libssl-dev
	liburing-dev libfuse3-dev fuse3 liblz4-dev zlib1g-dev
	# fuzzing and checking (libFuzzer and sanitizer runtimes)
	libclang-rt-14-dev valgrind
	# tests and the Drive emulator
	python3 python3-pytest python3-cryptography curl openssl ca-certificates
	squashfs-tools procps psmisc iproute2 util-linux acl attr libcap2-bin
	zstd xz-utils tar debootstrap
	# the appliance and its boot in QEMU (kernel and busybox-static are
	# downloaded by appliance/build.sh, never installed)
	qemu-system-x86 cpio kmod e2fsprogs binutils
	# the alternatives the fetcher benchmark compares against
	s3fs rclone
)

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

missing=()
for p in "${APT_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js and npm for s3rver: any install will do (Debian's or another).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
	echo "deps: all Debian packages present"
fi

# npm packages, pinned by package-lock.json, into tests/*/node_modules.
for dir in "$TOP"/tests/*/; do
	[ -f "$dir/package.json" ] || continue
	if [ -f "$dir/package-lock.json" ] && [ -d "$dir/node_modules" ] &&
		[ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
		echo "deps: npm packages in ${dir#$TOP/} present"
		continue
	fi
	echo "deps: npm install in ${dir#$TOP/}"
	if [ -f "$dir/package-lock.json" ]; then
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
	else
		(cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
	fi
done
