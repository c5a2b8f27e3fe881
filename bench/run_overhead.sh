#!/usr/bin/env bash
# Wall time of `aec run --key k -- true` against `flock -n FILE true`: what wrapping a job in aec
# costs over wrapping it in flock(1), process start-up included.
#
#   bench/run_overhead.sh [AEC_BINARY] [RUNS]
#
# AEC_BINARY defaults to $AEC, then build/release/src/cli/aec. RUNS defaults to 200 per command.
# Uses hyperfine when installed, else a bash loop timed with EPOCHREALTIME (or date +%s%N). The aec store is a fresh
# SQLite file in a temporary directory under $TMPDIR (default /tmp; AEC_STORE), removed at the
# end. TMPDIR=/dev/shm shows the cost without fsync.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
aec="${1:-${AEC:-$here/../build/release/src/cli/aec}}"
runs="${2:-${RUNS:-200}}"

if [[ ! -x "$aec" ]]; then
  echo "run_overhead.sh: no aec binary at '$aec' (pass its path or set AEC)" >&2
  exit 2
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/aec-overhead-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export AEC_STORE="sqlite://$tmp/aec.db"
lock="$tmp/flock.lock"
aec_cmd=("$aec" run --key bench/overhead -- true)
flock_cmd=(flock -n "$lock" true)

# One warm-up run each: creates the database and the lock file, loads the binaries into the
# page cache, and fails early if a command does not work at all.
"${aec_cmd[@]}"
"${flock_cmd[@]}"

# Sets `now` to microseconds since the epoch. Bash 5's EPOCHREALTIME costs no fork (nor does
# calling this function without $(...)); date(1) adds its own start-up to every sample and pulls
# the ratio towards 1, so it is only the fallback.
stamp() {
  if [[ -n "${EPOCHREALTIME:-}" ]]; then
    now=${EPOCHREALTIME/[.,]/}
  else
    now=$(($(date +%s%N) / 1000))
  fi
}

# Runs aec_cmd and flock_cmd alternately $runs times each, so that both see the same load on a
# shared machine, and prints "aec_mean aec_p50 flock_mean flock_p50" in microseconds.
time_loop() {
  local aec_samples=() flock_samples=() i t0 t1 t2 now
  for ((i = 0; i < runs; i++)); do
    stamp && t0=$now
    "${aec_cmd[@]}" >/dev/null
    stamp && t1=$now
    "${flock_cmd[@]}" >/dev/null
    stamp && t2=$now
    aec_samples+=($((t1 - t0)))
    flock_samples+=($((t2 - t1)))
  done
  echo "$(summarize "${aec_samples[@]}") $(summarize "${flock_samples[@]}")"
}

# "mean p50" of the arguments.
summarize() {
  printf '%s\n' "$@" | sort -n |
    awk '{ v[NR] = $1; s += $1 } END { printf "%.0f %d", s / NR, v[int((NR + 1) / 2)] }'
}

# Same output from hyperfine's JSON export (seconds -> microseconds).
hyperfine_stats() {
  local json="$tmp/hyperfine.json"
  hyperfine --runs "$runs" --warmup 3 -N --export-json "$json" "$(printf '%q ' "$@")" >/dev/null
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]
print("%.0f %.0f" % (r["mean"] * 1e6, r["median"] * 1e6))' "$json"
}

if command -v hyperfine >/dev/null; then
  method="hyperfine"
  read -r aec_mean aec_p50 < <(hyperfine_stats "${aec_cmd[@]}")
  read -r flock_mean flock_p50 < <(hyperfine_stats "${flock_cmd[@]}")
else
  method="bash loop, the two commands alternating, timed with EPOCHREALTIME or date +%s%N"
  read -r aec_mean aec_p50 flock_mean flock_p50 < <(time_loop)
fi

echo "runs: $runs per command; method: $method; nproc: $(nproc); $(date -u +%FT%TZ)"
echo "| command | mean µs | p50 µs |"
echo "|---|--:|--:|"
echo "| aec run --key k -- true | $aec_mean | $aec_p50 |"
echo "| flock -n FILE true | $flock_mean | $flock_p50 |"
awk -v am="$aec_mean" -v ap="$aec_p50" -v fm="$flock_mean" -v fp="$flock_p50" \
  'BEGIN { printf "ratio aec/flock: mean %.2f×, p50 %.2f× (target ≤ 1.5×)\n", am / fm, ap / fp }'
