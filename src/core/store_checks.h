// Argument checks and record texts that every store applies the same way, so the stores agree
// on what is invalid and on what their history says.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include <aec/store.h>

namespace aec {

// InvalidArgument for a bad key, empty execution id, limit < 1, ttl < 1 ms, a negative queue_ttl
// or park, or a ttl, queue_ttl or park past kMaxDuration (core/duration.h).
Status check_acquire_request(const AcquireRequest& req);
// InvalidArgument for a bad key, token < 1, ttl < 1 ms or past kMaxDuration.
Status check_lease_args(std::string_view key, std::int64_t token, milliseconds ttl);
// InvalidArgument for a bad key, token < 1, or an outcome status of Running or Skipped.
Status check_release_args(std::string_view key, std::int64_t token, const Outcome& outcome);
// InvalidArgument for older_than < 0 or past kMaxDuration.
Status check_purge_request(const PurgeRequest& req);
// InvalidArgument when a handoff's next acquire is for another key than the release.
Status check_handoff(std::string_view key, const AcquireRequest& next);

// The reason recorded on a Skipped execution: "busy: held by ID (token N)" or "done: ...".
std::string skip_reason(const AcquireResult& result);
// The reason recorded on an execution cancelled by force_release.
std::string forced_reason(std::string_view reason, const Owner& by);
// True when `e` passes `filter`'s key, prefix and status tests (not its limit).
bool matches(const ListFilter& filter, const Execution& e);

// The waiting loop of a store that holds a caller in line itself (AcquireRequest::park, with
// queue): asks (`attempt(woken)`, woken after the first) until the answer is not Busy or
// req.park has passed. Between two asks it calls `await(nap)`; the nap ends no later than a
// holder or a place ahead could lapse (retry_in: expiry is not a write, so nobody is told) and
// a third of queue_ttl (in time to keep the caller's place). `await` returns false when the
// store can no longer watch the key; the Busy answer is then given at once. Sets
// AcquireResult::held from the ask that answered, and parked on a Busy answer. When req.stop
// is requested, gives up the caller's place through store.leave_queue and answers Cancelled.
Result<AcquireResult> park_in_line(Store& store, const AcquireRequest& req,
                                   const std::function<Result<AcquireResult>(bool woken)>& attempt,
                                   const std::function<bool(std::chrono::nanoseconds nap)>& await);

}  // namespace aec
