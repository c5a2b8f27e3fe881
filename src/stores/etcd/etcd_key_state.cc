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

// The ranges of a snapshot, in the order read_ranges() reads them.
std::vector<RequestOp> snapshot_ops(const Layout& layout, std::string_view key) {
  const std::string leases = layout.leases(key);
  const std::string places = layout.places(key);
  return {op_get(layout.meta(key)), op_get(layout.token(key)), op_get(layout.seq(key)),
          op_get(leases, prefix_end(leases)), op_get(places, prefix_end(places))};
}

// Reads the snapshot from the answers to snapshot_ops(), which start at answer `at` of `r`.
Status read_ranges(const TxnResponse& r, int at, const Layout& layout, KeySnapshot& s) {
  AEC_RETURN_IF_ERROR(check_answers(r, at + 5, "the key " + s.key));
  auto range = [&](int i) -> const auto& {
    return r.responses(at + i).response_range().kvs();
  };
  const auto& meta = range(0);
  if (!meta.empty()) {
    s.exists = true;
    s.version = meta[0].version();
    s.meta_mod = meta[0].mod_revision();
    AEC_ASSIGN_OR_RETURN(s.meta, meta_from_text(meta[0].value()));
  }
  s.meta.key = s.key;
  const auto& token = range(1);
  s.last_token = token.empty() ? 0 : token[0].version();
  const auto& seq = range(2);
  s.last_seq = seq.empty() ? 0 : seq[0].version();
  const std::string leases = layout.leases(s.key);
  for (const KeyValue& kv : range(3)) {
    AEC_ASSIGN_OR_RETURN(LeaseValue v, lease_from_text(kv.value()));
    s.leases.push_back({.etcd_key = kv.key(),
                        .token = number_after(kv.key(), leases),
                        .lease_id = kv.lease(),
                        .mod_revision = kv.mod_revision(),
                        .value = std::move(v)});
  }
  for (const KeyValue& kv : range(4)) {
    AEC_ASSIGN_OR_RETURN(PlaceValue v, place_from_text(kv.value()));
    s.places.push_back({.etcd_key = kv.key(),
                        .seq = kv.create_revision(),
                        .lease_id = kv.lease(),
                        .mod_revision = kv.mod_revision(),
                        .value = std::move(v)});
  }
  // First in line first: by when each place was created, not by its key's name.
  std::sort(s.places.begin(), s.places.end(),
            [](const PlaceEntry& a, const PlaceEntry& b) { return a.seq < b.seq; });
  return Status::ok();
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
  // Ranges only, each linearizable: the transaction is a linearizable read of one revision.
  TxnRequest read;
  for (RequestOp& op : snapshot_ops(layout, key)) {
    *read.add_success() = std::move(op);
  }
  AEC_ASSIGN_OR_RETURN(TxnResponse r, client.txn(read));
  KeySnapshot s{.key = std::string(key), .revision = r.header().revision()};
  AEC_RETURN_IF_ERROR(read_ranges(r, 0, layout, s));
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
    for (RequestOp& op : snapshot_ops(*plan.read_layout, plan.read_key)) {
      *plan.txn.add_failure() = op;
      *plan.txn.add_success() = std::move(op);
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
    KeySnapshot after{.key = plan.read_key, .revision = r->header().revision()};
    AEC_RETURN_IF_ERROR(read_ranges(*r, r->succeeded() ? writes : 0, *plan.read_layout, after));
    plan.after = std::move(after);
  }
  return r->succeeded();
}

}  // namespace aec::etcd
