#include "stores/memory/memory_store.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include <aec/key.h>

#include "core/store_checks.h"

namespace aec {
namespace {

struct LeaseRec {
  std::int64_t token = 0;
  std::int64_t seq = 0;  // the execution's place in history_
  MonoTime expires{};
};

struct QueueRec {
  std::string execution_id;
  MonoTime expires{};
};

struct KeyRec {
  std::int64_t last_token = 0;
  std::int64_t version = 0;
  std::vector<LeaseRec> leases;  // oldest first
  std::vector<QueueRec> queue;   // waiting callers, first in line first
};

class MemoryStore final : public Store {
 public:
  explicit MemoryStore(std::shared_ptr<Clock> clock) : clock_(std::move(clock)) {}

  Result<AcquireResult> acquire(const AcquireRequest& req) override;
  Result<LeaseOutcome> renew(std::string_view key, std::int64_t token, milliseconds ttl) override;
  Result<LeaseOutcome> release(std::string_view key, std::int64_t token,
                               const Outcome& outcome) override;
  Result<KeyState> get(std::string_view key) override;
  Result<std::vector<Execution>> list(const ListFilter& filter) override;
  Result<std::int64_t> wait(std::string_view key, std::int64_t version, MonoTime deadline,
                            std::stop_token stop) override;
  Result<ForceReleaseResult> force_release(std::string_view key, std::string_view reason,
                                           const Owner& by) override;
  Result<PurgeResult> purge(const PurgeRequest& req) override;
  Status leave_queue(std::string_view key, std::string_view execution_id) override;
  std::string url() const override { return "memory:"; }

 private:
  // All private helpers expect mu_ held.
  KeyRec& key_rec(std::string_view key);
  // Sets result to Busy when the slots are taken or the queue holds the caller back, keeping
  // the caller's queue place when it asked to queue.
  void check_busy(const AcquireRequest& req, KeyRec& rec, MonoTime now, AcquireResult& result);
  int reap_expired(const std::string& key, KeyRec& rec, MonoTime now);
  void end_execution(std::int64_t seq, ExecutionStatus status, std::optional<int> exit_code,
                     std::string reason);
  void bump(const std::string& key, KeyRec& rec);
  std::int64_t append(Execution e);
  std::vector<Holder> holders(const KeyRec& rec, MonoTime now) const;
  bool is_live(const Execution& e, MonoTime now) const;

  std::shared_ptr<Clock> clock_;
  std::mutex mu_;
  std::map<std::string, KeyRec, std::less<>> keys_;
  std::map<std::int64_t, Execution> history_;  // by sequence number, oldest first
  std::int64_t next_seq_ = 1;
  std::multimap<std::string, std::stop_source*, std::less<>> waiters_;
};

KeyRec& MemoryStore::key_rec(std::string_view key) {
  auto it = keys_.find(key);
  if (it == keys_.end()) {
    it = keys_.emplace(std::string(key), KeyRec{}).first;
  }
  return it->second;
}

int MemoryStore::reap_expired(const std::string& key, KeyRec& rec, MonoTime now) {
  int reaped = 0;
  std::erase_if(rec.leases, [&](const LeaseRec& l) {
    if (l.expires > now) {
      return false;
    }
    end_execution(l.seq, ExecutionStatus::Lost, std::nullopt, "lease expired");
    ++reaped;
    return true;
  });
  if (reaped > 0) {
    bump(key, rec);
  }
  return reaped;
}

void MemoryStore::end_execution(std::int64_t seq, ExecutionStatus status,
                                std::optional<int> exit_code, std::string reason) {
  auto it = history_.find(seq);
  if (it == history_.end() || it->second.status != ExecutionStatus::Running) {
    return;
  }
  it->second.status = status;
  it->second.exit_code = exit_code;
  it->second.reason = std::move(reason);
  it->second.ended_at = clock_->system_now();
}

void MemoryStore::bump(const std::string& key, KeyRec& rec) {
  ++rec.version;
  auto [first, last] = waiters_.equal_range(key);
  for (auto it = first; it != last; ++it) {
    it->second->request_stop();
  }
}

std::int64_t MemoryStore::append(Execution e) {
  std::int64_t seq = next_seq_++;
  history_.emplace(seq, std::move(e));
  return seq;
}

std::vector<Holder> MemoryStore::holders(const KeyRec& rec, MonoTime now) const {
  std::vector<Holder> out;
  for (const LeaseRec& l : rec.leases) {
    if (l.expires <= now) {
      continue;  // expired, not yet reaped
    }
    out.push_back({history_.at(l.seq), std::chrono::ceil<milliseconds>(
                                           std::max(l.expires - now, MonoTime::duration{}))});
  }
  return out;
}

void MemoryStore::check_busy(const AcquireRequest& req, KeyRec& rec, MonoTime now,
                             AcquireResult& result) {
  std::erase_if(rec.queue, [&](const QueueRec& q) { return q.expires <= now; });
  auto mine = std::find_if(rec.queue.begin(), rec.queue.end(),
                           [&](const QueueRec& q) { return q.execution_id == req.execution_id; });
  auto ahead = mine - rec.queue.begin();
  int free = req.limit - static_cast<int>(rec.leases.size());
  if (free > 0 && ahead < free) {
    return;  // a free slot, and not more callers in line ahead than free slots
  }
  result.outcome = AcquireOutcome::Busy;
  result.holders = holders(rec, now);
  result.waiting_ahead = static_cast<int>(ahead);
  MonoTime earliest = MonoTime::max();
  if (free <= 0) {
    for (const LeaseRec& l : rec.leases) {
      earliest = std::min(earliest, l.expires);
    }
  } else {
    for (auto q = rec.queue.begin(); q != mine; ++q) {
      earliest = std::min(earliest, q->expires);
    }
  }
  result.retry_in = std::chrono::ceil<milliseconds>(earliest - now);
  if (!req.queue) {
    return;
  }
  if (mine == rec.queue.end()) {
    rec.queue.push_back({req.execution_id, now + req.queue_ttl});
  } else {
    mine->expires = now + req.queue_ttl;
  }
}

Status MemoryStore::leave_queue(std::string_view key, std::string_view execution_id) {
  if (Status s = validate_key(key); !s.is_ok()) {
    return s;
  }
  std::lock_guard lock(mu_);
  KeyRec& rec = key_rec(key);
  if (std::erase_if(rec.queue, [&](const QueueRec& q) { return q.execution_id == execution_id; })) {
    bump(std::string(key), rec);  // the next in line may be free to go now
  }
  return Status::ok();
}

Result<AcquireResult> MemoryStore::acquire(const AcquireRequest& req) {
  if (Status s = check_acquire_request(req); !s.is_ok()) {
    return s;
  }
  std::lock_guard lock(mu_);
  MonoTime now = clock_->monotonic_now();
  KeyRec& rec = key_rec(req.key);
  reap_expired(req.key, rec, now);
  AcquireResult result{.outcome = AcquireOutcome::Granted};  // unless a check below says no
  Execution e{.id = req.execution_id,
              .key = req.key,
              .owner = req.owner,
              .started_at = clock_->system_now(),
              .labels = req.labels};
  if (req.once) {
    for (auto it = history_.rbegin(); it != history_.rend(); ++it) {
      if (it->second.key == req.key && it->second.status == ExecutionStatus::Succeeded) {
        result.outcome = AcquireOutcome::Done;
        result.done_by = it->second;
        break;
      }
    }
  }
  if (!result.done_by) {
    check_busy(req, rec, now, result);
  }
  if (result.outcome != AcquireOutcome::Granted) {
    if (req.record_skipped) {
      e.status = ExecutionStatus::Skipped;
      e.ended_at = e.started_at;
      e.reason = skip_reason(result);
      append(std::move(e));
      bump(req.key, rec);
    }
    result.version = rec.version;
    return result;
  }
  std::erase_if(rec.queue, [&](const QueueRec& q) { return q.execution_id == req.execution_id; });
  e.token = ++rec.last_token;
  std::int64_t seq = append(e);
  rec.leases.push_back({e.token, seq, now + req.ttl});
  bump(req.key, rec);
  result.lease =
      Lease{.key = req.key, .execution_id = req.execution_id, .token = e.token, .ttl = req.ttl};
  result.version = rec.version;
  return result;
}

Result<LeaseOutcome> MemoryStore::renew(std::string_view key, std::int64_t token,
                                        milliseconds ttl) {
  if (Status s = check_lease_args(key, token, ttl); !s.is_ok()) {
    return s;
  }
  std::lock_guard lock(mu_);
  MonoTime now = clock_->monotonic_now();
  auto it = keys_.find(key);
  if (it == keys_.end()) {
    return LeaseOutcome::Lost;
  }
  reap_expired(it->first, it->second, now);
  for (LeaseRec& l : it->second.leases) {
    if (l.token == token) {
      l.expires = now + ttl;
      return LeaseOutcome::Ok;
    }
  }
  return LeaseOutcome::Lost;
}

Result<LeaseOutcome> MemoryStore::release(std::string_view key, std::int64_t token,
                                          const Outcome& outcome) {
  if (Status s = check_release_args(key, token, outcome); !s.is_ok()) {
    return s;
  }
  std::lock_guard lock(mu_);
  auto it = keys_.find(key);
  if (it == keys_.end()) {
    return LeaseOutcome::Lost;
  }
  KeyRec& rec = it->second;
  reap_expired(it->first, rec, clock_->monotonic_now());
  auto lease = std::find_if(rec.leases.begin(), rec.leases.end(),
                            [&](const LeaseRec& l) { return l.token == token; });
  if (lease == rec.leases.end()) {
    // Stale token: record its own execution Lost if nobody has yet; touch no other lease.
    for (auto& [seq, e] : history_) {
      if (e.key == key && e.token == token && e.status == ExecutionStatus::Running) {
        end_execution(seq, ExecutionStatus::Lost, outcome.exit_code, "lease expired");
        bump(it->first, rec);
      }
    }
    return LeaseOutcome::Lost;
  }
  end_execution(lease->seq, outcome.status, outcome.exit_code, outcome.reason);
  rec.leases.erase(lease);
  bump(it->first, rec);
  return LeaseOutcome::Ok;
}

Result<KeyState> MemoryStore::get(std::string_view key) {
  if (Status s = validate_key(key); !s.is_ok()) {
    return s;
  }
  std::lock_guard lock(mu_);
  KeyState state{.key = std::string(key)};
  auto it = keys_.find(key);
  if (it == keys_.end()) {
    return state;
  }
  MonoTime now = clock_->monotonic_now();
  state.holders = holders(it->second, now);
  state.last_token = it->second.last_token;
  state.version = it->second.version;
  for (const QueueRec& q : it->second.queue) {
    if (q.expires > now) {  // a lapsed place is left for the next write to delete
      state.queue.push_back(q.execution_id);
    }
  }
  for (auto h = history_.rbegin(); h != history_.rend(); ++h) {
    if (h->second.key == key && is_ended(h->second.status)) {
      state.last_ended = h->second;
      break;
    }
  }
  return state;
}

Result<std::vector<Execution>> MemoryStore::list(const ListFilter& filter) {
  std::lock_guard lock(mu_);
  MonoTime now = clock_->monotonic_now();
  std::vector<Execution> out;
  std::size_t skip = filter.offset;
  for (auto it = history_.rbegin(); it != history_.rend() && out.size() < filter.limit; ++it) {
    Execution e = it->second;
    if (e.status == ExecutionStatus::Running && !is_live(e, now)) {
      e.status = ExecutionStatus::Lost;  // expired, not reaped yet: shown as what it is
      e.reason = "lease expired";
    }
    if (!matches(filter, e)) {
      continue;
    }
    if (skip > 0) {
      --skip;
      continue;
    }
    out.push_back(std::move(e));
  }
  return out;
}

bool MemoryStore::is_live(const Execution& e, MonoTime now) const {
  auto it = keys_.find(e.key);
  if (it == keys_.end()) {
    return false;
  }
  return std::any_of(it->second.leases.begin(), it->second.leases.end(),
                     [&](const LeaseRec& l) { return l.token == e.token && l.expires > now; });
}

Result<std::int64_t> MemoryStore::wait(std::string_view key, std::int64_t version,
                                       MonoTime deadline, std::stop_token stop) {
  if (Status s = validate_key(key); !s.is_ok()) {
    return s;
  }
  // Changes to the key request `wake`; so does the caller's stop token. The clock's interruptible
  // sleep then serves both the deadline and the wake-up, for the real and the manual clock alike.
  std::stop_source wake;
  std::stop_callback forward(stop, [&] { wake.request_stop(); });
  std::multimap<std::string, std::stop_source*>::iterator reg;
  {
    std::lock_guard lock(mu_);
    KeyRec& rec = key_rec(key);
    if (rec.version != version) {
      return rec.version;
    }
    reg = waiters_.emplace(std::string(key), &wake);
  }
  clock_->sleep_until(deadline, wake.get_token());
  std::lock_guard lock(mu_);
  waiters_.erase(reg);
  std::int64_t now_version = key_rec(key).version;
  if (now_version == version && stop.stop_requested()) {
    return Status(Code::Cancelled, "wait cancelled");
  }
  return now_version;
}

Result<ForceReleaseResult> MemoryStore::force_release(std::string_view key, std::string_view reason,
                                                      const Owner& by) {
  if (Status s = validate_key(key); !s.is_ok()) {
    return s;
  }
  std::lock_guard lock(mu_);
  KeyRec& rec = key_rec(key);
  reap_expired(std::string(key), rec, clock_->monotonic_now());
  ForceReleaseResult result;
  for (const LeaseRec& l : rec.leases) {
    end_execution(l.seq, ExecutionStatus::Cancelled, std::nullopt, forced_reason(reason, by));
    result.released.push_back(history_.at(l.seq));
  }
  if (!rec.leases.empty()) {
    rec.leases.clear();
    bump(std::string(key), rec);
  }
  result.version = rec.version;
  return result;
}

Result<PurgeResult> MemoryStore::purge(const PurgeRequest& req) {
  if (Status s = check_purge_request(req); !s.is_ok()) {
    return s;
  }
  std::lock_guard lock(mu_);
  PurgeResult result;
  MonoTime now = clock_->monotonic_now();
  for (auto& [key, rec] : keys_) {
    result.leases_expired += reap_expired(key, rec, now);
    std::erase_if(rec.queue, [&](const QueueRec& q) { return q.expires <= now; });
  }
  SysTime cutoff = clock_->system_now() - req.older_than;
  std::set<std::string> touched;
  std::erase_if(history_, [&](const auto& entry) {
    const Execution& e = entry.second;
    bool old = e.ended_at && *e.ended_at < cutoff;
    bool wanted = req.statuses.empty() || std::find(req.statuses.begin(), req.statuses.end(),
                                                    e.status) != req.statuses.end();
    if (!is_ended(e.status) || !old || !wanted) {
      return false;
    }
    touched.insert(e.key);
    ++result.executions_deleted;
    return true;
  });
  for (const std::string& key : touched) {
    bump(key, key_rec(key));
  }
  return result;
}

}  // namespace

std::unique_ptr<Store> make_memory_store(std::shared_ptr<Clock> clock) {
  return std::make_unique<MemoryStore>(std::move(clock));
}

}  // namespace aec
