# SPDX-License-Identifier: MIT
# Shared helpers for gdroot's integration tests (sourced, bash). A test
# script exits 0 (pass), 1 (fail) or 77 (skip, after printing "SKIP: why").
#   requires CMD...        skip unless each command exists
#   requires_root          skip unless root
#   cleanup_fn CMD ARGS    run at exit, last registered first
#   emu_start [ARGS]       start the Drive emulator; sets EMU_URL, EMU_DATA, EMU_PID
#   emu_ctl METHOD PATH [JSON]  call the emulator's control endpoint
#   emu_config FILE        write a gdroot.conf pointing at the emulator
#   fail MSG / assert_eq A B MSG
set -u -o pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$TOP/$O ;; esac
GDROOT=$O/gdroot
PY=/usr/bin/python3
EMU=$TOP/tests/gdrive-emu/gdrive_emu.py

TEST_TMP=$(mktemp -d /tmp/gdroot-test.XXXXXX)
_cleanups=("rm -rf '$TEST_TMP'")

_run_cleanups() {
	local i
	for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do
		eval "${_cleanups[i]}" 2>/dev/null || true
	done
}
trap _run_cleanups EXIT
trap 'exit 1' INT TERM

cleanup_fn() {
	local q="" a
	for a in "$@"; do q+=" $(printf '%q' "$a")"; done
	_cleanups+=("$q")
}

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
assert_eq() { [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"; }

requires() {
	local c
	for c in "$@"; do command -v "$c" >/dev/null 2>&1 || skip "needs $c"; done
}
requires_root() { [ "$(id -u)" = 0 ] || skip "needs root"; }

# Wait until FILE exists (a readiness signal written by the process with
# PID), at most SECS seconds. Fails if the process dies first.
wait_for_file() {
	local file=$1 pid=$2 secs=${3:-30} i
	for ((i = 0; i < secs * 20; i++)); do
		[ -s "$file" ] && return 0
		kill -0 "$pid" 2>/dev/null || fail "process $pid died before $file appeared"
		sleep 0.05
	done
	fail "timed out waiting for $file"
}

# emu_start [EMULATOR ARGS]: a fresh Drive emulator on a free port.
emu_start() {
	EMU_DATA=${EMU_DATA:-$TEST_TMP/emu-data}
	mkdir -p "$EMU_DATA"
	local ready=$TEST_TMP/emu-ready.$RANDOM
	rm -f "$ready"
	"$PY" "$EMU" --data "$EMU_DATA" --port 0 --ready-file "$ready" "$@" \
		>>"$TEST_TMP/emu.log" 2>&1 &
	EMU_PID=$!
	cleanup_fn emu_stop_pid "$EMU_PID"
	wait_for_file "$ready" "$EMU_PID" 30
	EMU_URL=$(head -n1 "$ready")
	export EMU_URL EMU_PID EMU_DATA
}
emu_stop_pid() { kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; return 0; }
emu_stop() { emu_stop_pid "$EMU_PID"; }

emu_ctl() {
	local method=$1 path=$2 body=${3:-}
	curl -sS -f -X "$method" ${EMU_CURL_OPTS:-} -H 'Content-Type: application/json' \
		${body:+--data "$body"} "$EMU_URL/_emu/$path"
}

# The root folder id and a fresh folder for this test.
emu_token() {
	curl -sS -f ${EMU_CURL_OPTS:-} "$EMU_URL/token" -d grant_type=refresh_token \
		-d client_id=gdroot-test-client -d client_secret=gdroot-test-secret \
		-d refresh_token=gdroot-test-refresh-token | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
emu_mkfolder() {
	local name=${1:-gdroot-test} tok
	tok=$(emu_token)
	curl -sS -f ${EMU_CURL_OPTS:-} -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
		--data "{\"name\":\"$name\",\"mimeType\":\"application/vnd.google-apps.folder\"}" \
		"$EMU_URL/drive/v3/files" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

# A gdroot.conf for the emulator, with the built-in test credentials.
emu_config() {
	local conf=$1
	cat >"$TEST_TMP/drive-token.json" <<JSON
{"type": "authorized_user", "client_id": "gdroot-test-client",
 "client_secret": "gdroot-test-secret", "refresh_token": "gdroot-test-refresh-token"}
JSON
	chmod 600 "$TEST_TMP/drive-token.json"
	cat >"$conf" <<CONF
drive_api = $EMU_URL
oauth_token_url = $EMU_URL/token
oauth_device_url = $EMU_URL/device/code
credentials = $TEST_TMP/drive-token.json
retry_base_ms = 50
retry_cap_ms = 1000
CONF
}
