#include <algorithm>

#include <aec/control.h>
#include <aec/key.h>

#include "core/heartbeat.h"
#include "core/status_macros.h"

namespace aec {
namespace {

// The longest one acquire call is parked on a server before it answers Busy and is sent again,
// so a waiter that was silently cut off (a NAT dropping an idle connection) notices within this.
constexpr milliseconds kMaxPark{60'000};

}  // namespace

Control::Control(std::shared_ptr<Store> store, ControlOptions options)
    : store_(std::move(store)), options_(std::move(options)) {}

Result<AcquireResult> Control::acquire(const RunOptions& options, std::stop_token stop) {
  AEC_RETURN_IF_ERROR(validate_key(options.key));
  HostInfo& host = *options_.host;
  bool waiting = options.on_busy == OnBusy::Wait;
  AcquireRequest req{
      .key = options.key,
      .execution_id = options.execution_id.empty() ? new_execution_id() : options.execution_id,
      .ttl = options.ttl,
      .limit = options.limit,
      .once = options.once,
      .record_skipped = !waiting,
      .queue = waiting,
      .owner = {.host = host.hostname(), .pid = host.pid(), .user = host.user()},
      .labels = options.labels};
  std::optional<MonoTime> deadline;
  if (options.wait_timeout) {
    deadline = clock().monotonic_now() + *options.wait_timeout;
  }
  bool told = false;  // on_waiting was called
  for (;;) {
    MonoTime sent = clock().monotonic_now();
    if (req.queue) {
      // A store with a server may park the call in line; never past our own deadline.
      req.park = kMaxPark;
      if (deadline) {
        req.park = std::clamp(std::chrono::duration_cast<milliseconds>(*deadline - sent),
                              milliseconds(0), kMaxPark);
      }
      req.stop = stop;
    }
    AEC_ASSIGN_OR_RETURN(AcquireResult r, store_->acquire(req));
    if (r.outcome == AcquireOutcome::Granted) {
      // A call parked in line was granted `held` after it was sent, not when it was sent.
      r.lease.valid_until = sent + r.held + r.lease.ttl;
      return r;
    }
    if (req.record_skipped) {
      // Skip or Fail policy, or the last try of a wait: the Skipped record is written.
      if (waiting) {
        AEC_RETURN_IF_ERROR(store_->leave_queue(req.key, req.execution_id));
      }
      return r;
    }
    bool timed_out = deadline && clock().monotonic_now() >= *deadline;
    if (r.outcome == AcquireOutcome::Done || timed_out) {
      req.record_skipped = true;  // one more try that records the skip (it may even be granted)
      req.queue = false;
      continue;
    }
    if (options.on_waiting && !told) {
      options.on_waiting(r);
      told = true;
    }
    if (r.parked && !stop.stop_requested()) {
      continue;  // the store watched the key while the call was parked: ask again at once
    }
    AEC_RETURN_IF_ERROR(await_turn(req, r, sent, deadline, stop));
  }
}

Status Control::await_turn(const AcquireRequest& req, const AcquireResult& busy, MonoTime sent,
                           std::optional<MonoTime> deadline, std::stop_token stop) {
  // Wake on a change to the key; or when a lease (or a place ahead in the queue) could lapse,
  // since expiry is not a write and wakes nobody; or in time to renew our own queue place.
  MonoTime until = sent + std::min(std::max(busy.retry_in, milliseconds(1)), req.queue_ttl / 3);
  if (deadline) {
    until = std::min(until, *deadline);
  }
  Status waited = store_->wait(req.key, busy.version, until, stop).status();
  if (waited.is_ok() && !stop.stop_requested()) {
    return Status::ok();
  }
  (void)store_->leave_queue(req.key, req.execution_id);  // best effort: it lapses anyway
  return waited.is_ok() ? Status(Code::Cancelled, "acquire cancelled while waiting for " + req.key)
                        : waited;
}

Result<LeaseOutcome> Control::renew(Lease& lease) {
  MonoTime sent = clock().monotonic_now();
  AEC_ASSIGN_OR_RETURN(LeaseOutcome r, store_->renew(lease.key, lease.token, lease.ttl));
  if (r == LeaseOutcome::Ok) {
    lease.valid_until = sent + lease.ttl;
  }
  return r;
}

Result<LeaseOutcome> Control::release(const Lease& lease, const Outcome& outcome) {
  return store_->release(lease.key, lease.token, outcome);
}

Result<RunResult> Control::run(const RunOptions& options,
                               const std::function<int(const Lease&, std::stop_token)>& work) {
  AEC_ASSIGN_OR_RETURN(AcquireResult acquired, acquire(options));
  RunResult result{.acquire = acquired};
  if (acquired.outcome != AcquireOutcome::Granted) {
    result.outcome =
        acquired.outcome == AcquireOutcome::Done ? RunOutcome::Done : RunOutcome::Skipped;
    return result;
  }
  std::stop_source lost;
  Heartbeat heartbeat(*this, clock(), acquired.lease, milliseconds(0),
                      [&](MonoTime) { lost.request_stop(); });
  result.exit_code = work(acquired.lease, lost.get_token());
  heartbeat.stop();
  result.lease = heartbeat.lease();
  Outcome outcome{
      .status = result.exit_code == 0 ? ExecutionStatus::Succeeded : ExecutionStatus::Failed,
      .exit_code = result.exit_code};
  if (heartbeat.lost()) {
    outcome = {.status = ExecutionStatus::Lost,
               .exit_code = result.exit_code,
               .reason = "lease lost while running"};
  }
  AEC_ASSIGN_OR_RETURN(LeaseOutcome released, release(result.lease, outcome));
  result.outcome =
      heartbeat.lost() || released == LeaseOutcome::Lost ? RunOutcome::Lost : RunOutcome::Ran;
  return result;
}

Result<KeyState> Control::wait_free(std::string_view key, int limit,
                                    std::optional<MonoTime> deadline, std::stop_token stop) {
  AEC_RETURN_IF_ERROR(validate_key(key));
  for (;;) {
    AEC_ASSIGN_OR_RETURN(KeyState state, store_->get(key));
    if (static_cast<int>(state.holders.size()) < limit) {
      return state;
    }
    MonoTime now = clock().monotonic_now();
    if (deadline && now >= *deadline) {
      return Status(Code::DeadlineExceeded,
                    "timed out waiting for " + std::string(key) + " to become free");
    }
    milliseconds soonest = state.holders.front().expires_in;
    for (const Holder& h : state.holders) {
      soonest = std::min(soonest, h.expires_in);
    }
    MonoTime until = now + std::max(soonest, milliseconds(1));
    if (deadline) {
      until = std::min(until, *deadline);
    }
    AEC_RETURN_IF_ERROR(store_->wait(key, state.version, until, stop).status());
    if (stop.stop_requested()) {
      return Status(Code::Cancelled, "wait cancelled");
    }
  }
}

}  // namespace aec
