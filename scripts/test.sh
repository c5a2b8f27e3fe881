#!/usr/bin/env bash
# Builds and runs every test with ctest:
#   1. the dev preset: every test (unit, conformance, e2e, integration);
#   2. the asan preset: every test again under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. the tsan preset: the tests labelled tsan (the concurrent parts) under ThreadSanitizer.
#
#   scripts/test.sh            # all three
#   scripts/test.sh --quick    # the dev preset only
#   scripts/test.sh -- ARGS    # extra ctest arguments, e.g. -- -R Conformance
#
# The reliability tests (tests/fault/) append one summary line per store and test to
# build/PRESET/fault-summary.txt (cycles, violations, takeover p99, stale writes rejected); it is
# printed after each preset's run.
set -euo pipefail
cd "$(dirname "$0")/.."

presets=(dev asan tsan)
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) presets=(dev); shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option '$1' (see --help)" >&2; exit 64 ;;
  esac
done

jobs=$(nproc 2>/dev/null || echo 2)
for preset in "${presets[@]}"; do
  printf '\033[1m==> %s: configure, build, test\033[0m\n' "$preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -- -j"$jobs"
  rm -f "build/$preset/fault-summary.txt"
  rc=0
  ctest --preset "$preset" -j"$jobs" "${extra[@]}" || rc=$?
  if [ -s "build/$preset/fault-summary.txt" ]; then
    printf '\033[1m==> %s: reliability summary\033[0m\n' "$preset"
    sed 's/^fault: //' "build/$preset/fault-summary.txt"
  fi
  [ "$rc" -eq 0 ] || exit "$rc"
done
