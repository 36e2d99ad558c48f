#!/usr/bin/env bash
# Conformance matrix (issue 5): iscsi-test-cu -d -S -v, SCSI family (two URLs) and iSCSI
# family, against each LU configuration of scripts/matrix_config.py (thick, thin, readonly,
# removable), one fresh daemon per configuration; then one matrix of every test's verdict
# per configuration. Fails unless every test PASSED on at least one configuration and FAILED
# on none (or a daemon died).
#
#   scripts/conformance-matrix.sh                  # builds target/release/ironlun if needed
#   CONFIGS="thin removable" OUT=dir PORT=3261 IRONLUN_BIN=path scripts/conformance-matrix.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIGS=${CONFIGS:-thick thin readonly removable large lbppb}
# The tests that need several logical blocks per physical block (libiscsi skips them
# otherwise); run on "lbppb" only, a 4 KiB-sector loop device (root and losetup).
LBPPB_TESTS=SCSI.WriteSame10.UnmapUnaligned,SCSI.WriteSame16.UnmapUnaligned,SCSI.WriteSame10.InvalidDataOutSize,SCSI.WriteSame16.InvalidDataOutSize,SCSI.CompareAndWrite.InvalidDataOutSize
OUT=${OUT:-target/conformance}
PORT=${PORT:-3261}
export IRONLUN_BIN=${IRONLUN_BIN:-${CARGO_TARGET_DIR:-target}/release/ironlun}
[ -x "$IRONLUN_BIN" ] || cargo build --release -p ironlun

READONLY_TESTS=${READONLY_TESTS:-SCSI.ReadOnly,SCSI.Inquiry,SCSI.ReadCapacity10,SCSI.ReadCapacity16,SCSI.TestUnitReady,SCSI.ReportSupportedOpcodes,SCSI.Read6,SCSI.Read10,SCSI.Read12,SCSI.Read16}
# Every SCSI test but Sanitize.Reset (run on "large" only). iscsi-test-cu adds a comma list
# last item first, so the list is given in reverse to keep the usual order.
FULL_TESTS=$( { iscsi-test-cu -l | grep -E '^SCSI\.[^.]+$' | grep -v '^SCSI\.Sanitize$'
                iscsi-test-cu -l | grep -E '^SCSI\.Sanitize\.' | grep -v '\.Reset$'; } | tac | paste -sd, -)
mkdir -p "$OUT"
work=$(mktemp -d /tmp/ironlun-matrix.XXXXXX)
loop=
cleanup() { [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
status=0
dirs=()
for c in $CONFIGS; do
  dev=()
  if [ "$c" = lbppb ]; then
    if [ "$(id -u)" != 0 ] || ! command -v losetup >/dev/null; then
      echo "conformance matrix: configuration lbppb needs root and losetup (a 4 KiB-sector loop device); not run" >&2
      status=1
      continue
    fi
    truncate -s 1G "$work/lbppb.img"
    loop=$(losetup --find --show --sector-size 4096 "$work/lbppb.img")
    dev=("$loop")
  fi
  python3 scripts/matrix_config.py "$c" "$PORT" "$work" "${dev[@]}" >"$work/$c.json"
  echo "conformance matrix: configuration $c"
  # libiscsi's write tests do not consult the WP bit (they expect a writable LU), so a
  # write-protected LU runs the suites written for one, plus read-only suites.
  sel=(SCSI_TESTS="$FULL_TESTS" ISCSI_TESTS=iSCSI)
  [ "$c" = readonly ] && sel=(SCSI_TESTS="$READONLY_TESTS" ISCSI_TESTS=)
  # Sanitize.Reset needs a SANITIZE that is still running several seconds later (after a
  # 3 s sleep, four resets and a new login): a write-through LU of some GiB, not a RAM disk.
  [ "$c" = large ] && sel=(SCSI_TESTS=SCSI.Sanitize.Reset ISCSI_TESTS=)
  [ "$c" = lbppb ] && sel=(SCSI_TESTS="$LBPPB_TESTS" ISCSI_TESTS=)
  if ! env "${sel[@]}" IRONLUN_CONFIG="$work/$c.json" OUT="$OUT/$c" PORT="$PORT" scripts/conformance.sh >"$OUT/$c.score" 2>&1; then
    # A FAILED test shows in the matrix below; a dead daemon only here.
    grep -h "daemon died" "$OUT/$c.score" >&2 && status=1
  fi
  tail -1 "$OUT/$c.score"
  if [ -n "$loop" ]; then losetup -d "$loop"; loop=; fi
  rm -f "$work"/*.img
  dirs+=("$c=$OUT/$c")
done
python3 scripts/testcu_matrix.py "${dirs[@]}" || status=1
python3 scripts/testcu_matrix.py --markdown "${dirs[@]}" >"$OUT/matrix.md" || true
echo "conformance matrix: $OUT/matrix.md"
exit $status
