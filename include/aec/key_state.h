// A key's state as a store reports it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <aec/clock.h>
#include <aec/execution.h>

namespace aec {

// One live lease of a key, seen from outside.
struct Holder {
  Execution execution;  // status Running
  // How long the lease has left by the store's clock when it was read.
  milliseconds expires_in{0};
};

struct KeyState {
  std::string key;
  std::vector<Holder> holders;          // live leases, oldest first
  std::optional<Execution> last_ended;  // the most recent execution that is not Running
  std::int64_t last_token = 0;          // the highest token ever issued for the key; 0 if none
  // Execution ids holding live places in the key's FIFO line (AcquireRequest::queue), first in
  // line first.
  std::vector<std::string> queue;
  // Changes whenever the key's holders or history change (renewals do not change it). Pass it to
  // Store::wait to block until the next change. 0 for a key the store has never seen.
  std::int64_t version = 0;
};

}  // namespace aec
