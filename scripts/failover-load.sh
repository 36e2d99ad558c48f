#!/usr/bin/env bash
# Failover under load (issue 10, acceptance 1): fio writes 4 KiB random blocks with verify at
# QD16 through `ironlun host serve-nbd`, which reaches one file-backed LU through two targets in
# two ALUA groups on two portals, while this script, on the target side:
#   - switches the groups AO<->Standby both ways 10 times (implicit transitions),
#   - holds one group Transitioning for 2 s, then makes it AO,
#   - disables one TPG (its sessions end: transport loss) and re-enables it,
#   - restarts the daemon once.
# Pass: fio reports 0 I/O errors and 0 verify failures. Each event's I/O pause is the longest
# fio completion latency in the 5 s after it (fio's per-I/O latency log).
#
#   scripts/failover-load.sh              RUNTIME=130 (seconds of fio, at least 2 minutes) P=3850
#   IRONLUN_BIN=path OUT=dir scripts/failover-load.sh   (OUT given, or KEEP=1: nothing removed)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${IRONLUN_BIN:-target/release/ironlun}
RUNTIME=${RUNTIME:-130}
P=${P:-3850}
# A directory of our own loses its bulk on exit (the 256 MiB image and fio's latency logs, about
# 500 MB more): the summary, the logs and status stay. KEEP=1 keeps everything.
if [ -z "${OUT:-}" ]; then
  OUT=$(mktemp -d /tmp/ironlun-failover.XXXXXX)
  OUT_MADE=1
fi
mkdir -p "$OUT"
STATE=$OUT/state
W=iqn.2026-11.org.ironlun:fo-west
E=iqn.2026-11.org.ironlun:fo-east
DEV=core/fileio_0/fo
command -v fio >/dev/null || { echo "failover-load: fio is needed (apt-get install fio)" >&2; exit 2; }

start_daemon() {
  "$BIN" serve --state-dir "$STATE" --portal "127.0.0.1:$P" >>"$OUT/daemon.log" 2>&1 &
  DAEMON=$!
  for _ in $(seq 100); do [ -S "$STATE/control.sock" ] && "$BIN" --state-dir "$STATE" ls core >/dev/null 2>&1 && return; sleep 0.1; done
  echo "failover-load: the daemon did not start" >&2; exit 1
}
cli() { "$BIN" --state-dir "$STATE" "$@" >/dev/null; }
cleanup() {
  [ -n "${NBD:-}" ] && kill "$NBD" 2>/dev/null || true
  [ -n "${DAEMON:-}" ] && kill "$DAEMON" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -n "${OUT_MADE:-}" ] && [ -z "${KEEP:-}" ]; then
    rm -f "$OUT/fo.img" "$OUT"/lat_*.log
  fi
}
trap cleanup EXIT

start_daemon
cli create "$DEV" "path=$OUT/fo.img" size=256M
for t in "$W|$((P + 1))|west|1" "$E|$((P + 2))|east|2"; do
  IFS="|" read -r iqn port name id <<<"$t"
  cli create "iscsi/$iqn/tpgt_1"
  cli create "iscsi/$iqn/tpgt_1/np/127.0.0.1:$port"
  cli create "iscsi/$iqn/tpgt_1/lun/lun_0" "dev=$DEV"
  cli set "iscsi/$iqn/tpgt_1/attrib/generate_node_acls" 1
  cli set "iscsi/$iqn/tpgt_1/attrib/demo_mode_write_protect" 0
  cli create "$DEV/alua/alua_$name" "tg_pt_gp_id=$id"
  cli set "iscsi/$iqn/tpgt_1/lun/lun_0/alua_tg_pt_gp" "alua_$name"
  cli set "iscsi/$iqn/tpgt_1/enable" 1
done
cli alua set-state "$DEV" alua_east s

UW="iscsi://127.0.0.1:$((P + 1))/$W/0"
UE="iscsi://127.0.0.1:$((P + 2))/$E/0"
"$BIN" host serve-nbd --listen "127.0.0.1:$((P + 3))" --status-socket "$OUT/status.sock" \
  --checker-interval 1 --no-path-retry 60 "$UW" "$UE" >"$OUT/nbd.log" 2>&1 &
NBD=$!
for _ in $(seq 100); do [ -S "$OUT/status.sock" ] && break; sleep 0.1; done

now() { date +%s.%N; }
now >"$OUT/fio-start"
fio --name=failover --ioengine=nbd --uri="nbd://127.0.0.1:$((P + 3))/ironlun" \
  --rw=randwrite --bs=4k --iodepth=16 --size=256M --time_based --runtime="$RUNTIME" \
  --verify=crc32c --verify_backlog=4096 --verify_fatal=1 --do_verify=1 \
  --write_lat_log="$OUT/lat" --log_avg_msec=0 --output-format=json --output="$OUT/fio.json" &
FIO=$!

EVENTS=$OUT/events.txt
: >"$EVENTS"
event() { echo "$(now) $*" >>"$EVENTS"; }
sleep 5
t_end=$(( $(date +%s) + RUNTIME - 15 ))
for i in $(seq 1 10); do
  event "switch $i: west S, east AO"
  cli alua set-state "$DEV" alua_east ao; cli alua set-state "$DEV" alua_west s
  sleep 3
  event "switch $i: west AO, east S"
  cli alua set-state "$DEV" alua_west ao; cli alua set-state "$DEV" alua_east s
  sleep 3
done
event "west transitioning 2 s, then AO"
cli alua set-state "$DEV" alua_east ao; cli alua set-state "$DEV" alua_west t
sleep 2
cli alua set-state "$DEV" alua_west ao; cli alua set-state "$DEV" alua_east s
sleep 4
event "west TPG disabled (transport loss)"
cli alua set-state "$DEV" alua_east ao
cli set "iscsi/$W/tpgt_1/enable" 0
sleep 5
event "west TPG enabled"
cli set "iscsi/$W/tpgt_1/enable" 1
sleep 6
event "daemon restart"
kill -TERM "$DAEMON"; wait "$DAEMON" 2>/dev/null || true
start_daemon
sleep 8
[ "$(date +%s)" -lt "$t_end" ] || echo "failover-load: RUNTIME too short for every event" >&2
"$BIN" host nbd-status "$OUT/status.sock" >"$OUT/status-end.txt" 2>&1 || true
rc=0
wait "$FIO" || rc=$?
python3 - "$OUT" <<'PY'
import json, sys, glob
out = sys.argv[1]
f = json.load(open(f"{out}/fio.json"))
j = f["jobs"][0]
errs = j.get("error", 0) + j.get("total_err", 0)
print(f"fio: error={j.get('error')} total_err={j.get('total_err', 0)} write iops={j['write']['iops']:.0f} "
      f"ios={j['write']['total_ios']} verify reads={j['read']['total_ios']}")
lat = []
for fn in glob.glob(f"{out}/lat_clat.*.log"):
    for line in open(fn):
        p = [x.strip() for x in line.split(",")]
        lat.append((int(p[0]), int(p[1])))   # ms since start, clat ns
events = [l.split(" ", 1) for l in open(f"{out}/events.txt").read().splitlines()]
# fio's latency log counts milliseconds from the job's start: fio starts as the script notes
# the time (its NBD handshake takes milliseconds).
t0 = float(open(f"{out}/fio-start").read())
pauses = {}
for ts, what in events:
    rel = (float(ts) - t0) * 1000 if t0 else None
    if rel is None: continue
    window = [ns for ms, ns in lat if rel - 200 <= ms <= rel + 5000]
    pauses[what] = max(window) / 1e9 if window else None
kinds = {"alua": [], "transition": [], "transport": [], "restart": []}
for what, p in pauses.items():
    k = "alua" if what.startswith("switch") else "transition" if "transitioning" in what else "restart" if "restart" in what else "transport"
    if p is not None: kinds[k].append(p)
    print(f"  pause {p if p is None else round(p, 3)} s  {what}")
for k, v in kinds.items():
    if v:
        v.sort()
        print(f"{k}: n={len(v)} median={v[len(v)//2]:.3f} s max={v[-1]:.3f} s")
sys.exit(1 if errs else 0)
PY
echo "failover-load: fio exit $rc; results in $OUT"
exit $rc
