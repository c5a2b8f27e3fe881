#!/usr/bin/env bash
# T14 of the reliability plan (docs/reliability.md): how soon a waiting client is granted after a
# clean release, per store. Two clients on one hot key, each looping acquire (waiting) and
# release, so every release hands the key to a client that waits: aec embedded on sqlite, aecd
# over sqlite (a parked acquire), aec on postgres (LISTEN/NOTIFY) and on etcd (a watch). The
# handoff is aec-bench's handover: from the release's start to the next holder's grant.
# Target: p99 <= 50 ms with at least 200 handoffs per store.
#
#   bench/handoff.sh                    # 10 s per store
#   bench/handoff.sh --duration 30s     # longer runs (the soak figure is 10,000 handoffs)
#   bench/handoff.sh --contender aecd-sqlite --contender aec-etcd
#
# Builds aec-bench (release preset). Starts its own PostgreSQL and etcd cluster
# (scripts/dev-servers.sh, a temporary folder, stopped at the end) unless AEC_BENCH_POSTGRES_URL
# and AEC_BENCH_ETCD_ENDPOINTS are set. Prints one markdown table; exits 1 when a store misses
# the target or has fewer than 200 handoffs.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "handoff.sh: $*" >&2; exit 64; }
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

duration=10s
contenders=()
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) [ $# -ge 2 ] || die "--duration needs a value, e.g. 10s"; duration=$2; shift 2 ;;
    --contender) [ $# -ge 2 ] || die "--contender needs a name"; contenders+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[ ${#contenders[@]} -gt 0 ] || contenders=(aec-sqlite aecd-sqlite aec-postgres aec-etcd)
for c in "${contenders[@]}"; do
  [[ " aec-sqlite aecd-sqlite aec-postgres aec-etcd " == *" $c "* ]] ||
    die "unknown contender '$c' (aec-sqlite, aecd-sqlite, aec-postgres, aec-etcd)"
done

say "Building aec-bench (release preset)"
cmake --preset release >/dev/null
cmake --build --preset release --target aec-bench -- -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

servers=""
cleanup() {
  if [ -n "$servers" ]; then
    scripts/dev-servers.sh down --dir "$servers" >/dev/null 2>&1 || true
    rm -rf "$servers"
  fi
}
trap cleanup EXIT
if [[ " ${contenders[*]} " == *" aec-postgres "* || " ${contenders[*]} " == *" aec-etcd "* ]] &&
   [[ -z "${AEC_BENCH_POSTGRES_URL:-}" || -z "${AEC_BENCH_ETCD_ENDPOINTS:-}" ]]; then
  servers=$(mktemp -d /tmp/aec-handoff-XXXXXX)
  say "Starting PostgreSQL and etcd in $servers"
  scripts/dev-servers.sh up --dir "$servers" --only postgres --only etcd >/dev/null
  # shellcheck disable=SC1091
  . "$servers/urls.env"
  export AEC_BENCH_POSTGRES_URL=${AEC_BENCH_POSTGRES_URL:-$AEC_TEST_POSTGRES_URL}
  export AEC_BENCH_ETCD_ENDPOINTS=${AEC_BENCH_ETCD_ENDPOINTS:-$AEC_TEST_ETCD_ENDPOINTS}
fi

json=$(mktemp /tmp/aec-handoff-XXXXXX.json)
trap 'cleanup; rm -f "$json"' EXIT
args=()
for c in "${contenders[@]}"; do args+=(--contender "$c"); done
say "Two waiting clients on one hot key, $duration per store"
build/release/bench/aec-bench "${args[@]}" --workload hot --clients 2 --duration "$duration" \
  --json "$json" >/dev/null

field() { sed -n "s/.*\"$1\": \([^,}]*\).*/\1/p" <<<"$2"; }
ms() { awk -v us="$1" 'BEGIN { printf "%.1f", us / 1000 }'; }
missed=0
echo "| store | handoffs | p50 ms | p99 ms | max ms | p99 <= 50 ms |"
echo "|---|--:|--:|--:|--:|---|"
while IFS= read -r line; do
  [[ "$line" == *'"contender"'* ]] || continue
  name=$(field contender "$line" | tr -d '"')
  n=$(field handovers "$line")
  p99=$(field handover_p99_us "$line")
  verdict=met
  if [ "${n:-0}" -lt 200 ]; then
    verdict="too few handoffs (< 200): run longer"
    missed=1
  elif awk -v v="$p99" 'BEGIN { exit !(v > 50000) }'; then
    verdict=MISSED
    missed=1
  fi
  echo "| $name | $n | $(ms "$(field handover_p50_us "$line")") | $(ms "$p99") |" \
    "$(ms "$(field handover_max_us "$line")") | $verdict |"
done <"$json"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), nproc $(nproc), commit $(git rev-parse --short HEAD)," \
  "bench/handoff.sh --duration $duration"
exit "$missed"
