#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: the Drive backend through `gdroot store` against the Drive
# emulator: byte-exact round trips (multipart and resumable), ranges,
# replace, delete, errors; every fault mode (20% 429/403/5xx, resets and
# truncation mid-body with resume, 401 and token expiry); HTTPS with the
# right and a wrong CA; service-account JWT and device-flow auth; and no
# secret in any log line.
. "$(dirname "$0")/../lib.sh"
requires curl openssl sha256sum
[ -x "$GDROOT" ] || fail "$GDROOT not built"

emu_start --quiet
echo "emulator: $EMU_URL"
CONF=$TEST_TMP/gdroot.conf
emu_config "$CONF"
FOLDER=$(emu_mkfolder store-test)
STORE="gdrive://$FOLDER"
LOG=$TEST_TMP/client.log
g() { "$GDROOT" -c "$CONF" -s "$STORE" "$@" 2>>"$LOG"; }
gstats() { # run, keep the --stats line in $TEST_TMP/stats
	"$GDROOT" -c "$CONF" -s "$STORE" store --stats "$@" 2>"$TEST_TMP/err" || { cat "$TEST_TMP/err" >>"$LOG"; cat "$TEST_TMP/err" >&2; return 1; }
	cat "$TEST_TMP/err" >>"$LOG"
	grep '^requests=' "$TEST_TMP/err" >"$TEST_TMP/stats"
}
stat_of() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" "$TEST_TMP/stats"; }
emu_stat() { curl -sS "$EMU_URL/_emu/stats" | "$PY" -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

D=$TEST_TMP/data
mkdir -p "$D"
: >"$D/empty"
printf 'hello, drive\n' >"$D/small"
head -c $((3 << 20)) /dev/urandom >"$D/3m"        # multipart
head -c $((12 << 20 | 12345)) /dev/urandom >"$D/12m" # resumable, uneven tail

echo "== round trips"
for f in empty small 3m; do
	g store put "$D/$f" "objs/$f" || fail "put $f"
	g store get "objs/$f" "$TEST_TMP/out" || fail "get $f"
	assert_eq "$(sha "$TEST_TMP/out")" "$(sha "$D/$f")" "content of $f"
done
gstats -o upload_chunk=1M put "$D/12m" objs/12m || fail "resumable put"
[ "$(stat_of requests)" -ge 14 ] || fail "a 12 MiB upload in 1 MiB chunks took only $(stat_of requests) requests"
g store get objs/12m "$TEST_TMP/out" || fail "get 12m"
assert_eq "$(sha "$TEST_TMP/out")" "$(sha "$D/12m")" "content of 12m"

echo "== listing, md5, stat"
g store ls objs/ >"$TEST_TMP/ls" || fail "ls"
assert_eq "$(wc -l <"$TEST_TMP/ls")" 4 "objects listed"
assert_eq "$(awk '$4 == "objs/3m" {print $3}' "$TEST_TMP/ls")" "$(md5sum <"$D/3m" | cut -d' ' -f1)" "md5 of 3m"
assert_eq "$(g store stat objs/12m | awk '{print $1}')" $((12 << 20 | 12345)) "size of 12m"
assert_eq "$(g store ls nothing-here/ | wc -l)" 0 "empty prefix listing"

echo "== ranges"
assert_eq "$(g store get objs/small --offset 7 --length 5)" "drive" "ranged get"
assert_eq "$(g store get objs/small --offset 7)" "drive" "open-ended get"
assert_eq "$(g store get objs/small --offset 100 | wc -c)" 0 "get past the end"
g store get objs/12m --offset 5000000 --length 3000000 >"$TEST_TMP/range" || fail "big range"
assert_eq "$(sha "$TEST_TMP/range")" "$(tail -c +5000001 "$D/12m" | head -c 3000000 | sha256sum | cut -d' ' -f1)" "big range"

echo "== replace and delete"
g store put "$D/small" objs/3m || fail "replace"
assert_eq "$(g store get objs/3m)" "hello, drive" "replaced content"
assert_eq "$(g store ls objs/3m | wc -l)" 1 "one file after replace"
g store rm objs/3m || fail "rm"
g store stat objs/3m >/dev/null; assert_eq $? 3 "stat after rm"
g store rm objs/3m || fail "rm of a missing key must succeed"
g store get objs/nope >/dev/null; assert_eq $? 3 "get of a missing key"
grep -q "no object 'objs/nope'" "$LOG" || fail "missing key not named"
"$GDROOT" -c "$CONF" -s gdrive://no-such-folder store ls 2>"$TEST_TMP/err"; rc=$?
[ $rc = 3 ] && grep -q 'no such folder' "$TEST_TMP/err" || fail "bad folder: rc $rc: $(cat "$TEST_TMP/err")"
"$GDROOT" -c "$CONF" -s "gdrive://$FOLDER?bogus=1" store ls 2>"$TEST_TMP/err"; rc=$?
[ $rc = 2 ] && grep -q "unknown parameter 'bogus'" "$TEST_TMP/err" || fail "bad URL parameter: rc $rc"

echo "== 20% of requests fail with 429, 403 rate limits, 500, 503"
emu_ctl POST faults '{"rate": 0.2, "codes": [429, 403, 500, 503]}' >/dev/null
gstats -o upload_chunk=512K put "$D/12m" objs/f12m || fail "put under faults"
gstats get objs/f12m "$TEST_TMP/out" || fail "get under faults"
assert_eq "$(sha "$TEST_TMP/out")" "$(sha "$D/12m")" "content under faults"
for i in 1 2 3 4 5; do g store ls objs/ >/dev/null || fail "ls under faults"; done
for i in 1 2 3 4 5; do g store put "$D/small" "objs/s$i" || fail "small put under faults"; done
faults=$(emu_stat 'sum(d["faults"].values())')
[ "$faults" -ge 5 ] || fail "the emulator injected only $faults faults"
emu_ctl POST faults '{"rate": 0}' >/dev/null

echo "== connection reset mid-upload resumes"
curl -sS -X POST "$EMU_URL/_emu/stats/reset" >/dev/null
# Twice: libcurl itself resends a request once when a reused connection
# dies before any answer; the second reset reaches our resume logic.
emu_ctl POST fail-next '{"count": 2, "reset": true, "kind": "upload", "after_bytes": 300000}' >/dev/null
gstats -o upload_chunk=1M put "$D/12m" objs/r12m || fail "put with a reset"
got=$(emu_stat 'd["upload_bytes_received"]')
[ "$got" -lt $((12 << 20 | 12345 + (2 << 20))) ] || fail "upload restarted instead of resuming ($got bytes received)"
emu_stat '[r["content_range"] for r in d["recent"]]' | grep -q "bytes \*/" || fail "no resumable status query after the reset"
g store get objs/r12m "$TEST_TMP/out" && assert_eq "$(sha "$TEST_TMP/out")" "$(sha "$D/12m")" "content after reset"

echo "== connection reset and truncation mid-download resume"
for mode in reset truncate; do
	curl -sS -X POST "$EMU_URL/_emu/stats/reset" >/dev/null
	emu_ctl POST fail-next "{\"$mode\": true, \"kind\": \"download\", \"after_bytes\": 4000000}" >/dev/null
	gstats get objs/12m "$TEST_TMP/out" || fail "get with $mode"
	assert_eq "$(sha "$TEST_TMP/out")" "$(sha "$D/12m")" "content after $mode"
	# The second media request must start past 0: where the first broke
	# off (a reset loses what was in flight, so at most byte 4000000).
	start=$(emu_stat '[r["range"] for r in d["recent"] if r["kind"] == "drive.media"][1]' | sed -n 's/^bytes=\([0-9]*\)-$/\1/p')
	[ -n "$start" ] && [ "$start" -gt 0 ] && [ "$start" -le 4000000 ] ||
		fail "download after $mode did not resume (second range: $start)"
	[ $mode = reset ] || assert_eq "$start" 4000000 "resume offset after a clean truncation"
	[ "$(stat_of bytes_in)" = $((12 << 20 | 12345)) ] || fail "sink saw $(stat_of bytes_in) bytes after $mode"
done

echo "== 401 and token expiry"
emu_ctl POST fail-next '{"code": 401, "kind": "download"}' >/dev/null
gstats get objs/small "$TEST_TMP/out" || fail "get after a 401"
[ "$(stat_of token_refreshes)" -ge 2 ] || fail "no token refresh after a 401"
# A short token lifetime and slow chunks: the token expires mid-upload.
emu_stop
emu_start --quiet --token-lifetime 1 --latency-ms 150
emu_config "$CONF"
gstats -o upload_chunk=256K put "$D/3m" objs/exp || fail "put across token expiry" # 3 MiB: multipart
gstats -o upload_chunk=256K put "$D/12m" objs/exp12 || fail "resumable put across token expiry"
[ "$(stat_of token_refreshes)" -ge 2 ] || fail "token never refreshed in a long upload"
g store get objs/exp12 "$TEST_TMP/out" && assert_eq "$(sha "$TEST_TMP/out")" "$(sha "$D/12m")" "content across expiry"
emu_ctl POST expire-tokens >/dev/null
g store stat objs/exp12 >/dev/null || fail "stat after every token expired"

echo "== HTTPS: right CA works, wrong CA fails clearly"
emu_stop
sh "$TOP/tests/gdrive-emu/mkcert.sh" "$TEST_TMP/tls" >/dev/null
emu_start --quiet --tls-cert "$TEST_TMP/tls/server.pem" --tls-key "$TEST_TMP/tls/server.key"
case $EMU_URL in https://*) ;; *) fail "emulator did not serve HTTPS: $EMU_URL" ;; esac
EMU_CURL_OPTS="--cacert $TEST_TMP/tls/ca.pem"
emu_config "$CONF"
FOLDER=$(emu_mkfolder tls); STORE="gdrive://$FOLDER"
g --ca-file "$TEST_TMP/tls/ca.pem" store put "$D/small" tls/small || fail "put over HTTPS"
assert_eq "$(g --ca-file "$TEST_TMP/tls/ca.pem" store get tls/small)" "hello, drive" "get over HTTPS"
"$GDROOT" -c "$CONF" -s "$STORE" --ca-file "$TEST_TMP/tls/other-ca.pem" store ls 2>"$TEST_TMP/err"; rc=$?
[ $rc = 1 ] || fail "wrong CA: exit $rc"
grep -qi 'certificate' "$TEST_TMP/err" || fail "wrong CA error does not say certificate: $(cat "$TEST_TMP/err")"
[ "$(grep -c 'retry' "$TEST_TMP/err")" = 0 ] || fail "a TLS verification failure was retried"

echo "== service account (JWT bearer)"
emu_stop
openssl genrsa -out "$TEST_TMP/sa.key" 2048 2>/dev/null
openssl rsa -in "$TEST_TMP/sa.key" -pubout -out "$TEST_TMP/sa.pub" 2>/dev/null
EMU_CURL_OPTS=
emu_start --quiet --service-account "kiosk@gdroot-test.iam.gserviceaccount.com=$TEST_TMP/sa.pub"
emu_config "$CONF"
FOLDER=$(emu_mkfolder sa); STORE="gdrive://$FOLDER"
"$PY" - "$TEST_TMP/sa.key" "$EMU_URL/token" >"$TEST_TMP/sa.json" <<'PYEOF'
import json, sys
print(json.dumps({"type": "service_account", "client_email": "kiosk@gdroot-test.iam.gserviceaccount.com",
                  "private_key": open(sys.argv[1]).read(), "token_uri": sys.argv[2]}))
PYEOF
g -o credentials="$TEST_TMP/sa.json" store put "$D/small" sa/small || fail "put as a service account"
assert_eq "$(g -o credentials="$TEST_TMP/sa.json" store get sa/small)" "hello, drive" "get as a service account"
openssl genrsa -out "$TEST_TMP/other.key" 2048 2>/dev/null
"$PY" - "$TEST_TMP/other.key" "$EMU_URL/token" >"$TEST_TMP/other.json" <<'PYEOF'
import json, sys
print(json.dumps({"type": "service_account", "client_email": "kiosk@gdroot-test.iam.gserviceaccount.com",
                  "private_key": open(sys.argv[1]).read(), "token_uri": sys.argv[2]}))
PYEOF
"$GDROOT" -c "$CONF" -s "$STORE" -o credentials="$TEST_TMP/other.json" store ls 2>"$TEST_TMP/err"; rc=$?
[ $rc = 1 ] && grep -q 'refused the credentials' "$TEST_TMP/err" || fail "wrong service-account key: rc $rc: $(cat "$TEST_TMP/err")"

echo "== device flow: gdroot auth"
"$GDROOT" -c "$CONF" auth --client-id gdroot-test-client --client-secret gdroot-test-secret \
	--out "$TEST_TMP/auth/token.json" >"$TEST_TMP/auth.out" 2>>"$LOG" &
apid=$!
cleanup_fn kill "$apid"
for ((i = 0; i < 200; i++)); do grep -q 'enter the code' "$TEST_TMP/auth.out" && break; sleep 0.05; done
code=$(awk 'f && NF {print $1; exit} /enter the code/ {f=1}' "$TEST_TMP/auth.out")
[ -n "$code" ] || fail "gdroot auth printed no code: $(cat "$TEST_TMP/auth.out")"
grep -q "$EMU_URL" "$TEST_TMP/auth.out" || grep -q 'http' "$TEST_TMP/auth.out" || fail "no verification URL"
emu_ctl POST device/approve "{\"user_code\": \"$code\"}" >/dev/null || fail "approve $code"
wait "$apid" || fail "gdroot auth failed after approval: $(cat "$TEST_TMP/auth.out")"
assert_eq "$(stat -c %a "$TEST_TMP/auth/token.json")" 600 "token file mode"
g -o credentials="$TEST_TMP/auth/token.json" store ls >/dev/null || fail "store access with the device-flow token"

echo "== no secret in any log line"
g -vv -o credentials="$TEST_TMP/auth/token.json" store ls >/dev/null 2>>"$LOG"
refresh=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["refresh_token"])' "$TEST_TMP/auth/token.json")
for secret in gdroot-test-refresh-token gdroot-test-secret "$refresh" 'ya29\.' 'Bearer ' 'BEGIN PRIVATE KEY' 'assertion='; do
	if grep -q -- "$secret" "$LOG" "$TEST_TMP/auth.out"; then
		fail "a secret ($secret) appears in the client's output"
	fi
done
echo "ok"
