#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: gdroot clock (the appliance's NTP client) against an SNTP
# server on loopback that runs 1000 s ahead: it reports an offset of about
# +1000 s, and refuses a server that says it is unsynchronized and one
# that does not answer.
. "$(dirname "$0")/../lib.sh"
requires /usr/bin/python3
serve() { # mode: ok|unsync|silent; sets port
	"$PY" - "$1" "$TEST_TMP/ntp.port.$1" <<'PYEOF' &
import socket, struct, sys, time
mode, portfile = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(portfile + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(portfile + ".tmp", portfile)
s.settimeout(20)
for _ in range(6):
    try:
        req, peer = s.recvfrom(512)
    except socket.timeout:
        break
    if mode == "silent":
        continue
    now = time.time() + 1000
    sec, frac = int(now) + 2208988800, int((now % 1) * (1 << 32))
    li = 3 if mode == "unsync" else 0
    head = bytes([li << 6 | 4 << 3 | 4, 2, 6, 0xec]) + bytes(20)
    s.sendto(head + req[40:48] + struct.pack(">II", sec, frac) * 2, peer)
PYEOF
	cleanup_fn kill $!
	wait_for_file "$TEST_TMP/ntp.port.$1" $! 10
	port=$(cat "$TEST_TMP/ntp.port.$1")
}
serve ok
out=$("$GDROOT" clock --dry-run "127.0.0.1:$port") || fail "gdroot clock: $out"
echo "$out"
off=$(sed -n 's/^clock: offset \([-+][0-9.]*\) s.*/\1/p' <<<"$out")
awk -v o="$off" 'BEGIN { exit !(o > 999 && o < 1001) }' || fail "offset $off, expected about +1000"
serve unsync
"$GDROOT" clock --dry-run "127.0.0.1:$port" 2>"$TEST_TMP/err" && fail "accepted an unsynchronized server"
grep -q 'not synchronized' "$TEST_TMP/err" || fail "no reason given: $(cat "$TEST_TMP/err")"
serve silent
"$GDROOT" clock --dry-run "127.0.0.1:$port" 2>"$TEST_TMP/err" && fail "a silent server set the clock"
grep -q 'no valid answer' "$TEST_TMP/err" || fail "silence not reported: $(cat "$TEST_TMP/err")"
echo ok
