#include "stores/etcd/etcd_key_state.h"

#include <algorithm>
#include <limits>

#include "core/status_macros.h"
#include "stores/etcd/txn_ops.h"

namespace aec::etcd {
namespace {

// etcd refuses a transaction with more than 128 compares (--max-txn-ops): the guard compares
// the counters, meta, every lease and at most this many places, the first in line (a place
// further back cannot change a decision that the counters would not also see).
constexpr std::size_t kMaxPlaceCompares = 64;

// The number that follows `dir` in `etcd_key` ("l/00000000000000000042": 42); 0, which no token
// or seq is, when there is none: a key outside `dir` (etcd answered a range with a key it does
// not cover), a tail that is not digits, or a number past int64.
std::int64_t number_after(std::string_view etcd_key, std::string_view dir) {
  if (!etcd_key.starts_with(dir)) {
    return 0;
  }
  std::string_view tail = etcd_key.substr(dir.size());
  std::int64_t n = 0;
  for (char c : tail) {
    if (c < '0' || c > '9' || n > (std::numeric_limits<std::int64_t>::max() - (c - '0')) / 10) {
      return 0;
    }
    n = n * 10 + (c - '0');
  }
  return n;
}

// What a snapshot reads: the key's whole k/ tree in one range (meta, the counters, every
// lease and every place), which etcd answers in key order.
RequestOp snapshot_op(const Layout& layout, std::string_view key) {
  const std::string tree = layout.tree(key);
  return op_get(tree, prefix_end(tree));
}

PlaceEntry place_entry(const KeyValue& kv, PlaceValue v) {
  return {.etcd_key = kv.key(),
          .seq = kv.create_revision(),
          .lease_id = kv.lease(),
          .mod_revision = kv.mod_revision(),
          .value = std::move(v)};
}

// First in line first: by when each place was created, not by its key's name.
void sort_places(KeySnapshot& s) {
  std::sort(s.places.begin(), s.places.end(),
            [](const PlaceEntry& a, const PlaceEntry& b) { return a.seq < b.seq; });
}

// Reads the snapshot from what snapshot_op() answered.
Status read_tree(const RangeResponse& r, const Layout& layout, KeySnapshot& s) {
  const std::string tree = layout.tree(s.key);
  const std::string leases = layout.leases(s.key);
  for (const KeyValue& kv : r.kvs()) {
    if (!kv.key().starts_with(tree)) {
      continue;  // not asked for
    }
    const std::string_view what = std::string_view(kv.key()).substr(tree.size());
    if (what == "meta") {
      s.exists = true;
      s.version = kv.version();
      s.meta_mod = kv.mod_revision();
      AEC_ASSIGN_OR_RETURN(s.meta, meta_from_text(kv.value()));
    } else if (what == "token") {
      s.last_token = kv.version();
    } else if (what == "seq") {
      s.last_seq = kv.version();
    } else if (what.starts_with("l/")) {
      AEC_ASSIGN_OR_RETURN(LeaseValue v, lease_from_text(kv.value()));
      s.leases.push_back({.etcd_key = kv.key(),
                          .token = number_after(kv.key(), leases),
                          .lease_id = kv.lease(),
                          .mod_revision = kv.mod_revision(),
                          .value = std::move(v)});
    } else if (what.starts_with("q/")) {
      AEC_ASSIGN_OR_RETURN(PlaceValue v, place_from_text(kv.value()));
      s.places.push_back(place_entry(kv, std::move(v)));
    }
  }
  s.meta.key = s.key;
  // Leases come in token order (named by zero-padded tokens, etcd answers in key order).
  sort_places(s);
  return Status::ok();
}

// `before` with the first `writes` operations of `txn` applied, as etcd applied them at
// `revision` (all of a transaction's writes share it), and the line `places` read then: the
// meta, counters and leases a guarded write held with its compares and changed itself.
Result<KeySnapshot> applied(const KeySnapshot& before, const TxnRequest& txn, int writes,
                            std::int64_t revision, const Layout& layout,
                            const RangeResponse& places) {
  KeySnapshot s = before;
  s.revision = revision;
  const std::string tree = layout.tree(s.key);
  const std::string leases = layout.leases(s.key);
  for (int i = 0; i < writes; ++i) {
    const RequestOp& op = txn.success(i);
    const bool put = op.has_request_put();
    const std::string& key = put ? op.request_put().key() : op.request_delete_range().key();
    if (!key.starts_with(tree)) {
      continue;  // history
    }
    const std::string_view what = std::string_view(key).substr(tree.size());
    if (what == "meta" && put) {
      s.version = s.exists ? s.version + 1 : 1;
      s.exists = true;
      s.meta_mod = revision;
      AEC_ASSIGN_OR_RETURN(s.meta, meta_from_text(op.request_put().value()));
    } else if (what == "token" && put) {
      ++s.last_token;
    } else if (what == "seq" && put) {
      ++s.last_seq;
    } else if (what.starts_with("l/")) {
      std::erase_if(s.leases, [&](const LeaseEntry& l) { return l.etcd_key == key; });
      if (put) {
        AEC_ASSIGN_OR_RETURN(LeaseValue v, lease_from_text(op.request_put().value()));
        LeaseEntry l{.etcd_key = key,
                     .token = number_after(key, leases),
                     .lease_id = op.request_put().lease(),
                     .mod_revision = revision,
                     .value = std::move(v)};
        auto at = std::find_if(s.leases.begin(), s.leases.end(),
                               [&](const LeaseEntry& e) { return e.token > l.token; });
        s.leases.insert(at, std::move(l));
      }
    }
  }
  s.meta.key = s.key;
  for (const KeyValue& kv : places.kvs()) {
    AEC_ASSIGN_OR_RETURN(PlaceValue v, place_from_text(kv.value()));
    s.places.push_back(place_entry(kv, std::move(v)));
  }
  sort_places(s);
  return s;
}

}  // namespace

const LeaseEntry* KeySnapshot::lease(std::int64_t token) const {
  for (const LeaseEntry& l : leases) {
    if (l.token == token) {
      return &l;
    }
  }
  return nullptr;
}

std::vector<const LeaseEntry*> KeySnapshot::live_leases(const StoreTime& t) const {
  std::vector<const LeaseEntry*> live;
  for (const LeaseEntry& l : leases) {
    if (t.live(l.value.expires_ns)) {
      live.push_back(&l);
    }
  }
  return live;
}

Result<KeySnapshot> read_snapshot(const Client& client, const Layout& layout,
                                  std::string_view key) {
  // A transaction of one linearizable range, as a guarded write reads the key back.
  TxnRequest read;
  *read.add_success() = snapshot_op(layout, key);
  AEC_ASSIGN_OR_RETURN(TxnResponse r, client.txn(read));
  AEC_RETURN_IF_ERROR(check_answers(r, 1, "the key " + std::string(key)));
  KeySnapshot s{.key = std::string(key), .revision = r.header().revision()};
  AEC_RETURN_IF_ERROR(read_tree(r.responses(0).response_range(), layout, s));
  return s;
}

Result<std::vector<std::pair<std::int64_t, Execution>>> read_entries(
    const Client& client, const Layout& layout, std::string_view key,
    const std::vector<std::int64_t>& seqs, std::int64_t revision) {
  std::vector<std::pair<std::int64_t, Execution>> out;
  for (std::size_t at = 0; at < seqs.size(); at += 100) {
    TxnRequest read;
    std::size_t end = std::min(seqs.size(), at + 100);
    for (std::size_t i = at; i < end; ++i) {
      *read.add_success() = op_get(layout.entry(key, seqs[i]), {}, {.revision = revision});
    }
    AEC_ASSIGN_OR_RETURN(TxnResponse r, client.txn(read));
    AEC_RETURN_IF_ERROR(check_answers(r, static_cast<int>(end - at),
                                      "history entries of the key " + std::string(key)));
    for (std::size_t i = at; i < end; ++i) {
      const auto& kvs = r.responses(static_cast<int>(i - at)).response_range().kvs();
      if (!kvs.empty()) {
        AEC_ASSIGN_OR_RETURN(Execution e, execution_from_text(kvs[0].value()));
        out.emplace_back(seqs[i], std::move(e));
      }
    }
  }
  return out;
}

WritePlan WritePlan::guarded(const Layout& layout, const KeySnapshot& snap, bool counters) {
  WritePlan plan;
  plan.read_layout = &layout;
  plan.read_key = snap.key;
  plan.meta = snap.meta;
  // The line is read back after the write: no copy of it is kept.
  plan.before = KeySnapshot{.key = snap.key,
                            .revision = snap.revision,
                            .exists = snap.exists,
                            .version = snap.version,
                            .meta_mod = snap.meta_mod,
                            .meta = snap.meta,
                            .last_token = snap.last_token,
                            .last_seq = snap.last_seq,
                            .leases = snap.leases};
  TxnRequest& t = plan.txn;
  *t.add_compare() = snap.exists ? compare_mod(layout.meta(snap.key), Compare::EQUAL, snap.meta_mod)
                                 : compare_version(layout.meta(snap.key), Compare::EQUAL, 0);
  if (counters) {
    *t.add_compare() = compare_version(layout.token(snap.key), Compare::EQUAL, snap.last_token);
    *t.add_compare() = compare_version(layout.seq(snap.key), Compare::EQUAL, snap.last_seq);
  }
  for (const LeaseEntry& l : snap.leases) {
    *t.add_compare() = compare_mod(l.etcd_key, Compare::EQUAL, l.mod_revision);
  }
  for (std::size_t i = 0; i < snap.places.size() && i < kMaxPlaceCompares; ++i) {
    *t.add_compare() =
        compare_mod(snap.places[i].etcd_key, Compare::EQUAL, snap.places[i].mod_revision);
  }
  return plan;
}

void WritePlan::unguard() {
  txn.clear_compare();
  before.reset();
}

void WritePlan::put(std::string_view k, std::string_view v, std::int64_t lease) {
  *txn.add_success() = op_put(k, v, {.lease = lease});
}

void WritePlan::erase(std::string_view k) {
  *txn.add_success() = op_delete(k);
}

void WritePlan::end(const Layout& layout, std::int64_t token, std::int64_t seq,
                    const Execution& e) {
  put(layout.entry(e.key, seq), to_text(e));
  std::erase_if(meta.running, [&](const auto& r) { return r.first == token; });
  if (e.status == ExecutionStatus::Succeeded) {
    meta.last_ok = std::max(meta.last_ok, seq);
  }
  meta_changed = true;
}

void WritePlan::finish(const Layout& layout, std::string_view key) {
  if (meta_changed) {
    put(layout.meta(key), to_text(meta));
  }
}

Status plan_reap(const Client& client, const Layout& layout, const KeySnapshot& snap,
                 const StoreTime& t, SysTime wall, WritePlan& plan) {
  std::vector<std::pair<std::int64_t, std::int64_t>> dead;  // (token, seq)
  std::vector<std::int64_t> vanished;                       // seqs whose lease key is gone
  for (const auto& [token, seq] : snap.meta.running) {
    const LeaseEntry* l = snap.lease(token);
    if (l == nullptr) {
      dead.emplace_back(token, seq);
      vanished.push_back(seq);
    } else if (!t.live(l->value.expires_ns)) {
      dead.emplace_back(token, seq);
    }
  }
  std::vector<std::pair<std::int64_t, Execution>> entries;
  if (!vanished.empty()) {
    AEC_ASSIGN_OR_RETURN(entries, read_entries(client, layout, snap.key, vanished, snap.revision));
  }
  for (const auto& [token, seq] : dead) {
    std::optional<Execution> e;
    if (const LeaseEntry* l = snap.lease(token); l != nullptr) {
      e = l->value.execution;
      plan.erase(l->etcd_key);
      plan.revoke_after.push_back(l->lease_id);
    } else {
      auto it = std::find_if(entries.begin(), entries.end(),
                             [seq = seq](const auto& p) { return p.first == seq; });
      if (it != entries.end()) {
        e = it->second;
      }
    }
    std::erase_if(plan.meta.running, [token = token](const auto& r) { return r.first == token; });
    plan.meta_changed = true;
    if (e && e->status == ExecutionStatus::Running) {
      e->status = ExecutionStatus::Lost;
      e->reason = "lease expired";
      e->ended_at = wall;
      plan.end(layout, token, seq, *e);
      ++plan.reaped;
    }
  }
  for (const PlaceEntry& p : snap.places) {
    if (!t.live(p.value.expires_ns)) {
      plan.erase(p.etcd_key);
      plan.revoke_after.push_back(p.lease_id);
    }
  }
  return Status::ok();
}

Result<bool> commit(const Client& client, WritePlan& plan) {
  // A guarded plan reads the key back in the same transaction: after its writes when they
  // commit, as it is when they do not. Either way the caller has the key's state at once.
  const int writes = plan.txn.success_size();
  if (plan.read_layout != nullptr) {
    *plan.txn.add_failure() = snapshot_op(*plan.read_layout, plan.read_key);
    if (plan.before) {
      const std::string places = plan.read_layout->places(plan.read_key);
      *plan.txn.add_success() = op_get(places, prefix_end(places));
    } else {
      *plan.txn.add_success() = snapshot_op(*plan.read_layout, plan.read_key);
    }
  }
  Result<TxnResponse> r = client.txn(plan.txn);
  if (!r || !r->succeeded()) {
    for (std::int64_t lease : plan.revoke_on_retry) {
      (void)client.lease_revoke(lease);
    }
    if (!r) {
      return r.error();
    }
  } else {
    for (std::int64_t lease : plan.revoke_after) {
      if (lease != 0) {
        (void)client.lease_revoke(lease);
      }
    }
  }
  if (plan.read_layout != nullptr) {
    const int at = r->succeeded() ? writes : 0;
    AEC_RETURN_IF_ERROR(check_answers(*r, at + 1, "the key " + plan.read_key));
    const RangeResponse& read = r->responses(at).response_range();
    if (r->succeeded() && plan.before) {
      AEC_ASSIGN_OR_RETURN(plan.after, applied(*plan.before, plan.txn, writes,
                                               r->header().revision(), *plan.read_layout, read));
    } else {
      KeySnapshot after{.key = plan.read_key, .revision = r->header().revision()};
      AEC_RETURN_IF_ERROR(read_tree(read, *plan.read_layout, after));
      plan.after = std::move(after);
    }
  }
  return r->succeeded();
}

}  // namespace aec::etcd
