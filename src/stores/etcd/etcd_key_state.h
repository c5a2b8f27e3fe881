// One aec key as the etcd store reads it (a snapshot of its k/ tree, one linearizable read) and
// the write plan built on it: a Txn guarded by compares on everything the decision read, so it
// commits only when nothing changed since (else the caller reads again and decides again).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <aec/clock.h>
#include <aec/execution.h>
#include <aec/status.h>

#include "stores/etcd/etcd_client.h"
#include "stores/etcd/etcd_records.h"

namespace aec::etcd {

// The store's time for one operation. With the real clock, a lease or place is live while its
// key exists (etcd deletes it when its etcd lease expires). With a hand-moved clock (tests) it
// also needs expires_ns > now_ns.
struct StoreTime {
  bool manual = false;
  std::int64_t now_ns = 0;
  bool live(std::optional<std::int64_t> expires_ns) const {
    return !manual || (expires_ns && *expires_ns > now_ns);
  }
};

struct LeaseEntry {
  std::string etcd_key;
  std::int64_t token = 0;
  std::int64_t lease_id = 0;
  std::int64_t mod_revision = 0;
  LeaseValue value;
};

struct PlaceEntry {
  std::string etcd_key;
  // Its position in line: its etcd key's create revision (a join is one put that no other
  // write conflicts with; a place refreshed in place keeps its position).
  std::int64_t seq = 0;
  std::int64_t lease_id = 0;
  std::int64_t mod_revision = 0;
  PlaceValue value;
};

struct KeySnapshot {
  std::string key;
  std::int64_t revision = 0;  // the store's revision the snapshot was read at
  bool exists = false;        // the meta key exists (the key was ever written)
  std::int64_t version = 0;   // the meta key's etcd version: the key's aec version
  std::int64_t meta_mod = 0;
  Meta meta;
  std::int64_t last_token = 0;     // the token counter's etcd version
  std::int64_t last_seq = 0;       // the sequence counter's etcd version
  std::vector<LeaseEntry> leases;  // every lease key present, token order
  std::vector<PlaceEntry> places;  // every place key present, line order

  const LeaseEntry* lease(std::int64_t token) const;
  // The leases live at `t`, oldest first.
  std::vector<const LeaseEntry*> live_leases(const StoreTime& t) const;
};

// Reads `key`'s k/ tree in one transaction.
Result<KeySnapshot> read_snapshot(const Client& client, const Layout& layout, std::string_view key);

// Reads history entries `seqs` of `key` at `revision` (missing ones are left out), by seq.
Result<std::vector<std::pair<std::int64_t, Execution>>> read_entries(
    const Client& client, const Layout& layout, std::string_view key,
    const std::vector<std::int64_t>& seqs, std::int64_t revision);

// A write on one key under construction.
struct WritePlan {
  TxnRequest txn;
  // Set by guarded(): the key the plan writes, read back by commit() into `after`.
  const Layout* read_layout = nullptr;
  std::string read_key;
  // Set by guarded(), dropped by unguard(): what the compares hold the key to, without its line.
  // When they hold, `after` is this with the plan's writes applied and the line read back (the
  // one part of the key a write can change without failing them: places join unguarded).
  std::optional<KeySnapshot> before;
  std::optional<KeySnapshot> after;
  Meta meta;                                  // the meta value the write leaves
  bool meta_changed = false;                  // put meta (moving the key's version)
  int reaped = 0;                             // leases recorded Lost
  std::vector<std::int64_t> revoke_after;     // etcd leases left without keys by the write
  std::vector<std::int64_t> revoke_on_retry;  // etcd leases granted for this attempt
  // etcd leases (with their TTLs) the store keeps for reuse rather than revoking (see
  // EtcdStore::take_lease): left without keys by the write, or taken for this attempt. commit()
  // leaves them alone.
  std::vector<std::pair<std::int64_t, std::chrono::seconds>> spare_after;
  std::vector<std::pair<std::int64_t, std::chrono::seconds>> spare_on_retry;

  // Starts a plan guarded by compares on what `snap` read (meta, leases and the first places in
  // line; and the token and sequence counters unless `counters` is false: for a write that
  // neither grants nor numbers anything, so that a place taken at the tail of the line
  // meanwhile does not fail it).
  static WritePlan guarded(const Layout& layout, const KeySnapshot& snap, bool counters = true);
  // Drops every compare: for a write that only puts a new place in line (the place's position
  // is its create revision, so nothing it read can make it wrong).
  void unguard();
  void put(std::string_view k, std::string_view v, std::int64_t lease = 0);
  void erase(std::string_view k);
  // Ends the running execution `seq` (token) as `e` says: rewrites its history entry and drops
  // it from meta.running.
  void end(const Layout& layout, std::int64_t token, std::int64_t seq, const Execution& e);
  // Puts meta when it changed. Call last.
  void finish(const Layout& layout, std::string_view key);
};

// Adds to `plan` the reaping of `snap`'s key: every running execution without a live lease is
// recorded Lost ("lease expired", ended at `wall`), lease keys expired by a hand-moved clock and
// lapsed places are deleted.
Status plan_reap(const Client& client, const Layout& layout, const KeySnapshot& snap,
                 const StoreTime& t, SysTime wall, WritePlan& plan);

// Commits `plan`: true when its compares held, false when the key changed meanwhile (the
// leases granted for it are revoked then). Revokes the leases it left without keys. A guarded
// plan also reads its key in the same transaction, into plan.after: the state the write left
// or, when the compares failed, the state that failed them.
Result<bool> commit(const Client& client, WritePlan& plan);

}  // namespace aec::etcd
