// Runs one configuration: forks the client processes, starts them together, collects their
// reports.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <aec/status.h>

#include "client.h"
#include "contender.h"

namespace aec::bench {

enum class Workload {
  Distinct,  // client i takes bench/k<i>: measures per-operation cost and write concurrency
  Hot,       // every client takes bench/hot and waits for it: measures waiting and fairness
};

std::string_view workload_name(Workload workload);

struct RunConfig {
  Workload workload = Workload::Distinct;
  int clients = 1;
  BenchClock::duration duration = std::chrono::seconds(5);
  std::string dir;  // an empty directory for this run's files, removed by the caller
  // Live leases taken before the clients start (keys bench/pre<i>, held for an hour; the scale
  // runs), by 16 processes in parallel.
  std::int64_t preload = 0;
};

struct RunResult {
  std::vector<ClientReport> clients;  // one per client, in client order
  std::string failure;                // non-empty when a client could not start or crashed
  // The share of the machine's CPU time that was busy (not idle, not waiting for I/O) from the
  // start signal until the last client exited, in percent; -1 when /proc/stat cannot be read.
  double cpu_busy_percent = -1;
  // Over the same span, the machine's busy CPU time in seconds and its context switches (every
  // process's, the servers' too); -1 when /proc/stat cannot be read.
  double cpu_seconds = -1;
  std::int64_t context_switches = -1;
  // The preload: how long it took, and the server's resident memory before and after it (when
  // the contender runs a server).
  double preload_seconds = 0;
  std::optional<std::int64_t> rss_before_preload, rss_after_preload;
};

// Forks config.clients processes that each open a session on `contender` and run the loop, and
// waits for them. Clients that outlive duration + grace + 30 s are killed and reported failed.
Result<RunResult> run_clients(Contender& contender, const RunConfig& config);

}  // namespace aec::bench
