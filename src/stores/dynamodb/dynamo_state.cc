// The dynamodb:// store's state item (dynamo_store_impl.h): reading it, the copy this process
// last saw, conditional writes of it, judging its leases and places lapsed, and run items.
#include <algorithm>
#include <condition_variable>
#include <random>
#include <thread>

#include <fmt/format.h>

#include <aec/key.h>

#include "core/status_macros.h"
#include "stores/dynamodb/dynamo_store_impl.h"
#include "stores/dynamodb/dynamo_table.h"

namespace aec::aws {

using nlohmann::json;

std::string nonce() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  return fmt::format("{:016x}", random());
}

void backoff(int attempt) {
  thread_local std::minstd_rand random{std::random_device{}()};
  int cap = std::min(50, 1 + attempt * 2);
  std::this_thread::sleep_for(milliseconds(std::uniform_int_distribution<int>(0, cap)(random)));
}

void nap(milliseconds d, const std::stop_token& stop) {
  std::condition_variable_any cv;
  std::mutex mu;
  std::unique_lock lock(mu);
  cv.wait_for(lock, stop, d, [] { return false; });
}

milliseconds jittered(milliseconds d) {
  thread_local std::minstd_rand random{std::random_device{}()};
  return milliseconds(
      std::uniform_int_distribution<std::int64_t>(d.count() / 2, d.count())(random));
}

milliseconds until(MonoTime end, MonoTime now) {
  return std::chrono::ceil<milliseconds>(std::max(end - now, MonoTime::duration{}));
}

std::int64_t epoch_seconds(SysTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

Status DynamoStore::contended(const std::string& key) const {
  return unavailable(
      fmt::format("DynamoDB table {}: key '{}' changed under {} attempts in a row; "
                  "try again",
                  url_.table, key, kMaxAttempts));
}

json DynamoStore::item_key(const std::string& key, std::string_view sort_key) const {
  if (url_.python) {
    return {{url_.key, attr_s(python_item_key(key, sort_key))}};
  }
  return {{url_.key, attr_s(key)}, {std::string(kSortKey), attr_s(sort_key)}};
}

void DynamoStore::place(json& item, const std::string& key, std::string_view sort_key) const {
  item[std::string(kSortKey)] = attr_s(sort_key);
  if (url_.python) {
    item[url_.key] = attr_s(python_item_key(key, sort_key));
    item[std::string(kAecKey)] = attr_s(key);
  } else {
    item[url_.key] = attr_s(key);
  }
}

std::optional<std::pair<std::string, std::string>> DynamoStore::identify(const json& item) const {
  auto text = [&](std::string_view name) -> std::optional<std::string> {
    auto it = item.find(std::string(name));
    if (it == item.end() || !it->is_object() || !it->contains("S") || !(*it)["S"].is_string()) {
      return std::nullopt;
    }
    return (*it)["S"].get<std::string>();
  };
  std::optional<std::string> key = text(url_.python ? kAecKey : std::string_view(url_.key));
  std::optional<std::string> sort = text(kSortKey);
  if (!key || !sort) {
    return std::nullopt;  // not an item of aec's (in layout=aec-python: a lock item)
  }
  if (url_.python && text(url_.key) != python_item_key(*key, *sort)) {
    return std::nullopt;
  }
  return std::pair{std::move(*key), std::move(*sort)};
}

Status DynamoStore::check_key(std::string_view key) const {
  AEC_RETURN_IF_ERROR(validate_key(key));
  if (url_.python && key.starts_with(kPythonPrefix)) {
    return invalid_argument(fmt::format(
        "key '{}' starts with '{}', which names aec's own items in a layout=aec-python table; "
        "choose another key",
        key, kPythonPrefix));
  }
  return Status::ok();
}

Result<json> DynamoStore::call(std::string_view action, const json& body, bool* condition_failed) {
  AEC_ASSIGN_OR_RETURN(DynamoAnswer answer, client_->call(action, body));
  if (answer.error) {
    if (condition_failed != nullptr && answer.error->type == kConditionFailed) {
      *condition_failed = true;
      return json::object();
    }
    return dynamo_status(action, url_.table, *answer.error);
  }
  if (condition_failed != nullptr) {
    *condition_failed = false;
  }
  return std::move(answer.body);
}

Result<DynamoStore::Read> DynamoStore::read_state(const std::string& key) {
  json body = {
      {"TableName", url_.table}, {"Key", item_key(key, kStateSort)}, {"ConsistentRead", true}};
  AEC_ASSIGN_OR_RETURN(json answer, call("GetItem", body));
  Read r;
  AEC_ASSIGN_OR_RETURN(r.rec, state_from(answer.value("Item", json()), key));
  sightings_.keep_only(key, r.rec);
  remember(key, r.rec);
  return r;
}

Result<DynamoStore::Read> DynamoStore::state_for(const std::string& key, bool& fresh) {
  if (!fresh) {
    std::lock_guard lock(cache_mu_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      return Read{.rec = it->second};
    }
  }
  fresh = true;
  return read_state(key);
}

void DynamoStore::again(bool& fresh, int attempt) {
  if (fresh) {
    backoff(attempt);
  }
  fresh = true;
}

void DynamoStore::remember(const std::string& key, const KeyRecord& rec) {
  std::lock_guard lock(cache_mu_);
  auto it = cache_.find(key);
  if (it != cache_.end()) {
    if (it->second.rev <= rec.rev) {
      it->second = rec;  // not a read that another thread's newer write overtook
    }
    return;
  }
  if (cache_.size() >= kMaxCached) {
    cache_.clear();  // crude, but a cache miss costs one read
  }
  cache_.emplace(key, rec);
}

void DynamoStore::note_place(const std::string& key, const std::string& execution_id, bool held) {
  std::lock_guard lock(places_mu_);
  if (!held) {
    my_places_.erase({key, execution_id});
    return;
  }
  if (my_places_.size() >= kMaxCached) {
    my_places_.clear();  // places given up without leave_queue(); the cost is a slower poll
  }
  my_places_.insert({key, execution_id});
}

bool DynamoStore::first_is_mine(const std::string& key, const KeyRecord& rec) {
  std::lock_guard lock(places_mu_);
  return !rec.queue.empty() && my_places_.count({key, rec.queue.front().execution_id}) > 0;
}

void DynamoStore::forget(const std::string& key) {
  std::lock_guard lock(cache_mu_);
  cache_.erase(key);
}

Result<DynamoStore::Commit> DynamoStore::commit(const std::string& key, const KeyRecord& before,
                                                KeyRecord& after, MonoTime& sent) {
  after.exists = true;
  after.rev = before.rev + 1;
  after.write_id = nonce();
  json item = state_item(url_.key, key, after);
  place(item, key, kStateSort);
  json body = {{"TableName", url_.table}, {"Item", std::move(item)}};
  if (before.exists) {
    body["ConditionExpression"] = "#rev = :rev";
    body["ExpressionAttributeNames"] = {{"#rev", "rev"}};
    body["ExpressionAttributeValues"] = {{":rev", attr_n(before.rev)}};
  } else {
    body["ConditionExpression"] = "attribute_not_exists(#pk)";
    body["ExpressionAttributeNames"] = {{"#pk", url_.key}};
  }
  sent = clock_->monotonic_now();
  bool failed = false;
  Result<json> answer = call("PutItem", body, &failed);
  if (answer) {
    if (failed) {
      forget(key);
      return Commit::Conflict;
    }
    remember(key, after);
    return Commit::Landed;
  }
  if (answer.status().code() != Code::Unavailable) {
    return answer.error();
  }
  // No answer: did it land? The item names the last write that did.
  Result<Read> back = read_state(key);
  if (!back) {
    return answer.error();
  }
  return back->rec.write_id == after.write_id ? Commit::Landed : Commit::Conflict;  // remembered
}

Judged DynamoStore::judge(const std::string& key, KeyRecord& rec, MonoTime now) {
  Judged j;
  std::vector<LeaseEntry> live;
  for (LeaseEntry& l : rec.leases) {
    MonoTime end = sightings_.lease(key, l.run.execution.token, l.rv, now) + l.ttl;
    if (end <= now) {
      j.expired.push_back(std::move(l));
    } else {
      j.lease_ends.push_back(end);
      live.push_back(std::move(l));
    }
  }
  rec.leases = std::move(live);
  std::vector<PlaceEntry> waiting;
  for (PlaceEntry& p : rec.queue) {
    MonoTime end = sightings_.place(key, p.execution_id, p.rv, now) + p.queue_ttl;
    if (end <= now) {
      ++j.places_lapsed;
    } else {
      j.place_ends.push_back(end);
      waiting.push_back(std::move(p));
    }
  }
  rec.queue = std::move(waiting);
  return j;
}

std::vector<RunRecord> DynamoStore::expire(KeyRecord& rec, const Judged& j, SysTime wall) {
  std::vector<RunRecord> lost;
  for (const LeaseEntry& l : j.expired) {
    RunRecord r = l.run;
    r.execution.status = ExecutionStatus::Lost;
    r.execution.ended_at = wall;
    r.execution.reason = "lease expired";
    rec.last_ended = r;
    lost.push_back(std::move(r));
  }
  if (!lost.empty()) {
    ++rec.version;
  }
  return lost;
}

Result<bool> DynamoStore::put_run(const std::string& key, const RunRecord& run, RunWrite mode) {
  json item = record_attributes(run);
  place(item, key, run.sort_key);
  json body = {{"TableName", url_.table}, {"Item", std::move(item)}};
  if (mode == RunWrite::IfAbsent) {
    body["ConditionExpression"] = "attribute_not_exists(#sk)";
    body["ExpressionAttributeNames"] = {{"#sk", kSortKey}};
  }
  bool failed = false;
  AEC_RETURN_IF_ERROR(call("PutItem", body, &failed).status());
  return !failed;
}

void DynamoStore::put_run_after_commit(const std::string& key, const RunRecord& run,
                                       RunWrite mode) {
  for (int i = 0; i < kRunWriteTries; ++i) {
    Result<bool> put = put_run(key, run, mode);
    if (put || put.status().code() != Code::Unavailable) {
      return;
    }
  }
}

std::vector<Holder> DynamoStore::holders(const KeyRecord& rec, const Judged& j,
                                         MonoTime now) const {
  std::vector<Holder> out;
  for (std::size_t i = 0; i < rec.leases.size(); ++i) {
    out.push_back({rec.leases[i].run.execution, until(j.lease_ends[i], now)});
  }
  return out;
}

std::vector<LeaseEntry>::iterator DynamoStore::find_lease(KeyRecord& rec, std::int64_t token) {
  return std::find_if(rec.leases.begin(), rec.leases.end(),
                      [&](const LeaseEntry& l) { return l.run.execution.token == token; });
}

std::int64_t DynamoStore::stamp() {
  std::int64_t now =
      std::chrono::duration_cast<std::chrono::microseconds>(clock_->system_now().time_since_epoch())
          .count();
  std::int64_t prev = last_order_.load();
  for (;;) {
    std::int64_t next = std::max(now, prev + 1);
    if (last_order_.compare_exchange_weak(prev, next)) {
      return next;
    }
  }
}

Status DynamoStore::edit_state(const std::string& key,
                               const std::function<bool(KeyRecord&)>& edit) {
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    AEC_ASSIGN_OR_RETURN(Read r, read_state(key));
    KeyRecord next = r.rec;
    if (!edit(next)) {
      return Status::ok();
    }
    ++next.version;
    MonoTime sent;
    AEC_ASSIGN_OR_RETURN(Commit c, commit(key, r.rec, next, sent));
    if (c == Commit::Landed) {
      return Status::ok();
    }
    backoff(attempt);
  }
  return contended(key);
}

}  // namespace aec::aws
