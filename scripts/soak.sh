#!/usr/bin/env bash
# Runs the reliability suite at its soak figures (../shared/RELIABILITY.md, B.2): the fault tests
# on real processes (T1-T11, T13) for every store, and the deterministic simulation (T12) with
# 2,000,000 seeds. Opt-in: hours, not minutes; CI runs the same tests at their CI figures.
# Ends with one table: per store and test, the cycles run, violations, takeover p50/p99/max,
# stale writes rejected and unfenced overlap.
#
#   scripts/soak.sh                      # everything at the soak figures
#   scripts/soak.sh --tests T2,T4        # only these tests (T1-T13)
#   scripts/soak.sh --stores sqlite,aecd # only these stores (sqlite, aecd, postgres, etcd, dynamodb)
#   scripts/soak.sh --ci                 # the CI figures (minutes; to try the script)
#
# Builds the dev preset (and the release one's sim_test for T12), starts the servers its stores
# need (scripts/dev-servers.sh) in a temporary folder and stops them at the end; runs for
# different stores can go side by side. The summary lines also go to build/dev/soak-DATE-PID.txt.
# Fuzzing has its own soak: scripts/fuzz.sh --seconds 3600.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "soak.sh: $*" >&2; exit 64; }
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

tests="T1,T2,T3,T4,T5,T6,T7,T8,T9,T10,T11,T12,T13"
stores="sqlite,aecd,postgres,etcd,dynamodb"
ci=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tests) [ $# -ge 2 ] || die "--tests needs a list, e.g. T2,T4"; tests=$2; shift 2 ;;
    --stores) [ $# -ge 2 ] || die "--stores needs a list, e.g. sqlite,aecd"; stores=$2; shift 2 ;;
    --ci) ci=1; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
for t in ${tests//,/ }; do
  [[ "$t" =~ ^T([1-9]|1[0-3])$ ]] || die "unknown test '$t' (T1-T13)"
done
for s in ${stores//,/ }; do
  [[ " sqlite aecd postgres etcd dynamodb " == *" $s "* ]] ||
    die "unknown store '$s' (sqlite, aecd, postgres, etcd, dynamodb)"
done

if [ "$ci" -eq 0 ]; then
  export AEC_FAULT_T1_OPS=12500 AEC_FAULT_T2_CYCLES=1000 AEC_FAULT_T3_CYCLES=300
  export AEC_FAULT_T4_CYCLES=500 AEC_FAULT_T5_CYCLES=500 AEC_FAULT_T6_CYCLES=200
  export AEC_FAULT_T7_CYCLES=50
  export AEC_FAULT_T8_CYCLES=50 AEC_FAULT_T9_CYCLES=2000 AEC_FAULT_T10_CYCLES=200
  export AEC_FAULT_T11_SECONDS=1800 AEC_FAULT_T13_CALLS=10000 AEC_SIM_SEEDS=2000000
fi

say "Building (dev preset)"
cmake --preset dev >/dev/null
cmake --build --preset dev -- -j"$(nproc 2>/dev/null || echo 2)" process_fault_test \
  server_fault_test fault_child fault_worker aec >/dev/null
if [[ ",$tests," == *,T12,* ]]; then
  # All CPU: optimised, 2,000,000 seeds take minutes, not an hour.
  cmake --preset release -DAEC_BUILD_TESTS=ON >/dev/null
  cmake --build --preset release -- -j"$(nproc 2>/dev/null || echo 2)" sim_test >/dev/null
fi

servers=$(mktemp -d /tmp/aec-soak-XXXXXX)
cleanup() { scripts/dev-servers.sh down --dir "$servers" >/dev/null 2>&1 || true; rm -rf "$servers"; }
trap cleanup EXIT
# Only the servers the stores named need, so that runs of different stores can go side by side.
need=()
[[ ",$stores," == *,postgres,* ]] && need+=(--only postgres)
[[ ",$stores," == *,etcd,* ]] && need+=(--only etcd)
[[ ",$stores," == *,dynamodb,* ]] && need+=(--only dynalite)
if [ ${#need[@]} -gt 0 ]; then
  say "Starting ${need[*]//--only /} in $servers"
  scripts/dev-servers.sh up --dir "$servers" "${need[@]}" >/dev/null
fi
export AEC_TEST_SERVERS_ENV=$servers/urls.env

# Each run's summary lines go to a file of its own (the tests append to $AEC_FAULT_SUMMARY).
out=build/dev/soak-$(date -u +%Y%m%dT%H%M%SZ)-$$.txt
summary=$servers/fault-summary.txt
export AEC_FAULT_SUMMARY=$summary
# gtest filters know only * and ?: the tests' full names.
declare -A names=([T1]=T1HistoryOfDirectCalls [T2]=T2KillHolderGroup [T3]=T3KillSupervisorOnly
  [T4]=T4PauseHolder [T5]=T5Partition [T6]=T6ClockSteps [T7]=T7PostgresClockSteps
  [T8]=T8ServerCrash
  [T9]=T9SqliteWriterKilled [T10]=T10EtcdMembersFail [T11]=T11MixedNemesis
  [T13]=T13LostAnswersAndRetries)
filter=""         # process_fault_test
server_filter=""  # server_fault_test: the tests that crash a shared server
for t in ${tests//,/ }; do
  [ "$t" = T12 ] && continue
  for s in ${stores//,/ }; do
    if [ "$t" = T8 ] || [ "$t" = T10 ]; then
      server_filter+="${server_filter:+:}Stores/ProcessFaultTest.${names[$t]}/$s"
    else
      filter+="${filter:+:}Stores/ProcessFaultTest.${names[$t]}/$s"
    fi
  done
done
failed=0
if [ -n "$filter" ]; then
  say "Fault tests: $tests on $stores"
  build/dev/tests/fault/process_fault_test --gtest_filter="$filter" || failed=1
fi
if [ -n "$server_filter" ]; then
  say "Server crashes: $tests on $stores"
  build/dev/tests/fault/server_fault_test --gtest_filter="$server_filter" || failed=1
fi
if [[ ",$tests," == *,T12,* ]]; then
  say "Deterministic simulation (T12): ${AEC_SIM_SEEDS:-the CI figure of} seeds"
  if build/release/tests/fault/sim_test --gtest_filter='Simulation.RegressionSeedsStayFixed:Simulation.NoSeedBreaksAnInvariant'; then
    echo "fault: store=memory test=T12 seeds=${AEC_SIM_SEEDS:-20000} violations=0" >>"$summary"
  else
    echo "fault: store=memory test=T12 seeds=${AEC_SIM_SEEDS:-20000} violations=1" >>"$summary"
    failed=1
  fi
fi

[ -s "$summary" ] || die "no test wrote a summary line (see the output above)"
cp "$summary" "$out"
say "Summary ($(date -u +%Y-%m-%d), nproc $(nproc), kept in $out)"
# One row per line; the key=value pairs of each line land in their columns.
awk '
  BEGIN {
    n = split("store test cycles violations takeover_p50_ms takeover_p99_ms takeover_max_ms stale_rejected unfenced_overlap_ms_per_cycle", col, " ")
    printf "|"; for (i = 1; i <= n; i++) printf " %s |", col[i]; printf "\n|"
    for (i = 1; i <= n; i++) printf "---|"; printf "\n"
  }
  {
    delete v
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    if (!("cycles" in v)) v["cycles"] = ("calls" in v) ? v["calls"] " calls" : ("seconds" in v) ? v["seconds"] " s" : ("seeds" in v) ? v["seeds"] " seeds" : ""
    printf "|"; for (i = 1; i <= n; i++) printf " %s |", ((col[i] in v) ? v[col[i]] : "-"); printf "\n"
  }' "$out"
exit "$failed"
