// The figures of one run, computed from its clients' reports.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "client.h"
#include "histogram.h"

namespace aec::bench {

// Jain's fairness index of `x`: (Σx)² / (n·Σx²). 1 when all are equal, 1/n when one client got
// everything. 1 for an empty or all-zero input (nobody was treated worse than anybody else).
double jain_index(const std::vector<std::int64_t>& x);

struct RunStats {
  std::string contender;
  std::string workload;
  int clients = 0;
  int repetition = 0;
  double seconds = 0;      // the longest client's elapsed time
  std::int64_t pairs = 0;  // acquire+release pairs completed, all clients
  double ops_per_sec = 0;  // pairs / seconds
  std::int64_t p50_ns = 0, p99_ns = 0, p999_ns = 0, max_ns = 0;  // acquire latency
  double jain = 1;                                               // of the successes per client
  // Longest wait over median wait; the longest counts waits abandoned at the end too.
  double max_over_median = 0;
  // Waiting clients: from one holder beginning to release to the next holder having its grant,
  // across processes (the handover), and holds that began before the previous one ended (a
  // second holder: must stay 0).
  std::int64_t handovers = 0;
  std::int64_t handover_p50_ns = 0, handover_p99_ns = 0, handover_max_ns = 0;
  std::int64_t overlaps = 0;
  std::int64_t busy = 0, errors = 0, abandoned = 0;
  std::int64_t refused = 0;      // attempts the service answered "held", all clients
  double refused_per_sec = 0;    // refused / seconds
  double cpu_busy_percent = -1;  // the machine's CPUs busy during the run (-1: not measured)
  // The machine's busy CPU time and its context switches during the run, per completed pair:
  // what a pair costs all of its parts together, clients and servers (-1: not measured).
  double cpu_us_per_pair = -1;
  double switches_per_pair = -1;
  // A scale run: live leases preloaded before it, how long that took, and the server's resident
  // memory before and after the preload in bytes (-1: no server, or not measured).
  std::int64_t preloaded = 0;
  double preload_seconds = 0;
  std::int64_t rss_before_preload = -1, rss_after_preload = -1;
  std::string first_error;
  std::string failure;  // the run itself failed (a client could not start or crashed)
};

RunStats summarize(const std::vector<ClientReport>& clients);

}  // namespace aec::bench
