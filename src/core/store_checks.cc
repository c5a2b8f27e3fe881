#include "core/store_checks.h"

#include <algorithm>

#include <fmt/format.h>

#include <aec/key.h>

#include "core/duration.h"

namespace aec {
namespace {

// InvalidArgument "WHAT must be at least MIN" or "WHAT must be at most 3650d" outside
// [min, kMaxDuration]: so that the stores' `now + d` cannot overflow.
Status check_duration(std::string_view what, milliseconds d, milliseconds min) {
  if (d < min) {
    return invalid_argument(fmt::format("{} must be at least {}", what, format_duration(min)));
  }
  if (d > kMaxDuration) {
    return invalid_argument(fmt::format("{} must be at most {} ({} ms)", what, max_duration_text(),
                                        kMaxDuration.count()));
  }
  return Status::ok();
}

}  // namespace

Status check_acquire_request(const AcquireRequest& req) {
  if (Status s = validate_key(req.key); !s.is_ok()) {
    return s;
  }
  if (req.execution_id.empty()) {
    return invalid_argument("execution id is empty");
  }
  if (req.limit < 1) {
    return invalid_argument(fmt::format("limit must be at least 1, not {}", req.limit));
  }
  if (Status s = check_duration("ttl", req.ttl, milliseconds(1)); !s.is_ok()) {
    return s;
  }
  if (Status s = check_duration("queue_ttl", req.queue_ttl, milliseconds(0)); !s.is_ok()) {
    return s;
  }
  return check_duration("park", req.park, milliseconds(0));
}

Status check_lease_args(std::string_view key, std::int64_t token, milliseconds ttl) {
  if (Status s = validate_key(key); !s.is_ok()) {
    return s;
  }
  if (token < 1) {
    return invalid_argument(fmt::format("fencing token must be positive, not {}", token));
  }
  return check_duration("ttl", ttl, milliseconds(1));
}

Status check_purge_request(const PurgeRequest& req) {
  return check_duration("older_than", req.older_than, milliseconds(0));
}

Status check_release_args(std::string_view key, std::int64_t token, const Outcome& outcome) {
  if (Status s = check_lease_args(key, token, milliseconds(1)); !s.is_ok()) {
    return s;
  }
  if (!is_ended(outcome.status) || outcome.status == ExecutionStatus::Skipped) {
    return invalid_argument(
        fmt::format("a release cannot record status '{}'", to_string(outcome.status)));
  }
  return Status::ok();
}

Status check_handoff(std::string_view key, const AcquireRequest& next) {
  if (next.key != key) {
    return invalid_argument(
        fmt::format("a handoff passes key '{}' to the next in line of the same key, not of '{}'",
                    key, next.key));
  }
  return Status::ok();
}

std::string skip_reason(const AcquireResult& result) {
  if (result.outcome == AcquireOutcome::Done && result.done_by) {
    return fmt::format("done: execution {} succeeded", result.done_by->id);
  }
  if (result.holders.empty()) {
    return fmt::format("busy: {} caller(s) waiting in line", result.waiting_ahead);
  }
  const Execution& h = result.holders.front().execution;
  return fmt::format("busy: held by execution {} (token {}) on {} pid {}", h.id, h.token,
                     h.owner.host, h.owner.pid);
}

std::string forced_reason(std::string_view reason, const Owner& by) {
  return fmt::format("force-released by {}@{}: {}", by.user, by.host, reason);
}

bool matches(const ListFilter& filter, const Execution& e) {
  if (!filter.key.empty() && e.key != filter.key) {
    return false;
  }
  if (!filter.prefix.empty() && !e.key.starts_with(filter.prefix)) {
    return false;
  }
  return filter.statuses.empty() || std::find(filter.statuses.begin(), filter.statuses.end(),
                                              e.status) != filter.statuses.end();
}

Result<AcquireResult> park_in_line(Store& store, const AcquireRequest& req,
                                   const std::function<Result<AcquireResult>(bool woken)>& attempt,
                                   const std::function<bool(std::chrono::nanoseconds nap)>& await) {
  const MonoTime start = BootClock::now();
  const MonoTime until = start + req.park;
  for (bool woken = false;; woken = true) {
    const MonoTime began = BootClock::now();
    Result<AcquireResult> r = attempt(woken);
    if (!r) {
      return r;
    }
    // A grant counts from the ask that made it, not from the call: the caller's lease deadline.
    r->held = std::chrono::floor<milliseconds>(began - start);
    const auto left = until - BootClock::now();
    if (r->outcome != AcquireOutcome::Busy) {
      return r;
    }
    const std::chrono::nanoseconds nap = std::min<std::chrono::nanoseconds>(
        {left, std::max(r->retry_in, milliseconds(1)), req.queue_ttl / 3});
    if (left <= left.zero() || !await(nap)) {
      r->parked = true;
      return r;
    }
    if (req.stop.stop_requested()) {
      (void)store.leave_queue(req.key, req.execution_id);  // best effort: the place lapses anyway
      return Status(Code::Cancelled, "acquire cancelled while waiting for " + req.key);
    }
  }
}

}  // namespace aec
