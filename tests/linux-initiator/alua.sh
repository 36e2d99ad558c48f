#!/bin/bash
# ALUA as a real Linux host sees it: one RAM disk exported by two targets (west on portal 1,
# east on portal 2), each target's LUN in its own target port group. West starts
# Active/Non-optimized, east Active/Optimized. The guest's kernel attaches scsi_dh_alua,
# dm-multipath ranks the paths by ALUA priority (50 AO, 10 ANO, 1 standby), and when the admin
# puts east in Standby through the host hook, the host re-reads the state and I/O moves to west.
#
#   tests/linux-initiator/alua.sh        (root; builds the VM image on first use)
set -euo pipefail

WEST=iqn.2026-11.org.ironlun:default
EAST=iqn.2026-11.org.ironlun:east
DEV=core/rd_mcp_0/ramdisk0

if [ -z "${VMI_GUEST:-}" ]; then
  SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
  ROOT="$(cd "$(dirname "$SELF")/../.." && pwd)"
  BIN=${IRONLUN_BIN:-$ROOT/target/release/ironlun}
  if [ "${1:-}" = --hook ]; then
    # One request line from the guest: "state <group> <ao|ano|s|u|o>" or "show".
    read -r req a b _
    case "$req" in
      state) "$BIN" --state-dir "$ALUA_STATE" alua set-state "$DEV" "$a" "$b" 2>&1 ;;
      show) "$BIN" --state-dir "$ALUA_STATE" alua show "$DEV" 2>&1 ;;
      *) echo "unknown request: $req" ;;
    esac
    exit 0
  fi
  TOOL=${VMI_TOOL:-$ROOT/../shared/tools/linux-initiator}
  P1=${P1:-3265} P2=${P2:-3266}
  [ -x "$BIN" ] || (cd "$ROOT" && cargo build --release -p ironlun)
  "$TOOL/build-image.sh" >/dev/null
  export ALUA_STATE
  ALUA_STATE=$(mktemp -d /tmp/ironlun-vmi-alua.XXXXXX)
  "$BIN" serve --state-dir "$ALUA_STATE" --portal "127.0.0.1:$P1" >"$ALUA_STATE/daemon.log" 2>&1 &
  daemon=$!
  cleanup() { kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$ALUA_STATE"; }
  trap cleanup EXIT
  for _ in $(seq 100); do [ -S "$ALUA_STATE/control.sock" ] && break; sleep 0.1; done
  cli() { "$BIN" --state-dir "$ALUA_STATE" "$@" >/dev/null; }
  cli create "iscsi/$EAST/tpgt_1"
  cli create "iscsi/$EAST/tpgt_1/np/127.0.0.1:$P2"
  cli create "iscsi/$EAST/tpgt_1/lun/lun_0" "dev=$DEV"
  cli set "iscsi/$EAST/tpgt_1/attrib/generate_node_acls" 1
  cli set "iscsi/$EAST/tpgt_1/attrib/demo_mode_write_protect" 0
  cli set "iscsi/$EAST/tpgt_1/enable" 1
  cli create "$DEV/alua/alua_west" tg_pt_gp_id=1
  cli create "$DEV/alua/alua_east" tg_pt_gp_id=2
  cli set "iscsi/$WEST/tpgt_1/lun/lun_0/alua_tg_pt_gp" alua_west
  cli set "iscsi/$EAST/tpgt_1/lun/lun_0/alua_tg_pt_gp" alua_east
  cli alua set-state "$DEV" alua_west ano
  rc=0
  "$TOOL/run-scenario.sh" -t 300 -e "WEST=$WEST" -e "EAST=$EAST" \
    -p "10.0.2.100:3260=127.0.0.1:$P1" -p "10.0.2.101:3260=127.0.0.1:$P2" \
    -H "$SELF --hook" "$SELF" || rc=$?
  if ! kill -0 "$daemon" 2>/dev/null; then echo "alua.sh: the daemon died" >&2; rc=1; fi
  [ $rc = 0 ] || tail -20 "$ALUA_STATE/daemon.log" >&2
  exit $rc
fi

# ---------------------------------------------------------------- guest side
. "$VMI_LIB"
P1=$(vmi_portals | sed -n 1p)
P2=$(vmi_portals | sed -n 2p)
fail() { echo "FAIL: $*"; multipath -ll || true; exit 1; }

vmi_step "discovery and login: west through portal 1, east through portal 2"
vmi_run vmi_discover "$P1"
vmi_run vmi_discover "$P2"
vmi_run iscsiadm -m node -T "$WEST" -p "$P1" --login
vmi_run iscsiadm -m node -T "$EAST" -p "$P2" --login
vmi_wait_disks 2

disk_of() { # target iqn -> sdX
  local s
  for s in /sys/class/iscsi_session/session*; do
    if [ "$(cat "$s/targetname")" = "$1" ]; then
      basename "$(ls -d "$s"/device/target*/*/block/* | head -1)"
      return
    fi
  done
}
W=$(disk_of "$WEST") E=$(disk_of "$EAST")
echo "west path /dev/$W, east path /dev/$E"

vmi_step "the kernel's ALUA view"
vmi_run sg_rtpg -d "/dev/$W"
for d in "$W" "$E"; do
  h=$(cat "/sys/block/$d/device/dh_state")
  [ "$h" = alua ] || fail "/dev/$d: device handler '$h', want alua"
done
dmesg | grep -i 'alua' | tail -6 || true
[ "$(cat /sys/block/$W/device/access_state)" = active/non-optimized ] || fail "west access_state $(cat /sys/block/$W/device/access_state)"
[ "$(cat /sys/block/$E/device/access_state)" = active/optimized ] || fail "east access_state $(cat /sys/block/$E/device/access_state)"

vmi_step "multipath ranks the paths by ALUA priority"
map=$(vmi_wait_mpath 2)
vmi_run multipath -ll
prio() { multipathd show paths raw format '%d %p' | awk -v d="$1" '$1==d {print $2}'; }
[ "$(prio "$E")" = 50 ] || fail "east prio $(prio "$E"), want 50 (AO)"
[ "$(prio "$W")" = 10 ] || fail "west prio $(prio "$W"), want 10 (ANO)"
head -c 1048576 /dev/urandom >/tmp/p
vmi_run dd if=/tmp/p of="/dev/mapper/$map" bs=64k seek=32 oflag=direct status=none
dd if="/dev/mapper/$map" bs=64k skip=32 count=16 iflag=direct status=none | cmp - /tmp/p

vmi_step "admin puts east in Standby (implicit transition); the host follows"
vmi_run vmi_host state alua_east s
for _ in $(seq 60); do
  [ "$(cat /sys/block/$E/device/access_state)" = standby ] && [ "$(prio "$E")" = 1 ] && break
  sleep 0.5
done
[ "$(cat /sys/block/$E/device/access_state)" = standby ] || fail "east access_state $(cat /sys/block/$E/device/access_state), want standby"
[ "$(prio "$E")" = 1 ] || fail "east prio $(prio "$E"), want 1 (standby)"
vmi_run multipath -ll
dd if=/tmp/p of="/dev/mapper/$map" bs=64k seek=96 oflag=direct status=none
dd if="/dev/mapper/$map" bs=64k skip=96 count=16 iflag=direct status=none | cmp - /tmp/p
echo "OK: I/O continues through west while east is in Standby"
vmi_run vmi_host show

vmi_step "logout"
multipath -F || true
iscsiadm -m node -u || true
echo "PASS"
