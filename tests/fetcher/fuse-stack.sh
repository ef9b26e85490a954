#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: gdroot-fetcher end to end on the host: the Drive emulator ->
# fetcher (FUSE) -> loop -> squashfs -> overlayfs with an ext4-on-zram
# upper; the POSIX fidelity tree reads back identical through the overlay;
# gdroot status reports the generation and what was fetched; the emulator
# stopped mid-read and restarted costs readers no error and no wrong byte;
# a tampered chunk on the server is detected, reported and never served;
# with 20% of requests failing 429/5xx every read completes; a persistent
# cache file serves a second run without fetching; and nothing (mount,
# loop, zram, process) is left behind.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/stack.sh"
requires_root
requires mksquashfs losetup mkfs.ext4 setcap
[ -e /dev/fuse ] || skip "needs /dev/fuse"
[ -e /sys/class/zram-control/hot_add ] || skip "needs zram"
[ -x "$FETCHER" ] || fail "$FETCHER not built"
F=$TOP/tests/fidelity


emu_start --quiet
EMU_PORT=${EMU_URL##*:}
CONF=$TEST_TMP/gdroot.conf
emu_config "$CONF"
FOLDER=$(emu_mkfolder fetcher)
STORE="gdrive://$FOLDER"
"$GDROOT" keygen "$TEST_TMP/key" >/dev/null
echo "public_key = $TEST_TMP/key.pub" >>"$CONF"
echo "store = $STORE" >>"$CONF"

bash "$F/mktree.sh" "$TEST_TMP/tree" >/dev/null || fail mktree
head -c $((48 << 20)) /dev/urandom >"$TEST_TMP/tree/random-48m"
head -c $((8 << 20)) /dev/urandom >"$TEST_TMP/tree/random-8m"
"$GDROOT" -c "$CONF" -k "$TEST_TMP/key.key" push "$TEST_TMP/tree" >/dev/null 2>"$TEST_TMP/push.err" ||
	fail "push: $(cat "$TEST_TMP/push.err")"
want=$(sha256sum <"$TEST_TMP/tree/random-48m")

echo "== fidelity through the whole stack"
fetcher_start a -c "$CONF"
stack_up a
# A 0:0 character device in a lower layer is a whiteout to overlayfs, so
# it cannot show through one (push warns about it); and the root
# directory's mtime moves when the test writes to the overlay below.
OVL_IGNORE=(--ignore devices/char-0-0)
"$PY" "$F/treecmp.py" "${OVL_IGNORE[@]}" "$TEST_TMP/tree" "$TEST_TMP/a/root" >"$TEST_TMP/cmp.out" ||
	fail "tree differs through the stack: $(head -20 "$TEST_TMP/cmp.out")"
cat "$TEST_TMP/cmp.out"
"$GDROOT" status --socket "$TEST_TMP/a/sock" >"$TEST_TMP/status.out" || fail "gdroot status"
cat "$TEST_TMP/status.out"
grep -qi 'generation.*1' "$TEST_TMP/status.out" || fail "status lacks the generation"
"$GDROOT" status --json --socket "$TEST_TMP/a/sock" >"$TEST_TMP/status.json" || fail "gdroot status --json"
fetched=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["fetched"]["bytes"])' "$TEST_TMP/status.json")
[ "$fetched" -gt 0 ] || fail "status says nothing was fetched"
reqs=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["fetched"]["requests"])' "$TEST_TMP/status.json")
chunks=$("$GDROOT" -c "$CONF" log | awk '$1 == 1 {print}' | wc -l)
echo "fetched $fetched bytes in $reqs requests"
# Writes go to the zram upper, not the image.
echo changed >"$TEST_TMP/a/root/new-file" || fail "write to the overlay"
[ -e "$TEST_TMP/a/upperfs/upper/new-file" ] || fail "the write did not land in the upper layer"
"$GDROOT" boot-done --socket "$TEST_TMP/a/sock" >/dev/null || fail "boot-done"
"$GDROOT" -c "$CONF" store ls profiles/ | grep -q 'profiles/0000000001' || fail "no boot profile saved"
stack_down a

echo "== the store stops mid-read and comes back"
fetcher_start b -c "$CONF" --profile-timeout 0 --no-prefetch
stack_up b
emu_ctl POST faults '{"bandwidth": 8000000}' >/dev/null
(sha256sum <"$TEST_TMP/b/root/random-48m" >"$TEST_TMP/b.sha"; echo $? >"$TEST_TMP/b.rc") &
reader=$!
for ((i = 0; i < 200; i++)); do
	got=$(curl -sS "$EMU_URL/_emu/stats" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["media_bytes_sent"])')
	[ "$got" -gt $((8 << 20)) ] && break
	sleep 0.05
done
emu_stop
sleep 2   # readers are stuck in a real outage now (not a readiness wait)
emu_start --quiet --port "$EMU_PORT"
wait "$reader"
assert_eq "$(cat "$TEST_TMP/b.rc")" 0 "reader exit status across the outage"
assert_eq "$(cat "$TEST_TMP/b.sha")" "$want" "bytes read across the outage"
grep -q 'retry\|Connection refused\|Couldn' "$TEST_TMP/b/fetcher.log" || echo "note: no retry was logged"
stack_down b

echo "== during an outage cached reads work, and --timeout turns waiting into EIO"
fetcher_start g -c "$CONF" --profile-timeout 0 --no-prefetch --timeout 3
stack_up g
sha256sum <"$TEST_TMP/g/root/random-48m" >/dev/null || fail "first read"
emu_stop
drop_caches
assert_eq "$(sha256sum <"$TEST_TMP/g/root/random-48m")" "$want" "a cached read during the outage"
# An uncached read fails with EIO once the timeout passes, instead of hanging.
if timeout 120 cat "$TEST_TMP/g/root/random-8m" >/dev/null 2>"$TEST_TMP/g.err"; then
	fail "uncached reads succeeded with the store down"
fi
grep -q 'Input/output error' "$TEST_TMP/g.err" || fail "the uncached read did not fail with EIO: $(cat "$TEST_TMP/g.err")"
kill -0 "$FPID_g" || fail "the fetcher exited during the outage"
emu_start --quiet --port "$EMU_PORT"
stack_down g

echo "== a tampered chunk is detected and never served"
# The emulator keeps file contents byte-exact in blob files: flip a byte in
# the largest pack's blob.
blob=$(ls -S "$EMU_DATA"/blobs/* 2>/dev/null | head -n1)
[ -n "$blob" ] || blob=$(find "$EMU_DATA" -type f -size +1M | xargs ls -S | head -n1)
[ -n "$blob" ] || fail "no blob in the emulator's data"
"$PY" -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(8 << 20); b = f.read(1); f.seek(8 << 20); f.write(bytes([b[0] ^ 0x40]))' "$blob"
fetcher_start c -c "$CONF" --profile-timeout 0 --no-prefetch
stack_up c
errs=0
while IFS= read -r -d '' file; do
	cat "$file" >/dev/null 2>>"$TEST_TMP/c.err" || errs=$((errs + 1))
done < <(find "$TEST_TMP/c/root" -type f -size +0 -print0)
[ "$errs" -gt 0 ] || fail "no read failed although a pack was altered"
grep -q 'wrong hash' "$TEST_TMP/c/fetcher.log" || fail "the fetcher did not report the bad chunk: $(tail "$TEST_TMP/c/fetcher.log")"
grep -q 'packs/[0-9a-f]\{64\}' "$TEST_TMP/c/fetcher.log" || fail "the report does not name the pack"
# Nothing that did read may differ from the original.
"$PY" "$F/treecmp.py" "${OVL_IGNORE[@]}" "$TEST_TMP/tree" "$TEST_TMP/c/root" >"$TEST_TMP/cmp.out" 2>&1
if grep -q '^content ' "$TEST_TMP/cmp.out"; then fail "a wrong byte was served: $(grep '^content' "$TEST_TMP/cmp.out" | head -3)"; fi
stack_down c
"$PY" -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(8 << 20); b = f.read(1); f.seek(8 << 20); f.write(bytes([b[0] ^ 0x40]))' "$blob"

echo "== 20% of requests fail with 429 or 5xx: every read completes"
emu_ctl POST faults '{"rate": 0.2, "codes": [429, 500, 503]}' >/dev/null
fetcher_start d -c "$CONF" --profile-timeout 0 --no-prefetch
stack_up d
"$PY" "$F/treecmp.py" "${OVL_IGNORE[@]}" "$TEST_TMP/tree" "$TEST_TMP/d/root" >"$TEST_TMP/cmp.out" || fail "reads under faults: $(head "$TEST_TMP/cmp.out")"
faults=$(curl -sS "$EMU_URL/_emu/stats" | "$PY" -c 'import json,sys; print(sum(json.load(sys.stdin)["faults"].values()))')
[ "$faults" -gt 0 ] || fail "no fault was injected"
stack_down d
emu_ctl POST faults '{"rate": 0}' >/dev/null

echo "== a persistent cache serves the next run without fetching"
truncate -s 0 "$TEST_TMP/cache.img"
fetcher_start e -c "$CONF" --profile-timeout 0 --no-prefetch --cache "$TEST_TMP/cache.img" --cache-size 128M
stack_up e
sha256sum <"$TEST_TMP/e/root/random-48m" >/dev/null
stack_down e
drop_caches
fetcher_start f -c "$CONF" --profile-timeout 0 --no-prefetch --cache "$TEST_TMP/cache.img" --cache-size 128M
stack_up f
assert_eq "$(sha256sum <"$TEST_TMP/f/root/random-48m")" "$want" "bytes from the persistent cache"
"$GDROOT" status --json --socket "$TEST_TMP/f/sock" >"$TEST_TMP/f.json"
hits=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["cache"]["hits"])' "$TEST_TMP/f.json")
[ "$hits" -gt 0 ] || fail "the second run had no cache hits: $(cat "$TEST_TMP/f.json")"
stack_down f

echo "== nothing left behind"
emu_stop
# Only what this test made counts (other processes may mount things).
assert_eq "$(grep -c "$TEST_TMP" /proc/mounts)" 0 "mounts under $TEST_TMP"
assert_eq "$(losetup -a | grep -c "$TEST_TMP")" 0 "loop devices backed by $TEST_TMP"
# (zram numbers are reused by whoever adds one next, so check the removals.)
[ -n "${ZRAM_MADE:-}" ] || fail "no zram device was made"
[ ! -s "$TEST_TMP/zram-left" ] || fail "zram devices not removed: $(cat "$TEST_TMP/zram-left")"
pgrep -f "$TEST_TMP" >/dev/null && fail "a process of this test is still running: $(pgrep -af "$TEST_TMP")"
echo ok
