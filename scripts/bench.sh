#!/usr/bin/env bash
# Side-by-side benchmark: ironlun vs tgtd on this machine, each exporting a file-backed LU of the
# same size on the same filesystem, measured by real initiators (qemu-img bench, iscsi-perf).
# Rounds are interleaved (and the order flips every round) so background noise hits both alike.
# Prints IOPS per server (median of the rounds) and the ironlun/tgtd ratio. Not a test: it judges
# nothing, it reports. See docs/benchmarks.md.
#
# Usage: sudo scripts/bench.sh            (from the repository root)
# Environment (all optional):
#   ROUNDS=3            rounds per server and workload
#   SIZE=1G             LU size (both servers)
#   SERVERS="tgtd ironlun"   which servers to measure (e.g. SERVERS=tgtd to check the tgtd half)
#   COUNT_4K=200000     qemu-img bench requests for 4 KiB runs
#   COUNT_128K=20000    qemu-img bench requests for 128 KiB runs
#   PERF_SECS=5         iscsi-perf run time in seconds
#   TGT_PORT=3340 IRONLUN_PORT=3341 TGT_CONTROL=3340
#   WORKDIR=<dir>       where the backing files go (default: a new dir under /var/tmp)
#   IRONLUN_BIN=${CARGO_TARGET_DIR:-target}/release/ironlun   (built with cargo if absent)
#   RESULTS=<file>      also write raw per-round results as CSV there
#   KEEP=1              keep WORKDIR afterwards
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-1G}
SERVERS=${SERVERS:-"tgtd ironlun"}
COUNT_4K=${COUNT_4K:-200000}
COUNT_128K=${COUNT_128K:-20000}
PERF_SECS=${PERF_SECS:-5}
TGT_PORT=${TGT_PORT:-3340}
IRONLUN_PORT=${IRONLUN_PORT:-3341}
TGT_CONTROL=${TGT_CONTROL:-3340}
IRONLUN_BIN=${IRONLUN_BIN:-${CARGO_TARGET_DIR:-target}/release/ironlun}
TGT_IQN=iqn.2026-11.org.ironlun:tgtbench
IRONLUN_IQN=iqn.2026-11.org.ironlun:default

log() { printf '%s\n' "$*" >&2; }
die() { log "bench.sh: $*"; exit 1; }

# ---------------------------------------------------------------- tools
APT_UPDATED=0
apt_install() {
    [ "$(id -u)" = 0 ] || die "need root to install: $*"
    if [ "$APT_UPDATED" = 0 ]; then
        apt-get update -qq >&2
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades "$@" >&2
}

qemu_has_iscsi() {
    command -v qemu-img >/dev/null && qemu-img --help 2>/dev/null | grep -A2 '^Supported formats' | grep -qw iscsi
}

ensure_tools() {
    command -v tgtd >/dev/null && command -v tgtadm >/dev/null || apt_install tgt
    command -v iscsi-perf >/dev/null && command -v iscsi-readcapacity16 >/dev/null || apt_install libiscsi-bin
    command -v fallocate >/dev/null || apt_install util-linux
    # qemu-img's iSCSI driver lives in qemu-block-extra, which must match qemu-utils' version.
    qemu_has_iscsi || apt_install 'qemu-utils=1:7.2*' 'qemu-block-extra=1:7.2*'
    qemu_has_iscsi || die "qemu-img still has no iscsi driver"
}

# ---------------------------------------------------------------- setup / cleanup
TGTD_PID=
IRONLUN_PID=
WORKDIR_CREATED=0
stop_pid() { # pid: wait up to 5 s for it to exit, then SIGKILL it
    local i
    for i in $(seq 1 50); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
cleanup() {
    set +e
    if [ -n "$TGTD_PID" ]; then
        # tgtd leaves only when asked through its control port, and only once it has no targets.
        tgtadm -C "$TGT_CONTROL" --op delete --mode target --tid 1 --force >/dev/null 2>&1
        tgtadm -C "$TGT_CONTROL" --op delete --mode system >/dev/null 2>&1
        stop_pid "$TGTD_PID"
    fi
    if [ -n "$IRONLUN_PID" ]; then
        kill "$IRONLUN_PID" 2>/dev/null
        stop_pid "$IRONLUN_PID"
    fi
    if [ "$WORKDIR_CREATED" = 1 ] && [ "${KEEP:-0}" != 1 ]; then
        rm -rf "$WORKDIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # host port what pid log
    local i
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
        kill -0 "$4" 2>/dev/null || { tail -5 "$5" >&2; die "$3 exited before listening on $1:$2"; }
        sleep 0.1
    done
    tail -5 "$5" >&2
    die "$3 did not listen on $1:$2"
}

make_backing_file() { # path
    fallocate -l "$SIZE" "$1" 2>/dev/null || truncate -s "$SIZE" "$1"
    # Write real blocks so neither server meets unwritten extents (first-write penalties).
    local mib=$(( $(stat -c %s "$1") / 1048576 ))
    dd if=/dev/zero of="$1" bs=1M count="$mib" conv=notrunc,fsync status=none
}

start_tgtd() {
    make_backing_file "$WORKDIR/tgt.img"
    tgtd -f -C "$TGT_CONTROL" --iscsi "portal=127.0.0.1:$TGT_PORT" >"$WORKDIR/tgtd.log" 2>&1 &
    TGTD_PID=$!
    wait_port 127.0.0.1 "$TGT_PORT" tgtd "$TGTD_PID" "$WORKDIR/tgtd.log"
    local t=(tgtadm -C "$TGT_CONTROL" --lld iscsi)
    "${t[@]}" --op new --mode target --tid 1 -T "$TGT_IQN"
    "${t[@]}" --op new --mode logicalunit --tid 1 --lun 1 -b "$WORKDIR/tgt.img"
    "${t[@]}" --op bind --mode target --tid 1 -I ALL
    # tgtd's LUN 0 is its controller; the disk is LUN 1.
    URL_tgtd="iscsi://127.0.0.1:$TGT_PORT/$TGT_IQN/1"
}

# ======================= ironlun-specific part (adjust here if the CLI changes) =================
start_ironlun() {
    [ -x "$IRONLUN_BIN" ] || cargo build --release -p ironlun >&2
    make_backing_file "$WORKDIR/ironlun.img"
    local state="$WORKDIR/ironlun-state"
    mkdir -p "$state"
    "$IRONLUN_BIN" serve --state-dir "$state" --portal "127.0.0.1:$IRONLUN_PORT" \
        >"$WORKDIR/ironlun.log" 2>&1 &
    IRONLUN_PID=$!
    wait_port 127.0.0.1 "$IRONLUN_PORT" ironlun "$IRONLUN_PID" "$WORKDIR/ironlun.log"
    # Reuse the embedded default target (demo mode: any initiator, read-write) and replace its
    # RAM disk with the file-backed LU; deleting the device also removes the LUN that exports it.
    "$IRONLUN_BIN" --state-dir "$state" delete core/rd_mcp_0/ramdisk0 >&2
    "$IRONLUN_BIN" --state-dir "$state" create core/fileio_0/bench \
        "path=$WORKDIR/ironlun.img" "size=$SIZE" >&2
    "$IRONLUN_BIN" --state-dir "$state" create "iscsi/$IRONLUN_IQN/tpgt_1/lun/lun_0" \
        dev=core/fileio_0/bench >&2
    URL_ironlun="iscsi://127.0.0.1:$IRONLUN_PORT/$IRONLUN_IQN/0"
}
# ================================================================================================

check_lu() { # server url
    local out
    out=$(iscsi-readcapacity16 "$2" 2>&1) || die "$1: READ CAPACITY failed on $2: $out"
    log "$1: $2 ok ($(printf '%s\n' "$out" | grep -i 'total size' || echo "$out" | head -1))"
}

# ---------------------------------------------------------------- workloads
# Each prints one number: IOPS.
qemu_bench() { # url count depth size [-w]
    local out secs
    out=$(qemu-img bench -f raw -c "$2" -d "$3" -s "$4" ${5:-} "$1" 2>&1) || die "qemu-img bench failed: $out"
    secs=$(printf '%s\n' "$out" | sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p')
    [ -n "$secs" ] || die "cannot parse qemu-img output: $out"
    awk -v c="$2" -v s="$secs" 'BEGIN { printf "%.0f\n", c / s }'
}

perf_bench() { # url
    local out iops
    out=$(iscsi-perf -t "$PERF_SECS" -m 32 -b 8 -r "$1" 2>&1 | tr '\r' '\n') || true
    iops=$(printf '%s\n' "$out" | grep -o 'iops average [0-9]*' | tail -1 | awk '{print $3}')
    [ -n "$iops" ] || die "cannot parse iscsi-perf output: $(printf '%s\n' "$out" | tail -3)"
    echo "$iops"
}

WORKLOADS="qemu-read-4k-qd32 qemu-write-4k-qd32 qemu-read-128k-qd8 qemu-write-128k-qd8 perf-randread-4k-qd32"
run_workload() { # name url
    case "$1" in
    qemu-read-4k-qd32) qemu_bench "$2" "$COUNT_4K" 32 4k ;;
    qemu-write-4k-qd32) qemu_bench "$2" "$COUNT_4K" 32 4k -w ;;
    qemu-read-128k-qd8) qemu_bench "$2" "$COUNT_128K" 8 128k ;;
    qemu-write-128k-qd8) qemu_bench "$2" "$COUNT_128K" 8 128k -w ;;
    perf-randread-4k-qd32) perf_bench "$2" ;;
    *) die "unknown workload $1" ;;
    esac
}

# ---------------------------------------------------------------- main
[ "$(id -u)" = 0 ] || die "run as root (tgtd needs it; tools may need installing)"
ensure_tools
if [ -z "${WORKDIR:-}" ]; then
    WORKDIR=$(mktemp -d /var/tmp/ironlun-bench.XXXXXX)
    WORKDIR_CREATED=1
fi
mkdir -p "$WORKDIR"
RAW="$WORKDIR/raw.csv"
: >"$RAW"

for s in $SERVERS; do
    case "$s" in
    tgtd) start_tgtd ;;
    ironlun) start_ironlun ;;
    *) die "unknown server $s (tgtd|ironlun)" ;;
    esac
done
for s in $SERVERS; do
    url_var="URL_$s"
    check_lu "$s" "${!url_var}"
done

log "size=$SIZE rounds=$ROUNDS servers=[$SERVERS] workdir=$WORKDIR"
for round in $(seq 1 "$ROUNDS"); do
    # Flip the order each round so neither server always runs first.
    order=$SERVERS
    if [ $((round % 2)) = 0 ]; then order=$(printf '%s\n' $SERVERS | tac | tr '\n' ' '); fi
    for w in $WORKLOADS; do
        for s in $order; do
            url_var="URL_$s"
            iops=$(run_workload "$w" "${!url_var}")
            log "round $round  $w  $s  $iops IOPS"
            echo "$round,$w,$s,$iops" >>"$RAW"
        done
    done
done

[ -n "${RESULTS:-}" ] && { echo "round,workload,server,iops"; cat "$RAW"; } >"$RESULTS"

# Median per (workload, server), then the ratio ironlun/tgtd.
echo
printf '%-24s %12s %12s %9s\n' workload "tgtd IOPS" "ironlun IOPS" ratio
for w in $WORKLOADS; do
    med() {
        { grep ",$w,$1," "$RAW" || true; } | cut -d, -f4 | sort -n |
            awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
    }
    t=$(med tgtd)
    i=$(med ironlun)
    r=$(awk -v t="$t" -v i="$i" 'BEGIN { if (t ~ /^[0-9]+$/ && i ~ /^[0-9]+$/ && t > 0) printf "%.2f", i / t; else print "-" }')
    printf '%-24s %12s %12s %9s\n' "$w" "$t" "$i" "$r"
done
echo "(median of $ROUNDS interleaved rounds; $(nproc) CPUs; qemu-img $(qemu-img --version | head -1 | awk '{print $3}'); size $SIZE)"
