#!/usr/bin/env bash
# The multipath NBD export's overhead (issue 10, acceptance 3): 4 KiB random reads at QD32 for
# SECS seconds through `ironlun host serve-nbd` (fio's nbd engine) and straight over iSCSI
# (libiscsi's iscsi-perf, -m 32 -b 8 -r) against the same ironlun RAM disk, one after the other
# in one run. Prints both IOPS, their ratio, and serve-nbd's CPU time per I/O.
#
#   scripts/bench-nbd.sh          SECS=20 P=3880 IRONLUN_BIN=target/release/ironlun
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${IRONLUN_BIN:-target/release/ironlun}
SECS=${SECS:-20}
P=${P:-3880}
OUT=$(mktemp -d /tmp/ironlun-bench-nbd.XXXXXX)
URL="iscsi://127.0.0.1:$P/iqn.2026-11.org.ironlun:default/0"
"$BIN" serve --state-dir "$OUT/state" --portal "127.0.0.1:$P" >"$OUT/daemon.log" 2>&1 &
D=$!
for _ in $(seq 100); do [ -S "$OUT/state/control.sock" ] && break; sleep 0.1; done
sleep 0.3
"$BIN" host serve-nbd --listen "127.0.0.1:$((P + 1))" --status-socket "$OUT/st.sock" "$URL" >"$OUT/nbd.log" 2>&1 &
N=$!
trap 'kill $N $D 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 100); do [ -S "$OUT/st.sock" ] && break; sleep 0.1; done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
c0=$(ticks "$N")
fio --name=nbd --ioengine=nbd --uri="nbd://127.0.0.1:$((P + 1))/ironlun" --rw=randread --bs=4k \
  --iodepth=32 --size=1G --time_based --runtime="$SECS" --output-format=json --output="$OUT/fio.json"
c1=$(ticks "$N")
timeout "$SECS" iscsi-perf -m 32 -b 8 -r "$URL" >"$OUT/perf.txt" 2>&1 || true
python3 - "$OUT" "$c0" "$c1" "$hz" <<'PY'
import json, re, sys
out, c0, c1, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
j = json.load(open(f"{out}/fio.json"))["jobs"][0]
nbd = j["read"]["iops"]; ios = j["read"]["total_ios"]
txt = open(f"{out}/perf.txt").read()
# iscsi-perf prints "iops current N …, iops average N" once a second: its last average.
vals = [float(x) for x in re.findall(r"iops average ([0-9]+)", txt)]
straight = vals[-1] if vals else 0
print(f"nbd (fio QD32 4k randread through serve-nbd): {nbd:.0f} IOPS, errors {j['error']}")
print(f"iSCSI straight (iscsi-perf -m 32 -b 8 -r):     {straight:.0f} IOPS")
print(f"ratio: {nbd / straight:.2f}" if straight else "ratio: iscsi-perf gave no numbers")
print(f"serve-nbd CPU: {(c1 - c0) / hz:.2f} s for {ios} I/Os = {(c1 - c0) / hz / ios * 1e6:.1f} us per I/O")
PY
