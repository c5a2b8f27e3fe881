#include "stores/etcd/call_timer.h"

#include <utility>

#include <grpcpp/client_context.h>

namespace aec::etcd {

CallTimer::CallTimer() : thread_([this](std::stop_token stop) { loop(std::move(stop)); }) {}

// thread_'s destructor requests the stop, which wakes loop()'s wait, and joins it.
CallTimer::~CallTimer() = default;

CallTimer::Armed CallTimer::arm(grpc::ClientContext* context, Clock::time_point deadline) {
  std::uint64_t id = 0;
  bool earliest = false;
  {
    std::lock_guard lock(mu_);
    id = ++next_id_;
    armed_.emplace(id, Entry{deadline, context});
    earliest = due_.empty() || deadline < due_.begin()->first;
    due_.emplace(deadline, id);
  }
  if (earliest) {
    changed_.notify_one();
  }
  return Armed(this, id);
}

CallTimer::Armed::~Armed() {
  std::lock_guard lock(timer_->mu_);
  auto it = timer_->armed_.find(id_);
  if (it == timer_->armed_.end()) {
    return;
  }
  if (it->second.context != nullptr) {  // still pending: drop it from the schedule
    auto [first, last] = timer_->due_.equal_range(it->second.deadline);
    for (auto d = first; d != last; ++d) {
      if (d->second == id_) {
        timer_->due_.erase(d);
        break;
      }
    }
  }
  timer_->armed_.erase(it);
}

bool CallTimer::Armed::fired() const {
  std::lock_guard lock(timer_->mu_);
  auto it = timer_->armed_.find(id_);
  return it != timer_->armed_.end() && it->second.context == nullptr;
}

void CallTimer::loop(std::stop_token stop) {
  std::unique_lock lock(mu_);
  while (!stop.stop_requested()) {
    if (due_.empty()) {
      changed_.wait(lock, stop, [&] { return !due_.empty(); });
      continue;
    }
    Clock::time_point next = due_.begin()->first;
    if (Clock::now() < next) {
      // steady_clock: libstdc++ waits with pthread_cond_clockwait on CLOCK_MONOTONIC.
      changed_.wait_until(lock, stop, next,
                          [&] { return due_.empty() || due_.begin()->first < next; });
      continue;
    }
    // Due. Cancelled under the lock: the Armed of this call, and so its context, still exists.
    std::uint64_t id = due_.begin()->second;
    due_.erase(due_.begin());
    Entry& entry = armed_.at(id);
    entry.context->TryCancel();
    entry.context = nullptr;
  }
}

}  // namespace aec::etcd
