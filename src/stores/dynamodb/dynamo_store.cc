#include "stores/dynamodb/dynamo_store.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/status_macros.h"
#include "core/store_checks.h"
#include "stores/dynamodb/dynamo_store_impl.h"
#include "stores/dynamodb/dynamo_table.h"

namespace aec {
namespace aws {

using nlohmann::json;

void DynamoStore::queue_or_refuse(const AcquireRequest& req, KeyRecord& next, const Judged& j,
                                  MonoTime now, const std::optional<Holder>& outside,
                                  AcquireResult& result, std::string& place_rv) {
  auto mine = std::find_if(next.queue.begin(), next.queue.end(),
                           [&](const PlaceEntry& p) { return p.execution_id == req.execution_id; });
  auto ahead = mine - next.queue.begin();
  int free = outside ? 0 : req.limit - static_cast<int>(next.leases.size());
  if (free > 0 && ahead < free) {
    return;  // a free slot, and not more callers in line ahead than free slots
  }
  result.outcome = AcquireOutcome::Busy;
  result.holders = holders(next, j, now);
  if (outside) {
    result.holders.push_back(*outside);
  }
  result.waiting_ahead = static_cast<int>(ahead);
  MonoTime earliest = outside ? now + kPythonPoll : MonoTime::max();
  if (free <= 0) {
    for (MonoTime end : j.lease_ends) {
      earliest = std::min(earliest, end);
    }
  } else {
    for (std::ptrdiff_t i = 0; i < ahead; ++i) {
      earliest = std::min(earliest, j.place_ends[static_cast<std::size_t>(i)]);
    }
  }
  result.retry_in = until(earliest, now);
  if (!req.queue) {
    return;
  }
  if (mine != next.queue.end() && mine->queue_ttl == req.queue_ttl &&
      now - sightings_.place(req.key, req.execution_id, mine->rv, now) < req.queue_ttl / 3) {
    return;  // renewed less than a third of its queue_ttl ago: no write (waiters wake together)
  }
  place_rv = nonce();
  if (mine == next.queue.end()) {
    next.queue.push_back({req.execution_id, place_rv, req.queue_ttl});
  } else {
    mine->rv = place_rv;
    mine->queue_ttl = req.queue_ttl;
  }
}

Result<AcquireResult> DynamoStore::acquire(const AcquireRequest& req) {
  AEC_RETURN_IF_ERROR(check_acquire_request(req));
  AEC_RETURN_IF_ERROR(check_key(req.key));
  if (url_.python && req.limit != 1) {
    return invalid_argument(fmt::format(
        "limit {}: a layout=aec-python table holds one execution per key, as the Python "
        "library does; use limit 1",
        req.limit));
  }
  bool fresh = false;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    // layout=aec-python: the lock item first. Held by the Python library, it refuses every
    // caller; FINISHED, it is free, or for --once done.
    LockItem lock;
    std::optional<Holder> outside;
    if (url_.python) {
      AEC_ASSIGN_OR_RETURN(lock, read_lock(req.key));
      if (lock.exists && !lock.finished && lock.token == 0) {
        outside = Holder{lock_execution(req.key, lock), milliseconds(0)};
      }
    }
    AEC_ASSIGN_OR_RETURN(Read r, state_for(req.key, fresh));
    KeyRecord next = r.rec;
    MonoTime now = clock_->monotonic_now();
    Judged j = judge(req.key, next, now);
    SysTime wall = clock_->system_now();
    std::vector<RunRecord> lost = expire(next, j, wall);
    bool changed = !lost.empty() || j.places_lapsed > 0;

    AcquireResult result{.outcome = AcquireOutcome::Granted};
    Execution e{.id = req.execution_id,
                .key = req.key,
                .owner = req.owner,
                .started_at = wall,
                .labels = req.labels};
    std::string place_rv;
    if (req.once && next.last_succeeded) {
      result.outcome = AcquireOutcome::Done;
      result.done_by = next.last_succeeded->execution;
    } else if (req.once && lock.finished) {
      result.outcome = AcquireOutcome::Done;  // by the Python library
      result.done_by = lock_execution(req.key, lock);
    } else {
      queue_or_refuse(req, next, j, now, outside, result, place_rv);
      changed = changed || !place_rv.empty();
    }

    if (result.outcome != AcquireOutcome::Granted) {
      std::optional<RunRecord> skipped;
      if (req.record_skipped) {
        e.status = ExecutionStatus::Skipped;
        e.ended_at = wall;
        e.reason = skip_reason(result);
        skipped = RunRecord{e, skipped_sort_key(next.last_token, ++next.seq), stamp()};
        next.last_ended = skipped;
        ++next.version;
        changed = true;
      }
      if (!changed && !fresh) {
        fresh = true;  // an answer that writes nothing comes from a fresh read
        continue;
      }
      if (changed) {
        MonoTime sent;
        AEC_ASSIGN_OR_RETURN(Commit c, commit(req.key, r.rec, next, sent));
        if (c == Commit::Conflict) {
          again(fresh, attempt);
          continue;
        }
        if (!place_rv.empty()) {
          sightings_.wrote_place(req.key, req.execution_id, place_rv, sent);
          note_place(req.key, req.execution_id, true);
        }
      }
      for (const RunRecord& run : lost) {
        put_run_after_commit(req.key, run, RunWrite::IfAbsent);
      }
      if (skipped) {
        put_run_after_commit(req.key, *skipped, RunWrite::Always);
      }
      result.version = next.version;
      return result;
    }

    // The grant is the state item's write alone: a running execution is its lease entry there,
    // and its run item is written when it ends (readers merge the two).
    std::erase_if(next.queue,
                  [&](const PlaceEntry& p) { return p.execution_id == req.execution_id; });
    e.token = ++next.last_token;
    LeaseEntry lease{.run = {e, run_sort_key(e.token), stamp()},
                     .rv = nonce(),
                     .ttl = req.ttl,
                     .expires_at = epoch_seconds(wall + req.ttl)};
    next.leases.push_back(lease);
    ++next.version;
    MonoTime sent;
    AEC_ASSIGN_OR_RETURN(Commit c, commit(req.key, r.rec, next, sent));
    if (c == Commit::Conflict) {
      again(fresh, attempt);
      continue;
    }
    if (url_.python) {
      // The grant holds when the lock item is still as read: else the Python library took it
      // meanwhile, the lease is withdrawn, and the caller is answered as the item is now.
      LockItem held{.exists = true,
                    .created_at = python_time(wall),
                    .updated_at = python_time(wall),
                    .token = e.token,
                    .execution_id = e.id,
                    .rv = nonce(),
                    .ttl = req.ttl,
                    .owner = fmt::format("{}:{}", e.owner.host, e.owner.pid),
                    .expires_at = lease.expires_at};
      Result<bool> put = put_lock(req.key, lock, held);
      if (!put || !*put) {
        Status back = withdraw(req.key, e.token);
        if (!put) {
          return put.error();
        }
        AEC_RETURN_IF_ERROR(back);
        fresh = true;
        backoff(attempt);
        continue;
      }
    }
    sightings_.wrote_lease(req.key, e.token, lease.rv, sent);
    note_place(req.key, req.execution_id, false);
    for (const RunRecord& run : lost) {
      put_run_after_commit(req.key, run, RunWrite::IfAbsent);
    }
    result.lease =
        Lease{.key = req.key, .execution_id = req.execution_id, .token = e.token, .ttl = req.ttl};
    result.version = next.version;
    return result;
  }
  return contended(req.key);
}

Result<LeaseOutcome> DynamoStore::renew(std::string_view key_view, std::int64_t token,
                                        milliseconds ttl) {
  AEC_RETURN_IF_ERROR(check_lease_args(key_view, token, ttl));
  AEC_RETURN_IF_ERROR(check_key(key_view));
  std::string key(key_view);
  if (url_.python) {
    AEC_ASSIGN_OR_RETURN(bool held, touch_lock(key, token, ttl));
    if (!held) {
      // The lock item is gone (the Python library's clean-up deletes items by age, live or
      // not) or holds another run: this lease no longer keeps the Python library out.
      Result<LeaseOutcome> ended =
          release_state(key, token,
                        Outcome{.status = ExecutionStatus::Lost,
                                .reason = "the Python library's lock item was deleted or taken"});
      (void)ended;  // lost either way; the state item's lease lapses if this write failed
      return LeaseOutcome::Lost;
    }
  }
  return renew_state(key, token, ttl);
}

Result<LeaseOutcome> DynamoStore::renew_state(const std::string& key, std::int64_t token,
                                              milliseconds ttl) {
  bool fresh = false;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    AEC_ASSIGN_OR_RETURN(Read r, state_for(key, fresh));
    KeyRecord next = r.rec;
    Judged j = judge(key, next, clock_->monotonic_now());
    auto mine = find_lease(next, token);
    if (mine == next.leases.end()) {
      if (!fresh) {
        fresh = true;  // "lost" comes from a fresh read
        continue;
      }
      return LeaseOutcome::Lost;  // released, taken, or expired: the next acquire reaps it
    }
    mine->rv = nonce();
    mine->ttl = ttl;
    mine->expires_at = epoch_seconds(clock_->system_now() + ttl);
    std::string rv = mine->rv;
    std::vector<RunRecord> lost = expire(next, j, clock_->system_now());
    MonoTime sent;
    AEC_ASSIGN_OR_RETURN(Commit c, commit(key, r.rec, next, sent));
    if (c == Commit::Conflict) {
      again(fresh, attempt);
      continue;
    }
    sightings_.wrote_lease(key, token, rv, sent);
    for (const RunRecord& run : lost) {
      put_run_after_commit(key, run, RunWrite::IfAbsent);
    }
    return LeaseOutcome::Ok;
  }
  return contended(key);
}

Result<LeaseOutcome> DynamoStore::release(std::string_view key_view, std::int64_t token,
                                          const Outcome& outcome) {
  AEC_RETURN_IF_ERROR(check_release_args(key_view, token, outcome));
  AEC_RETURN_IF_ERROR(check_key(key_view));
  std::string key(key_view);
  if (!url_.python) {
    return release_state(key, token, outcome);
  }
  // The lock item first: until the state item frees the slot, no caller of aec's takes it.
  AEC_ASSIGN_OR_RETURN(bool held,
                       end_lock(key, token, outcome.status == ExecutionStatus::Succeeded));
  if (held) {
    return release_state(key, token, outcome);
  }
  Outcome lost = outcome;
  lost.status = ExecutionStatus::Lost;
  lost.reason = "the Python library's lock item was deleted or taken";
  AEC_RETURN_IF_ERROR(release_state(key, token, lost).status());
  return LeaseOutcome::Lost;
}

Result<LeaseOutcome> DynamoStore::release_state(const std::string& key, std::int64_t token,
                                                const Outcome& outcome) {
  bool fresh = false;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    AEC_ASSIGN_OR_RETURN(Read r, state_for(key, fresh));
    KeyRecord next = r.rec;
    Judged j = judge(key, next, clock_->monotonic_now());
    SysTime wall = clock_->system_now();
    std::vector<RunRecord> lost = expire(next, j, wall);
    auto mine = find_lease(next, token);
    if (mine == next.leases.end()) {
      if (!fresh) {
        fresh = true;  // "lost" comes from a fresh read
        continue;
      }
      // Not held (any more). An expired lease of this token (or any other) is reaped now and
      // recorded Lost; a lease already gone had its end written by whoever removed it.
      if (!lost.empty()) {
        MonoTime sent;
        AEC_ASSIGN_OR_RETURN(Commit c, commit(key, r.rec, next, sent));
        if (c == Commit::Conflict) {
          again(fresh, attempt);
          continue;
        }
        for (RunRecord& run : lost) {
          if (run.execution.token == token) {
            run.execution.exit_code = outcome.exit_code;
          }
          put_run_after_commit(key, run, RunWrite::IfAbsent);
        }
      }
      return LeaseOutcome::Lost;
    }
    RunRecord ended = mine->run;
    next.leases.erase(mine);
    ended.execution.status = outcome.status;
    ended.execution.exit_code = outcome.exit_code;
    ended.execution.reason = outcome.reason;
    ended.execution.ended_at = wall;
    next.last_ended = ended;
    if (outcome.status == ExecutionStatus::Succeeded) {
      next.last_succeeded = ended;
    }
    ++next.version;
    MonoTime sent;
    AEC_ASSIGN_OR_RETURN(Commit c, commit(key, r.rec, next, sent));
    if (c == Commit::Conflict) {
      again(fresh, attempt);
      continue;
    }
    for (const RunRecord& run : lost) {
      put_run_after_commit(key, run, RunWrite::IfAbsent);
    }
    put_run_after_commit(key, ended, RunWrite::Always);
    return LeaseOutcome::Ok;
  }
  return contended(key);
}

Result<ForceReleaseResult> DynamoStore::force_release(std::string_view key_view,
                                                      std::string_view reason, const Owner& by) {
  AEC_RETURN_IF_ERROR(check_key(key_view));
  std::string key(key_view);
  std::optional<Execution> python_run;
  if (url_.python) {
    // The lock item goes first, whoever holds it: a run of the Python library's never ends on
    // its own (it does not renew), and this is how an operator frees its key.
    AEC_ASSIGN_OR_RETURN(python_run, drop_lock(key));
  }
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    AEC_ASSIGN_OR_RETURN(Read r, read_state(key));
    KeyRecord next = r.rec;
    Judged j = judge(key, next, clock_->monotonic_now());
    SysTime wall = clock_->system_now();
    std::vector<RunRecord> lost = expire(next, j, wall);
    ForceReleaseResult result;
    std::vector<RunRecord> cancelled;
    for (const LeaseEntry& l : next.leases) {
      RunRecord run = l.run;
      run.execution.status = ExecutionStatus::Cancelled;
      run.execution.ended_at = wall;
      run.execution.reason = forced_reason(reason, by);
      next.last_ended = run;
      result.released.push_back(run.execution);
      cancelled.push_back(std::move(run));
    }
    if (!cancelled.empty()) {
      next.leases.clear();
      ++next.version;
    }
    if (!cancelled.empty() || !lost.empty() || j.places_lapsed > 0) {
      MonoTime sent;
      AEC_ASSIGN_OR_RETURN(Commit c, commit(key, r.rec, next, sent));
      if (c == Commit::Conflict) {
        backoff(attempt);
        continue;
      }
    }
    for (const RunRecord& run : lost) {
      put_run_after_commit(key, run, RunWrite::IfAbsent);
    }
    for (const RunRecord& run : cancelled) {
      put_run_after_commit(key, run, RunWrite::Always);
    }
    if (python_run) {
      python_run->status = ExecutionStatus::Cancelled;
      python_run->ended_at = wall;
      python_run->reason = forced_reason(reason, by);
      result.released.push_back(*python_run);
    }
    result.version = next.version;
    return result;
  }
  return contended(key);
}

Status DynamoStore::leave_queue(std::string_view key_view, std::string_view execution_id) {
  AEC_RETURN_IF_ERROR(check_key(key_view));
  std::string key(key_view);
  note_place(key, std::string(execution_id), false);
  // The version moves: the next in line may be free to go now.
  return edit_state(key, [&](KeyRecord& rec) {
    return std::erase_if(rec.queue,
                         [&](const PlaceEntry& p) { return p.execution_id == execution_id; }) > 0;
  });
}

}  // namespace aws

Result<std::unique_ptr<Store>> open_dynamodb_store(std::string_view url,
                                                   const StoreOptions& options) {
  AEC_ASSIGN_OR_RETURN(aws::DynamoUrl parsed, aws::parse_dynamo_url(url));
  aws::CredentialSources sources = aws::with_defaults({.profile = parsed.profile});
  AEC_ASSIGN_OR_RETURN(std::string region, aws::find_region(parsed.region, sources));
  auto credentials = std::make_shared<aws::CredentialCache>(sources, options.clock);
  auto client = std::make_unique<aws::DynamoClient>(aws::DynamoOptions{
      .endpoint = aws::endpoint_for(parsed, region), .region = region, .credentials = credentials});
  // layout=aec-python: the Python library's table has its primary_key alone.
  aws::TableLayout layout{.partition_key = parsed.key,
                          .sort_key = parsed.python ? "" : std::string(aws::kSortKey),
                          .ttl_attribute = "expires_at"};
  AEC_RETURN_IF_ERROR(aws::ensure_table(*client, parsed.table, layout,
                                        parsed.create && options.create, std::chrono::seconds(30)));
  std::unique_ptr<Store> store =
      std::make_unique<aws::DynamoStore>(std::move(parsed), std::move(client), options);
  return store;
}

}  // namespace aec
