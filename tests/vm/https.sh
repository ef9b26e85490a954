#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: the appliance boots over HTTPS: the Drive emulator serves TLS
# with a certificate from a test CA made here (valid for 10.0.2.2, the
# host as QEMU's guest sees it), the appliance carries that CA as its
# bundle, and the busybox root boots to its marker; with the host's CA
# bundle instead, the boot fails with a clear message about the certificate.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib.sh"
requires_root
requires qemu-system-x86_64 mksquashfs openssl
T=$TEST_TMP/tls
sh "$TOP/tests/gdrive-emu/mkcert.sh" "$T" >/dev/null || fail mkcert
# A leaf for the guest's view of the host, signed by the test CA.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/vm.key" -out "$T/vm.csr" \
	-subj "/CN=gdroot vm test" 2>/dev/null || fail "csr"
printf 'subjectAltName=IP:10.0.2.2,IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$T/vm.ext"
openssl x509 -req -in "$T/vm.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial -days 2 \
	-extfile "$T/vm.ext" -out "$T/vm.pem" 2>/dev/null || fail "sign"
EMU_CURL_OPTS="--cacert $T/ca.pem"
export EMU_CURL_OPTS
emu_start --quiet --tls-cert "$T/vm.pem" --tls-key "$T/vm.key"
case $EMU_URL in https://*) ;; *) fail "no HTTPS: $EMU_URL" ;; esac
EMU_PORT=${EMU_URL##*:}
VM_CONF=$TEST_TMP/host.conf
emu_config "$VM_CONF"
echo "ca_file = $T/ca.pem" >>"$VM_CONF"
VM_FOLDER=$(emu_mkfolder vm-https)
VM_STORE="gdrive://$VM_FOLDER"
echo "store = $VM_STORE" >>"$VM_CONF"
"$GDROOT" keygen "$TEST_TMP/signing" >/dev/null
VM_KEY=$TEST_TMP/signing

R=$TEST_TMP/rootfs
mkdir -p "$R/sbin" "$R/bin"
bash "$TOP/appliance/build.sh" --out "$TEST_TMP/bb" --fast >/dev/null 2>&1 || fail "appliance build (for busybox)"
cp "$(vm_busybox)" "$R/bin/busybox" || fail "no busybox"
ln -s busybox "$R/bin/sh"
ln -s busybox "$R/bin/poweroff"
printf '#!/bin/sh\necho GDROOT-HTTPS-ROOT-OK\npoweroff -f\n' >"$R/sbin/init"
chmod 755 "$R/sbin/init"
vm_push "$R" >/dev/null

VM_SCHEME=https
build() { # ca-bundle
	VM_CA_BUNDLE=$1 vm_appliance
}
build "$T/ca.pem"
vm_boot GDROOT-HTTPS-ROOT-OK --fail-marker "BOOT FAILED" -- "gdroot.upper=tmpfs" || { vm_show_log; fail "no boot over HTTPS"; }
build /etc/ssl/certs/ca-certificates.crt
VM_TIMEOUT=150 vm_boot "gdroot: powering off" -- "gdroot.upper=tmpfs" || true
grep -q 'BOOT FAILED' "$VM_LOG" || { vm_show_log; fail "a wrong CA did not fail the boot"; }
grep -qi 'certificate' "$VM_LOG" || { vm_show_log; fail "the failure does not mention the certificate"; }
grep -A4 'BOOT FAILED' "$VM_LOG" | sed 's/^/  /'
echo ok
