// aec::Store: the backend interface. Every store (memory, sqlite, and later postgres, etcd,
// dynamodb, http) implements these operations with the same semantics, checked by one
// conformance suite (tests/conformance/).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <aec/clock.h>
#include <aec/execution.h>
#include <aec/key_state.h>
#include <aec/lease.h>
#include <aec/status.h>

namespace aec {

struct AcquireRequest {
  std::string key;           // must pass validate_key()
  std::string execution_id;  // non-empty; recorded in history
  milliseconds ttl{30'000};  // lease duration by the store's clock; 1 ms to 3650 days
  int limit = 1;             // at most this many live leases on the key, counting this one; >= 1
  // Grant nothing, and report Done, when the key has a Succeeded execution in its history.
  bool once = false;
  // When the answer is Busy or Done, also record a Skipped execution in the same write.
  bool record_skipped = false;
  // Wait in line. Each key has a FIFO queue of waiting callers, identified by execution_id. A free
  // slot goes to the earliest live places in the queue first; a caller that is not among them
  // gets Busy even when a slot is free (so a releasing client cannot jump the queue by asking
  // again at once). With queue=true a Busy answer keeps, or takes, a place at the tail, valid for
  // queue_ttl by the store's clock: a waiter asks again within queue_ttl to keep it (a dead
  // waiter's place lapses), and leave_queue() gives it up. A grant removes the caller's place.
  // A store may grant a freed slot to the first in line in the release that frees it (postgres):
  // the lease then shows among the key's holders, lasts no longer than the place would have,
  // and is the caller's at its next ask (its ttl counted from then); leave_queue() frees it.
  // At most 3650 days, as `park` and every duration a store takes.
  bool queue = false;
  milliseconds queue_ttl{3'000};
  // With queue: a store that can hold a caller in line on a server (the http store, through
  // aecd) may keep a Busy call open up to `park`, answering Granted as soon as the caller's turn
  // comes, so a waiter never polls; the answer is Busy only when `park` passes. Stores without a
  // server ignore it and answer at once. A parked call ends early when `stop` is requested
  // (Cancelled; the caller's place is given up).
  milliseconds park{0};
  std::stop_token stop;
  Owner owner;
  Labels labels;
};

enum class AcquireOutcome {
  Granted,  // the caller holds a new lease
  Busy,     // no slot for this caller: `limit` live leases exist, or callers ahead in the
            // queue are owed the free ones; nothing granted
  Done,     // once: the key already has a Succeeded execution; nothing granted
};

struct AcquireResult {
  AcquireOutcome outcome = AcquireOutcome::Busy;
  // Granted: the new lease. Its valid_until is left for the caller (Control) to set from the time
  // it sent the request, since only the caller knows that (plus `held`).
  Lease lease;
  // How long the store held the call in line (AcquireRequest::park) before the attempt that
  // answered began, or, when the store knows, before that attempt started the lease's ttl;
  // rounded down: the lease's ttl runs from no earlier than the call's start plus this. 0 for a
  // call answered at once by a store that does not know better.
  milliseconds held{0};
  std::vector<Holder> holders;       // Busy: the live leases
  int waiting_ahead = 0;             // Busy: callers waiting in line ahead of this one
  std::optional<Execution> done_by;  // Done: the Succeeded execution
  std::int64_t version = 0;          // the key's version after this call
  // Busy: when the earliest live lease (or, when the queue holds this caller back, the earliest
  // place ahead of it) would lapse if not renewed (store clock, from now). A waiter must retry by
  // then even if it sees no change, because expiry is not a write.
  milliseconds retry_in{0};
  // Busy: the store held the call in line for AcquireRequest::park; ask again at once (no wait
  // needed, the store watched the key meanwhile).
  bool parked = false;
};

enum class LeaseOutcome {
  Ok,    // renewed, or released
  Lost,  // the token no longer holds a live lease: it expired, was force-released or released
};

// How an execution ended, reported with release().
struct Outcome {
  ExecutionStatus status = ExecutionStatus::Succeeded;  // anything but Running and Skipped
  std::optional<int> exit_code;
  std::string reason;
};

struct ListFilter {
  std::string key;                        // exact key; empty for any
  std::string prefix;                     // key prefix; empty for any
  std::vector<ExecutionStatus> statuses;  // empty for any
  std::size_t limit = 100;                // newest first, at most this many
  std::size_t offset = 0;                 // skip this many matches first (pagination)
};

struct PurgeRequest {
  // Delete executions that ended more than this long ago (wall clock); 0 to 3650 days.
  milliseconds older_than{20 * 60 * 1000};
  // Only executions with these statuses; Running is never purged.
  std::vector<ExecutionStatus> statuses;
  std::size_t batch_size = 500;  // rows deleted per transaction
};

struct PurgeResult {
  std::int64_t executions_deleted = 0;
  std::int64_t leases_expired = 0;  // expired leases reaped (their executions recorded Lost)
};

struct ForceReleaseResult {
  std::vector<Execution> released;  // the executions whose leases were freed, now Cancelled
  std::int64_t version = 0;
};

// What release_and_acquire() did: the release's answer, and the next caller's.
struct Handoff {
  LeaseOutcome released = LeaseOutcome::Lost;
  Result<AcquireResult> next{Status(Code::Internal, "not attempted")};
};

// A subscription to a store's changes (Store::watch_changes); it ends when destroyed.
class ChangeFeed {
 public:
  virtual ~ChangeFeed() = default;
};

// The backend interface. Implementations are thread-safe: one Store may be shared by many
// threads, and many processes may share one underlying database.
//
// Fencing tokens: for each key, every grant gets a token greater than every token the store has
// ever issued for that key, including across release, purge, restarts and crashes. Expiry is
// decided by the store's own clock, never by a caller's.
class Store {
 public:
  virtual ~Store() = default;

  // Takes a free slot on req.key, or reports the holders (Busy), or (once) the Succeeded
  // execution (Done). Atomic: two concurrent acquires never both take the last slot. Expired
  // leases of the key are reaped first and their executions recorded Lost.
  // Errors: InvalidArgument (bad key, ttl, limit), Unavailable, DataLoss.
  virtual Result<AcquireResult> acquire(const AcquireRequest& req) = 0;

  // Extends the lease held by (key, token) to ttl from now by the store's clock. Lost when that
  // token holds no live lease; then nothing changes.
  virtual Result<LeaseOutcome> renew(std::string_view key, std::int64_t token,
                                     milliseconds ttl) = 0;

  // Frees the lease held by (key, token) and records `outcome` on its execution. When the token
  // holds no live lease, answers Lost, frees nothing, and records the execution Lost if it is
  // still Running (never touching any other lease).
  virtual Result<LeaseOutcome> release(std::string_view key, std::int64_t token,
                                       const Outcome& outcome) = 0;

  // release(key, token, outcome), then acquire(next) for the first caller in line (next.key ==
  // key), as one write where the store can: the slot passes to `next` with no moment in which
  // another caller could take it, and with one commit for both. The default makes the two calls
  // one after the other. Errors: those of release(); then nothing was released. An error of the
  // acquire alone is reported in Handoff::next.
  virtual Result<Handoff> release_and_acquire(std::string_view key, std::int64_t token,
                                              const Outcome& outcome, const AcquireRequest& next);

  // The key's state. A key never seen gives an empty state with version 0.
  virtual Result<KeyState> get(std::string_view key) = 0;

  // Executions, newest first.
  virtual Result<std::vector<Execution>> list(const ListFilter& filter) = 0;

  // Blocks until the key's version differs from `version`, the deadline passes, or `stop` is
  // requested; returns the version then seen. Never errors on timeout: the caller compares.
  // Cancelled when stopped.
  virtual Result<std::int64_t> wait(std::string_view key, std::int64_t version, MonoTime deadline,
                                    std::stop_token stop) = 0;

  // Frees every live lease of `key`, records their executions Cancelled with `reason` and `by`
  // (an operator action). The next grant gets a higher token as always.
  virtual Result<ForceReleaseResult> force_release(std::string_view key, std::string_view reason,
                                                   const Owner& by) = 0;

  // Deletes old history in bounded batches and reaps expired leases. Never deletes a live lease
  // or a key's token counter. InvalidArgument for an older_than outside 0 to 3650 days.
  virtual Result<PurgeResult> purge(const PurgeRequest& req) = 0;

  // Gives up the queue place of `execution_id` on `key` (a waiter that times out or is
  // cancelled), or the lease a release granted it there that it has not yet taken. No-op when it
  // has neither.
  virtual Status leave_queue(std::string_view key, std::string_view execution_id) = 0;

  // The URL this store was opened with, credentials removed.
  virtual std::string url() const = 0;

  // Calls `on_change(key)` after every committed change of a key's version, whoever made it
  // (another process, another aecd over the same database), and `on_change("")` when changes
  // may have been missed (the feed reconnected): anything may have changed. For a server that
  // shares its store with others and must wake its waiters (replicated aecd). Runs on a thread
  // of the store's and must not block; no call is made once the feed is destroyed. nullptr when
  // the store has no such feed (the default; memory, sqlite, http): callers poll instead.
  virtual std::unique_ptr<ChangeFeed> watch_changes(
      std::function<void(const std::string& key)> on_change);
};

}  // namespace aec
