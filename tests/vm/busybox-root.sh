#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: the appliance boots a small busybox root from the Drive
# emulator in QEMU: overlay-init brings up the network, starts the fetcher,
# loop-mounts the layer, makes the zram upper, mounts the overlay and
# switch_roots; the root's init prints a marker, shows that it runs on the
# overlay with the fetcher alive, writes a file, and powers off.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib.sh"
requires_root
requires qemu-system-x86_64 mksquashfs
[ -f "$TOP/appliance/build.sh" ] || skip "no appliance builder"

vm_store_up
R=$TEST_TMP/rootfs
mkdir -p "$R"/{bin,sbin,proc,sys,dev,run,tmp,etc}
vm_appliance
bb=$(vm_busybox)
cp "$bb" "$R/bin/busybox"
for a in sh echo cat mount grep ls poweroff sync pidof sleep; do ln -sf busybox "$R/bin/$a"; done
cat >"$R/sbin/init" <<'INIT'
#!/bin/sh
echo "busybox-root: init running"
echo "busybox-root: / is $(grep ' / ' /proc/mounts | cut -d' ' -f3)"
pidof gdroot-fetcher >/dev/null || pidof @gdroot-fetcher >/dev/null && echo "busybox-root: fetcher alive"
ls /run/gdroot/layers
echo written >/tmp-test-file && cat /tmp-test-file >/dev/null && echo "busybox-root: write ok"
echo GDROOT-BUSYBOX-ROOT-OK
sync
poweroff -f
INIT
chmod 755 "$R/sbin/init"
vm_push "$R"
vm_boot GDROOT-BUSYBOX-ROOT-OK --fail-marker "BOOT FAILED" -- "gdroot.upper=zram:64M" || {
	vm_show_log
	fail "the busybox root did not boot to its marker"
}
grep -q 'busybox-root: / is overlay' "$VM_LOG" || { vm_show_log; fail "/ is not the overlay"; }
grep -q 'busybox-root: write ok' "$VM_LOG" || { vm_show_log; fail "could not write to the root"; }
grep -q 'layer-0' "$VM_LOG" || { vm_show_log; fail "the fetcher's layer files are not visible after switch_root"; }
echo ok
