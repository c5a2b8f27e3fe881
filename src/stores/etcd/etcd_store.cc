#include "stores/etcd/etcd_store.h"

#include <algorithm>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "core/status_macros.h"
#include "core/store_checks.h"
#include "stores/etcd/deadline.h"
#include "stores/etcd/etcd_store_impl.h"
#include "stores/etcd/lease_once.h"
#include "stores/etcd/txn_ops.h"
#include "stores/etcd/watch.h"

namespace aec {
namespace etcd {

void backoff(int attempt) {
  thread_local std::minstd_rand random{std::random_device{}()};
  int cap = std::min(50, 1 + attempt * 2);
  std::this_thread::sleep_for(
      std::chrono::milliseconds(std::uniform_int_distribution<int>(0, cap)(random)));
}

void decide_again(KeySnapshot& snap, bool& cached, KeySnapshot after, int attempt) {
  if (!cached) {
    backoff(attempt);
  }
  cached = false;
  snap = std::move(after);
}

EtcdStore::EtcdStore(EtcdUrl url, std::unique_ptr<Client> client, const StoreOptions& options)
    : url_(std::move(url)),
      client_(std::move(client)),
      keep_alive_(std::make_unique<KeepAliveStream>(*client_)),
      layout_(url_.prefix),
      clock_(options.clock),
      manual_(options.clock.get() != real_clock().get()) {}

// How many writes of one acquire may fail with an unknown outcome (each read back) before the
// acquire reports the failure.
constexpr int kMaxUnsureWrites = 3;

// At most this many spare etcd leases are kept; more are revoked.
constexpr std::size_t kMaxSpareLeases = 256;

Result<std::int64_t> EtcdStore::take_lease(std::chrono::seconds ttl) {
  for (;;) {
    std::int64_t id = 0;
    {
      std::lock_guard lock(spare_mu_);
      auto it = std::find_if(spare_.begin(), spare_.end(),
                             [&](const auto& s) { return s.second == ttl; });
      if (it == spare_.end()) {
        break;
      }
      id = it->first;
      spare_.erase(it);
    }
    // A keep-alive resets the lease to its full TTL from now, as a grant would.
    Result<std::int64_t> left = keep_alive_->keep_alive(id);
    if (left && *left > 0) {
      return id;
    }
  }
  AEC_ASSIGN_OR_RETURN(LeaseGrantResponse lease, client_->lease_grant(ttl));
  return lease.id();
}

// At most this many keys' snapshots are cached; then the cache starts again empty.
constexpr std::size_t kMaxCachedKeys = 4096;

Result<KeySnapshot> EtcdStore::snapshot(std::string_view key, bool may_cache, bool& cached) {
  if (may_cache) {
    std::lock_guard lock(cache_mu_);
    auto it = cache_.find(std::string(key));
    // A running execution without its lease key must be reaped, which reads history at the
    // snapshot's revision: only a fresh read guarantees that revision is still there.
    if (it != cache_.end() &&
        std::all_of(it->second.snap.meta.running.begin(), it->second.snap.meta.running.end(),
                    [&](const auto& r) { return it->second.snap.lease(r.first) != nullptr; })) {
      cached = true;
      return it->second.snap;
    }
  }
  cached = false;
  AEC_ASSIGN_OR_RETURN(KeySnapshot snap, read_snapshot(*client_, layout_, key));
  remember(snap);
  return snap;
}

// Well under etcd's election timeout (1 s by default): a member that answered this recently
// had a leader, and a release written at once does not wait for a dead one any more often than
// an acquire does.
constexpr auto kFreshForRelease = std::chrono::milliseconds(250);

Result<KeySnapshot> EtcdStore::release_snapshot(std::string_view key, std::int64_t token,
                                                bool& cached) {
  {
    std::lock_guard lock(cache_mu_);
    auto it = cache_.find(std::string(key));
    if (it != cache_.end() && BootClock::now() - it->second.at <= kFreshForRelease) {
      const KeySnapshot& snap = it->second.snap;
      const bool alone =
          snap.leases.size() == 1 && snap.leases[0].token == token && snap.meta.running.size() == 1;
      if (alone) {
        cached = true;
        return snap;
      }
    }
  }
  return snapshot(key, /*may_cache=*/false, cached);
}

void EtcdStore::remember(const KeySnapshot& snap) {
  const MonoTime at = BootClock::now();
  std::lock_guard lock(cache_mu_);
  auto it = cache_.find(snap.key);
  if (it != cache_.end()) {
    if (it->second.snap.revision < snap.revision) {
      it->second = {snap, at};
    }
    return;
  }
  if (cache_.size() >= kMaxCachedKeys) {
    cache_.clear();
  }
  cache_.emplace(snap.key, Cached{snap, at});
}

Result<bool> EtcdStore::commit_plan(WritePlan& plan) {
  Result<bool> committed = commit(*client_, plan);
  if (plan.after) {
    remember(*plan.after);
  }
  if (!committed) {
    // The write may have been applied: its new keys may be on these leases. End them.
    for (const auto& [id, ttl] : plan.spare_on_retry) {
      (void)client_->lease_revoke(id);
    }
    return committed;
  }
  const auto& spare = *committed ? plan.spare_after : plan.spare_on_retry;
  std::vector<std::int64_t> extra;
  {
    std::lock_guard lock(spare_mu_);
    for (const auto& s : spare) {
      if (spare_.size() < kMaxSpareLeases) {
        spare_.push_back(s);
      } else {
        extra.push_back(s.first);
      }
    }
  }
  for (std::int64_t id : extra) {
    (void)client_->lease_revoke(id);
  }
  return committed;
}

StoreTime EtcdStore::now() const {
  if (!manual_) {
    return {};
  }
  return {.manual = true, .now_ns = clock_->monotonic_now().time_since_epoch().count()};
}

std::chrono::seconds EtcdStore::etcd_ttl(milliseconds ttl) const {
  auto s = std::chrono::ceil<std::chrono::seconds>(ttl);
  return manual_ ? s + std::chrono::seconds(60) : std::max(s, std::chrono::seconds(1));
}

std::optional<std::int64_t> EtcdStore::expiry(milliseconds ttl, const StoreTime& t) const {
  if (!t.manual) {
    return std::nullopt;
  }
  return t.now_ns + std::chrono::nanoseconds(ttl).count();
}

milliseconds EtcdStore::remaining(std::int64_t lease_id, std::optional<std::int64_t> expires_ns,
                                  const StoreTime& t) const {
  if (t.manual) {
    auto left = std::chrono::nanoseconds(expires_ns.value_or(t.now_ns) - t.now_ns);
    return std::max(std::chrono::ceil<milliseconds>(left), milliseconds(0));
  }
  Result<LeaseTimeToLiveResponse> r = client_->lease_time_to_live(lease_id);
  if (!r || r->ttl() <= 0) {
    return milliseconds(1);  // expiring now: ask again at once
  }
  return std::chrono::seconds(r->ttl());
}

std::vector<Holder> EtcdStore::holders(const KeySnapshot& snap, const StoreTime& t) const {
  std::vector<Holder> out;
  for (const LeaseEntry* l : snap.live_leases(t)) {
    out.push_back({.execution = l->value.execution,
                   .expires_in = remaining(l->lease_id, l->value.expires_ns, t)});
  }
  return out;
}

Result<std::optional<Execution>> EtcdStore::succeeded(const KeySnapshot& snap) const {
  std::optional<Execution> none;
  if (snap.meta.last_ok == 0) {
    return none;
  }
  AEC_ASSIGN_OR_RETURN(
      auto entries, read_entries(*client_, layout_, snap.key, {snap.meta.last_ok}, snap.revision));
  if (!entries.empty() && entries[0].second.status == ExecutionStatus::Succeeded) {
    return std::optional<Execution>(entries[0].second);
  }
  // The latest success was purged: look for an older one (rare).
  const std::string dir = layout_.history(snap.key);
  AEC_ASSIGN_OR_RETURN(RangeResponse all, client_->range(dir, prefix_end(dir),
                                                         {.revision = snap.revision,
                                                          .sort_order = RangeRequest::DESCEND,
                                                          .sort_target = RangeRequest::KEY}));
  for (const KeyValue& kv : all.kvs()) {
    AEC_ASSIGN_OR_RETURN(Execution e, execution_from_text(kv.value()));
    if (e.status == ExecutionStatus::Succeeded) {
      return std::optional<Execution>(std::move(e));
    }
  }
  return none;
}

Result<EtcdStore::Decision> EtcdStore::decide(const AcquireRequest& req, const KeySnapshot& snap,
                                              const StoreTime& t) const {
  Decision d;
  AcquireResult& r = d.result;
  std::vector<const PlaceEntry*> live_places;
  for (const PlaceEntry& p : snap.places) {
    if (t.live(p.value.expires_ns)) {
      if (d.mine == nullptr && p.value.execution_id == req.execution_id) {
        d.mine = &p;
      }
      live_places.push_back(&p);
    }
  }
  std::vector<const PlaceEntry*> ahead;
  for (const PlaceEntry* p : live_places) {
    if (d.mine == nullptr || p->seq < d.mine->seq) {
      ahead.push_back(p);
    }
  }
  if (!ahead.empty()) {
    d.predecessor = ahead.back();
  }
  if (req.once) {
    AEC_ASSIGN_OR_RETURN(r.done_by, succeeded(snap));
  }
  const int live = static_cast<int>(snap.live_leases(t).size());
  const int free = req.limit - live;
  const int waiting = static_cast<int>(ahead.size());
  r.version = snap.version;
  if (r.done_by) {
    r.outcome = AcquireOutcome::Done;
  } else if (free > 0 && waiting < free) {
    r.outcome = AcquireOutcome::Granted;
  } else {
    r.outcome = AcquireOutcome::Busy;
    r.waiting_ahead = waiting;
    r.holders = holders(snap, t);
    milliseconds retry = milliseconds::max();
    if (free <= 0) {
      for (const Holder& h : r.holders) {
        retry = std::min(retry, h.expires_in);
      }
    } else {
      for (const PlaceEntry* p : ahead) {
        retry = std::min(retry, remaining(p->lease_id, p->value.expires_ns, t));
      }
    }
    r.retry_in = retry == milliseconds::max() ? milliseconds(0) : retry;
  }
  if (d.mine != nullptr && t.manual) {
    d.fresh =
        *d.mine->value.expires_ns - t.now_ns > std::chrono::nanoseconds(req.queue_ttl).count() / 2;
  }
  return d;
}

// True when the refused caller has nothing to record: answer from the read alone. With the real
// clock a place of unchanged queue_ttl is kept by one keep-alive of its etcd lease (no write:
// the revision does not move).
bool EtcdStore::read_only(const AcquireRequest& req, Decision& d) const {
  const AcquireResult& r = d.result;
  if (r.outcome == AcquireOutcome::Granted || req.record_skipped) {
    return false;
  }
  if (r.outcome == AcquireOutcome::Done || !req.queue) {
    return true;
  }
  if (d.mine == nullptr) {
    return false;
  }
  if (!manual_ && d.mine->value.ttl == req.queue_ttl) {
    Result<std::int64_t> ttl = keep_alive_->keep_alive(d.mine->lease_id);
    d.fresh = ttl.has_value() && *ttl > 0;
  }
  return d.fresh;
}

Status EtcdStore::plan_queue(const AcquireRequest& req, const StoreTime& t, const Decision& d,
                             WritePlan& plan) {
  if (d.result.outcome != AcquireOutcome::Busy || !req.queue || d.fresh) {
    return Status::ok();
  }
  PlaceValue place{.execution_id = req.execution_id,
                   .ttl = req.queue_ttl,
                   .expires_ns = expiry(req.queue_ttl, t)};
  if (d.mine != nullptr && manual_) {
    // Refreshed in place: the place keeps its position in line.
    plan.put(d.mine->etcd_key, to_text(place), d.mine->lease_id);
    return Status::ok();
  }
  AEC_ASSIGN_OR_RETURN(std::int64_t lease, take_lease(etcd_ttl(req.queue_ttl)));
  plan.spare_on_retry.emplace_back(lease, etcd_ttl(req.queue_ttl));
  if (d.mine != nullptr) {  // a new queue_ttl: the place moves to an etcd lease of that TTL
    plan.put(d.mine->etcd_key, to_text(place), lease);
    plan.revoke_after.push_back(d.mine->lease_id);
    return Status::ok();
  }
  // Named by its etcd lease (unique among live places: a lease holds one place at a time), and
  // placed in line by its create revision: joining moves no counter, so it conflicts with no
  // grant and no other join (a join that had to win the sequence counter could starve while
  // others handed a hot key back and forth).
  plan.put(layout_.place(req.key, lease), to_text(place), lease);
  return Status::ok();
}

Result<std::optional<AcquireResult>> EtcdStore::write_acquire(
    const AcquireRequest& req, const KeySnapshot& snap, const StoreTime& t, Decision d,
    WritePlan plan, std::optional<KeySnapshot>& after, std::optional<MonoTime>& lease_asked) {
  AcquireResult& r = d.result;
  const SysTime wall = clock_->system_now();
  AEC_RETURN_IF_ERROR(plan_reap(*client_, layout_, snap, t, wall, plan));
  const std::int64_t seq = snap.last_seq + 1;
  bool new_seq = false;
  if (r.outcome == AcquireOutcome::Granted) {
    lease_asked = BootClock::now();
    AEC_ASSIGN_OR_RETURN(std::int64_t lease, take_lease(etcd_ttl(req.ttl)));
    plan.spare_on_retry.emplace_back(lease, etcd_ttl(req.ttl));
    const std::int64_t token = snap.last_token + 1;
    Execution e{.id = req.execution_id,
                .key = req.key,
                .token = token,
                .status = ExecutionStatus::Running,
                .owner = req.owner,
                .started_at = wall,
                .labels = req.labels};
    plan.put(layout_.token(req.key), std::to_string(token));
    plan.put(layout_.entry(req.key, seq), to_text(e));
    plan.put(layout_.lease(req.key, token),
             to_text(LeaseValue{
                 .execution = e, .seq = seq, .ttl = req.ttl, .expires_ns = expiry(req.ttl, t)}),
             lease);
    if (d.mine != nullptr) {
      plan.erase(d.mine->etcd_key);
      plan.spare_after.emplace_back(d.mine->lease_id, etcd_ttl(d.mine->value.ttl));
    }
    plan.meta.running.emplace_back(token, seq);
    plan.meta_changed = true;
    new_seq = true;
    r.lease =
        Lease{.key = req.key, .execution_id = req.execution_id, .token = token, .ttl = req.ttl};
  } else {
    if (d.mine == nullptr && !req.record_skipped && plan.txn.success_size() == 0) {
      // Only a new place at the tail to write: nothing read can make it wrong. If a slot was
      // freed meanwhile, the caller sees it when it starts to wait (and a place taken needlessly
      // is harmless), so joining a busy line does not race every handover.
      plan.unguard();
    }
    AEC_RETURN_IF_ERROR(plan_queue(req, t, d, plan));
    if (req.record_skipped) {
      Execution skipped{.id = req.execution_id,
                        .key = req.key,
                        .status = ExecutionStatus::Skipped,
                        .owner = req.owner,
                        .started_at = wall,
                        .ended_at = wall,
                        .labels = req.labels,
                        .reason = skip_reason(r)};
      plan.put(layout_.entry(req.key, seq), to_text(skipped));
      plan.meta_changed = true;
      new_seq = true;  // a new place shares the number: another key space
    }
  }
  if (new_seq) {
    plan.put(layout_.seq(req.key), std::to_string(seq));
  }
  plan.finish(layout_, req.key);
  Result<bool> committed = commit_plan(plan);
  after = std::move(plan.after);
  if (!committed) {
    return committed.error();
  }
  if (!*committed) {
    return std::optional<AcquireResult>();
  }
  r.version = snap.version + (plan.meta_changed ? 1 : 0);
  return std::optional<AcquireResult>(std::move(r));
}

// Read (or take the cached snapshot), decide, and write only when there is something to write,
// guarded by compares on what was read: two concurrent acquires that both saw the last slot
// free cannot both commit (the second finds meta and the token counter moved) and the loser
// decides again on the state its failed write read back.
Result<EtcdStore::Attempt> EtcdStore::attempt(const AcquireRequest& req, bool woken) {
  bool cached = false;
  AEC_ASSIGN_OR_RETURN(KeySnapshot snap, snapshot(req.key, !req.once && !woken, cached));
  int unsure = 0;  // writes that failed and may have been applied
  // When the first of them asked for a grant's etcd lease (any of them may be the one applied).
  std::optional<MonoTime> unsure_asked;
  if (cached && req.queue && (!snap.leases.empty() || !snap.places.empty())) {
    // A key others wait on changes under us: a write decided on the cache would likely fail
    // its compares (a Raft round for nothing). Read.
    AEC_ASSIGN_OR_RETURN(snap, snapshot(req.key, false, cached));
  }
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    const StoreTime t = now();
    AEC_ASSIGN_OR_RETURN(Decision d, decide(req, snap, t));
    Attempt a{.revision = snap.revision};
    if (d.result.outcome == AcquireOutcome::Busy) {  // what a parked caller will watch
      if (d.predecessor != nullptr) {
        a.watch_key = d.predecessor->etcd_key;
        a.watched = 1;
      } else {
        a.watch_key = layout_.leases(req.key);
        a.watch_end = prefix_end(a.watch_key);
        a.watched = snap.leases.size();
      }
    }
    if (read_only(req, d)) {
      if (cached) {  // answer from a fresh read
        AEC_ASSIGN_OR_RETURN(snap, snapshot(req.key, false, cached));
        continue;
      }
      a.result = std::move(d.result);
      return a;
    }
    std::optional<KeySnapshot> after;
    std::optional<MonoTime> asked;
    Result<std::optional<AcquireResult>> done =
        write_acquire(req, snap, t, d, WritePlan::guarded(layout_, snap), after, asked);
    if (!done) {
      if (done.error().code() != Code::Unavailable || ++unsure > kMaxUnsureWrites) {
        return done.error();
      }
      if (!unsure_asked) {
        unsure_asked = asked;
      }
      // A member failed under the write (a leader election, a dead member): it may or may not
      // have been applied. Read the key back (a read waits out an election): a lease of this
      // execution means it was, and is the answer; else decide again (the write is guarded).
      AEC_ASSIGN_OR_RETURN(snap, snapshot(req.key, false, cached));
      for (const LeaseEntry& l : snap.leases) {
        if (l.value.execution.id == req.execution_id) {
          a.result = {.outcome = AcquireOutcome::Granted,
                      .lease = {.key = req.key,
                                .execution_id = req.execution_id,
                                .token = l.token,
                                .ttl = l.value.ttl},
                      .version = snap.version};
          a.lease_asked = unsure_asked;
          return a;
        }
      }
      continue;
    }
    if (*done) {
      a.result = std::move(**done);
      a.lease_asked = asked;
      return a;
    }
    decide_again(snap, cached, std::move(*after), attempt);
  }
  return unavailable(fmt::format("{}: acquire of '{}' lost to concurrent writers {} times",
                                 client_->name(), req.key, kMaxAttempts));
}

void EtcdStore::await_change(const AcquireRequest& req, const Attempt& a,
                             std::chrono::nanoseconds nap) {
  const MonoTime until = BootClock::now() + nap;
  // From now, not from the answer's revision: etcd delivers a watch that starts in the past
  // from a background loop that runs every 100 ms. The read after it covers the moment in
  // between: the watched keys as the answer saw them, or decide again at once.
  Result<std::unique_ptr<Watch>> watch =
      Watch::open(*client_, a.watch_key, {.range_end = a.watch_end});
  if (!watch) {
    // No member confirmed the watch: nap without it (the next attempt reports an outage).
    (void)pause_until(until, req.stop);
    return;
  }
  Result<RangeResponse> seen = client_->range(a.watch_key, a.watch_end);
  if (!seen || static_cast<std::size_t>(seen->kvs_size()) != a.watched ||
      std::any_of(seen->kvs().begin(), seen->kvs().end(),
                  [&](const KeyValue& kv) { return kv.mod_revision() > a.revision; })) {
    return;
  }
  // Any answer ends the nap: events (the place ahead went, or a lease was freed or lapsed), a
  // timeout, a compaction, an outage: each is a reason to decide again.
  (void)(*watch)->next(until, req.stop);
}

// With queue and park (and the real clock: a hand-moved one makes nothing lapse while parked),
// the caller waits in line here: it watches only the place just ahead of its own, or, first in
// line, the key's leases, so a release wakes one waiter, not all of them (no herd).
Result<AcquireResult> EtcdStore::acquire(const AcquireRequest& req) {
  AEC_RETURN_IF_ERROR(check_acquire_request(req));
  // No earlier than the caller sent the request, which its lease's validity is reckoned from.
  const MonoTime start = BootClock::now();
  // A grant's ttl runs from when its etcd lease was asked for, not from when its attempt
  // began: an attempt may spend most of a ttl in a read that waits out a paused or deposed
  // member (the leader's SIGSTOP in T10), and a lease reckoned from before that read would reach
  // its holder already expired by its own count, though etcd keeps it a full TTL.
  auto counted = [&](AcquireResult r, const Attempt& a) {
    if (r.outcome == AcquireOutcome::Granted && a.lease_asked && !manual_) {
      r.held = std::chrono::floor<milliseconds>(*a.lease_asked - start);
    }
    return r;
  };
  if (!req.queue || req.park.count() <= 0 || manual_) {
    AEC_ASSIGN_OR_RETURN(Attempt a, attempt(req, false));
    return counted(std::move(a.result), a);
  }
  Attempt last;
  Result<AcquireResult> r = park_in_line(
      *this, req,
      [&](bool woken) -> Result<AcquireResult> {
        AEC_ASSIGN_OR_RETURN(last, attempt(req, woken));
        return last.result;
      },
      [&](std::chrono::nanoseconds nap) {
        await_change(req, last, nap);
        return true;
      });
  if (!r) {
    return r;
  }
  return counted(std::move(*r), last);
}

}  // namespace etcd

Result<std::unique_ptr<Store>> open_etcd_store(std::string_view url, const StoreOptions& options) {
  AEC_ASSIGN_OR_RETURN(etcd::EtcdUrl parsed, etcd::parse_etcd_url(url));
  AEC_ASSIGN_OR_RETURN(
      std::unique_ptr<etcd::Client> client,
      etcd::Client::connect(parsed.endpoints, {.dial_timeout = parsed.dial_timeout,
                                               .rpc_timeout = parsed.rpc_timeout}));
  return std::unique_ptr<Store>(
      std::make_unique<etcd::EtcdStore>(std::move(parsed), std::move(client), options));
}

}  // namespace aec
