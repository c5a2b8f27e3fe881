// The etcd store's reads: get, list and wait (see etcd_store.h).
#include <algorithm>
#include <map>
#include <set>

#include <aec/key.h>

#include "core/status_macros.h"
#include "core/store_checks.h"
#include "stores/etcd/etcd_store_impl.h"
#include "stores/etcd/txn_ops.h"
#include "stores/etcd/watch.h"

namespace aec::etcd {
namespace {

// A wait polls the store's clock between naps this long, so a deadline on a hand-moved clock is
// noticed; with the real clock the watch wakes it on a change.
constexpr auto kNap = std::chrono::milliseconds(100);

}  // namespace

Result<KeyState> EtcdStore::get(std::string_view key) {
  AEC_RETURN_IF_ERROR(validate_key(key));
  AEC_ASSIGN_OR_RETURN(KeySnapshot snap, read_snapshot(*client_, layout_, key));
  KeyState state{.key = std::string(key), .last_token = snap.last_token, .version = snap.version};
  if (!snap.exists) {
    return state;
  }
  const StoreTime t = now();
  state.holders = holders(snap, t);
  for (const PlaceEntry& p : snap.places) {
    if (t.live(p.value.expires_ns)) {
      state.queue.push_back(p.value.execution_id);
    }
  }
  // The newest entries, one more than the running ones: at least one has ended, if any has.
  const std::string dir = layout_.history(key);
  AEC_ASSIGN_OR_RETURN(
      RangeResponse newest,
      client_->range(dir, prefix_end(dir),
                     {.limit = static_cast<std::int64_t>(snap.meta.running.size()) + 1,
                      .revision = snap.revision,
                      .sort_order = RangeRequest::DESCEND,
                      .sort_target = RangeRequest::KEY}));
  for (const KeyValue& kv : newest.kvs()) {
    AEC_ASSIGN_OR_RETURN(Execution e, execution_from_text(kv.value()));
    if (e.status != ExecutionStatus::Running) {
      state.last_ended = std::move(e);
      break;
    }
  }
  return state;
}

// One range over the history the filter selects, newest first by create revision (a rewrite
// that ends an execution keeps its place). A running execution whose lease is gone (or expired
// by a hand-moved clock) is shown Lost, as the next write on its key will record it.
Result<std::vector<Execution>> EtcdStore::list(const ListFilter& filter) {
  const std::string from =
      !filter.key.empty() ? layout_.history(filter.key) : layout_.history_of_prefix(filter.prefix);
  RangeOptions options{.sort_order = RangeRequest::DESCEND, .sort_target = RangeRequest::CREATE};
  if (filter.statuses.empty() && filter.limit < 1'000'000 && filter.offset < 1'000'000) {
    options.limit = static_cast<std::int64_t>(filter.limit + filter.offset);
  }
  AEC_ASSIGN_OR_RETURN(RangeResponse r, client_->range(from, prefix_end(from), options));
  std::vector<Execution> all;
  const ListFilter where{.key = filter.key, .prefix = filter.prefix};  // statuses: below
  for (const KeyValue& kv : r.kvs()) {
    AEC_ASSIGN_OR_RETURN(Execution e, execution_from_text(kv.value()));
    if (matches(where, e)) {
      all.push_back(std::move(e));
    }
  }
  // Which running executions still hold their lease, read at the same revision.
  std::vector<Execution*> running;
  for (Execution& e : all) {
    if (e.status == ExecutionStatus::Running) {
      running.push_back(&e);
    }
  }
  const StoreTime t = now();
  for (std::size_t at = 0; at < running.size(); at += 100) {
    TxnRequest read;
    std::size_t end = std::min(running.size(), at + 100);
    for (std::size_t i = at; i < end; ++i) {
      *read.add_success() = op_get(layout_.lease(running[i]->key, running[i]->token), {},
                                   {.revision = r.header().revision()});
    }
    AEC_ASSIGN_OR_RETURN(TxnResponse leases, client_->txn(read));
    AEC_RETURN_IF_ERROR(check_answers(leases, static_cast<int>(end - at), "leases"));
    for (std::size_t i = at; i < end; ++i) {
      const auto& kvs = leases.responses(static_cast<int>(i - at)).response_range().kvs();
      bool live = false;
      if (!kvs.empty()) {
        AEC_ASSIGN_OR_RETURN(LeaseValue v, lease_from_text(kvs[0].value()));
        live = t.live(v.expires_ns);
      }
      if (!live) {
        running[i]->status = ExecutionStatus::Lost;
        running[i]->reason = "lease expired";
      }
    }
  }
  std::vector<Execution> out;
  for (Execution& e : all) {
    if (!filter.statuses.empty() && !matches({.statuses = filter.statuses}, e)) {
      continue;
    }
    out.push_back(std::move(e));
  }
  const std::size_t skip = std::min(filter.offset, out.size());
  out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(skip));
  if (out.size() > filter.limit) {
    out.resize(filter.limit);
  }
  return out;
}

Result<std::int64_t> EtcdStore::read_version(std::string_view key, std::int64_t& revision) const {
  AEC_ASSIGN_OR_RETURN(RangeResponse r, client_->range(layout_.meta(key)));
  revision = r.header().revision();
  return r.kvs().empty() ? std::int64_t{0} : r.kvs(0).version();
}

// A Watch on the meta key from the revision after the read, so no change after it is missed.
Result<std::int64_t> EtcdStore::wait(std::string_view key, std::int64_t version, MonoTime deadline,
                                     std::stop_token stop) {
  AEC_RETURN_IF_ERROR(validate_key(key));
  std::int64_t revision = 0;
  AEC_ASSIGN_OR_RETURN(std::int64_t seen, read_version(key, revision));
  if (seen != version || clock_->monotonic_now() >= deadline) {
    return seen;
  }
  AEC_ASSIGN_OR_RETURN(std::unique_ptr<Watch> watch,
                       Watch::open(*client_, layout_.meta(key), {.start_revision = revision + 1}));
  for (;;) {
    if (stop.stop_requested()) {
      return Status(Code::Cancelled, "wait cancelled");
    }
    const MonoTime now = clock_->monotonic_now();
    if (now >= deadline) {
      return seen;
    }
    MonoTime nap = BootClock::now() + kNap;
    if (!manual_) {
      nap = std::min(nap, deadline);
    }
    Result<WatchBatch> batch = watch->next(nap, stop);
    if (!batch) {
      if (batch.error().code() == Code::Cancelled) {
        return batch.error();
      }
      if (batch.error().code() != Code::Unavailable) {
        return batch.error();
      }
      continue;  // the watch reopens at the next call
    }
    for (const Event& e : batch->events) {
      seen = e.type() == Event::DELETE ? 0 : e.kv().version();
    }
    if (batch->compact_revision != 0) {
      AEC_ASSIGN_OR_RETURN(seen, read_version(key, revision));
    }
    if (seen != version) {
      return seen;
    }
  }
}

}  // namespace aec::etcd
