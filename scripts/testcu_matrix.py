#!/usr/bin/env python3
"""Combine iscsi-test-cu logs of several LU configurations into one matrix.

usage: testcu_matrix.py [--markdown] NAME=DIR [NAME=DIR ...]
Each DIR holds scsi.log (and iscsi.log unless that family was not run) of one configuration
(scripts/conformance.sh OUT=DIR); a test not run in a configuration shows as "-".
Every test gets one verdict per configuration (PASSED / SKIPPED / FAILED, scored as
testcu_score.py does). Exits 1 unless every test PASSED on at least one configuration and
FAILED on none, except the tests in UNPASSABLE (listed on every run, with the reason), which
must not FAIL either.
"""
import os
import sys
from collections import OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testcu_score import parse  # noqa: E402

SHORT = {"PASSED": "P", "SKIPPED": "s", "FAILED": "F", None: "-"}

# Tests no configuration can pass honestly, each with the reason. They still count: they must
# never FAIL, they are listed on every run, and the run says NOT OK if any other test never
# passes. CRYPTOGRAPHIC ERASE makes data unreadable by changing the medium's encryption key;
# ironlun stores data unencrypted, so it refuses that service action (issue 5: "crypto erase
# refused properly") and libiscsi skips the tests that need it.
UNPASSABLE = {
    "Sanitize.CryptoErase": "needs SANITIZE CRYPTOGRAPHIC ERASE (no encryption at rest; refused)",
    "Sanitize.Readonly": "also probes CRYPTOGRAPHIC ERASE and prints [SKIPPED] without it "
                         "(its OVERWRITE and BLOCK ERASE checks pass on thin)",
    "Sanitize.Reservations": "also probes CRYPTOGRAPHIC ERASE and prints [SKIPPED] without it "
                             "(its OVERWRITE and BLOCK ERASE checks pass on thin)",
}


def main(argv):
    md = "--markdown" in argv
    pairs = [a.split("=", 1) for a in argv if not a.startswith("--")]
    if not pairs or any(len(p) != 2 for p in pairs):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    names = [n for n, _ in pairs]
    grid = OrderedDict()  # "Suite.Test" -> {config: (verdict, note)}
    for name, d in pairs:
        for log in ("scsi.log", "iscsi.log"):
            path = os.path.join(d, log)
            if not os.path.exists(path):
                if log == "iscsi.log":
                    continue
                print(f"matrix: {path} missing", file=sys.stderr)
                return 1
            with open(path, errors="replace") as f:
                tests, _ = parse(f.read())
            for suite, ts in tests.items():
                for t, v in ts.items():
                    grid.setdefault(f"{suite}.{t}", {})[name] = v
    never = [t for t, row in grid.items()
             if not any(v[0] == "PASSED" for v in row.values())]
    failed = [(t, n, row[n][1]) for t, row in grid.items() for n in names
              if n in row and row[n][0] == "FAILED"]
    per = {n: {"PASSED": 0, "SKIPPED": 0, "FAILED": 0} for n in names}
    for row in grid.values():
        for n, (v, _) in row.items():
            per[n][v] += 1
    if md:
        print("| configuration | passed | skipped | failed |\n|---|---|---|---|")
        for n in names:
            c = per[n]
            print(f"| {n} | {c['PASSED']} | {c['SKIPPED']} | {c['FAILED']} |")
        print()
        print("| test | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for t, row in grid.items():
            cells = [SHORT[row.get(n, (None,))[0]] for n in names]
            print(f"| {t} | " + " | ".join(cells) + " |")
        print()
    else:
        for n in names:
            c = per[n]
            print(f"{n:12} passed={c['PASSED']:3} skipped={c['SKIPPED']:3} failed={c['FAILED']:3}")
    for t, n, note in failed:
        print(f"FAILED on {n}: {t}  {note}")
    unexplained = [t for t in never if t not in UNPASSABLE]
    for t in never:
        if t in UNPASSABLE:
            print(f"never PASSED (cannot here): {t}  {UNPASSABLE[t]}")
        else:
            reasons = "; ".join(f"{n}: {v[0]} {v[1]}".strip() for n, v in grid[t].items())
            print(f"never PASSED: {t}  ({reasons})")
    for t in UNPASSABLE:
        if t in grid and t not in never:
            print(f"note: {t} is listed as unpassable but PASSED; update UNPASSABLE")
    ok = not failed and not unexplained
    print(f"tests={len(grid)} passed-somewhere={len(grid) - len(never)} "
          f"never-passed={len(never)} (unpassable here: {len(never) - len(unexplained)}) "
          f"failed-somewhere={len({t for t, _, _ in failed})} -> {'OK' if ok else 'NOT OK'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
