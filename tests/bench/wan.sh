# SPDX-License-Identifier: MIT
# Helpers that put a server "on the far side" of an emulated WAN link, for
# benchmarks (sourced after tests/lib.sh; needs root). The host kernel has
# no sch_netem, so the link is tests/tools/wan-proxy, a userspace TCP proxy
# with a per-direction bottleneck and one-way delay:
#
#   client (host) -> 127.0.0.1:PORT wan-proxy -> veth -> server in netns
#
#   wan_ns_up                 network namespace gdroot-wan-$$ with a veth
#                             pair: WAN_HOST_IP (host) <-> WAN_NS_IP (ns)
#   wan_exec CMD...           run CMD inside the namespace
#   wan_proxy_start NAME NS_PORT MBIT DELAY_MS
#                             a wan-proxy on 127.0.0.1 to WAN_NS_IP:NS_PORT;
#                             sets WAN_ADDR_<NAME> (127.0.0.1:PORT) and
#                             WAN_PID_<NAME>; stop it with wan_proxy_stop NAME
#                             (it prints its counters to $TEST_TMP/wan-NAME.log);
#                             LISTEN_PORT (default: any free one) restarts one
#   wan_emu_start [ARGS]      the Drive emulator inside the namespace; sets
#                             WAN_EMU_URL (direct, over the veth, no delay),
#                             WAN_EMU_PORT, EMU_PID, EMU_DATA
#   wan_s3rver_start BUCKET   s3rver inside the namespace; sets WAN_S3_PORT
#   wan_curl_check ADDR MBIT DELAY_MS
#                             time a tiny request (twice on one connection)
#                             and a WAN_CHECK_MB download through ADDR;
#                             prints the figures; sets WAN_TTFB1_MS,
#                             WAN_TTFB2_MS, WAN_RATE_MBIT
# Link presets (name mbit one-way-ms): wan_link NAME prints "MBIT DELAY".
# Everything started here is registered with cleanup_fn: processes in the
# namespace are stopped, then the namespace (and with it the veth) goes.

WAN_PROXY=$O/tests/tools/wan-proxy

wan_link() {
	case $1 in
	100m-40ms) echo "100 20" ;;   # the default: 100 Mbit/s, 40 ms RTT
	1g-2ms) echo "1000 1" ;;      # a fast link: 1 Gbit/s, 2 ms RTT
	20m-100ms) echo "20 50" ;;    # a slow link: 20 Mbit/s, 100 ms RTT
	*) fail "unknown link preset '$1' (100m-40ms, 1g-2ms, 20m-100ms)" ;;
	esac
}

_wan_ns_down() { # ns hostif
	local ns=$1 pid
	for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null; done
	sleep 0.2
	for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
	ip netns del "$ns" 2>/dev/null
	ip link del "$2" 2>/dev/null
	return 0
}

wan_ns_up() {
	requires ip
	[ -x "$WAN_PROXY" ] || make -s -C "$TOP" O="$O" "$WAN_PROXY" >/dev/null 2>&1 || fail "build $WAN_PROXY"
	WAN_NS=gdroot-wan-$$
	local hif=gwh$$ nif=gwn$$ x i
	# A /30 in 10.199.0.0/16 that no interface on the host uses yet.
	for ((i = 0; i < 64; i++)); do
		x=$(((($$ + i) % 16000) * 4))
		WAN_HOST_IP=10.199.$((x / 256)).$((x % 256 + 1))
		WAN_NS_IP=10.199.$((x / 256)).$((x % 256 + 2))
		ip -4 -o addr show | grep -q " $WAN_HOST_IP/\| $WAN_NS_IP/" || break
	done
	cleanup_fn _wan_ns_down "$WAN_NS" "$hif"
	ip netns add "$WAN_NS" || fail "ip netns add $WAN_NS"
	ip link add "$hif" type veth peer name "$nif" || fail "ip link add veth $hif"
	ip link set "$nif" netns "$WAN_NS" || fail "move $nif into $WAN_NS"
	ip addr add "$WAN_HOST_IP/30" dev "$hif" || fail "address $hif"
	ip link set "$hif" up || fail "$hif up"
	ip netns exec "$WAN_NS" ip addr add "$WAN_NS_IP/30" dev "$nif" || fail "address $nif"
	ip netns exec "$WAN_NS" ip link set "$nif" up || fail "$nif up"
	ip netns exec "$WAN_NS" ip link set lo up || fail "lo up in $WAN_NS"
	for ((i = 0; i < 50; i++)); do
		ping -c1 -W1 "$WAN_NS_IP" >/dev/null 2>&1 && break
		sleep 0.1
	done
	export WAN_NS WAN_HOST_IP WAN_NS_IP
}

wan_exec() { ip netns exec "$WAN_NS" "$@"; }

_wan_kill() { kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; return 0; }

wan_proxy_start() { # NAME NS_PORT MBIT DELAY_MS [LISTEN_PORT]
	local name=$1 port=$2 mbit=$3 delay=$4 lport=${5:-0} ready=$TEST_TMP/wan-$1.ready pid
	rm -f "$ready"
	"$WAN_PROXY" --listen "127.0.0.1:$lport" --connect "$WAN_NS_IP:$port" --rate-mbit "$mbit" \
		--delay-ms "$delay" --ready-file "$ready" 2>>"$TEST_TMP/wan-$name.log" &
	pid=$!
	cleanup_fn _wan_kill "$pid"
	wait_for_file "$ready" "$pid" 10
	eval "WAN_ADDR_$name=$(head -n1 "$ready") WAN_PID_$name=$pid"
}

wan_proxy_stop() { # NAME
	local pid
	eval "pid=\${WAN_PID_$1:-}"
	[ -n "$pid" ] && _wan_kill "$pid"
	eval "WAN_PID_$1="
	return 0
}

wan_emu_start() {
	EMU_DATA=${EMU_DATA:-$TEST_TMP/emu-data}
	mkdir -p "$EMU_DATA"
	local ready=$TEST_TMP/emu-ready.$RANDOM
	rm -f "$ready"
	wan_exec "$PY" "$EMU" --data "$EMU_DATA" --host "$WAN_NS_IP" --port 0 --ready-file "$ready" "$@" \
		>>"$TEST_TMP/emu.log" 2>&1 &
	EMU_PID=$!
	cleanup_fn _wan_kill "$EMU_PID"
	wait_for_file "$ready" "$EMU_PID" 30
	WAN_EMU_URL=$(head -n1 "$ready")
	WAN_EMU_PORT=${WAN_EMU_URL##*:}
	EMU_URL=$WAN_EMU_URL # lib.sh's emu_* helpers talk to it directly
	export EMU_URL EMU_PID EMU_DATA WAN_EMU_URL WAN_EMU_PORT
}

wan_s3rver_start() { # BUCKET
	local s3rver=$TOP/tests/s3/node_modules/s3rver/bin/s3rver.js i log=$TEST_TMP/s3rver.log
	[ -f "$s3rver" ] || return 1
	mkdir -p "$TEST_TMP/s3rver"
	# Node 20 needs the legacy OpenSSL provider (MACHINE-NOTES).
	wan_exec env NODE_OPTIONS=--openssl-legacy-provider node "$s3rver" -d "$TEST_TMP/s3rver" \
		-a "$WAN_NS_IP" -p 0 --configure-bucket "$1" >"$log" 2>&1 &
	local pid=$!
	cleanup_fn _wan_kill "$pid"
	WAN_S3_PORT=
	for ((i = 0; i < 300; i++)); do
		WAN_S3_PORT=$(sed -n "s/^S3rver listening on ${WAN_NS_IP//./\\.}:\([0-9][0-9]*\)$/\1/p" "$log")
		[ -n "$WAN_S3_PORT" ] && break
		kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; fail "s3rver died at start"; }
		sleep 0.1
	done
	[ -n "$WAN_S3_PORT" ] || fail "s3rver did not listen within 30 s"
	for ((i = 0; i < 100; i++)); do
		curl -s -o /dev/null "http://$WAN_NS_IP:$WAN_S3_PORT/" && break
		sleep 0.1
	done
	WAN_S3_PID=$pid
}

# wan_curl_check ADDR MBIT DELAY_MS: through the proxy at ADDR, two tiny
# requests on one connection (the Drive emulator's /_emu/stats), then one
# download of WAN_CHECK_URL (a path under ADDR; header WAN_CHECK_HDR).
wan_curl_check() {
	local addr=$1 mbit=$2 delay=$3 fmt out
	fmt='%{time_connect} %{time_starttransfer} %{time_total} %{size_download}\n'
	out=$(curl -sS -o /dev/null -w "$fmt" "http://$addr/_emu/stats" -o /dev/null "http://$addr/_emu/stats") ||
		fail "curl through the WAN proxy at $addr"
	WAN_TTFB1_MS=$(echo "$out" | awk 'NR == 1 {printf "%.1f", $2 * 1000}')
	WAN_TTFB2_MS=$(echo "$out" | awk 'NR == 2 {printf "%.1f", $2 * 1000}')
	out=$(curl -sS -o /dev/null -w "$fmt" ${WAN_CHECK_HDR:+-H "$WAN_CHECK_HDR"} "http://$addr$WAN_CHECK_URL") ||
		fail "curl download through the WAN proxy"
	WAN_RATE_MBIT=$(echo "$out" | awk '{printf "%.1f", $4 * 8 / ($3 - $2) / 1e6}')
	WAN_XFER_S=$(echo "$out" | awk '{printf "%.2f", $3}')
	WAN_XFER_BYTES=$(echo "$out" | awk '{print $4}')
	printf 'link %s Mbit/s, %s ms one way: first request %s ms (expect ~%d: handshake + request),' \
		"$mbit" "$delay" "$WAN_TTFB1_MS" $((4 * delay))
	printf ' reused connection %s ms (expect ~%d); %s bytes in %s s = %s Mbit/s\n' \
		"$WAN_TTFB2_MS" $((2 * delay)) "$WAN_XFER_BYTES" "$WAN_XFER_S" "$WAN_RATE_MBIT"
}
