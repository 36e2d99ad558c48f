#!/usr/bin/env bash
# Layout rules of issue 8: no Rust source file under crates/ over 700 lines, and no import cycle
# between sibling modules of a crate (scripts/module-cycles.py). Test code is exempt from the
# length limit: files under a tests/ directory, files named tests.rs or *_tests.rs, and files
# whose first 5 lines carry the marker "generated table". Exits non-zero if either rule fails.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_LINES=700

long=0
while IFS= read -r -d '' file; do
  case "$file" in
    */tests/* | */tests.rs | *_tests.rs) continue ;;
  esac
  if head -n 5 "$file" | grep -q 'generated table'; then
    continue
  fi
  lines=$(wc -l <"$file")
  if [ "$lines" -gt "$MAX_LINES" ]; then
    echo "layout: $file has $lines lines (over $MAX_LINES)"
    long=$((long + 1))
  fi
done < <(find crates -name '*.rs' -not -path '*/target/*' -print0 | sort -z)

cycles_rc=0
cycles_out=$(python3 scripts/module-cycles.py) || cycles_rc=$?
echo "$cycles_out"
cycles=$(sed -n 's/^module cycles: \([0-9][0-9]*\)$/\1/p' <<<"$cycles_out")
if [ -z "$cycles" ]; then
  echo "layout: scripts/module-cycles.py did not finish (exit $cycles_rc)" >&2
  exit 2
fi

echo "layout: $long files over $MAX_LINES lines, ${cycles:-?} module cycles"
if [ "$long" -gt 0 ] || [ "$cycles_rc" -ne 0 ]; then
  exit 1
fi
