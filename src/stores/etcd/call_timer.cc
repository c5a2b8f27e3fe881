#include "stores/etcd/call_timer.h"

#include <utility>

#include <grpcpp/client_context.h>

namespace aec::etcd {

CallTimer::CallTimer() : thread_([this](std::stop_token stop) { loop(std::move(stop)); }) {}

// thread_'s destructor requests the stop, which wakes loop()'s wait, and joins it.
CallTimer::~CallTimer() = default;

CallTimer::Armed CallTimer::arm(grpc::ClientContext* context, Clock::time_point deadline) {
  std::uint64_t id = 0;
  bool sooner = false;
  {
    std::lock_guard lock(mu_);
    id = ++next_id_;
    armed_.emplace(id, Entry{deadline, context});
    due_.emplace(deadline, id);
    sooner = deadline < looks_at_;
  }
  if (sooner) {
    changed_.notify_one();
  }
  return Armed(this, id);
}

CallTimer::Armed::~Armed() {
  std::lock_guard lock(timer_->mu_);
  auto it = timer_->armed_.find(id_);
  timer_->due_.erase({it->second.deadline, id_});  // nothing when it has fired
  timer_->armed_.erase(it);
}

bool CallTimer::Armed::fired() const {
  std::lock_guard lock(timer_->mu_);
  return timer_->armed_.at(id_).context == nullptr;
}

void CallTimer::loop(std::stop_token stop) {
  std::unique_lock lock(mu_);
  while (!stop.stop_requested()) {
    if (!due_.empty() && due_.begin()->first <= Clock::now()) {
      // Cancelled under the lock: the Armed of this call, and so its context, still exists.
      Entry& entry = armed_.at(due_.begin()->second);
      due_.erase(due_.begin());
      entry.context->TryCancel();
      entry.context = nullptr;
      continue;
    }
    looks_at_ = due_.empty() ? Clock::time_point::max() : due_.begin()->first;
    auto sooner = [&] { return !due_.empty() && due_.begin()->first < looks_at_; };
    if (due_.empty()) {
      changed_.wait(lock, stop, sooner);
    } else {
      // steady_clock: libstdc++ waits with pthread_cond_clockwait on CLOCK_MONOTONIC.
      changed_.wait_until(lock, stop, looks_at_, sooner);
    }
  }
}

}  // namespace aec::etcd
