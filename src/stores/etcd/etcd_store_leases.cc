// The etcd store: renew, release, force_release and leave_queue (see etcd_store.h).
#include <fmt/format.h>

#include <aec/key.h>

#include "core/status_macros.h"
#include "core/store_checks.h"
#include "stores/etcd/etcd_store_impl.h"
#include "stores/etcd/lease_once.h"
#include "stores/etcd/txn_ops.h"

namespace aec::etcd {
namespace {

Status contention(const Client& client, std::string_view what, std::string_view key) {
  return unavailable(fmt::format("{}: {} of '{}' lost to concurrent writers {} times",
                                 client.name(), what, key, kMaxAttempts));
}

}  // namespace

// With the real clock and an unchanged ttl, one keep-alive of the lease's own etcd lease; then
// a read that the key still holds that lease (a release deletes the key before it revokes the
// etcd lease, and a keep-alive in between must not count). Otherwise the key moves to a new etcd
// lease of the new TTL (and, with a hand-moved clock, gets its new expires_ns), in a
// transaction that commits only if the key is as read: an expired lease is never revived.
Result<LeaseOutcome> EtcdStore::renew(std::string_view key, std::int64_t token, milliseconds ttl) {
  AEC_RETURN_IF_ERROR(check_lease_args(key, token, ttl));
  const std::string lease_key = layout_.lease(key, token);
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    AEC_ASSIGN_OR_RETURN(RangeResponse read, client_->range(lease_key));
    if (read.kvs().empty()) {
      return LeaseOutcome::Lost;
    }
    const KeyValue& kv = read.kvs(0);
    AEC_ASSIGN_OR_RETURN(LeaseValue value, lease_from_text(kv.value()));
    const StoreTime t = now();
    if (!t.live(value.expires_ns)) {
      return LeaseOutcome::Lost;
    }
    if (!manual_ && value.ttl == ttl) {
      AEC_ASSIGN_OR_RETURN(std::int64_t left, keep_alive_->keep_alive(kv.lease()));
      if (left <= 0) {
        return LeaseOutcome::Lost;
      }
      AEC_ASSIGN_OR_RETURN(RangeResponse again, client_->range(lease_key));
      bool held = !again.kvs().empty() && again.kvs(0).lease() == kv.lease();
      return held ? LeaseOutcome::Ok : LeaseOutcome::Lost;
    }
    AEC_ASSIGN_OR_RETURN(LeaseGrantResponse lease, client_->lease_grant(etcd_ttl(ttl)));
    value.ttl = ttl;
    value.expires_ns = expiry(ttl, t);
    WritePlan plan;
    *plan.txn.add_compare() = compare_mod(lease_key, Compare::EQUAL, kv.mod_revision());
    plan.put(lease_key, to_text(value), lease.id());
    plan.revoke_on_retry.push_back(lease.id());
    plan.revoke_after.push_back(kv.lease());
    AEC_ASSIGN_OR_RETURN(bool committed, commit(*client_, plan));
    if (committed) {
      return LeaseOutcome::Ok;
    }
  }
  return contention(*client_, "renew", key);
}

// A live lease: its key deleted, its execution ended as `outcome` says, meta moved. A token
// without a live lease: the key is reaped, which records that token's execution Lost if it was
// still running; nothing is written when there is nothing to record.
Result<LeaseOutcome> EtcdStore::release(std::string_view key, std::int64_t token,
                                        const Outcome& outcome) {
  AEC_RETURN_IF_ERROR(check_release_args(key, token, outcome));
  bool cached = false;
  AEC_ASSIGN_OR_RETURN(KeySnapshot snap, release_snapshot(key, token, cached));
  // A write that failed and may have been applied: the history entry it wrote, and when.
  std::optional<std::pair<std::int64_t, SysTime>> unsure;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    const StoreTime t = now();
    const LeaseEntry* l = snap.lease(token);
    const bool live = l != nullptr && t.live(l->value.expires_ns);
    const bool running = std::any_of(snap.meta.running.begin(), snap.meta.running.end(),
                                     [&](const auto& r) { return r.first == token; });
    if (!live && !running) {
      if (unsure) {  // gone: by our write, if the history shows what it wrote
        AEC_ASSIGN_OR_RETURN(auto entries,
                             read_entries(*client_, layout_, key, {unsure->first}, snap.revision));
        // History keeps milliseconds.
        const auto wrote = std::chrono::time_point_cast<milliseconds>(unsure->second);
        if (!entries.empty() && entries[0].second.status == outcome.status &&
            entries[0].second.ended_at == wrote) {
          return LeaseOutcome::Ok;
        }
      }
      return LeaseOutcome::Lost;
    }
    // Nothing is granted or numbered: a place taken at the tail meanwhile does not matter.
    WritePlan plan = WritePlan::guarded(layout_, snap, /*counters=*/false);
    const SysTime wall = clock_->system_now();
    AEC_RETURN_IF_ERROR(plan_reap(*client_, layout_, snap, t, wall, plan));
    if (live) {
      Execution e = l->value.execution;
      e.status = outcome.status;
      e.exit_code = outcome.exit_code;
      e.reason = outcome.reason;
      e.ended_at = wall;
      plan.end(layout_, token, l->value.seq, e);
      plan.erase(l->etcd_key);
      plan.spare_after.emplace_back(l->lease_id, etcd_ttl(l->value.ttl));
    }
    plan.finish(layout_, key);
    Result<bool> committed = commit_plan(plan);
    if (!committed) {
      if (committed.error().code() != Code::Unavailable) {
        return committed.error();
      }
      // The member failed (a leader election, a dead member): the write may or may not have
      // been applied. Read the key back (reads wait out an election) and go on from there: the
      // guarded write can be sent again, and is applied at most once.
      if (live) {
        unsure.emplace(l->value.seq, wall);
      }
      AEC_ASSIGN_OR_RETURN(snap, read_snapshot(*client_, layout_, key));
      cached = false;
      continue;
    }
    if (*committed) {
      return live ? LeaseOutcome::Ok : LeaseOutcome::Lost;
    }
    // The key changed since the snapshot: decide again on what the write read back.
    decide_again(snap, cached, std::move(*plan.after), attempt);
  }
  return contention(*client_, "release", key);
}

// One transaction when the token holds a live lease: the release is planned on the snapshot,
// the acquire decided on the state it leaves (that lease gone), and both commit together under
// the snapshot's compares, so no other caller can take the freed slot in between. Otherwise
// (nothing to free) the release and the acquire run one after the other.
Result<Handoff> EtcdStore::release_and_acquire(std::string_view key, std::int64_t token,
                                               const Outcome& outcome, const AcquireRequest& next) {
  AEC_RETURN_IF_ERROR(check_release_args(key, token, outcome));
  AEC_RETURN_IF_ERROR(check_handoff(key, next));
  AEC_RETURN_IF_ERROR(check_acquire_request(next));
  bool cached = false;
  AEC_ASSIGN_OR_RETURN(KeySnapshot snap, snapshot(key, !next.once, cached));
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    const StoreTime t = now();
    const LeaseEntry* l = snap.lease(token);
    if (l == nullptr || !t.live(l->value.expires_ns)) {
      if (cached) {  // answer from a fresh read
        AEC_ASSIGN_OR_RETURN(snap, snapshot(key, false, cached));
        continue;
      }
      return Store::release_and_acquire(key, token, outcome, next);
    }
    WritePlan plan = WritePlan::guarded(layout_, snap);
    Execution e = l->value.execution;
    e.status = outcome.status;
    e.exit_code = outcome.exit_code;
    e.reason = outcome.reason;
    e.ended_at = clock_->system_now();
    plan.end(layout_, token, l->value.seq, e);
    plan.erase(l->etcd_key);
    plan.spare_after.emplace_back(l->lease_id, etcd_ttl(l->value.ttl));
    KeySnapshot after = snap;
    std::erase_if(after.leases, [&](const LeaseEntry& x) { return x.token == token; });
    after.meta = plan.meta;
    AEC_ASSIGN_OR_RETURN(Decision d, decide(next, after, t));
    std::optional<KeySnapshot> read_back;
    std::optional<MonoTime> asked;  // one write, no read before it: held stays 0 (from the send)
    AEC_ASSIGN_OR_RETURN(
        std::optional<AcquireResult> done,
        write_acquire(next, after, t, std::move(d), std::move(plan), read_back, asked));
    if (done) {
      return Handoff{.released = LeaseOutcome::Ok, .next = std::move(*done)};
    }
    decide_again(snap, cached, std::move(*read_back), attempt);
  }
  return contention(*client_, "release_and_acquire", key);
}

Result<ForceReleaseResult> EtcdStore::force_release(std::string_view key, std::string_view reason,
                                                    const Owner& by) {
  AEC_RETURN_IF_ERROR(validate_key(key));
  const std::string why = forced_reason(reason, by);
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    AEC_ASSIGN_OR_RETURN(KeySnapshot snap, read_snapshot(*client_, layout_, key));
    ForceReleaseResult result{.version = snap.version};
    if (!snap.exists) {
      return result;
    }
    const StoreTime t = now();
    WritePlan plan = WritePlan::guarded(layout_, snap);
    const SysTime wall = clock_->system_now();
    AEC_RETURN_IF_ERROR(plan_reap(*client_, layout_, snap, t, wall, plan));
    for (const LeaseEntry* l : snap.live_leases(t)) {
      Execution e = l->value.execution;
      e.status = ExecutionStatus::Cancelled;
      e.reason = why;
      e.ended_at = wall;
      plan.end(layout_, l->token, l->value.seq, e);
      plan.erase(l->etcd_key);
      plan.revoke_after.push_back(l->lease_id);
      result.released.push_back(std::move(e));
    }
    if (!plan.meta_changed) {
      return result;
    }
    plan.finish(layout_, key);
    AEC_ASSIGN_OR_RETURN(bool committed, commit(*client_, plan));
    if (committed) {
      result.version = snap.version + 1;
      return result;
    }
    backoff(attempt);
  }
  return contention(*client_, "force release", key);
}

// Moves the key's version too: the next in line may be free to go now, and waiters wake.
Status EtcdStore::leave_queue(std::string_view key, std::string_view execution_id) {
  AEC_RETURN_IF_ERROR(validate_key(key));
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    AEC_ASSIGN_OR_RETURN(KeySnapshot snap, read_snapshot(*client_, layout_, key));
    WritePlan plan = WritePlan::guarded(layout_, snap);
    for (const PlaceEntry& p : snap.places) {
      if (p.value.execution_id == execution_id) {
        plan.erase(p.etcd_key);
        plan.revoke_after.push_back(p.lease_id);
        plan.meta_changed = true;
      }
    }
    if (!plan.meta_changed) {
      return Status::ok();
    }
    plan.finish(layout_, key);
    AEC_ASSIGN_OR_RETURN(bool committed, commit(*client_, plan));
    if (committed) {
      return Status::ok();
    }
    backoff(attempt);
  }
  return contention(*client_, "leave_queue", key);
}

}  // namespace aec::etcd
