#!/usr/bin/env bash
# Every test: the Rust test suites (unit, integration against the real daemon on loopback),
# then the iscsi-test-cu conformance run. Installs the Debian test clients it needs when root.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v iscsi-test-cu >/dev/null || need+=(libiscsi-bin)
command -v losetup >/dev/null || need+=(mount)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "test-all: please install: ${need[*]}" >&2; exit 1
  fi
fi

cargo build --release --workspace
cargo test --release --workspace
scripts/conformance.sh
