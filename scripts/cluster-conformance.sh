#!/usr/bin/env bash
# Cluster conformance (docs/cluster.md): libiscsi's iscsi-test-cu persistent-reservation suites
# (every SCSI.Prin* and SCSI.Prout* test) and the MultipathIO suite, with URL1 and URL2 on one
# gateway (BASELINE), then URL1 on gateway gw1 and URL2 on gateway gw2 (ACROSS). Every test that
# passes in BASELINE must pass ACROSS: one FAIL line per test that does not, exit 1 if any.
#
# Each run gets a fresh cluster: a 3-member etcd on loopback (clients 4240-4242, peers
# 4250-4252), two gateways `ironlun serve --cluster … --node gwN --cluster-ttl 3` (default
# targets' portals 4243/4244) sharing one 64 MiB file as one clustered fileio LU (same unit
# serial, attrib/cluster=1, ALUA groups gw1..gw3 ids 1..3), demo-mode TPGs of one target:
#   gw1: tpgt_11 rtpi=11 on 127.0.0.1:4245 and tpgt_13 rtpi=13 on 127.0.0.1:4247, group gw1
#   gw2: tpgt_12 rtpi=12 on 127.0.0.1:4246, group gw2
# (RTPI 1 is the built-in default target's.)
# BASELINE: URL1 = tpgt_11, URL2 = tpgt_13 (both on gw1).
# ACROSS:   URL1 = tpgt_11 (gw1), URL2 = tpgt_12 (gw2).
#
# Why this baseline: the configuration (same etcd, same two clustered gateways, same LU, same
# attributes, two target ports with their own RTPIs) is the same in both runs; the only thing
# that changes is which daemon serves the second path. So a difference in verdicts is caused by
# the state sharing between gateways and nothing else (a plain non-clustered daemon would also
# compare the clustered PR OUT path, its etcd round trip and the ALUA groups against the local
# one, which is a different question: BASELINE=plain answers it, with a plain ironlun serving
# the same LU through tpgt_11 (rtpi 11, 4248) and tpgt_13 (rtpi 13, 4249), no etcd).
#
#   scripts/cluster-conformance.sh   # builds target/release/ironlun --features cluster
#   IRONLUN_BIN=path OUT=dir TESTS='SCSI.Prout*' RUST_LOG=debug BASELINE=cluster|plain \
#     scripts/cluster-conformance.sh
# Logs: $OUT/{baseline,across}/{testcu.log,gw1.log,gw2.log,etcd-m*.log,cluster-status.txt}.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${IRONLUN_BIN:-${CARGO_TARGET_DIR:-target}/release/ironlun}
OUT=${OUT:-${CARGO_TARGET_DIR:-target}/cluster-conformance}
TESTS=${TESTS:-SCSI.Prin*,SCSI.Prout*,SCSI.MultipathIO}
BASELINE=${BASELINE:-cluster}
export RUST_LOG=${RUST_LOG:-info}
TTL=3
SERIAL=cluster-conf-0001
TARGET=iqn.2026-12.org.ironlun:clustered
DEV=core/fileio_1/shared
ETCD_CLIENT=4240 # members m0..m2: clients 4240..4242, peers 4250..4252
ETCD_EPS=http://127.0.0.1:4240,http://127.0.0.1:4241,http://127.0.0.1:4242
INIT1=iqn.2026-12.org.ironlun:cluster-conformance-host1
INIT2=iqn.2026-12.org.ironlun:cluster-conformance-host2

for tool in iscsi-test-cu etcd etcdctl python3; do
  command -v "$tool" >/dev/null || {
    echo "cluster-conformance: $tool missing (apt-get install libiscsi-bin etcd-server python3)" >&2
    exit 1
  }
done
case "$BASELINE" in cluster | plain) ;; *) echo "cluster-conformance: BASELINE=cluster|plain" >&2; exit 2 ;; esac
if ! { [ -x "$BIN" ] && "$BIN" serve --help 2>/dev/null | grep -q -- '--cluster'; }; then
  [ -n "${IRONLUN_BIN:-}" ] && { echo "cluster-conformance: $BIN lacks serve --cluster" >&2; exit 1; }
  cargo build --release -p ironlun --features cluster
fi
for p in $(seq 4240 4259); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "cluster-conformance: port 127.0.0.1:$p is in use (this script uses 4240-4259)" >&2
    exit 1
  fi
done

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
tmp=$(mktemp -d /tmp/ironlun-cluster-conformance.XXXXXX)
pids=()
# Stop what this script started, newest first (the gateways before etcd, so that they leave
# the cluster cleanly): SIGTERM, SIGKILL after 10 s.
cleanup() {
  local i p
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    p=${pids[i]}
    kill "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "cluster-conformance: $*" >&2; exit 1; }

start_etcd() { # DIR
  local dir=$1 i cluster=""
  for i in 0 1 2; do cluster+="${cluster:+,}m$i=http://127.0.0.1:$((ETCD_CLIENT + 10 + i))"; done
  for i in 0 1 2; do
    local c=http://127.0.0.1:$((ETCD_CLIENT + i)) p=http://127.0.0.1:$((ETCD_CLIENT + 10 + i))
    etcd --name "m$i" --data-dir "$tmp/$(basename "$dir")-m$i.etcd" \
      --listen-client-urls "$c" --advertise-client-urls "$c" \
      --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      --initial-cluster-token "ironlun-cc-$$-$(basename "$dir")" \
      --heartbeat-interval 50 --election-timeout 500 \
      --logger zap --log-outputs stderr >"$dir/etcd-m$i.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 200); do
    ETCDCTL_API=3 etcdctl --endpoints "$ETCD_EPS" --dial-timeout 1s endpoint health >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "etcd not healthy within 20 s (see $dir/etcd-m*.log)"
}

# start_daemon DIR NAME PORTAL [serve args…]: ironlun serve on state dir $tmp/DIR-NAME; sets $state.
start_daemon() {
  local dir=$1 name=$2 portal=$3
  shift 3
  state=$tmp/$(basename "$dir")-$name
  mkdir -p "$state"
  "$BIN" serve --state-dir "$state" --portal "$portal" "$@" >"$dir/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || die "$name exited at start (see $dir/$name.log)"
    [ -S "$state/control.sock" ] && (exec 3<>"/dev/tcp/${portal%:*}/${portal##*:}") 2>/dev/null && return 0
    sleep 0.1
  done
  die "$name did not come up (see $dir/$name.log)"
}

cli() { "$BIN" --state-dir "$1" "${@:2}" >/dev/null || die "ironlun ${*:2} failed"; }

# configure_lu STATE CLUSTERED: the shared file as the LU, groups gw1..gw3.
configure_lu() {
  local st=$1 clustered=$2 g
  cli "$st" create "$DEV" "path=$tmp/shared.img" size=64M
  cli "$st" set "$DEV/wwn/vpd_unit_serial" "$SERIAL"
  [ "$clustered" = 1 ] && cli "$st" set "$DEV/attrib/cluster" 1
  for g in 1 2 3; do cli "$st" create "$DEV/alua/gw$g" "tg_pt_gp_id=$g"; done
}

# add_tpg STATE TPGT RTPI GROUP PORT…: a demo-mode TPG exporting the LU as LUN 0.
add_tpg() {
  local st=$1 tpgt=$2 rtpi=$3 group=$4 p
  shift 4
  local tpg=iscsi/$TARGET/tpgt_$tpgt
  cli "$st" create "$tpg" "rtpi=$rtpi"
  cli "$st" create "$tpg/lun/lun_0" "dev=$DEV"
  cli "$st" set "$tpg/lun/lun_0/alua_tg_pt_gp" "$group"
  cli "$st" set "$tpg/attrib/generate_node_acls" 1
  cli "$st" set "$tpg/attrib/demo_mode_write_protect" 0
  for p in "$@"; do cli "$st" create "$tpg/np/127.0.0.1:$p"; done
  cli "$st" set "$tpg/enable" 1
}

wait_synced() { # LOG
  for _ in $(seq 300); do
    grep -q "clustered LU $SERIAL in sync" "$1" && return 0
    sleep 0.1
  done
  die "no 'clustered LU $SERIAL in sync' in $1 within 30 s"
}

testcu() { # DIR URL1 URL2
  echo "cluster-conformance: $(basename "$1"): iscsi-test-cu -t '$TESTS' $2 $3"
  timeout 900 iscsi-test-cu -d -v -V -i "$INIT1" -I "$INIT2" -t "$TESTS" "$2" "$3" \
    >"$1/testcu.log" 2>&1 || true
}

stop_all() { # DIR NAME…: check the named daemons survived, then stop everything
  local dir=$1 p
  shift
  for p in "$@"; do
    if grep -q "panicked" "$dir/$p.log"; then
      echo "cluster-conformance: $p panicked (see $dir/$p.log)" >&2
      crashed=1
    fi
  done
  cleanup
  mkdir -p "$tmp"
}

crashed=0
truncate_file() { rm -f "$tmp/shared.img"; truncate -s 64M "$tmp/shared.img"; }

# run_cluster DIR URL2_TPGT: fresh etcd + gw1 (tpgt_11, tpgt_13) + gw2 (tpgt_12); URL2 on tpgt_N.
run_cluster() {
  local dir=$1 tpgt2=$2 i
  mkdir -p "$dir"
  truncate_file
  start_etcd "$dir"
  local states=()
  for i in 1 2; do
    start_daemon "$dir" "gw$i" "127.0.0.1:$((4242 + i))" \
      --cluster "$ETCD_EPS" --node "gw$i" --cluster-ttl "$TTL"
    states+=("$state")
    configure_lu "$state" 1
  done
  add_tpg "${states[0]}" 11 11 gw1 4245
  add_tpg "${states[0]}" 13 13 gw1 4247
  add_tpg "${states[1]}" 12 12 gw2 4246
  wait_synced "$dir/gw1.log"
  wait_synced "$dir/gw2.log"
  testcu "$dir" "iscsi://127.0.0.1:4245/$TARGET/0" "iscsi://127.0.0.1:$((4234 + tpgt2))/$TARGET/0"
  "$BIN" cluster --cluster "$ETCD_EPS" status >"$dir/cluster-status.txt" 2>&1 || true
  for i in 1 2; do
    kill -0 "${pids[2 + i]}" 2>/dev/null || { echo "cluster-conformance: gw$i died during the run" >&2; crashed=1; }
  done
  stop_all "$dir" gw1 gw2
}

run_plain() { # DIR: one plain ironlun, one TPG with two portals, the same file and serial
  local dir=$1
  mkdir -p "$dir"
  truncate_file
  start_daemon "$dir" gw1 127.0.0.1:4243
  configure_lu "$state" 0
  add_tpg "$state" 11 11 gw1 4248
  add_tpg "$state" 13 13 gw1 4249
  testcu "$dir" "iscsi://127.0.0.1:4248/$TARGET/0" "iscsi://127.0.0.1:4249/$TARGET/0"
  kill -0 "${pids[0]}" 2>/dev/null || { echo "cluster-conformance: gw1 died during the run" >&2; crashed=1; }
  stop_all "$dir" gw1
}

if [ "$BASELINE" = plain ]; then run_plain "$OUT/baseline"; else run_cluster "$OUT/baseline" 13; fi
run_cluster "$OUT/across" 12

status=0
python3 - "$OUT/baseline/testcu.log" "$OUT/across/testcu.log" "$BASELINE" <<'EOF' || status=1
import sys
sys.path.insert(0, "scripts")
from testcu_score import parse

def flat(path):
    with open(path, errors="replace") as f:
        tests, _ = parse(f.read())
    return {f"{s}.{t}": v for s, ts in tests.items() for t, v in ts.items()}

base, across, kind = flat(sys.argv[1]), flat(sys.argv[2]), sys.argv[3]
if not base or not across:
    print(f"cluster-conformance: no test ran (baseline {len(base)}, across {len(across)})")
    sys.exit(1)
print(f"\n{'test':48} {'baseline (' + kind + ')':20} {'across gw1+gw2':16} verdict")
fails = 0
counts = {}
for name in list(base) + [n for n in across if n not in base]:
    b, _ = base.get(name, ("MISSING", ""))
    a, note = across.get(name, ("MISSING", "not run"))
    if b == "PASSED" and a != "PASSED":
        verdict, fails = "FAIL", fails + 1
    elif b != "PASSED":
        verdict = "n/a (not passed on one gateway)"
    else:
        verdict = "ok"
    counts[verdict] = counts.get(verdict, 0) + 1
    line = f"{name:48} {b:20} {a:16} {verdict}"
    if a == "FAILED" and note:
        line += f"  ({note.split('    ')[0]})"
    print(line)
total = sum(counts.values())
print(f"\n{total} tests: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
sys.exit(1 if fails else 0)
EOF
[ "$crashed" = 0 ] || status=1
echo "cluster-conformance: logs in $OUT/{baseline,across}"
if [ "$status" = 0 ]; then echo "cluster-conformance: PASS"; else echo "cluster-conformance: FAIL"; fi
exit $status
