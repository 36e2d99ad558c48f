#!/usr/bin/env bash
# Side-by-side benchmark: ironlun vs tgtd (and the floor, a minimal iSCSI responder with no engine:
# crates/floor) on this machine, measured by real initiators (qemu-img bench, iscsi-perf). By default
# both export a memory-backed LU (ironlun's embedded 1 GiB RAM disk, tgtd a file on /dev/shm);
# BACKING=file gives both a file-backed LU on the same filesystem instead.
# Rounds are interleaved (and the order flips every round) so background noise hits all alike.
# Per workload and server it reports (median of the rounds): IOPS, server CPU per I/O (utime+stime
# of the server process from /proc/<pid>/stat over the I/Os done), context switches per I/O
# (voluntary+nonvoluntary, summed over /proc/<pid>/task/*/status), and at QD1 the mean latency.
# Not a test: it judges nothing, it reports. See docs/benchmarks.md.
#
# Usage: sudo scripts/bench.sh            (from the repository root)
# Environment (all optional):
#   ROUNDS=3            rounds per server and workload
#   BACKING=mem         mem: RAM disk / file on /dev/shm (size 1G); file: files under WORKDIR
#   SIZE=1G             LU size (both servers; with BACKING=mem ironlun's RAM disk is 1 GiB)
#   SERVERS="tgtd ironlun floor"   which servers to measure (e.g. SERVERS=tgtd to check the tgtd half)
#   WORKLOADS="..."     which workloads (default: all, see run_workload)
#   COUNT_4K=200000     qemu-img bench requests for 4 KiB QD32 runs
#   COUNT_128K=20000    qemu-img bench requests for 128 KiB runs
#   COUNT_QD1=20000     qemu-img bench requests for 4 KiB QD1 runs
#   COUNT_MULTI=50000   qemu-img bench requests per session for the 4 x QD16 run
#   PERF_SECS=5         iscsi-perf run time in seconds
#   TGT_PORT=3340 IRONLUN_PORT=3341 FLOOR_PORT=3342 TGT_CONTROL=3340
#   FLOOR_BIN=${CARGO_TARGET_DIR:-target}/release/iscsi-floor  (built with cargo if absent)
#   WORKDIR=<dir>       where the backing files go (default: a new dir under /var/tmp)
#   IRONLUN_BIN=${CARGO_TARGET_DIR:-target}/release/ironlun   (built with cargo if absent)
#   PIN_CPU=0           the CPU that the *-1cpu workloads pin server and client to
#   RESULTS=<file>      also write raw per-round results as CSV there
#   KEEP=1              keep WORKDIR afterwards
set -euo pipefail

ROUNDS=${ROUNDS:-3}
BACKING=${BACKING:-mem}
SIZE=${SIZE:-1G}
SERVERS=${SERVERS:-"tgtd ironlun floor"}
COUNT_4K=${COUNT_4K:-200000}
COUNT_128K=${COUNT_128K:-20000}
COUNT_QD1=${COUNT_QD1:-20000}
COUNT_MULTI=${COUNT_MULTI:-50000}
PERF_SECS=${PERF_SECS:-5}
TGT_PORT=${TGT_PORT:-3340}
IRONLUN_PORT=${IRONLUN_PORT:-3341}
FLOOR_PORT=${FLOOR_PORT:-3342}
TGT_CONTROL=${TGT_CONTROL:-3340}
IRONLUN_BIN=${IRONLUN_BIN:-${CARGO_TARGET_DIR:-target}/release/ironlun}
FLOOR_BIN=${FLOOR_BIN:-${CARGO_TARGET_DIR:-target}/release/iscsi-floor}
FLOOR_IQN=iqn.2026-11.org.ironlun:floor
PIN_CPU=${PIN_CPU:-0}
CLK_TCK=$(getconf CLK_TCK)
# The CPUs this script may use: the *-1cpu workloads narrow a server to PIN_CPU and give it these back.
ALL_CPUS=$(taskset -c -p $$ | sed 's/.*: //')
CLIENT_PIN=
SIZE_BYTES=$(numfmt --from=iec "$SIZE")
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
FLOOR_PID=
TGT_SHM=
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
    if [ -n "$FLOOR_PID" ]; then
        kill "$FLOOR_PID" 2>/dev/null
        stop_pid "$FLOOR_PID"
    fi
    [ -n "$TGT_SHM" ] && rm -f "$TGT_SHM"
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
    local img="$WORKDIR/tgt.img"
    if [ "$BACKING" = mem ]; then
        TGT_SHM=/dev/shm/ironlun-bench-tgt.$$.img
        img=$TGT_SHM
    fi
    make_backing_file "$img"
    tgtd -f -C "$TGT_CONTROL" --iscsi "portal=127.0.0.1:$TGT_PORT" >"$WORKDIR/tgtd.log" 2>&1 &
    TGTD_PID=$!
    wait_port 127.0.0.1 "$TGT_PORT" tgtd "$TGTD_PID" "$WORKDIR/tgtd.log"
    local t=(tgtadm -C "$TGT_CONTROL" --lld iscsi)
    "${t[@]}" --op new --mode target --tid 1 -T "$TGT_IQN"
    "${t[@]}" --op new --mode logicalunit --tid 1 --lun 1 -b "$img"
    "${t[@]}" --op bind --mode target --tid 1 -I ALL
    # tgtd's LUN 0 is its controller; the disk is LUN 1.
    URL_tgtd="iscsi://127.0.0.1:$TGT_PORT/$TGT_IQN/1"
}

# ======================= ironlun-specific part (adjust here if the CLI changes) =================
start_ironlun() {
    [ -x "$IRONLUN_BIN" ] || cargo build --release -p ironlun >&2
    local state="$WORKDIR/ironlun-state"
    mkdir -p "$state"
    "$IRONLUN_BIN" serve --state-dir "$state" --portal "127.0.0.1:$IRONLUN_PORT" \
        >"$WORKDIR/ironlun.log" 2>&1 &
    IRONLUN_PID=$!
    wait_port 127.0.0.1 "$IRONLUN_PORT" ironlun "$IRONLUN_PID" "$WORKDIR/ironlun.log"
    URL_ironlun="iscsi://127.0.0.1:$IRONLUN_PORT/$IRONLUN_IQN/0"
    # BACKING=mem: the embedded default target's 1 GiB RAM disk, as `serve` makes it.
    [ "$BACKING" = mem ] && return 0
    make_backing_file "$WORKDIR/ironlun.img"
    # Reuse the embedded default target (demo mode: any initiator, read-write) and replace its
    # RAM disk with the file-backed LU; deleting the device also removes the LUN that exports it.
    "$IRONLUN_BIN" --state-dir "$state" delete core/rd_mcp_0/ramdisk0 >&2
    "$IRONLUN_BIN" --state-dir "$state" create core/fileio_0/bench \
        "path=$WORKDIR/ironlun.img" "size=$SIZE" >&2
    "$IRONLUN_BIN" --state-dir "$state" create "iscsi/$IRONLUN_IQN/tpgt_1/lun/lun_0" \
        dev=core/fileio_0/bench >&2
}
# ================================================================================================

start_floor() {
    [ -x "$FLOOR_BIN" ] || cargo build --release -p ironlun-floor >&2
    "$FLOOR_BIN" --listen "127.0.0.1:$FLOOR_PORT" --size "$SIZE" --stats "$WORKDIR/floor.switches" \
        >"$WORKDIR/floor.log" 2>&1 &
    FLOOR_PID=$!
    wait_port 127.0.0.1 "$FLOOR_PORT" floor "$FLOOR_PID" "$WORKDIR/floor.log"
    URL_floor="iscsi://127.0.0.1:$FLOOR_PORT/$FLOOR_IQN/0"
}

# ---------------------------------------------------------------- server cost from /proc
cpu_ticks() { # pid: utime+stime of the whole process (live and exited threads), in clock ticks
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
ctx_switches() { # pid: voluntary+nonvoluntary switches summed over the live threads
    # /proc/<pid>/status counts only the main thread, so sum the tasks. Threads that exited
    # during the run (an idle blocking-pool thread) take their counts with them, except the
    # floor's connection threads: the floor writes theirs to floor.switches as they end.
    local ended=0
    [ "$1" = "$FLOOR_PID" ] && [ -f "$WORKDIR/floor.switches" ] && ended=$(cat "$WORKDIR/floor.switches")
    cat /proc/"$1"/task/*/status 2>/dev/null |
        awk -v e="$ended" '/^(non)?voluntary_ctxt_switches:/ { n += $2 } END { print n + e }'
}

check_lu() { # server url
    local out
    out=$(iscsi-readcapacity16 "$2" 2>&1) || die "$1: READ CAPACITY failed on $2: $out"
    log "$1: $2 ok ($(printf '%s\n' "$out" | grep -i 'total size' || echo "$out" | head -1))"
}

# ---------------------------------------------------------------- workloads
# Each prints "IOS SECONDS": the I/Os done and the time they took.
qemu_bench() { # url count depth size [extra qemu-img bench options...]
    local url=$1 count=$2 depth=$3 size=$4 out secs
    shift 4
    out=$(${CLIENT_PIN:+taskset -c "$CLIENT_PIN"} qemu-img bench -f raw -c "$count" -d "$depth" -s "$size" "$@" "$url" 2>&1) || die "qemu-img bench failed: $out"
    secs=$(printf '%s\n' "$out" | sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p')
    [ -n "$secs" ] || die "cannot parse qemu-img output: $out"
    echo "$count $secs"
}

# Random-ish 4 KiB writes: qemu-img bench advances the offset by -S and wraps at the image end, so a
# step of a prime number of 4 KiB blocks (7919) visits the LU in a scattered order.
RANDOM_STEP=$((7919 * 4096))

multi_bench() { # url: 4 sessions x QD16 4 KiB reads, 4 qemu-img processes at once; I/Os summed
    local dir i pids=() quarter=$((SIZE_BYTES / 4 / 4096 * 4096))
    dir=$(mktemp -d "$WORKDIR/multi.XXXXXX")
    for i in 1 2 3 4; do
        # Each session starts in its own quarter of the LU.
        qemu_bench "$1" "$COUNT_MULTI" 16 4k -o $(( (i - 1) * quarter )) >"$dir/$i" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || die "multi-session qemu-img failed"; done
    # The run lasts as long as its slowest session.
    cat "$dir"/[1-4] | awk '{ n += $1; if ($2 > s) s = $2 } END { print n, s }'
    rm -rf "$dir"
}

perf_bench() { # url
    local out iops
    out=$(iscsi-perf -t "$PERF_SECS" -m 32 -b 8 -r "$1" 2>&1 | tr '\r' '\n') || true
    iops=$(printf '%s\n' "$out" | grep -o 'iops average [0-9]*' | tail -1 | awk '{print $3}')
    [ -n "$iops" ] || die "cannot parse iscsi-perf output: $(printf '%s\n' "$out" | tail -3)"
    echo "$((iops * PERF_SECS)) $PERF_SECS"
}

WORKLOADS=${WORKLOADS:-"qemu-read-4k-qd32 qemu-randwrite-4k-qd32 qemu-read-128k-qd8 qemu-write-128k-qd8 qemu-read-4k-qd1 qemu-randwrite-4k-qd1 qemu-read-4k-qd1-1cpu qemu-randwrite-4k-qd1-1cpu qemu-read-4k-4x16 perf-randread-4k-qd32"}
run_workload() { # name url
    case "$1" in
    qemu-read-4k-qd32) qemu_bench "$2" "$COUNT_4K" 32 4k ;;
    qemu-write-4k-qd32) qemu_bench "$2" "$COUNT_4K" 32 4k -w ;;
    qemu-randwrite-4k-qd32) qemu_bench "$2" "$COUNT_4K" 32 4k -w -S "$RANDOM_STEP" ;;
    qemu-read-128k-qd8) qemu_bench "$2" "$COUNT_128K" 8 128k ;;
    qemu-write-128k-qd8) qemu_bench "$2" "$COUNT_128K" 8 128k -w ;;
    qemu-read-4k-qd1) qemu_bench "$2" "$COUNT_QD1" 1 4k ;;
    qemu-randwrite-4k-qd1) qemu_bench "$2" "$COUNT_QD1" 1 4k -w -S "$RANDOM_STEP" ;;
    # The same with every server thread and qemu-img on one CPU (the main loop pins them): no
    # wake-up crosses CPUs, so what is left is the work per I/O (docs/benchmarks.md, "QD1").
    qemu-read-4k-qd1-1cpu) CLIENT_PIN=$PIN_CPU qemu_bench "$2" "$COUNT_QD1" 1 4k ;;
    qemu-randwrite-4k-qd1-1cpu) CLIENT_PIN=$PIN_CPU qemu_bench "$2" "$COUNT_QD1" 1 4k -w -S "$RANDOM_STEP" ;;
    qemu-read-4k-4x16) multi_bench "$2" ;;
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
    floor) start_floor ;;
    *) die "unknown server $s (tgtd|ironlun|floor)" ;;
    esac
done
PID_tgtd=$TGTD_PID
PID_ironlun=$IRONLUN_PID
PID_floor=$FLOOR_PID
for s in $SERVERS; do
    url_var="URL_$s"
    check_lu "$s" "${!url_var}"
done

COLS="round,workload,server,ios,seconds,iops,cpu_us_per_io,ctxsw_per_io,mean_latency_us"
log "backing=$BACKING size=$SIZE rounds=$ROUNDS servers=[$SERVERS] workdir=$WORKDIR"
for round in $(seq 1 "$ROUNDS"); do
    # Flip the order each round so neither server always runs first.
    order=$SERVERS
    if [ $((round % 2)) = 0 ]; then order=$(printf '%s\n' $SERVERS | tac | tr '\n' ' '); fi
    for w in $WORKLOADS; do
        for s in $order; do
            url_var="URL_$s"
            pid_var="PID_$s"
            pid=${!pid_var}
            t0=$(cpu_ticks "$pid")
            c0=$(ctx_switches "$pid")
            # Threads the server starts while pinned inherit the pin; -a reaches them all after.
            case "$w" in *-1cpu) taskset -a -p -c "$PIN_CPU" "$pid" >/dev/null ;; esac
            read -r ios secs < <(run_workload "$w" "${!url_var}")
            case "$w" in *-1cpu) taskset -a -p -c "$ALL_CPUS" "$pid" >/dev/null ;; esac
            # The floor's connection threads record their switches as they end, after logout.
            if [ "$s" = floor ]; then sleep 0.2; fi
            t1=$(cpu_ticks "$pid")
            c1=$(ctx_switches "$pid")
            row=$(awk -v n="$ios" -v s="$secs" -v dt=$((t1 - t0)) -v dc=$((c1 - c0)) -v hz="$CLK_TCK" -v w="$w" 'BEGIN {
                lat = (w ~ /-qd1(-1cpu)?$/) ? sprintf("%.1f", s * 1e6 / n) : ""
                printf "%.0f,%.2f,%.3f,%s", n / s, dt * 1e6 / hz / n, dc / n, lat }')
            log "round $round  $w  $s  iops,cpu_us/io,ctxsw/io,lat_us = $row"
            echo "$round,$w,$s,$ios,$secs,$row" >>"$RAW"
        done
    done
done

[ -n "${RESULTS:-}" ] && { echo "$COLS"; cat "$RAW"; } >"$RESULTS"

# Median per (workload, server, column); then ratios against tgtd and the floor.
med() { # workload server column
    { grep ",$1,$2," "$RAW" || true; } | cut -d, -f"$3" | { grep -v '^$' || true; } | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { # a b
    awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "-" }'
}
echo
echo "| workload | IOPS ironlun / tgtd / floor | ironlun/tgtd IOPS | CPU µs per I/O ironlun / tgtd / floor | CPU ironlun/tgtd | CPU ironlun/floor | ctx sw per I/O ironlun / tgtd / floor | QD1 mean latency µs ironlun / tgtd / floor |"
echo "|---|---|---|---|---|---|---|---|"
for w in $WORKLOADS; do
    ii=$(med "$w" ironlun 6) it=$(med "$w" tgtd 6) fl=$(med "$w" floor 6)
    ci=$(med "$w" ironlun 7) ct=$(med "$w" tgtd 7) cf=$(med "$w" floor 7)
    xi=$(med "$w" ironlun 8) xt=$(med "$w" tgtd 8) xf=$(med "$w" floor 8)
    li=$(med "$w" ironlun 9) lt=$(med "$w" tgtd 9) lf=$(med "$w" floor 9)
    lat="$li / $lt / $lf"
    [[ "$w" == *-qd1 || "$w" == *-qd1-1cpu ]] || lat="-"
    echo "| $w | $ii / $it / $fl | $(ratio "$ii" "$it") | $ci / $ct / $cf | $(ratio "$ci" "$ct") | $(ratio "$ci" "$cf") | $xi / $xt / $xf | $lat |"
done
echo "(median of $ROUNDS interleaved rounds; backing $BACKING; $(nproc) CPUs; qemu-img $(qemu-img --version | head -1 | awk '{print $3}'); size $SIZE; raw rounds: ${RESULTS:-RESULTS=file keeps them})"
