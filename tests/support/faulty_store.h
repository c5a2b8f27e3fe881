// FaultyStore: wraps a real store, counts calls, and fails the operations a test names.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include <aec/store.h>

#include "tests/support/forwarding_store.h"

namespace aec::testing {

class FaultyStore final : public ForwardingStore {
 public:
  explicit FaultyStore(std::shared_ptr<Store> inner) : ForwardingStore(std::move(inner)) {}

  std::atomic<bool> fail_renew{false};  // renew answers Unavailable
  std::atomic<int> renew_calls{0};

  Result<LeaseOutcome> renew(std::string_view key, std::int64_t token, milliseconds ttl) override {
    ++renew_calls;
    if (fail_renew) {
      return unavailable("injected: store unreachable");
    }
    return inner().renew(key, token, ttl);
  }
  std::string url() const override { return "faulty+" + ForwardingStore::url(); }
};

// Polls `pred` every millisecond for up to five seconds of real time; true once it holds.
// For waiting on another thread's reaction to a ManualClock step.
template <typename Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 5000; ++i) {
    if (pred()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

}  // namespace aec::testing
