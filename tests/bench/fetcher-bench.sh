#!/bin/bash
# SPDX-License-Identifier: MIT
# The fetcher's benchmarks (docs/benchmarks-fetcher.md): a Debian bookworm
# minbase + systemd image pushed to the Drive emulator, which runs in a
# network namespace behind tests/tools/wan-proxy (tests/bench/wan.sh), then
#   b. cached sequential and random reads through the whole stack (fetcher
#      -> loop -> squashfs -> overlay), loop direct-io on and off, against a
#      loop mount of the same squashfs file on the local disk;
#   c. a cold sequential read over the emulated 100 Mbit/s, 40 ms RTT link,
#      at several --max-inflight values, with requests and bytes fetched;
#   d. the same read through s3fs and rclone mount (vfs cache full) from
#      s3rver behind the same link, and a plain curl download;
#   e. a recorded boot read trace replayed on a cold fetcher, without and
#      with the boot profile (boot-done, then a fresh fetcher prefetches);
#   f. the fetcher's RSS after a cold read with a 16 MiB cache.
# A benchmark, not a test: it prints a Markdown table and writes it into
# docs/benchmarks-fetcher.md between the fetcher-bench markers (OUT=FILE to
# write elsewhere, OUT= not at all). Root, one run each, a few minutes; it
# undoes every mount, loop and zram device, namespace, veth and process it
# made, even on failure. LINK=100m-40ms|1g-2ms|20m-100ms picks the link;
# SECTIONS="b c d e" which parts run; FETCHER_BIN another gdroot-fetcher.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../fetcher/stack.sh"
. "$(dirname "$0")/wan.sh"
requires_root
requires mksquashfs losetup mkfs.ext4 ip curl chroot mountpoint
[ -e /dev/fuse ] || skip "needs /dev/fuse"
[ -e /sys/class/zram-control/hot_add ] || skip "needs zram"

CACHE=${GDROOT_BENCH_CACHE:-/var/tmp/gdroot-bench}
ROOTFS=$CACHE/rootfs-v1
LINK=${LINK:-100m-40ms}
read -r MBIT DELAY < <(wan_link "$LINK")
OUT=${OUT-$TOP/docs/benchmarks-fetcher.md}
INFLIGHTS=${INFLIGHTS:-4 16 32}
RAND_N=${RAND_N:-2000}
REPS=${REPS:-3}
TRACER=$O/tests/tools/fuse-trace
FETCHER=${FETCHER_BIN:-$FETCHER} # FETCHER_BIN=PATH measures another build
SECTIONS=${SECTIONS:-b c d e} # which benchmarks to run (f comes with c)
want() { [[ " $SECTIONS " == *" $1 "* ]]; }

if ! make -s -C "$TOP" O="$O" "$O/gdroot" "$O/gdroot-fetcher" "$TRACER" "$WAN_PROXY" >"$TEST_TMP/make.log" 2>&1; then
	for b in "$O/gdroot" "$O/gdroot-fetcher" "$TRACER" "$WAN_PROXY"; do
		[ -x "$b" ] || fail "build $b: $(tail -n3 "$TEST_TMP/make.log")"
	done
	echo "warning: make failed ($(tail -n1 "$TEST_TMP/make.log")); using the binaries in $O" >&2
fi
if [ ! -d "$ROOTFS" ]; then
	echo "no $ROOTFS: making it with tests/bench/chunk-sizes.sh" >&2
	bash "$TOP/tests/bench/chunk-sizes.sh" >/dev/null || fail "chunk-sizes.sh could not make $ROOTFS"
fi

# --- an undo stack: each setup step pushes its undo; undo_to N runs and
# drops everything pushed after level N (last first). Nothing is undone
# twice, so a loop or zram number that was given back and reused by someone
# else is never touched. Whatever is left runs at exit.
_undo=()
undo_push() {
	local q="" a
	for a in "$@"; do q+=" $(printf '%q' "$a")"; done
	_undo+=("$q")
}
undo_to() {
	local i
	for ((i = ${#_undo[@]} - 1; i >= $1; i--)); do
		eval "${_undo[i]}" 2>/dev/null || true
		unset '_undo[i]'
	done
}
cleanup_fn undo_to 0

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
fmt() { awk "BEGIN {printf \"%.${2:-1}f\", $1}"; } # EXPR [DECIMALS]
mbps() { awk -v b="$1" -v ms="$2" 'BEGIN {printf "%.1f", b / ms / 1000}'; } # MB/s (10^6)
jget() { "$PY" -c 'import json,sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v = v[k]
print(v)' "$1" "$2"; }
proc_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
umount_retry() {
	local i
	for ((i = 0; i < 20; i++)); do
		umount "$1" 2>/dev/null && return 0
		sleep 0.2
	done
	umount -l "$1"
}

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 |"); printf '%-58s %-26s %s\n' "$1" "$2" "$4" >&2; }

# A FUSE client in the foreground (s3fs, rclone, fuse-trace): unmount, stop.
_fuse_client_stop() { # mnt pid
	grep -q " $1 " /proc/mounts && { umount "$1" 2>/dev/null || umount -l "$1"; }
	kill "$2" 2>/dev/null
	wait "$2" 2>/dev/null
	return 0
}

# --- the store: the emulator on the far side of the link
wan_ns_up
wan_emu_start --quiet
CONF=$TEST_TMP/direct.conf   # straight over the veth: setup and warm-up only
emu_config "$CONF"
"$GDROOT" keygen "$TEST_TMP/key" >/dev/null || fail keygen
FOLDER=$(emu_mkfolder fetcher-bench) || fail "make a folder in the emulator"
printf 'public_key = %s\nstore = gdrive://%s\n' "$TEST_TMP/key.pub" "$FOLDER" >>"$CONF"
wan_proxy_start emu "$WAN_EMU_PORT" "$MBIT" "$DELAY"
WCONF=$TEST_TMP/wan.conf     # through the emulated WAN link
sed "s#$WAN_EMU_URL#http://$WAN_ADDR_emu#" "$CONF" >"$WCONF"

IMG=$TEST_TMP/image.sqfs
t=$(date +%s%N)
"$GDROOT" -q -c "$CONF" -k "$TEST_TMP/key.key" push --keep-image "$IMG" "$ROOTFS" \
	>"$TEST_TMP/push.out" 2>&1 || fail "push: $(tail -n5 "$TEST_TMP/push.out")"
PUSH_MS=$(ms_since "$t")
SIZE=$(stat -c %s "$IMG")
ROOT_MB=$(du -sm --apparent-size "$ROOTFS" | cut -f1)
echo "image: $ROOTFS ($ROOT_MB MB) -> $SIZE bytes, pushed in $PUSH_MS ms" >&2

# --- the link itself, checked with curl: a tiny request twice on one
# connection, and the image downloaded whole (the "download it first"
# alternative).
"$GDROOT" -q -c "$CONF" store put "$IMG" bench/image.sqfs || fail "upload the image as one object"
TOKEN=$(emu_token)
IMG_ID=$(curl -sS -G -H "Authorization: Bearer $TOKEN" \
	--data-urlencode "q='$FOLDER' in parents and name = 'bench/image.sqfs'" \
	"$WAN_EMU_URL/drive/v3/files" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["id"])') ||
	fail "find the image object"
WAN_CHECK_URL="/drive/v3/files/$IMG_ID?alt=media" WAN_CHECK_HDR="Authorization: Bearer $TOKEN" \
	wan_curl_check "$WAN_ADDR_emu" "$MBIT" "$DELAY" >&2
LINK_ROW="$MBIT Mbit/s, $((2 * DELAY)) ms RTT"
row "link check: curl, tiny request, new connection" "$WAN_TTFB1_MS ms" "~$((4 * DELAY)) ms" \
	"handshake + request: 2 RTT"
row "link check: curl, tiny request, same connection" "$WAN_TTFB2_MS ms" "~$((2 * DELAY)) ms" "1 RTT"
DL_MBS=$(mbps "$WAN_XFER_BYTES" "$(fmt "$WAN_XFER_S * 1000" 0)")
row "d. curl GET of the whole image (download first)" "$WAN_XFER_S s, $DL_MBS MB/s" \
	"" "$(fmt "$WAN_RATE_MBIT / $MBIT" 2) of the link ($WAN_RATE_MBIT Mbit/s after the first byte)"

# A fresh proxy on the same port: its counters then cover one run.
EMU_LPORT=${WAN_ADDR_emu##*:}
proxy_restart() {
	wan_proxy_stop emu
	mv -f "$TEST_TMP/wan-emu.log" "$TEST_TMP/wan-emu.last" 2>/dev/null
	wan_proxy_start emu "$WAN_EMU_PORT" "$MBIT" "$DELAY" "$EMU_LPORT"
}
proxy_conns() { sed -n 's/^wan-proxy: \([0-9]*\) connections.*/\1/p' "$TEST_TMP/wan-emu.last" | tail -n1; }

# --- fetchers
# fetcher_up NAME CONF ARGS...: a fetcher at $TEST_TMP/NAME/fuse; sets
# FPID, FDIR and READY_MS (start to ready).
fetcher_up() {
	local name=$1 conf=$2 t
	shift 2
	FDIR=$TEST_TMP/$name
	mkdir -p "$FDIR/fuse"
	rm -f "$FDIR/ready"
	t=$(date +%s%N)
	"$FETCHER" -c "$conf" --mount "$FDIR/fuse" --socket "$FDIR/sock" --ready-file "$FDIR/ready" "$@" \
		>>"$FDIR/fetcher.log" 2>&1 &
	FPID=$!
	undo_push fetcher_stop_dir "$FDIR" "$FPID"
	wait_for_file "$FDIR/ready" "$FPID" 120
	READY_MS=$(ms_since "$t")
}
status_json() { "$GDROOT" status --json --socket "$FDIR/sock" >"$1" || fail "gdroot status ($FDIR)"; }

# loop_attach FILE DIO: a read-only loop device over FILE (pushes its
# undo), checked to show FILE's size; sets BLOOP and BDIO. Retried: another
# job's losetup may race ours for the same free device.
loop_attach() {
	local file=$1 dio=$2 want got i
	want=$(stat -L -c %s "$file")
	for ((i = 0; i < 5; i++)); do
		BLOOP=$(losetup -r -f --show --direct-io="$dio" "$file") || fail "losetup --direct-io=$dio $file"
		undo_push losetup -d "$BLOOP"
		got=$(blockdev --getsize64 "$BLOOP" 2>/dev/null)
		if [ "$got" = "$want" ] && losetup -n -O BACK-FILE -l "$BLOOP" | grep -qF "$file"; then
			BDIO=$(losetup -n -O DIO -l "$BLOOP" | tr -d ' ')
			return 0
		fi
		echo "warning: $BLOOP over $file shows ${got:-?} bytes, not $want; again" >&2
		undo_to $((${#_undo[@]} - 1))
		sleep 0.2
	done
	fail "no loop device over $file showed its size"
}

# bstack_up NAME FILE DIO: loop (read-only, --direct-io=DIO) over FILE ->
# squashfs -> overlay with an ext4-on-zram upper at $TEST_TMP/NAME/root,
# as overlay-init builds it. Sets BLOOP, BROOT.
bstack_up() {
	local name=$1 file=$2 dio=$3 d=$TEST_TMP/$1 z
	mkdir -p "$d/lower" "$d/upperfs" "$d/root"
	loop_attach "$file" "$dio"
	mount -t squashfs -o ro "$BLOOP" "$d/lower" || fail "mount squashfs from $BLOOP"
	undo_push umount_retry "$d/lower"
	z=$(cat /sys/class/zram-control/hot_add) || fail "zram hot_add"
	undo_push zram_remove "$z"
	echo lz4 >"/sys/block/zram$z/comp_algorithm" && echo 64M >"/sys/block/zram$z/disksize" ||
		fail "zram$z setup"
	mkfs.ext4 -q -F "/dev/zram$z" || fail "mkfs.ext4 zram$z"
	mount "/dev/zram$z" "$d/upperfs" || fail "mount zram$z"
	undo_push umount_retry "$d/upperfs"
	mkdir -p "$d/upperfs/upper" "$d/upperfs/work"
	mount -t overlay overlay -o "lowerdir=$d/lower,upperdir=$d/upperfs/upper,workdir=$d/upperfs/work" \
		"$d/root" || fail "mount overlay"
	undo_push umount_retry "$d/root"
	BROOT=$d/root
}

# 4 KiB O_DIRECT reads at RAND_N random aligned offsets (fixed seed):
# prints reads per second.
randread() {
	"$PY" - "$1" "$RAND_N" <<'EOF'
import mmap, os, random, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
size = os.lseek(fd, 0, os.SEEK_END)
buf = mmap.mmap(-1, 4096)
rng = random.Random(42)
offs = [rng.randrange(size // 4096) * 4096 for _ in range(int(sys.argv[2]))]
t = time.monotonic()
for o in offs:
    if os.preadv(fd, [buf], o) != 4096:
        sys.exit("short read at %d" % o)
print("%.0f" % (len(offs) / (time.monotonic() - t)))
EOF
}

# cached_measure LABEL: best of REPS for tar through the overlay, dd of
# the loop device and random reads, caches dropped before each. Sets
# R_TAR (MB/s), R_DD (MB/s), R_RAND (reads/s).
cached_measure() {
	local i t ms bytes best_tar=0 best_dd=0 best_rand=0 v
	for ((i = 0; i < REPS; i++)); do
		drop_caches
		t=$(date +%s%N)
		bytes=$(tar -C "$BROOT" -cf - . 2>/dev/null | wc -c)
		ms=$(ms_since "$t")
		v=$(mbps "$bytes" "$ms")
		best_tar=$(awk -v a="$best_tar" -v b="$v" 'BEGIN {print (b > a) ? b : a}')
		drop_caches
		t=$(date +%s%N)
		dd if="$BLOOP" of=/dev/null bs=1M status=none || fail "dd $BLOOP"
		v=$(mbps "$SIZE" "$(ms_since "$t")")
		best_dd=$(awk -v a="$best_dd" -v b="$v" 'BEGIN {print (b > a) ? b : a}')
		drop_caches
		v=$(randread "$BLOOP") || fail "random reads on $BLOOP"
		best_rand=$(awk -v a="$best_rand" -v b="$v" 'BEGIN {print (b > a) ? b : a}')
	done
	R_TAR=$best_tar R_DD=$best_dd R_RAND=$best_rand TAR_BYTES=$bytes
	echo "$1: tar $R_TAR MB/s ($TAR_BYTES bytes), dd $R_DD MB/s, random 4K $R_RAND/s" >&2
}

if want b; then
echo "== b. cached reads through the stack" >&2
lvl=${#_undo[@]}
fetcher_up warm "$CONF" --no-prefetch --profile-timeout 0 --cache-size 512M
dd if="$FDIR/fuse/layer-0" of=/dev/null bs=4M iflag=direct status=none || fail "warm-up read"
status_json "$TEST_TMP/warm.json"
echo "warm-up: fetched $(jget "$TEST_TMP/warm.json" fetched.bytes) bytes;" \
	"cache $(jget "$TEST_TMP/warm.json" cache.bytes) bytes" >&2
LOCAL=$CACHE/fetcher-bench-image.sqfs   # the local disk copy (/var/tmp)
cp "$IMG" "$LOCAL" || fail "copy the image to $LOCAL"
undo_push rm -f "$LOCAL"
declare -A C
for dio in on off; do
	for src in gdroot local; do
		l2=${#_undo[@]}
		if [ $src = gdroot ]; then bstack_up "s-$src-$dio" "$FDIR/fuse/layer-0" $dio
		else bstack_up "s-$src-$dio" "$LOCAL" $dio; fi
		cached_measure "$src, loop direct-io=$dio (DIO=$BDIO)"
		C[$src-$dio-tar]=$R_TAR C[$src-$dio-dd]=$R_DD C[$src-$dio-rand]=$R_RAND
		undo_to "$l2"
	done
	ratio() { awk -v a="${C[gdroot-$dio-$1]}" -v b="${C[local-$dio-$1]}" 'BEGIN {printf "%.2f", a / b}'; }
	row "b. cached, tar of every file via overlay, direct-io=$dio" "$(ratio tar) of local" \
		">= 0.7" "gdroot ${C[gdroot-$dio-tar]} MB/s, local disk ${C[local-$dio-tar]} MB/s"
	row "b. cached, dd of the loop device (bs=1M), direct-io=$dio" "$(ratio dd) of local" \
		">= 0.7" "gdroot ${C[gdroot-$dio-dd]} MB/s, local disk ${C[local-$dio-dd]} MB/s"
	row "b. cached, 4 KiB O_DIRECT random reads of loop, direct-io=$dio" "$(ratio rand) of local" \
		">= 0.7" "gdroot ${C[gdroot-$dio-rand]} reads/s, local disk ${C[local-$dio-rand]} reads/s"
done
WARM_RSS=$(proc_kb "$FPID" VmRSS)
undo_to "$lvl"
fi

if want c; then
echo "== c/f. cold sequential read over the link ($LINK_ROW)" >&2
# cold_read LABEL MODE ARGS...: a fresh fetcher over the link, one read of
# the whole layer (MODE loop: dd bs=1M of a direct-io loop device; direct:
# dd bs=16M iflag=direct of the layer file; buffered: cat of the layer
# file), then its status and memory.
cold_read() {
	local label=$1 mode=$2 t ms l
	shift 2
	l=${#_undo[@]}
	proxy_restart
	fetcher_up cold "$WCONF" --no-prefetch --profile-timeout 0 "$@"
	local start_ms=$READY_MS
	case $mode in
	loop)
		loop_attach "$FDIR/fuse/layer-0" on
		drop_caches
		t=$(date +%s%N)
		dd if="$BLOOP" of=/dev/null bs=1M status=none || fail "dd $BLOOP"
		;;
	direct)
		t=$(date +%s%N)
		dd if="$FDIR/fuse/layer-0" of=/dev/null bs=16M iflag=direct status=none || fail "dd layer-0"
		;;
	buffered)
		t=$(date +%s%N)
		cat "$FDIR/fuse/layer-0" >/dev/null || fail "cat layer-0"
		;;
	esac
	ms=$(ms_since "$t")
	status_json "$TEST_TMP/cold.json"
	[ "$(jget "$TEST_TMP/cold.json" reads.bytes)" -ge "$SIZE" ] ||
		fail "$label: the fetcher served $(jget "$TEST_TMP/cold.json" reads.bytes) bytes, not the whole layer"
	local rss hwm cb req by
	rss=$(proc_kb "$FPID" VmRSS) hwm=$(proc_kb "$FPID" VmHWM)
	COLD_PARTS="RssAnon $(fmt "$(proc_kb "$FPID" RssAnon) / 1024") MiB, RssFile $(fmt "$(proc_kb "$FPID" RssFile) / 1024") MiB, RssShmem $(fmt "$(proc_kb "$FPID" RssShmem) / 1024") MiB"
	cb=$(jget "$TEST_TMP/cold.json" cache.bytes)
	req=$(jget "$TEST_TMP/cold.json" fetched.requests) by=$(jget "$TEST_TMP/cold.json" fetched.bytes)
	undo_to "$l"
	proxy_restart
	echo "  $(proxy_conns) connections through the link" >&2
	local mb
	mb=$(mbps "$SIZE" "$ms")
	COLD_FRAC=$(awk -v m="$mb" -v l="$MBIT" 'BEGIN {printf "%.2f", m * 8 / l}')
	row "$label" "$(fmt "$ms / 1000" 2) s, $COLD_FRAC of link" ">= 0.8" \
		"$mb MB/s; $req requests, $by bytes ($(fmt "$by / $req / 1024" 0) KiB each); ready after $start_ms ms"
	COLD_RSS=$rss COLD_HWM=$hwm COLD_CACHE=$cb
	echo "  rss $rss kB, hwm $hwm kB, cache $cb bytes" >&2
}
for mi in $INFLIGHTS; do
	cold_read "c. cold, dd of loop (direct-io=on), --max-inflight $mi" loop --max-inflight "$mi" --cache-size 512M
	[ "$mi" = 16 ] && BIG_RSS=$COLD_RSS BIG_CACHE=$COLD_CACHE
done
cold_read "c. cold, dd bs=16M iflag=direct of layer-0, inflight 16" direct --cache-size 512M
cold_read "c. cold, cat of layer-0 (FUSE page cache), inflight 16" buffered --cache-size 512M
cold_read "f. cold, dd of loop, --cache-size 16M" loop --cache-size 16M
row "f. fetcher RSS after the cold read, 16 MiB cache" "$(fmt "$COLD_RSS / 1024") MiB" "<= 32 MiB" \
	"VmHWM $(fmt "$COLD_HWM / 1024") MiB; $COLD_PARTS; the cache held $(fmt "$COLD_CACHE / 1048576") MiB"
row "f. fetcher RSS minus cache, 512 MiB cache" \
	"$(awk -v r="${BIG_RSS:-0}" -v c="${BIG_CACHE:-0}" 'BEGIN {printf "%.1f MiB", r / 1024 - c / 1048576}')" "<= 32 MiB" \
	"VmRSS $(fmt "${BIG_RSS:-0} / 1024") MiB with $(fmt "${BIG_CACHE:-0} / 1048576") MiB cached (cold read); $(fmt "${WARM_RSS:-0} / 1024") MiB after b."
fi

if want d; then
echo "== d. s3fs and rclone from s3rver over the same link" >&2
S3_NOTE=()
if ! [ -f "$TOP/tests/s3/node_modules/s3rver/bin/s3rver.js" ] || ! command -v node >/dev/null; then
	S3_NOTE+=("s3rver is not installed (make deps)")
elif ! wan_s3rver_start bench; then
	S3_NOTE+=("s3rver did not start")
else
	curl -sS -f --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER -T "$IMG" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
		"http://$WAN_NS_IP:$WAN_S3_PORT/bench/image.sqfs" || fail "upload the image to s3rver"
	wan_proxy_start s3 "$WAN_S3_PORT" "$MBIT" "$DELAY"
	S3_LPORT=${WAN_ADDR_s3##*:}
	proxy_restart_s3() {
		wan_proxy_stop s3
		mv -f "$TEST_TMP/wan-s3.log" "$TEST_TMP/wan-s3.last" 2>/dev/null
		wan_proxy_start s3 "$WAN_S3_PORT" "$MBIT" "$DELAY" "$S3_LPORT"
	}
	# mount_read NAME LABEL MOUNTDIR CMD...: run CMD (a FUSE client in the
	# foreground), wait for MOUNTDIR/image.sqfs, read it once with dd.
	mount_read() {
		local name=$1 label=$2 mnt=$3 pid i t ms l
		shift 3
		l=${#_undo[@]}
		mkdir -p "$mnt"
		"$@" >"$TEST_TMP/$name.log" 2>&1 &
		pid=$!
		undo_push _fuse_client_stop "$mnt" "$pid"
		for ((i = 0; i < 300; i++)); do
			mountpoint -q "$mnt" && [ -e "$mnt/image.sqfs" ] && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if ! [ -e "$mnt/image.sqfs" ]; then
			S3_NOTE+=("$name did not mount: $(tail -n2 "$TEST_TMP/$name.log" | tr '\n' ' ')")
			undo_to "$l"
			return 1
		fi
		drop_caches
		proxy_restart_s3
		t=$(date +%s%N)
		if ! dd if="$mnt/image.sqfs" of=/dev/null bs=1M status=none 2>"$TEST_TMP/$name.dd"; then
			S3_NOTE+=("$name: read failed: $(cat "$TEST_TMP/$name.dd")")
			undo_to "$l"
			return 1
		fi
		ms=$(ms_since "$t")
		undo_to "$l"
		local mb c by
		proxy_restart_s3
		c=$(sed -n 's/^wan-proxy: \([0-9]*\) connections.*/\1/p' "$TEST_TMP/wan-s3.last")
		by=$(sed -n 's/.*server, \([0-9]*\) bytes server->client$/\1/p' "$TEST_TMP/wan-s3.last")
		mb=$(mbps "$SIZE" "$ms")
		row "$label" "$(fmt "$ms / 1000" 2) s, $(awk -v m="$mb" -v l="$MBIT" 'BEGIN {printf "%.2f", m * 8 / l}') of link" \
			"" "$mb MB/s; $by bytes over $c connections (proxy's count, read and unmount)"
	}
	if command -v s3fs >/dev/null; then
		echo S3RVER:S3RVER >"$TEST_TMP/s3fs.passwd"
		chmod 600 "$TEST_TMP/s3fs.passwd"
		mount_read s3fs "d. s3fs 1.90 (defaults), dd bs=1M of the image" "$TEST_TMP/s3fs" \
			s3fs bench "$TEST_TMP/s3fs" -f -o "url=http://$WAN_ADDR_s3" -o use_path_request_style \
			-o "passwd_file=$TEST_TMP/s3fs.passwd" -o ro
	else
		S3_NOTE+=("s3fs is not installed (apt-get install s3fs)")
	fi
	if command -v rclone >/dev/null; then
		: >"$TEST_TMP/rclone.conf"
		mount_read rclone "d. rclone mount --vfs-cache-mode full, dd bs=1M" "$TEST_TMP/rclone" \
			env -u AWS_CA_BUNDLE RCLONE_CONFIG_B_TYPE=s3 RCLONE_CONFIG_B_PROVIDER=Other \
			RCLONE_CONFIG_B_ENDPOINT="http://$WAN_ADDR_s3" RCLONE_CONFIG_B_ACCESS_KEY_ID=S3RVER \
			RCLONE_CONFIG_B_SECRET_ACCESS_KEY=S3RVER RCLONE_CONFIG_B_FORCE_PATH_STYLE=true \
			rclone --config "$TEST_TMP/rclone.conf" mount b:bench "$TEST_TMP/rclone" --read-only \
			--vfs-cache-mode full --cache-dir "$TEST_TMP/rclone-cache"
	else
		S3_NOTE+=("rclone is not installed (apt-get install rclone)")
	fi
	wan_proxy_stop s3
fi
for n in "${S3_NOTE[@]}"; do row "d. (not measured)" "-" "" "$n"; done
fi

if want e; then
echo "== e. boot trace replay, without and with the profile" >&2
# Record: the boot-like workload of tests/bench/chunk-sizes.sh (taken from
# that script, so both stay the same), in a chroot of the pushed image
# mounted through fuse-trace, a direct-io loop device and squashfs.
WORKLOAD=$(sed -n "/^WORKLOAD='\$/,/^'\$/p" "$TOP/tests/bench/chunk-sizes.sh" | sed '1d;$d')
[ -n "$WORKLOAD" ] || fail "no WORKLOAD in tests/bench/chunk-sizes.sh"
TRACE=$TEST_TMP/trace
lvl=${#_undo[@]}
mkdir -p "$TEST_TMP/tr-fuse" "$TEST_TMP/tr-mnt"
: >"$TRACE"
"$TRACER" "$IMG" "$TEST_TMP/tr-fuse" "$TRACE" >"$TEST_TMP/fuse-trace.log" 2>&1 &
TPID=$!
undo_push _fuse_client_stop "$TEST_TMP/tr-fuse" "$TPID"
for ((i = 0; i < 200; i++)); do
	mountpoint -q "$TEST_TMP/tr-fuse" && [ -e "$TEST_TMP/tr-fuse/image" ] && break
	kill -0 "$TPID" 2>/dev/null || fail "fuse-trace died: $(cat "$TEST_TMP/fuse-trace.log")"
	sleep 0.05
done
drop_caches
loop_attach "$TEST_TMP/tr-fuse/image" on
mount -t squashfs -o ro "$BLOOP" "$TEST_TMP/tr-mnt" || fail "mount squashfs (trace)"
undo_push umount_retry "$TEST_TMP/tr-mnt"
mount -t proc proc "$TEST_TMP/tr-mnt/proc" || fail "mount proc (trace)"
undo_push umount_retry "$TEST_TMP/tr-mnt/proc"
t=$(date +%s%N)
timeout 300 chroot "$TEST_TMP/tr-mnt" /bin/sh -c "$WORKLOAD" </dev/null >/dev/null 2>"$TEST_TMP/workload.err" ||
	fail "workload: $(tail -n3 "$TEST_TMP/workload.err")"
WORKLOAD_MS=$(ms_since "$t")
undo_to "$lvl" # fuse-trace flushes the trace when it is stopped
[ -s "$TRACE" ] || fail "empty trace"
read -r TR_N TR_BYTES TR_UNIQ < <("$PY" - "$TRACE" <<'EOF'
import sys
reads = sorted((int(o), int(o) + int(n)) for _, o, n in (l.split() for l in open(sys.argv[1])))
uniq, end = 0, -1
for s, e in reads:
    if e > end:
        uniq += e - max(s, end)
        end = e
print(len(reads), sum(e - s for s, e in reads), uniq)
EOF
)
echo "trace: $TR_N reads, $TR_BYTES bytes ($TR_UNIQ distinct); workload $WORKLOAD_MS ms locally" >&2

# replay FILE: the trace's reads in order, one at a time, O_DIRECT where
# aligned (as the loop device issued them). Prints seconds.
replay() {
	"$PY" - "$1" "$TRACE" <<'EOF'
import mmap, os, sys, time
reads = [(int(o), int(n)) for _, o, n in (l.split() for l in open(sys.argv[2]))]
dfd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
bfd = os.open(sys.argv[1], os.O_RDONLY)
buf = mmap.mmap(-1, (max(n for _, n in reads) + 4095) // 4096 * 4096)
t = time.monotonic()
for o, n in reads:
    if o % 512 == 0 and n % 512 == 0:
        got = os.preadv(dfd, [memoryview(buf)[:n]], o)
    else:
        got = len(os.pread(bfd, n, o))
    if got != n:
        sys.exit("short read at %d: %d of %d" % (o, got, n))
print("%.3f" % (time.monotonic() - t))
EOF
}
replay_run() { # LABEL ARGS...
	local label=$1 s pf
	shift
	fetcher_up replay "$WCONF" --profile-timeout 0 --cache-size 512M "$@"
	local rdy=$READY_MS
	s=$(replay "$FDIR/fuse/layer-0") || fail "replay ($label)"
	status_json "$TEST_TMP/replay.json"
	pf="$(jget "$TEST_TMP/replay.json" prefetch.done)/$(jget "$TEST_TMP/replay.json" prefetch.total) chunks"
	row "$label" "$s s" "" "fetched $(jget "$TEST_TMP/replay.json" fetched.requests) requests,\
 $(jget "$TEST_TMP/replay.json" fetched.bytes) bytes; prefetch $pf; ready after $rdy ms"
}
lvl=${#_undo[@]}
replay_run "e. trace replay, cold, no profile"
"$GDROOT" boot-done --socket "$FDIR/sock" >/dev/null || fail "boot-done"
undo_to "$lvl"
"$GDROOT" -q -c "$CONF" store ls profiles/ | grep -q profiles/ || fail "no profile saved"
lvl=${#_undo[@]}
replay_run "e. trace replay, cold, profile prefetch"
undo_to "$lvl"
row "e. the trace" "$TR_N reads" "" "$TR_BYTES bytes read, $TR_UNIQ distinct; workload $WORKLOAD_MS ms on a local FUSE passthrough"
fi
undo_to 0

# --- the table
TABLE=$(
	echo "Run: $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r); link $LINK_ROW (wan-proxy); image $SIZE bytes"
	echo "(Debian bookworm minbase + systemd-sysv, udev, $ROOT_MB MB of files; push $PUSH_MS ms over the veth)."
	echo
	echo "| benchmark | result | target | detail |"
	echo "| --- | --- | --- | --- |"
	printf '%s\n' "${ROWS[@]}"
)
echo
echo "$TABLE"
if [ -n "$OUT" ]; then
	if [ -f "$OUT" ] && grep -q '^<!-- fetcher-bench:begin -->' "$OUT"; then
		awk -v t="$TABLE" '/^<!-- fetcher-bench:begin -->/ {print; print t; skip = 1; next}
			/^<!-- fetcher-bench:end -->/ {skip = 0} !skip' "$OUT" >"$OUT.tmp" && mv "$OUT.tmp" "$OUT"
	else
		printf '# Fetcher benchmarks\n\n<!-- fetcher-bench:begin -->\n%s\n<!-- fetcher-bench:end -->\n' \
			"$TABLE" >"$OUT"
	fi
	echo "wrote $OUT" >&2
fi
