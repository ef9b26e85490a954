#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: commit and reset in a booted Debian: boot 1 creates file A,
# deletes a file of the base, runs gdroot-commit, creates file B, and
# gdroot-reset reboots; boot 2 sees A, not the base file, not B, then
# `gdroot-reset --to 1` publishes generation 1 again and reboots; boot 3
# sees the base file back and no A. The store's history keeps all three
# generations (push, commit, reset).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib.sh"
requires_root
requires qemu-system-x86_64 mksquashfs debootstrap
vm_store_up
root=$TEST_TMP/debian
bash "$TOP/tests/vm/mkdebian.sh" "$root" >/dev/null || fail "mkdebian"
echo "a file of the base image" >"$root/etc/gdroot-base-file"
# The steps, chosen by gdtest.step=N on the kernel command line, run once
# the marker unit has printed the status.
cat >"$root/usr/local/sbin/gdroot-vmtest" <<'SCRIPT'
#!/bin/sh
step=$(sed -n 's/.*gdtest\.step=\([0-9]*\).*/\1/p' /proc/cmdline)
have() { [ -e "$1" ] && echo yes || echo no; }
echo "GDTEST step $step: A=$(have /root/A) base=$(have /etc/gdroot-base-file) B=$(have /root/B)"
case $step in
1)
	echo "made in session 1" >/root/A
	rm /etc/gdroot-base-file
	gdroot-commit 2>&1 | sed 's/^/GDTEST commit: /'
	echo "not committed" >/root/B
	echo GDTEST-RESETTING
	gdroot-reset 2>&1 | sed 's/^/GDTEST reset: /'
	;;
2)
	gdroot-reset --to 1 2>&1 | sed 's/^/GDTEST reset: /'
	;;
3)
	echo GDTEST-DONE
	;;
esac
SCRIPT
chmod 755 "$root/usr/local/sbin/gdroot-vmtest"
cat >"$root/etc/systemd/system/gdroot-vmtest.service" <<'UNIT'
[Unit]
Description=gdroot commit test steps
After=multi-user.target gdroot-ready.service

[Service]
Type=oneshot
StandardOutput=tty
TTYPath=/dev/ttyS0
ExecStart=/usr/local/sbin/gdroot-vmtest

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/gdroot-vmtest.service "$root/etc/systemd/system/multi-user.target.wants/"
vm_push "$root"
VM_SIGNING=1 vm_appliance

boot() { # STEP MARKER
	VM_TIMEOUT=400 vm_boot "$2" --fail-marker "BOOT FAILED" -- "gdroot.upper=zram:256M gdtest.step=$1" || {
		vm_show_log 60
		fail "boot $1 did not reach '$2'"
	}
	cp "$VM_LOG" "$TEST_TMP/boot$1.log"
	grep -a '^GDTEST' "$VM_LOG" | sed 's/^/  /'
}
expect() { # STEP TEXT
	grep -aq "GDTEST step $1: $2" "$TEST_TMP/boot$1.log" || fail "boot $1: expected '$2'"
}

echo "== boot 1: change, commit, change, reset"
boot 1 "reboot: Restarting system"
expect 1 "A=no base=yes B=no"
grep -aq 'GDTEST commit: generation 2: committed session' "$TEST_TMP/boot1.log" || fail "gdroot-commit did not publish generation 2"
grep -aq 'GDTEST-RESETTING' "$TEST_TMP/boot1.log" || fail "the test did not reach gdroot-reset"
grep -aq 'GDTEST reset: session reset' "$TEST_TMP/boot1.log" || fail "gdroot-reset said nothing"

echo "== boot 2: the commit is there, the uncommitted change is not; roll back to 1"
boot 2 "reboot: Restarting system"
expect 2 "A=yes base=no B=no"
grep -aq 'GDTEST reset: generation 3: the layers of generation 1' "$TEST_TMP/boot2.log" || fail "gdroot-reset --to 1 did not publish generation 3"

echo "== boot 3: generation 3 is generation 1 again"
boot 3 GDTEST-DONE
expect 3 "A=no base=yes B=no"
"$GDROOT" -c "$VM_CONF" --public-key "$VM_KEY.pub" log >"$TEST_TMP/log.out" || fail "gdroot log"
sed 's/^/  /' "$TEST_TMP/log.out"
[ "$(grep -c '^[0-9]' "$TEST_TMP/log.out")" = 3 ] || fail "expected 3 generations in the history"
echo ok
