// aec::Control: the policies (skip, wait or fail when busy; once; heartbeats) on top of a Store.
//
//   auto store = aec::open_store("sqlite:///var/lib/aec/aec.db");
//   aec::Control control(std::move(*store));
//   auto run = control.run({.key = "etl/daily", .ttl = 30s},
//                          [](const aec::Lease& lease, std::stop_token lost) { return work(); });
//   if (run && run->outcome == aec::RunOutcome::Skipped) { ... }
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

#include <aec/clock.h>
#include <aec/host_info.h>
#include <aec/lease.h>
#include <aec/status.h>
#include <aec/store.h>

namespace aec {

// What to do when the key is busy.
enum class OnBusy {
  Skip,  // give up at once; the run is recorded Skipped
  Wait,  // wait for a free slot (up to RunOptions::wait_timeout)
  Fail,  // give up at once like Skip; the CLI exits with a distinct code
};

struct RunOptions {
  std::string key;           // required; must pass validate_key()
  std::string execution_id;  // empty: new_execution_id()
  milliseconds ttl{30'000};  // lease duration; renewed every ttl/3 by run()
  int limit = 1;             // concurrent holders allowed on the key
  bool once = false;         // grant nothing once the key has a Succeeded execution
  OnBusy on_busy = OnBusy::Skip;
  // With OnBusy::Wait: give up after this long (then the outcome is Busy). nullopt: forever.
  std::optional<milliseconds> wait_timeout;
  Labels labels;
  // With OnBusy::Wait: called once, on this thread, when the first answer is Busy and the caller
  // takes its place in line (for a progress message). May be empty.
  std::function<void(const AcquireResult& busy)> on_waiting;
};

struct ControlOptions {
  std::shared_ptr<Clock> clock = real_clock();
  std::shared_ptr<HostInfo> host = real_host_info();
};

enum class RunOutcome {
  Ran,      // the work ran to its end under the lease
  Skipped,  // the key was busy (after waiting, with OnBusy::Wait)
  Done,     // once: the key was already done
  Lost,     // the lease was lost while the work ran; the work was asked to stop
};

struct RunResult {
  RunOutcome outcome = RunOutcome::Skipped;
  int exit_code = 0;      // what the work returned (Ran, Lost)
  Lease lease;            // Ran, Lost: the lease it held
  AcquireResult acquire;  // the final acquire answer (holders when Skipped)
};

// Thread-safe: a Control may be used by many threads at once.
class Control {
 public:
  explicit Control(std::shared_ptr<Store> store, ControlOptions options = {});

  // Acquires per the options' policy. Granted sets lease.valid_until on this process's clock.
  // Busy and Done are outcomes, not errors; with OnBusy::Wait, Busy means the wait timed out.
  // A Skipped execution is recorded for Busy and Done. Errors: as Store::acquire, Cancelled.
  Result<AcquireResult> acquire(const RunOptions& options, std::stop_token stop = {});

  // Renews `lease` for lease.ttl; on Ok advances lease.valid_until.
  Result<LeaseOutcome> renew(Lease& lease);

  // Releases `lease` recording `outcome`.
  Result<LeaseOutcome> release(const Lease& lease, const Outcome& outcome);

  // Acquires, then calls work(lease, lost) on this thread while a background thread renews the
  // lease every ttl/3. If renewals fail until the lease may have expired, `lost` is requested;
  // the work should return promptly. Records Succeeded (work returned 0), Failed (non-zero) or
  // Lost. The exception-free contract extends to `work`: it must not throw.
  Result<RunResult> run(const RunOptions& options,
                        const std::function<int(const Lease&, std::stop_token)>& work);

  // Blocks until the key has fewer than `limit` live leases, the deadline passes
  // (DeadlineExceeded) or `stop` is requested (Cancelled). Returns the state then read.
  Result<KeyState> wait_free(std::string_view key, int limit, std::optional<MonoTime> deadline,
                             std::stop_token stop = {});

  Store& store() { return *store_; }
  Clock& clock() { return *options_.clock; }

 private:
  // Blocks until it is worth asking again for a key that was busy; gives up the queue place
  // and answers Cancelled (or the store's error) when it must stop waiting.
  Status await_turn(const AcquireRequest& req, const AcquireResult& busy, MonoTime sent,
                    std::optional<MonoTime> deadline, std::stop_token stop);

  std::shared_ptr<Store> store_;
  ControlOptions options_;
};

}  // namespace aec
