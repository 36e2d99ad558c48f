#!/bin/bash
# A real Linux kernel initiator (open-iscsi, sd, dm-multipath) against ironlun, in the QEMU VM of
# shared/tools/linux-initiator. Host side: start `ironlun serve` with its embedded default on two
# portals of one target port, boot the VM with this file as the scenario, stop the daemon.
# Guest side: SendTargets on both portals, login on both, INQUIRY/VPD as the kernel sees them,
# one multipath map with two paths, verified direct I/O through each path and the map, logout.
#
#   tests/linux-initiator/basic.sh          (root; builds the VM image on first use)
#   IRONLUN_BIN=path VMI_TOOL=path tests/linux-initiator/basic.sh
set -euo pipefail

if [ -z "${VMI_GUEST:-}" ]; then
  SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
  ROOT="$(cd "$(dirname "$SELF")/../.." && pwd)"
  TOOL=${VMI_TOOL:-$ROOT/../shared/tools/linux-initiator}
  BIN=${IRONLUN_BIN:-$ROOT/target/release/ironlun}
  P1=${P1:-3263} P2=${P2:-3264}
  [ -x "$BIN" ] || (cd "$ROOT" && cargo build --release -p ironlun)
  "$TOOL/build-image.sh" >/dev/null
  state=$(mktemp -d /tmp/ironlun-vmi.XXXXXX)
  "$BIN" serve --state-dir "$state" --portal "127.0.0.1:$P1" >"$state/daemon.log" 2>&1 &
  daemon=$!
  cleanup() { kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$state"; }
  trap cleanup EXIT
  for _ in $(seq 100); do [ -S "$state/control.sock" ] && break; sleep 0.1; done
  "$BIN" --state-dir "$state" create "iscsi/iqn.2026-11.org.ironlun:default/tpgt_1/np/127.0.0.1:$P2" >/dev/null
  rc=0
  "$TOOL/run-scenario.sh" -t 300 -e TARGET_IQN=iqn.2026-11.org.ironlun:default \
    -p "10.0.2.100:3260=127.0.0.1:$P1" -p "10.0.2.101:3260=127.0.0.1:$P2" "$SELF" || rc=$?
  if ! kill -0 "$daemon" 2>/dev/null; then echo "basic.sh: the daemon died" >&2; rc=1; fi
  [ $rc = 0 ] || tail -20 "$state/daemon.log" >&2
  exit $rc
fi

# ---------------------------------------------------------------- guest side
. "$VMI_LIB"
IQN=${TARGET_IQN:?}
P1=$(vmi_portals | sed -n 1p)
P2=$(vmi_portals | sed -n 2p)

vmi_step "discovery and login on both portals"
vmi_run vmi_discover "$P1"
vmi_run vmi_discover "$P2"
vmi_run iscsiadm -m node -T "$IQN" -p "$P1" --login
vmi_run iscsiadm -m node -T "$IQN" -p "$P2" --login
vmi_wait_disks 2
mapfile -t DISKS < <(vmi_iscsi_disks)
A=/dev/${DISKS[0]} B=/dev/${DISKS[1]}

vmi_step "what the kernel sees"
vmi_run lsscsi
vmi_run sg_inq "$A"
vmi_run sg_vpd -p di "$A"
size=$(blockdev --getsize64 "$A")
[ "$size" = 1073741824 ] || { echo "FAIL: size $size, want 1 GiB"; exit 1; }
naa_a=$(sg_vpd -p di "$A" | grep -i -A1 'naa' | tail -1 | tr -d ' ')
naa_b=$(sg_vpd -p di "$B" | grep -i -A1 'naa' | tail -1 | tr -d ' ')
[ -n "$naa_a" ] && [ "$naa_a" = "$naa_b" ] || { echo "FAIL: paths show different LUs ($naa_a / $naa_b)"; exit 1; }

vmi_step "verified direct I/O through each path"
head -c 1048576 /dev/urandom > /tmp/p1
head -c 1048576 /dev/urandom > /tmp/p2
vmi_run dd if=/tmp/p1 of="$A" bs=64k seek=16 oflag=direct status=none
dd if="$B" bs=64k skip=16 count=16 iflag=direct status=none | cmp - /tmp/p1
vmi_run dd if=/tmp/p2 of="$B" bs=64k seek=64 oflag=direct,sync status=none
dd if="$A" bs=64k skip=64 count=16 iflag=direct status=none | cmp - /tmp/p2
echo "OK: data written through one path reads back through the other"

vmi_step "multipath: one map, two paths"
map=$(vmi_wait_mpath 2)
vmi_run multipath -ll
vmi_run dd if=/tmp/p1 of="/dev/mapper/$map" bs=64k seek=128 oflag=direct status=none
dd if="/dev/mapper/$map" bs=64k skip=128 count=16 iflag=direct status=none | cmp - /tmp/p1
echo "OK: I/O through /dev/mapper/$map"

vmi_step "logout"
multipath -F || true
vmi_run iscsiadm -m node -T "$IQN" --logout
echo "PASS"
