// Time as aec reads it: an injectable Clock, so tests move time instead of sleeping.
#pragma once

#include <chrono>
#include <memory>
#include <stop_token>

namespace aec {

// The host's boot-time clock (Linux CLOCK_BOOTTIME): monotonic, shared by every process on the
// host, counts time spent suspended, and starts again at zero after a reboot. Lease expiry on one
// host and the runner's own "my lease may have expired" deadline are measured on it, so a
// wall-clock step changes neither.
struct BootClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<BootClock>;
  static constexpr bool is_steady = true;
  static time_point now() noexcept;
};

using MonoTime = BootClock::time_point;

// Timed waits in the kernel and the C++ library run on CLOCK_MONOTONIC, which stands still while
// the host is suspended. A wait for a BootClock deadline therefore waits at most this long at a
// time and reads the clock again, so a deadline that passed during a suspend is seen soon after
// the resume (the real clock's sleep_until, the runner's wait for its command).
inline constexpr std::chrono::milliseconds kSuspendCheck{1000};
using SysTime = std::chrono::system_clock::time_point;
using std::chrono::milliseconds;

// Every read of time and every timed sleep in aec goes through a Clock.
// Implementations must be thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time: BootClock for the real clock.
  virtual MonoTime monotonic_now() = 0;
  // Wall-clock time, used only for human-readable history (started/ended at), never for expiry.
  virtual SysTime system_now() = 0;
  // Blocks until monotonic_now() >= deadline or `stop` is requested. Returns false when it
  // returned because of `stop`, true when the deadline passed.
  virtual bool sleep_until(MonoTime deadline, std::stop_token stop) = 0;
};

// The real clock (BootClock + system_clock). Stateless; safe to share.
std::shared_ptr<Clock> real_clock();

}  // namespace aec
