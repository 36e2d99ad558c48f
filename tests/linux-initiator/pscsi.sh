#!/bin/bash
# SCSI pass-through (pscsi) against a real SCSI device, in the QEMU VM of
# shared/tools/linux-initiator. The daemon runs inside the guest (copied in with -f), where the
# kernel has real SCSI devices: scsi_debug's RAM disk. ironlun exports it twice from one target
# (LUN 1 through pscsi on its sg node, LUN 2 through iblock on its sd node; LUN 0 is the built-in
# RAM disk) and the guest's own open-iscsi logs in on 127.0.0.1. Checked:
#   - INQUIRY, VPD 80h and READ CAPACITY through ironlun equal the device's own; VPD 83h keeps
#     the device's LU designators and carries ironlun's target port ones;
#   - data written through ironlun reads back from the raw device and the other way round;
#   - LOG SENSE, which ironlun does not emulate, reaches the device (sg_raw);
#   - 64 KiB reads and writes at queue depth 8: pscsi >= 0.8x iblock on the same device;
#   - the device deleted while exported: commands to it fail at once (no hang), the daemon
#     lives on and keeps serving LUN 0.
#
#   tests/linux-initiator/pscsi.sh          (root; builds the VM image on first use)
#   IRONLUN_BIN=path VMI_TOOL=path tests/linux-initiator/pscsi.sh
set -euo pipefail

if [ -z "${VMI_GUEST:-}" ]; then
  SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
  ROOT="$(cd "$(dirname "$SELF")/../.." && pwd)"
  TOOL=${VMI_TOOL:-$ROOT/../shared/tools/linux-initiator}
  BIN=${IRONLUN_BIN:-$ROOT/target/release/ironlun}
  [ -x "$BIN" ] || (cd "$ROOT" && cargo build --release -p ironlun)
  "$TOOL/build-image.sh" >/dev/null
  exec "$TOOL/run-scenario.sh" -t 480 -f "$BIN" ${PSCSI_OUT:+-o "$PSCSI_OUT"} "$SELF"
fi

# ---------------------------------------------------------------- guest side
. "$VMI_LIB"
BIN=/vmi/work/ironlun
ST=/tmp/ironlun-state
IQN=iqn.2026-11.org.ironlun:default
TPG=iscsi/$IQN/tpgt_1
cli() { "$BIN" --state-dir "$ST" "$@"; }
fail() { echo "FAIL: $*"; [ -f "$ST.log" ] && tail -20 "$ST.log"; exit 1; }

# multipathd would join the raw disk and its pass-through export (one WWID: that is right)
# and hold both; this test looks at each on its own.
multipathd shutdown >/dev/null 2>&1 || pkill multipathd || true

vmi_step "a real SCSI device: scsi_debug"
vmi_run modprobe scsi_debug dev_size_mb=64 sector_size=512
udevadm settle --timeout=30
vmi_run lsscsi -g
read -r HCTL RAW_SD RAW_SG < <(lsscsi -g | awk '/scsi_debug/ {gsub(/[][]/, "", $1); print $1, $(NF-1), $NF; exit}')
[ -b "$RAW_SD" ] && [ -c "$RAW_SG" ] || fail "no scsi_debug disk"
echo "scsi_debug: $HCTL $RAW_SD $RAW_SG"

vmi_step "ironlun in the guest: LUN 1 = pscsi on $RAW_SG, LUN 2 = iblock on $RAW_SD"
mkdir -p "$ST"
"$BIN" serve --state-dir "$ST" >"$ST.log" 2>&1 &
DAEMON=$!
for _ in $(seq 200); do [ -S "$ST/control.sock" ] && break; sleep 0.1; done
vmi_run cli create core/pscsi_0/sd "dev=$HCTL"
vmi_run cli create "$TPG/lun/lun_1" dev=core/pscsi_0/sd
vmi_run cli create core/iblock_0/sd "path=$RAW_SD"
vmi_run cli create "$TPG/lun/lun_2" dev=core/iblock_0/sd
vmi_run cli ls core/pscsi_0/sd
if cli ls core/pscsi_0/sd | grep -q "emulate_tpu\|alua"; then fail "what the device decides is listed"; fi
if cli pr show core/pscsi_0/sd 2>/tmp/err; then fail "pr show on pscsi"; fi
grep -q "persistent reservations are the device's" /tmp/err || fail "unclear refusal: $(cat /tmp/err)"
cli get core/pscsi_0/sd/info | grep -q "scsi_debug" || fail "the tree does not show the device's identity"
# The other names of the same device: its sd node (resolved to the sg node through sysfs) and
# the sg node itself.
vmi_run cli create core/pscsi_1/by_sd "dev=$RAW_SD"
cli get core/pscsi_1/by_sd/info | grep -q "$RAW_SG ($HCTL)" || fail "dev=$RAW_SD is not $RAW_SG"
vmi_run cli create core/pscsi_1/by_sg "dev=$RAW_SG"
vmi_run cli get core/pscsi_1/by_sg/info
vmi_run cli delete core/pscsi_1/by_sd
vmi_run cli delete core/pscsi_1/by_sg
# Refusals: an attribute the device decides, a second device on a non-SCSI node.
if cli set core/pscsi_0/sd/attrib/emulate_tpu 1 2>/tmp/err; then fail "emulate_tpu accepted on pscsi"; fi
grep -q "does not apply to a pass-through device" /tmp/err || fail "unclear refusal: $(cat /tmp/err)"
if cli create core/pscsi_0/bad dev=/dev/null 2>/tmp/err; then fail "/dev/null accepted"; fi
grep -q "not a SCSI generic node" /tmp/err || fail "unclear refusal: $(cat /tmp/err)"
cat /tmp/err

vmi_step "the guest's open-iscsi logs in on 127.0.0.1"
vmi_run iscsiadm -m discovery -t sendtargets -p 127.0.0.1:3260
vmi_run iscsiadm -m node -T "$IQN" -p 127.0.0.1:3260 --login
vmi_wait_disks 3
vmi_run lsscsi -g
PT=""; IB=""; RD=""
for d in $(vmi_iscsi_disks); do
  lun=$(basename "$(readlink -f "/sys/block/$d/device")" | awk -F: '{print $4}')
  case "$lun" in 0) RD=/dev/$d ;; 1) PT=/dev/$d ;; 2) IB=/dev/$d ;; esac
done
echo "through ironlun: pscsi $PT, iblock $IB, RAM disk $RD"
[ -b "$PT" ] && [ -b "$IB" ] && [ -b "$RD" ] || fail "missing iSCSI disks"

vmi_step "INQUIRY, VPD 80h and READ CAPACITY: the device's own"
sg_inq --raw "$RAW_SG" | od -An -tx1 > /tmp/inq.raw
sg_inq --raw "$PT" | od -An -tx1 > /tmp/inq.pt
diff /tmp/inq.raw /tmp/inq.pt || fail "standard INQUIRY differs"
vmi_run sg_inq "$PT"
sg_vpd -p sn --raw "$RAW_SG" | od -An -tx1 > /tmp/sn.raw
sg_vpd -p sn --raw "$PT" | od -An -tx1 > /tmp/sn.pt
diff /tmp/sn.raw /tmp/sn.pt || fail "VPD 80h differs"
vmi_run sg_vpd -p sn "$PT"
diff <(sg_readcap -l "$RAW_SG") <(sg_readcap -l "$PT") || fail "READ CAPACITY differs"
vmi_run sg_readcap -l "$PT"
[ "$(blockdev --getsize64 "$PT")" = "$(blockdev --getsize64 "$RAW_SD")" ] || fail "sd sees another size"
vmi_run sg_vpd -p di "$PT"
sg_vpd -p di "$PT" > /tmp/di.pt
grep -q "Relative target port: 0x1" /tmp/di.pt || fail "no relative target port designator"
grep -q "Target port group: 0x0" /tmp/di.pt || fail "no target port group designator"
grep -q "$IQN" /tmp/di.pt || fail "no target name designator"
# The "Addressed logical unit" designators: the device's, unchanged.
lu_part() { awk '/Addressed logical unit/ {f = 1; next} /^  [A-Z]/ {f = 0} f'; }
sg_vpd -p di "$RAW_SG" | lu_part > /tmp/lu.raw
lu_part < /tmp/di.pt > /tmp/lu.pt
[ -s /tmp/lu.raw ] && diff /tmp/lu.raw /tmp/lu.pt || fail "LU designators differ"
echo "OK: identity passed through; port designators are ironlun's"

vmi_step "data through ironlun and through the raw device"
head -c 1048576 /dev/urandom > /tmp/a
head -c 1048576 /dev/urandom > /tmp/b
vmi_run dd if=/tmp/a of="$PT" bs=64k seek=32 oflag=direct status=none
dd if="$RAW_SD" bs=64k skip=32 count=16 iflag=direct status=none | cmp - /tmp/a || fail "written through pscsi, not on the device"
vmi_run dd if=/tmp/b of="$RAW_SD" bs=64k seek=96 oflag=direct status=none
dd if="$PT" bs=64k skip=96 count=16 iflag=direct status=none | cmp - /tmp/b || fail "written on the device, not read through pscsi"
echo "OK: both ways"

vmi_step "LOGICAL UNIT RESET through ironlun resets the device; I/O goes on"
vmi_run sg_reset --device "$PT"
dd if="$PT" bs=64k skip=96 count=16 iflag=direct status=none | cmp - /tmp/b || fail "I/O after the reset"
echo "OK: reset, then I/O"

vmi_step "a command ironlun does not emulate reaches the device: LOG SENSE"
if sg_raw -r 64 "$RD" 4d 00 00 00 00 00 00 00 40 00 >/tmp/ls.rd 2>&1; then
  fail "LOG SENSE answered by the RAM disk: $(cat /tmp/ls.rd)"
fi
grep -qi "invalid.*op" /tmp/ls.rd || fail "the RAM disk's refusal: $(cat /tmp/ls.rd)"
sg_raw -r 64 "$RAW_SG" 4d 00 00 00 00 00 00 00 40 00 >/tmp/ls.raw 2>&1 || fail "LOG SENSE on the raw device: $(cat /tmp/ls.raw)"
sg_raw -r 64 "$PT" 4d 00 00 00 00 00 00 00 40 00 >/tmp/ls.pt 2>&1 || fail "LOG SENSE through pscsi: $(cat /tmp/ls.pt)"
cat /tmp/ls.pt
diff <(grep -v "^SCSI Status\|Sense" /tmp/ls.raw) <(grep -v "^SCSI Status\|Sense" /tmp/ls.pt) || fail "LOG SENSE data differs"
echo "OK: LOG SENSE answered by the device"

vmi_step "64 KiB at queue depth 8: pscsi against iblock on the same device"
now() { awk '{print $1}' /proc/uptime; }
# qd8 DEV read|write: 8 dd processes, each 6 MiB of 64 KiB direct I/O in its own region; MB/s.
qd8() {
  local dev=$1 how=$2 t0 t1 i pids=()
  t0=$(now)
  for i in 0 1 2 3 4 5 6 7; do
    if [ "$how" = read ]; then
      dd if="$dev" of=/dev/null bs=64k count=96 skip=$((i * 96)) iflag=direct status=none &
    else
      dd if=/dev/zero of="$dev" bs=64k count=96 seek=$((i * 96)) oflag=direct status=none &
    fi
    pids+=($!)
  done
  # Not a bare `wait`: the daemon is a child of this shell too.
  wait "${pids[@]}"
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", 8 * 6 / (b - a)}'
}
qd8 "$PT" read >/dev/null # warm-up
declare -A R
for round in 1 2 3; do
  for kind in pt ib; do
    dev=$PT; [ $kind = ib ] && dev=$IB
    for how in read write; do
      v=$(qd8 "$dev" "$how")
      R[$kind-$how]="${R[$kind-$how]:-} $v"
      echo "round $round: $kind $how $v MB/s"
    done
  done
done
best() { tr ' ' '\n' <<<"$1" | sort -g | tail -1; }
ok=1
for how in read write; do
  p=$(best "${R[pt-$how]}"); i=$(best "${R[ib-$how]}")
  ratio=$(awk -v p="$p" -v i="$i" 'BEGIN{printf "%.2f", p / i}')
  echo "RESULT $how: pscsi $p MB/s, iblock $i MB/s, ratio $ratio (best of 3)"
  awk -v r="$ratio" 'BEGIN{exit !(r >= 0.8)}' || ok=0
done
[ $ok = 1 ] || fail "pscsi below 0.8x iblock"

vmi_step "another peripheral type: a tape drive (scsi_debug ptype=1)"
echo 1 > /sys/bus/pseudo/drivers/scsi_debug/ptype
echo 1 > /sys/bus/pseudo/drivers/scsi_debug/add_host
udevadm settle --timeout=30
read -r TAPE_HCTL TAPE_SG < <(lsscsi -g | awk '/scsi_debug/ && $2 == "tape" {gsub(/[][]/, "", $1); print $1, $NF; exit}')
[ -c "$TAPE_SG" ] || fail "no scsi_debug tape: $(lsscsi -g)"
vmi_run cli create core/pscsi_2/tape "dev=$TAPE_HCTL"
vmi_run cli create "$TPG/lun/lun_3" dev=core/pscsi_2/tape
vmi_run cli get core/pscsi_2/tape/info
iscsiadm -m session --rescan >/dev/null
udevadm settle --timeout=30
TAPE_PT=""
for _ in $(seq 50); do
  for g in /sys/class/iscsi_session/session*/device/target*/*:3/scsi_generic/*; do
    [ -e "$g" ] && TAPE_PT=/dev/$(basename "$g")
  done
  [ -n "$TAPE_PT" ] && break
  sleep 0.2
done
[ -c "$TAPE_PT" ] || fail "the tape did not appear through ironlun"
vmi_run lsscsi -g
sg_inq "$TAPE_PT" | tee /tmp/tinq | grep -q "Peripheral device type: tape" || fail "not a tape through ironlun"
diff <(sg_inq --raw "$TAPE_SG" | od -An -tx1) <(sg_inq --raw "$TAPE_PT" | od -An -tx1) || fail "the tape's INQUIRY differs"
# Its first command gets the drive's own power-on unit attention, passed through as it is.
sg_turs "$TAPE_PT" >/dev/null 2>&1 || true
vmi_run sg_turs -v "$TAPE_PT"
echo "OK: a tape drive passes through"

vmi_step "the device removed while exported"
vmi_run sh -c "echo 1 > /sys/class/scsi_device/$HCTL/device/delete"
sleep 1
t0=$(now)
rc=0
timeout 120 dd if="$PT" of=/dev/null bs=4k count=1 skip=777 iflag=direct status=none 2>/tmp/dd.err || rc=$?
t1=$(now)
echo "read from the removed device: exit $rc after $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s: $(cat /tmp/dd.err)"
[ $rc != 0 ] || fail "a read of the removed device succeeded"
[ $rc != 124 ] || fail "a read of the removed device hung"
sg_turs -v "$PT" 2>&1 | tee /tmp/turs || true
grep -qi "hardware error\|not ready\|communication" /tmp/turs || fail "no clear CHECK CONDITION: $(cat /tmp/turs)"
kill -0 "$DAEMON" || fail "the daemon died"
vmi_run dd if=/tmp/a of="$RD" bs=64k oflag=direct status=none
dd if="$RD" bs=64k count=16 iflag=direct status=none | cmp - /tmp/a || fail "LUN 0 no longer served"
cli ls core >/dev/null || fail "the control socket stopped answering"
echo "OK: errors, not hangs; the daemon serves its other LUs"

vmi_step "logout"
iscsiadm -m node -T "$IQN" --logout || true
kill "$DAEMON"; wait "$DAEMON" || true
tail -5 "$ST.log"
echo "PASS"
