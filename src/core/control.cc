#include <algorithm>

#include <aec/control.h>
#include <aec/key.h>

#include "core/heartbeat.h"
#include "core/status_macros.h"

namespace aec {

Control::Control(std::shared_ptr<Store> store, ControlOptions options)
    : store_(std::move(store)), options_(std::move(options)) {}

Result<AcquireResult> Control::acquire(const RunOptions& options, std::stop_token stop) {
  AEC_RETURN_IF_ERROR(validate_key(options.key));
  HostInfo& host = *options_.host;
  AcquireRequest req{
      .key = options.key,
      .execution_id = options.execution_id.empty() ? new_execution_id() : options.execution_id,
      .ttl = options.ttl,
      .limit = options.limit,
      .once = options.once,
      .record_skipped = options.on_busy != OnBusy::Wait,
      .owner = {.host = host.hostname(), .pid = host.pid(), .user = host.user()},
      .labels = options.labels};
  std::optional<MonoTime> deadline;
  if (options.wait_timeout) {
    deadline = clock().monotonic_now() + *options.wait_timeout;
  }
  for (;;) {
    MonoTime sent = clock().monotonic_now();
    AEC_ASSIGN_OR_RETURN(AcquireResult r, store_->acquire(req));
    if (r.outcome == AcquireOutcome::Granted) {
      r.lease.valid_until = sent + r.lease.ttl;
      return r;
    }
    if (req.record_skipped) {
      return r;  // Skip or Fail policy, or the last try of a wait: the Skipped record is written
    }
    bool timed_out = deadline && clock().monotonic_now() >= *deadline;
    if (r.outcome == AcquireOutcome::Done || timed_out) {
      req.record_skipped = true;  // one more try that records the skip (it may even be granted)
      continue;
    }
    // Wait for a change to the key, or until the earliest holder could expire (expiry is not a
    // write, so it wakes nobody).
    MonoTime until = sent + std::max(r.retry_in, milliseconds(1));
    if (deadline) {
      until = std::min(until, *deadline);
    }
    AEC_RETURN_IF_ERROR(store_->wait(req.key, r.version, until, stop).status());
    if (stop.stop_requested()) {
      return Status(Code::Cancelled, "acquire cancelled while waiting for " + req.key);
    }
  }
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
