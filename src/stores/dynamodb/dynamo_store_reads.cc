// The dynamodb:// store's reads (get, list), waits and purge (dynamo_store_impl.h).
#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include <aec/key.h>

#include "core/status_macros.h"
#include "core/store_checks.h"
#include "stores/dynamodb/dynamo_store_impl.h"
#include "stores/dynamodb/dynamo_table.h"

namespace aec::aws {

using nlohmann::json;

Result<KeyState> DynamoStore::get(std::string_view key_view) {
  AEC_RETURN_IF_ERROR(check_key(key_view));
  std::string key(key_view);
  KeyState state{.key = key};
  if (url_.python) {
    // A run of the Python library's holds the key too: shown as a holder of its own.
    AEC_ASSIGN_OR_RETURN(LockItem lock, read_lock(key));
    if (lock.exists && !lock.finished && lock.token == 0) {
      state.holders.push_back({lock_execution(key, lock), milliseconds(0)});
    }
  }
  AEC_ASSIGN_OR_RETURN(Read r, read_state(key));
  if (!r.rec.exists) {
    return state;
  }
  KeyRecord rec = r.rec;
  MonoTime now = clock_->monotonic_now();
  Judged j = judge(key, rec, now);
  std::vector<Holder> own = holders(rec, j, now);
  state.holders.insert(state.holders.begin(), own.begin(), own.end());
  state.last_token = rec.last_token;
  state.version = rec.version;
  for (const PlaceEntry& p : rec.queue) {
    state.queue.push_back(p.execution_id);
  }
  if (rec.last_ended) {
    state.last_ended = rec.last_ended->execution;
  }
  return state;
}

std::vector<RunRecord> DynamoStore::lease_runs(const std::string& key, KeyRecord rec) {
  Judged j = judge(key, rec, clock_->monotonic_now());
  std::vector<RunRecord> out;
  for (const LeaseEntry& l : rec.leases) {
    out.push_back(l.run);
  }
  for (const LeaseEntry& l : j.expired) {
    RunRecord run = l.run;
    run.execution.status = ExecutionStatus::Lost;  // expired, not reaped yet: what it is
    run.execution.reason = "lease expired";
    out.push_back(std::move(run));
  }
  return out;
}

Result<std::vector<json>> DynamoStore::query_all(json body, std::string_view action,
                                                 std::size_t enough) {
  std::vector<json> items;
  for (;;) {
    AEC_ASSIGN_OR_RETURN(json page, call(action, body));
    for (json& item : page.value("Items", json::array())) {
      items.push_back(std::move(item));
    }
    if (!page.contains("LastEvaluatedKey") || items.size() >= enough) {
      return items;
    }
    body["ExclusiveStartKey"] = page["LastEvaluatedKey"];
  }
}

Result<std::vector<Execution>> DynamoStore::list(const ListFilter& filter) {
  // (key, sort key) -> the run: run items, overlaid by the state items' leases.
  std::map<std::pair<std::string, std::string>, RunRecord> merged;
  if (!filter.key.empty()) {
    AEC_RETURN_IF_ERROR(check_key(filter.key));
    AEC_ASSIGN_OR_RETURN(Read r, read_state(filter.key));
    std::vector<json> items;
    if (url_.python) {
      // A table keyed by the partition key alone cannot be queried by key: a scan, filtered.
      json body = {
          {"TableName", url_.table},
          {"FilterExpression", "#ak = :k AND begins_with(#sk, :run)"},
          {"ExpressionAttributeNames", {{"#ak", kAecKey}, {"#sk", kSortKey}}},
          {"ExpressionAttributeValues", {{":k", attr_s(filter.key)}, {":run", attr_s(kRunPrefix)}}},
          {"ConsistentRead", true}};
      AEC_ASSIGN_OR_RETURN(items, query_all(body, "Scan", SIZE_MAX));
    } else {
      json body = {
          {"TableName", url_.table},
          {"KeyConditionExpression", "#pk = :k AND begins_with(#sk, :run)"},
          {"ExpressionAttributeNames", {{"#pk", url_.key}, {"#sk", kSortKey}}},
          {"ExpressionAttributeValues", {{":k", attr_s(filter.key)}, {":run", attr_s(kRunPrefix)}}},
          {"ScanIndexForward", false},
          {"ConsistentRead", true}};
      // Newest first; with no status to filter by, read only as far as the page asked for.
      std::size_t enough = filter.statuses.empty() ? filter.offset + filter.limit : SIZE_MAX;
      AEC_ASSIGN_OR_RETURN(items, query_all(body, "Query", enough));
    }
    for (const json& item : items) {
      AEC_ASSIGN_OR_RETURN(RunRecord run, record_from(item, filter.key, "run"));
      merged[{filter.key, run.sort_key}] = std::move(run);
    }
    for (RunRecord& run : lease_runs(filter.key, r.rec)) {
      merged[{filter.key, run.sort_key}] = std::move(run);
    }
  } else {
    json body = {{"TableName", url_.table}, {"ConsistentRead", true}};
    AEC_ASSIGN_OR_RETURN(std::vector<json> items, query_all(body, "Scan", SIZE_MAX));
    std::vector<RunRecord> leases;
    for (const json& item : items) {
      auto identity = identify(item);
      if (!identity) {
        continue;  // not an item of aec's
      }
      auto& [key, sort] = *identity;
      if (!filter.prefix.empty() && !key.starts_with(filter.prefix)) {
        continue;
      }
      if (sort == kStateSort) {
        AEC_ASSIGN_OR_RETURN(KeyRecord rec, state_from(item, key));
        for (RunRecord& run : lease_runs(key, std::move(rec))) {
          leases.push_back(std::move(run));
        }
      } else if (sort.starts_with(kRunPrefix)) {
        AEC_ASSIGN_OR_RETURN(RunRecord run, record_from(item, key, "run"));
        merged[{key, sort}] = std::move(run);
      }
    }
    for (RunRecord& run : leases) {
      merged[{run.execution.key, run.sort_key}] = std::move(run);
    }
  }
  std::vector<RunRecord*> runs;
  for (auto& [where, run] : merged) {
    runs.push_back(&run);
  }
  // Newest first: by sort key within a key (token order), by order stamp across keys.
  std::sort(runs.begin(), runs.end(), [&](const RunRecord* a, const RunRecord* b) {
    if (!filter.key.empty()) {
      return a->sort_key > b->sort_key;
    }
    return a->order != b->order ? a->order > b->order : a->sort_key > b->sort_key;
  });
  std::vector<Execution> out;
  std::size_t skip = filter.offset;
  for (RunRecord* run : runs) {
    if (out.size() >= filter.limit) {
      break;
    }
    if (!matches(filter, run->execution)) {
      continue;
    }
    if (skip > 0) {
      --skip;
      continue;
    }
    out.push_back(std::move(run->execution));
  }
  return out;
}

Result<std::int64_t> DynamoStore::wait(std::string_view key_view, std::int64_t version,
                                       MonoTime deadline, std::stop_token stop) {
  AEC_RETURN_IF_ERROR(check_key(key_view));
  std::string key(key_view);
  milliseconds poll = kFirstPoll;
  for (;;) {
    // The whole item, not its version alone (a read costs the same either way): the sightings
    // of its leases stay fresh, so that the waiter judges a dead holder's lease from soon after
    // its last renewal rather than from its next acquire.
    AEC_ASSIGN_OR_RETURN(Read r, read_state(key));
    MonoTime now = clock_->monotonic_now();
    if (r.rec.version != version || now >= deadline) {
      return r.rec.version;
    }
    if (stop.stop_requested()) {
      return Status(Code::Cancelled, "wait cancelled");
    }
    KeyRecord rec = r.rec;
    judge(key, rec, now);
    // Poll at least 8 times per ttl of the shortest lease: how late a renewal is seen is how
    // much later than its ttl a dead holder's lease is taken over.
    milliseconds cap = first_is_mine(key, r.rec) ? kNextPoll : kMaxPoll;
    for (const LeaseEntry& l : r.rec.leases) {
      cap = std::min(cap, std::max(kFirstPoll, l.ttl / 8));
    }
    poll = std::min(poll, cap);
    nap(std::min(jittered(poll), std::chrono::ceil<milliseconds>(deadline - now)), stop);
    poll = std::min(poll * 2, cap);
  }
}

Result<PurgeResult> DynamoStore::purge(const PurgeRequest& req) {
  AEC_RETURN_IF_ERROR(check_purge_request(req));
  PurgeResult result;
  json scan = {{"TableName", url_.table}, {"ConsistentRead", true}};
  if (req.batch_size > 0) {
    scan["Limit"] = static_cast<std::int64_t>(std::min<std::size_t>(req.batch_size, 1000));
  }
  AEC_ASSIGN_OR_RETURN(std::vector<json> items, query_all(scan, "Scan", SIZE_MAX));
  std::map<std::string, std::vector<RunRecord>> runs;  // by key
  std::set<std::string> keys;
  for (const json& item : items) {
    auto identity = identify(item);
    if (!identity) {
      continue;  // not an item of aec's
    }
    auto& [key, sort] = *identity;
    if (sort == kStateSort) {
      keys.insert(key);
    } else if (sort.starts_with(kRunPrefix)) {
      AEC_ASSIGN_OR_RETURN(RunRecord run, record_from(item, key, "run"));
      runs[key].push_back(std::move(run));
    }
  }
  SysTime cutoff = clock_->system_now() - req.older_than;
  for (const std::string& key : keys) {
    // Reap what this process judges expired.
    for (int attempt = 0;; ++attempt) {
      AEC_ASSIGN_OR_RETURN(Read r, read_state(key));
      KeyRecord next = r.rec;
      Judged j = judge(key, next, clock_->monotonic_now());
      std::vector<RunRecord> lost = expire(next, j, clock_->system_now());
      if (!lost.empty() || j.places_lapsed > 0) {
        MonoTime sent;
        AEC_ASSIGN_OR_RETURN(Commit c, commit(key, r.rec, next, sent));
        if (c == Commit::Conflict) {
          if (attempt + 1 >= kMaxAttempts) {
            break;  // a busy key: its expired leases wait for the next acquire or purge
          }
          backoff(attempt);
          continue;
        }
        result.leases_expired += static_cast<std::int64_t>(lost.size());
        for (const RunRecord& run : lost) {
          put_run_after_commit(key, run, RunWrite::IfAbsent);
        }
      }
      break;
    }
    std::set<std::string> deleted;
    for (RunRecord& run : runs[key]) {
      Execution& e = run.execution;
      if (e.status == ExecutionStatus::Running) {
        continue;  // Running is never purged
      }
      bool wanted = req.statuses.empty() || std::find(req.statuses.begin(), req.statuses.end(),
                                                      e.status) != req.statuses.end();
      if (!e.ended_at || *e.ended_at >= cutoff || !wanted) {
        continue;
      }
      json body = {{"TableName", url_.table},
                   {"Key", item_key(key, run.sort_key)},
                   {"ConditionExpression", "#st = :st"},
                   {"ExpressionAttributeNames", {{"#st", "status"}}},
                   {"ExpressionAttributeValues", {{":st", attr_s(to_string(e.status))}}}};
      bool failed = false;
      AEC_RETURN_IF_ERROR(call("DeleteItem", body, &failed).status());
      if (!failed) {
        ++result.executions_deleted;
        deleted.insert(run.sort_key);
      }
    }
    if (deleted.empty()) {
      continue;
    }
    // The state item's copies of deleted runs go too, and its version moves (history changed).
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
      AEC_ASSIGN_OR_RETURN(Read r, read_state(key));
      KeyRecord next = r.rec;
      if (next.last_ended && deleted.count(next.last_ended->sort_key) > 0) {
        next.last_ended.reset();
      }
      if (next.last_succeeded && deleted.count(next.last_succeeded->sort_key) > 0) {
        next.last_succeeded.reset();
      }
      ++next.version;
      MonoTime sent;
      AEC_ASSIGN_OR_RETURN(Commit c, commit(key, r.rec, next, sent));
      if (c == Commit::Landed) {
        break;
      }
      backoff(attempt);
    }
  }
  return result;
}

}  // namespace aec::aws
