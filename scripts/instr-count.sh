#!/usr/bin/env bash
# Instructions per 4 KiB READ and WRITE through the whole release daemon (issue 11), counted by
# valgrind's callgrind: `ironlun serve` runs under callgrind with its embedded 1 GiB RAM disk;
# after a warm-up, the counters are zeroed, qemu-img bench sends N I/Os at queue depth 1 and the
# counters are dumped; the same with a smaller count, and the difference over the difference in
# I/Os is the cost of one I/O with the login, the probe commands and the logout taken out. All
# threads are counted (callgrind sums them). Deterministic up to the scheduler: run it twice and
# compare (docs/benchmarks.md).
#
# Usage: sudo scripts/instr-count.sh       (from the repository root)
# Environment: N_SMALL=200 N_LARGE=1200 PORT=3344 IRONLUN_BIN=${CARGO_TARGET_DIR:-target}/release/ironlun
#   SERVER=floor counts the floor (crates/floor, FLOOR_BIN=.../release/iscsi-floor) instead.
set -euo pipefail

N_SMALL=${N_SMALL:-200}
N_LARGE=${N_LARGE:-1200}
PORT=${PORT:-3344}
SERVER=${SERVER:-ironlun}
IRONLUN_BIN=${IRONLUN_BIN:-${CARGO_TARGET_DIR:-target}/release/ironlun}
FLOOR_BIN=${FLOOR_BIN:-${CARGO_TARGET_DIR:-target}/release/iscsi-floor}
URL="iscsi://127.0.0.1:$PORT/iqn.2026-11.org.ironlun:default/0"
# Absolute: the daemon runs from a work directory.
IRONLUN_BIN=$(realpath -m "$IRONLUN_BIN")
FLOOR_BIN=$(realpath -m "$FLOOR_BIN")

die() { printf 'instr-count.sh: %s\n' "$*" >&2; exit 1; }
command -v valgrind >/dev/null || { apt-get install -y -qq valgrind >&2 || die "install valgrind"; }
case "$SERVER" in
ironlun)
    [ -x "$IRONLUN_BIN" ] || cargo build --release -p ironlun >&2
    CMD=("$IRONLUN_BIN" serve --state-dir STATE --portal "127.0.0.1:$PORT")
    ;;
floor)
    [ -x "$FLOOR_BIN" ] || cargo build --release -p ironlun-floor >&2
    CMD=("$FLOOR_BIN" --listen "127.0.0.1:$PORT" --size 1G)
    ;;
*) die "SERVER is ironlun or floor" ;;
esac

WORK=$(mktemp -d /var/tmp/ironlun-instr.XXXXXX)
PID=
cleanup() {
    set +e
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/state"
CMD=("${CMD[@]/#STATE/$WORK/state}")
(cd "$WORK" && exec valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out.%p" "${CMD[@]}") \
    >"$WORK/log" 2>&1 &
PID=$!
for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || { tail -5 "$WORK/log" >&2; die "daemon exited"; }
    sleep 0.1
done

bench() { # count [-w]
    qemu-img bench -f raw -c "$1" -d 1 -s 4k ${2:-} "$URL" >/dev/null 2>&1 || die "qemu-img bench failed"
}
# Instructions of one run of `count` I/Os: zero, run, dump, read the dump's total.
count_run() { # count [-w]
    callgrind_control -z "$PID" >/dev/null 2>&1
    bench "$@"
    callgrind_control -d "$PID" >/dev/null 2>&1
    local f
    f=$(ls -t "$WORK"/cg.out.* | head -1)
    awk '/^(summary|totals):/ { print $2; exit }' "$f"
}
per_io() { # [-w]
    local small large
    small=$(count_run "$N_SMALL" "$@")
    large=$(count_run "$N_LARGE" "$@")
    awk -v a="$small" -v b="$large" -v n=$((N_LARGE - N_SMALL)) 'BEGIN { printf "%.0f", (b - a) / n }'
}

bench 200 && bench 200 -w # warm-up: the runtime's threads, the allocator, the RAM disk's pages
read=$(per_io)
write=$(per_io -w)
echo "$SERVER: instructions per 4 KiB I/O (QD1, callgrind, $N_LARGE-$N_SMALL I/Os): READ $read  WRITE $write"
