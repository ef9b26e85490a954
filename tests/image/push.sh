#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: gdroot push, log, verify and export on a folder store and
# the Drive emulator. POSIX fidelity (the hostile tree pushed, exported,
# loop-mounted and compared by a tree walk), what squashfs cannot hold
# reported by path, reproducible images and deduplication, tar input (gzip
# and zstd), tamper detection (flipped byte, truncated pack, edited
# manifest, another key, missing pack), crash safety (push killed with
# SIGKILL after a pack, after the index, before the manifest, then rerun)
# and unsigned stores needing the flag on both ends.
. "$(dirname "$0")/../lib.sh"
requires_root
requires mksquashfs losetup setcap setfacl zstd
[ -x "$GDROOT" ] || fail "$GDROOT not built"
F=$TOP/tests/fidelity

STORE_DIR=$TEST_TMP/store
mkdir -p "$STORE_DIR"
S="file://$STORE_DIR"
"$GDROOT" keygen "$TEST_TMP/key" >/dev/null || fail keygen
"$GDROOT" keygen "$TEST_TMP/other" >/dev/null || fail keygen
G=("$GDROOT" -s "$S" -k "$TEST_TMP/key.key")
gd() { "${G[@]}" "$@"; }
mounted=()
mount_image() { # image dir
	mkdir -p "$2"
	mount -o loop,ro -t squashfs "$1" "$2" || fail "mount $1"
	cleanup_fn umount -d "$2"
}

echo "== the hostile tree: push, export, mount, compare"
bash "$F/mktree.sh" "$TEST_TMP/tree" >/dev/null || fail mktree
gd push --keep-image "$TEST_TMP/built.sqfs" "$TEST_TMP/tree" >"$TEST_TMP/push1.out" 2>"$TEST_TMP/push1.err" ||
	fail "push: $(cat "$TEST_TMP/push1.err")"
grep -q '^generation 1:' "$TEST_TMP/push1.out" || fail "push printed: $(cat "$TEST_TMP/push1.out")"
gd export 1 "$TEST_TMP/exp.sqfs" 2>/dev/null || fail export
cmp "$TEST_TMP/built.sqfs" "$TEST_TMP/exp.sqfs" || fail "export is not bit-identical to what mksquashfs wrote"
mount_image "$TEST_TMP/exp.sqfs" "$TEST_TMP/mnt"
"$PY" "$F/treecmp.py" "$TEST_TMP/tree" "$TEST_TMP/mnt" >"$TEST_TMP/cmp.out" || fail "tree differs: $(head -20 "$TEST_TMP/cmp.out")"
cat "$TEST_TMP/cmp.out"
gd verify >"$TEST_TMP/verify.out" || fail "verify: $(cat "$TEST_TMP/verify.out")"
grep -q 'clean' "$TEST_TMP/verify.out" || fail "verify did not say clean"

echo "== reproducible: the same tree again uploads nothing"
gd push "$TEST_TMP/tree" >"$TEST_TMP/push2.out" 2>/dev/null || fail "second push"
grep -q '^generation 2: .* 0 B new (0 B uploaded in 0 packs' "$TEST_TMP/push2.out" || fail "second push uploaded: $(cat "$TEST_TMP/push2.out")"
gd log >"$TEST_TMP/log.out" || fail log
[ "$(grep -cE '^[12] ' "$TEST_TMP/log.out")" = 2 ] || fail "log: $(cat "$TEST_TMP/log.out")"
awk '$1 == 2 {print $9}' "$TEST_TMP/log.out" | grep -q '^1$' || fail "generation 2's parent is not 1: $(cat "$TEST_TMP/log.out")"

echo "== what squashfs cannot hold is reported by path"
mkdir -p "$TEST_TMP/u"
bash "$F/mktree.sh" --small --with-unrepresentable "$TEST_TMP/u/t" >/dev/null || fail "mktree --with-unrepresentable"
gd push --report "$TEST_TMP/report.txt" "$TEST_TMP/u/t" >/dev/null 2>"$TEST_TMP/u.err" || fail "push unrepresentable: $(cat "$TEST_TMP/u.err")"
for kind in posix-acl subsecond-mtime mtime-out-of-range hardlinked-symlink; do
	grep -q "^$kind	/unrepresentable/" "$TEST_TMP/report.txt" || fail "report lacks $kind: $(cat "$TEST_TMP/report.txt")"
done
grep -q 'POSIX ACL' "$TEST_TMP/u.err" || fail "no ACL warning on stderr"
grep -q 'unrepresentable/' "$TEST_TMP/u.err" || fail "warnings do not name paths"

echo "== tar input: gzip and zstd"
mkdir -p "$TEST_TMP/small"
bash "$F/mktree.sh" --small "$TEST_TMP/small/t" >/dev/null || fail "mktree --small"
for z in gzip zstd; do
	tar --xattrs --xattrs-include='*' --acls --numeric-owner -C "$TEST_TMP/small/t" --$z -cf "$TEST_TMP/root.tar.$z" . ||
		fail "tar $z"
	gd push "$TEST_TMP/root.tar.$z" >"$TEST_TMP/tar.out" 2>"$TEST_TMP/tar.err" || fail "push tar.$z: $(cat "$TEST_TMP/tar.err")"
	gen=$(sed -n 's/^generation \([0-9]*\):.*/\1/p' "$TEST_TMP/tar.out")
	gd export "$gen" "$TEST_TMP/tar-$z.sqfs" 2>/dev/null || fail "export tar.$z"
	mount_image "$TEST_TMP/tar-$z.sqfs" "$TEST_TMP/mnt-$z"
	# GNU tar skips sockets and does not archive hard links between
	# fifos or devices: those are tar's limits, not push's.
	"$PY" "$F/treecmp.py" --no-mtime-dirs --ignore special/socket --ignore hardlinks/dev-a --ignore hardlinks/dev-b \
		--ignore hardlinks/fifo-a --ignore hardlinks/fifo-b "$TEST_TMP/small/t" "$TEST_TMP/mnt-$z" >"$TEST_TMP/cmp.out" ||
		fail "tar.$z tree differs: $(head -20 "$TEST_TMP/cmp.out")"
done
gd push "$TEST_TMP/nonexistent" 2>"$TEST_TMP/err"; [ $? = 1 ] && grep -q nonexistent "$TEST_TMP/err" || fail "push of a missing path"
echo garbage >"$TEST_TMP/junk.tar"
gd push "$TEST_TMP/junk.tar" 2>"$TEST_TMP/err"; [ $? != 0 ] && grep -q 'junk.tar' "$TEST_TMP/err" || fail "push of a bad tar"

echo "== crash safety: SIGKILL at each step, then rerun"
head -c $((40 << 20)) /dev/urandom >"$TEST_TMP/small/t/random-40m"
for point in pack:1 index manifest; do
	before=$(gd log | grep -cE '^[0-9]')
	(GDROOT_TEST_CRASH=$point exec "${G[@]}" push "$TEST_TMP/small/t" >/dev/null 2>&1) 2>/dev/null
	rc=$?
	[ $rc = 137 ] || fail "push with GDROOT_TEST_CRASH=$point exited $rc, not by SIGKILL"
	gd verify >"$TEST_TMP/verify.out" || fail "verify after a kill at $point: $(cat "$TEST_TMP/verify.out")"
	assert_eq "$(gd log | grep -cE '^[0-9]')" "$before" "generations after a kill at $point"
	gd push "$TEST_TMP/small/t" >"$TEST_TMP/rerun.out" 2>/dev/null || fail "rerun after $point"
	case $point in
	pack:1) grep -qE 'in [0-9]+ packs, [1-9][0-9]* already there' "$TEST_TMP/rerun.out" ||
		fail "rerun after pack:1 re-uploaded everything: $(cat "$TEST_TMP/rerun.out")" ;;
	*) grep -q '(0 B uploaded' "$TEST_TMP/rerun.out" || fail "rerun after $point uploaded: $(cat "$TEST_TMP/rerun.out")" ;;
	esac
	# Make the next round's data new again.
	head -c $((40 << 20)) /dev/urandom >"$TEST_TMP/small/t/random-40m"
done
gd verify >/dev/null || fail "verify after the crash rounds"

echo "== tamper detection"
latest=$(gd log | awk '$1 ~ /^[0-9]+$/ {print $1; exit}')
idx=$(ls "$STORE_DIR/indexes" | head -n1)
pack=$(ls -S "$STORE_DIR/packs" | head -n1)
cp "$STORE_DIR/packs/$pack" "$TEST_TMP/pack.bak"
# A flipped byte.
"$PY" -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(1000); b = f.read(1); f.seek(1000); f.write(bytes([b[0] ^ 1]))' "$STORE_DIR/packs/$pack"
gd verify >"$TEST_TMP/v.out" 2>&1; [ $? = 1 ] || fail "verify passed a flipped byte"
grep -q "wrong hash.*packs/$pack" "$TEST_TMP/v.out" || grep -q "packs/$pack.*wrong hash" "$TEST_TMP/v.out" || fail "flipped byte not named: $(cat "$TEST_TMP/v.out")"
for g in $(gd log | awk '$1 ~ /^[0-9]+$/ {print $1}'); do
	rm -f "$TEST_TMP/t.sqfs"
	if ! gd export "$g" "$TEST_TMP/t.sqfs" 2>"$TEST_TMP/e.err"; then
		grep -q "packs/$pack" "$TEST_TMP/e.err" || fail "export error does not name the pack: $(cat "$TEST_TMP/e.err")"
		[ ! -e "$TEST_TMP/t.sqfs" ] || fail "a failed export left its output"
		found=1
	fi
done
[ "${found:-}" = 1 ] || fail "no generation's export noticed the flipped byte"
# Truncated.
cp "$TEST_TMP/pack.bak" "$STORE_DIR/packs/$pack"
truncate -s $(($(stat -c %s "$TEST_TMP/pack.bak") - 4096)) "$STORE_DIR/packs/$pack"
gd verify >"$TEST_TMP/v.out" 2>&1; [ $? = 1 ] && grep -q "packs/$pack.*shorter" "$TEST_TMP/v.out" || fail "truncated pack: $(cat "$TEST_TMP/v.out")"
# Missing.
rm "$STORE_DIR/packs/$pack"
gd verify >"$TEST_TMP/v.out" 2>&1; [ $? = 1 ] && grep -q "packs/$pack.*missing" "$TEST_TMP/v.out" || fail "missing pack: $(cat "$TEST_TMP/v.out")"
cp "$TEST_TMP/pack.bak" "$STORE_DIR/packs/$pack"
gd verify >/dev/null || fail "verify after restoring the pack"
# An edited manifest.
M=$STORE_DIR/manifests/$(printf %010d "$latest")
cp "$M" "$TEST_TMP/m.bak"
sed -i 's/\\"new_bytes\\":\([0-9]\)/\\"new_bytes\\":9\1/' "$M"
cmp -s "$M" "$TEST_TMP/m.bak" && fail "the manifest edit did not change anything"
gd verify >"$TEST_TMP/v.out" 2>&1; [ $? = 1 ] && grep -q "$(basename "$M").*signature" "$TEST_TMP/v.out" || fail "edited manifest: $(cat "$TEST_TMP/v.out")"
gd export "$latest" "$TEST_TMP/t.sqfs" 2>"$TEST_TMP/e.err" && fail "export of an edited manifest"
grep -q 'bad signature' "$TEST_TMP/e.err" || fail "edited manifest error: $(cat "$TEST_TMP/e.err")"
# Signed with another key.
cp "$TEST_TMP/m.bak" "$M"
"$GDROOT" -s "$S" -k "$TEST_TMP/other.key" push "$TEST_TMP/small/t" >/dev/null 2>&1 || fail "push with the other key"
gd verify >"$TEST_TMP/v.out" 2>&1; [ $? = 1 ] || fail "verify accepted another key's manifest"
gd export latest "$TEST_TMP/t.sqfs" 2>"$TEST_TMP/e.err" || fail "export latest must skip the foreign manifest"
grep -q 'not by the configured key' "$TEST_TMP/e.err" || fail "no message about the other key: $(cat "$TEST_TMP/e.err")"
gd log >"$TEST_TMP/log.out"; grep -q 'INVALID' "$TEST_TMP/log.out" || fail "log does not flag the foreign manifest: $(cat "$TEST_TMP/log.out")"

echo "== unsigned stores need the flag on both ends"
U=file://$TEST_TMP/ustore
mkdir -p "$TEST_TMP/ustore"
"$GDROOT" -s "$U" push "$TEST_TMP/small/t" 2>"$TEST_TMP/err"; [ $? = 2 ] && grep -q 'no signing key' "$TEST_TMP/err" || fail "push without a key"
"$GDROOT" -s "$U" --unsigned push "$TEST_TMP/small/t" >/dev/null 2>&1 || fail "push --unsigned"
"$GDROOT" -s "$U" --public-key "$TEST_TMP/key.pub" export 1 "$TEST_TMP/t.sqfs" 2>"$TEST_TMP/err" && fail "a keyed reader accepted an unsigned manifest"
grep -q 'unsigned' "$TEST_TMP/err" || fail "unsigned refusal: $(cat "$TEST_TMP/err")"
"$GDROOT" -s "$U" --unsigned export 1 "$TEST_TMP/t.sqfs" 2>/dev/null || fail "export --unsigned"

echo "== Drive emulator"
emu_start --quiet
emu_config "$TEST_TMP/gdroot.conf"
FOLDER=$(emu_mkfolder push)
D=("$GDROOT" -c "$TEST_TMP/gdroot.conf" -s "gdrive://$FOLDER" -k "$TEST_TMP/key.key")
"${D[@]}" push --keep-image "$TEST_TMP/d.sqfs" "$TEST_TMP/small/t" >/dev/null 2>"$TEST_TMP/err" || fail "push to Drive: $(cat "$TEST_TMP/err")"
emu_ctl POST faults '{"rate": 0.2, "codes": [429, 500, 503]}' >/dev/null
"${D[@]}" export 1 "$TEST_TMP/d-back.sqfs" 2>/dev/null || fail "export from Drive under faults"
cmp "$TEST_TMP/d.sqfs" "$TEST_TMP/d-back.sqfs" || fail "Drive export differs"
"${D[@]}" verify >/dev/null || fail "verify on Drive"
echo ok
