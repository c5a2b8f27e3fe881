#!/usr/bin/env bash
# aec side by side with what its users would otherwise use, on this machine, in one run: every
# contender driven by aec-bench's clients looping acquire+release on distinct keys and on one hot
# key, at C = 1, 16 and 64, several repetitions. Contenders: aec embedded (sqlite), aecd over
# sqlite (durable) and over memory, aec over PostgreSQL and over etcd; the bare recipes of Redis
# (in memory, and appendfsync always), PostgreSQL (a lease row with synchronous_commit on and
# off, pg_try_advisory_lock), etcd (lease + txn over gRPC), flock(2) and a raw SQLite lease
# table; the floors (a loopback TCP round trip, pwrite + fdatasync per operation). Then
# `aec run -- true` against `flock -n FILE true`, aecd's parked waiters (10,000) and aecd holding
# 1,000,000 live leases (memory per lease; pairs/s against 1,000 leases).
#
#   bench/compare.sh                                  # the full comparison (~45 min)
#   bench/compare.sh --clients 1,16 --duration 2s --repetitions 1
#   bench/compare.sh --out DIR                        # default: bench/out/compare-DATE
#   bench/compare.sh --smoke                          # seconds: every step once, tiny figures
#
# Installs the peers from Debian when missing (scripts/install-packages.sh), builds the release
# preset, starts PostgreSQL, a 3-member etcd cluster and Redis on 127.0.0.1 with temporary data
# (scripts/dev-servers.sh; or uses those named by $AEC_TEST_SERVERS_ENV), and stops them at the
# end. Writes DIR/report.md (the tables: medians over the repetitions, what each contender
# guarantees, the targets), DIR/runs.json (every run), and DIR/*.png (gnuplot charts of
# throughput and latency by contender); prints the report. Exits 64 when a run failed or had
# errors (the report is written all the same).
#
# Options: --clients LIST, --duration D, --repetitions N, --out DIR, --build DIR (binaries from
# there, not built: e.g. build/dev), --smoke.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "compare.sh: $*" >&2; exit 64; }
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

clients=1,16,64
duration=5s
repetitions=3
out=""
build=""
smoke=0
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) [ $# -ge 2 ] || die "--clients needs a list, e.g. 1,16,64"; clients=$2; shift 2 ;;
    --duration) [ $# -ge 2 ] || die "--duration needs a value, e.g. 5s"; duration=$2; shift 2 ;;
    --repetitions) [ $# -ge 2 ] || die "--repetitions needs a number"; repetitions=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift 2 ;;
    --build) [ $# -ge 2 ] || die "--build needs a build directory, e.g. build/dev"; build=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[[ "$clients" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--clients '$clients' is not a list of numbers like 1,16,64"
[[ "$repetitions" =~ ^[1-9][0-9]*$ ]] || die "--repetitions '$repetitions' is not a positive number"
overhead_runs=200
waiters=10000
scale_small=1000 scale_large=1000000 scale_clients=64
if [ "$smoke" -eq 1 ]; then
  clients=2 duration=200ms repetitions=1 overhead_runs=5 waiters=50
  scale_small=100 scale_large=1000 scale_clients=2
fi
out=${out:-bench/out/compare-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ -z "$build" ]; then
  scripts/install-packages.sh >&2
  say "Building aec, aec-bench and aec-park-bench (release preset)"
  cmake --preset release -DAEC_BUILD_BENCH=ON >/dev/null
  cmake --build --preset release --target aec aec-bench aec-park-bench -- \
    -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
  build=build/release
fi
for bin in src/cli/aec bench/aec-bench bench/aec-park-bench; do
  [ -x "$build/$bin" ] || die "no $build/$bin: build it first (or leave out --build)"
done
command -v gnuplot >/dev/null || die "gnuplot is not installed (Debian package gnuplot-nox)"

servers=""
cleanup() {
  if [ -n "$servers" ]; then
    scripts/dev-servers.sh down --dir "$servers" >/dev/null 2>&1 || true
    rm -rf "$servers"
  fi
}
trap cleanup EXIT
if [ -z "${AEC_TEST_SERVERS_ENV:-}" ]; then
  servers=$(mktemp -d /tmp/aec-compare-XXXXXX)
  say "Starting PostgreSQL, etcd and Redis in $servers"
  scripts/dev-servers.sh up --dir "$servers" --only postgres --only etcd --only redis >/dev/null
  export AEC_TEST_SERVERS_ENV=$servers/urls.env
fi

contenders=(floor-loopback floor-fdatasync raw-sqlite flock aec-sqlite aecd-sqlite aecd-memory
  raw-redis raw-redis-aof raw-postgres raw-postgres-async pg-advisory aec-postgres raw-etcd aec-etcd)
args=()
for c in "${contenders[@]}"; do args+=(--contender "$c"); done
say "aec-bench: ${#contenders[@]} contenders, C = $clients, $duration per run, $repetitions repetition(s)"
failed=0
"$build/bench/aec-bench" "${args[@]}" --clients "$clients" --workload distinct --workload hot \
  --duration "$duration" --repetitions "$repetitions" --json "$out/runs.json" \
  --plot-data "$out" --targets >"$out/runs.md" || failed=1

say "Scale: aecd holding $scale_small, then $scale_large live leases (C = $scale_clients, distinct keys)"
for n in "$scale_small" "$scale_large"; do
  "$build/bench/aec-bench" --contender aecd-sqlite --contender aecd-memory --workload distinct \
    --clients "$scale_clients" --duration "$duration" --preload "$n" --json "$out/scale-$n.json" \
    >"$out/scale-$n.md" || failed=1
done
# One JSON object per line: the value of field $1 in the line of contender $2 of file $3.
field() { grep "\"contender\": \"$2\"" "$3" | sed -n "s/.*\"$1\": \([^,}]*\).*/\1/p" | head -1; }
{
  echo "| contender | live leases | preload s | server RSS after preload | per lease | pairs/s | vs $scale_small leases (target ≥ 0.8×) |"
  echo "|---|--:|--:|--:|--:|--:|--:|"
  for c in aecd-sqlite aecd-memory; do
    base=$(field ops_per_sec "$c" "$out/scale-$scale_small.json")
    for n in "$scale_small" "$scale_large"; do
      f=$out/scale-$n.json
      awk -v c="$c" -v n="$n" -v s="$(field preload_seconds "$c" "$f")" \
        -v before="$(field rss_before_preload "$c" "$f")" -v after="$(field rss_after_preload "$c" "$f")" \
        -v ops="$(field ops_per_sec "$c" "$f")" -v base="$base" 'BEGIN {
          ratio = base > 0 ? sprintf("%.2f×", ops / base) : "–"
          printf "| %s | %d | %.1f | %.1f MiB | %.0f B | %.0f | %s |\n", c, n, s, after / 1048576,
                 (after - before) / n, ops, ratio }'
    done
  done
} >"$out/scale.md"

say "aec run -- true against flock -n FILE true ($overhead_runs runs each)"
bench/run_overhead.sh "$build/src/cli/aec" "$overhead_runs" >"$out/overhead.md"
say "aecd's parked waiters ($waiters)"
"$build/bench/aec-park-bench" --waiters "$waiters" >"$out/waiters.md"

say "Charts (gnuplot)"
for workload in distinct hot; do
  [ -f "$out/throughput-$workload.dat" ] || continue
  gnuplot <<PLOT
set terminal pngcairo size 1200,600 noenhanced font ",10"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -35 scale 0
set grid ytics
set key below
set logscale y
set output "$out/throughput-$workload.png"
set title "acquire+release pairs/s, $workload $( [ $workload = hot ] && echo key || echo keys ) (log scale; higher is better)"
plot for [i=2:*] "$out/throughput-$workload.dat" using i:xtic(1) title columnheader
set output "$out/latency-$workload.png"
set title "acquire latency in µs at the largest C, $workload (log scale; lower is better)"
plot for [i=2:*] "$out/latency-$workload.dat" using i:xtic(1) title columnheader
PLOT
done

{
  echo "# aec compared with its peers"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), nproc $(nproc), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)," \
    "\`bench/compare.sh --clients $clients --duration $duration --repetitions $repetitions\`" \
    "(servers, clients and aec on this one machine)."
  echo
  echo "## Acquire+release, every run"
  echo
  cat "$out/runs.md"
  echo
  echo "## aec run against flock(1)"
  echo
  cat "$out/overhead.md"
  echo
  echo "## aecd's parked waiters"
  echo
  cat "$out/waiters.md"
  echo
  echo "## Scale: aecd holding many live leases"
  echo
  cat "$out/scale.md"
  echo
  echo "Charts: $(cd "$out" && ls ./*.png 2>/dev/null | tr '\n' ' ')"
} >"$out/report.md"
cat "$out/report.md"
say "Report: $out/report.md"
[ "$failed" -eq 0 ] || die "some runs failed or had errors: see the tables above"
