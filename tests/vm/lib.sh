# SPDX-License-Identifier: MIT
# Helpers for VM tests (sourced after tests/lib.sh): a Drive emulator on the
# host's loopback (the guest reaches it as 10.0.2.2), a signing key, an
# appliance built for it, and boots in QEMU (TCG) that wait for a marker on
# the serial console.
#   vm_store_up            emulator, folder, key; sets VM_CONF, VM_STORE, VM_KEY
#   vm_push ROOTFS         push a root filesystem to the store
#   vm_appliance           build the appliance for that store into $VM_APPL
#   vm_boot MARKER ARGS... boot; exit status of run-qemu.sh; log in $VM_LOG

VM_APPL=$TEST_TMP/appliance
VM_LOG=$TEST_TMP/console.log

vm_store_up() {
	emu_start --quiet --host 127.0.0.1
	EMU_PORT=${EMU_URL##*:}
	VM_CONF=$TEST_TMP/host.conf
	emu_config "$VM_CONF"
	VM_FOLDER=$(emu_mkfolder vm-root)
	VM_STORE="gdrive://$VM_FOLDER"
	echo "store = $VM_STORE" >>"$VM_CONF"
	"$GDROOT" keygen "$TEST_TMP/signing" >/dev/null || fail keygen
	VM_KEY=$TEST_TMP/signing
}

vm_push() {
	"$GDROOT" -c "$VM_CONF" -k "$VM_KEY.key" push "$1" >"$TEST_TMP/push.out" 2>"$TEST_TMP/push.err" ||
		fail "push $1: $(cat "$TEST_TMP/push.err")"
	cat "$TEST_TMP/push.out"
}

# The appliance's configuration: the store as the guest sees it.
# VM_SCHEME (http or https) and VM_CA_BUNDLE choose how it is reached;
# VM_SIGNING=1 puts the signing key in (an admin's appliance: commits).
vm_appliance() {
	local guest=${VM_SCHEME:-http}://10.0.2.2:$EMU_PORT
	cat >"$TEST_TMP/appliance.conf" <<CONF
store = $VM_STORE
drive_api = $guest
oauth_token_url = $guest/token
credentials = /etc/gdroot/credentials.json
public_key = /etc/gdroot/signing.pub
retry_base_ms = 100
retry_cap_ms = 2000
fetcher_profile_timeout = 60
boot_on_failure = poweroff
CONF
	bash "$TOP/appliance/build.sh" --out "$VM_APPL" --config "$TEST_TMP/appliance.conf" \
		--public-key "$VM_KEY.pub" --credentials "$TEST_TMP/drive-token.json" --fast \
		${VM_SIGNING:+--signing-key "$VM_KEY.key"} \
		${VM_CA_BUNDLE:+--ca-bundle "$VM_CA_BUNDLE"} \
		>"$TEST_TMP/appliance.log" 2>&1 || fail "appliance build: $(tail -20 "$TEST_TMP/appliance.log")"
}

# vm_boot MARKER [--fail-marker M]... [-- KERNEL ARGS]
vm_boot() {
	local marker=$1
	shift
	local fails=() args=()
	while [ $# -gt 0 ]; do
		case $1 in
		--fail-marker) fails+=(--fail-marker "$2"); shift ;;
		--) shift; args=("$@"); break ;;
		esac
		shift
	done
	: >"$VM_LOG"
	bash "$TOP/appliance/run-qemu.sh" --dir "$VM_APPL" --timeout "${VM_TIMEOUT:-240}" --marker "$marker" \
		"${fails[@]}" --log "$VM_LOG" --append "${args[*]}" >/dev/null 2>&1
}

# A static busybox for test roots: the one the appliance build unpacked.
vm_busybox() {
	local bb=${APPLIANCE_CACHE:-$O/appliance-cache}/busybox-root/bin/busybox
	[ -x "$bb" ] || fail "no static busybox at $bb (build the appliance first)"
	echo "$bb"
}

vm_show_log() { tail -n "${1:-40}" "$VM_LOG" | sed 's/^/      > /'; }
