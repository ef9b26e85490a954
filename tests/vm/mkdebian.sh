#!/bin/bash
# SPDX-License-Identifier: MIT
# mkdebian.sh DIR: a Debian bookworm minbase root with systemd for the VM
# tests and the demo: systemd-sysv, udev and the libraries the gdroot
# command needs; gdroot itself in /usr/local/bin; a root account without a
# password on the serial console; and gdroot-ready.service, which once
# multi-user.target is reached prints GDROOT-READY and `gdroot status` on
# the console. The debootstrap result is cached in /var/tmp/gdroot-vm
# (GDROOT_VM_CACHE) and copied, so reruns take seconds.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$TOP/$O ;; esac
dest=$1
# squashfs-tools and e2fsprogs: gdroot commit makes layers and a mirror.
# (The cache's name changes with the package list.)
cache=${GDROOT_VM_CACHE:-/var/tmp/gdroot-vm}/debian-bookworm-2
pkgs=systemd-sysv,udev,libcurl4,libjansson4,libxml2,libfuse3-3,liburing2,libssl3,ca-certificates,squashfs-tools,e2fsprogs
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ ! -x "$cache/sbin/init" ]; then
	rm -rf "$cache.tmp"
	mkdir -p "$(dirname "$cache")"
	echo "mkdebian: debootstrap bookworm into $cache (about a minute)" >&2
	debootstrap --variant=minbase --include="$pkgs" bookworm "$cache.tmp" "$mirror" >"$cache.log" 2>&1 ||
		{ tail -20 "$cache.log" >&2; exit 1; }
	chroot "$cache.tmp" apt-get clean
	rm -rf "$cache.tmp"/var/lib/apt/lists/* "$cache.tmp"/var/cache/apt/*.bin
	mv "$cache.tmp" "$cache"
fi
rm -rf "$dest"
cp -a "$cache" "$dest"
install -m 755 "$O/gdroot" "$dest/usr/local/bin/gdroot"
for n in commit commitd reset; do ln -sf gdroot "$dest/usr/local/bin/gdroot-$n"; done
# The commit daemon's unit, installed but not enabled (kiosks run without).
install -m 644 "$TOP/config/gdroot-commitd.service" "$dest/etc/systemd/system/gdroot-commitd.service"
chroot "$dest" passwd -d root >/dev/null
echo gdroot-kiosk >"$dest/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 gdroot-kiosk\n' >"$dest/etc/hosts"
# The network is already up (the init did it, and the fetcher needs it);
# nothing in this minimal root reconfigures it.
cat >"$dest/etc/systemd/system/gdroot-ready.service" <<'UNIT'
[Unit]
Description=Print the gdroot ready marker and status on the console
After=multi-user.target

[Service]
Type=oneshot
StandardOutput=tty
TTYPath=/dev/ttyS0
ExecStart=/bin/sh -c 'echo "GDROOT-READY: multi-user.target reached"; /usr/local/bin/gdroot status; /usr/local/bin/gdroot boot-done; echo GDROOT-STATUS-DONE'

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/gdroot-ready.service "$dest/etc/systemd/system/multi-user.target.wants/gdroot-ready.service"
# The serial getty must not hang up ttyS0 while that unit writes to it
# (ordering the unit before the getty would be a cycle: getty.target is
# part of multi-user.target).
mkdir -p "$dest/etc/systemd/system/serial-getty@ttyS0.service.d"
cat >"$dest/etc/systemd/system/serial-getty@ttyS0.service.d/gdroot.conf" <<'DROPIN'
[Service]
TTYVHangup=no
TTYReset=no
DROPIN
# Faster, quieter boots in a VM.
ln -sf /dev/null "$dest/etc/systemd/system/systemd-timesyncd.service" 2>/dev/null || true
echo "$dest"
