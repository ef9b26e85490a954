# SPDX-License-Identifier: MIT
# Helpers of the boot benchmark (sourced by tests/bench/boot.sh after
# tests/lib.sh and tests/bench/wan.sh): the servers on the far side of the
# link, the appliances, one timed boot, and the report.
#
#   host                                   netns gdroot-wan-PID
#   QEMU guest -> 10.0.2.2:P (slirp) ->
#     127.0.0.1:P wan-proxy --veth-->      Drive emulator   (gdroot)
#     127.0.0.1:Q wan-proxy --veth-->      s3rver           (s3fs, rclone)
#     127.0.0.1:R wan-proxy --veth-->      python http.server (download-first)
#
# The link is shaped in the proxies (rate and one-way delay per direction,
# shared by all connections of that proxy), not on a veth into QEMU: QEMU's
# user-mode network reaches the host's loopback, where the proxies listen.

BCACHE=${GDROOT_BENCH_BOOT:-/var/tmp/gdroot-bench-boot}
ALL_CONFIGS="cold profile warm local seed download rclone"
ORDER="local download cold profile warm rclone seed" # cheap and sure first
QEMU_MEM=${QEMU_MEM:-3072}
TSV_HEADER=$'link\timage\tconfig\trun\tready_s\tinit_s\tswitch_s\tfetched_requests\tfetched_bytes\tstore_requests\tstore_bytes\twire_bytes\tconnections\tread_bytes\tfuse_read_bytes\tstatus\tload1\tprefetch_chunks'
mkdir -p "$BCACHE"

note() { echo "boot.sh: $*" >&2; }
want() { [[ ",$ONLY," == *",$1,"* ]]; }

# --- what the benchmark needs ----------------------------------------------
bench_deps() {
	local need=() p
	for p in qemu-system-x86:qemu-system-x86_64 s3fs:s3fs rclone:rclone gnuplot-nox:gnuplot \
		squashfs-tools:mksquashfs debootstrap:debootstrap fuse3:fusermount3 curl:curl; do
		command -v "${p#*:}" >/dev/null 2>&1 || need+=("${p%%:*}")
	done
	if [ ${#need[@]} -gt 0 ]; then
		note "apt-get install ${need[*]}"
		apt-get update -qq >/dev/null 2>&1
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
			fail "apt-get install ${need[*]}"
	fi
	[ -f "$TOP/tests/s3/node_modules/s3rver/bin/s3rver.js" ] || bash "$TOP/tests/deps.sh" >&2 ||
		fail "tests/deps.sh (s3rver)"
}

bench_build() {
	local b
	if ! make -s -C "$TOP" O="$O" "$O/gdroot" "$O/gdroot-fetcher" "$WAN_PROXY" >"$TEST_TMP/make.log" 2>&1; then
		for b in "$O/gdroot" "$O/gdroot-fetcher" "$WAN_PROXY"; do
			[ -x "$b" ] || fail "build $b: $(tail -n3 "$TEST_TMP/make.log")"
		done
		note "warning: make failed ($(tail -n1 "$TEST_TMP/make.log")); using the binaries in $O"
	fi
}

# --- the store (Drive emulator), one folder per image ------------------------
declare -A FOLDER
bench_store_up() {
	CONF=$TEST_TMP/direct.conf # straight over the veth: setup only
	emu_config "$CONF"
	"$GDROOT" keygen "$TEST_TMP/key" >/dev/null || fail keygen
	echo "public_key = $TEST_TMP/key.pub" >>"$CONF"
	local img t
	for img in $IMAGES; do
		FOLDER[$img]=$(emu_mkfolder "bench-$img") || fail "folder for $img"
		t=$(date +%s%N)
		"$GDROOT" -q -c "$CONF" -s "gdrive://${FOLDER[$img]}" -k "$TEST_TMP/key.key" push --image "${SQFS[$img]}" \
			>"$TEST_TMP/push-$img.log" 2>&1 || fail "push $img: $(tail -n5 "$TEST_TMP/push-$img.log")"
		note "pushed $img to gdrive://${FOLDER[$img]} in $((($(date +%s%N) - t) / 1000000)) ms"
	done
	wan_proxy_start emu "$WAN_EMU_PORT" "$MBIT" "$DELAY"
	EMU_LPORT=${WAN_ADDR_emu##*:}
}

# --- the download-first server: python's http.server in the namespace --------
bench_http_up() {
	local img i
	mkdir -p "$TEST_TMP/www"
	for img in $IMAGES; do
		ln -f "${SQFS[$img]}" "$TEST_TMP/www/$img.sqfs" 2>/dev/null || ln -sf "${SQFS[$img]}" "$TEST_TMP/www/$img.sqfs"
	done
	wan_exec "$PY" -m http.server 8080 --bind "$WAN_NS_IP" --directory "$TEST_TMP/www" \
		>"$TEST_TMP/http.log" 2>&1 &
	HTTP_PID=$!
	cleanup_fn _wan_kill "$HTTP_PID"
	for ((i = 0; i < 100; i++)); do
		curl -s -o /dev/null "http://$WAN_NS_IP:8080/" && break
		sleep 0.1
	done
	wan_proxy_start http 8080 "$MBIT" "$DELAY"
	HTTP_LPORT=${WAN_ADDR_http##*:}
}

# --- s3rver: the image as one object (rclone), the unpacked tree (s3fs) --------
s3curl() {
	curl -sS -f --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}
# Requests s3rver has answered so far (one log line each).
s3_requests() { awk '/info.* [0-9][0-9][0-9] [0-9]+ms/ {n++} END {print n + 0}' "$TEST_TMP/s3rver.log" 2>/dev/null; }
bench_s3_up() {
	local log=$TEST_TMP/s3rver.log i img pid
	mkdir -p "$BCACHE/s3rver"
	wan_exec env NODE_OPTIONS=--openssl-legacy-provider node "$TOP/tests/s3/node_modules/s3rver/bin/s3rver.js" \
		-d "$BCACHE/s3rver" -a "$WAN_NS_IP" -p 4568 >"$log" 2>&1 &
	pid=$!
	cleanup_fn _wan_kill "$pid"
	for ((i = 0; i < 300; i++)); do
		curl -s -o /dev/null "http://$WAN_NS_IP:4568/" && break
		kill -0 "$pid" 2>/dev/null || fail "s3rver died: $(tail -n5 "$log")"
		sleep 0.1
	done
	S3=http://$WAN_NS_IP:4568
	for b in bench-img seed-small seed-kiosk; do
		s3curl -o /dev/null -X PUT "$S3/$b" 2>/dev/null || true # exists already: fine
	done
	for img in $IMAGES; do
		local size have
		size=$(stat -c %s "${SQFS[$img]}")
		have=$(curl -sS -I --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER "$S3/bench-img/$img.sqfs" 2>/dev/null |
			tr -d '\r' | awk 'tolower($1) == "content-length:" {print $2}')
		if [ "$have" != "$size" ] || [ "${SQFS[$img]}" -nt "$BCACHE/s3rver-img-$img.done" ]; then
			note "upload $img.sqfs to s3rver (bench-img)"
			s3curl -o /dev/null -T "${SQFS[$img]}" "$S3/bench-img/$img.sqfs" || fail "upload $img.sqfs to s3rver"
			touch "$BCACHE/s3rver-img-$img.done"
		fi
	done
	wan_proxy_start s3 4568 "$MBIT" "$DELAY"
	S3_LPORT=${WAN_ADDR_s3##*:}
}

# The seed's store: the root tree copied file by file into bucket
# seed-IMAGE through a host s3fs mount (so s3fs's own metadata carries
# modes, owners, times and symlinks), straight over the veth. Once: the
# bucket stays in $BCACHE/s3rver. Hard links become copies (S3 has none).
bench_seed_upload() { # IMAGE
	local img=$1 mnt=$TEST_TMP/s3fs-up-$1 t pid i
	[ -f "$BCACHE/s3rver-seed-$img.done" ] && [ "$BCACHE/s3rver-seed-$img.done" -nt "${SQFS[$img]}" ] && return 0
	note "seed: copying ${ROOTDIR[$img]} into s3rver bucket seed-$img through s3fs (once; minutes)"
	echo S3RVER:S3RVER >"$TEST_TMP/s3fs.passwd"
	chmod 600 "$TEST_TMP/s3fs.passwd"
	mkdir -p "$mnt"
	s3fs "seed-$img" "$mnt" -f -o "url=$S3" -o use_path_request_style -o "passwd_file=$TEST_TMP/s3fs.passwd" \
		-o parallel_count=8 >"$TEST_TMP/s3fs-up-$img.log" 2>&1 &
	pid=$!
	for ((i = 0; i < 100; i++)); do mountpoint -q "$mnt" && break; sleep 0.1; done
	mountpoint -q "$mnt" || fail "s3fs mount for the upload: $(tail -n3 "$TEST_TMP/s3fs-up-$img.log")"
	t=$(date +%s)
	# Eight tar pipes over the top-level entries, biggest first.
	(cd "${ROOTDIR[$img]}" && du -s --apparent-size -- * .[!.]* 2>/dev/null | sort -rn | cut -f2-) |
		xargs -d '\n' -P 8 -I{} sh -c 'tar -C "$1" --hard-dereference -cf - "$3" | tar -C "$2" -xpf - --numeric-owner 2>>"$4"' \
			_ "${ROOTDIR[$img]}" "$mnt" {} "$TEST_TMP/s3fs-up-$img.err"
	# The root directory's own mode and owner.
	chmod "$(stat -c %a "${ROOTDIR[$img]}")" "$mnt" 2>/dev/null
	sync
	umount "$mnt" || umount -l "$mnt"
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	note "seed: upload of $img took $(($(date +%s) - t)) s ($(grep -c . "$TEST_TMP/s3fs-up-$img.err" 2>/dev/null || echo 0) tar errors)"
	touch "$BCACHE/s3rver-seed-$img.done"
}

# --- the link, checked with curl from the host through the proxies -----------
bench_link_check() {
	local fmt='%{time_connect} %{time_starttransfer} %{time_total} %{size_download}\n' out img
	out=$(curl -sS -o /dev/null -w "$fmt" "http://$WAN_ADDR_emu/_emu/stats" -o /dev/null "http://$WAN_ADDR_emu/_emu/stats") ||
		fail "curl through the WAN proxy"
	LINK_TTFB1=$(echo "$out" | awk 'NR == 1 {printf "%.1f", $2 * 1000}')
	LINK_TTFB2=$(echo "$out" | awk 'NR == 2 {printf "%.1f", $2 * 1000}')
	img=${IMAGES%% *} # the small image when it is there: a 100 MB check, not 1 GB
	case " $IMAGES " in *" small "*) img=small ;; esac
	out=$(curl -sS -o /dev/null -w "$fmt" "http://$WAN_ADDR_http/$img.sqfs") || fail "curl download through the proxy"
	LINK_BYTES=$(echo "$out" | awk '{print $4}')
	LINK_XFER=$(echo "$out" | awk '{printf "%.2f", $3}')
	LINK_RATE=$(echo "$out" | awk '{printf "%.1f", $4 * 8 / ($3 - $2) / 1e6}')
	note "link $LINK: new connection $LINK_TTFB1 ms (expect ~$((4 * DELAY))), reused $LINK_TTFB2 ms" \
		"(expect ~$((2 * DELAY))); $LINK_BYTES bytes in $LINK_XFER s = $LINK_RATE Mbit/s"
	{
		echo "link=$LINK image=$img ttfb_new_ms=$LINK_TTFB1 ttfb_reused_ms=$LINK_TTFB2 bytes=$LINK_BYTES seconds=$LINK_XFER mbit=$LINK_RATE"
		echo "date=$(date -u +%FT%TZ) kernel=$(uname -r) cores=$(nproc)"
	} >"$BCACHE/link-$LINK.txt"
}

# --- appliances --------------------------------------------------------------
# gdroot: overlay-init, the store across the link (its port baked in; the
# folder comes from gdroot.store= on the command line). The others: the
# same initramfs with tests/bench/boot-init as /init, plus s3fs or rclone.
bench_appliances() {
	local guest=http://10.0.2.2:$EMU_LPORT extras lib
	cat >"$TEST_TMP/appliance.conf" <<CONF
drive_api = $guest
oauth_token_url = $guest/token
credentials = /etc/gdroot/credentials.json
public_key = /etc/gdroot/signing.pub
boot_on_failure = poweroff
CONF
	build_appl() { # NAME ARGS...
		local name=$1 t
		shift
		t=$(date +%s)
		bash "$TOP/appliance/build.sh" --out "$TEST_TMP/appl-$name" --config "$TEST_TMP/appliance.conf" \
			--public-key "$TEST_TMP/key.pub" --credentials "$TEST_TMP/drive-token.json" --fast "$@" \
			>"$TEST_TMP/appl-$name.log" 2>&1 || fail "appliance $name: $(tail -n 10 "$TEST_TMP/appl-$name.log")"
		note "appliance $name: initrd $(stat -c %s "$TEST_TMP/appl-$name/initrd.img") bytes ($(($(date +%s) - t)) s)"
	}
	build_appl gdroot
	build_appl bench --init "$TOP/tests/bench/boot-init"
	if want seed; then
		extras=(--extra /usr/bin/s3fs:/usr/bin/s3fs)
		for lib in $(ldd /usr/bin/s3fs | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
			extras+=(--extra "$lib:$lib")
		done
		build_appl s3fs --init "$TOP/tests/bench/boot-init" "${extras[@]}"
	fi
	if want rclone; then
		extras=(--extra /usr/bin/rclone:/usr/bin/rclone --extra "$(command -v fusermount3):/usr/bin/fusermount3"
			--extra "$(command -v fusermount3):/usr/bin/fusermount")
		for lib in $(ldd "$(command -v fusermount3)" /usr/bin/rclone | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u); do
			extras+=(--extra "$lib:$lib")
		done
		build_appl rclone --init "$TOP/tests/bench/boot-init" "${extras[@]}"
	fi
}

# --- one boot ----------------------------------------------------------------
# Restart a proxy on its port (so its counters start at zero) and set
# PC_CONNS and PC_BYTES (server to client) to what the old one counted.
proxy_cycle() { # NAME
	local name=$1 port line pid
	PC_CONNS=0 PC_BYTES=0
	eval "pid=\${WAN_PID_$name:-}"
	[ -n "$pid" ] || return 0
	eval "port=\${WAN_ADDR_$name##*:}"
	wan_proxy_stop "$name"
	line=$(grep '^wan-proxy: [0-9]* connections' "$TEST_TMP/wan-$name.log" | tail -n1)
	mv -f "$TEST_TMP/wan-$name.log" "$TEST_TMP/wan-$name.last"
	wan_proxy_start "$name" "$(proxy_ns_port "$name")" "$MBIT" "$DELAY" "$port"
	read -r PC_CONNS PC_BYTES < <(echo "$line" |
		sed -n 's/^wan-proxy: \([0-9]*\) connections.*, \([0-9]*\) bytes server->client$/\1 \2/p')
	PC_CONNS=${PC_CONNS:-0} PC_BYTES=${PC_BYTES:-0}
}
proxy_ns_port() {
	case $1 in emu) echo "$WAN_EMU_PORT" ;; http) echo 8080 ;; s3) echo 4568 ;; esac
}

profiles_clear() { # IMAGE
	local k
	for k in $("$GDROOT" -q -c "$CONF" -s "gdrive://${FOLDER[$1]}" store ls profiles/ 2>/dev/null | awk '{print $NF}' |
		grep '^profiles/'); do
		"$GDROOT" -q -c "$CONF" -s "gdrive://${FOLDER[$1]}" store rm "$k" >/dev/null || fail "store rm $k"
	done
}
profile_exists() { # IMAGE
	"$GDROOT" -q -c "$CONF" -s "gdrive://${FOLDER[$1]}" store ls profiles/ 2>/dev/null | grep -q 'profiles/'
}

# boot_one IMAGE CONFIG RUN: one boot; appends a TSV line unless RUN is
# "prep" (an untimed boot that fills a cache or makes a profile), and
# sets BOOT_OK. The console log stays in $BCACHE/logs.
boot_one() {
	local img=$1 cfg=$2 run=$3 appl=gdroot append="gdroot.upper=zram:50%" qextra=() timeout=300
	local log=$BCACHE/logs/$LINK-$img-$cfg-$run.log
	mkdir -p "$BCACHE/logs"
	case $cfg in
	cold | profile) append+=" gdroot.store=gdrive://${FOLDER[$img]}" ;;
	warm)
		append+=" gdroot.store=gdrive://${FOLDER[$img]} gdroot.cache=/dev/vda"
		[ "$run" = prep ] && append+=" bench.wait_prefetch"
		qextra=(-drive "file=$WARM_DISK,if=virtio,format=raw,cache=writeback")
		;;
	local)
		appl=bench append+=" bench.mode=local"
		qextra=(-drive "file=${SQFS[$img]},if=virtio,format=raw,readonly=on")
		;;
	download) appl=bench append+=" bench.mode=download bench.url=http://10.0.2.2:$HTTP_LPORT/$img.sqfs" ;;
	seed) appl=s3fs timeout=1200 append+=" bench.mode=s3fs bench.s3=http://10.0.2.2:$S3_LPORT bench.bucket=seed-$img" ;;
	rclone)
		appl=rclone timeout=600
		append+=" bench.mode=rclone bench.s3=http://10.0.2.2:$S3_LPORT bench.bucket=bench-img bench.object=$img.sqfs"
		;;
	esac
	# Counters start at zero; caches on the host are dropped (the local
	# disk's image is read from the disk, not from the host's RAM), then
	# the appliance itself is read back in: firmware loading the kernel and
	# initramfs is the same fixed cost in every configuration, and must not
	# depend on how busy the host's disk is.
	proxy_cycle emu
	proxy_cycle http
	proxy_cycle s3
	emu_ctl POST stats/reset '{}' >/dev/null || fail "emulator stats reset"
	local s3req0
	s3req0=$(s3_requests)
	sync
	echo 3 >/proc/sys/vm/drop_caches
	cat "$TEST_TMP/appl-$appl/vmlinuz" "$TEST_TMP/appl-$appl/initrd.img" >/dev/null
	note "boot $img/$cfg run $run (load $(cut -d' ' -f1-3 /proc/loadavg))"
	local rc=0 load1
	load1=$(cut -d' ' -f1 /proc/loadavg)
	bash "$TOP/appliance/run-qemu.sh" --dir "$TEST_TMP/appl-$appl" --timeout "$timeout" --marker GDROOT-STATUS-DONE \
		--fail-marker "BOOT FAILED" --log "$log" --timestamps --quiet --mem "$QEMU_MEM" --append "$append" \
		-- "${qextra[@]}" >/dev/null 2>"$TEST_TMP/run-qemu.err" || rc=$?
	local emu http s3 stats
	proxy_cycle emu; emu="$PC_CONNS $PC_BYTES"
	proxy_cycle http; http="$PC_CONNS $PC_BYTES"
	proxy_cycle s3; s3="$PC_CONNS $PC_BYTES"
	# The emulator's counters, without its list of recent requests (too
	# long for an argument).
	stats=$(emu_ctl GET stats | "$PY" -c 'import json,sys; s = json.load(sys.stdin); s.pop("recent", None); print(json.dumps(s))') ||
		stats='{}'
	case $cfg in seed | rclone) stats="{\"s3_requests\": $(($(s3_requests) - s3req0))}" ;; esac
	BOOT_OK=0
	[ $rc = 0 ] && grep -q GDROOT-READY "$log" && BOOT_OK=1
	if [ $BOOT_OK = 0 ]; then
		note "boot $img/$cfg run $run FAILED (run-qemu.sh $rc: $(tail -n1 "$TEST_TMP/run-qemu.err")); log $log"
		tail -n 15 "$log" | sed 's/^/    > /' >&2
	fi
	[ "$run" = prep ] && return 0
	local wire conns
	case $cfg in
	cold | profile | warm) set -- $emu ;;
	download) set -- $http ;;
	seed | rclone) set -- $s3 ;;
	local) set -- 0 0 ;;
	esac
	conns=${1:-0} wire=${2:-0}
	"$PY" - "$log" "$stats" "$LINK" "$img" "$cfg" "$run" "$wire" "$conns" "$BOOT_OK" "$load1" >>"$RESULTS" <<'EOF'
import json, re, sys
log, stats, link, img, cfg, run, wire, conns, ok, load1 = sys.argv[1:11]
stats = json.loads(stats or "{}")
t = {}
status = None
disk = {}
for line in open(log, errors="replace"):
    m = re.match(r"\[\s*(\d+\.\d+)\] (.*)", line.rstrip("\n"))
    if not m:
        continue
    ts, text = float(m.group(1)), m.group(2)
    def first(key):
        t.setdefault(key, ts)
    if "gdroot: overlay-init" in text or "bench: init:" in text:
        first("init")
    if text.startswith("gdroot: root:") or "bench: root ready" in text:
        first("switch")
    if "GDROOT-READY" in text:
        first("ready")
    # (The serial getty may print its prompt on the same line.)
    if "BENCH-STATUS: " in text and status is None:
        try:
            status = json.loads(text.split("BENCH-STATUS: ", 1)[1])
        except ValueError:
            pass
    m2 = re.search(r"BENCH-DISK: (\S+) reads \d+ sectors (\d+)", text)
    if m2:
        disk[m2.group(1)] = int(m2.group(2)) * 512
# What the boot read: the loop devices (squashfs over FUSE, RAM or rclone);
# the virtio disk when the squashfs is on it (local; in warm it is the cache).
if cfg == "local":
    read = disk.get("vda", 0)
else:
    read = sum(v for k, v in disk.items() if k.startswith("loop"))
f = lambda k: ("%.2f" % t[k]) if k in t else ""
st = status or {}
g = lambda a, b: st.get(a, {}).get(b, "") if st else ""
reqs = sum(stats.get("requests", {}).values()) if cfg in ("cold", "profile", "warm") else stats.get("s3_requests", "")
sbytes = stats.get("bytes_sent", "") if cfg in ("cold", "profile", "warm") else ""
print("\t".join(str(x) for x in [link, img, cfg, run, f("ready"), f("init"), f("switch"),
      g("fetched", "requests"), g("fetched", "bytes"), reqs, sbytes, wire, conns,
      read if read else "", g("reads", "bytes"), "ok" if ok == "1" and "ready" in t else "failed", load1,
      g("prefetch", "total")]))
EOF
	# The emulator's requests by kind, for the warm boot's "only the manifest" check.
	if [ "$cfg" = warm ]; then
		echo "$stats" | "$PY" -c 'import json,sys; s = json.load(sys.stdin); print(json.dumps(s.get("requests", {})))' \
			>"$BCACHE/logs/$LINK-$img-warm-$run.requests.json" 2>/dev/null
	fi
	tail -n1 "$RESULTS" | awk -F'\t' '{printf "    ready %s s, fetched %s B in %s requests, wire %s B, read %s B, %s\n", $5, $9, $8, $12, $14, $16}' >&2
}

runs_done() { # IMAGE CONFIG
	awk -F'\t' -v l="$LINK" -v i="$1" -v c="$2" '$1 == l && $2 == i && $3 == c && $16 == "ok"' "$RESULTS" | wc -l
}
runs_failed() {
	awk -F'\t' -v l="$LINK" -v i="$1" -v c="$2" '$1 == l && $2 == i && $3 == c && $16 != "ok"' "$RESULTS" | wc -l
}

# bench_config IMAGE CONFIG UPTO: boot until UPTO good boots are recorded
# (giving up after RUNS + 1 failures). The untimed boots a configuration
# needs come first: a profile in the store (profile, warm), the cache disk
# filled (warm, once per image and run of this script), the tree in s3rver
# (seed, once).
declare -A WARM_READY
bench_config() {
	local img=$1 cfg=$2 upto=$3
	[ "$(runs_done "$img" "$cfg")" -ge "$upto" ] && return 0
	[ "$(runs_failed "$img" "$cfg")" -gt "$RUNS" ] && { note "$img/$cfg: too many failures, skipped"; return 0; }
	case $cfg in
	profile | warm)
		if ! profile_exists "$img"; then
			note "$img/$cfg: no profile in the store yet: one untimed boot makes it"
			boot_one "$img" cold prep
		fi
		;;
	esac
	[ "$cfg" = seed ] && bench_seed_upload "$img"
	if [ "$cfg" = warm ] && [ -z "${WARM_READY[$img]:-}" ]; then
		WARM_DISK=$TEST_TMP/warm-$img.raw
		rm -f "$WARM_DISK"
		truncate -s 2G "$WARM_DISK"
		note "$img/warm: one untimed boot fills the cache disk"
		boot_one "$img" warm prep
		WARM_READY[$img]=1
	fi
	[ "$cfg" = warm ] && WARM_DISK=$TEST_TMP/warm-$img.raw
	while [ "$(runs_done "$img" "$cfg")" -lt "$upto" ]; do
		[ "$(runs_failed "$img" "$cfg")" -gt "$RUNS" ] && { note "$img/$cfg: too many failures, giving up"; return 0; }
		[ "$cfg" = cold ] && profiles_clear "$img"
		boot_one "$img" "$cfg" "$(($(runs_done "$img" "$cfg") + $(runs_failed "$img" "$cfg") + 1))"
	done
}

# --- the report --------------------------------------------------------------
bench_report() {
	[ -n "$OUT" ] || return 0
	"$PY" "$TOP/tests/bench/boot-report.py" --results "$RESULTS" --link "$LINK" --out "$OUT" \
		--link-check "$BCACHE/link-$LINK.txt" --plot "$TOP/docs/img/boot-$LINK.png" \
		--sizes "$(for i in small kiosk; do [ -f "$BCACHE/$i.sqfs" ] && printf '%s=%s,' "$i" "$(stat -c %s "$BCACHE/$i.sqfs")"; done)" \
		--logs "$BCACHE/logs" >&2 || note "report failed"
}
