#!/usr/bin/env bash
# Builds the libFuzzer targets F1-F5 (tests/fuzz, the fuzz preset: clang 14, ASan+UBSan), replays
# their regression inputs and seed corpora, then fuzzes each target for a while.
#
#   scripts/fuzz.sh                       # every target, 30 s each
#   scripts/fuzz.sh --seconds 3600        # a soak
#   scripts/fuzz.sh --target fuzz_http    # one target (repeatable)
#   scripts/fuzz.sh --replay-only         # build and replay regressions + corpus, no fuzzing
#
# New corpus entries go to a temporary directory (not the repo); crashes, leaks, timeouts and OOMs
# are saved under build/fuzz/artifacts/TARGET/. One summary line per target; the exit status is 1
# when any target crashed, with the crashing input's path. To keep a crash as a regression input
# once fixed: copy it to tests/fuzz/regressions/TARGET/. Environment: AEC_FUZZ_JOBS (build jobs,
# default 1), AEC_FUZZ_SKIP (checks of known, reported bugs to skip: see tests/fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(fuzz_http fuzz_json_bodies fuzz_key_url fuzz_store_responses fuzz_cli)
seconds=30
replay_only=0
targets=()

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "fuzz.sh: $*" >&2; exit 64; }

while [ $# -gt 0 ]; do
  case "$1" in
    --seconds)
      [ $# -ge 2 ] || die "--seconds needs a number"
      [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] || die "--seconds '$2': give a whole number >= 1"
      seconds=$2; shift 2 ;;
    --seconds=*) set -- --seconds "${1#*=}" "${@:2}" ;;
    --target)
      [ $# -ge 2 ] || die "--target needs a name (${all_targets[*]})"
      [[ " ${all_targets[*]} " == *" $2 "* ]] || die "unknown target '$2' (known: ${all_targets[*]})"
      targets+=("$2"); shift 2 ;;
    --target=*) set -- --target "${1#*=}" "${@:2}" ;;
    --replay-only) replay_only=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

# The longest input per target: past each limit the code under test checks (16 KiB of HTTP
# headers, 512-byte keys), not much further, so mutations stay fast.
max_len() {
  case "$1" in
    fuzz_http) echo 20480 ;;
    fuzz_json_bodies) echo 8192 ;;
    fuzz_key_url) echo 1200 ;;
    fuzz_store_responses) echo 16384 ;;
    fuzz_cli) echo 2048 ;;
  esac
}

command -v clang++-14 >/dev/null || die "clang++-14 is missing (apt-get install clang-14 libclang-rt-14-dev)"
build=build/fuzz
printf '\033[1m==> configure and build the fuzz preset (%s)\033[0m\n' "${targets[*]}"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target "${targets[@]}" -- -j"${AEC_FUZZ_JOBS:-1}"

# A smaller quarantine than the default 256 MiB keeps RSS well under -rss_limit_mb.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:quarantine_size_mb=64}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
work=$(mktemp -d "${TMPDIR:-/tmp}/aec-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

failed=()
summary=()
for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/$t
  artifacts=$build/artifacts/$t
  mkdir -p "$artifacts" "$work/$t"
  inputs=()
  for dir in tests/fuzz/regressions/$t tests/fuzz/corpus/$t; do
    [ -d "$dir" ] || continue
    while IFS= read -r -d '' f; do inputs+=("$f"); done < <(find "$dir" -type f ! -name '.*' -print0 | sort -z)
  done
  printf '\033[1m==> %s: replay %d regression and corpus inputs\033[0m\n' "$t" "${#inputs[@]}"
  if [ ${#inputs[@]} -gt 0 ] &&
     ! "$bin" -rss_limit_mb=512 -timeout=5 "${inputs[@]}" >"$work/$t.replay.log" 2>&1; then
    tail -40 "$work/$t.replay.log" >&2
    bad=$(grep -o 'Running: .*' "$work/$t.replay.log" | tail -1 | cut -d' ' -f2-)
    summary+=("$t: replay FAILED on ${bad:-an input} (log above)")
    failed+=("$t")
    continue
  fi
  [ "$replay_only" -eq 1 ] && { summary+=("$t: replayed ${#inputs[@]} inputs, 0 crashes"); continue; }
  printf '\033[1m==> %s: fuzz for %d s\033[0m\n' "$t" "$seconds"
  seeds=()
  for dir in tests/fuzz/corpus/$t tests/fuzz/regressions/$t; do
    [ -d "$dir" ] && seeds+=("$dir")
  done
  start=$(date +%s)
  status=0
  "$bin" -max_total_time="$seconds" -rss_limit_mb=512 -timeout=1 -max_len="$(max_len "$t")" \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$work/$t" "${seeds[@]}" \
    >"$work/$t.log" 2>&1 || status=$?
  took=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$work/$t.log" | tail -1 | grep -o '[0-9]*$' || true)
  if [ -z "$execs" ]; then
    execs=$(grep -o '^#[0-9]*' "$work/$t.log" | tail -1 | tr -d '#' || true)
  fi
  crash=$(grep -o "Test unit written to .*" "$work/$t.log" | tail -1 | cut -d' ' -f5- || true)
  if [ "$status" -ne 0 ]; then
    tail -60 "$work/$t.log" >&2
    summary+=("$t: ${execs:-?} execs, 1 crash, ${took} s: ${crash:-see the log above}")
    failed+=("$t")
  else
    summary+=("$t: ${execs:-?} execs, 0 crashes, ${took} s")
  fi
done

printf '\033[1m==> summary\033[0m\n'
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: crashes in: ${failed[*]}" >&2
  exit 1
fi
