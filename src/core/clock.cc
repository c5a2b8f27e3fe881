#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <time.h>

#include <aec/clock.h>

namespace aec {

BootClock::time_point BootClock::now() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

namespace {

class RealClock final : public Clock {
 public:
  MonoTime monotonic_now() override { return BootClock::now(); }
  SysTime system_now() override { return std::chrono::system_clock::now(); }

  bool sleep_until(MonoTime deadline, std::stop_token stop) override {
    // condition_variable_any waits on steady_clock, which stands still while the machine is
    // suspended; the boot clock does not. So wait at most kSuspendCheck at a time and look at the
    // boot clock again: after a resume, a deadline that passed meanwhile is seen within that.
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    while (!stop.stop_requested()) {
      auto left = deadline - BootClock::now();
      if (left <= std::chrono::nanoseconds::zero()) {
        return true;
      }
      cv.wait_for(lock, stop, std::min<std::chrono::nanoseconds>(left, kSuspendCheck),
                  [] { return false; });
    }
    return false;
  }
};

}  // namespace

std::shared_ptr<Clock> real_clock() {
  static const std::shared_ptr<Clock> clock = std::make_shared<RealClock>();
  return clock;
}

}  // namespace aec
