// ManualClock: a Clock that moves only when a test says so. advance() wakes sleepers.
#pragma once

#include <condition_variable>
#include <mutex>
#include <set>

#include <aec/clock.h>

namespace aec::testing {

class ManualClock final : public Clock {
 public:
  // Starts at an arbitrary non-zero monotonic time and a fixed wall time.
  ManualClock();

  MonoTime monotonic_now() override;
  SysTime system_now() override;
  bool sleep_until(MonoTime deadline, std::stop_token stop) override;

  // Moves both clocks forward and wakes every sleeper whose deadline has passed.
  void advance(std::chrono::nanoseconds d);
  // Steps the wall clock alone (a wall-clock jump); monotonic time is unchanged.
  void step_wall(std::chrono::nanoseconds d);
  // How many threads are inside sleep_until now: lets a test wait for a sleeper to park.
  int sleepers();
  // Blocks (for real) until at least n threads sleep in sleep_until.
  void await_sleepers(int n);
  // True when exactly n threads sleep in sleep_until, each with a deadline still in the future:
  // after advance(), every thread the step woke has run and parked again.
  bool settled(int n);

 private:
  std::mutex mu_;
  std::condition_variable_any cv_;
  MonoTime mono_;
  SysTime wall_;
  std::multiset<MonoTime> deadlines_;  // of the threads sleeping now
};

}  // namespace aec::testing
