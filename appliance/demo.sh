#!/bin/bash
# SPDX-License-Identifier: MIT
# `make demo`: gdroot end to end on the embedded default store, the local
# Google Drive emulator (no account needed). It builds a Debian bookworm
# root (systemd, a login prompt, a unit that prints a ready marker and
# `gdroot status`), pushes it to the emulator as a signed generation,
# builds the appliance (kernel + busybox initramfs with the fetcher), boots
# it in QEMU with no disk, shows the booted system's console, and then says
# how to point it at a real Google Drive folder.
#   DEMO_INTERACTIVE=1   stay at the login prompt (root, no password;
#                        Ctrl-a x quits QEMU)
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$TOP/tests/lib.sh"
. "$TOP/tests/vm/lib.sh"
trap _run_cleanups EXIT
set +u

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
[ "$(id -u)" = 0 ] || { echo "make demo needs root (debootstrap, QEMU's image tools)"; exit 1; }

say "1. The store: the local Google Drive emulator"
vm_store_up
echo "Drive API and OAuth endpoints at $EMU_URL; folder $VM_STORE"
echo "Signing key: $VM_KEY.key (public half $VM_KEY.pub goes into the appliance)"

say "2. A Debian bookworm root with systemd (debootstrap; cached after the first run)"
bash "$TOP/tests/vm/mkdebian.sh" "$TEST_TMP/debian" >/dev/null
du -sh "$TEST_TMP/debian" | awk '{print "rootfs: " $1}'

say "3. gdroot push: squashfs, content-defined chunks, packs, signed manifest"
vm_push "$TEST_TMP/debian"
"$GDROOT" -c "$VM_CONF" -k "$VM_KEY.key" log

say "4. The appliance: Debian kernel + busybox initramfs with gdroot-fetcher"
vm_appliance
ls -la "$VM_APPL/vmlinuz" "$VM_APPL/initrd.img" | awk '{printf "%-40s %6.1f MiB\n", $9, $5 / 1048576}'

say "5. Booting it in QEMU (TCG, no disk; the root streams from the emulator)"
if [ -n "${DEMO_INTERACTIVE:-}" ]; then
	bash "$TOP/appliance/run-qemu.sh" --dir "$VM_APPL" --interactive --append "gdroot.upper=zram:256M"
else
	bash "$TOP/appliance/run-qemu.sh" --dir "$VM_APPL" --timeout 300 --timestamps \
		--marker GDROOT-STATUS-DONE --fail-marker "BOOT FAILED" --log "$TEST_TMP/console.log" \
		--append "gdroot.upper=zram:256M quiet" || { echo "the boot did not reach its marker"; exit 1; }
fi

say "6. What the fetcher recorded"
"$GDROOT" -c "$VM_CONF" store ls profiles/ | sed 's/^/  /'
echo "  (the next boot of any machine prefetches those chunks in that order)"

say "Done"
cat <<TXT
The Debian root above booted with no disk: its squashfs image streamed
from the Drive emulator through gdroot-fetcher (verified chunks, RAM
cache), under an overlay whose writes stay in zram.

To boot from a real Google Drive folder instead:
  1. In the Google Cloud console, enable the Drive API and create an OAuth
     client of type "TVs and Limited Input devices".
  2. gdroot keygen /etc/gdroot/signing
     gdroot auth --client-id ID --client-secret SECRET --out /etc/gdroot/drive-token.json
  3. gdroot -k /etc/gdroot/signing.key -o credentials=/etc/gdroot/drive-token.json \\
         -s gdrive://FOLDER_ID push ROOTFS
     (FOLDER_ID is the last part of the folder's Drive URL.)
  4. An appliance config (config/appliance.conf.example) with
         store = gdrive://FOLDER_ID
         credentials = /etc/gdroot/credentials.json
         public_key = /etc/gdroot/signing.pub
     then: make appliance APPLIANCE_ARGS="--config my.conf --public-key /etc/gdroot/signing.pub --credentials /etc/gdroot/drive-token.json"
  5. Boot build/appliance/vmlinuz + initrd.img (PXE, or appliance/run-qemu.sh).
TXT
