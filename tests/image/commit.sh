#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: gdroot commit, reset --to and commitd on the host, with
# uppers on ext4 loop filesystems (frozen for real) and the mirror on a
# tmpfs. Fidelity (a hostile tree plus whiteouts, an opaque directory and
# overlayfs' private xattrs: the mirror and the committed layer match the
# upper), incremental captures, a session's later commit replacing its
# layer, "nothing to commit"; a commit killed at each step (mid-capture
# with the upper frozen, after the image, after a pack, after the index,
# before the manifest) leaves the previous generation valid and a rerun
# completes it; the store down and a connection reset mid-upload; two
# machines committing at once on the Drive emulator and on a folder (both
# kept, the newest holds both sessions); rollback with reset --to; the
# commit daemon (interval, final commit at stop, reset marker).
. "$(dirname "$0")/../lib.sh"
requires_root
requires mksquashfs mkfs.ext4 losetup setfattr getfattr
[ -x "$GDROOT" ] || fail "$GDROOT not built"
F=$TOP/tests/fidelity

"$GDROOT" keygen "$TEST_TMP/key" >/dev/null || fail keygen
# An upper on its own ext4 (frozen by commit), a state dir on a tmpfs.
mk_session() { # NAME
	local d=$TEST_TMP/$1
	mkdir -p "$d/fs" "$d/state"
	truncate -s 8G "$d/fs.img"
	mkfs.ext4 -q -F -O ^has_journal "$d/fs.img" || fail "mkfs $1"
	mount -o loop "$d/fs.img" "$d/fs" || fail "mount $1"
	cleanup_fn umount -d "$d/fs"
	mount -t tmpfs tmpfs "$d/state" || fail "tmpfs $1"
	cleanup_fn umount "$d/state"
	mkdir "$d/fs/upper"
}
up() { echo "$TEST_TMP/$1/fs/upper"; }
# commit NAME STORE [ARGS...]
commit() {
	local n=$1 s=$2
	shift 2
	"$GDROOT" -s "$s" -k "$TEST_TMP/key.key" commit --upper "$(up "$n")" --state "$TEST_TMP/$n/state" \
		--session "sess-$n" "$@"
}
gd() { "$GDROOT" -s "$S" -k "$TEST_TMP/key.key" "$@"; }
newest() { gd log | awk 'NR == 2 {print $1}'; }
layers_of() { # GEN: "session-or-base ..." bottom first
	gd log --layers | awk -v g="$1" '$1 == g {on = 1; next} /^[0-9]/ {on = 0} on && /layer/ {print ($8 == "" ? "base" : $8)}' |
		tr '\n' ' '
}
cmp_trees() { # A B LABEL [treecmp args]
	local a=$1 b=$2 what=$3
	shift 3
	"$PY" "$F/treecmp.py" "$@" "$a" "$b" >"$TEST_TMP/cmp.out" || fail "$what: $(head -20 "$TEST_TMP/cmp.out")"
}
mount_layer() { # GEN LAYER DIR
	gd export "$1" --layer "$2" "$TEST_TMP/l-$1-$2.sqfs" 2>/dev/null || fail "export $1 layer $2"
	mkdir -p "$3"
	mount -o loop,ro -t squashfs "$TEST_TMP/l-$1-$2.sqfs" "$3" || fail "mount $1/$2"
	cleanup_fn umount -d "$3"
}

STORE_DIR=$TEST_TMP/store
mkdir -p "$STORE_DIR" "$TEST_TMP/base/etc"
S="file://$STORE_DIR"
echo base >"$TEST_TMP/base/etc/motd"
gd push "$TEST_TMP/base" >/dev/null 2>&1 || fail "push base"

echo "== fidelity: a hostile tree with whiteouts and an opaque directory"
mk_session a
U=$(up a)
commit a "$S" >"$TEST_TMP/c0.out" 2>/dev/null || fail "commit of an empty upper"
grep -q '^nothing to commit: session sess-a has changed nothing' "$TEST_TMP/c0.out" || fail "empty upper: $(cat "$TEST_TMP/c0.out")"
bash "$F/mktree.sh" --small "$TEST_TMP/tree" >/dev/null || fail mktree
cp -a "$TEST_TMP/tree/." "$U/" || fail "copy the tree into the upper"
mknod "$U/whiteout" c 0 0
mkdir "$U/opaque"
setfattr -n trusted.overlay.opaque -v y "$U/opaque"
echo kept >"$U/opaque/file"
setfattr -n trusted.overlay.origin -v 0x00fb "$U/opaque/file" # overlayfs' own: dropped
commit a "$S" >"$TEST_TMP/c1.out" 2>"$TEST_TMP/c1.err" || fail "commit: $(cat "$TEST_TMP/c1.err")"
cat "$TEST_TMP/c1.out"
grep -q '^generation 2: committed session sess-a: ' "$TEST_TMP/c1.out" || fail "commit printed: $(cat "$TEST_TMP/c1.out")"
grep -q 'writers paused [0-9.]* ms' "$TEST_TMP/c1.out" || fail "no pause reported"
cmp_trees "$U" "$TEST_TMP/a/state/tree" "mirror differs from the upper" --mtime-ns --ignore-xattr trusted.overlay.origin
mount_layer 2 1 "$TEST_TMP/m2"
cmp_trees "$U" "$TEST_TMP/m2" "committed layer differs from the upper" --ignore-xattr trusted.overlay.origin
getfattr -n trusted.overlay.opaque --only-values "$TEST_TMP/m2/opaque" 2>/dev/null | grep -qx y || fail "opaque lost"
[ -c "$TEST_TMP/m2/whiteout" ] || fail "whiteout lost"
getfattr -d -m trusted.overlay.origin "$TEST_TMP/m2/opaque/file" 2>/dev/null | grep -q origin &&
	fail "overlayfs' private xattr was committed"
gd verify >/dev/null 2>&1 || fail "verify after the commit"

echo "== nothing changed: nothing to commit"
commit a "$S" >"$TEST_TMP/c2.out" 2>/dev/null || fail "second commit"
grep -q '^nothing to commit' "$TEST_TMP/c2.out" || fail "expected nothing to commit: $(cat "$TEST_TMP/c2.out")"
assert_eq "$(newest)" 2 "newest after an empty commit"

echo "== incremental: edits, a chmod, a removal, a new hard link; the layer is replaced"
echo changed >>"$U/opaque/file"
chmod 600 "$U/whiteout"
first=$(cd "$U" && find . -type f -size -100k | sort | head -n 3)
rm -f "$U/$(echo "$first" | sed -n 1p)"
ln "$U/opaque/file" "$U/opaque/link"
commit a "$S" >"$TEST_TMP/c3.out" 2>/dev/null || fail "third commit"
grep -q '^generation 3: .* [1-9][0-9]* changed since the last capture' "$TEST_TMP/c3.out" || fail "c3: $(cat "$TEST_TMP/c3.out")"
cmp_trees "$U" "$TEST_TMP/a/state/tree" "incremental mirror differs" --mtime-ns --ignore-xattr trusted.overlay.origin
assert_eq "$(layers_of 3)" "base sess-a " "generation 3's layers (the session's layer replaced)"

echo "== a commit killed at each step, then rerun"
for point in capture image pack:1 index manifest; do
	echo "crash $point" >"$U/crash-$point"
	before=$(newest)
	GDROOT_TEST_CRASH=$point commit a "$S" >/dev/null 2>"$TEST_TMP/crash.err"
	rc=$?
	[ $rc = 137 ] || fail "crash at $point: exit $rc, $(tail -3 "$TEST_TMP/crash.err")"
	assert_eq "$(newest)" "$before" "newest generation after a crash at $point"
	gd verify --gen "$before" >/dev/null 2>&1 || fail "generation $before is not valid after a crash at $point"
	# The upper is writable: the guardian thawed it.
	timeout 20 sh -c "echo thawed >'$U/thawed-$point' && sync -f '$U/thawed-$point'" ||
		fail "the upper stayed frozen after a crash at $point"
	commit a "$S" >"$TEST_TMP/rerun.out" 2>"$TEST_TMP/rerun.err" || fail "rerun after $point: $(cat "$TEST_TMP/rerun.err")"
	assert_eq "$(newest)" "$((before + 1))" "newest after the rerun ($point)"
	mount_layer "$((before + 1))" 1 "$TEST_TMP/m-$point"
	[ -f "$TEST_TMP/m-$point/crash-$point" ] || fail "the rerun after $point lost the change"
done

echo "== Drive: the store down, then a connection reset mid-upload"
emu_start --quiet
emu_config "$TEST_TMP/emu.conf"
echo "settle_ms = 300" >>"$TEST_TMP/emu.conf"
FOLDER=$(emu_mkfolder commit-test)
D="gdrive://$FOLDER"
gdd() { "$GDROOT" -c "$TEST_TMP/emu.conf" -s "$D" -k "$TEST_TMP/key.key" "$@"; }
gdd push "$TEST_TMP/base" >/dev/null 2>&1 || fail "push base to Drive"
mk_session b
dd if=/dev/urandom of="$(up b)/big" bs=1M count=6 status=none
emu_ctl POST faults '{"rate": 1.0, "codes": [503]}' >/dev/null
"$GDROOT" -c "$TEST_TMP/emu.conf" -s "$D" -k "$TEST_TMP/key.key" -o retries=2 commit --upper "$(up b)" \
	--state "$TEST_TMP/b/state" --session sess-b >/dev/null 2>"$TEST_TMP/down.err" && fail "commit with the store down succeeded"
grep -q 'stays current\|failed\|503' "$TEST_TMP/down.err" || fail "no clear error with the store down: $(tail -3 "$TEST_TMP/down.err")"
emu_ctl POST faults '{"rate": 0}' >/dev/null
assert_eq "$(gdd log | awk 'NR == 2 {print $1}')" 1 "newest on Drive after a failed commit"
emu_ctl POST fail-next '{"count": 1, "reset": true, "kind": "upload", "after_bytes": 2000000}' >/dev/null
"$GDROOT" -c "$TEST_TMP/emu.conf" -s "$D" -k "$TEST_TMP/key.key" commit --upper "$(up b)" --state "$TEST_TMP/b/state" \
	--session sess-b >"$TEST_TMP/reset.out" 2>"$TEST_TMP/reset.err" || fail "commit through a reset: $(tail -3 "$TEST_TMP/reset.err")"
grep -q '^generation 2: committed session sess-b' "$TEST_TMP/reset.out" || fail "after the reset: $(cat "$TEST_TMP/reset.out")"

echo "== two machines commit at once (Drive, then a folder): both kept, the newest has both"
mk_session c
race() { # STORE-ARGS... : commits sessions b and c at the same moment
	local bar=$TEST_TMP/barrier.$RANDOM
	mkdir -p "$bar"
	echo "change $RANDOM" >"$(up b)/race-b"
	echo "change $RANDOM" >"$(up c)/race-c"
	GDROOT_TEST_BARRIER=$bar "$GDROOT" "$@" -k "$TEST_TMP/key.key" commit --upper "$(up b)" \
		--state "$TEST_TMP/b/state" --session sess-b >"$TEST_TMP/race-b.out" 2>"$TEST_TMP/race-b.err" &
	local pb=$!
	GDROOT_TEST_BARRIER=$bar "$GDROOT" "$@" -k "$TEST_TMP/key.key" commit --upper "$(up c)" \
		--state "$TEST_TMP/c/state" --session sess-c >"$TEST_TMP/race-c.out" 2>"$TEST_TMP/race-c.err" &
	local pc=$!
	for _ in $(seq 600); do [ "$(ls "$bar" | wc -l)" -ge 2 ] && break; sleep 0.1; done
	[ "$(ls "$bar" | wc -l)" -ge 2 ] || fail "the committers did not reach the barrier"
	touch "$bar/go"
	wait $pb || fail "committer b: $(tail -3 "$TEST_TMP/race-b.err")"
	wait $pc || fail "committer c: $(tail -3 "$TEST_TMP/race-c.err")"
	cat "$TEST_TMP/race-b.out" "$TEST_TMP/race-c.out"
	cat "$TEST_TMP/race-b.err" "$TEST_TMP/race-c.err" | grep -q 'published by another writer first' ||
		fail "no writer lost the race: $(cat "$TEST_TMP/race-b.err" "$TEST_TMP/race-c.err")"
}
race -c "$TEST_TMP/emu.conf" -s "$D"
gdd log --layers >"$TEST_TMP/dlog.out"
top=$(awk 'NR == 2 {print $1}' "$TEST_TMP/dlog.out")
assert_eq "$top" 4 "newest on Drive after the race"
awk -v g=4 '$1 == g {on = 1; next} /^[0-9]/ {on = 0} on' "$TEST_TMP/dlog.out" | grep -q 'session sess-b' &&
	awk -v g=4 '$1 == g {on = 1; next} /^[0-9]/ {on = 0} on' "$TEST_TMP/dlog.out" | grep -q 'session sess-c' ||
	fail "generation 4 lacks a session: $(cat "$TEST_TMP/dlog.out")"
# Drive allows two files of one name: the loser deleted its own.
ndup=$(curl -sS -f -H "Authorization: Bearer $(emu_token)" -G "$EMU_URL/drive/v3/files" \
	--data-urlencode "q='$FOLDER' in parents and name = 'manifests/0000000003'" |
	"$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["files"]))')
assert_eq "$ndup" 1 "files named manifests/0000000003 on Drive"
gdd verify >/dev/null 2>&1 || fail "verify on Drive after the race"
n0=$(newest)
race -s "$S"
assert_eq "$(newest)" "$((n0 + 2))" "newest on the folder after the race"
layers_of "$((n0 + 2))" | grep -q 'sess-b' && layers_of "$((n0 + 2))" | grep -q 'sess-c' ||
	fail "the folder's newest lacks a session: $(layers_of "$((n0 + 2))")"

echo "== reset --to: a new generation equal to an old one"
before=$(newest)
gd reset --to 1 --state "$TEST_TMP/a/state" >"$TEST_TMP/rb.out" 2>"$TEST_TMP/rb.err" || fail "reset --to 1: $(cat "$TEST_TMP/rb.err")"
grep -q "^generation $((before + 1)): the layers of generation 1" "$TEST_TMP/rb.out" || fail "reset --to printed: $(cat "$TEST_TMP/rb.out")"
gd log | awk -v g=$((before + 1)) '$1 == g' | grep -q 'reset 1$' || fail "the log does not show the reset"
assert_eq "$(layers_of $((before + 1)))" "base " "layers after reset --to 1"
# Session a's layer is gone from the newest: its next commit must not
# quietly stack on the rollback.
echo after >"$(up a)/after-rollback"
commit a "$S" >/dev/null 2>"$TEST_TMP/stale.err" && fail "commit on top of a rollback succeeded without --force"
grep -q 'compacted or rolled back' "$TEST_TMP/stale.err" || fail "stale session: $(cat "$TEST_TMP/stale.err")"
commit a "$S" --force >/dev/null 2>&1 || fail "commit --force after the rollback"
assert_eq "$(layers_of "$(newest)")" "base sess-a " "layers after a forced commit"
gd reset --to 999 >/dev/null 2>"$TEST_TMP/rb.err" && fail "reset --to a missing generation succeeded"
grep -q 'no generation 999' "$TEST_TMP/rb.err" || fail "reset --to 999: $(cat "$TEST_TMP/rb.err")"
if [ ! -e /run/gdroot/session ]; then
	gd reset >/dev/null 2>"$TEST_TMP/rs.err"
	[ $? = 2 ] && grep -q 'not a gdroot boot session' "$TEST_TMP/rs.err" || fail "reset outside a session: $(cat "$TEST_TMP/rs.err")"
fi

echo "== commitd: commits a change, commits at stop, stops once reset"
mk_session d
echo one >"$(up d)/one"
head -c 3M /dev/urandom >"$(up d)/data" # enough chunks for a delta index to pay
before=$(newest)
"$GDROOT" -s "$S" -k "$TEST_TMP/key.key" commitd --upper "$(up d)" --state "$TEST_TMP/d/state" --session sess-d \
	--poll 1 --interval 1 --min-spacing 1 --on-shutdown >"$TEST_TMP/cd.out" 2>"$TEST_TMP/cd.err" &
cdpid=$!
cleanup_fn kill "$cdpid"
for _ in $(seq 120); do [ "$(newest)" -gt "$before" ] && break; sleep 0.5; done
[ "$(newest)" -gt "$before" ] || fail "commitd did not commit: $(tail -5 "$TEST_TMP/cd.err")"
layers_of "$(newest)" | grep -q sess-d || fail "commitd's generation lacks its session"
kill -TERM "$cdpid"
wait "$cdpid" || fail "commitd exited with $?: $(tail -5 "$TEST_TMP/cd.err")"
# A second daemon with a long interval: the change waits for the stop.
"$GDROOT" -s "$S" -k "$TEST_TMP/key.key" commitd --upper "$(up d)" --state "$TEST_TMP/d/state" --session sess-d \
	--poll 1 --interval 1h --on-shutdown >"$TEST_TMP/cd.out" 2>"$TEST_TMP/cd.err" &
cdpid=$!
cleanup_fn kill "$cdpid"
echo two >"$(up d)/two"
mid=$(newest)
sleep 2 # polls that see the change and wait
assert_eq "$(newest)" "$mid" "commitd committed before the interval"
kill -TERM "$cdpid"
wait "$cdpid" || fail "commitd exited with $?: $(tail -5 "$TEST_TMP/cd.err")"
[ "$(newest)" -gt "$mid" ] || fail "no final commit at stop: $(tail -5 "$TEST_TMP/cd.err")"
mount_layer "$(newest)" "$(($(layers_of "$(newest)" | wc -w) - 1))" "$TEST_TMP/md"
[ -f "$TEST_TMP/md/two" ] || fail "the final commit lacks the last change"
touch "$TEST_TMP/d/state.reset"
timeout 60 "$GDROOT" -s "$S" -k "$TEST_TMP/key.key" commitd --upper "$(up d)" --state "$TEST_TMP/d/state" \
	--session sess-d --poll 1 >/dev/null 2>"$TEST_TMP/cd2.err" || fail "commitd after a reset: $?"
grep -q 'session was reset' "$TEST_TMP/cd2.err" || fail "commitd did not see the reset: $(cat "$TEST_TMP/cd2.err")"
commit d "$S" >/dev/null 2>"$TEST_TMP/cr.err" && fail "commit after a reset succeeded"
grep -q 'was reset' "$TEST_TMP/cr.err" || fail "commit after reset: $(cat "$TEST_TMP/cr.err")"

echo "== gc keeps the base of a delta index"
top16=$(gd log --layers | awk '/layer/ {ix = $6} /^[0-9]/ && NR > 2 {exit} END {print ix}')
ikey=$(gd store ls indexes/ | awk '{print $4}' | grep "^indexes/$top16")
gd store get "$ikey" "$TEST_TMP/top.ix" 2>/dev/null || fail "get $ikey"
assert_eq "$(od -An -tu4 -j8 -N4 "$TEST_TMP/top.ix" | tr -d ' ')" 2 "the version of the session's second index (a delta)"
gd gc --keep 1 >"$TEST_TMP/gc.out" 2>&1 || fail "gc: $(tail -3 "$TEST_TMP/gc.out")"
gd verify >"$TEST_TMP/v.out" 2>&1 || fail "verify after gc: $(tail -5 "$TEST_TMP/v.out")"
mount_layer "$(newest)" "$(($(layers_of "$(newest)" | wc -w) - 1))" "$TEST_TMP/mgc"
[ -f "$TEST_TMP/mgc/one" ] && [ -f "$TEST_TMP/mgc/two" ] || fail "the newest layer after gc lacks files"
echo ok
