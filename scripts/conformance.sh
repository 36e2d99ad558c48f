#!/usr/bin/env bash
# Conformance: run libiscsi's iscsi-test-cu -d -S (destructive and SANITIZE tests allowed;
# SCSI family with a second path for MultipathIO, then the iSCSI family) against a fresh
# `ironlun serve` with its embedded default target, or with IRONLUN_CONFIG (a config.json whose
# target iqn.2026-11.org.ironlun:default, tpgt 1, listens on 127.0.0.1:PORT), score every test
# as passed / skipped / failed, and fail on any FAILED test or daemon crash.
# scripts/conformance-matrix.sh runs it over several LU configurations.
#
#   scripts/conformance.sh            # builds target/release/ironlun if needed
#   IRONLUN_BIN=path PORT=3261 OUT=dir [IRONLUN_CONFIG=file] scripts/conformance.sh
#   SCSI_TESTS / ISCSI_TESTS choose the tests (iscsi-test-cu -t; default SCSI and iSCSI;
#   ISCSI_TESTS= empty skips the iSCSI family).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${IRONLUN_BIN:-${CARGO_TARGET_DIR:-target}/release/ironlun}
PORT=${PORT:-3261}
PORT2=$((PORT + 1))
OUT=${OUT:-target/conformance}
IQN=iqn.2026-11.org.ironlun:default
command -v iscsi-test-cu >/dev/null || { echo "conformance: iscsi-test-cu missing (apt-get install libiscsi-bin)" >&2; exit 1; }
[ -x "$BIN" ] || cargo build --release -p ironlun

mkdir -p "$OUT"
state=$(mktemp -d /tmp/ironlun-conformance.XXXXXX)
config=()
[ -n "${IRONLUN_CONFIG:-}" ] && config=(--config "$IRONLUN_CONFIG")
"$BIN" serve --state-dir "$state" --portal "127.0.0.1:$PORT" "${config[@]}" >"$OUT/daemon.log" 2>&1 &
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
SCSI_TESTS=${SCSI_TESTS:-SCSI}
ISCSI_TESTS=${ISCSI_TESTS-iSCSI}
logs=("$OUT/scsi.log")
echo "conformance: iscsi-test-cu $SCSI_TESTS ($url, $url2)"
timeout 900 iscsi-test-cu -d -S -v -t "$SCSI_TESTS" "$url" "$url2" >"$OUT/scsi.log" 2>&1 || true
rm -f "$OUT/iscsi.log"
if [ -n "$ISCSI_TESTS" ]; then
  echo "conformance: iscsi-test-cu $ISCSI_TESTS"
  timeout 300 iscsi-test-cu -d -S -v -t "$ISCSI_TESTS" "$url" >"$OUT/iscsi.log" 2>&1 || true
  logs+=("$OUT/iscsi.log")
fi

status=0
python3 scripts/testcu_score.py "${logs[@]}" --list || status=1
if ! kill -0 "$daemon" 2>/dev/null; then
  echo "conformance: the daemon died during the run (see $OUT/daemon.log)" >&2
  status=1
fi
exit $status
