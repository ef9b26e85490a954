#!/bin/bash
# SPDX-License-Identifier: MIT
# `make demo`: gdroot end to end on the embedded default store, the local
# Google Drive emulator (no account needed). What exists today is the store
# client, so the demo shows that and says so: it starts the emulator, signs
# in with the OAuth device flow as a kiosk would, uploads an image with
# Drive's resumable protocol while the emulator fails a fifth of all
# requests, reads byte ranges back and checks them, and stops the emulator.
# The image format, the fetcher and the boot come next (see README).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$TOP/tests/lib.sh"
trap _run_cleanups EXIT
set +u

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
SIZE_MIB=${DEMO_SIZE_MIB:-64}

say "Starting the local Google Drive emulator"
emu_start --quiet
echo "Drive API and OAuth endpoints at $EMU_URL (data in $EMU_DATA)"
CONF=$TEST_TMP/gdroot.conf
emu_config "$CONF"
FOLDER=$(emu_mkfolder gdroot-demo)
echo "Made the Drive folder 'gdroot-demo': store URL gdrive://$FOLDER"

say "Signing in like a kiosk with no browser: gdroot auth (OAuth device flow)"
"$GDROOT" -c "$CONF" auth --client-id gdroot-test-client --client-secret gdroot-test-secret \
	--out "$TEST_TMP/demo-token.json" >"$TEST_TMP/auth.out" &
apid=$!
for ((i = 0; i < 200; i++)); do grep -q 'enter the code' "$TEST_TMP/auth.out" && break; sleep 0.05; done
sed 's/^/    /' "$TEST_TMP/auth.out"
code=$(awk 'f && NF {print $1; exit} /enter the code/ {f=1}' "$TEST_TMP/auth.out")
echo "(the emulator's verification page is its control endpoint: approving code $code)"
emu_ctl POST device/approve "{\"user_code\": \"$code\"}" >/dev/null
wait "$apid"
tail -n +2 "$TEST_TMP/auth.out" | grep -E 'Approved|Point' | sed 's/^/    /' || true
G=("$GDROOT" -c "$CONF" -o "credentials=$TEST_TMP/demo-token.json" -s "gdrive://$FOLDER")

say "Uploading a ${SIZE_MIB} MiB image while 20% of requests fail (429, 403 rate limit, 500, 503)"
head -c $((SIZE_MIB << 20)) /dev/urandom >"$TEST_TMP/image.bin"
emu_ctl POST faults '{"rate": 0.2, "codes": [429, 403, 500, 503]}' >/dev/null
"${G[@]}" store --stats -o upload_chunk=4M put "$TEST_TMP/image.bin" images/demo.img
"${G[@]}" store ls

say "Reading it back, whole and by ranges, and comparing"
"${G[@]}" store --stats get images/demo.img "$TEST_TMP/back.bin"
cmp "$TEST_TMP/image.bin" "$TEST_TMP/back.bin" && echo "whole object: identical ($(sha256sum <"$TEST_TMP/back.bin" | cut -c1-16)...)"
for off in 0 1000000 $(((SIZE_MIB << 20) - 4096)); do
	"${G[@]}" store get images/demo.img --offset "$off" --length 4096 "$TEST_TMP/r.bin"
	cmp <(tail -c +$((off + 1)) "$TEST_TMP/image.bin" | head -c 4096) "$TEST_TMP/r.bin"
	echo "bytes $off-$((off + 4095)): identical"
done
emu_ctl POST faults '{"rate": 0}' >/dev/null
echo "faults the emulator injected: $(curl -sS "$EMU_URL/_emu/stats" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["faults"])')"

say "Done"
cat <<TXT
The store client works against Drive's protocol with retries, resumable
uploads and token refresh. Not built yet: 'gdroot push' (the chunked, signed
image format), the FUSE fetcher, and the QEMU boot; the demo will grow into
booting Debian from this emulator as they land.

To use a real Google Drive folder instead of the emulator:
  1. In the Google Cloud console, enable the Drive API and create an OAuth
     client of type "TVs and Limited Input devices".
  2. gdroot auth --client-id ID --client-secret SECRET --out /etc/gdroot/drive-token.json
  3. In /etc/gdroot/gdroot.conf:  store = gdrive://FOLDER_ID
                                  credentials = /etc/gdroot/drive-token.json
     (FOLDER_ID is the last part of the folder's Drive URL.)
  4. gdroot store ls
TXT
