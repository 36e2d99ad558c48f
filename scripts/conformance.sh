#!/usr/bin/env bash
# Conformance: run libiscsi's iscsi-test-cu (SCSI family with a second path for MultipathIO,
# then the iSCSI family) against a fresh `ironlun serve` with its embedded default target,
# score every test as passed / skipped / failed, and fail on any FAILED test or daemon crash.
#
#   scripts/conformance.sh            # builds target/release/ironlun if needed
#   IRONLUN_BIN=path PORT=3261 OUT=dir scripts/conformance.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${IRONLUN_BIN:-target/release/ironlun}
PORT=${PORT:-3261}
PORT2=$((PORT + 1))
OUT=${OUT:-target/conformance}
IQN=iqn.2026-11.org.ironlun:default
command -v iscsi-test-cu >/dev/null || { echo "conformance: iscsi-test-cu missing (apt-get install libiscsi-bin)" >&2; exit 1; }
[ -x "$BIN" ] || cargo build --release -p ironlun

mkdir -p "$OUT"
state=$(mktemp -d /tmp/ironlun-conformance.XXXXXX)
"$BIN" serve --state-dir "$state" --portal "127.0.0.1:$PORT" >"$OUT/daemon.log" 2>&1 &
daemon=$!
cleanup() { kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$state"; }
trap cleanup EXIT

for _ in $(seq 100); do
  [ -S "$state/control.sock" ] && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
# A second portal on the same target port gives iscsi-test-cu a second path (MultipathIO).
"$BIN" --state-dir "$state" create "iscsi/$IQN/tpgt_1/np/127.0.0.1:$PORT2"

url="iscsi://127.0.0.1:$PORT/$IQN/0"
url2="iscsi://127.0.0.1:$PORT2/$IQN/0"
echo "conformance: iscsi-test-cu SCSI family ($url, $url2)"
timeout 900 iscsi-test-cu -d -v -t SCSI "$url" "$url2" >"$OUT/scsi.log" 2>&1 || true
echo "conformance: iscsi-test-cu iSCSI family"
timeout 300 iscsi-test-cu -d -v -t iSCSI "$url" >"$OUT/iscsi.log" 2>&1 || true

status=0
python3 scripts/testcu_score.py "$OUT/scsi.log" "$OUT/iscsi.log" --list || status=1
if ! kill -0 "$daemon" 2>/dev/null; then
  echo "conformance: the daemon died during the run (see $OUT/daemon.log)" >&2
  status=1
fi
exit $status
