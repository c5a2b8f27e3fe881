// The etcd store's purge: reaps expired leases and lapsed places of every key, then deletes old
// history in bounded batches, one transaction each (see etcd_store.h).
#include <algorithm>
#include <map>
#include <set>

#include "core/status_macros.h"
#include "core/store_checks.h"
#include "stores/etcd/etcd_store_impl.h"
#include "stores/etcd/txn_ops.h"

namespace aec::etcd {
namespace {

constexpr std::int64_t kPage = 500;  // keys read per range

// The encoded key directory of a k/ tree key ("P k/E/meta" -> "E").
std::string dir_of(std::string_view etcd_key, std::string_view keys) {
  std::string_view rest = etcd_key.substr(keys.size());
  return std::string(rest.substr(0, rest.find('/')));
}

}  // namespace

// Scans the k/ tree page by page for keys with running executions or queue places, and reaps
// each with the same guarded write as any other (re-read and retried when the key changes).
Result<std::int64_t> EtcdStore::reap_all() {
  const std::string keys = layout_.keys();
  const std::string end = prefix_end(keys);
  std::map<std::string, std::string> names;  // E -> the aec key (from meta)
  std::set<std::string> candidates;          // E
  std::string from = keys;
  for (;;) {
    AEC_ASSIGN_OR_RETURN(RangeResponse page, client_->range(from, end, {.limit = kPage}));
    for (const KeyValue& kv : page.kvs()) {
      const std::string dir = dir_of(kv.key(), keys);
      if (kv.key().ends_with("/meta")) {
        AEC_ASSIGN_OR_RETURN(Meta meta, meta_from_text(kv.value()));
        names[dir] = meta.key;
        if (!meta.running.empty()) {
          candidates.insert(dir);
        }
      } else if (kv.key().find("/q/", keys.size()) != std::string::npos) {
        candidates.insert(dir);
      }
    }
    if (!page.more() || page.kvs().empty()) {
      break;
    }
    from = page.kvs(page.kvs_size() - 1).key() + '\0';
  }
  std::int64_t reaped = 0;
  for (const std::string& dir : candidates) {
    auto name = names.find(dir);
    if (name == names.end()) {
      continue;  // places of a key never granted nor recorded: they lapse with their etcd lease
    }
    for (int attempt = 0;; ++attempt) {
      if (attempt == kMaxAttempts) {
        return unavailable(client_->name() + ": purge lost to concurrent writers");
      }
      AEC_ASSIGN_OR_RETURN(KeySnapshot snap, read_snapshot(*client_, layout_, name->second));
      WritePlan plan = WritePlan::guarded(layout_, snap);
      AEC_RETURN_IF_ERROR(plan_reap(*client_, layout_, snap, now(), clock_->system_now(), plan));
      if (plan.txn.success_size() == 0) {
        break;
      }
      plan.finish(layout_, snap.key);
      AEC_ASSIGN_OR_RETURN(bool committed, commit(*client_, plan));
      if (committed) {
        reaped += plan.reaped;
        break;
      }
      backoff(attempt);
    }
  }
  return reaped;
}

// Deletes the entries (aec key, etcd key) of `batch` in one transaction that also moves the
// version of each key touched (waiters and readers see the history change). Guarded by the
// keys' meta: a write on one of them meanwhile makes it read the metas again.
Status EtcdStore::delete_entries(const std::vector<std::pair<std::string, std::string>>& batch) {
  std::set<std::string> keys;
  for (const auto& [key, etcd_key] : batch) {
    keys.insert(key);
  }
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    TxnRequest read;
    for (const std::string& key : keys) {
      *read.add_success() = op_get(layout_.meta(key));
    }
    AEC_ASSIGN_OR_RETURN(TxnResponse metas, client_->txn(read));
    AEC_RETURN_IF_ERROR(check_answers(metas, static_cast<int>(keys.size()), "meta keys"));
    WritePlan plan;
    int i = 0;
    for (const std::string& key : keys) {
      const auto& kvs = metas.responses(i++).response_range().kvs();
      if (kvs.empty()) {
        *plan.txn.add_compare() = compare_version(layout_.meta(key), Compare::EQUAL, 0);
        continue;
      }
      *plan.txn.add_compare() =
          compare_mod(layout_.meta(key), Compare::EQUAL, kvs[0].mod_revision());
      plan.put(layout_.meta(key), kvs[0].value());
    }
    for (const auto& [key, etcd_key] : batch) {
      plan.erase(etcd_key);
    }
    AEC_ASSIGN_OR_RETURN(bool committed, commit(*client_, plan));
    if (committed) {
      return Status::ok();
    }
    backoff(attempt);
  }
  return unavailable(client_->name() + ": purge lost to concurrent writers");
}

Result<std::int64_t> EtcdStore::purge_history(const PurgeRequest& req) {
  std::vector<ExecutionStatus> wanted = req.statuses;
  if (wanted.empty()) {
    wanted = {ExecutionStatus::Succeeded, ExecutionStatus::Failed, ExecutionStatus::Lost,
              ExecutionStatus::Cancelled, ExecutionStatus::Skipped};
  }
  const SysTime cutoff = clock_->system_now() - req.older_than;
  // etcd takes at most 128 operations per transaction: a meta put and a delete per entry.
  const std::size_t batch_size = std::clamp<std::size_t>(req.batch_size, 1, 60);
  const std::string all = layout_.history_of_prefix("");
  const std::string end = prefix_end(all);
  std::string from = all;
  std::int64_t deleted = 0;
  std::vector<std::pair<std::string, std::string>> batch;
  for (;;) {
    AEC_ASSIGN_OR_RETURN(RangeResponse page, client_->range(from, end, {.limit = kPage}));
    for (const KeyValue& kv : page.kvs()) {
      AEC_ASSIGN_OR_RETURN(Execution e, execution_from_text(kv.value()));
      if (e.status == ExecutionStatus::Running || !e.ended_at || *e.ended_at >= cutoff ||
          std::find(wanted.begin(), wanted.end(), e.status) == wanted.end()) {
        continue;
      }
      batch.emplace_back(e.key, kv.key());
      if (batch.size() == batch_size) {
        AEC_RETURN_IF_ERROR(delete_entries(batch));
        deleted += static_cast<std::int64_t>(batch.size());
        batch.clear();
      }
    }
    if (!page.more() || page.kvs().empty()) {
      break;
    }
    from = page.kvs(page.kvs_size() - 1).key() + '\0';
  }
  if (!batch.empty()) {
    AEC_RETURN_IF_ERROR(delete_entries(batch));
    deleted += static_cast<std::int64_t>(batch.size());
  }
  return deleted;
}

Result<PurgeResult> EtcdStore::purge(const PurgeRequest& req) {
  AEC_RETURN_IF_ERROR(check_purge_request(req));
  PurgeResult result;
  AEC_ASSIGN_OR_RETURN(result.leases_expired, reap_all());
  AEC_ASSIGN_OR_RETURN(result.executions_deleted, purge_history(req));
  return result;
}

}  // namespace aec::etcd
