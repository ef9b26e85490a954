#!/bin/bash
# SPDX-License-Identifier: MIT
# Boot the appliance (DIR/vmlinuz + DIR/initrd.img) in QEMU with TCG, the
# serial console on stdout and in a log, user-mode networking (the host's
# 127.0.0.1 is 10.0.2.2 in the guest), and wait for a marker on the console,
# as dracut's VM tests do. Exit 0 when the marker appears, 1 on a fail
# marker or when QEMU stops without the marker, 124 on timeout, 2 on bad
# usage. QEMU never outlives this script.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$TOP/$O ;; esac

usage() {
	cat <<'EOF'
Usage: appliance/run-qemu.sh [OPTIONS] [-- QEMU ARGS...]

  --dir DIR            appliance folder (default build/appliance)
  --append "ARGS"      more kernel arguments (after "console=ttyS0 panic=1")
  --timeout SECONDS    give up after this long (default 300): exit 124
  --marker STRING      exit 0 as soon as STRING appears on the console
  --fail-marker STRING exit 1 as soon as STRING appears (repeatable;
                       "Kernel panic - not syncing" always counts)
  --log FILE           also write the console to FILE
  --timestamps         prefix each console line with seconds since QEMU start
  --quiet              do not copy the console to stdout (the log still gets it)
  --mem MIB            guest memory (default 1024)
  --smp N              guest CPUs (default 2)
  --disk FILE          add FILE as a virtio-blk disk (raw, or qcow2 by name;
                       repeatable: /dev/vda, /dev/vdb, ...)
  --netdev-extra OPTS  appended to "-netdev user,id=n0," (e.g. hostfwd=...)
  --interactive        console on this terminal (Ctrl-a x quits), no markers
  -h, --help           this text

Without --marker, exits with QEMU's status (0 after a clean poweroff).
Arguments after -- go to qemu-system-x86_64 as they are.
EOF
}

DIR=$O/appliance
APPEND=
TIMEOUT=300
MARKER=
FAIL_MARKERS=("Kernel panic - not syncing")
LOG=
STAMPS=0
QUIET=0
MEM=1024
SMP=2
DISKS=()
NETDEV_EXTRA=
INTERACTIVE=0
QEMU_EXTRA=()
while [ $# -gt 0 ]; do
	case $1 in
	--dir) DIR=$2; shift ;;
	--append) APPEND=$2; shift ;;
	--timeout) TIMEOUT=$2; shift ;;
	--marker) MARKER=$2; shift ;;
	--fail-marker) FAIL_MARKERS+=("$2"); shift ;;
	--log) LOG=$2; shift ;;
	--timestamps) STAMPS=1 ;;
	--quiet) QUIET=1 ;;
	--mem) MEM=$2; shift ;;
	--smp) SMP=$2; shift ;;
	--disk) DISKS+=("$2"); shift ;;
	--netdev-extra) NETDEV_EXTRA=$2; shift ;;
	--interactive) INTERACTIVE=1 ;;
	--) shift; QEMU_EXTRA=("$@"); break ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run-qemu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

die() { echo "run-qemu.sh: $*" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null 2>&1 || die "needs qemu-system-x86_64 (make deps installs qemu-system-x86)"
for f in "$DIR/vmlinuz" "$DIR/initrd.img"; do
	[ -r "$f" ] || die "$f is missing: run make appliance"
done
case $TIMEOUT in '' | *[!0-9]*) die "--timeout wants whole seconds" ;; esac

# /dev/kvm exists on our machines but hangs QEMU: always TCG.
# shellcheck disable=SC2054 # commas inside QEMU option values
cmd=(qemu-system-x86_64 -accel tcg -machine q35 -cpu max -smp "$SMP" -m "$MEM"
	-nographic -no-reboot
	-kernel "$DIR/vmlinuz" -initrd "$DIR/initrd.img"
	-append "console=ttyS0 panic=1${APPEND:+ $APPEND}"
	-netdev "user,id=n0${NETDEV_EXTRA:+,$NETDEV_EXTRA}" -device virtio-net-pci,netdev=n0)
for d in "${DISKS[@]}"; do
	[ -e "$d" ] || die "--disk: no such file $d"
	fmt=raw
	case $d in *.qcow2) fmt=qcow2 ;; esac
	cmd+=(-drive "file=$d,if=virtio,format=$fmt,cache=unsafe")
done
cmd+=("${QEMU_EXTRA[@]}")

if [ $INTERACTIVE = 1 ]; then
	if [ -n "$LOG" ]; then
		timeout --foreground "$TIMEOUT" "${cmd[@]}" 2>&1 | tee "$LOG"
		exit "${PIPESTATUS[0]}"
	fi
	exec timeout --foreground "$TIMEOUT" "${cmd[@]}"
fi

TMP=$(mktemp -d /tmp/gdroot-qemu.XXXXXX)
QPID=
cleanup() {
	if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
		kill -TERM "$QPID" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$QPID" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$QPID" 2>/dev/null || true
		wait "$QPID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -n "$LOG" ] && : >"$LOG"
mkfifo "$TMP/console"
# timeout(1) owns QEMU: signals sent to QPID reach QEMU, and QEMU dies
# with the deadline even if this script is killed with SIGKILL.
timeout -k 5 "$TIMEOUT" "${cmd[@]}" </dev/null >"$TMP/console" 2>&1 &
QPID=$!
exec 3<"$TMP/console"
start=${EPOCHREALTIME/./}
deadline=$((start + TIMEOUT * 1000000))

emit() {
	local line=$1
	if [ $STAMPS = 1 ]; then
		local now=${EPOCHREALTIME/./} t
		t=$(((now - start) / 10000))
		printf -v line '[%4d.%02d] %s' $((t / 100)) $((t % 100)) "$line"
	fi
	[ $QUIET = 1 ] || printf '%s\n' "$line"
	[ -z "$LOG" ] || printf '%s\n' "$line" >>"$LOG"
}

result=
while :; do
	now=${EPOCHREALTIME/./}
	if [ "$now" -ge "$deadline" ]; then
		result=timeout
		break
	fi
	left=$(((deadline - now + 999999) / 1000000))
	rc=0
	IFS= read -r -t "$left" line <&3 || rc=$?
	if [ $rc -gt 128 ]; then
		# The deadline; a partial line is shown, not matched.
		[ -n "$line" ] && emit "${line//$'\r'/}"
		result=timeout
		break
	fi
	# rc 1: EOF (QEMU gone), maybe after a last line with no newline.
	[ $rc = 1 ] && [ -z "$line" ] && break
	line=${line//$'\r'/}
	emit "$line"
	if [ -n "$MARKER" ] && [[ $line == *"$MARKER"* ]]; then
		result=marker
		break
	fi
	for m in "${FAIL_MARKERS[@]}"; do
		if [[ $line == *"$m"* ]]; then
			result=fail:$m
			break 2
		fi
	done
	[ $rc = 1 ] && break
done

case $result in
marker)
	echo "run-qemu.sh: saw \"$MARKER\" after $(((${EPOCHREALTIME/./} - start) / 1000000)) s" >&2
	exit 0
	;;
fail:*)
	echo "run-qemu.sh: saw fail marker \"${result#fail:}\"" >&2
	exit 1
	;;
timeout)
	echo "run-qemu.sh: timed out after $TIMEOUT s" >&2
	exit 124
	;;
esac
# QEMU stopped: its status, or timeout(1)'s 124.
rc=0
wait "$QPID" || rc=$?
QPID=
if [ $rc = 124 ]; then
	echo "run-qemu.sh: timed out after $TIMEOUT s" >&2
	exit 124
fi
if [ -n "$MARKER" ]; then
	echo "run-qemu.sh: QEMU exited ($rc) without \"$MARKER\"" >&2
	exit 1
fi
exit "$rc"
