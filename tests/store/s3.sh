#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: the S3 backend through `gdroot store` against s3rver (npm,
# installed in tests/s3 by make deps): byte-exact round trips (empty, small,
# stdin, 40 MiB), ranged gets, stat, replace, ls under a prefix with paging
# past 1000 keys, foreign keys skipped, rm, missing keys and buckets, a
# refused connection, bad credentials, bad URLs, a session token, no secret
# in any log line, put --if-absent (a new key, an existing one), and
# virtual-host style when *.localhost resolves.
. "$(dirname "$0")/../lib.sh"
requires node curl sha256sum md5sum xargs
[ -x "$GDROOT" ] || fail "$GDROOT not built"
S3DIR=$TOP/tests/s3
S3RVER=$S3DIR/node_modules/s3rver/bin/s3rver.js
[ -f "$S3RVER" ] || skip "s3rver is not installed in tests/s3/node_modules (run make deps)"

BUCKET=gdroot-test
T0=$SECONDS

# s3rver on a free loopback port (-p 0: it prints the port it got). Node 20
# needs the legacy OpenSSL provider for s3rver's continuation tokens.
s3_stop() { kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; return 0; }
mkdir -p "$TEST_TMP/s3rver"
NODE_OPTIONS=--openssl-legacy-provider node "$S3RVER" -d "$TEST_TMP/s3rver" -a 127.0.0.1 -p 0 \
	--service-endpoint localhost --configure-bucket "$BUCKET" >"$TEST_TMP/s3rver.log" 2>&1 &
S3PID=$!
cleanup_fn s3_stop "$S3PID"
PORT=
for ((i = 0; i < 300; i++)); do
	PORT=$(sed -n 's/^S3rver listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$TEST_TMP/s3rver.log")
	[ -n "$PORT" ] && break
	kill -0 "$S3PID" 2>/dev/null || { cat "$TEST_TMP/s3rver.log" >&2; fail "s3rver died at start"; }
	sleep 0.1
done
[ -n "$PORT" ] || fail "s3rver did not start listening within 30 s"
for ((i = 0; i < 100; i++)); do # the port answers HTTP
	curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
	sleep 0.1
done
EP=http://127.0.0.1:$PORT
echo "s3rver on $EP (pid $S3PID), up after $((SECONDS - T0)) s"

export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
unset AWS_SESSION_TOKEN AWS_CA_BUNDLE
FAST="retry_base_ms=20&retry_cap_ms=200"
STORE="s3://$BUCKET/img/v1?endpoint=$EP&$FAST"
LOG=$TEST_TMP/client.log
: >"$LOG"
# A failure shows what gdroot and s3rver said last.
fail() {
	echo "--- gdroot's log:" >&2; tail -n 30 "$LOG" >&2
	echo "--- s3rver's log:" >&2; tail -n 10 "$TEST_TMP/s3rver.log" >&2
	echo "FAIL: $*" >&2
	exit 1
}
g() { "$GDROOT" -q -s "$STORE" "$@" 2>>"$LOG"; }
gs() { "$GDROOT" -q -s "$1" "${@:2}" 2>>"$LOG"; } # with another store URL
# Run with another URL and keep stderr in $TEST_TMP/err; returns the exit code.
gerr() { "$GDROOT" -q -s "$1" "${@:2}" 2>"$TEST_TMP/err"; local rc=$?; cat "$TEST_TMP/err" >>"$LOG"; return $rc; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
stat_of() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" "$TEST_TMP/err"; }
# A signed request made with curl itself, for setting up what gdroot must not write.
s3curl() {
	curl -sS -f --aws-sigv4 aws:amz:us-east-1:s3 -u S3RVER:S3RVER \
		-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}

D=$TEST_TMP/data
mkdir -p "$D"
: >"$D/empty"
printf 'hello, s3\n' >"$D/small"
head -c $((40 << 20 | 4321)) /dev/urandom >"$D/40m"
SIZE40=$(stat -c %s "$D/40m")

echo "== round trips"
for f in empty small 40m; do
	g store put "$D/$f" "objs/$f" || fail "put $f"
	rm -f "$TEST_TMP/out"
	g store get "objs/$f" "$TEST_TMP/out" || fail "get $f"
	assert_eq "$(sha "$TEST_TMP/out")" "$(sha "$D/$f")" "get $f"
	assert_eq "$(g store get "objs/$f" - | sha256sum | cut -d' ' -f1)" "$(sha "$D/$f")" "get $f to stdout"
done
g store put - objs/stdin <"$D/small" || fail "put from stdin"
assert_eq "$(g store get objs/stdin -)" "hello, s3" "put from stdin"
: | g store put - objs/stdin-empty || fail "put empty stdin"
assert_eq "$(g store get objs/stdin-empty - | wc -c)" 0 "empty stdin"
# Counters: one listing at open plus one request; every byte counted once.
gerr "$STORE" store --stats put "$D/40m" objs/40m-again || fail "put 40m again"
assert_eq "$(stat_of requests)" 2 "requests of a put"
assert_eq "$(stat_of retries)" 0 "retries of a put"
assert_eq "$(stat_of bytes_out)" "$SIZE40" "bytes_out of a put"
gerr "$STORE" store --stats get objs/40m-again "$TEST_TMP/out" || fail "get 40m again"
assert_eq "$(stat_of bytes_in)" "$SIZE40" "bytes_in of a get"
assert_eq "$(sha "$TEST_TMP/out")" "$(sha "$D/40m")" "40m again"
echo "round trips done at $((SECONDS - T0)) s"

echo "== ranges"
range_check() { # key file off [len]
	local key=$1 file=$2 off=$3 len=${4:-}
	local want got
	if [ -n "$len" ]; then
		want=$(tail -c +$((off + 1)) "$file" | head -c "$len" | sha256sum)
		got=$(g store get "$key" - --offset "$off" --length "$len" | sha256sum) || fail "get $key @$off+$len"
	else
		want=$(tail -c +$((off + 1)) "$file" | sha256sum)
		got=$(g store get "$key" - --offset "$off" | sha256sum) || fail "get $key @$off-"
	fi
	assert_eq "$got" "$want" "range $key @$off+${len:-end}"
}
range_check objs/small "$D/small" 1 4
range_check objs/small "$D/small" 3
range_check objs/small "$D/small" 5 1000 # past the end: short
range_check objs/40m "$D/40m" 1000 5000
range_check objs/40m "$D/40m" $((33 << 20 | 17)) $((1 << 20 | 3))
range_check objs/40m "$D/40m" $((SIZE40 - 10))
range_check objs/40m "$D/40m" 1 1
assert_eq "$(g store get objs/small - --offset 10 | wc -c)" 0 "get at the end"
assert_eq "$(g store get objs/small - --offset 1000 | wc -c)" 0 "get past the end"

echo "== stat and replace"
line=$(g store stat objs/small) || fail "stat small"
read -r size when md5 key <<<"$line"
assert_eq "$size" 10 "stat size"
assert_eq "$key" objs/small "stat key"
assert_eq "$md5" "$(md5sum <"$D/small" | cut -d' ' -f1)" "stat md5 (from the ETag)"
[[ $when =~ ^20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T ]] || fail "stat time '$when'"
assert_eq "$(g store stat objs/40m | awk '{print $1}')" "$SIZE40" "stat 40m size"
assert_eq "$(g store stat objs/empty | awk '{print $1}')" 0 "stat empty size"
printf 'replaced\n' >"$D/small2"
g store put "$D/small2" objs/small || fail "replace"
assert_eq "$(g store get objs/small -)" replaced "replaced content"
assert_eq "$(g store stat objs/small | awk '{print $1}')" 9 "replaced size"

echo "== ls and paging"
# Objects the store must not show: outside its prefix, in a sibling prefix
# sharing its first letters, and keys gdroot would never write.
gs "s3://$BUCKET/other?endpoint=$EP" store put "$D/small" objs/outside || fail "put outside"
gs "s3://$BUCKET/img/v1x?endpoint=$EP" store put "$D/small" objs/sibling || fail "put sibling"
s3curl -T "$D/small" "$EP/$BUCKET/img/v1/objs/.hidden" -o /dev/null || fail "curl put .hidden"
s3curl -T "$D/small" "$EP/$BUCKET/img/v1/objs/a%20b" -o /dev/null || fail "curl put 'a b'"
g store ls objs/ >"$TEST_TMP/ls" || fail "ls objs/"
awk '{print $4}' "$TEST_TMP/ls" | sort >"$TEST_TMP/keys"
printf '%s\n' objs/40m objs/40m-again objs/empty objs/small objs/stdin objs/stdin-empty | sort >"$TEST_TMP/want"
diff -u "$TEST_TMP/want" "$TEST_TMP/keys" || fail "ls objs/ lists the wrong keys"
assert_eq "$(awk '$4 == "objs/40m" {print $1}' "$TEST_TMP/ls")" "$SIZE40" "ls size"
assert_eq "$(awk '$4 == "objs/small" {print $3}' "$TEST_TMP/ls")" "$(md5sum <"$D/small2" | cut -d' ' -f1)" "ls md5"
assert_eq "$(g store ls objs/s | wc -l)" 3 "ls objs/s"
assert_eq "$(g store ls nothing/ | wc -l)" 0 "ls of an empty prefix"
assert_eq "$(gs "s3://$BUCKET?endpoint=$EP" store ls img/v1/objs/4 | wc -l)" 2 "ls without a store prefix"

# 1100 keys under one prefix: ListObjectsV2 pages hold 1000.
N=1100
t=$SECONDS
seq -w 1 $N | xargs -P 8 -I{} "$GDROOT" -q -s "$STORE" store put "$D/small" "many/k{}" 2>>"$LOG" ||
	fail "parallel puts"
echo "$N puts in $((SECONDS - t)) s"
gerr "$STORE" store --stats ls many/ >"$TEST_TMP/ls" || fail "ls many/"
assert_eq "$(wc -l <"$TEST_TMP/ls")" $N "keys listed under many/"
assert_eq "$(awk '{print $4}' "$TEST_TMP/ls" | sort -u | wc -l)" $N "distinct keys under many/"
assert_eq "$(awk '{print $4}' "$TEST_TMP/ls" | sort | head -n1)" "many/k0001" "first key"
assert_eq "$(awk '{print $4}' "$TEST_TMP/ls" | sort | tail -n1)" "many/k$N" "last key"
assert_eq "$(stat_of requests)" 3 "requests for two pages (and the open)"
assert_eq "$(g store ls | wc -l)" $((N + 6)) "ls of everything"

echo "== rm and missing objects"
g store rm objs/small objs/empty || fail "rm"
gerr "$STORE" store stat objs/small
assert_eq $? 3 "stat after rm"
grep -q "objs/small" "$TEST_TMP/err" || fail "stat of a missing key does not name it"
g store rm objs/small objs/never-was || fail "rm of missing keys"
gerr "$STORE" store get objs/never-was "$TEST_TMP/out2"
assert_eq $? 3 "get of a missing key"
grep -q "objs/never-was" "$TEST_TMP/err" || fail "get of a missing key does not name it: $(cat "$TEST_TMP/err")"
[ ! -e "$TEST_TMP/out2" ] && [ ! -e "$TEST_TMP/out2.part" ] || fail "a failed get left a file"
assert_eq "$(g store ls objs/ | wc -l)" 4 "ls after rm"

echo "== errors"
gerr "s3://no-such-bucket/p?endpoint=$EP" store ls
assert_eq $? 3 "ls of a missing bucket"
grep -q "s3://no-such-bucket: no such bucket" "$TEST_TMP/err" || fail "missing bucket message: $(cat "$TEST_TMP/err")"
# A closed port (1 is never ours): one quick retry, then a message naming it.
gerr "s3://$BUCKET?endpoint=http://127.0.0.1:1&retries=1&retry_base_ms=10&retry_cap_ms=10" store ls
assert_eq $? 1 "refused connection"
grep -q "127.0.0.1" "$TEST_TMP/err" && grep -qi "connect" "$TEST_TMP/err" ||
	fail "refused connection message: $(cat "$TEST_TMP/err")"
for bad in "s3://$BUCKET?endpoint=$EP&style=sideways" "s3://$BUCKET/.hidden?endpoint=$EP" \
	"s3:///p?endpoint=$EP" "s3://bad%bucket?endpoint=$EP" "s3://$BUCKET?endpoint=ftp://x" \
	"s3://$BUCKET?endpoint=$EP&region=a:b" "s3://$BUCKET?endpoint=$EP&style=virtual"; do
	gerr "$bad" store ls
	assert_eq $? 2 "bad URL $bad"
	[ -s "$TEST_TMP/err" ] || fail "bad URL $bad: no message"
done
SECRET=sekrit-$RANDOM-$RANDOM
AWS_ACCESS_KEY_ID=NOT-S3RVER AWS_SECRET_ACCESS_KEY=$SECRET gerr "$STORE" store ls
assert_eq $? 1 "wrong access key"
grep -q "InvalidAccessKeyId" "$TEST_TMP/err" || fail "wrong key message: $(cat "$TEST_TMP/err")"
AWS_SECRET_ACCESS_KEY= gerr "$STORE" store ls
assert_eq $? 2 "access key without secret"
# A session token is sent (and signed), never logged, even with -vv.
TOKEN=session-$RANDOM-$RANDOM
AWS_SESSION_TOKEN=$TOKEN AWS_SECRET_ACCESS_KEY=$SECRET "$GDROOT" -vv -s "$STORE" store get objs/stdin - \
	>"$TEST_TMP/out" 2>"$TEST_TMP/err" || fail "get with a session token: $(cat "$TEST_TMP/err")"
cat "$TEST_TMP/err" >>"$LOG"
assert_eq "$(cat "$TEST_TMP/out")" "hello, s3" "get with a session token"
AWS_SECRET_ACCESS_KEY=$SECRET "$GDROOT" -vv -s "$STORE" store get objs/never-was - 2>>"$LOG"
if grep -q -e "$SECRET" -e "$TOKEN" -e "S3RVER:" -e "Authorization" "$LOG"; then
	fail "a secret, token or Authorization header reached the log"
fi

echo "== put --if-absent (If-None-Match, then a check after settle_ms)"
g -o settle_ms=100 store put "$D/small" objs/once --if-absent || fail "put --if-absent of a new key"
g -o settle_ms=100 store put "$D/40m" objs/once --if-absent
assert_eq $? 4 "put --if-absent of an existing key"
assert_eq "$(g store get objs/once -)" "hello, s3" "the object after a refused put --if-absent"

echo "== virtual-host style"
if curl -s -o /dev/null "http://$BUCKET.s3.localhost:$PORT/"; then
	VSTORE="s3://$BUCKET/img/v1?endpoint=http://s3.localhost:$PORT&style=virtual&$FAST"
	gs "$VSTORE" store put "$D/small" objs/virtual || fail "virtual put"
	assert_eq "$(g store get objs/virtual -)" "hello, s3" "virtual put, path get"
	assert_eq "$(gs "$VSTORE" store get objs/stdin -)" "hello, s3" "virtual get"
	assert_eq "$(gs "$VSTORE" store get objs/40m - --offset 1000 --length 5000 | sha256sum)" \
		"$(tail -c +1001 "$D/40m" | head -c 5000 | sha256sum)" "virtual ranged get"
	assert_eq "$(gs "$VSTORE" store ls many/ | wc -l)" $N "virtual ls with paging"
	gs "$VSTORE" store rm objs/virtual || fail "virtual rm"
	gerr "s3://no-such-bucket?endpoint=http://s3.localhost:$PORT&style=virtual" store ls
	assert_eq $? 3 "virtual: missing bucket"
else
	echo "SKIPPED PART: $BUCKET.s3.localhost does not resolve here; virtual-host URLs are unit-tested (test-s3-url)"
fi

echo "s3 test done in $((SECONDS - T0)) s"
