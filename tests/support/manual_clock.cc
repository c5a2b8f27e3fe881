#include "tests/support/manual_clock.h"

namespace aec::testing {

ManualClock::ManualClock()
    : mono_(MonoTime(std::chrono::hours(1))), wall_(SysTime(std::chrono::seconds(1'800'000'000))) {}

MonoTime ManualClock::monotonic_now() {
  std::lock_guard lock(mu_);
  return mono_;
}

SysTime ManualClock::system_now() {
  std::lock_guard lock(mu_);
  return wall_;
}

bool ManualClock::sleep_until(MonoTime deadline, std::stop_token stop) {
  std::unique_lock lock(mu_);
  auto me = deadlines_.insert(deadline);
  cv_.notify_all();
  bool reached = cv_.wait(lock, stop, [&] { return mono_ >= deadline; });
  deadlines_.erase(me);
  cv_.notify_all();
  return reached;
}

void ManualClock::advance(std::chrono::nanoseconds d) {
  {
    std::lock_guard lock(mu_);
    mono_ += d;
    wall_ += std::chrono::duration_cast<SysTime::duration>(d);
  }
  cv_.notify_all();
}

void ManualClock::step_wall(std::chrono::nanoseconds d) {
  std::lock_guard lock(mu_);
  wall_ += std::chrono::duration_cast<SysTime::duration>(d);
}

int ManualClock::sleepers() {
  std::lock_guard lock(mu_);
  return static_cast<int>(deadlines_.size());
}

void ManualClock::await_sleepers(int n) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return static_cast<int>(deadlines_.size()) >= n; });
}

bool ManualClock::settled(int n) {
  std::lock_guard lock(mu_);
  return static_cast<int>(deadlines_.size()) == n &&
         (deadlines_.empty() || *deadlines_.begin() > mono_);
}

}  // namespace aec::testing
