#!/bin/bash
# SPDX-License-Identifier: MIT
#!/bin/bash
# Description: the appliance boots Debian bookworm (systemd) from the Drive
# emulator in QEMU to multi-user.target; its marker unit prints
# `gdroot status` from the booted system (the fetcher survived switch_root
# and systemd's start), and boot-done saves a boot profile in the store.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib.sh"
requires_root
requires qemu-system-x86_64 mksquashfs debootstrap
vm_store_up
bash "$TOP/tests/vm/mkdebian.sh" "$TEST_TMP/debian" >/dev/null || fail "mkdebian"
vm_push "$TEST_TMP/debian"
vm_appliance
VM_TIMEOUT=300 vm_boot GDROOT-STATUS-DONE --fail-marker "BOOT FAILED" -- "gdroot.upper=zram:256M" || {
	vm_show_log 60
	fail "Debian did not reach multi-user.target with its marker"
}
grep -q 'GDROOT-READY' "$VM_LOG" || fail "no ready marker"
grep -q 'generation *1' "$VM_LOG" || { vm_show_log 30; fail "gdroot status did not show the generation"; }
grep -q 'fetched' "$VM_LOG" || fail "gdroot status did not show what was fetched"
"$GDROOT" -c "$VM_CONF" store ls profiles/ | grep -q 'profiles/0000000001' || fail "boot-done saved no profile"
grep -E 'Startup finished|GDROOT-READY' "$VM_LOG" | sed 's/^/  /'
echo ok
