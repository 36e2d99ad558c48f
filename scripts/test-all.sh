#!/usr/bin/env bash
# Every test: the Rust test suites (unit, integration against the real daemon on loopback),
# then the iscsi-test-cu conformance matrix (every LU configuration). Installs the Debian test clients it needs when root.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v iscsi-test-cu >/dev/null || need+=(libiscsi-bin)
command -v losetup >/dev/null || need+=(mount)
command -v python3 >/dev/null || need+=(python3)
command -v fio >/dev/null || need+=(fio)
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v etcd >/dev/null || need+=(etcd-server)
command -v nbdinfo >/dev/null || need+=(libnbd-bin)
command -v qemu-io >/dev/null || need+=(qemu-utils)
command -v tgtd >/dev/null || [ -x /usr/sbin/tgtd ] || need+=(tgt)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "test-all: please install: ${need[*]}" >&2; exit 1
  fi
fi

# Layout rules (docs/ARCHITECTURE.md): no source file over 700 lines outside tests, no import
# cycle between sibling modules of any crate.
scripts/check-layout.sh

# Crash consistency: the daemon built with its crash points (the `failpoints` feature) aborted
# at every persistence step. First: the plain build below links the shipped binary back.
cargo test --release -p ironlun --features failpoints --test crash_points
cargo build --release --workspace --features ironlun/cluster
cargo test --release --workspace --features ironlun/cluster
# Ten thousand LUs: per-change latency, ls, batch, restart and RSS against their limits.
scripts/scale.sh
scripts/conformance-matrix.sh
# The PR and MultipathIO suites with their two paths on two gateways of a cluster (docs/cluster.md).
scripts/cluster-conformance.sh
# Failover under load: fio with verify through serve-nbd while the target switches ALUA
# groups, transitions, drops a portal group and restarts (0 I/O errors, 0 verify failures).
RUNTIME=130 scripts/failover-load.sh

# A real Linux kernel initiator (open-iscsi + dm-multipath in a QEMU VM) needs the VM tool that
# sits beside this repo in the project's shared/ folder; CI sets IRONLUN_REQUIRE_VM=1.
VMI_TOOL=${VMI_TOOL:-../shared/tools/linux-initiator}
if [ -x "$VMI_TOOL/run-scenario.sh" ] && [ "$(id -u)" = 0 ]; then
  VMI_TOOL=$(cd "$VMI_TOOL" && pwd) tests/linux-initiator/basic.sh
  VMI_TOOL=$(cd "$VMI_TOOL" && pwd) tests/linux-initiator/alua.sh
  VMI_TOOL=$(cd "$VMI_TOOL" && pwd) tests/linux-initiator/host-alua.sh
  VMI_TOOL=$(cd "$VMI_TOOL" && pwd) tests/linux-initiator/pscsi.sh
  VMI_TOOL=$(cd "$VMI_TOOL" && pwd) tests/linux-initiator/cluster.sh
  VMI_TOOL=$(cd "$VMI_TOOL" && pwd) tests/linux-initiator/many-luns.sh
elif [ -n "${IRONLUN_REQUIRE_VM:-}" ]; then
  echo "test-all: the Linux initiator VM tool is required but not usable at $VMI_TOOL" >&2
  exit 1
else
  echo "test-all: skipping the Linux kernel initiator test (no VM tool at $VMI_TOOL, or not root)"
fi
