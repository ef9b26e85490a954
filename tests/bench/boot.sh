#!/bin/bash
# SPDX-License-Identifier: MIT
# The boot benchmark (issue 7, `make bench`): boot the same Debian tree in
# QEMU from a store across an emulated WAN link, with gdroot and with what a
# user would pick instead, and time each boot from QEMU's start to
# multi-user.target (the marker unit's GDROOT-READY line on the serial
# console). Writes docs/benchmarks-boot.md (between the boot-bench
# markers) and docs/img/boot-LINK.png. A benchmark, not a test: it asserts
# nothing, it reports. Root; QEMU TCG; see --help.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/wan.sh"
. "$(dirname "$0")/boot-lib.sh"

usage() {
	cat <<'EOF'
Usage: tests/bench/boot.sh [OPTIONS]   (root; `make bench BENCH_ARGS="..."`)

Boots Debian bookworm (minbase + systemd; and a kiosk image with chromium
and fonts) in QEMU from a store across an emulated WAN link and times each
boot to multi-user.target, for each configuration:

  cold      gdroot, empty RAM cache, no boot profile in the store
  profile   gdroot, empty RAM cache, the previous boot's profile prefetched
  warm      gdroot, persistent cache on a local virtio disk (filled by one
            untimed boot first)
  local     the same squashfs on a local virtio-blk disk: the floor
  seed      the seed's approach: the tree unpacked into s3rver, mounted
            with s3fs in the initramfs as the lower layer
  download  download-first (dracut livenet): the whole squashfs into RAM
  rclone    rclone mount --vfs-cache-mode full of the image in s3rver

  --runs N          boots per configuration and image (default 3)
  --link PRESET     100m-40ms (default), 1g-2ms, 20m-100ms
  --only LIST       configurations, comma-separated (default: all seven)
  --image WHICH     small, kiosk or both (default both)
  --out FILE        the Markdown file to write (default
                    docs/benchmarks-boot.md; "" writes none)
  --results FILE    also append every boot's figures to this TSV
                    (default /var/tmp/gdroot-bench-boot/results-LINK.tsv)
  --fresh           start that TSV afresh (default: boots already in it,
                    from a run with the same link, count towards --runs,
                    so an interrupted run continues where it stopped)
  -h, --help        this text

Boots go round-robin (run 1 of every configuration, then run 2, ...).
Images and the s3fs upload are cached in /var/tmp/gdroot-bench-boot
(GDROOT_BENCH_BOOT); the first run builds them (debootstrap, apt,
mksquashfs, s3fs upload: about 15 minutes), later runs reuse them; the
full default run then takes about 70 minutes. Installs what it lacks with
apt-get (qemu-system-x86, s3fs, rclone, gnuplot-nox, fuse3,
squashfs-tools, debootstrap, curl).
EOF
}

RUNS=3 LINK=100m-40ms ONLY=cold,profile,warm,local,seed,download,rclone IMAGES=both
OUT=$TOP/docs/benchmarks-boot.md RESULTS= FRESH=0
while [ $# -gt 0 ]; do
	case $1 in
	--runs) RUNS=$2; shift ;;
	--link) LINK=$2; shift ;;
	--only) ONLY=$2; shift ;;
	--image) IMAGES=$2; shift ;;
	--out) OUT=$2; shift ;;
	--results) RESULTS=$2; shift ;;
	--fresh) FRESH=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "boot.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
case $IMAGES in both) IMAGES="small kiosk" ;; small | kiosk) ;; *) fail "--image small|kiosk|both" ;; esac
case $RUNS in '' | *[!0-9]* | 0) fail "--runs wants a positive number" ;; esac
for c in ${ONLY//,/ }; do
	case " $ALL_CONFIGS " in *" $c "*) ;; *) fail "unknown configuration '$c' ($ALL_CONFIGS)" ;; esac
done
read -r MBIT DELAY < <(wan_link "$LINK")
RESULTS=${RESULTS:-$BCACHE/results-$LINK.tsv}
requires_root
bench_deps
bench_build

# --- images ------------------------------------------------------------------
declare -A SQFS ROOTDIR
for img in $IMAGES; do
	SQFS[$img]=$(O=$O bash "$TOP/tests/bench/boot-image.sh" "$img") || fail "boot-image.sh $img"
	ROOTDIR[$img]=$BCACHE/$img-root
	note "image $img: ${SQFS[$img]} ($(stat -c %s "${SQFS[$img]}") bytes)"
done

# --- the far side of the link ------------------------------------------------
wan_ns_up
wan_emu_start --quiet
bench_store_up
bench_http_up
if want seed || want rclone; then bench_s3_up; fi
bench_link_check
bench_appliances

[ "$FRESH" = 1 ] && rm -f "$RESULTS"
[ -f "$RESULTS" ] || printf '%s\n' "$TSV_HEADER" >"$RESULTS"

# Round-robin: run 1 of every configuration, then run 2 of every one, ...,
# so a slow spell of the shared host hits every configuration alike.
for img in $IMAGES; do
	for ((r = 1; r <= RUNS; r++)); do
		for cfg in $ORDER; do
			want "$cfg" || continue
			bench_config "$img" "$cfg" "$r"
		done
		bench_report
	done
done
bench_report
note "done: $RESULTS${OUT:+, $OUT}"
