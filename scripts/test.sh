#!/usr/bin/env bash
# Builds and runs every test with ctest:
#   1. the dev preset: every test (unit, conformance, e2e, integration, the fault tests);
#   2. the asan preset: every test again under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. the tsan preset: the tests labelled tsan (the concurrent parts) under ThreadSanitizer,
#      building only what they need (the aec_tsan_tests target);
#   4. the fuzz targets (scripts/fuzz.sh): their regression inputs, then 30 s of fuzzing each.
#      The fuzz preset (clang) builds in the background, at the lowest priority, from the start.
#
#   scripts/test.sh            # all four
#   scripts/test.sh --quick    # the dev preset only
#   scripts/test.sh --no-fuzz  # the three ctest presets, no fuzzing
#   scripts/test.sh -- ARGS    # extra ctest arguments, e.g. -- -R Conformance
#
# The reliability tests (tests/fault/) append one summary line per store and test to
# build/PRESET/fault-summary.txt (cycles, violations, takeover p99, stale writes rejected); it is
# printed after each preset's run.
set -euo pipefail
cd "$(dirname "$0")/.."

presets=(dev asan tsan)
fuzz=1
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) presets=(dev); fuzz=0; shift ;;
    --no-fuzz) fuzz=0; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option '$1' (see --help)" >&2; exit 64 ;;
  esac
done

jobs=$(nproc 2>/dev/null || echo 2)
fuzz_build=""
if [ "$fuzz" -eq 1 ]; then
  # Mostly in the time the ctest runs leave the cores idle (fault tests wait out ttls).
  mkdir -p build
  # setsid: a group of its own, so that an early exit stops the whole build.
  # All cores: at nice 19 it gets next to none while the other presets build, and all of them
  # while their tests wait (and at the end, if it is not done by then).
  setsid bash -c "nice -n 19 cmake --preset fuzz >/dev/null &&
                  nice -n 19 cmake --build --preset fuzz -- -j$jobs" >build/fuzz-build.log 2>&1 &
  fuzz_build=$!
  trap '[ -z "$fuzz_build" ] || kill -- "-$fuzz_build" 2>/dev/null || true' EXIT
fi
for preset in "${presets[@]}"; do
  printf '\033[1m==> %s: configure, build, test\033[0m\n' "$preset"
  started=$SECONDS
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -- -j"$jobs"
  built=$SECONDS
  rm -f "build/$preset/fault-summary.txt"
  rc=0
  # Twice as many tests as cores: most of them wait (ttls, servers, processes), not compute.
  # The fault tests take two slots each (tests/fault/CMakeLists.txt): no more at once than cores.
  ctest --preset "$preset" -j"$((jobs * 2))" "${extra[@]}" || rc=$?
  # What each phase took, for keeping the CI run's time in view.
  printf '==> %s: built in %d s, tested in %d s (%d s since the script began)\n' \
    "$preset" "$((built - started))" "$((SECONDS - built))" "$SECONDS"
  if [ -s "build/$preset/fault-summary.txt" ]; then
    printf '\033[1m==> %s: reliability summary\033[0m\n' "$preset"
    sed 's/^fault: //' "build/$preset/fault-summary.txt"
  fi
  [ "$rc" -eq 0 ] || exit "$rc"
done
if [ "$fuzz" -eq 1 ]; then
  printf '\033[1m==> fuzz: wait for its build, then scripts/fuzz.sh\033[0m\n'
  if ! wait "$fuzz_build"; then
    tail -30 build/fuzz-build.log >&2
    echo "test.sh: the fuzz preset did not build (build/fuzz-build.log)" >&2
    exit 1
  fi
  fuzz_build=""
  scripts/fuzz.sh --seconds 30
  printf '==> fuzz: done (%d s since the script began)\n' "$SECONDS"
fi
