# SPDX-License-Identifier: MIT
# Helpers for fetcher integration tests (sourced after tests/lib.sh): bring
# up and tear down the whole stack the appliance uses, on the host:
#   store -> gdroot-fetcher (FUSE) -> loop -> squashfs -> overlayfs
#   with an ext4-on-zram upper layer.
# Every mount, loop and zram device and process is registered with
# cleanup_fn, so a failing test leaves nothing behind.

FETCHER=$O/gdroot-fetcher

# fetcher_start NAME ARGS...: start a fetcher mounted at $TEST_TMP/NAME/fuse
# and wait for its readiness file. Sets FPID_<NAME>.
fetcher_start() {
	local name=$1
	shift
	local d=$TEST_TMP/$name
	mkdir -p "$d/fuse"
	rm -f "$d/ready"
	"$FETCHER" --mount "$d/fuse" --socket "$d/sock" --ready-file "$d/ready" "$@" >>"$d/fetcher.log" 2>&1 &
	local pid=$!
	eval "FPID_$name=$pid"
	cleanup_fn fetcher_stop_dir "$d" "$pid"
	wait_for_file "$d/ready" "$pid" 60
}

fetcher_stop_dir() { # dir pid
	local d=$1 pid=$2 i
	# Not mountpoint(1): it fails on the mount of a fetcher that died.
	grep -q " $d/fuse " /proc/mounts && umount "$d/fuse" 2>/dev/null
	kill "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null
	grep -q " $d/fuse " /proc/mounts && umount -l "$d/fuse" 2>/dev/null
	return 0
}

# stack_up NAME: loop + squashfs on layer-0 of fetcher NAME, zram ext4
# upper, overlay at $TEST_TMP/NAME/root.
stack_up() {
	local name=$1 d=$TEST_TMP/$1 loop z
	loop=$(losetup -r -f --show "$d/fuse/layer-0") || fail "losetup of $d/fuse/layer-0"
	cleanup_fn loop_detach "$loop" "$name"
	mkdir -p "$d/lower" "$d/upperfs" "$d/root"
	mount -t squashfs -o ro "$loop" "$d/lower" || fail "mount squashfs from $loop"
	cleanup_fn umount "$d/lower"
	z=$(cat /sys/class/zram-control/hot_add) || fail "zram hot_add"
	ZRAM_MADE="${ZRAM_MADE:-} $z"
	cleanup_fn zram_remove "$z" "$name"
	echo lz4 >"/sys/block/zram$z/comp_algorithm" || fail "zram$z: lz4"
	echo 256M >"/sys/block/zram$z/disksize" || fail "zram$z: disksize"
	mkfs.ext4 -q -F "/dev/zram$z" || fail "mkfs.ext4 zram$z"
	mount "/dev/zram$z" "$d/upperfs" || fail "mount zram$z"
	cleanup_fn umount "$d/upperfs"
	mkdir -p "$d/upperfs/upper" "$d/upperfs/work"
	# The overlay's root takes the upper root's metadata: give it the
	# image's (owner, mode, times, xattrs), as overlay-init does.
	"$PY" - "$d/lower" "$d/upperfs/upper" <<'PYEOF' || fail "copy the root's metadata"
import os, sys
src, dst = sys.argv[1], sys.argv[2]
st = os.lstat(src)
os.chown(dst, st.st_uid, st.st_gid)
os.chmod(dst, st.st_mode & 0o7777)
for name in os.listxattr(src, follow_symlinks=False):
    os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
PYEOF
	mount -t overlay overlay -o "lowerdir=$d/lower,upperdir=$d/upperfs/upper,workdir=$d/upperfs/work" "$d/root" ||
		fail "mount overlay"
	cleanup_fn umount "$d/root"
	eval "LOOP_$name=$loop ZRAM_$name=$z"
}

# Detach a loop device once, by its owner: afterwards its number may be
# someone else's.
loop_detach() {
	local dev=$1 who=$2
	[ -e "$TEST_TMP/loop-detached-$who" ] && return 0
	losetup -d "$dev" 2>/dev/null
	touch "$TEST_TMP/loop-detached-$who"
}

zram_remove() {
	local z=$1 who=$2 i err
	# Once removed, the number may be reused by someone else: never touch it again.
	[ -e "$TEST_TMP/zram-removed-$who" ] && return 0
	for ((i = 0; i < 100; i++)); do
		[ -e "/sys/block/zram$z" ] || break
		err=$( (echo "$z" >/sys/class/zram-control/hot_remove) 2>&1) && break
		sleep 0.1
	done
	if [ -e "/sys/block/zram$z" ] && [ -n "${err:-}" ]; then
		echo "could not remove zram$z: $err" >&2
		echo "zram$z: $err" >>"$TEST_TMP/zram-left"
		return 0
	fi
	touch "$TEST_TMP/zram-removed-$who"
}

# stack_down NAME: undo stack_up and stop the fetcher (in order).
stack_down() {
	local name=$1 d=$TEST_TMP/$1 loop z pid
	eval "loop=\${LOOP_$name:-} z=\${ZRAM_$name:-} pid=\${FPID_$name:-}"
	mountpoint -q "$d/root" && umount "$d/root"
	mountpoint -q "$d/upperfs" && umount "$d/upperfs"
	[ -n "$z" ] && zram_remove "$z" "$name"
	mountpoint -q "$d/lower" && umount "$d/lower"
	[ -n "$loop" ] && loop_detach "$loop" "$name"
	[ -n "$pid" ] && fetcher_stop_dir "$d" "$pid"
	return 0
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
