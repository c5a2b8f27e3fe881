#include "core/heartbeat.h"

#include <algorithm>

namespace aec {

Heartbeat::Heartbeat(Control& control, Clock& clock, Lease lease, milliseconds grace,
                     LostCallback on_lost, Start start)
    : control_(control),
      clock_(clock),
      grace_(grace),
      on_lost_(std::move(on_lost)),
      start_by_(
          std::min(first_renewal(lease), kill_deadline(lease.valid_until, lease.ttl) - grace)),
      lease_(std::move(lease)) {
  if (start == Start::Now) {
    this->start();
  }
}

Heartbeat::~Heartbeat() {
  stop();
}

void Heartbeat::start() {
  if (renewer_.joinable() || stop_.stop_requested()) {
    return;
  }
  // The renewer may report the loss before the watchdog exists: declare_lost() touches neither
  // thread object, only stop_, which the watchdog then finds requested.
  renewer_ = std::thread([this] { renew_loop(stop_.get_token()); });
  watchdog_ = std::thread([this] { watch_loop(stop_.get_token()); });
}

void Heartbeat::stop() {
  stop_.request_stop();
  if (renewer_.joinable()) {
    renewer_.join();
  }
  if (watchdog_.joinable()) {
    watchdog_.join();
  }
}

Lease Heartbeat::lease() {
  std::lock_guard lock(mu_);
  return lease_;
}

bool Heartbeat::lost() {
  std::lock_guard lock(mu_);
  return lost_;
}

MonoTime Heartbeat::kill_deadline(MonoTime valid_until, milliseconds ttl) {
  return valid_until - std::max<milliseconds>(ttl / 20, milliseconds(20));
}

MonoTime Heartbeat::first_renewal(const Lease& lease) {
  return lease.valid_until - lease.ttl + lease.ttl / 3;
}

void Heartbeat::declare_lost(MonoTime kill_at) {
  {
    std::lock_guard lock(mu_);
    if (lost_) {
      return;
    }
    lost_ = true;
  }
  stop_.request_stop();
  on_lost_(kill_at);
}

void Heartbeat::renew_loop(std::stop_token stop) {
  Lease lease = this->lease();
  const milliseconds retry = std::max<milliseconds>(lease.ttl / 15, milliseconds(20));
  MonoTime next = first_renewal(lease);
  while (clock_.sleep_until(next, stop)) {
    Result<LeaseOutcome> r = control_.renew(lease);
    if (r && *r == LeaseOutcome::Lost) {
      // The store says the lease is gone: another holder may exist already, stop at once.
      declare_lost(clock_.monotonic_now());
      return;
    }
    if (!r) {
      next = clock_.monotonic_now() + retry;  // unreachable or locked: the watchdog keeps time
      continue;
    }
    std::lock_guard lock(mu_);
    lease_ = lease;
    if (watchdog_wake_ != nullptr) {
      watchdog_wake_->request_stop();
    }
    next = first_renewal(lease);
  }
}

void Heartbeat::watch_loop(std::stop_token stop) {
  for (;;) {
    // A fresh wake-up source per lease version: the renewer requests it when the lease moves,
    // and the thread's own stop token is forwarded into it.
    std::stop_source wake;
    std::stop_callback forward(stop, [&] { wake.request_stop(); });
    MonoTime kill_at;
    {
      std::lock_guard lock(mu_);
      kill_at = kill_deadline(lease_.valid_until, lease_.ttl);
      watchdog_wake_ = &wake;
    }
    bool expired = clock_.sleep_until(kill_at - grace_, wake.get_token());
    {
      std::lock_guard lock(mu_);
      watchdog_wake_ = nullptr;
    }
    if (stop.stop_requested()) {
      return;
    }
    if (expired) {
      std::unique_lock lock(mu_);
      if (kill_deadline(lease_.valid_until, lease_.ttl) != kill_at) {
        continue;  // a renewal landed just as the deadline passed
      }
      lock.unlock();
      // No renewal succeeded in time, or this process was paused past the point of no return
      // (SIGSTOP, a suspended VM): the store may expire the lease soon or already has.
      declare_lost(kill_at);
      return;
    }
  }
}

}  // namespace aec
