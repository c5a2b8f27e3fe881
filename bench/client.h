// One benchmark client: the acquire+release loop run in a forked process, and the report it
// hands back to the parent through a file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <aec/status.h>

#include "contender.h"
#include "histogram.h"

namespace aec::bench {

struct ClientPlan {
  std::string key;                  // the key this client takes
  bool wait = false;                // the hot key: wait for it instead of giving up
  BenchClock::duration duration{};  // start no new pair after this long
  // A wait still pending this long after the end is abandoned (counted, not recorded).
  BenchClock::duration grace{};
};

// One hold of the key, on the host's monotonic clock (shared by all client processes): from the
// moment the grant reached the client to the moment it began to release.
struct Hold {
  std::int64_t granted_ns = 0;
  std::int64_t released_ns = 0;
};

struct ClientReport {
  std::int64_t successes = 0;             // acquire+release pairs completed
  std::int64_t busy = 0;                  // acquires answered Busy (distinct keys: should stay 0)
  std::int64_t errors = 0;                // acquires or releases that failed
  std::int64_t abandoned = 0;             // waits given up after the grace period
  std::int64_t refused = 0;               // attempts the service answered "held"
  std::int64_t elapsed_ns = 0;            // from the start signal to the end of the last operation
  std::int64_t longest_abandoned_ns = 0;  // the longest wait that never got the key
  Histogram acquire_ns;                   // time from the first attempt to the grant, per success
  std::string first_error;                // the first error seen, for the report
  std::vector<Hold> holds;                // waiting clients only: every hold, in order
};

// Runs the loop until plan.duration has passed. Never fails: errors are counted.
ClientReport run_client(Session& session, const ClientPlan& plan);

// Writes `report` to `path` / reads it back. The format is private to one aec-bench binary.
Status write_report(const std::string& path, const ClientReport& report);
Result<ClientReport> read_report(const std::string& path);

}  // namespace aec::bench
