#!/bin/bash
# N gateways, one LU (`serve --cluster`, docs/cluster.md) seen by a real Linux host: the QEMU VM
# of shared/tools/linux-initiator (open-iscsi, scsi_dh_alua, dm-multipath, sg3_utils).
#
# On the host: a 3-member etcd (clients 127.0.0.1:4200-4202, peers 4210-4212) and three
# gateways gw1..gw3 (ironlun serve --cluster --cluster-ttl $TTL, TTL 2 s unless CLUSTER_TTL)
# exporting one 64 MiB backing file as one clustered LU (same unit serial, attrib/cluster=1,
# groups gw1..gw3 with ids 1..3, gateway i: tpgt_1i, rtpi 1i, LUN 0 in group gw<i>, demo mode),
# each on its own portal 127.0.0.1:422i, which the guest reaches as 10.0.2.10i:3260. The host
# hook (vmi_host) kills, restarts and shows gateways on the guest's request.
#
# (3) Gateway loss under I/O. The guest logs in to all three gateways; dm-multipath (alua
#     hardware handler and prio, as detected; group_by_prio + failback immediate for IRONLUN,
#     as multipath-tools' hwtable does for ALUA arrays; replacement_timeout 5 s) makes one map
#     of three paths. Two dd workers write and read back (cmp) their own patterns through the
#     map in a loop; mid-workload the host kill -9s gw3. Checked: 0 I/O errors, every pass
#     verifies, the map's gw3 path is failed in `multipath -ll`, the data reads back through
#     each survivor's raw path; measured: the time from the kill request until `sg_rtpg`
#     through gw1's and through gw2's path shows group 3 Unavailable (limit 2 x TTL; the
#     number includes the hook's round trip and the guest's polling, so it is an upper bound;
#     the survivors' own log lines, on the host's clock, are printed beside it).
# (6) Fencing as a cluster does it. Debian's fence-agents is not in the VM image (fence_scsi is
#     looked for and, absent, not used): this runs fence_scsi's own sg_persist sequence (keys
#     as fence_scsi makes them, cluster hash + node id). gw3 is restarted first (it re-joins).
#     Two hosts in the VM (two open-iscsi ifaces with their own InitiatorName), each logged in
#     to all three gateways: both register on every path ("on": REGISTER AND IGNORE EXISTING
#     KEY), host1 reserves Write Exclusive Registrants Only (type 5) through gw1, host2
#     preempts-and-aborts host1's key through gw2 ("off"). Checked through every gateway:
#     the keys and the reservation, host1's writes fail with RESERVATION CONFLICT and do not
#     land, host2's writes succeed and read back.
#
#   tests/linux-initiator/cluster.sh    (root; needs target/release/ironlun built with
#                                        `cargo build --release -p ironlun --features cluster`)
#   IRONLUN_BIN=path VMI_TOOL=path VMI_BUILD_DIR=dir CLUSTER_TTL=2|3 CLUSTER_KEEP=1 tests/linux-initiator/cluster.sh
set -euo pipefail

TARGET=iqn.2026-12.org.ironlun:clustered
DEV=core/fileio_1/shared
SERIAL=vmi-cluster-lu-0001

# ================================================================= host side
if [ -z "${VMI_GUEST:-}" ]; then
  SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
  ROOT="$(cd "$(dirname "$SELF")/../.." && pwd)"

  # gw_start I: start gateway I on its state dir (configured by gw_configure the first time,
  # from its saved config.json after that); pid in $CL_T/gwI.pid.
  gw_start() {
    local i=$1
    # Not a job of this shell (no "Killed" notes, no zombie): reparented at once.
    (setsid "$CL_BIN" serve --state-dir "$CL_T/gw$i" --config "$CL_T/empty.json" \
      --cluster "$CL_EPS" --node "gw$i" --cluster-ttl "$CL_TTL" \
      </dev/null >>"$CL_T/gw$i.log" 2>&1 & echo $! >"$CL_T/gw$i.pid")
    for _ in $(seq 100); do
      "$CL_BIN" --state-dir "$CL_T/gw$i" ls core >/dev/null 2>&1 && return 0
      sleep 0.1
    done
    echo "gw$i did not come up:"; tail -20 "$CL_T/gw$i.log"; return 1
  }
  gw_alive() { # I: running (not gone, not a zombie)
    local p; p=$(cat "$CL_T/gw$1.pid" 2>/dev/null) || return 1
    [ -e "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]
  }
  # synced I N: the log of gateway I says "in sync" at least N times
  synced() { [ "$(grep -c "clustered LU $SERIAL in sync" "$CL_T/gw$1.log" 2>/dev/null)" -ge "$2" ]; }
  wait_synced() { # I N
    for _ in $(seq 200); do synced "$1" "$2" && return 0; sleep 0.1; done
    echo "gw$1 never synced:"; tail -20 "$CL_T/gw$1.log"; return 1
  }

  if [ "${1:-}" = --hook ]; then
    # One request line from the guest: kill I | start I | unavailable | alua I | log I | keys
    read -r req i _ || true
    case "$req" in
      kill)
        p=$(cat "$CL_T/gw$i.pid")
        date +%s.%N >"$CL_T/kill$i.time"
        kill -9 "$p"
        for _ in $(seq 100); do gw_alive "$i" || break; sleep 0.01; done
        if gw_alive "$i"; then echo "gw$i (pid $p) still alive"; else echo "killed gw$i (pid $p) at host time $(date +%s.%N)"; fi
        ;;
      start)
        n=$(grep -c "clustered LU $SERIAL in sync" "$CL_T/gw$i.log" || true)
        if gw_alive "$i"; then echo "gw$i already running"; exit 0; fi
        gw_start "$i" && wait_synced "$i" $((n + 1)) && echo "started gw$i (pid $(cat "$CL_T/gw$i.pid")), in sync"
        ;;
      unavailable)
        # On the host's clock: from the kill to each survivor's log line that made the dead
        # gateway's group Unavailable.
        for k in "$CL_T"/kill?.time; do
          d=${k%.time}; d=${d##*kill}
          for s in 1 2 3; do
            [ "$s" = "$d" ] && continue
            l=$(grep -m1 "target port group $d has no live gateway" "$CL_T/gw$s.log" || true)
            if [ -z "$l" ]; then echo "host: gw$s has not made group $d Unavailable"; continue; fi
            awk -v a="$(cat "$k")" -v b="$(date -d "${l%% *}" +%s.%N)" -v s="$s" -v d="$d" \
              'BEGIN{printf "host: gw%s made group %s Unavailable %.2f s after the kill (its log)\n", s, d, b - a}'
          done
        done
        ;;
      alua) "$CL_BIN" --state-dir "$CL_T/gw$i" alua show "$DEV" 2>&1 || true ;;
      log) tail -n 15 "$CL_T/gw$i.log" ;;
      keys) ETCDCTL_API=3 etcdctl --endpoints="$CL_EPS" get --prefix "" --keys-only 2>&1 | grep -v '^$' || true ;;
      *) echo "unknown request: $req" ;;
    esac
    exit 0
  fi

  BIN=${IRONLUN_BIN:-$ROOT/target/release/ironlun}
  TOOL=${VMI_TOOL:-$ROOT/../shared/tools/linux-initiator}
  TTL=${CLUSTER_TTL:-2}
  [ -x "$BIN" ] || { echo "cluster.sh: no $BIN; build it with: cargo build --release -p ironlun --features cluster" >&2; exit 2; }
  if ! "$BIN" serve --help 2>/dev/null | grep -q -- --cluster; then
    echo "cluster.sh: $BIN has no 'serve --cluster': build it with: cargo build --release -p ironlun --features cluster" >&2
    exit 2
  fi
  for c in etcd etcdctl; do
    command -v $c >/dev/null || { echo "cluster.sh: $c missing (apt-get install etcd-server)" >&2; exit 2; }
  done
  for p in 4200 4201 4202 4210 4211 4212 4221 4222 4223; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "cluster.sh: port 127.0.0.1:$p is busy" >&2; exit 2; fi
  done
  "$TOOL/build-image.sh" >/dev/null

  export CL_T CL_BIN CL_EPS CL_TTL
  CL_T=$(mktemp -d /tmp/ironlun-vmi-cluster.XXXXXX)
  CL_BIN=$BIN CL_TTL=$TTL
  CL_EPS=http://127.0.0.1:4200,http://127.0.0.1:4201,http://127.0.0.1:4202
  cleanup() {
    local rc=$? f
    for f in "$CL_T"/gw?.pid "$CL_T"/etcd?.pid; do
      [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
    done
    if [ $rc != 0 ]; then
      for f in "$CL_T"/gw?.log; do echo "--- $(basename "$f") (tail)"; tail -n 25 "$f"; done
    fi
    if [ -n "${CLUSTER_KEEP:-}" ]; then echo "cluster.sh: state kept in $CL_T"; else rm -rf "$CL_T"; fi
  }
  trap cleanup EXIT

  echo "== etcd: 3 members on 127.0.0.1:4200-4202"
  cluster=m0=http://127.0.0.1:4210,m1=http://127.0.0.1:4211,m2=http://127.0.0.1:4212
  for m in 0 1 2; do
    (etcd --name "m$m" --data-dir "$CL_T/etcd-m$m" \
      --listen-client-urls "http://127.0.0.1:420$m" --advertise-client-urls "http://127.0.0.1:420$m" \
      --listen-peer-urls "http://127.0.0.1:421$m" --initial-advertise-peer-urls "http://127.0.0.1:421$m" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "vmi-cluster-$$" \
      --heartbeat-interval 50 --election-timeout 500 --logger zap --log-outputs stderr \
      </dev/null >"$CL_T/etcd-m$m.log" 2>&1 & echo $! >"$CL_T/etcd$m.pid")
  done
  ok=0
  for _ in $(seq 100); do
    if ETCDCTL_API=3 etcdctl --endpoints="$CL_EPS" endpoint health >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.2
  done
  [ $ok = 1 ] || { echo "FAIL: etcd not healthy"; tail -n 5 "$CL_T"/etcd-m?.log; exit 1; }

  echo "== three gateways (lease TTL $TTL s) on one backing file"
  echo '{"version":1,"storage_objects":[],"targets":[]}' >"$CL_T/empty.json"
  truncate -s 64M "$CL_T/lu0.img"
  for i in 1 2 3; do
    gw_start "$i"
    cli() { "$BIN" --state-dir "$CL_T/gw$i" "$@" >/dev/null; }
    tpg=iscsi/$TARGET/tpgt_1$i
    cli create "$DEV" "path=$CL_T/lu0.img" size=64M
    cli set "$DEV/wwn/vpd_unit_serial" "$SERIAL"
    cli set "$DEV/attrib/cluster" 1
    for g in 1 2 3; do cli create "$DEV/alua/gw$g" "tg_pt_gp_id=$g"; done
    cli create "$tpg" "rtpi=1$i"
    cli create "$tpg/lun/lun_0" "dev=$DEV"
    cli set "$tpg/lun/lun_0/alua_tg_pt_gp" "gw$i"
    cli set "$tpg/attrib/generate_node_acls" 1
    cli set "$tpg/attrib/demo_mode_write_protect" 0
    cli create "$tpg/np/127.0.0.1:422$i"
    cli set "$tpg/enable" 1
  done
  for i in 1 2 3; do wait_synced "$i" 1; done
  "$BIN" --state-dir "$CL_T/gw1" alua show "$DEV"

  rc=0
  t0=$(date +%s.%N)
  "$TOOL/run-scenario.sh" -t 540 -f "$(dirname "$SELF")/multipath-ironlun.conf" -e "TARGET=$TARGET" -e "TTL=$TTL" \
    -p 10.0.2.101:3260=127.0.0.1:4221 -p 10.0.2.102:3260=127.0.0.1:4222 \
    -p 10.0.2.103:3260=127.0.0.1:4223 -H "$SELF --hook" "$SELF" || rc=$?
  echo "cluster.sh: exit $rc after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
  for i in 1 2 3; do gw_alive "$i" || { echo "FAIL: gw$i is not running at the end"; rc=1; }; done
  for i in 1 2 3; do
    n=$(grep -c "membership lost" "$CL_T/gw$i.log" || true)
    echo "gw$i: $n cluster membership losses (re-joins) in its log"
    [ "$n" = 0 ] || grep "membership lost" "$CL_T/gw$i.log" | head -3 | cut -c1-260
  done
  if grep -h -i "panick\|ERROR" "$CL_T"/gw?.log >/dev/null; then
    echo "gateway log lines at ERROR level / panics:"; grep -h -i "panick\|ERROR" "$CL_T"/gw?.log | tail -20
  fi
  exit $rc
fi

# ================================================================= guest side
. "$VMI_LIB"
P=("" 10.0.2.101:3260 10.0.2.102:3260 10.0.2.103:3260)
LIMIT=$((2 * TTL))
NFAIL=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; NFAIL=$((NFAIL + 1)); }
die() { echo "FAIL: $*"; exit 1; }
now() { vmi_uptime; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b - a}'; }

# disk_gw sdX: "GATEWAY INITIATORNAME" of the session the disk sits on
disk_gw() {
  local s addr
  s=$(readlink -f "/sys/block/$1/device" | grep -o 'session[0-9]*' | head -1)
  addr=$(cat "/sys/class/iscsi_connection/connection${s#session}:0/persistent_address")
  echo "${addr##*.10}" "$(cat "/sys/class/iscsi_session/$s/initiatorname")"
}
# rtpg_states DEV: "GROUP_ID STATE" lines (hex) from sg_rtpg; fails as sg_rtpg does
rtpg_states() {
  local out
  out=$(sg_rtpg -d "$1" 2>&1) || return 1
  awk '/port group id/ {match($0, /0x[0-9a-fA-F]+/); id = substr($0, RSTART, RLENGTH)}
       /asymmetric access state/ {match($0, /0x[0-9a-fA-F]+/); print id, substr($0, RSTART, RLENGTH)}' <<<"$out"
}
# group_state DEV ID: the state code of group ID (e.g. 0x00), empty if RTPG failed
group_state() { rtpg_states "$1" 2>/dev/null | awk -v id="0x$2" '$1 == id {print $2}'; }
# sgp ARGS...: sg_persist, run again past unit attentions (exit 6: the preempted nexuses get
# REGISTRATIONS PREEMPTED, every nexus ASYMMETRIC ACCESS STATE CHANGED after a gateway's
# death or re-join); prints its output, returns its exit code
sgp() {
  local i rc out
  for i in 1 2 3 4 5; do
    rc=0; out=$(sg_persist "$@" 2>&1) || rc=$?
    [ $rc = 6 ] || break
  done
  echo "$out"
  return $rc
}

# ----------------------------------------------------------------- (3) gateway loss under I/O
vmi_step "(3) dm-multipath over three gateways; kill -9 of gw3 under verified I/O"
cp /vmi/work/multipath-ironlun.conf /etc/multipath.conf
multipathd reconfigure >/dev/null
for g in 1 2 3; do vmi_discover "${P[$g]}"; done
iscsiadm -m node -o update -n node.session.timeo.replacement_timeout -v 5 >/dev/null
for g in 1 2 3; do vmi_run iscsiadm -m node -T "$TARGET" -p "${P[$g]}" --login >/dev/null; done
vmi_wait_disks 3 || die "three disks did not appear"
declare -A SD
for d in $(vmi_iscsi_disks); do read -r g _ < <(disk_gw "$d"); SD[$g]=/dev/$d; done
echo "paths: gw1 ${SD[1]}, gw2 ${SD[2]}, gw3 ${SD[3]}"
for g in 1 2 3; do
  [ -b "${SD[$g]:-}" ] || die "no disk through gw$g"
  sg_vpd -p di "${SD[$g]}" | grep -q "Relative target port: $(printf '0x%x' $((10 + g)))$" || die "gw$g's path has no RTPI 1$g"
done
vmi_run sg_rtpg -d "${SD[1]}"
for g in 1 2 3; do
  [ "$(group_state "${SD[1]}" "$g")" = 0x00 ] || die "group $g not Active/Optimized: $(rtpg_states "${SD[1]}")"
done
pass "three paths, RTPIs 11-13, groups 1-3 Active/Optimized"
MAP=$(vmi_wait_mpath 3 60) || die "no multipath map of 3 paths"
vmi_run multipath -ll "$MAP"
multipath -ll "$MAP" | grep -q "hwhandler='1 alua'" || fail "the map has no alua hardware handler"
for d in "${SD[@]}"; do
  [ "$(cat "/sys/block/${d#/dev/}/device/dh_state")" = alua ] || fail "$d: scsi_dh $(cat "/sys/block/${d#/dev/}/device/dh_state")"
done

# The workload: worker W writes its pattern A or B (alternating passes) to its own 4 MiB
# region of the map and reads it back; a line per pass in /tmp/wW.log.
for w in 1 2; do for p in 0 1; do head -c 4194304 /dev/urandom >/tmp/pat.$w.$p; done; done
rm -f /tmp/stop /tmp/w?.log /tmp/w?.err
worker() {
  local w=$1 pass=0 t0 t1 st rb=/tmp/rb.$1 skip=$(( ($1 - 1) * 8 ))
  while [ ! -e /tmp/stop ]; do
    st=ok; t0=$(now)
    if ! dd if=/tmp/pat.$w.$((pass % 2)) of="/dev/mapper/$MAP" bs=1M seek=$skip oflag=direct conv=fsync status=none 2>>/tmp/w$w.err; then
      st=write-error
    elif ! dd if="/dev/mapper/$MAP" of=$rb bs=1M skip=$skip count=4 iflag=direct status=none 2>>/tmp/w$w.err; then
      st=read-error
    elif ! cmp -s $rb /tmp/pat.$w.$((pass % 2)); then
      st=verify-error
    fi
    t1=$(now)
    echo "$pass $st $t0 $t1" >>/tmp/w$w.log
    pass=$((pass + 1))
  done
}
passes() { [ -f "/tmp/w$1.log" ] && wc -l <"/tmp/w$1.log" || echo 0; }
worker 1 & W1=$!
worker 2 & W2=$!
for _ in $(seq 600); do [ "$(passes 1)" -ge 2 ] && [ "$(passes 2)" -ge 2 ] && break; sleep 0.1; done
echo "workload running: $(passes 1) + $(passes 2) passes verified before the kill"

T_KILL=$(now)
vmi_run vmi_host kill 3
T_HOOK=$(now)
echo "kill request sent at guest uptime $T_KILL s, answered after $(secs "$T_KILL" "$T_HOOK") s"
# One poller per survivor: sg_rtpg through its path until group 3 reads Unavailable (30 s).
poll_unavailable() { # G: writes the guest uptime of the first Unavailable answer to /tmp/unavail.G
  while awk -v a="$T_KILL" -v b="$(now)" 'BEGIN{exit !(b - a < 30)}'; do
    if [ "$(group_state "${SD[$1]}" 3)" = 0x03 ]; then now >/tmp/unavail.$1; return; fi
    sleep 0.02
  done
}
rm -f /tmp/unavail.?
poll_unavailable 1 & PU1=$!
poll_unavailable 2 & PU2=$!
wait "$PU1" "$PU2"
U1=$(cat /tmp/unavail.1 2>/dev/null || true) U2=$(cat /tmp/unavail.2 2>/dev/null || true)
vmi_run sg_rtpg -d "${SD[1]}" || true
vmi_host alua 1
vmi_host unavailable | tee /tmp/host-unavail
for v in 1:"$U1" 2:"$U2"; do
  g=${v%%:*} t=${v#*:}
  if [ -z "$t" ]; then
    fail "RTPG through gw$g never showed gw3's group Unavailable (30 s)"
  else
    d=$(secs "$T_KILL" "$t")
    echo "MEASURED: RTPG through gw$g shows gw3's group Unavailable $d s after the kill (lease TTL $TTL s, limit $LIMIT s)"
    if awk -v d="$d" -v l="$LIMIT" 'BEGIN{exit !(d <= l)}'; then pass "gw$g reports gw3 Unavailable within 2 x TTL ($d s <= $LIMIT s)"
    else fail "gw$g reported gw3 Unavailable after $d s, more than 2 x TTL ($LIMIT s)"; fi
  fi
done

# dm-multipath fails gw3's path (after replacement_timeout) and goes on through the others.
T_FAILED=""
for _ in $(seq 120); do
  st=$(multipathd show paths raw format '%d %t %T' 2>/dev/null | awk -v d="${SD[3]#/dev/}" '$1 == d {print $2, $3}')
  case "$st" in failed*) T_FAILED=$(now); break ;; esac
  sleep 0.5
done
[ -n "$T_FAILED" ] && echo "MEASURED: dm-multipath failed gw3's path $(secs "$T_KILL" "$T_FAILED") s after the kill" \
  || fail "gw3's path never failed in dm-multipath (state: $st)"
n1=$(passes 1) n2=$(passes 2)
for _ in $(seq 1200); do [ "$(passes 1)" -ge $((n1 + 3)) ] && [ "$(passes 2)" -ge $((n2 + 3)) ] && break; sleep 0.1; done
touch /tmp/stop
wait "$W1" "$W2"
vmi_run multipath -ll "$MAP"
multipath -ll "$MAP" >/tmp/ll
grep "${SD[3]#/dev/} " /tmp/ll | grep -q "failed" && pass "multipath -ll shows gw3's path (${SD[3]}) failed" \
  || fail "multipath -ll does not show gw3's path failed: $(grep "${SD[3]#/dev/} " /tmp/ll)"
for g in 1 2; do
  grep "${SD[$g]#/dev/} " /tmp/ll | grep -q "active ready" || fail "gw$g's path is not active ready: $(grep "${SD[$g]#/dev/} " /tmp/ll)"
done
total=0 bad=0 maxd=0 after=0
for w in 1 2; do
  total=$((total + $(passes $w)))
  bad=$((bad + $(grep -vc " ok " /tmp/w$w.log || true)))
  after=$((after + $(awk -v k="$T_KILL" '$3 > k' /tmp/w$w.log | wc -l)))
  maxd=$(awk -v m="$maxd" '{d = $4 - $3; if (d > m) m = d} END{printf "%.2f", m}' /tmp/w$w.log)
done
grep -v " ok " /tmp/w?.log || true
cat /tmp/w?.err 2>/dev/null || true
echo "MEASURED: $total passes of 4 MiB write + read + cmp ($after started after the kill), $bad failed; longest pass $maxd s"
[ "$bad" = 0 ] && [ ! -s /tmp/w1.err ] && [ ! -s /tmp/w2.err ] && pass "0 I/O errors, 0 verify errors through the map while gw3 died" \
  || fail "$bad passes with I/O or verify errors"
[ "$after" -ge 6 ] || fail "only $after passes after the kill"
# What the workers wrote last, read through each survivor's own path.
for w in 1 2; do
  last=$(tail -1 /tmp/w$w.log | awk '{print $1 % 2}')
  for g in 1 2; do
    dd if="${SD[$g]}" bs=1M skip=$(( (w - 1) * 8 )) count=4 iflag=direct status=none | cmp -s - /tmp/pat.$w.$last \
      || fail "worker $w's data does not read back through gw$g"
  done
done
pass "the data reads back through gw1 and through gw2"
dmerr=$(dmesg | grep -c "I/O error, dev dm-\|Buffer I/O error" || true)
patherr=$(dmesg | grep -c "I/O error, dev sd" || true)
echo "dmesg: $dmerr I/O errors on the map, $patherr on paths (retried by dm-multipath)"
[ "$dmerr" = 0 ] || fail "dmesg shows I/O errors on the map"
dmesg | grep -i "alua\|multipath" | tail -12

# ----------------------------------------------------------------- (6) fencing
vmi_step "(6) fence_scsi's sequence from two hosts on different gateways"
multipath -f "$MAP" >/dev/null 2>&1 || multipath -F >/dev/null 2>&1 || true
multipathd shutdown >/dev/null 2>&1 || true   # raw paths: each host's own disks
vmi_logout_all >/dev/null 2>&1 || true
vmi_run vmi_host start 3 | tee /tmp/start3
grep -q "started gw3" /tmp/start3 || fail "gw3 did not re-join"
if command -v fence_scsi >/dev/null; then
  echo "fence_scsi is installed (its sg_persist sequence is what runs below)"
else
  echo "fence_scsi: not in the VM image (Debian's fence-agents); running its sg_persist sequence"
fi
K1=0x5e8c0001 K2=0x5e8c0002
vmi_iface host1 iqn.2024-01.test.vmi:host1
vmi_iface host2 iqn.2024-01.test.vmi:host2
for h in host1 host2; do
  for g in 1 2 3; do vmi_add_node "$TARGET" "${P[$g]},1$g" "$h"; done
done
iscsiadm -m node -o update -n node.session.timeo.replacement_timeout -v 5 >/dev/null
for h in host1 host2; do
  for g in 1 2 3; do vmi_run iscsiadm -m node -T "$TARGET" -p "${P[$g]}" -I "$h" --login >/dev/null; done
done
vmi_wait_disks 6 || die "six disks did not appear"
declare -A H
for d in $(vmi_iscsi_disks); do
  read -r g ini < <(disk_gw "$d")
  H[${ini##*:}.$g]=/dev/$d
done
for h in host1 host2; do for g in 1 2 3; do
  [ -b "${H[$h.$g]:-}" ] || die "no disk of $h through gw$g"
  echo "$h through gw$g: ${H[$h.$g]}"
done; done
vmi_run sg_rtpg -d "${H[host1.3]}" || true
[ "$(group_state "${H[host1.1]}" 3)" = 0x00 ] && pass "gw3's group Active/Optimized again after its re-join" \
  || fail "gw3's group after re-join: $(group_state "${H[host1.1]}" 3)"

# sgio DEV read|write LBA FILE: READ(10)/WRITE(10) of one 512-byte block with sg_raw, retried
# past unit attentions; prints the sg3_utils exit code (0 GOOD, 24 RESERVATION CONFLICT) and
# the first unit attention seen, if any (to /tmp/ua).
sgio() {
  local dev=$1 how=$2 lba rc i
  lba=$(printf '%02x %02x %02x %02x' $(($3 >> 24 & 255)) $(($3 >> 16 & 255)) $(($3 >> 8 & 255)) $(($3 & 255)))
  : >/tmp/ua
  for i in 1 2 3 4 5; do
    rc=0
    if [ "$how" = write ]; then
      sg_raw -s 512 -i "$4" "$dev" 2a 00 $lba 00 00 01 00 >/tmp/sgio.out 2>&1 || rc=$?
    else
      sg_raw -r 512 -o "$4" "$dev" 28 00 $lba 00 00 01 00 >/tmp/sgio.out 2>&1 || rc=$?
    fi
    [ $rc = 6 ] || break
    [ -s /tmp/ua ] || grep -i "sense\|attention\|additional" /tmp/sgio.out | tr '\n' ' ' >/tmp/ua
  done
  echo $rc
}
head -c 512 /dev/urandom >/tmp/blk.h1
head -c 512 /dev/urandom >/tmp/blk.h2
head -c 512 /dev/urandom >/tmp/blk.orig
LBA_H1=20000 LBA_H2=20100
for g in 1 2 3; do
  for h in host1 host2; do
    vmi_run sgp --out --register-ignore --param-sark=$([ $h = host1 ] && echo $K1 || echo $K2) "${H[$h.$g]}" >/dev/null \
      || fail "$h could not register through gw$g"
  done
done
vmi_run sgp --out --reserve --param-rk=$K1 --prout-type=5 "${H[host1.1]}" || fail "host1's RESERVE"
for h in host1 host2; do for g in 1 2 3; do
  keys=$(sgp --in --read-keys "${H[$h.$g]}" || true)
  [ "$(grep -c "$K1" <<<"$keys")" = 3 ] && [ "$(grep -c "$K2" <<<"$keys")" = 3 ] \
    || fail "$h via gw$g reads other keys: $keys"
  res=$(sgp --in --read-reservation "${H[$h.$g]}" || true)
  grep -q "Key=$K1" <<<"$res" && grep -qi "Write Exclusive, registrants only" <<<"$res" \
    || fail "$h via gw$g reads another reservation: $res"
done; done
vmi_run sgp --in --read-reservation "${H[host2.3]}" || true
pass "both hosts registered on every path; host1's type 5 reservation seen through every gateway"
for g in 1 2 3; do
  for h in host1 host2; do
    [ "$(sgio "${H[$h.$g]}" write $((LBA_H1 + g)) /tmp/blk.orig)" = 0 ] || fail "$h could not write through gw$g before the fence: $(cat /tmp/sgio.out)"
  done
done
pass "both hosts (registrants) write through every gateway before the fence"

vmi_step "host2 fences host1 (PREEMPT AND ABORT, type 5) through gw2"
vmi_run sgp --out --preempt-abort --param-rk=$K2 --param-sark=$K1 --prout-type=5 "${H[host2.2]}" \
  || fail "host2's PREEMPT AND ABORT"
for h in host1 host2; do for g in 1 2 3; do
  keys=$(sgp --in --read-keys "${H[$h.$g]}" || true)
  [ "$(grep -c "$K1" <<<"$keys")" = 0 ] && [ "$(grep -c "$K2" <<<"$keys")" = 3 ] \
    || fail "after the fence $h via gw$g reads: $keys"
  res=$(sgp --in --read-reservation "${H[$h.$g]}" || true)
  grep -q "Key=$K2" <<<"$res" || fail "after the fence $h via gw$g reads reservation: $res"
done; done
vmi_run sgp --in --read-keys "${H[host1.3]}" || true
vmi_run sgp --in --read-reservation "${H[host1.3]}" || true
pass "through every gateway: only host2's key is registered, host2 holds the reservation"
for g in 1 2 3; do
  rc=$(sgio "${H[host1.$g]}" write $((LBA_H1 + g)) /tmp/blk.h1)
  ua=$(cat /tmp/ua)
  if [ "$rc" = 24 ]; then
    pass "host1's WRITE through gw$g: RESERVATION CONFLICT${ua:+ (first: $ua)}"
  else
    fail "host1's WRITE through gw$g after the fence: sg_raw exit $rc: $(cat /tmp/sgio.out)"
  fi
  if dd if=/tmp/blk.h1 of="${H[host1.$g]}" bs=512 seek=$((LBA_H1 + g)) count=1 oflag=direct status=none 2>/tmp/dd.err; then
    fail "host1's dd write through gw$g succeeded after the fence"
  else
    # The kernel maps RESERVATION CONFLICT to BLK_STS_NEXUS: EBADE, "Invalid exchange".
    grep -q "Invalid exchange" /tmp/dd.err && pass "host1's dd through gw$g fails: $(head -1 /tmp/dd.err)" \
      || fail "host1's dd through gw$g failed otherwise than with a reservation conflict: $(cat /tmp/dd.err)"
  fi
  [ "$(sgio "${H[host1.$g]}" read $((LBA_H1 + g)) /tmp/rd)" = 0 ] || echo "(host1's read through gw$g: $(cat /tmp/sgio.out))"
done
for g in 1 2 3; do
  [ "$(sgio "${H[host2.$g]}" write $((LBA_H2 + g)) /tmp/blk.h2)" = 0 ] && pass "host2's WRITE through gw$g: GOOD" \
    || fail "host2's WRITE through gw$g: $(cat /tmp/sgio.out)"
done
for g in 1 2 3; do
  o=$(( g % 3 + 1 ))   # read through another gateway than the one written through
  [ "$(sgio "${H[host2.$o]}" read $((LBA_H2 + g)) /tmp/rd)" = 0 ] && cmp -s /tmp/rd /tmp/blk.h2 \
    || fail "host2's block written through gw$g does not read back through gw$o"
  [ "$(sgio "${H[host2.$o]}" read $((LBA_H1 + g)) /tmp/rd)" = 0 ] && cmp -s /tmp/rd /tmp/blk.orig \
    || fail "host1's refused write through gw$g changed the block (read through gw$o)"
done
pass "host2's writes read back through the other gateways; host1's refused writes did not land"
vmi_run sgp --out --clear --param-rk=$K2 "${H[host2.1]}" || true
vmi_logout_all >/dev/null 2>&1 || true

echo
if [ $NFAIL = 0 ]; then echo "PASS: cluster scenario"; exit 0; fi
echo "FAIL: cluster scenario, $NFAIL failed checks"
exit 1
