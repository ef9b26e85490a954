#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: create-if-absent (`store put --if-absent`, the primitive the
# publish protocol stands on) on a folder, the Drive emulator and s3rver:
# a new key is created, an existing one is left alone with exit 4, and of
# eight writers racing for one new key exactly one wins and the object is
# the winner's bytes. On Drive the losers' duplicate files are gone.
. "$(dirname "$0")/../lib.sh"
requires curl
[ -x "$GDROOT" ] || fail "$GDROOT not built"

# check_store LABEL GDROOT-ARGS...
check_store() {
	local label=$1
	shift
	local g=("$GDROOT" -q "$@")
	echo "== $label"
	echo first >"$TEST_TMP/first"
	"${g[@]}" store put "$TEST_TMP/first" probe/one --if-absent || fail "$label: create a new key"
	echo second >"$TEST_TMP/second"
	"${g[@]}" store put "$TEST_TMP/second" probe/one --if-absent 2>/dev/null
	assert_eq $? 4 "$label: --if-absent on an existing key"
	assert_eq "$("${g[@]}" store get probe/one -)" first "$label: the existing object"
	local i pids=()
	for i in 1 2 3 4 5 6 7 8; do
		echo "writer $i" >"$TEST_TMP/w$i"
	done
	for i in 1 2 3 4 5 6 7 8; do
		"${g[@]}" store put "$TEST_TMP/w$i" probe/race --if-absent 2>/dev/null &
		pids+=($!)
	done
	local won=0 lost=0 winner=
	for i in 1 2 3 4 5 6 7 8; do
		wait "${pids[i - 1]}"
		case $? in
		0) won=$((won + 1)) winner=$i ;;
		4) lost=$((lost + 1)) ;;
		*) fail "$label: writer $i failed" ;;
		esac
	done
	assert_eq "$won/$lost" 1/7 "$label: winners/losers of the race"
	assert_eq "$("${g[@]}" store get probe/race -)" "writer $winner" "$label: the object after the race"
}

mkdir -p "$TEST_TMP/store"
check_store folder -s "file://$TEST_TMP/store"

emu_start --quiet
emu_config "$TEST_TMP/emu.conf"
FOLDER=$(emu_mkfolder put-new)
check_store Drive -c "$TEST_TMP/emu.conf" -s "gdrive://$FOLDER" -o settle_ms=300
n=$(curl -sS -f -H "Authorization: Bearer $(emu_token)" -G "$EMU_URL/drive/v3/files" \
	--data-urlencode "q='$FOLDER' in parents and name = 'probe/race'" |
	"$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["files"]))')
assert_eq "$n" 1 "files named probe/race on Drive after the race"
echo ok
