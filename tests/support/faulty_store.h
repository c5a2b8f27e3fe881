// FaultyStore: wraps a real store, counts calls, and fails the operations a test names.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include <aec/store.h>

namespace aec::testing {

class FaultyStore final : public Store {
 public:
  explicit FaultyStore(std::shared_ptr<Store> inner) : inner_(std::move(inner)) {}

  std::atomic<bool> fail_renew{false};  // renew answers Unavailable
  std::atomic<int> renew_calls{0};

  Result<AcquireResult> acquire(const AcquireRequest& req) override { return inner_->acquire(req); }
  Result<LeaseOutcome> renew(std::string_view key, std::int64_t token, milliseconds ttl) override {
    ++renew_calls;
    if (fail_renew) {
      return unavailable("injected: store unreachable");
    }
    return inner_->renew(key, token, ttl);
  }
  Result<LeaseOutcome> release(std::string_view key, std::int64_t token,
                               const Outcome& outcome) override {
    return inner_->release(key, token, outcome);
  }
  Result<KeyState> get(std::string_view key) override { return inner_->get(key); }
  Result<std::vector<Execution>> list(const ListFilter& filter) override {
    return inner_->list(filter);
  }
  Result<std::int64_t> wait(std::string_view key, std::int64_t version, MonoTime deadline,
                            std::stop_token stop) override {
    return inner_->wait(key, version, deadline, stop);
  }
  Result<ForceReleaseResult> force_release(std::string_view key, std::string_view reason,
                                           const Owner& by) override {
    return inner_->force_release(key, reason, by);
  }
  Result<PurgeResult> purge(const PurgeRequest& req) override { return inner_->purge(req); }
  Status leave_queue(std::string_view key, std::string_view execution_id) override {
    return inner_->leave_queue(key, execution_id);
  }
  std::string url() const override { return "faulty+" + inner_->url(); }

 private:
  std::shared_ptr<Store> inner_;
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
