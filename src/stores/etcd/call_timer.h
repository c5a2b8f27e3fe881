// CallTimer: ends gRPC calls at their deadline on aec's own monotonic clock.
//
// gRPC 1.51 (Debian) runs its deadline timers on threads that sleep through Abseil's CondVar
// until an absolute wall-clock time, so a wall-clock step moves every deadline then pending:
// a step forward can leave a call waiting long after its deadline. A call armed here is also
// cancelled (ClientContext::TryCancel) when its deadline passes on std::chrono::steady_clock
// (CLOCK_MONOTONIC, which no wall-clock step moves); whichever comes first ends it.
//
// Thread-safe. One thread, started with the timer, waits for the earliest deadline.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <stop_token>
#include <thread>
#include <utility>

namespace grpc {
class ClientContext;
}

namespace aec::etcd {

class CallTimer {
 public:
  using Clock = std::chrono::steady_clock;

  CallTimer();
  ~CallTimer();
  CallTimer(const CallTimer&) = delete;
  CallTimer& operator=(const CallTimer&) = delete;

  // Keeps `context` armed while it lives; destroy it before the context.
  class Armed {
   public:
    ~Armed();
    Armed(const Armed&) = delete;
    Armed& operator=(const Armed&) = delete;
    // Whether the timer cancelled the call: its deadline passed on the monotonic clock.
    bool fired() const;

   private:
    friend class CallTimer;
    Armed(CallTimer* timer, std::uint64_t id) : timer_(timer), id_(id) {}
    CallTimer* timer_;
    std::uint64_t id_;
  };

  // Cancels the call of `context` at `deadline` unless the answer has come (the returned Armed
  // is gone) by then.
  [[nodiscard]] Armed arm(grpc::ClientContext* context, Clock::time_point deadline);

 private:
  struct Entry {
    Clock::time_point deadline;
    grpc::ClientContext* context;  // null once cancelled
  };

  void loop(std::stop_token stop);

  mutable std::mutex mu_;
  std::condition_variable_any changed_;
  std::uint64_t next_id_ = 0;
  std::map<std::uint64_t, Entry> armed_;                       // by id
  std::set<std::pair<Clock::time_point, std::uint64_t>> due_;  // pending ones, by deadline
  // When the thread looks next (max: only when woken). A call due no sooner wakes nobody, so a
  // client making one call at a time does not wake the thread for each.
  Clock::time_point looks_at_ = Clock::time_point::max();
  std::jthread thread_;  // last: started once the rest exists
};

}  // namespace aec::etcd
