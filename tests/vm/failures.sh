#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: boot failures end with a clear console message and no hang:
# a wrong store URL, a manifest signed by another key, and the store down
# at boot each print "BOOT FAILED" with what to check, then power off
# (gdroot.on_failure=poweroff), never a kernel panic.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib.sh"
requires_root
requires qemu-system-x86_64 mksquashfs
vm_store_up
R=$TEST_TMP/rootfs
mkdir -p "$R/sbin"
printf '#!/bin/sh\necho should-not-run\n' >"$R/sbin/init"
chmod 755 "$R/sbin/init"
vm_push "$R"
vm_appliance
expect_failure() { # name what-to-grep kernel-args...
	local name=$1 want=$2
	shift 2
	VM_TIMEOUT=150 vm_boot "gdroot: powering off" -- gdroot.on_failure=poweroff "$@"
	cp "$VM_LOG" "$TEST_TMP/$name.log"
	grep -q 'gdroot: BOOT FAILED' "$VM_LOG" || { vm_show_log; fail "$name: no BOOT FAILED message"; }
	grep -q "$want" "$VM_LOG" || { vm_show_log; fail "$name: the message does not say '$want'"; }
	grep -q 'Kernel panic' "$VM_LOG" && { vm_show_log; fail "$name: kernel panic"; }
	grep -q 'should-not-run' "$VM_LOG" && fail "$name: booted anyway"
	grep -A3 'BOOT FAILED' "$VM_LOG" | sed 's/^/  /'
}
expect_failure wrong-url "no such folder" "gdroot.store=gdrive://no-such-folder"
# A manifest signed by another key: publish one over the store's.
"$GDROOT" keygen "$TEST_TMP/other" >/dev/null
"$GDROOT" -c "$VM_CONF" -k "$TEST_TMP/other.key" push "$R" >/dev/null 2>&1 || fail "push with the other key"
"$GDROOT" -c "$VM_CONF" --unsigned store rm manifests/0000000001 || fail "rm"
expect_failure other-key "not by the configured key\|no valid generation"
emu_stop
expect_failure store-down "fetcher stopped\|not ready\|Couldn't connect\|Failed to connect"
echo ok
