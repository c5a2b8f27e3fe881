// Deadlines of std::chrono clocks as gRPC's monotonic gpr_timespec; and the pause between two
// attempts. (gRPC 1.51's own timers still wait through Abseil's CondVar, on an absolute
// wall-clock time, so a wall-clock step moves a gRPC deadline in progress: unary calls are
// also ended by aec's CallTimer, call_timer.h.)
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

#include <grpc/support/time.h>

namespace aec::etcd {

// `deadline` of any steady clock (std::chrono::steady_clock, aec::BootClock) as the same
// remaining time on gRPC's monotonic clock; a past deadline is "now".
template <typename Clock, typename Duration>
gpr_timespec to_gpr(std::chrono::time_point<Clock, Duration> deadline) {
  auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - Clock::now());
  left = std::max(left, std::chrono::nanoseconds(0));
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_nanos(left.count(), GPR_TIMESPAN));
}

// Waits until `until` or `stop`: a pause between two attempts (real time, a backoff), not a
// wait for a condition. False when stopped.
template <typename Clock, typename Duration>
bool pause_until(std::chrono::time_point<Clock, Duration> until, const std::stop_token& stop) {
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  cv.wait_for(lock, stop, until - Clock::now(), [] { return false; });
  return !stop.stop_requested();
}

}  // namespace aec::etcd
