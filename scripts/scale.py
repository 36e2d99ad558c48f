#!/usr/bin/env python3
"""Ten thousand LUs (issue 16), measured as a user would with the CLI against the running
daemon: builds 10,000 RAM-disk LUs (1 MiB) exported as 10,000 LUNs of one TPG with 1,000
ACLs of 10 mapped LUNs each, in batches; at 1k, 5k and 10k LUs times single CLI changes
(create a device, a LUN, an ACL, a mapped LUN, set an attribute, delete them again: one
`ironlun` process each, as typed), `ls` and `get`; then a batch of 10,000 creations on a fresh
daemon, a restart to serving I/O (clean stop, and kill -9 with the journal to replay), and
the daemon's RSS. Prints a table and writes JSON; with --check, exits 1 when an acceptance
limit of issue 16 is not met. Usage: scale.py BIN WORKDIR PORT [--check] [--json FILE]
"""

import atexit
import json
import os
import signal
import statistics
import subprocess
import sys
import time

BIN, WORK, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
CHECK = "--check" in sys.argv
JSON_OUT = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
T = "iqn.2026-12.org.ironlun.scale:t"
TPG = f"iscsi/{T}/tpgt_1"
HOST = "iqn.2026-12.org.ironlun.scale:host{}"
PER_ACL = 10
LEVELS = [1000, 5000, 10000]
PROBES = 20  # of each kind of single change, per level


def cli(state, *args, check=True):
    r = subprocess.run([BIN, "--state-dir", state, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"scale: ironlun {' '.join(args)}: {r.stderr.strip()}")
    return r


def timed(state, *args):
    t = time.perf_counter()
    cli(state, *args)
    return (time.perf_counter() - t) * 1000


class Daemon:
    def __init__(self, state, port):
        self.state, self.port, self.proc = state, port, None
        os.makedirs(state, mode=0o700, exist_ok=True)
        self.log = open(os.path.join(WORK, f"daemon-{port}.log"), "a")

    def start(self):
        t = time.perf_counter()
        if self.proc is None:
            atexit.register(lambda: self.proc.poll() is None and self.proc.kill())
        self.proc = subprocess.Popen(
            [BIN, "serve", "--state-dir", self.state, "--portal", f"127.0.0.1:{self.port}"],
            stdout=self.log, stderr=self.log)
        sock = os.path.join(self.state, "control.sock")
        while cli(self.state, "ls", "iscsi/discovery_auth", check=False).returncode != 0:
            if self.proc.poll() is not None:
                sys.exit(f"scale: the daemon exited ({self.proc.returncode}); see {self.log.name}")
            if time.perf_counter() - t > 120:
                sys.exit("scale: the daemon did not answer in 120 s")
            time.sleep(0.01)
        del sock
        return time.perf_counter() - t

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)


def batch(state, lines):
    path = os.path.join(WORK, "batch.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    t = time.perf_counter()
    out = cli(state, "batch", path).stdout.strip()
    return time.perf_counter() - t, out


def grow(state, have, want):
    """Lines creating LUs have..want-1, their LUNs, and the ACLs mapping them."""
    lines = [f"create core/rd_mcp_1/d{i} size=1M" for i in range(have, want)]
    lines += [f"create {TPG}/lun/lun_{i} dev=core/rd_mcp_1/d{i}" for i in range(have, want)]
    for a in range(have // PER_ACL, want // PER_ACL):
        acl = f"{TPG}/acls/{HOST.format(a)}"
        lines.append(f"create {acl}")
        lines += [f"create {acl}/lun_{j} tpg_lun={a * PER_ACL + j}" for j in range(PER_ACL)]
    return lines


def probes(state, level):
    """Single changes, one CLI process each; the objects made are deleted again."""
    kinds = {k: [] for k in ["create device", "create LUN", "create ACL", "create mapped LUN",
                             "set attribute", "delete ACL", "delete LUN", "delete device"]}
    for p in range(PROBES):
        dev, lun, acl = f"core/rd_mcp_2/p{p}", level + 100 + p, f"{TPG}/acls/{HOST.format(90000 + p)}"
        kinds["create device"].append(timed(state, "create", dev, "size=1M"))
        kinds["create LUN"].append(timed(state, "create", f"{TPG}/lun/lun_{lun}", f"dev={dev}"))
        kinds["create ACL"].append(timed(state, "create", acl))
        kinds["create mapped LUN"].append(timed(state, "create", f"{acl}/lun_0", f"tpg_lun={lun}"))
        kinds["set attribute"].append(timed(state, "set", f"core/rd_mcp_1/d{p * 7 % level}/attrib/emulate_tpu", str(p % 2)))
        kinds["delete ACL"].append(timed(state, "delete", acl))
        kinds["delete LUN"].append(timed(state, "delete", f"{TPG}/lun/lun_{lun}"))
        kinds["delete device"].append(timed(state, "delete", dev))
    every = [x for v in kinds.values() for x in v]
    return {k: statistics.median(v) for k, v in kinds.items()}, statistics.median(every)


def reads(state, level):
    def med(*args, n=5):
        return statistics.median(timed(state, *args) for _ in range(n))
    mid = level // 2
    return {
        "ls one LU": med("ls", f"core/rd_mcp_1/d{mid}"),
        "ls one TPG LUN": med("ls", f"{TPG}/lun/lun_{mid}"),
        "ls one ACL": med("ls", f"{TPG}/acls/{HOST.format(mid // PER_ACL)}"),
        "get one attribute": med("get", f"core/rd_mcp_1/d{mid}/attrib/block_size"),
        "full ls": med("ls", n=3),
    }


def serving(port, deadline):
    """Until an INQUIRY through the last ACL's mapped LUN 9 (TPG LUN 9999) answers."""
    url = f"iscsi://127.0.0.1:{port + 1}/{T}/{PER_ACL - 1}"
    ini = HOST.format(LEVELS[-1] // PER_ACL - 1)
    while time.perf_counter() < deadline:
        r = subprocess.run(["iscsi-inq", "-i", ini, url], capture_output=True, text=True)
        if r.returncode == 0:
            return True
        time.sleep(0.02)
    return False


def restart(d, sig):
    d.stop(sig)
    t = time.perf_counter()
    d.start()
    ok = serving(d.port, t + 60)
    return time.perf_counter() - t if ok else None


def main():
    os.makedirs(WORK, exist_ok=True)
    res = {"levels": {}}
    d = Daemon(os.path.join(WORK, "state"), PORT)
    d.start()
    cli(d.state, "create", TPG)
    cli(d.state, "create", f"{TPG}/np/127.0.0.1:{PORT + 1}")
    cli(d.state, "set", f"{TPG}/enable", "1")
    have = 0
    for level in LEVELS:
        secs, out = batch(d.state, grow(d.state, have, level))
        have = level
        changes, median = probes(d.state, level)
        res["levels"][level] = {"grow batch s": secs, "grow batch": out, "changes ms": changes,
                                "median change ms": median, "reads ms": reads(d.state, level),
                                "rss MiB": d.rss_mib()}
    res["rss MiB"] = d.rss_mib()
    res["restart s"] = restart(d, signal.SIGTERM)
    res["rss after restart MiB"] = d.rss_mib()
    # Changes in the journal, then kill -9: the restart replays them.
    for p in range(200):
        cli(d.state, "set", f"core/rd_mcp_1/d{p}/attrib/emulate_tpu", "1")
    res["restart after kill -9 s"] = restart(d, signal.SIGKILL)
    res["tpu kept after kill -9"] = cli(d.state, "get", "core/rd_mcp_1/d199/attrib/emulate_tpu").stdout.strip()
    d.stop()
    # One batch of 10,000 creations on a fresh daemon.
    f = Daemon(os.path.join(WORK, "fresh"), PORT + 2)
    f.start()
    secs, out = batch(f.state, [f"create core/rd_mcp_1/b{i} size=1M" for i in range(10000)])
    res["batch of 10000 creations s"], res["batch answer"] = secs, out
    f.stop()

    lv = res["levels"]
    ratio = lv[10000]["median change ms"] / lv[1000]["median change ms"]
    res["median change ratio 10k/1k"] = ratio
    print(f"{'LUs':>6} {'median change ms':>17} {'ls one LU ms':>13} {'get ms':>7} {'full ls ms':>11} {'RSS MiB':>8} {'grow batch s':>13}")
    for level, v in lv.items():
        r = v["reads ms"]
        print(f"{level:>6} {v['median change ms']:>17.2f} {r['ls one LU']:>13.2f} {r['get one attribute']:>7.2f} {r['full ls']:>11.1f} {v['rss MiB']:>8.1f} {v['grow batch s']:>13.2f}")
    for level, v in lv.items():
        print(f"  {level} LUs, median ms per kind: " + ", ".join(f"{k} {x:.2f}" for k, x in v["changes ms"].items()))
    print(f"median change at 10k / at 1k: {ratio:.2f}")
    print(f"batch of 10,000 creations: {res['batch of 10000 creations s']:.2f} s ({res['batch answer']})")
    print(f"restart to serving I/O, 10k LUs: {res['restart s']} s (clean stop), {res['restart after kill -9 s']} s (kill -9, journal replayed; kept: {res['tpu kept after kill -9']})")
    print(f"RSS: {res['rss MiB']:.1f} MiB at 10k LUs, {res['rss after restart MiB']:.1f} MiB after restart")
    if JSON_OUT:
        with open(JSON_OUT, "w") as fo:
            json.dump(res, fo, indent=1)
    if CHECK:
        ten = lv[10000]
        limits = [
            ("single change median at 10k <= 5 ms", ten["median change ms"] <= 5),
            ("median at 10k within 1.5x of 1k", ratio <= 1.5),
            ("batch of 10,000 creations <= 10 s", res["batch of 10000 creations s"] <= 10),
            ("ls of one LU <= 20 ms", ten["reads ms"]["ls one LU"] <= 20),
            ("full ls <= 2 s", ten["reads ms"]["full ls"] <= 2000),
            ("restart <= 3 s", (res["restart s"] or 99) <= 3 and (res["restart after kill -9 s"] or 99) <= 3),
            ("RSS <= 200 MB", max(res["rss MiB"], res["rss after restart MiB"]) * 1.048576 <= 200),
            ("changes journaled before kill -9 kept", res["tpu kept after kill -9"] == "1"),
        ]
        failed = [n for n, ok in limits if not ok]
        for n, ok in limits:
            print(f"  {'ok  ' if ok else 'FAIL'} {n}")
        if failed:
            sys.exit(1)


if __name__ == "__main__":
    main()
