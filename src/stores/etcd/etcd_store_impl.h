// The etcd store's class, shared by its files: etcd_store.cc (open, acquire),
// etcd_store_leases.cc (renew, release, force_release, leave_queue), etcd_store_reads.cc (get,
// list, wait) and etcd_store_purge.cc. See etcd_store.h for the design.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <aec/open_store.h>
#include <aec/store.h>

#include "stores/etcd/etcd_client.h"
#include "stores/etcd/etcd_key_state.h"
#include "stores/etcd/etcd_records.h"
#include "stores/etcd/etcd_url.h"
#include "stores/etcd/lease_once.h"

namespace aec::etcd {

class EtcdStore final : public Store {
 public:
  EtcdStore(EtcdUrl url, std::unique_ptr<Client> client, const StoreOptions& options);

  Result<AcquireResult> acquire(const AcquireRequest& req) override;
  Result<LeaseOutcome> renew(std::string_view key, std::int64_t token, milliseconds ttl) override;
  Result<LeaseOutcome> release(std::string_view key, std::int64_t token,
                               const Outcome& outcome) override;
  Result<Handoff> release_and_acquire(std::string_view key, std::int64_t token,
                                      const Outcome& outcome, const AcquireRequest& next) override;
  Result<KeyState> get(std::string_view key) override;
  Result<std::vector<Execution>> list(const ListFilter& filter) override;
  Result<std::int64_t> wait(std::string_view key, std::int64_t version, MonoTime deadline,
                            std::stop_token stop) override;
  Result<ForceReleaseResult> force_release(std::string_view key, std::string_view reason,
                                           const Owner& by) override;
  Result<PurgeResult> purge(const PurgeRequest& req) override;
  Status leave_queue(std::string_view key, std::string_view execution_id) override;
  std::string url() const override { return url_.display; }
  std::unique_ptr<ChangeFeed> watch_changes(
      std::function<void(const std::string& key)> on_change) override;

 private:
  // What an acquire decided from one snapshot (etcd_store.cc).
  struct Decision {
    AcquireResult result;
    const PlaceEntry* mine = nullptr;         // the caller's live place in line
    const PlaceEntry* predecessor = nullptr;  // the live place just ahead of the caller's
    bool fresh = false;                       // ... and it needs no refresh
  };
  // What one acquire attempt answered and, when Busy in line, what a parked caller watches:
  // the place just ahead of its own, or (first in line) the key's leases.
  struct Attempt {
    AcquireResult result;
    std::string watch_key;
    std::string watch_end;      // empty: watch_key alone
    std::size_t watched = 0;    // how many keys it holds at `revision`
    std::int64_t revision = 0;  // the read the answer was decided on
    // Granted: when the lease's etcd lease was asked for (a grant, or a keep-alive of a spare
    // one): its TTL runs from no earlier. Unset when not known (then from the attempt's start).
    std::optional<MonoTime> lease_asked;
  };

  StoreTime now() const;
  // The etcd lease TTL for an aec ttl: rounded up to seconds; with a hand-moved clock, 60 s
  // more (expiry is then decided by expires_ns; the etcd lease only cleans up).
  std::chrono::seconds etcd_ttl(milliseconds ttl) const;
  std::optional<std::int64_t> expiry(milliseconds ttl, const StoreTime& t) const;
  // How long a lease or place has left (hand-moved clock: by expires_ns; else etcd's TTL).
  milliseconds remaining(std::int64_t lease_id, std::optional<std::int64_t> expires_ns,
                         const StoreTime& t) const;
  std::vector<Holder> holders(const KeySnapshot& snap, const StoreTime& t) const;
  // The key's latest Succeeded execution (for `once`).
  Result<std::optional<Execution>> succeeded(const KeySnapshot& snap) const;
  Result<Decision> decide(const AcquireRequest& req, const KeySnapshot& snap,
                          const StoreTime& t) const;
  bool read_only(const AcquireRequest& req, Decision& d) const;
  // One read-decide-write of acquire; `woken`: after a change seen while parked (then what the
  // store last saw of the key is stale: read it).
  Result<Attempt> attempt(const AcquireRequest& req, bool woken);
  // Blocks until `a`'s watch sees a change, `nap` passes, or req.stop.
  void await_change(const AcquireRequest& req, const Attempt& a, std::chrono::nanoseconds nap);
  // One attempt at acquire's write, added to `plan` (guarded by what was read): nullopt when the
  // key changed meanwhile (read again).
  // `after` is the key as the write left it, or as it failed the write's compares;
  // `lease_asked` when it asked for a grant's etcd lease.
  Result<std::optional<AcquireResult>> write_acquire(const AcquireRequest& req,
                                                     const KeySnapshot& snap, const StoreTime& t,
                                                     Decision d, WritePlan plan,
                                                     std::optional<KeySnapshot>& after,
                                                     std::optional<MonoTime>& lease_asked);
  Status plan_queue(const AcquireRequest& req, const StoreTime& t, const Decision& d,
                    WritePlan& plan);
  Result<std::int64_t> purge_history(const PurgeRequest& req);
  Result<std::int64_t> reap_all();
  Status delete_entries(const std::vector<std::pair<std::string, std::string>>& batch);
  Result<std::int64_t> read_version(std::string_view key, std::int64_t& revision) const;
  // The key's state to decide on. With `may_cache`, the snapshot this store last saw of it (the
  // read-back of its last write there, or its last read: `cached` is set), when that snapshot
  // needs no history read; else a linearizable read. A decision on a cached snapshot may lead
  // only to a guarded write, which fails if the key changed since (and reads it anew in the same
  // transaction); an answer without a write is given from a fresh read. So a holder that
  // releases, or a client that takes its own key again, needs one round trip, not two.
  Result<KeySnapshot> snapshot(std::string_view key, bool may_cache, bool& cached);
  // The state a release of `token` decides on: the snapshot this store last saw of the key
  // when it is at most kFreshForRelease old and shows `token`'s lease as the only one
  // (`cached` is set; the guarded write fails if a lease, meta or a place it saw changed, and
  // a place that joined since changes nothing a release does); else a linearizable read. A holder
  // releases after its work: when that took longer, the read waits out an election the work may
  // have outlasted, where a write could wait for a leader that is gone.
  Result<KeySnapshot> release_snapshot(std::string_view key, std::int64_t token, bool& cached);
  void remember(const KeySnapshot& snap);
  // An etcd lease of `ttl` with no keys: a spare one kept alive again (one keep-alive, which
  // etcd's leader answers without a Raft round), else a new grant (a Raft round).
  Result<std::int64_t> take_lease(std::chrono::seconds ttl);
  // commit(), then keeps the plan's spare leases: those the write freed when it committed, those
  // taken for it when its compares failed (revoked when the outcome is unknown).
  Result<bool> commit_plan(WritePlan& plan);

  EtcdUrl url_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<KeepAliveStream> keep_alive_;  // renewals, places kept, spare leases reused
  Layout layout_;
  std::shared_ptr<Clock> clock_;
  bool manual_;
  std::mutex cache_mu_;
  struct Cached {
    KeySnapshot snap;
    MonoTime at;  // when etcd's answer came
  };
  std::unordered_map<std::string, Cached> cache_;  // guarded by cache_mu_
  std::mutex spare_mu_;
  std::vector<std::pair<std::int64_t, std::chrono::seconds>> spare_;  // guarded by spare_mu_
};

// Attempts of one write before it gives up (Unavailable) under contention.
inline constexpr int kMaxAttempts = 200;
// A short random pause between two attempts, so that contenders spread out.
void backoff(int attempt);
// After a write failed its compares: `snap` becomes what the write read back (fresh), after a
// backoff when another writer won the race (a stale cached snapshot is no contention).
void decide_again(KeySnapshot& snap, bool& cached, KeySnapshot after, int attempt);

}  // namespace aec::etcd
