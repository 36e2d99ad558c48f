#!/usr/bin/env python3
"""Score iscsi-test-cu verbose logs: every test is PASSED, SKIPPED or FAILED.

A test counts as SKIPPED when its output before the verdict carries "[SKIPPED]" (libiscsi
prints "passed" for skipped tests, so a plain pass count would overstate conformance).

usage: testcu_score.py LOG [LOG ...] [--markdown] [--list]
Prints per-suite counts and totals; exits 1 when any test FAILED, 0 otherwise.
"""
import re
import sys
from collections import OrderedDict

SUITE = re.compile(r"^Suite: (\S+)")
TEST = re.compile(r"^\s+Test: (\S+) \.\.\.")


VERDICT = re.compile(r"(?:^|\.\.\.)\s*(passed|FAILED)", re.M)


def parse(text):
    """Return (tests, notes): tests is OrderedDict suite -> OrderedDict test -> (verdict, note);
    notes lists (suite, test-or-phase, message) for diagnostics outside a test's verdict.

    CUnit prints "Test: NAME ..." before a test's setup and its verdict ("passed" or "FAILED",
    decided by the test's assertions) after its teardown. That verdict is authoritative:
    libiscsi's helpers also log "[FAILED] ..." whenever a status differs from the one the
    caller passed in, and several tests probe with EXPECT_STATUS_GOOD on purpose and then
    assert on the outcome (e.g. iSCSIDataSnInvalid wants the write to fail). A test that
    passed but printed "[SKIPPED]" counts as SKIPPED. "[FAILED]" lines inside a passed test
    are kept as notes, and so is anything printed after the verdict (suite clean-up).
    """
    tests = OrderedDict()
    notes = []
    chunks = re.split(r"^(Suite: \S+|\s+Test: \S+ \.\.\.)", text, flags=re.M)
    suite = None
    pending = None  # (suite, test) whose output is the next chunk
    for chunk in chunks:
        m = SUITE.match(chunk)
        if m:
            suite, pending = m.group(1), None
            continue
        t = TEST.match(chunk)
        if t and suite is not None:
            pending = (suite, t.group(1))
            continue
        if pending is None:
            notes.extend((suite, "set-up", x) for x in re.findall(r"\[FAILED\][^\n]*", chunk))
            continue
        v = VERDICT.search(chunk)
        body, after = (chunk[: v.start()], chunk[v.end():]) if v else (chunk, "")
        failed = re.search(r"\[FAILED\]\s*([^\n]*)", body)
        skipped = re.search(r"\[SKIPPED\]\s*([^\n]*)", body)
        if v is None:
            verdict, note = "FAILED", "no verdict (run interrupted?)"
        elif v.group(1) == "FAILED":
            verdict = "FAILED"
            asserts = re.findall(r"^\s+\d+\. (\S+:\d+\s+- .*)$", after, re.M)
            distinct = list(OrderedDict.fromkeys(asserts))
            note = (failed.group(1).strip() if failed else "") or "; ".join(distinct[:3])
        elif skipped:
            verdict, note = "SKIPPED", skipped.group(1).strip()
        else:
            verdict, note = "PASSED", ""
        tests.setdefault(pending[0], OrderedDict())[pending[1]] = (verdict, note)
        if verdict != "FAILED":
            notes.extend(pending + (x,) for x in re.findall(r"\[FAILED\][^\n]*", body))
        notes.extend((pending[0], "clean-up", x) for x in re.findall(r"\[FAILED\][^\n]*", after))
        pending = None
    return tests, notes


def main(argv):
    logs = [a for a in argv if not a.startswith("--")]
    if not logs:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    results = OrderedDict()
    notes = []
    for log in logs:
        with open(log, errors="replace") as f:
            tests, n = parse(f.read())
            notes.extend(n)
            for s, t in tests.items():
                results.setdefault(s, OrderedDict()).update(t)
    total = {"PASSED": 0, "SKIPPED": 0, "FAILED": 0}
    rows = []
    for s, tests in results.items():
        c = {"PASSED": 0, "SKIPPED": 0, "FAILED": 0}
        for verdict, _ in tests.values():
            c[verdict] += 1
            total[verdict] += 1
        rows.append((s, c))
    md = "--markdown" in argv
    if md:
        print("| suite | passed | skipped | failed |\n|---|---|---|---|")
        for s, c in rows:
            print(f"| {s} | {c['PASSED']} | {c['SKIPPED']} | {c['FAILED']} |")
        print(f"| **total** | **{total['PASSED']}** | **{total['SKIPPED']}** | **{total['FAILED']}** |")
    else:
        for s, c in rows:
            print(f"{s:32} passed={c['PASSED']:3} skipped={c['SKIPPED']:3} failed={c['FAILED']:3}")
    if "--list" in argv or md:
        for s, tests in results.items():
            for t, (verdict, note) in tests.items():
                if verdict != "PASSED":
                    line = f"{verdict:8} {s}.{t}  {note}"
                    print(f"- {line}" if md else line)
    if notes and ("--list" in argv or md):
        print("\n[FAILED] diagnostics that are not a failed assertion (passed probes, suite clean-up):")
        for s, where, msg in notes:
            print(f"- {s}.{where}: {msg}" if md else f"  {s}.{where}: {msg}")
    n = sum(total.values())
    print(f"passed={total['PASSED']} skipped={total['SKIPPED']} failed={total['FAILED']} total={n}")
    return 1 if total["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
