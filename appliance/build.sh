#!/bin/bash
# SPDX-License-Identifier: MIT
# Build the gdroot appliance: Debian bookworm's kernel (vmlinuz) plus a
# busybox initramfs (initrd.img) holding gdroot-fetcher and gdroot with
# every shared library they load, the kernel modules of modules.list with
# their dependencies, CA certificates, the manifest-signing public key, the
# configuration and overlay-init/init as /init. The kernel and busybox
# packages are downloaded from Debian's mirror and unpacked into a cache
# (never installed on the host); reruns reuse them. Same inputs, same bytes.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$TOP/$O ;; esac

usage() {
	cat <<EOF
Usage: appliance/build.sh [OPTIONS]

Build OUT/vmlinuz and OUT/initrd.img (run \`make\` first: it packs
$O/gdroot-fetcher and $O/gdroot).

  --out DIR            output folder (default build/appliance)
  --config FILE        /etc/gdroot/gdroot.conf (default config/appliance.conf
                       if it exists, else a file with only a comment)
  --public-key FILE    /etc/gdroot/signing.pub (manifest signing key)
  --credentials FILE   /etc/gdroot/credentials.json (mode 0600)
  --signing-key FILE   /etc/gdroot/signing.key (mode 0600), for an admin's
                       appliance whose sessions may gdroot-commit; a kiosk
                       appliance should not carry it
  --ca-bundle FILE     /etc/ssl/certs/ca-certificates.crt
                       (default: the host's)
  --init FILE          /init (default overlay-init/init)
  --extra FILE:PATH    also put FILE at PATH (repeatable; applied last, so
                       it may replace anything, /init included)
  --modules FILE       module list (default appliance/modules.list)
  --gzip               compress with gzip even if zstd is present
  --keep-root          keep the unpacked tree in OUT/root (for a look)
  --fast               compress fast, not small (zstd -3: +25% size)
  -h, --help           this text

Environment: O (build folder, default build), KERNEL_PKG (a Debian
linux-image package name instead of the one linux-image-amd64 depends on).
EOF
}

OUT=$O/appliance
CONFIG=
PUBKEY=
CREDS=
SIGNKEY=
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
INIT=$TOP/overlay-init/init
MODLIST=$TOP/appliance/modules.list
COMPRESS=zstd
FAST=0
KEEP_ROOT=0
EXTRAS=()
while [ $# -gt 0 ]; do
	case $1 in
	--out) OUT=$2; shift ;;
	--config) CONFIG=$2; shift ;;
	--public-key) PUBKEY=$2; shift ;;
	--credentials) CREDS=$2; shift ;;
	--signing-key) SIGNKEY=$2; shift ;;
	--ca-bundle) CA_BUNDLE=$2; shift ;;
	--init) INIT=$2; shift ;;
	--extra) EXTRAS+=("$2"); shift ;;
	--modules) MODLIST=$2; shift ;;
	--gzip) COMPRESS=gzip ;;
	--fast) FAST=1 ;;
	--keep-root) KEEP_ROOT=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "build.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

die() { echo "build.sh: $*" >&2; exit 1; }
note() { echo "  appliance: $*"; }
for c in apt-get apt-cache dpkg-deb depmod modprobe cpio ldd; do
	command -v "$c" >/dev/null 2>&1 || die "needs $c (make deps installs it)"
done
[ "$COMPRESS" = zstd ] && ! command -v zstd >/dev/null 2>&1 && COMPRESS=gzip
case $COMPRESS/$FAST in zstd/0) LEVEL=19 ;; zstd/1) LEVEL=3 ;; gzip/0) LEVEL=9 ;; gzip/1) LEVEL=1 ;; esac
for f in "$O/gdroot-fetcher" "$O/gdroot"; do
	[ -x "$f" ] || die "$f is missing: run make first"
done
[ -z "$CONFIG" ] && [ -f "$TOP/config/appliance.conf" ] && CONFIG=$TOP/config/appliance.conf
for f in "$CONFIG" "$PUBKEY" "$CREDS" "$SIGNKEY" "$CA_BUNDLE" "$MODLIST"; do
	[ -z "$f" ] || [ -r "$f" ] || die "cannot read $f"
done

# Inputs as absolute paths: the tree is built from inside it.
abs() { [ -z "$1" ] || realpath -e -- "$1"; }
CONFIG=$(abs "$CONFIG") PUBKEY=$(abs "$PUBKEY") CREDS=$(abs "$CREDS") SIGNKEY=$(abs "$SIGNKEY")
CA_BUNDLE=$(abs "$CA_BUNDLE") MODLIST=$(abs "$MODLIST")
for i in "${!EXTRAS[@]}"; do
	e=${EXTRAS[i]} src=${EXTRAS[i]%%:*}
	[ "$src" != "$e" ] && [ -n "${e#*:}" ] || die "--extra wants FILE:PATH, got $e"
	[ -r "$src" ] || die "--extra: cannot read $src"
	EXTRAS[i]=$(realpath -e -- "$src"):${e#*:}
done
[ -e "$INIT" ] && INIT=$(realpath -e -- "$INIT")
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# Downloads and unpacked packages, shared by every build (APPLIANCE_CACHE).
CACHE=${APPLIANCE_CACHE:-$O/appliance-cache}
mkdir -p "$CACHE/debs"

# --- Debian packages, downloaded and unpacked once -------------------------

APT_UPDATED=0
apt_update_once() {
	[ $APT_UPDATED = 1 ] && return 0
	note "apt-get update (package lists missing or stale)"
	apt-get update -qq >/dev/null || die "apt-get update failed"
	APT_UPDATED=1
}

# The deb of PKG in the cache, downloading the candidate version if the
# cache has none. Prints its path.
fetch_deb() {
	local pkg=$1 deb
	deb=$(ls -1 "$CACHE/debs/${pkg}_"*.deb 2>/dev/null | sort -V | tail -n1 || true)
	if [ -z "$deb" ]; then
		note "downloading $pkg from the Debian mirror" >&2
		if ! (cd "$CACHE/debs" && apt-get download -qq "$pkg" >/dev/null 2>&1); then
			apt_update_once >&2
			(cd "$CACHE/debs" && apt-get download -qq "$pkg" >/dev/null 2>&1) ||
				die "apt-get download $pkg failed"
		fi
		deb=$(ls -1 "$CACHE/debs/${pkg}_"*.deb | sort -V | tail -n1)
	fi
	echo "$deb"
}

# Unpack the folders KEEP... of DEB into DIR unless DIR already holds that
# deb. The rest is dropped: the Makefile reads every *.d under build/, and
# packages ship folders such as etc/kernel/postinst.d.
unpack_deb() {
	local deb=$1 dir=$2 k
	shift 2
	if [ -f "$dir/.unpacked-from" ] && [ "$(cat "$dir/.unpacked-from")" = "$(basename "$deb")" ]; then
		return 0
	fi
	rm -rf "$dir" "$dir.tmp"
	mkdir -p "$dir.tmp" "$dir"
	dpkg-deb -x "$deb" "$dir.tmp"
	for k in "$@"; do
		mkdir -p "$dir/$(dirname "$k")"
		mv "$dir.tmp/$k" "$dir/$k"
	done
	rm -rf "$dir.tmp"
	basename "$deb" >"$dir/.unpacked-from"
	return 0
}

if [ -z "${KERNEL_PKG:-}" ]; then
	KERNEL_PKG=$(apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1.*-amd64$/ { print $2; exit }')
	if [ -z "$KERNEL_PKG" ]; then
		apt_update_once
		KERNEL_PKG=$(apt-cache depends linux-image-amd64 |
			awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1.*-amd64$/ { print $2; exit }')
	fi
	[ -n "$KERNEL_PKG" ] || die "apt-cache depends linux-image-amd64 names no linux-image-6.1*-amd64"
fi
KROOT=$CACHE/kernel-root
deb=$(fetch_deb "$KERNEL_PKG")
unpack_deb "$deb" "$KROOT" boot lib/modules
KVER=$(ls -1 "$KROOT/lib/modules" | head -n1)
[ -n "$KVER" ] && [ -f "$KROOT/boot/vmlinuz-$KVER" ] || die "$KERNEL_PKG holds no vmlinuz"
[ -f "$KROOT/lib/modules/$KVER/modules.dep" ] || depmod -b "$KROOT" "$KVER"

BBROOT=$CACHE/busybox-root
deb=$(fetch_deb busybox-static)
unpack_deb "$deb" "$BBROOT" bin/busybox
BUSYBOX=$BBROOT/bin/busybox
[ -x "$BUSYBOX" ] || die "busybox-static holds no /bin/busybox"

# --- the tree ----------------------------------------------------------------

ROOT=$OUT/root
rm -rf "$ROOT"
mkdir -p "$ROOT"
cd "$ROOT"
mkdir -p bin sbin usr/bin usr/sbin etc/gdroot etc/ssl/certs lib64 \
	lib/x86_64-linux-gnu lib/modules dev proc sys run mnt tmp root \
	usr/share/udhcpc var
chmod 1777 tmp
chmod 0700 root
ln -s ../run var/run
ln -s /proc/self/mounts etc/mtab

# Device nodes the kernel needs before /init can mount devtmpfs: without
# /dev/console, /init starts with no stdin/stdout. Only root can mknod.
if [ "$(id -u)" = 0 ]; then
	mknod -m 600 dev/console c 5 1
	mknod -m 666 dev/null c 1 3
else
	note "not root: no /dev/console in the initramfs (init must mount devtmpfs first)"
fi

# Copy a host file to the same path in the tree (or DST), resolving
# symlinks: a library lands under its soname, as ldd names it.
copy_host_file() {
	local src=$1 dst=${2:-$1}
	[ -e "$ROOT$dst" ] && return 0
	mkdir -p "$ROOT$(dirname "$dst")"
	cp -L --preserve=mode "$src" "$ROOT$dst"
}

# Every shared library ELF needs (ldd is already transitive), the dynamic
# loader included, at the paths the loader will search.
copy_libs() {
	local elf=$1 lib
	if ldd "$elf" 2>&1 | grep -q 'not found'; then
		die "$elf needs a library the host lacks: $(ldd "$elf" | grep 'not found' | tr -s ' \t' ' ')"
	fi
	for lib in $(ldd "$elf" 2>/dev/null | awk '
		$2 == "=>" && $3 ~ /^\// { print $3 }
		$1 ~ /^\// { print $1 }'); do
		copy_host_file "$lib"
	done
}

# A host program with its libraries: copy_prog SRC DST.
copy_prog() {
	local src=$1 dst=$2
	mkdir -p "$ROOT$(dirname "$dst")"
	if command -v strip >/dev/null 2>&1; then
		strip --strip-unneeded -o "$ROOT$dst" "$src"
	else
		cp -L "$src" "$ROOT$dst"
	fi
	chmod 0755 "$ROOT$dst"
	copy_libs "$src"
}

# gdroot programs, stripped (the build keeps debug info).
copy_prog "$O/gdroot-fetcher" /usr/bin/gdroot-fetcher
copy_prog "$O/gdroot" /usr/bin/gdroot

# What glibc loads at run time, not named by ldd: the NSS modules behind
# getaddrinfo (libcurl's resolver) and their configuration.
for lib in libnss_files.so.2 libnss_dns.so.2 libresolv.so.2; do
	[ -e "/lib/x86_64-linux-gnu/$lib" ] && copy_host_file "/lib/x86_64-linux-gnu/$lib"
done
cat >etc/nsswitch.conf <<'EOF'
passwd: files
group: files
shadow: files
hosts: files dns
networks: files
protocols: files
services: files
EOF
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >etc/hosts
echo gdroot >etc/hostname
# OpenSSL reads openssl.cnf when present (optional).
[ -f /etc/ssl/openssl.cnf ] && cp /etc/ssl/openssl.cnf etc/ssl/openssl.cnf
mkdir -p usr/lib/ssl
ln -s /etc/ssl/certs usr/lib/ssl/certs
ln -s /etc/ssl/openssl.cnf usr/lib/ssl/openssl.cnf

# Host tools busybox lacks: mkfs.ext4 (busybox mke2fs makes only ext2) for
# the zram upper layer, and util-linux losetup (--direct-io, --sizelimit).
if [ -x /sbin/mke2fs ]; then
	copy_prog /sbin/mke2fs /usr/sbin/mke2fs
	ln -s mke2fs usr/sbin/mkfs.ext4
	[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf etc/mke2fs.conf
fi
[ -x /sbin/losetup ] && copy_prog /sbin/losetup /usr/sbin/losetup

# busybox and a symlink per applet (an existing file wins).
cp "$BUSYBOX" bin/busybox
chmod 0755 bin/busybox
for applet in $("$BUSYBOX" --list-full); do
	[ -e "$applet" ] || [ -L "$applet" ] && continue
	mkdir -p "$(dirname "$applet")"
	ln -s /bin/busybox "$applet"
done

# udhcpc's event script (busybox ships none); udhcpc runs it by default.
cat >usr/share/udhcpc/default.script <<'EOF'
#!/bin/sh
# udhcpc event script: configure $interface from the lease with busybox ip,
# write /etc/resolv.conf and the offered NTP servers to /etc/ntp-servers.
case $1 in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound | renew)
	ip -4 addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
	[ -n "${mtu:-}" ] && ip link set "$interface" mtu "$mtu"
	if [ -n "${router:-}" ]; then
		while ip route del default dev "$interface" 2>/dev/null; do :; done
		for r in $router; do
			ip route add default via "$r" dev "$interface" && break
		done
	fi
	: >/etc/resolv.conf.tmp
	[ -n "${domain:-}" ] && echo "search $domain" >>/etc/resolv.conf.tmp
	for d in ${dns:-}; do echo "nameserver $d" >>/etc/resolv.conf.tmp; done
	mv /etc/resolv.conf.tmp /etc/resolv.conf
	if [ -n "${ntpsrv:-}" ]; then
		for s in $ntpsrv; do echo "$s"; done >/etc/ntp-servers
	fi
	;;
leasefail | nak)
	;;
esac
exit 0
EOF
chmod 0755 usr/share/udhcpc/default.script
# Debian's busybox looks for it in /etc/udhcpc.
mkdir -p etc/udhcpc
ln -s /usr/share/udhcpc/default.script etc/udhcpc/default.script

printf 'root:x:0:0:root:/root:/bin/sh\n' >etc/passwd
printf 'root:x:0:\n' >etc/group
: >etc/resolv.conf

# Configuration, keys, certificates.
if [ -n "$CONFIG" ]; then
	cp "$CONFIG" etc/gdroot/gdroot.conf
else
	echo "# gdroot appliance configuration: see config/gdroot.conf.example" >etc/gdroot/gdroot.conf
fi
chmod 0644 etc/gdroot/gdroot.conf
# What the init prints, and a lower bound for the clock (the source's
# commit time, or SOURCE_DATE_EPOCH: not the build time, which would make
# every build differ).
echo "$("$O/gdroot" --version 2>/dev/null | head -n1) ($(git -C "$TOP" describe --always --dirty 2>/dev/null || echo unknown))" >etc/gdroot/version
echo "${SOURCE_DATE_EPOCH:-$(git -C "$TOP" log -1 --format=%ct 2>/dev/null || echo 0)}" >etc/gdroot/build-epoch
if [ -n "$PUBKEY" ]; then
	cp "$PUBKEY" etc/gdroot/signing.pub
	chmod 0644 etc/gdroot/signing.pub
fi
if [ -n "$CREDS" ]; then
	cp "$CREDS" etc/gdroot/credentials.json
	chmod 0600 etc/gdroot/credentials.json
fi
if [ -n "$SIGNKEY" ]; then
	cp "$SIGNKEY" etc/gdroot/signing.key
	chmod 0600 etc/gdroot/signing.key
	grep -q '^[[:space:]]*signing_key[[:space:]]*=' etc/gdroot/gdroot.conf ||
		echo "signing_key = /etc/gdroot/signing.key" >>etc/gdroot/gdroot.conf
fi
chmod 0755 etc/gdroot
cp -L "$CA_BUNDLE" etc/ssl/certs/ca-certificates.crt
chmod 0644 etc/ssl/certs/ca-certificates.crt

# /init.
if [ -f "$INIT" ]; then
	cp "$INIT" init
else
	note "no $INIT: /init is a rescue shell"
	cat >init <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "gdroot appliance: no overlay-init/init was packed; rescue shell"
exec setsid cttyhack sh
EOF
fi
chmod 0755 init

# --- kernel modules --------------------------------------------------------

MODDIR=lib/modules/$KVER
mkdir -p "$MODDIR"
for f in modules.order modules.builtin modules.builtin.modinfo; do
	[ -f "$KROOT/$MODDIR/$f" ] && cp "$KROOT/$MODDIR/$f" "$MODDIR/$f"
done
: >"$OUT/load-order.tmp"
while read -r mod _; do
	case $mod in '' | '#'*) continue ;; esac
	optional=0
	case $mod in '?'*) optional=1; mod=${mod#?} ;; esac
	if ! deps=$(modprobe -d "$KROOT" -S "$KVER" --show-depends "$mod" 2>&1); then
		[ $optional = 1 ] && { note "module $mod: not in $KVER, skipped"; continue; }
		die "module $mod: $deps"
	fi
	while read -r kind path _; do
		case $kind in
		insmod) echo "${path#"$KROOT"}" >>"$OUT/load-order.tmp" ;;
		builtin) ;;
		*) die "module $mod: unexpected modprobe output: $kind $path" ;;
		esac
	done <<<"$deps"
done <"$MODLIST"
: >lib/modules/load-order
while read -r path; do
	grep -qxF "${path%.xz}" lib/modules/load-order && continue
	grep -qxF "${path%.zst}" lib/modules/load-order && continue
	mkdir -p "$ROOT$(dirname "$path")"
	case $path in
	*.ko.xz) xz -dc "$KROOT$path" >"$ROOT${path%.xz}"; path=${path%.xz} ;;
	*.ko.zst) zstd -qdc "$KROOT$path" >"$ROOT${path%.zst}"; path=${path%.zst} ;;
	*) cp "$KROOT$path" "$ROOT$path" ;;
	esac
	echo "$path" >>lib/modules/load-order
done <"$OUT/load-order.tmp"
rm -f "$OUT/load-order.tmp"
depmod -b "$ROOT" "$KVER"

# --- extras, then the archive ---------------------------------------------

for e in "${EXTRAS[@]}"; do
	src=${e%%:*} dst=/${e#*:}
	dst=/${dst##/}
	mkdir -p "$ROOT$(dirname "$dst")"
	rm -f "$ROOT$dst"
	cp -L --preserve=mode "$src" "$ROOT$dst"
done

# Fixed times, sorted names, owner root, renumbered inodes: same inputs,
# same bytes.
find . -exec touch -h -d @0 {} +
INITRD=$OUT/initrd.img
find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible >"$OUT/initrd.cpio"
# The archive is reproducible, so an unchanged one keeps its compressed
# form (compression is most of a rerun's time).
stamp="$COMPRESS $LEVEL $(sha256sum <"$OUT/initrd.cpio" | cut -d' ' -f1)"
if [ -f "$INITRD" ] && [ -f "$OUT/initrd.stamp" ] && [ "$(cat "$OUT/initrd.stamp")" = "$stamp" ]; then
	note "initramfs unchanged"
else
	case $COMPRESS in
	zstd) zstd -q -f "-$LEVEL" -T0 "$OUT/initrd.cpio" -o "$INITRD.tmp" ;;
	gzip) gzip "-$LEVEL" -n -c "$OUT/initrd.cpio" >"$INITRD.tmp" ;;
	esac
	mv -f "$INITRD.tmp" "$INITRD"
	echo "$stamp" >"$OUT/initrd.stamp"
fi
cp "$KROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz.tmp" && mv -f "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
echo "$KVER" >"$OUT/kernel-version"

# --- sizes -----------------------------------------------------------------

kib() { du -skx --apparent-size "$@" 2>/dev/null | awk '{ s += $1 } END { printf "%6d KiB", s }'; }
libs_of() { ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'; }
fetcher_libs=$(cd "$ROOT" && for l in $(libs_of "$O/gdroot-fetcher"); do echo ".$l"; done | sort -u)
biggest=$(cd "$ROOT" && find lib lib64 -name '*.so*' -type f -printf '%s %p\n' | sort -rn | head -n3 |
	awk '{ printf "%s %d KiB, ", $2, $1 / 1024 }')
echo "appliance: $OUT (kernel $KVER, $(wc -l <"$ROOT/lib/modules/load-order") modules, $COMPRESS)"
echo "  vmlinuz            $(kib "$OUT/vmlinuz")"
echo "  initrd.img         $(kib "$INITRD")  (unpacked $(kib "$OUT/initrd.cpio"))"
echo "  unpacked parts:"
echo "    gdroot-fetcher   $(kib "$ROOT/usr/bin/gdroot-fetcher")"
echo "    gdroot           $(kib "$ROOT/usr/bin/gdroot")"
echo "    fetcher's libs   $(cd "$ROOT" && kib $fetcher_libs)  (biggest: ${biggest%, })"
echo "    all libs         $(kib "$ROOT/lib" --exclude=modules "$ROOT/lib64")"
echo "    modules          $(kib "$ROOT/lib/modules")"
echo "    busybox          $(kib "$ROOT/bin/busybox")"
echo "    mke2fs, losetup  $(kib "$ROOT/usr/sbin/mke2fs" "$ROOT/usr/sbin/losetup")"
echo "    CA bundle        $(kib "$ROOT/etc/ssl/certs/ca-certificates.crt")"
rm -f "$OUT/initrd.cpio"
cd "$OUT"
[ $KEEP_ROOT = 1 ] || rm -rf "$ROOT"
