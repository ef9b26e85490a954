#!/bin/bash
# SPDX-License-Identifier: MIT
# boot-image.sh small|kiosk: the root trees and squashfs images the boot
# benchmark (tests/bench/boot.sh) boots, made once and cached under
# $GDROOT_BENCH_BOOT (default /var/tmp/gdroot-bench-boot):
#   small-root/, small.sqfs   Debian bookworm minbase + systemd, from
#                             tests/vm/mkdebian.sh (which caches the
#                             debootstrap result itself)
#   kiosk-root/, kiosk.sqfs   the same plus chromium, the cage kiosk
#                             compositor and the Noto fonts (>= 1 GB as
#                             squashfs); the boot to multi-user.target
#                             reads only a small part of it
# Both get a marker unit that prints, once multi-user.target is reached,
# "GDROOT-READY", then what the benchmark measures in the guest (the
# fetcher's status as JSON when there is a fetcher, /sys/block/*/stat of
# the loop and virtio disks), sends `gdroot boot-done` and prints
# "GDROOT-STATUS-DONE". The squashfs is made by `gdroot push --keep-image`
# into a folder store (lz4, 128 KiB blocks: the very image a push makes),
# so every configuration boots the same bytes. Prints the image's path.
# REBUILD=1 makes the image again (not the debootstrap or apt cache).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$TOP/$O ;; esac
CACHE=${GDROOT_BENCH_BOOT:-/var/tmp/gdroot-bench-boot}
KIND=${1:?usage: boot-image.sh small|kiosk}
mkdir -p "$CACHE"
say() { echo "boot-image: $*" >&2; }

# The measuring marker unit, replacing mkdebian.sh's (same name, same
# first line).
bench_unit() { # ROOT: 0 if the unit was (re)written, 1 if it was current
	local root=$1 f changed=1
	bench_unit_files "$root.unit"
	for f in usr/local/sbin/gdroot-bench-report etc/systemd/system/gdroot-ready.service; do
		cmp -s "$root.unit/$f" "$root/$f" && continue
		install -D -m "$(stat -c %a "$root.unit/$f")" "$root.unit/$f" "$root/$f"
		changed=0
	done
	rm -rf "$root.unit"
	return $changed
}
bench_unit_files() { # DIR
	local root=$1
	mkdir -p "$root/usr/local/sbin" "$root/etc/systemd/system"
	cat >"$root/usr/local/sbin/gdroot-bench-report" <<'EOF'
#!/bin/sh
# The boot benchmark's report on the console (tests/bench/boot-image.sh).
echo "GDROOT-READY: multi-user.target reached"
echo "BENCH-UPTIME: $(cat /proc/uptime)"
if [ -S /run/gdroot/fetcher.sock ]; then
	echo "BENCH-STATUS: $(/usr/local/bin/gdroot status --json 2>&1 | tr -d '\n')"
	# The warm-up boot waits for the prefetch, so the cache holds the profile.
	if grep -q bench.wait_prefetch /proc/cmdline; then
		i=0
		while [ $i -lt 600 ]; do
			/usr/local/bin/gdroot status --json 2>/dev/null | tr -d ' \n' |
				grep -q '"state":"\(done\|idle\|none\|finished\)"' && break
			sleep 0.2
			i=$((i + 1))
		done
		echo "BENCH-STATUS-AFTER-PREFETCH: $(/usr/local/bin/gdroot status --json 2>&1 | tr -d '\n')"
	fi
	/usr/local/bin/gdroot boot-done >/dev/null 2>&1 && echo "BENCH-BOOT-DONE"
fi
for d in /sys/block/loop* /sys/block/vd*; do
	[ -r "$d/stat" ] || continue
	set -- $(cat "$d/stat")
	[ "$1" -gt 0 ] && echo "BENCH-DISK: ${d##*/} reads $1 sectors $3 read_ahead_kb $(cat "$d/queue/read_ahead_kb")"
done
for m in $(awk '$3 ~ /^fuse/ {print $2}' /proc/mounts); do echo "BENCH-FUSE: $m"; done
sync
echo GDROOT-STATUS-DONE
EOF
	chmod 755 "$root/usr/local/sbin/gdroot-bench-report"
	cat >"$root/etc/systemd/system/gdroot-ready.service" <<'UNIT'
[Unit]
Description=Boot benchmark: ready marker and figures on the console
After=multi-user.target

[Service]
Type=oneshot
StandardOutput=tty
TTYPath=/dev/ttyS0
ExecStart=/usr/local/sbin/gdroot-bench-report

[Install]
WantedBy=multi-user.target
UNIT
}

# Push ROOT to a throw-away folder store, keeping the image as OUT.
make_sqfs() { # ROOT OUT
	local root=$1 out=$2 tmp
	tmp=$(mktemp -d /var/tmp/gdroot-bench-push.XXXXXX)
	mkdir -p "$tmp/store"
	"$O/gdroot" keygen "$tmp/key" >/dev/null
	say "push $root -> $out"
	"$O/gdroot" -q -s "file://$tmp/store" -k "$tmp/key.key" push --work "$tmp" --keep-image "$out.tmp" "$root" \
		>"$tmp/push.log" 2>&1 || { tail -n 20 "$tmp/push.log" >&2; rm -rf "$tmp"; exit 1; }
	rm -rf "$tmp"
	mv -f "$out.tmp" "$out"
}

# A chroot with /proc, /sys and /dev for apt; undone on exit.
CHROOT_MOUNTS=()
chroot_undo() {
	local i
	for ((i = ${#CHROOT_MOUNTS[@]} - 1; i >= 0; i--)); do
		umount "${CHROOT_MOUNTS[i]}" 2>/dev/null || umount -l "${CHROOT_MOUNTS[i]}" 2>/dev/null || true
	done
	CHROOT_MOUNTS=()
}
trap chroot_undo EXIT
chroot_up() { # ROOT
	local m
	for m in proc sys dev dev/pts; do
		case $m in
		proc) mount -t proc proc "$1/proc" ;;
		sys) mount -t sysfs sysfs "$1/sys" ;;
		dev) mount --bind /dev "$1/dev" ;;
		dev/pts) mount -t devpts devpts "$1/dev/pts" ;;
		esac
		CHROOT_MOUNTS+=("$1/$m")
	done
}

small() {
	if [ ! -f "$CACHE/small-root/usr/local/sbin/gdroot-bench-report" ]; then
		say "small root from tests/vm/mkdebian.sh"
		rm -rf "$CACHE/small-root.tmp"
		O=$O bash "$TOP/tests/vm/mkdebian.sh" "$CACHE/small-root.tmp" >/dev/null
		bench_unit "$CACHE/small-root.tmp" || true
		rm -rf "$CACHE/small-root"
		mv "$CACHE/small-root.tmp" "$CACHE/small-root"
		rm -f "$CACHE/small.sqfs"
	fi
	bench_unit "$CACHE/small-root" && { say "marker unit updated"; rm -f "$CACHE/small.sqfs"; }
	if [ ! -f "$CACHE/small.sqfs" ] || [ "${REBUILD:-0}" = 1 ]; then
		make_sqfs "$CACHE/small-root" "$CACHE/small.sqfs"
	fi
	echo "$CACHE/small.sqfs"
}

KIOSK_PKGS="chromium chromium-sandbox cage fonts-noto fonts-noto-core fonts-noto-extra fonts-noto-ui-core
fonts-noto-ui-extra fonts-noto-mono fonts-noto-cjk fonts-noto-cjk-extra fonts-noto-color-emoji"

kiosk() {
	small >/dev/null
	if [ ! -f "$CACHE/kiosk-root/.bench-kiosk-done" ]; then
		say "kiosk root: small root + $(echo $KIOSK_PKGS) (apt in a chroot, a few minutes)"
		rm -rf "$CACHE/kiosk-root.tmp"
		cp -a "$CACHE/small-root" "$CACHE/kiosk-root.tmp"
		local r=$CACHE/kiosk-root.tmp
		cp /etc/resolv.conf "$r/etc/resolv.conf"
		chroot_up "$r"
		# Keep downloaded debs out of the tree, but reuse them on a rebuild.
		mkdir -p "$CACHE/kiosk-debs/partial"
		mount --bind "$CACHE/kiosk-debs" "$r/var/cache/apt/archives"
		CHROOT_MOUNTS+=("$r/var/cache/apt/archives")
		chroot "$r" apt-get update -qq >"$CACHE/kiosk-apt.log" 2>&1
		DEBIAN_FRONTEND=noninteractive chroot "$r" apt-get install -y -q --no-install-recommends $KIOSK_PKGS \
			>>"$CACHE/kiosk-apt.log" 2>&1 || { tail -n 20 "$CACHE/kiosk-apt.log" >&2; exit 1; }
		chroot_undo
		rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin
		: >"$r/etc/resolv.conf"
		# A kiosk user and a unit that would start the browser on a
		# display; the VM has none, so it is installed, not enabled: the
		# boot reads systemd's part of the image, not chromium's.
		chroot "$r" useradd -m -s /bin/sh kiosk 2>/dev/null || true
		cat >"$r/etc/systemd/system/kiosk.service" <<'UNIT'
[Unit]
Description=Kiosk browser (cage + chromium; needs a display)
After=systemd-user-sessions.service

[Service]
User=kiosk
PAMName=login
TTYPath=/dev/tty1
ExecStart=/usr/bin/cage -- /usr/bin/chromium --kiosk --noerrdialogs https://example.org/

[Install]
WantedBy=graphical.target
UNIT
		touch "$r/.bench-kiosk-done"
		rm -rf "$CACHE/kiosk-root"
		mv "$r" "$CACHE/kiosk-root"
		rm -f "$CACHE/kiosk.sqfs"
	fi
	bench_unit "$CACHE/kiosk-root" && { say "marker unit updated"; rm -f "$CACHE/kiosk.sqfs"; }
	if [ ! -f "$CACHE/kiosk.sqfs" ] || [ "${REBUILD:-0}" = 1 ]; then
		make_sqfs "$CACHE/kiosk-root" "$CACHE/kiosk.sqfs"
	fi
	echo "$CACHE/kiosk.sqfs"
}

case $KIND in
small) small ;;
kiosk) kiosk ;;
*) echo "usage: boot-image.sh small|kiosk" >&2; exit 2 ;;
esac
