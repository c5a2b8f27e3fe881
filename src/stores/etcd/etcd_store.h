// The `etcd://` store: an etcd v3 cluster (etcd_url.h for the URL) shared by many hosts, on the
// client of etcd_client.h.
//
// Layout (etcd_records.h): under the prefix, per aec key a meta key (its etcd version is the
// key's aec version), a token counter and a sequence counter that are never deleted, one key
// per lease and per queue place, each attached to an etcd lease of its own, and the history in
// a tree of its own (so list() is one range, newest first by create revision).
//
// How the guarantees hold:
// - Every operation reads the key's whole k/ tree in one linearizable transaction, decides, and
//   writes one Txn guarded by compares on what it read (meta's mod revision, both counters'
//   versions, every lease's and the first places' mod revisions). When a compare fails the key
//   changed meanwhile and the operation reads and decides again: two concurrent acquires never
//   both take the last slot. A refused acquire with nothing to record is the read alone.
// - Fencing tokens: the token counter is put by every grant, in the grant's transaction; the
//   token is its etcd version after the put (1, 2, 3... per key). Versions survive compaction
//   and purge never deletes the counter, so a token never repeats.
// - Expiry by etcd's clock: each lease key has an etcd lease of TTL ceil(ttl) (etcd may raise
//   it to its minimum; the holder's own deadline is reckoned from the ttl it asked for, so
//   longer is safe). The key vanishes when the lease expires; readers then show its execution
//   Lost, and the next write on the key records it Lost ("lease expired"), as sqlite and
//   postgres reap. A renewal with an unchanged ttl is one keep-alive of that etcd lease; with
//   a new ttl the key moves to a new etcd lease in a guarded Txn (never reviving a lost one).
//   Queue places lapse the same way after queue_ttl unless their waiter asks again.
// - Tests on a hand-moved clock (StoreOptions::clock not real_clock()): lease and place values
//   also carry expires_ns on that clock, etcd leases get ttl + 60 s, and a lease or place is
//   live only while the clock is before expires_ns (as well as while its key exists), so the
//   conformance suite's expiry tests run against a real cluster and see only the time they
//   make. Off with the real clock.
// - Waiting in line (AcquireRequest::park, real clock): the caller stays in acquire() and
//   watches only the place just ahead of its own in the key's line or, first in line, the key's
//   lease keys, from the revision its answer was decided on: a release wakes the next waiter
//   alone, not every waiter (no herd). It also asks again when a holder or a place ahead could
//   lapse, and every queue_ttl / 3 to keep its own place (one keep-alive, no write).
// - wait(): a Watch on the key's meta key from the revision read, napping at most 100 ms so a
//   deadline on a hand-moved clock is noticed.
// - watch_changes(): one Watch on the whole k/ tree, reporting a key when its meta key is put or
//   a lease or place of it is deleted (freed, or lapsed by etcd's clock); resumed from the next
//   revision by the Watch itself when a member dies, "" after a compaction or a new watch.
// - Fewer round trips: every guarded write reads its key back in the same Txn (after the
//   writes, or as it failed them), and an acquire that was not woken decides on that snapshot
//   (one Txn for a free key; a stale snapshot only fails the compares). A committed write
//   reads back only the line: the rest is what its compares held, with its writes applied.
//   Answers without a write come from a fresh read; a release reads first unless the key's
//   snapshot is under 250 ms old with its lease alone (a write sent first to a member that
//   has just lost its leader hangs until the deadline; one that knows it has none refuses it,
//   and the client sends it again). Released etcd leases are reused, reset by one keep-alive
//   on a stream kept open, rather than revoked and granted anew.
// - release_and_acquire: one guarded Txn when the token holds a live lease (the acquire is
//   decided on the state the release leaves), so the slot passes with no moment in between;
//   with nothing to free, release then acquire.
// Thread-safe: the client is, and the snapshot cache and the spare leases are behind mutexes.
#pragma once

#include <memory>
#include <string_view>

#include <aec/open_store.h>
#include <aec/store.h>

namespace aec {

// Opens the store `url` names and connects to the cluster (nothing is created up front: keys
// appear with the first write). Errors: InvalidArgument (a malformed URL), Unavailable (no
// member answered within dial_timeout).
Result<std::unique_ptr<Store>> open_etcd_store(std::string_view url, const StoreOptions& options);

}  // namespace aec
