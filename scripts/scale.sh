#!/usr/bin/env bash
# Ten thousand LUs (issue 16, docs/scale.md): builds 10,000 RAM-disk LUs exported as 10,000
# LUNs with 1,000 ACLs of 10 mapped LUNs each through the CLI (in batches), and reports the
# per-change latency of single CLI changes at 1k, 5k and 10k LUs, ls/get times, a batch of
# 10,000 creations, restart to serving I/O (clean stop and kill -9) and RSS; fails when an
# acceptance limit of issue 16 is not met. Needs python3 and iscsi-inq (libiscsi-bin).
# IRONLUN_BIN: the binary (default target/release/ironlun, built if missing); SCALE_PORT:
# first of three ports (default 4380); SCALE_JSON: where to write the numbers as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${IRONLUN_BIN:-target/release/ironlun}
[ -x "$BIN" ] || cargo build --release -p ironlun
WORK=$(mktemp -d /tmp/ironlun-scale.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
python3 scripts/scale.py "$(realpath "$BIN")" "$WORK" "${SCALE_PORT:-4380}" --check \
  --json "${SCALE_JSON:-$WORK/scale.json}"
