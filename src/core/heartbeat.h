// Heartbeat: keeps a lease alive from a background thread, and says when it must be given up.
#pragma once

#include <functional>
#include <mutex>
#include <stop_token>
#include <thread>

#include <aec/clock.h>
#include <aec/control.h>
#include <aec/lease.h>

namespace aec {

// Renews the lease every ttl/3 (measured from when the last successful renewal was sent). A
// failed renewal is retried every ttl/15 (at least 20 ms). When the store answers Lost, or when
// no renewal has succeeded by `grace` before kill_at, calls on_lost(kill_at) once, with
// kill_at = valid_until - safety margin: the moment by which the work must be dead for no two
// holders to ever overlap. A watchdog thread apart from the renewing thread enforces the
// deadline, so a renewal stuck in the store (a lock, a dead connection) cannot delay it.
//
// The safety margin is max(ttl/20, 20 ms): slack for the store's clock running slightly ahead.
class Heartbeat {
 public:
  using LostCallback = std::function<void(MonoTime kill_at)>;

  // Now: the threads start with the Heartbeat. Deferred: they start at start(), which the owner
  // promises to call by start_by(): until then both would only sleep, and a short piece of work
  // (`aec run -- true`) ends before they are needed, sparing their creation (~0.14 ms of the
  // run; bench/RESULTS.md).
  enum class Start { Now, Deferred };

  // `control` and `clock` must outlive the Heartbeat. `grace` is how long before kill_at the
  // loss must be reported (the time the work needs to stop gracefully).
  Heartbeat(Control& control, Clock& clock, Lease lease, milliseconds grace, LostCallback on_lost,
            Start start = Start::Now);
  // Stops the threads (without releasing the lease).
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  // When a Deferred heartbeat's threads must be running: its first renewal, or the watchdog's
  // first deadline if that comes earlier (a large grace).
  MonoTime start_by() const { return start_by_; }
  // Starts the threads of a Deferred heartbeat; a no-op once started or stopped. Called by the
  // owner's thread, not concurrently with stop().
  void start();
  // Stops renewing; returns once the threads have ended. Idempotent.
  void stop();
  // The lease as last renewed.
  Lease lease();
  // True once on_lost was called.
  bool lost();
  // The moment by which the work must be dead, for a lease of `ttl` valid until `valid_until`.
  static MonoTime kill_deadline(MonoTime valid_until, milliseconds ttl);

 private:
  void renew_loop(std::stop_token stop);
  void watch_loop(std::stop_token stop);
  static MonoTime first_renewal(const Lease& lease);
  void declare_lost(MonoTime kill_at);

  Control& control_;
  Clock& clock_;
  milliseconds grace_;
  LostCallback on_lost_;
  MonoTime start_by_;
  std::stop_source stop_;  // ends both threads: stop(), or the loss reported
  std::mutex mu_;
  Lease lease_;                                // guarded by mu_
  bool lost_ = false;                          // guarded by mu_
  std::stop_source* watchdog_wake_ = nullptr;  // guarded by mu_: requested when lease_ moves
  std::thread renewer_;
  std::thread watchdog_;
};

}  // namespace aec
