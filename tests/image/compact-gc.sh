#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: gdroot compact and gdroot gc on a folder store and the Drive
# emulator. Layers stacked with gdroot commit (whiteouts, opaque dirs, a
# file deleted and made again, hard links) compact into one layer whose
# tree equals the overlay of the originals (treecmp); layers committed on
# top of the compacted generation are kept; a generation that the newest
# does not build on is refused; one layer is nothing to do; non-root is
# refused; SIGTERM mid-compaction leaves no mount or loop device. gc --keep
# N: --dry-run deletes nothing, a fresh push lock makes gc give way, a lock
# older than 24 h does not (and is removed), old manifests, their profiles,
# unreferenced indexes and packs (orphans included) go, invalid manifests
# stay, and every kept generation still verifies and mounts.
. "$(dirname "$0")/../lib.sh"
requires_root
requires mksquashfs losetup findmnt setpriv sha256sum
[ -x "$GDROOT" ] || fail "$GDROOT not built"
F=$TOP/tests/fidelity

STORE_DIR=$TEST_TMP/store
mkdir -p "$STORE_DIR"
S="file://$STORE_DIR"
"$GDROOT" keygen "$TEST_TMP/key" >/dev/null || fail keygen
G=("$GDROOT" -s "$S" -k "$TEST_TMP/key.key")
gd() { "${G[@]}" "$@"; }

# Every mount the test makes, and every loop device behind one, is undone
# at exit (last first).
mount_image() { # image dir
	mkdir -p "$2"
	mount -o loop,ro -t squashfs "$1" "$2" || fail "mount $1"
	cleanup_fn umount -d "$2"
}
# commit mounts its mirror (zram, or a tmpfs) on the state folder.
state_umount() {
	local src
	src=$(findmnt -n -o SOURCE --mountpoint "$1") || return 0
	umount "$1"
	case $src in /dev/zram*) echo "${src#/dev/zram}" >/sys/class/zram-control/hot_remove ;; esac
}
# mount_gen_overlay GEN DIR: the overlay of GEN's layers, as the boot stacks
# them (lower-only, read-only, xino so inode numbers stay distinct).
mount_gen_overlay() {
	local gen=$1 dir=$2 n i lowers=""
	n=$(gen_layers "$gen")
	for ((i = 0; i < n; i++)); do
		gd export "$gen" --layer "$i" "$TEST_TMP/g$gen-l$i.sqfs" 2>/dev/null || fail "export $gen layer $i"
		mount_image "$TEST_TMP/g$gen-l$i.sqfs" "$TEST_TMP/g$gen-l$i"
		lowers="$TEST_TMP/g$gen-l$i${lowers:+:$lowers}"
	done
	mkdir -p "$dir"
	mount -t overlay overlay -o "ro,lowerdir=$lowers,redirect_dir=off,metacopy=off,xino=on" "$dir" ||
		fail "overlay of generation $gen"
	cleanup_fn umount "$dir"
}
# manifest GEN: the inner JSON of GEN's manifest.
manifest() {
	gd store get "manifests/$(printf %010d "$1")" - 2>/dev/null |
		"$PY" -c 'import json, sys; print(json.load(sys.stdin)["manifest"])'
}
gen_layers() { manifest "$1" | "$PY" -c 'import json, sys; print(len(json.load(sys.stdin)["layers"]))'; }
newest() { gd log | awk '$1 ~ /^[0-9]+$/ && $2 !~ /INVALID/ {print $1; exit}'; }
count_gens() { gd log | grep -cE '^[0-9]+ '; }
commit() { # upper session
	mkdir -p "$TEST_TMP/state-$2"
	cleanup_fn state_umount "$TEST_TMP/state-$2"
	gd commit --upper "$1" --state "$TEST_TMP/state-$2" --session "$2" --no-freeze >"$TEST_TMP/commit.out" \
		2>"$TEST_TMP/commit.err" || fail "commit $2: $(cat "$TEST_TMP/commit.err")"
}
whiteout() { mkdir -p "$(dirname "$1")"; mknod "$1" c 0 0; }
opaque() { mkdir -p "$1"; "$PY" -c 'import os, sys; os.setxattr(sys.argv[1], "trusted.overlay.opaque", b"y")' "$1"; }
# overlayfs lists a whiteout in a folder that only one layer has (devices/
# of the base, new/ made opaque by layer 2) but cannot stat it: lookups,
# and so mksquashfs, do not see it. Compare overlays without those ghosts.
GHOSTS=(--ignore devices/char-0-0 --ignore new/hello)
treecmp() { # A B what [treecmp options]
	local a=$1 b=$2 what=$3; shift 3
	"$PY" "$F/treecmp.py" "$@" "$a" "$b" >"$TEST_TMP/cmp.out" || fail "$what: trees differ: $(head -20 "$TEST_TMP/cmp.out")"
	echo "$what: $(cat "$TEST_TMP/cmp.out")"
}
no_leftovers() { # what
	grep -q gdroot-compact /proc/mounts && fail "$1: compact left a mount: $(grep gdroot-compact /proc/mounts)"
	losetup -a | grep -q gdroot-compact && fail "$1: compact left a loop device: $(losetup -a | grep gdroot-compact)"
	ls -d "$TEST_TMP"/work/gdroot-compact.* 2>/dev/null | grep -q . &&
		fail "$1: compact left its scratch folder"
	return 0
}
mkdir -p "$TEST_TMP/work"
export TMPDIR=$TEST_TMP/work

echo "== three layers: a base and two commits"
bash "$F/mktree.sh" --small "$TEST_TMP/base" >/dev/null || fail mktree
head -c $((24 << 20)) /dev/urandom >"$TEST_TMP/base/big"
gd push "$TEST_TMP/base" >/dev/null 2>"$TEST_TMP/err" || fail "push: $(cat "$TEST_TMP/err")"
U1=$TEST_TMP/up1
whiteout "$U1/files/text"		# a base file deleted
whiteout "$U1/special"			# a base folder deleted
opaque "$U1/perms"			# a base folder replaced
echo only >"$U1/perms/only-this"
mkdir -p "$U1/new"
echo hello >"$U1/new/hello"
mkdir -p "$U1/linked"; echo linked >"$U1/linked/l1"; ln "$U1/linked/l1" "$U1/linked/l2"
echo changed >"$U1/files/small"
"$PY" -c 'import os, sys; os.setxattr(sys.argv[1], "user.note", b"from up1")' "$U1/new/hello"
commit "$U1" s1
U2=$TEST_TMP/up2
mkdir -p "$U2/files" "$U2/new"
echo back >"$U2/files/text"		# deleted in layer 1, made again
whiteout "$U2/new/hello"		# made in layer 1, deleted in layer 2
opaque "$U2/new"; echo fresh >"$U2/new/fresh"	# layer 1's folder replaced
commit "$U2" s2
G3=$(newest)
assert_eq "$(gen_layers "$G3")" 3 "layers of generation $G3"

echo "== a commit on top of it, then compact $G3 while it is not the newest"
U3=$TEST_TMP/up3
mkdir -p "$U3/top"; echo top >"$U3/top/file"; whiteout "$U3/files/one-byte"
commit "$U3" s3
G4=$(newest)
assert_eq "$(gen_layers "$G4")" 4 "layers of generation $G4"
mount_gen_overlay "$G3" "$TEST_TMP/ref3"
mount_gen_overlay "$G4" "$TEST_TMP/ref4"
gd compact "$G3" >"$TEST_TMP/compact.out" 2>"$TEST_TMP/compact.err" || fail "compact $G3: $(cat "$TEST_TMP/compact.err")"
cat "$TEST_TMP/compact.out"
G5=$(newest)
grep -q "^generation $G5: compacted generation $G3's 3 layers .* into one .* layer, 1 newer layer kept on top;" \
	"$TEST_TMP/compact.out" || fail "compact summary: $(cat "$TEST_TMP/compact.out")"
assert_eq "$(gen_layers "$G5")" 2 "layers of the compacted generation $G5"
manifest "$G5" | grep -q '"kind": *"compact"' || fail "generation $G5 is not of kind compact: $(manifest "$G5")"
no_leftovers "compact $G3"
gd export "$G5" --layer 0 "$TEST_TMP/merged3.sqfs" 2>/dev/null || fail "export the merged layer"
mount_image "$TEST_TMP/merged3.sqfs" "$TEST_TMP/merged3"
treecmp "$TEST_TMP/ref3" "$TEST_TMP/merged3" "merged layer = overlay of generation $G3" "${GHOSTS[@]}"
M=$TEST_TMP/merged3
[ "$(cat "$M/files/text")" = back ] || fail "files/text, deleted in layer 1 and made again in layer 2, is not there"
[ ! -e "$M/special" ] || fail "the deleted folder special/ came back"
[ "$(ls -A "$M/perms")" = only-this ] || fail "opaque perms/ holds: $(ls -A "$M/perms")"
[ "$(ls -A "$M/new")" = fresh ] || fail "opaque new/ holds: $(ls -A "$M/new")"
[ "$(cat "$M/files/small")" = changed ] || fail "files/small is not the changed one"
[ "$(cat "$M/linked/l1")" = linked ] && [ "$(stat -c %i "$M/linked/l1")" = "$(stat -c %i "$M/linked/l2")" ] ||
	fail "the hard link linked/l1 = linked/l2 of layer 1 is lost"
wo=$(find "$M" -type c -exec stat -c '%t:%T %n' {} + | grep '^0:0 ') && fail "whiteouts reached the merged layer: $wo"
mount_gen_overlay "$G5" "$TEST_TMP/ref5"
treecmp "$TEST_TMP/ref4" "$TEST_TMP/ref5" "generation $G5 (compacted + the newer layer) = generation $G4" "${GHOSTS[@]}"

echo "== compact the newest: one layer"
gd compact >"$TEST_TMP/compact.out" 2>"$TEST_TMP/compact.err" || fail "compact: $(cat "$TEST_TMP/compact.err")"
G6=$(newest)
assert_eq "$(gen_layers "$G6")" 1 "layers of generation $G6"
grep -q "^generation $G6: compacted generation $G5's 2 layers .* layer;" "$TEST_TMP/compact.out" ||
	fail "compact summary: $(cat "$TEST_TMP/compact.out")"
gd export "$G6" "$TEST_TMP/g6.sqfs" 2>/dev/null || fail "export $G6"
mount_image "$TEST_TMP/g6.sqfs" "$TEST_TMP/g6"
treecmp "$TEST_TMP/ref4" "$TEST_TMP/g6" "generation $G6 = generation $G4" "${GHOSTS[@]}"
[ ! -e "$TEST_TMP/g6/files/one-byte" ] || fail "files/one-byte, deleted by the top layer, came back"
no_leftovers "compact"

echo "== nothing to do, refused, not root"
before=$(count_gens)
gd compact >"$TEST_TMP/out" 2>&1 || fail "compact of one layer failed: $(cat "$TEST_TMP/out")"
grep -q "has one layer: nothing to compact" "$TEST_TMP/out" || fail "one layer: $(cat "$TEST_TMP/out")"
gd compact "$G3" >"$TEST_TMP/out" 2>&1; [ $? = 1 ] || fail "compact of a generation the newest does not build on"
grep -q "does not build on generation $G3" "$TEST_TMP/out" || fail "refusal: $(cat "$TEST_TMP/out")"
setpriv --reuid 65534 --regid 65534 --clear-groups "$GDROOT" -s "$S" -k "$TEST_TMP/key.key" compact "$G3" \
	>"$TEST_TMP/out" 2>&1; [ $? = 1 ] || fail "compact as nobody"
grep -q "needs root" "$TEST_TMP/out" || fail "not root: $(cat "$TEST_TMP/out")"
gd compact --bogus 2>/dev/null; [ $? = 2 ] || fail "unknown option"
assert_eq "$(count_gens)" "$before" "generations after refused compactions"
no_leftovers "refused compactions"

echo "== SIGTERM mid-compaction leaves nothing behind"
commit "$U1" s4
before=$(count_gens)
"${G[@]}" compact >"$TEST_TMP/out" 2>&1 &
pid=$!
for ((i = 0; i < 2000; i++)); do
	grep -q "gdroot-compact.*/merged overlay" /proc/mounts && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.01
done
grep -q "gdroot-compact.*/merged overlay" /proc/mounts || fail "the merged overlay never appeared: $(cat "$TEST_TMP/out")"
kill -TERM $pid
wait $pid; rc=$?
[ $rc = 1 ] || fail "compact after SIGTERM exited $rc: $(cat "$TEST_TMP/out")"
grep -q interrupted "$TEST_TMP/out" || fail "no word of the interruption: $(cat "$TEST_TMP/out")"
assert_eq "$(count_gens)" "$before" "generations after an interrupted compaction"
no_leftovers "SIGTERM"

echo "== gc: usage, dry run, locks"
G7=$(newest)		# the s4 commit: 2 layers, on top of $G6
gd gc 2>/dev/null; [ $? = 2 ] || fail "gc without --keep"
gd gc --keep 0 2>/dev/null; [ $? = 2 ] || fail "gc --keep 0"
# Orphans of an interrupted push, profiles, an invalid manifest.
for kind in packs indexes; do
	head -c 5000 /dev/urandom >"$TEST_TMP/orphan"
	cp "$TEST_TMP/orphan" "$STORE_DIR/$kind/$(sha256sum "$TEST_TMP/orphan" | cut -c1-64)"
done
mkdir -p "$STORE_DIR/profiles"
for g in 2 "$G5"; do head -c 80 /dev/zero >"$STORE_DIR/profiles/$(printf %010d "$g")"; done
sed -i 's/\\"new_bytes\\":\([0-9]\)/\\"new_bytes\\":9\1/' "$STORE_DIR/manifests/0000000001"
listing() { (cd "$STORE_DIR" && find . -type f ! -path './locks/*' | sort); }
listing >"$TEST_TMP/before"
mkdir -p "$STORE_DIR/locks"
echo '{}' >"$STORE_DIR/locks/push-$(date +%s)-x"
gd gc --keep 1 >"$TEST_TMP/out" 2>&1; [ $? = 1 ] || fail "gc ran beside a fresh push lock: $(cat "$TEST_TMP/out")"
grep -q "a push or commit is running" "$TEST_TMP/out" || fail "lock refusal: $(cat "$TEST_TMP/out")"
listing | cmp -s - "$TEST_TMP/before" || fail "gc deleted something while giving way"
[ "$(ls "$STORE_DIR/locks")" = "$(basename "$STORE_DIR"/locks/push-*)" ] || fail "gc left its lock: $(ls "$STORE_DIR/locks")"
rm "$STORE_DIR"/locks/push-*
stale=push-$(($(date +%s) - 25 * 3600))-x
echo '{}' >"$STORE_DIR/locks/$stale"
gd gc --keep 2 --dry-run >"$TEST_TMP/out" 2>&1 || fail "gc --dry-run: $(cat "$TEST_TMP/out")"
cat "$TEST_TMP/out"
listing | cmp -s - "$TEST_TMP/before" || fail "gc --dry-run deleted something"
[ -e "$STORE_DIR/locks/$stale" ] || fail "gc --dry-run deleted the stale lock"
grep -q "^keeping 2 generations: $G6-$G7" "$TEST_TMP/out" || fail "dry run keeps: $(cat "$TEST_TMP/out")"
grep -q "^would delete $((G5 - 1)) generations: 2-$G5" "$TEST_TMP/out" || fail "dry run deletes: $(cat "$TEST_TMP/out")"
grep -q "invalid, left alone: 1 generation: 1" "$TEST_TMP/out" || fail "invalid manifest not reported: $(cat "$TEST_TMP/out")"
grep -q "^gc: would delete" "$TEST_TMP/out" || fail "dry run summary: $(cat "$TEST_TMP/out")"

echo "== gc --keep 2, then --keep 1"
# index_packs GEN: the packs GEN's layers use (their index files, parsed).
index_packs() {
	local g=$1 n i
	n=$(gen_layers "$g")
	for ((i = 0; i < n; i++)); do
		manifest "$g" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["layers"][int(sys.argv[1])]["index"])' "$i"
	done | while read -r ix; do
		"$PY" -c 'import struct, sys
d = open(sys.argv[1], "rb").read()
n = struct.unpack_from("<I", d, 12)[0]
for i in range(n): print(d[32 + 32 * i: 64 + 32 * i].hex())' "$STORE_DIR/indexes/$ix"
	done | sort -u
}
gd gc --keep 2 >"$TEST_TMP/out" 2>&1 || fail "gc --keep 2: $(cat "$TEST_TMP/out")"
cat "$TEST_TMP/out"
grep -q "^gc: deleted $((G5 - 1)) generations" "$TEST_TMP/out" || fail "gc summary: $(cat "$TEST_TMP/out")"
assert_eq "$(ls "$STORE_DIR/manifests" | tr '\n' ' ')" "0000000001 $(printf %010d "$G6") $(printf %010d "$G7") " "manifests after gc --keep 2"
[ -e "$STORE_DIR/locks/$stale" ] && fail "gc kept the stale lock"
[ -z "$(ls -A "$STORE_DIR/locks")" ] || fail "locks after gc: $(ls "$STORE_DIR/locks")"
[ ! -e "$STORE_DIR/profiles/0000000002" ] || fail "the profile of deleted generation 2 is still there"
# Generation $G6 has no profile of its own: the fetcher falls back to $G5's.
[ -e "$STORE_DIR/profiles/$(printf %010d "$G5")" ] || fail "gc deleted the profile generation $G6 prefetches with"
{ index_packs "$G6"; index_packs "$G7"; } | sort -u >"$TEST_TMP/want-packs"
ls "$STORE_DIR/packs" | sort >"$TEST_TMP/have-packs"
cmp -s "$TEST_TMP/want-packs" "$TEST_TMP/have-packs" || fail "packs after gc --keep 2: $(diff "$TEST_TMP/want-packs" "$TEST_TMP/have-packs")"
for g in "$G6" "$G7"; do
	gd verify --gen "$g" >"$TEST_TMP/v.out" 2>&1 || fail "verify $g after gc: $(cat "$TEST_TMP/v.out")"
done
gd gc --keep 1 >"$TEST_TMP/out" 2>&1 || fail "gc --keep 1: $(cat "$TEST_TMP/out")"
cat "$TEST_TMP/out"
assert_eq "$(ls "$STORE_DIR/manifests" | tr '\n' ' ')" "0000000001 $(printf %010d "$G7") " "manifests after gc --keep 1"
index_packs "$G7" >"$TEST_TMP/want-packs"
ls "$STORE_DIR/packs" | sort >"$TEST_TMP/have-packs"
cmp -s "$TEST_TMP/want-packs" "$TEST_TMP/have-packs" || fail "packs after gc --keep 1: $(diff "$TEST_TMP/want-packs" "$TEST_TMP/have-packs")"
[ "$(ls "$STORE_DIR/indexes" | wc -l)" = "$(gen_layers "$G7")" ] || fail "indexes after gc --keep 1: $(ls "$STORE_DIR/indexes")"
gd verify --gen "$G7" >"$TEST_TMP/v.out" 2>&1 || fail "verify $G7 after gc: $(cat "$TEST_TMP/v.out")"
mount_gen_overlay "$G7" "$TEST_TMP/ref7"
treecmp "$TEST_TMP/g6" "$TEST_TMP/g$G7-l0" "generation $G7's base after gc = generation $G6"
gd gc --keep 1 >"$TEST_TMP/out" 2>&1 || fail "a second gc --keep 1"
grep -q "^gc: deleted 0 generations, 0 B; kept 1 generation" "$TEST_TMP/out" || fail "second gc: $(cat "$TEST_TMP/out")"

echo "== Drive emulator"
emu_start --quiet
emu_config "$TEST_TMP/gdroot.conf"
FOLDER=$(emu_mkfolder compact)
D=("$GDROOT" -c "$TEST_TMP/gdroot.conf" -s "gdrive://$FOLDER" -k "$TEST_TMP/key.key")
gd() { "${D[@]}" "$@"; }
gd push "$TEST_TMP/base" >/dev/null 2>"$TEST_TMP/err" || fail "push to Drive: $(cat "$TEST_TMP/err")"
commit "$U1" d1
commit "$U2" d2
gd compact >"$TEST_TMP/out" 2>&1 || fail "compact on Drive: $(cat "$TEST_TMP/out")"
assert_eq "$(newest)" 4 "the compacted generation on Drive"
assert_eq "$(gen_layers 4)" 1 "layers of the compacted generation on Drive"
gd export 4 "$TEST_TMP/d4.sqfs" 2>/dev/null || fail "export from Drive"
mount_image "$TEST_TMP/d4.sqfs" "$TEST_TMP/d4"
treecmp "$TEST_TMP/ref3" "$TEST_TMP/d4" "Drive: compacted = overlay of the same three layers" "${GHOSTS[@]}"
echo '{}' >"$TEST_TMP/lock.json"
gd store put "$TEST_TMP/lock.json" "locks/push-$(date +%s)-x" 2>/dev/null || fail "put a lock on Drive"
gd gc --keep 1 >"$TEST_TMP/out" 2>&1; [ $? = 1 ] && grep -q "a push or commit is running" "$TEST_TMP/out" ||
	fail "Drive gc beside a push lock: $(cat "$TEST_TMP/out")"
gd store rm "$(gd store ls locks/ | awk '{print $NF}')" 2>/dev/null || fail "remove the lock on Drive"
assert_eq "$(gd store ls locks/ | wc -l)" 0 "locks on Drive after gc gave way"
emu_ctl POST faults '{"rate": 0.2, "codes": [429, 500, 503]}' >/dev/null
gd gc --keep 1 >"$TEST_TMP/out" 2>&1 || fail "Drive gc under faults: $(cat "$TEST_TMP/out")"
emu_ctl POST faults '{"rate": 0}' >/dev/null
grep -q "^gc: deleted 3 generations" "$TEST_TMP/out" || fail "Drive gc: $(cat "$TEST_TMP/out")"
gd verify >"$TEST_TMP/v.out" 2>&1 || fail "verify on Drive after gc: $(cat "$TEST_TMP/v.out")"
assert_eq "$(gd store ls manifests/ | wc -l)" 1 "manifests on Drive after gc"
assert_eq "$(gd store ls locks/ | wc -l)" 0 "locks on Drive after gc"
assert_eq "$(gd store ls indexes/ | wc -l)" 1 "indexes on Drive after gc"
no_leftovers "Drive"
echo ok
