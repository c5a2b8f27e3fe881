#include "core/store_checks.h"

#include <algorithm>

#include <fmt/format.h>

#include <aec/key.h>

namespace aec {

Status check_acquire_request(const AcquireRequest& req) {
  if (Status s = validate_key(req.key); !s.is_ok()) {
    return s;
  }
  if (req.execution_id.empty()) {
    return invalid_argument("execution id is empty");
  }
  if (req.ttl < milliseconds(1)) {
    return invalid_argument("ttl must be at least 1ms");
  }
  if (req.limit < 1) {
    return invalid_argument(fmt::format("limit must be at least 1, not {}", req.limit));
  }
  return Status::ok();
}

Status check_lease_args(std::string_view key, std::int64_t token, milliseconds ttl) {
  if (Status s = validate_key(key); !s.is_ok()) {
    return s;
  }
  if (token < 1) {
    return invalid_argument(fmt::format("fencing token must be positive, not {}", token));
  }
  if (ttl < milliseconds(1)) {
    return invalid_argument("ttl must be at least 1ms");
  }
  return Status::ok();
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

}  // namespace aec
