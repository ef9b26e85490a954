#!/bin/bash
# SPDX-License-Identifier: MIT
# `make bench-store`: the store client's throughput against the Drive
# emulator on loopback, beside curl's for the same transfers: a 256 MiB
# upload (gdroot: resumable, 16 MiB chunks; curl: one uploadType=media
# request) and a 256 MiB ranged download (alt=media with Range). A
# benchmark, not a test: it prints figures (MiB/s, best of RUNS) and the
# command lines, for docs/benchmarks.md.
. "$(dirname "$0")/../lib.sh"
SIZE_MIB=${SIZE_MIB:-256}
RUNS=${RUNS:-3}
emu_start --quiet
CONF=$TEST_TMP/gdroot.conf
emu_config "$CONF"
FOLDER=$(emu_mkfolder bench)
SRC=$TEST_TMP/src.bin
head -c $((SIZE_MIB << 20)) /dev/urandom >"$SRC"

secs() { local s=$1 e=$2; awk -v s="$s" -v e="$e" 'BEGIN {printf "%.3f", (e - s) / 1e9}'; }
rate() { awk -v t="$1" -v m="$SIZE_MIB" 'BEGIN {printf "%.1f", m / t}'; }
best=()
measure() { # label command...
	local label=$1 b=999999 t s e
	shift
	for ((i = 0; i < RUNS; i++)); do
		s=$(date +%s%N)
		"$@" >/dev/null 2>"$TEST_TMP/bench.err" || { cat "$TEST_TMP/bench.err"; fail "$label failed"; }
		e=$(date +%s%N)
		t=$(secs "$s" "$e")
		b=$(awk -v a="$b" -v c="$t" 'BEGIN {print (c < a) ? c : a}')
	done
	printf '%-34s %8.3f s  %8s MiB/s\n' "$label" "$b" "$(rate "$b")"
}

TOKEN=$(emu_token)
gd() { "$GDROOT" -c "$CONF" -s "gdrive://$FOLDER" -q "$@"; }
curl_up() {
	curl -sS -f -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/octet-stream' \
		--data-binary "@$SRC" "$EMU_URL/upload/drive/v3/files?uploadType=media"
}
gd store put "$SRC" bench/obj
ID=$(curl -sS -G -H "Authorization: Bearer $TOKEN" --data-urlencode "q='$FOLDER' in parents and name = 'bench/obj'" \
	"$EMU_URL/drive/v3/files" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["id"])')
curl_down() {
	curl -sS -f -o /dev/null -H "Authorization: Bearer $TOKEN" -H "Range: bytes=0-$(((SIZE_MIB << 20) - 1))" \
		"$EMU_URL/drive/v3/files/$ID?alt=media"
}

echo "store client throughput, ${SIZE_MIB} MiB, Drive emulator on loopback, best of $RUNS"
echo "machine: $(nproc) cores, $(uname -r), $(curl --version | head -n1 | cut -d' ' -f1-2)"
measure "gdroot store put (resumable)" gd store put "$SRC" bench/up
measure "curl upload (uploadType=media)" curl_up
measure "gdroot store get (ranged)" gd store get bench/obj --offset 0 --length $((SIZE_MIB << 20)) /dev/null
measure "curl ranged download" curl_down
