#!/bin/bash
# SPDX-License-Identifier: MIT
# The measurement behind CDC_DEFAULT_PARAMS and PACK_TARGET_SIZE
# (squash/cdc.h, docs/chunking.md). Builds a Debian bookworm minbase root
# with systemd (cached under /var/tmp/gdroot-bench), a second version with
# one more package, and LZ4 squashfs images of both; records which byte
# ranges a boot-like workload reads from the first image (fuse-trace under
# a read-only loop device and a squashfs mount, caches dropped first); then
# chunk-sim prints chunks, bytes fetched, Range requests and the bytes a
# push of the second version uploads, for each chunk and pack size. A
# benchmark, not a test: needs root and the network (first run), takes
# about two minutes, prints Markdown, and undoes every mount, loop device
# and process it made, even on failure. Arguments go to chunk-sim (e.g.
# --rtt 50 --mbit 20); LOOP_DIRECT=0 traces through a buffered loop device;
# KEEP_TRACE=FILE keeps the trace.
. "$(dirname "$0")/../lib.sh"
requires_root
requires debootstrap mksquashfs losetup chroot mountpoint

CACHE=${GDROOT_BENCH_CACHE:-/var/tmp/gdroot-bench}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
EXTRA_PKG=${EXTRA_PKG:-less}
SIM=$O/tests/tools/chunk-sim
TRACER=$O/tests/tools/fuse-trace

make -s -C "$TOP" O="$O" "$SIM" "$TRACER" >/dev/null || fail "build chunk-sim and fuse-trace"

# What an image would not ship: apt's downloads, caches and package lists.
rootfs_clean() {
	chroot "$1" apt-get clean
	rm -rf "$1"/var/lib/apt/lists/*
}

# rootfs_v1: minbase + systemd, cleaned. Built in DIR.tmp and renamed, so a
# failed run never leaves a half-made cache behind.
rootfs_v1() {
	local dir=$CACHE/rootfs-v1
	[ -d "$dir" ] && return 0
	rm -rf "$dir.tmp"
	echo "debootstrap $SUITE into $dir" >&2
	debootstrap --variant=minbase --include=systemd-sysv,udev "$SUITE" "$dir.tmp" "$MIRROR" \
		>"$CACHE/debootstrap.log" 2>&1 || fail "debootstrap: see $CACHE/debootstrap.log"
	rootfs_clean "$dir.tmp"
	mv "$dir.tmp" "$dir"
}

# rootfs_v2: a copy of v1 with EXTRA_PKG installed the way an admin would,
# then cleaned again: the delta is the package and dpkg's bookkeeping.
rootfs_v2() {
	local dir=$CACHE/rootfs-v2
	[ -d "$dir" ] && return 0
	rm -rf "$dir.tmp"
	cp -a "$CACHE/rootfs-v1" "$dir.tmp"
	echo "install $EXTRA_PKG into $dir" >&2
	chroot "$dir.tmp" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends $EXTRA_PKG" \
		>"$CACHE/apt.log" 2>&1 || fail "apt-get install $EXTRA_PKG: see $CACHE/apt.log"
	rootfs_clean "$dir.tmp"
	mv "$dir.tmp" "$dir"
}

mkimage() { # DIR IMAGE
	mksquashfs "$1" "$2" -comp lz4 -b 128K -noappend -no-progress -quiet \
		>"$TEST_TMP/mksquashfs.log" 2>&1 || { cat "$TEST_TMP/mksquashfs.log"; fail "mksquashfs $1"; }
}

# The boot-like workload, run in a chroot of the mounted image: what a boot
# starts, without running anything that acts on the host. Tools that take
# --version run; the service daemons (journald, logind, udevd, ...) are only
# loaded by the dynamic linker (ld.so --list maps the program and its
# libraries without running it: several systemd helpers ignore --version and
# do their job, and systemd-shutdown would try to stop the machine). Then
# every unit file is read, core tools run once, and a metadata walk.
WORKLOAD='
LDSO=/lib64/ld-linux-x86-64.so.2
/lib/systemd/systemd --version
/lib/systemd/systemd-udevd --version
for t in systemctl udevadm journalctl loginctl hostnamectl timedatectl \
	systemd-analyze systemd-tmpfiles systemd-sysusers systemd-detect-virt \
	systemd-escape systemd-machine-id-setup; do
	command -v "$t" && "$t" --version
done
for t in /lib/systemd/systemd-* /lib/systemd/system-generators/*; do
	[ -f "$t" ] && [ -x "$t" ] && "$LDSO" --list "$t"
done
/bin/bash -c true
ls -la /etc /usr/lib/systemd/system
cat /etc/os-release /etc/passwd /etc/group /etc/fstab /etc/hostname /etc/nsswitch.conf
find /usr/lib/systemd/system /etc/systemd /usr/lib/systemd/user /usr/lib/tmpfiles.d \
	/usr/lib/sysusers.d /usr/lib/udev/rules.d -type f -exec cat {} +
for t in ls cat cp mv rm mkdir ln chmod chown sed grep find xargs sort head tail \
	date id uname env stat readlink dpkg mount umount; do
	command -v "$t" && "$t" --version
done
/sbin/agetty --version
ldconfig -p
find / -xdev -maxdepth 3
'

# State of the trace stack, undone (innermost first) by trace_teardown,
# which is safe to call twice: each step clears its variable when done.
TR_PROC= TR_MNT= TR_LOOP= TR_PID= TR_FUSE=
# A mount still busy after a few tries is detached lazily; a loop device
# detached while in use is freed by the kernel when its last user goes.
umount_retry() {
	local i
	for ((i = 0; i < 10; i++)); do
		umount "$1" 2>/dev/null && return 0
		sleep 0.2
	done
	umount -l "$1"
}
trace_teardown() {
	[ -n "$TR_PROC" ] && umount_retry "$TR_PROC" && TR_PROC=
	[ -n "$TR_MNT" ] && umount_retry "$TR_MNT" && TR_MNT=
	[ -n "$TR_LOOP" ] && losetup -d "$TR_LOOP" && TR_LOOP=
	if [ -n "$TR_PID" ]; then
		kill -TERM "$TR_PID" 2>/dev/null
		wait "$TR_PID" 2>/dev/null
		TR_PID=
	fi
	if [ -n "$TR_FUSE" ] && mountpoint -q "$TR_FUSE"; then
		umount "$TR_FUSE" || umount -l "$TR_FUSE"
	fi
	TR_FUSE=
	return 0
}
cleanup_fn trace_teardown

wait_mounted() { # DIR PID
	local i
	for ((i = 0; i < 200; i++)); do
		mountpoint -q "$1" && [ -e "$1/image" ] && return 0
		kill -0 "$2" 2>/dev/null || fail "fuse-trace died: $(cat "$TEST_TMP/fuse-trace.log")"
		sleep 0.05
	done
	fail "fuse-trace did not mount $1"
}

# record_trace IMAGE TRACE: sets LOOP_MODE to the loop setup that worked.
record_trace() {
	local img=$1 trace=$2
	TR_FUSE=$TEST_TMP/fuse
	mkdir -p "$TR_FUSE" "$TEST_TMP/mnt"
	: >"$trace"
	"$TRACER" "$img" "$TR_FUSE" "$trace" >"$TEST_TMP/fuse-trace.log" 2>&1 &
	TR_PID=$!
	wait_mounted "$TR_FUSE" "$TR_PID"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	LOOP_MODE="--direct-io=on"
	[ "${LOOP_DIRECT:-1}" = 1 ] &&
		TR_LOOP=$(losetup -r --direct-io=on -f --show "$TR_FUSE/image" 2>/dev/null) || {
		LOOP_MODE="buffered"
		TR_LOOP=$(losetup -r -f --show "$TR_FUSE/image") || fail "losetup"
	}
	mount -t squashfs -o ro "$TR_LOOP" "$TEST_TMP/mnt" || fail "mount squashfs from $TR_LOOP"
	TR_MNT=$TEST_TMP/mnt
	mount -t proc proc "$TR_MNT/proc" || fail "mount proc"
	TR_PROC=$TR_MNT/proc
	local s e
	s=$(date +%s%N)
	timeout 300 chroot "$TR_MNT" /bin/sh -c "$WORKLOAD" </dev/null >/dev/null \
		2>"$TEST_TMP/workload.err" ||
		fail "workload: $(tail -n3 "$TEST_TMP/workload.err")"
	e=$(date +%s%N)
	WORKLOAD_MS=$(((e - s) / 1000000))
	trace_teardown # flushes the trace: fuse-trace exits on SIGTERM
	[ -s "$trace" ] || fail "empty trace"
}

mkdir -p "$CACHE"
rootfs_v1
rootfs_v2
IMG1=$TEST_TMP/v1.sqfs IMG2=$TEST_TMP/v2.sqfs TRACE=$TEST_TMP/trace
mkimage "$CACHE/rootfs-v1" "$IMG1"
mkimage "$CACHE/rootfs-v2" "$IMG2"
record_trace "$IMG1" "$TRACE"
[ -n "${KEEP_TRACE:-}" ] && cp "$TRACE" "$KEEP_TRACE"

echo "# chunk sizes: Debian $SUITE minbase + systemd-sysv, udev; v2 adds $EXTRA_PKG"
echo "machine: $(nproc) cores, $(uname -r); squashfs lz4 -b 128K;" \
	"loop $LOOP_MODE over fuse-trace; workload $WORKLOAD_MS ms"
echo "images: v1 $(stat -c %s "$IMG1") bytes, v2 $(stat -c %s "$IMG2") bytes"
echo
"$SIM" "$@" "$IMG1" "$TRACE" "$IMG2" || fail "chunk-sim"
echo
echo "cdc_cut throughput, 256 MiB of random bytes, one core:"
echo
"$SIM" --speed 256
