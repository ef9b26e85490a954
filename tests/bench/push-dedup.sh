#!/bin/bash
# SPDX-License-Identifier: MIT
# A benchmark, not a test: push a Debian bookworm minbase rootfs (with
# systemd) to a store, then push it again after installing one more
# package, and compare what the second push uploaded with the size of the
# change. Uses the rootfs pair tests/bench/chunk-sizes.sh builds (cached in
# /var/tmp/gdroot-bench), building it first if it is missing. Root.
. "$(dirname "$0")/../lib.sh"
requires_root
BENCH=${GDROOT_BENCH_DIR:-/var/tmp/gdroot-bench}
V1=$BENCH/rootfs-v1 V2=$BENCH/rootfs-v2
if [ ! -d "$V1" ] || [ ! -d "$V2" ]; then
	echo "building the rootfs pair with tests/bench/chunk-sizes.sh"
	bash "$TOP/tests/bench/chunk-sizes.sh" >/dev/null || fail "chunk-sizes.sh could not build the rootfs pair"
fi
STORE=$TEST_TMP/store
mkdir -p "$STORE"
"$GDROOT" keygen "$TEST_TMP/k" >/dev/null
G=("$GDROOT" -s "file://$STORE" -k "$TEST_TMP/k.key")
"${G[@]}" push --keep-image "$TEST_TMP/v1.sqfs" "$V1" >"$TEST_TMP/p1" 2>/dev/null || fail "push v1"
"${G[@]}" push --keep-image "$TEST_TMP/v2.sqfs" "$V2" >"$TEST_TMP/p2" 2>/dev/null || fail "push v2"
# The change: bytes of files in v2 that are new or differ from v1.
change=$("$PY" - "$V1" "$V2" <<'PYEOF'
import hashlib, os, sys
a, b = (os.fsencode(x) for x in sys.argv[1:3])
def digest(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.digest()
total = files = 0
for root, dirs, names in os.walk(b):
    for n in names:
        p = os.path.join(root, n)
        q = os.path.join(a, os.path.relpath(p, b))
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        if not os.path.isfile(q) or os.path.islink(q) or os.path.getsize(p) != os.path.getsize(q) or digest(p) != digest(q):
            total += os.path.getsize(p)
            files += 1
print(total, files)
PYEOF
)
read -r change_bytes change_files <<<"$change"
du1=$(du -sb "$V1" | cut -f1)
s1=$(stat -c %s "$TEST_TMP/v1.sqfs") s2=$(stat -c %s "$TEST_TMP/v2.sqfs")
up2=$(du -sb "$STORE/packs" | cut -f1)
echo "rootfs v1: $du1 bytes; squashfs v1 $s1 bytes, v2 $s2 bytes (lz4, 128K blocks)"
echo "push v1: $(cat "$TEST_TMP/p1")"
echo "push v2: $(cat "$TEST_TMP/p2")"
echo "changed files in v2: $change_files, $change_bytes bytes (uncompressed)"
echo "packs in the store after both pushes: $up2 bytes"
"${G[@]}" log
