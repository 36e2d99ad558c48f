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
    notes lists (suite, message) for [FAILED]/[SKIPPED] lines printed outside any test.

    CUnit prints "Test: NAME ..." before a test's setup and its verdict ("passed" or "FAILED")
    after the test's teardown, so a test's output is the text between the two. Any "[FAILED]"
    there fails the test, even when CUnit then says "passed" (libiscsi logs some failures
    without asserting); otherwise "[SKIPPED]" makes it SKIPPED. Text after the verdict and
    before the next test is suite cleanup (libiscsi's clear_pr), reported as a note.
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
            notes.extend((suite, x) for x in re.findall(r"\[(?:FAILED|SKIPPED)\][^\n]*", chunk))
            continue
        v = VERDICT.search(chunk)
        body, after = (chunk[: v.start()], chunk[v.end():]) if v else (chunk, "")
        failed = re.search(r"\[FAILED\]\s*([^\n]*)", body)
        skipped = re.search(r"\[SKIPPED\]\s*([^\n]*)", body)
        if v is None:
            verdict, note = "FAILED", "no verdict (run interrupted?)"
        elif v.group(1) == "FAILED" or failed:
            verdict, note = "FAILED", failed.group(1).strip() if failed else ""
        elif skipped:
            verdict, note = "SKIPPED", skipped.group(1).strip()
        else:
            verdict, note = "PASSED", ""
        tests.setdefault(pending[0], OrderedDict())[pending[1]] = (verdict, note)
        notes.extend((pending[0], x) for x in re.findall(r"\[(?:FAILED|SKIPPED)\][^\n]*", after))
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
        print("\nOutside any test (suite set-up/clean-up):")
        for s, msg in notes:
            print(f"- {s}: {msg}" if md else f"  {s}: {msg}")
    n = sum(total.values())
    print(f"passed={total['PASSED']} skipped={total['SKIPPED']} failed={total['FAILED']} total={n}")
    return 1 if total["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
