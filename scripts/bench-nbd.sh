#!/usr/bin/env bash
# The multipath NBD export's overhead (issue 10, acceptance 3): 4 KiB reads at QD32 against one
# ironlun RAM disk, in one run, interleaved ROUNDS times so that drift on a shared machine hits
# every client alike:
#   - fio's nbd engine, random reads, through `ironlun host serve-nbd` over TCP and over the
#     export's Unix socket, against libiscsi's iscsi-perf (-m 32 -b 8 -r) straight over iSCSI;
#   - qemu-img bench (same client both ways; it reads sequentially, which a RAM disk does not
#     mind) through the export's Unix socket and straight with its iscsi:// driver. qemu's NBD
#     client keeps at most 16 requests in flight (MAX_NBD_REQUESTS in its block/nbd.c), so its
#     NBD run is QD16 whatever -d says.
# Prints each run, the medians, the ratios of the medians, and the CPU time per I/O of
# serve-nbd, of the target and of the client.
#
#   scripts/bench-nbd.sh          SECS=10 ROUNDS=3 P=3880 IRONLUN_BIN=target/release/ironlun
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${IRONLUN_BIN:-target/release/ironlun}
SECS=${SECS:-10}
ROUNDS=${ROUNDS:-3}
P=${P:-3880}
OUT=$(mktemp -d /tmp/ironlun-bench-nbd.XXXXXX)
URL="iscsi://127.0.0.1:$P/iqn.2026-11.org.ironlun:default/0"
"$BIN" serve --state-dir "$OUT/state" --portal "127.0.0.1:$P" >"$OUT/daemon.log" 2>&1 &
D=$!
for _ in $(seq 100); do [ -S "$OUT/state/control.sock" ] && break; sleep 0.1; done
sleep 0.3
"$BIN" host serve-nbd --listen "127.0.0.1:$((P + 1))" --unix "$OUT/nbd.sock" \
  --status-socket "$OUT/st.sock" "$URL" >"$OUT/nbd.log" 2>&1 &
N=$!
trap 'kill $N $D 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 100); do [ -S "$OUT/st.sock" ] && break; sleep 0.1; done
# CPU ticks (user + system) of a process, and of this shell's waited-for children.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
children() { awk '{print $16 + $17}' /proc/$$/stat; }

fio_run() { # name uri
  local n0 d0 n1 d1
  n0=$(ticks "$N"); d0=$(ticks "$D")
  fio --name=nbd --ioengine=nbd --uri="$2" --rw=randread --bs=4k --iodepth=32 --size=1G \
    --time_based --runtime="$SECS" --output-format=json --output="$OUT/$1.json"
  n1=$(ticks "$N"); d1=$(ticks "$D")
  echo "$1 $((n1 - n0)) $((d1 - d0)) 0" >>"$OUT/cpu"
}
perf_run() { # name
  local d0 d1 c0 c1
  d0=$(ticks "$D"); c0=$(children)
  timeout -s INT "$SECS" iscsi-perf -m 32 -b 8 -r "$URL" >"$OUT/$1.txt" 2>&1 || true
  d1=$(ticks "$D"); c1=$(children)
  echo "$1 0 $((d1 - d0)) $((c1 - c0))" >>"$OUT/cpu"
}
# Warm up (connections, caches, the RAM disk's pages); not counted.
fio --name=warm --ioengine=nbd --uri="nbd://127.0.0.1:$((P + 1))/ironlun" --rw=randread --bs=4k \
  --iodepth=32 --size=1G --time_based --runtime=2 --output=/dev/null
qemu_run() { # name url
  local n0 d0 c0 n1 d1 c1
  n0=$(ticks "$N"); d0=$(ticks "$D"); c0=$(children)
  qemu-img bench -f raw -c "$QCOUNT" -d 32 -s 4096 -S 4096 -t none "$2" >"$OUT/$1.txt" 2>&1
  n1=$(ticks "$N"); d1=$(ticks "$D"); c1=$(children)
  echo "$1 $((n1 - n0)) $((d1 - d0)) $((c1 - c0))" >>"$OUT/cpu"
}
# qemu-img bench runs a count, not a time: about SECS seconds at 80,000 IOPS.
QCOUNT=$((SECS * 80000))
for r in $(seq "$ROUNDS"); do
  fio_run "tcp$r" "nbd://127.0.0.1:$((P + 1))/ironlun"
  fio_run "unix$r" "nbd+unix:///ironlun?socket=$OUT/nbd.sock"
  perf_run "perf$r"
  qemu_run "qnbd$r" "nbd+unix:///ironlun?socket=$OUT/nbd.sock"
  qemu_run "qiscsi$r" "$URL"
done
python3 - "$OUT" "$ROUNDS" "$(getconf CLK_TCK)" "$SECS" "$QCOUNT" <<'PY'
import json, re, statistics, sys
out, rounds, hz, secs, qcount = sys.argv[1], *map(int, sys.argv[2:])
cpu = {l.split()[0]: [int(x) for x in l.split()[1:]] for l in open(f"{out}/cpu")}
def us(ticks, ios):
    return ticks / hz / ios * 1e6 if ios else float("nan")
rows = {"tcp": [], "unix": [], "perf": [], "qnbd": [], "qiscsi": []}
for r in range(1, rounds + 1):
    for kind in ("tcp", "unix"):
        name = f"{kind}{r}"
        j = json.load(open(f"{out}/{name}.json"))["jobs"][0]
        ios, iops = j["read"]["total_ios"], j["read"]["iops"]
        if j["error"] or j["read"].get("total_err", 0):
            print(f"{name}: fio reported errors"); sys.exit(1)
        n, d, _ = cpu[name]
        client = (j["usr_cpu"] + j["sys_cpu"]) / 100 * j["job_runtime"] / 1000
        rows[kind].append((iops, us(n, ios), us(d, ios), client / ios * 1e6))
    name = f"perf{r}"
    vals = [float(x) for x in re.findall(r"iops average ([0-9]+)", open(f"{out}/{name}.txt").read())]
    if not vals:
        print(f"{name}: iscsi-perf gave no numbers"); sys.exit(1)
    iops = vals[-1]
    # iscsi-perf prints its running average once a second; it ran SECS seconds.
    ios = iops * secs
    _, d, c = cpu[name]
    rows["perf"].append((iops, float("nan"), us(d, ios), us(c, ios)))
    for kind in ("qnbd", "qiscsi"):
        name = f"{kind}{r}"
        m = re.search(r"Run completed in ([0-9.]+) seconds", open(f"{out}/{name}.txt").read())
        if not m:
            print(f"{name}: qemu-img bench failed"); sys.exit(1)
        n, d, c = cpu[name]
        rows[kind].append((qcount / float(m.group(1)), us(n, qcount), us(d, qcount), us(c, qcount)))
label = {"tcp": "fio → NBD (TCP) → serve-nbd → iSCSI", "unix": "fio → NBD (Unix) → serve-nbd → iSCSI",
         "perf": "iscsi-perf → iSCSI", "qnbd": "qemu-img → NBD (Unix, ≤16 in flight) → serve-nbd",
         "qiscsi": "qemu-img → iSCSI"}
med = {}
print(f"{'path':44} {'IOPS per round':>28} {'median':>8}  CPU µs/I/O: serve-nbd target client")
for k, v in rows.items():
    m = statistics.median(x[0] for x in v)
    med[k] = m
    cols = [statistics.median(x[i] for x in v) for i in (1, 2, 3)]
    per = " ".join(f"{x[0]:8.0f}" for x in v)
    sn = "-" if k in ("perf", "qiscsi") else f"{cols[0]:.1f}"
    print(f"{label[k]:44} {per:>28} {m:8.0f}  {sn:>9} {cols[1]:6.1f} {cols[2]:6.1f}")
for k in ("tcp", "unix"):
    print(f"ratio fio {k} / iscsi-perf: {med[k] / med['perf']:.2f} (median over median)")
print(f"ratio qemu-img nbd unix / qemu-img iscsi: {med['qnbd'] / med['qiscsi']:.2f}")
PY
