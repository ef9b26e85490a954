#!/bin/bash
# SPDX-License-Identifier: MIT
# commit-bench.sh: what a commit of a small change in a large upper costs
# (root). The upper is ext4 on an LZ4 zram device, as in a boot; the store
# is the Drive emulator on loopback. The upper gets UPPER_MB of data (1 MiB
# random files plus 4 KiB text files, a tenth of the bytes), a first commit
# publishes it, then for each of RUNS runs a CHANGE_KB change (a new random
# file; then an in-place rewrite of part of an existing file) is committed.
# Measured per commit: bytes of new objects in the store by kind (packs,
# indexes, manifests), the writers' pause as gdroot reports it, and the
# longest stall a writer saw (a process appending 4 KiB with fsync every
# 2 ms during the commit). Prints a Markdown table (also to OUT if set).
. "$(dirname "$0")/../lib.sh"
requires_root
requires mksquashfs mkfs.ext4
[ -x "$GDROOT" ] || fail "$GDROOT not built"
UPPER_MB=${UPPER_MB:-200}
CHANGE_KB=${CHANGE_KB:-1024}
# CHUNK_AVG: commit_chunk_avg for the run (default: gdroot's).
RUNS=${RUNS:-3}

[ -w /sys/class/zram-control/hot_add ] || skip "needs zram"
zid=$(cat /sys/class/zram-control/hot_add)
cleanup_fn sh -c "echo $zid >/sys/class/zram-control/hot_remove"
echo lz4 >"/sys/block/zram$zid/comp_algorithm" 2>/dev/null
echo $(((UPPER_MB * 3 + 512) << 20)) >"/sys/block/zram$zid/disksize"
mkfs.ext4 -q -F -O ^has_journal "/dev/zram$zid" || fail "mkfs on zram$zid"
mkdir -p "$TEST_TMP/upperfs" "$TEST_TMP/state"
mount -o noatime "/dev/zram$zid" "$TEST_TMP/upperfs" || fail "mount zram$zid"
cleanup_fn umount "$TEST_TMP/upperfs"
U=$TEST_TMP/upperfs/upper
mkdir "$U"
mount -t tmpfs -o size=$(((UPPER_MB * 3 + 256)))m tmpfs "$TEST_TMP/state" || fail "tmpfs"
cleanup_fn umount "$TEST_TMP/state"

emu_start --quiet
emu_config "$TEST_TMP/emu.conf"
[ -n "${CHUNK_AVG:-}" ] && echo "commit_chunk_avg = $CHUNK_AVG" >>"$TEST_TMP/emu.conf"
FOLDER=$(emu_mkfolder commit-bench)
"$GDROOT" keygen "$TEST_TMP/key" >/dev/null || fail keygen
gd() { "$GDROOT" -c "$TEST_TMP/emu.conf" -s "gdrive://$FOLDER" -k "$TEST_TMP/key.key" "$@"; }
mkdir -p "$TEST_TMP/base/etc"
echo base >"$TEST_TMP/base/etc/motd"
gd push "$TEST_TMP/base" >/dev/null 2>&1 || fail "push the base"

echo "commit-bench: filling the upper with $UPPER_MB MiB" >&2
big=$((UPPER_MB * 9 / 10))
mkdir -p "$U/data" "$U/text"
for i in $(seq "$big"); do head -c 1M /dev/urandom >"$U/data/f$i"; done
"$PY" - "$U/text" $(((UPPER_MB - big) * 256)) <<'PY'
import os, random, sys
d, n = sys.argv[1], int(sys.argv[2])
random.seed(1)
words = [("w%d" % i) for i in range(5000)]
for i in range(n):
    with open(os.path.join(d, "t%05d.txt" % i), "w") as f:
        f.write(" ".join(random.choice(words) for _ in range(700))[:4096])
PY
sync

objects() { gd store ls 2>/dev/null | awk '{print $4, $1}' | sort; } # key size
# commit_measure LABEL: commit while a writer runs; one table row. The
# writer prints its longest stall.
ROWS=()
commit_measure() {
	local label=$1
	objects >"$TEST_TMP/before"
	rm -f "$TEST_TMP/writer.stop"
	"$PY" - "$U/writer.log" "$TEST_TMP/writer.stop" >"$TEST_TMP/stall" <<'PY' &
import os, sys, time
log, stop = sys.argv[1], sys.argv[2]
fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
buf, worst = b"x" * 4096, 0.0
while not os.path.exists(stop):
    t = time.monotonic()
    os.pwrite(fd, buf, 0)
    os.fsync(fd)
    worst = max(worst, time.monotonic() - t)
    time.sleep(0.002)
print("%.1f" % (worst * 1000))
PY
	local wpid=$!
	sleep 0.5
	gd commit --upper "$U" --state "$TEST_TMP/state" --session bench >"$TEST_TMP/commit.out" 2>"$TEST_TMP/commit.err" ||
		fail "commit: $(tail -3 "$TEST_TMP/commit.err")"
	sleep 0.2
	touch "$TEST_TMP/writer.stop"
	wait "$wpid"
	objects >"$TEST_TMP/after"
	local packs idx man
	read -r packs idx man < <(comm -13 "$TEST_TMP/before" "$TEST_TMP/after" | awk '
		/^packs\// {p += $2} /^indexes\// {i += $2} /^manifests\// {m += $2}
		END {printf "%d %d %d\n", p, i, m}')
	local pause stall changed=$((CHANGE_KB * 1024))
	pause=$(sed -n 's/.*writers paused \([0-9.]*\) ms.*/\1/p' "$TEST_TMP/commit.out")
	stall=$(cat "$TEST_TMP/stall")
	local r1 r2
	r1=$(awk -v p="$packs" -v c="$changed" 'BEGIN {printf "%.2f", p / c}')
	r2=$(awk -v p="$packs" -v i="$idx" -v c="$changed" 'BEGIN {printf "%.2f", (p + i) / c}')
	ROWS+=("| $label | $packs | $idx | $man | $r1 | $r2 | $pause | $stall |")
	echo "  $label: packs $packs B, index $idx B, manifest $man B; packs/change $r1, (packs+index)/change $r2; pause $pause ms, writer stall $stall ms" >&2
}

echo "commit-bench: first commit of the whole upper" >&2
commit_measure "first commit ($UPPER_MB MiB upper, all new)"
for run in $(seq "$RUNS"); do
	head -c $((CHANGE_KB * 1024)) /dev/urandom >"$U/data/new-$run"
	commit_measure "run $run: a new $CHANGE_KB KiB file"
	# Rewrite CHANGE_KB in place, in the middle of an existing 1 MiB file
	# (for CHANGE_KB > 1024: across files).
	left=$CHANGE_KB i=$((run * 7))
	while [ "$left" -gt 0 ]; do
		n=$((left > 512 ? 512 : left))
		dd if=/dev/urandom of="$U/data/f$i" bs=1K seek=256 count="$n" conv=notrunc status=none
		left=$((left - n)) i=$((i + 1))
	done
	commit_measure "run $run: $CHANGE_KB KiB rewritten in place"
done

{
	echo "| commit | packs (B) | index (B) | manifest (B) | packs / change | (packs + index) / change | pause (gdroot) ms | longest writer stall ms |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
	printf '%s\n' "${ROWS[@]}"
} | tee ${OUT:+"$OUT"}
