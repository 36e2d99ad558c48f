#!/bin/bash
# A target with 1,000 LUNs against a real Linux kernel initiator (open-iscsi, sd), in the QEMU VM
# of shared/tools/linux-initiator. Host side: start `ironlun serve`, write a config.json with
# 1,000 RAM disks (1 MiB each) exported as LUNs 0..999 of one TPG and `ironlun apply` it, boot
# the VM with this file as the scenario, stop the daemon. Guest side: the kernel's LUN limits
# (printed), SendTargets, login, and the kernel's REPORT LUNS scan must attach all 1,000 LUNs as
# disks of that target (LUNs 0-255 in peripheral device addressing, 256-999 in flat space, which
# Linux numbers 0x4000 | LUN); the time from login to the last disk is printed; logout.
#
#   tests/linux-initiator/many-luns.sh          (root; builds the VM image on first use)
#   IRONLUN_BIN=path VMI_TOOL=path LUNS=N tests/linux-initiator/many-luns.sh
set -euo pipefail

if [ -z "${VMI_GUEST:-}" ]; then
  SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
  ROOT="$(cd "$(dirname "$SELF")/../.." && pwd)"
  TOOL=${VMI_TOOL:-$ROOT/../shared/tools/linux-initiator}
  BIN=${IRONLUN_BIN:-$ROOT/target/release/ironlun}
  P1=${P1:-4360} LUNS=${LUNS:-1000}
  IQN=iqn.2026-11.org.ironlun:many
  [ -x "$BIN" ] || (cd "$ROOT" && cargo build --release -p ironlun)
  "$TOOL/build-image.sh" >/dev/null
  state=$(mktemp -d /tmp/ironlun-vmi.XXXXXX)
  "$BIN" serve --state-dir "$state" --portal "127.0.0.1:$P1" >"$state/daemon.log" 2>&1 &
  daemon=$!
  cleanup() { kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$state"; }
  trap cleanup EXIT
  for _ in $(seq 100); do [ -S "$state/control.sock" ] && break; sleep 0.1; done
  # The whole config: LUNS RAM disks, LUN i of one TPG on the daemon's portal, open to every
  # initiator (generate_node_acls) for reading and writing.
  {
    printf '{"version":1,"discovery_auth":{},"storage_objects":['
    for ((i = 0; i < LUNS; i++)); do
      [ $i = 0 ] || printf ','
      printf '{"plugin":"ramdisk","hba":1,"name":"d%d","wwn":"many-%d","vendor_id":"IRONLUN",' $i $i
      printf '"product_id":"RAMDISK-MCP","revision":"1.0","size":1048576,"write_back":false,'
      printf '"readonly":false,"attributes":{}}'
    done
    printf '],"targets":[{"wwn":"%s","fabric":"iscsi","tpgs":[{"tag":1,"enable":true,' "$IQN"
    printf '"attributes":{"authentication":0,"generate_node_acls":1,"demo_mode_write_protect":0,'
    printf '"prod_mode_write_protect":0},"parameters":{},'
    printf '"portals":[{"ip_address":"127.0.0.1","port":%d}],"node_acls":[],"luns":[' "$P1"
    for ((i = 0; i < LUNS; i++)); do
      [ $i = 0 ] || printf ','
      printf '{"index":%d,"storage_object":"core/rd_mcp_1/d%d"}' $i $i
    done
    printf ']}]}]}\n'
  } >"$state/many.json"
  t0=$(date +%s.%N)
  "$BIN" --state-dir "$state" apply "$state/many.json" | tail -1
  echo "many-luns.sh: apply of $LUNS LUNs took $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')s"
  rc=0
  "$TOOL/run-scenario.sh" -t "${VMI_TIMEOUT:-900}" -e TARGET_IQN="$IQN" -e LUNS="$LUNS" \
    -p "10.0.2.100:3260=127.0.0.1:$P1" "$SELF" || rc=$?
  if ! kill -0 "$daemon" 2>/dev/null; then echo "many-luns.sh: the daemon died" >&2; rc=1; fi
  [ $rc = 0 ] || tail -20 "$state/daemon.log" >&2
  exit $rc
fi

# ---------------------------------------------------------------- guest side
. "$VMI_LIB"
IQN=${TARGET_IQN:?}
N=${LUNS:?}
P1=$(vmi_portals | sed -n 1p)
fail() { echo "FAIL: $*"; exit 1; }
elapsed() { awk -v a="$1" -v b="$(vmi_uptime)" 'BEGIN{printf "%.1f", b-a}'; }

# The SCSI disks (H:C:T:L) the kernel attached (the VM's own disk is virtio, not SCSI).
target_devices() {
  ls -1 /sys/class/scsi_disk/ 2>/dev/null || true
}

vmi_step "the kernel's LUN limits"
# multipathd would build a map for each of the 1,000 LUs, which this test does not look at.
multipathd shutdown >/dev/null 2>&1 || pkill multipathd || true
# scsi_mod.max_luns bounds the sequential scan only (LUN 0..max_luns of SCSI-2 devices); the
# REPORT LUNS scan, which the kernel uses for SPC-3 and later (ironlun reports SPC-4), is bounded
# by the host's max_lun, iscsi_tcp.max_lun. Linux numbers the LUN field's first two bytes, so
# flat space LUN 999 is 0x4000 | 999 = 17383 to it.
max_luns=$(cat /sys/module/scsi_mod/parameters/max_luns)
max_lun=$(cat /sys/module/iscsi_tcp/parameters/max_lun 2>/dev/null || echo "?")
highest=$(( N > 256 ? (0x4000 | (N - 1)) : N - 1 ))
echo "scsi_mod.max_luns=$max_luns iscsi_tcp.max_lun=$max_lun highest LUN as Linux numbers it=$highest"
grep -E '^node.session.scan' /etc/iscsi/iscsid.conf || echo "node.session.scan: default (auto)"
if [ "$max_lun" != "?" ] && [ "$max_lun" -lt "$highest" ]; then
  fail "iscsi_tcp.max_lun $max_lun is below $highest"
fi

vmi_step "discovery and login"
vmi_run vmi_discover "$P1"
t0=$(vmi_uptime)
vmi_run iscsiadm -m node -T "$IQN" -p "$P1" --login
echo "login took $(elapsed "$t0")s"
for i in $(seq 1 300); do
  n=$(target_devices | wc -l)
  [ "$n" -ge "$N" ] && break
  [ $((i % 30)) = 0 ] && echo "  $n disks after $(elapsed "$t0")s"
  sleep 1
done
scan=$(elapsed "$t0")
echo "login + scan: $(target_devices | wc -l) disks after ${scan}s"
udevadm settle --timeout=5 || echo "(udev still busy: lsscsi reads sysfs, which is complete)"
echo "login + scan + udev settled: $(elapsed "$t0")s"

vmi_step "what the kernel sees"
lsscsi | sed -n '1,3p;$p'
luns=$(lsscsi | awk -v n="$N" '$2 == "disk" && $3 == "IRONLUN"' | wc -l)
echo "lsscsi: $luns IRONLUN disks"
[ "$luns" = "$N" ] || fail "lsscsi shows $luns IRONLUN disks, want $N"
[ "$(target_devices | wc -l)" = "$N" ] || fail "$(target_devices | wc -l) disks on the session"
# Every LUN 0..N-1 once: peripheral device addressing below 256, flat space above.
want=$(for ((i = 0; i < N; i++)); do echo $(( i < 256 ? i : (0x4000 | i) )); done | sort -n)
have=$(target_devices | awk -F: '{print $4}' | sort -n)
[ "$have" = "$want" ] || fail "the LUNs are not 0..$((N - 1)): $(diff <(echo "$want") <(echo "$have") | head)"
echo "OK: LUNs 0..$((N - 1)) attached"
last=$(ls /sys/class/iscsi_session/session*/device/target*/*:"$highest"/block)
vmi_run dd if="/dev/$last" of=/dev/null bs=64k count=16 iflag=direct status=none
echo "OK: read LUN $((N - 1)) (/dev/$last)"

vmi_step "logout"
t0=$(vmi_uptime)
vmi_run iscsiadm -m node -T "$IQN" --logout
echo "logout took $(elapsed "$t0")s"
echo "PASS"
