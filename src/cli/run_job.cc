#include "cli/run_job.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include "cli/exit_codes.h"
#include "core/duration.h"
#include "core/heartbeat.h"
#include "core/json_codec.h"
#include "runner/supervisor.h"
#include "runner/termination_message.h"

namespace aec::cli {
namespace {

using runner::ChildExit;
using runner::Supervisor;

// What the termination message says.
struct Report {
  std::string status;  // an execution status word, or "unprotected"
  std::string execution_id;
  std::int64_t token = 0;
  std::optional<Execution> holder;
  std::string reason;
  SysTime started_at = std::chrono::system_clock::now();
  std::optional<int> exit_code;
};

void write_report(const Context& ctx, const RunPlan& plan, const Report& r) {
  if (plan.termination_message.empty()) {
    return;
  }
  nlohmann::json j = {
      {"status", r.status},
      {"key", plan.options.key},
      {"execution_id", r.execution_id},
      {"token", r.token},
      {"holder", r.holder ? to_json(*r.holder) : nlohmann::json(nullptr)},
      {"reason", r.reason},
      {"started_at", format_time(r.started_at)},
      {"ended_at", format_time(std::chrono::system_clock::now())},
      {"exit_code", r.exit_code ? nlohmann::json(*r.exit_code) : nlohmann::json(nullptr)},
      {"vdk_status", runner::vdk_status(r.status, r.exit_code)},
  };
  // Replace, not throw: the command's name in a reason need not be UTF-8.
  Status s = runner::write_termination_message(
      plan.termination_message, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (!s.is_ok()) {
    fmt::print(stderr, "aec {}: warning: {}\n", ctx.verb, s.message());
  }
}

int spawn_error_code(const Status& s) {
  if (s.code() == Code::NotFound) {
    return kExitCommandNotFound;
  }
  return s.code() == Code::PermissionDenied ? kExitCannotExecute : exit_code_for(s.code());
}

// Runs the command with no lease at all (the check is bypassed, or the store is down and the
// user chose --on-store-error proceed).
int run_unprotected(const Context& ctx, const RunPlan& plan, const std::vector<std::string>& cmd,
                    Report report) {
  auto child = Supervisor::start({.argv = cmd, .env = {{"AEC_KEY", plan.options.key}}});
  if (!child) {
    fmt::print(stderr, "aec {}: error: {}\n", ctx.verb, child.error().message());
    return spawn_error_code(child.error());
  }
  ChildExit exit = (*child)->wait();
  report.status = "unprotected";
  report.exit_code = exit.exit_code;
  write_report(ctx, plan, report);
  return exit.exit_code;
}

int not_granted(const Context& ctx, const RunPlan& plan, const AcquireResult& r, Report report) {
  report.status = "skipped";
  if (r.outcome == AcquireOutcome::Done) {
    report.reason = fmt::format("already done: execution {} succeeded", r.done_by->id);
    report.holder = r.done_by;
    note(ctx, fmt::format("{} is already done (execution {} succeeded); not running",
                          plan.options.key, r.done_by->id));
    write_report(ctx, plan, report);
    return kExitOk;
  }
  if (!r.holders.empty()) {
    const Execution& h = r.holders.front().execution;
    report.holder = h;
    report.reason = fmt::format("busy: held by execution {} (token {}) on {} pid {}", h.id, h.token,
                                h.owner.host, h.owner.pid);
  } else {
    report.reason = "busy";
  }
  int code = plan.options.on_busy == OnBusy::Skip ? kExitOk : plan.busy_exit_code;
  std::string what = plan.options.on_busy == OnBusy::Skip ? "skipped"
                     : plan.options.on_busy == OnBusy::Fail
                         ? fmt::format("not running (--on-busy fail: exit {})", code)
                         : fmt::format("gave up waiting (exit {})", code);
  note(ctx, fmt::format("{} is {}; {}", plan.options.key, report.reason, what));
  write_report(ctx, plan, report);
  return code;
}

Outcome outcome_of(const ChildExit& exit, bool lost) {
  if (lost) {
    return {.status = ExecutionStatus::Lost,
            .exit_code = exit.exit_code,
            .reason = "lease lost while running: the command was stopped"};
  }
  Outcome o{.status = exit.exit_code == 0 ? ExecutionStatus::Succeeded : ExecutionStatus::Failed,
            .exit_code = exit.exit_code};
  if (exit.signal) {
    o.reason = fmt::format("killed by signal {}", *exit.signal);
  }
  return o;
}

// True when a grant came too late to use, by this process's own count: its answer was delayed,
// or this process was stopped, for about the ttl. The store may have given the key to another
// caller already: the command must not start on it (found by the reliability suite, T11).
// How many grants in a row that came too late a waiting run gives back before it gives up.
constexpr int kMaxLateGrants = 5;

bool came_too_late(Control& control, const Lease& lease) {
  return control.clock().monotonic_now() >= Heartbeat::kill_deadline(lease.valid_until, lease.ttl);
}

std::string too_late_reason(const Lease& lease) {
  return fmt::format(
      "the lease on {} (token {}) had run out before the command could start: its grant "
      "reached aec after about its ttl ({})",
      lease.key, lease.token, format_duration(lease.ttl));
}

int supervise(const Context& ctx, const RunPlan& plan, Control& control, const Lease& lease,
              const std::vector<std::string>& cmd, Report report) {
  report.token = lease.token;
  if (came_too_late(control, lease)) {
    std::string why = too_late_reason(lease);
    note(ctx, why);
    (void)control.release(lease, {.status = ExecutionStatus::Lost, .reason = why});
    report.status = std::string(to_string(ExecutionStatus::Lost));
    report.reason = why;
    write_report(ctx, plan, report);  // no exit_code: the command never ran
    return kExitLost;
  }
  auto child = Supervisor::start({.argv = cmd,
                                  .env = {{"AEC_KEY", lease.key},
                                          {"AEC_EXECUTION_ID", lease.execution_id},
                                          {"AEC_FENCING_TOKEN", std::to_string(lease.token)}}});
  if (!child) {
    fmt::print(stderr, "aec {}: error: {}\n", ctx.verb, child.error().message());
    int code = spawn_error_code(child.error());
    (void)control.release(
        lease,
        {.status = ExecutionStatus::Failed, .exit_code = code, .reason = child.error().message()});
    report.status = "failed";
    report.reason = child.error().message();
    report.exit_code = code;
    write_report(ctx, plan, report);
    return code;
  }
  Supervisor& sup = **child;
  Heartbeat heartbeat(
      control, control.clock(), lease, plan.kill_grace,
      [&](MonoTime kill_at) {
        note(ctx, fmt::format("lease on {} lost (token {}): stopping the command", lease.key,
                              lease.token));
        sup.stop(kill_at, control.clock());
      },
      Heartbeat::Start::Deferred);
  // The renewal threads start when the first renewal is near: a command that ends sooner (most
  // cron jobs' quick no-op runs) never creates them.
  sup.call_at(heartbeat.start_by(), control.clock(), [&] { heartbeat.start(); });
  ChildExit exit = sup.wait();
  heartbeat.stop();
  bool lost = heartbeat.lost();
  Outcome outcome = outcome_of(exit, lost);
  auto released = control.release(heartbeat.lease(), outcome);
  if (!released) {
    fmt::print(stderr, "aec {}: warning: could not record the outcome: {}\n", ctx.verb,
               released.error().message());
  } else if (*released == LeaseOutcome::Lost && !lost) {
    lost = true;
    outcome.status = ExecutionStatus::Lost;
    outcome.reason = "the lease expired before the command finished";
    note(ctx, fmt::format("lease on {} expired before the command finished", lease.key));
  }
  report.status = std::string(to_string(outcome.status));
  report.reason = outcome.reason;
  report.exit_code = exit.exit_code;
  write_report(ctx, plan, report);
  return lost ? kExitLost : exit.exit_code;
}

// While `aec run --on-busy wait` waits for its turn, SIGINT, SIGTERM and SIGHUP end the wait
// (giving up the queue place at once instead of leaving it to lapse). The signals are blocked
// for the whole process first, as the supervisor needs; once the wait is over, the watcher stops
// and later signals stay pending for the supervisor to forward to the command.
class StopOnSignal {
 public:
  StopOnSignal() {
    Supervisor::block_signals();
    watcher_ = std::jthread([this](std::stop_token stop) { watch(stop); });
  }
  std::stop_token token() { return source_.get_token(); }
  // Ends the wait as a signal would, but with signal() still 0.
  void cancel() { source_.request_stop(); }
  // Stops watching; once it returns, no signal is consumed here any more.
  void stop() {
    watcher_.request_stop();
    watcher_.join();
  }
  // The signal that ended the wait, or 0.
  int signal() const { return signal_.load(); }

 private:
  void watch(std::stop_token stop) {
    sigset_t set = Supervisor::forwarded_signals();
    const timespec tick{0, 50'000'000};
    while (!stop.stop_requested()) {
      int sig = sigtimedwait(&set, nullptr, &tick);
      if (sig > 0) {
        signal_ = sig;
        source_.request_stop();
        return;
      }
    }
  }
  std::stop_source source_;
  std::atomic<int> signal_{0};
  std::jthread watcher_;  // last: starts after the members it uses
};

// Called with the first Busy answer of a wait in line, as the caller takes its place; returns
// false to leave the line at once.
using OnFirstBusy = std::function<bool(const AcquireResult& busy)>;

// The answer to a wait in line, and the signal that ended it (0 if none).
struct InLine {
  Result<AcquireResult> acquired;
  int signal = 0;
  bool left = false;  // OnFirstBusy said to leave (the answer is then Cancelled)
};

// Acquires with the wait policy, letting a signal end the wait.
InLine acquire_in_line(Control& control, RunOptions options, const OnFirstBusy& on_first_busy) {
  StopOnSignal interrupt;
  bool left = false;
  options.on_waiting = [&](const AcquireResult& busy) {
    if (!on_first_busy(busy)) {
      left = true;
      interrupt.cancel();
    }
  };
  Result<AcquireResult> acquired = control.acquire(options, interrupt.token());
  interrupt.stop();
  return {std::move(acquired), interrupt.signal(), left};
}

OnFirstBusy announce_wait(const Context& ctx, const std::string& key) {
  return [&ctx, &key](const AcquireResult& busy) {
    std::string why = busy.holders.empty() ? "slots free, others first"
                                           : fmt::format("{} holder(s)", busy.holders.size());
    note(ctx,
         fmt::format("{} is busy ({}); waiting in line, {} ahead", key, why, busy.waiting_ahead));
    return true;
  };
}

bool all_attempts_of(const std::vector<Holder>& holders, std::string_view execution_id) {
  return std::all_of(holders.begin(), holders.end(),
                     [&](const Holder& h) { return same_execution(h.execution.id, execution_id); });
}

// Stays in line only while the holders are still earlier attempts of this execution.
OnFirstBusy announce_retry(const Context& ctx, const RunOptions& options) {
  return [&ctx, &options](const AcquireResult& busy) {
    if (!all_attempts_of(busy.holders, options.execution_id)) {
      return false;
    }
    std::string held_by =
        busy.holders.empty() ? "its waiters" : "execution " + busy.holders.front().execution.id;
    note(ctx, fmt::format("{} is held by {}, an earlier attempt of this run ({}); waiting for it "
                          "to end, then running",
                          options.key, held_by, execution_base(options.execution_id)));
    return true;
  };
}

// A SIGINT, SIGTERM or SIGHUP that came during a single acquire (blocked since the run began),
// taken now, so that it ends the run as it would end a wait in line; 0 if none came.
int take_pending_signal() {
  sigset_t set = Supervisor::forwarded_signals();
  const timespec now{0, 0};
  int sig = sigtimedwait(&set, nullptr, &now);
  return sig > 0 ? sig : 0;
}

// The answer to the acquire, and the signal that ended a wait in line (0 if none).
struct Acquired {
  Result<AcquireResult> result;
  int signal = 0;
};

// Acquires per the plan's policy; but when the key is held by an earlier attempt of this very
// execution (a retry started while the previous attempt still holds its lease), waits in line
// for it whatever the policy, since skipping would skip the run altogether. The state is read
// first so that no Skipped execution is recorded for a retry that then waits; if another
// execution holds the key by the time the wait begins, the policy applies after all. An
// execution id aec made up for this run (`fresh_id`: none was given) has no earlier attempts,
// and the read is spared.
Acquired acquire_per_plan(const Context& ctx, Control& control, const RunPlan& plan,
                          bool fresh_id) {
  const RunOptions& options = plan.options;
  if (options.on_busy == OnBusy::Wait) {
    InLine in_line = acquire_in_line(control, options, announce_wait(ctx, options.key));
    return {std::move(in_line.acquired), in_line.signal};
  }
  if (fresh_id) {
    Result<AcquireResult> r = control.acquire(options);
    return {std::move(r), take_pending_signal()};
  }
  Result<KeyState> state = control.store().get(options.key);
  if (state && held_by_earlier_attempt(*state, options.execution_id)) {
    RunOptions wait = options;
    wait.on_busy = OnBusy::Wait;
    wait.wait_timeout.reset();
    InLine in_line = acquire_in_line(control, wait, announce_retry(ctx, options));
    if (!in_line.left) {
      return {std::move(in_line.acquired), in_line.signal};
    }
  }
  Result<AcquireResult> r = control.acquire(options);
  return {std::move(r), take_pending_signal()};
}

int store_trouble(const Context& ctx, const RunPlan& plan, const Status& s,
                  const std::vector<std::string>& cmd, Report report) {
  if (plan.on_store_error == OnStoreError::Proceed && s.code() != Code::InvalidArgument) {
    fmt::print(stderr,
               "aec {}: warning: {}; --on-store-error proceed: running the command without a "
               "lease\n",
               ctx.verb, s.message());
    return run_unprotected(ctx, plan, cmd, std::move(report));
  }
  if (s.code() != Code::InvalidArgument) {  // bad usage leaves no message, as before a plan
    report.status = "error";
    report.reason = s.message();
    write_report(ctx, plan, report);
  }
  return fail(ctx, s);
}

// The rest of a run once its acquire has answered (or a signal ended the wait): skip, fail or
// run the command under the lease.
int finish_run(const Context& ctx, const RunPlan& plan, Control& control,
               Result<AcquireResult> acquired, int signal, const std::vector<std::string>& cmd,
               const Report& report) {
  if (signal != 0) {
    note(ctx, fmt::format("signal {} before the command started: not running it ({})", signal,
                          plan.options.key));
    if (acquired && acquired->outcome == AcquireOutcome::Granted) {
      // The signal came as the lease was granted: honour it rather than run the command.
      (void)control.release(acquired->lease,
                            {.status = ExecutionStatus::Cancelled,
                             .reason = fmt::format("signal {} before start", signal)});
    }
    return 128 + signal;
  }
  if (!acquired) {
    return store_trouble(ctx, plan, acquired.error(), cmd, report);
  }
  if (acquired->outcome != AcquireOutcome::Granted) {
    return not_granted(ctx, plan, *acquired, report);
  }
  if (ctx.verbose) {
    note(ctx, fmt::format("acquired {} (token {}, ttl {}, execution {})", plan.options.key,
                          acquired->lease.token, format_duration(plan.options.ttl),
                          acquired->lease.execution_id));
  }
  return supervise(ctx, plan, control, acquired->lease, cmd, report);
}

}  // namespace

bool held_by_earlier_attempt(const KeyState& state, std::string_view execution_id) {
  if (state.holders.empty() || !all_attempts_of(state.holders, execution_id)) {
    return false;
  }
  return std::all_of(state.queue.begin(), state.queue.end(),
                     [&](const std::string& id) { return same_execution(id, execution_id); });
}

std::string check_bypassed_by() {
  for (const char* name : {"AEC_RUN_ENABLED", "VDK_EXECUTION_SKIP_CHECKER_ENABLED"}) {
    const char* v = std::getenv(name);
    if (v == nullptr) {
      continue;
    }
    std::string s(v);
    if (s == "false" || s == "0" || s == "no" || s == "off" || s == "FALSE" || s == "False") {
      return fmt::format("{}={}", name, s);
    }
  }
  return "";
}

int run_job(const Context& ctx, const RunPlan& plan_in, const std::vector<std::string>& cmd) {
  RunPlan plan = plan_in;
  const bool fresh_id = plan.options.execution_id.empty();
  if (fresh_id) {
    plan.options.execution_id = new_execution_id();
  }
  Report report{.execution_id = plan.options.execution_id};
  if (std::string by = check_bypassed_by(); !by.empty()) {
    fmt::print(stderr, "aec {}: {}: running the command without a lease\n", ctx.verb, by);
    return run_unprotected(ctx, plan, cmd, report);
  }
  // Blocked before the store starts threads of its own (etcd's gRPC): a thread created with them
  // unblocked could take a SIGTERM meant for aec, whose default action would end aec at once,
  // the command left running and no outcome recorded. From here on they are read: by the
  // supervisor while the command runs, by a wait in line, or after a single acquire.
  Supervisor::block_signals();
  auto store = open_context_store(ctx);
  if (!store) {
    return store_trouble(ctx, plan, store.error(), cmd, report);
  }
  Control control(std::shared_ptr<Store>(std::move(*store)));
  const MonoTime began = control.clock().monotonic_now();
  for (int late = 0;; ++late) {
    auto [acquired, signal] = acquire_per_plan(ctx, control, plan, fresh_id);
    if (plan.options.on_busy == OnBusy::Wait && signal == 0 && acquired &&
        acquired->outcome == AcquireOutcome::Granted && late < kMaxLateGrants &&
        came_too_late(control, acquired->lease)) {
      // Waiting for the key, the caller asked for it, not for this grant: record it lost, then
      // wait in line again for the rest of --wait's time (found by the reliability suite, T10:
      // an etcd leader stopped for 2 s delayed a waiter's grant past its ttl).
      std::string why = too_late_reason(acquired->lease);
      note(ctx, why + "; waiting in line again");
      (void)control.release(acquired->lease, {.status = ExecutionStatus::Lost, .reason = why});
      if (plan.options.wait_timeout) {
        auto spent = std::chrono::ceil<milliseconds>(control.clock().monotonic_now() - began);
        plan.options.wait_timeout =
            std::max(milliseconds(1), *plan_in.options.wait_timeout - spent);
      }
      continue;
    }
    return finish_run(ctx, plan, control, std::move(acquired), signal, cmd, report);
  }
}

}  // namespace aec::cli
