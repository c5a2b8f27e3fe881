#include "stores/dynamodb/dynamo_store.h"

#include <algorithm>
#include <condition_variable>
#include <random>
#include <thread>

#include <fmt/format.h>

#include <aec/key.h>

#include "core/status_macros.h"
#include "core/store_checks.h"
#include "stores/dynamodb/dynamo_store_impl.h"
#include "stores/dynamodb/dynamo_table.h"

namespace aec {
namespace aws {

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

void DynamoStore::queue_or_refuse(const AcquireRequest& req, KeyRecord& next, const Judged& j,
                                  MonoTime now, const std::optional<Holder>& outside,
                                  AcquireResult& result, std::string& place_rv) {
  auto mine = std::find_if(next.queue.begin(), next.queue.end(),
                           [&](const PlaceEntry& p) { return p.execution_id == req.execution_id; });
  auto ahead = mine - next.queue.begin();
  int free = outside ? 0 : req.limit - static_cast<int>(next.leases.size());
  if (free > 0 && ahead < free) {
    return;  // a free slot, and not more callers in line ahead than free slots
  }
  result.outcome = AcquireOutcome::Busy;
  result.holders = holders(next, j, now);
  if (outside) {
    result.holders.push_back(*outside);
  }
  result.waiting_ahead = static_cast<int>(ahead);
  MonoTime earliest = outside ? now + kPythonPoll : MonoTime::max();
  if (free <= 0) {
    for (MonoTime end : j.lease_ends) {
      earliest = std::min(earliest, end);
    }
  } else {
    for (std::ptrdiff_t i = 0; i < ahead; ++i) {
      earliest = std::min(earliest, j.place_ends[static_cast<std::size_t>(i)]);
    }
  }
  result.retry_in = until(earliest, now);
  if (!req.queue) {
    return;
  }
  if (mine != next.queue.end() && mine->queue_ttl == req.queue_ttl &&
      now - sightings_.place(req.key, req.execution_id, mine->rv, now) < req.queue_ttl / 3) {
    return;  // renewed less than a third of its queue_ttl ago: no write (waiters wake together)
  }
  place_rv = nonce();
  if (mine == next.queue.end()) {
    next.queue.push_back({req.execution_id, place_rv, req.queue_ttl});
  } else {
    mine->rv = place_rv;
    mine->queue_ttl = req.queue_ttl;
  }
}

Result<AcquireResult> DynamoStore::acquire(const AcquireRequest& req) {
  AEC_RETURN_IF_ERROR(check_acquire_request(req));
  AEC_RETURN_IF_ERROR(check_key(req.key));
  if (url_.python && req.limit != 1) {
    return invalid_argument(fmt::format(
        "limit {}: a layout=aec-python table holds one execution per key, as the Python "
        "library does; use limit 1",
        req.limit));
  }
  bool fresh = false;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    // layout=aec-python: the lock item first. Held by the Python library, it refuses every
    // caller; FINISHED, it is free, or for --once done.
    LockItem lock;
    std::optional<Holder> outside;
    if (url_.python) {
      AEC_ASSIGN_OR_RETURN(lock, read_lock(req.key));
      if (lock.exists && !lock.finished && lock.token == 0) {
        outside = Holder{lock_execution(req.key, lock), milliseconds(0)};
      }
    }
    AEC_ASSIGN_OR_RETURN(Read r, state_for(req.key, fresh));
    KeyRecord next = r.rec;
    MonoTime now = clock_->monotonic_now();
    Judged j = judge(req.key, next, now);
    SysTime wall = clock_->system_now();
    std::vector<RunRecord> lost = expire(next, j, wall);
    bool changed = !lost.empty() || j.places_lapsed > 0;

    AcquireResult result{.outcome = AcquireOutcome::Granted};
    Execution e{.id = req.execution_id,
                .key = req.key,
                .owner = req.owner,
                .started_at = wall,
                .labels = req.labels};
    std::string place_rv;
    if (req.once && next.last_succeeded) {
      result.outcome = AcquireOutcome::Done;
      result.done_by = next.last_succeeded->execution;
    } else if (req.once && lock.finished) {
      result.outcome = AcquireOutcome::Done;  // by the Python library
      result.done_by = lock_execution(req.key, lock);
    } else {
      queue_or_refuse(req, next, j, now, outside, result, place_rv);
      changed = changed || !place_rv.empty();
    }

    if (result.outcome != AcquireOutcome::Granted) {
      std::optional<RunRecord> skipped;
      if (req.record_skipped) {
        e.status = ExecutionStatus::Skipped;
        e.ended_at = wall;
        e.reason = skip_reason(result);
        skipped = RunRecord{e, skipped_sort_key(next.last_token, ++next.seq), stamp()};
        next.last_ended = skipped;
        ++next.version;
        changed = true;
      }
      if (!changed && !fresh) {
        fresh = true;  // an answer that writes nothing comes from a fresh read
        continue;
      }
      if (changed) {
        MonoTime sent;
        AEC_ASSIGN_OR_RETURN(Commit c, commit(req.key, r.rec, next, sent));
        if (c == Commit::Conflict) {
          again(fresh, attempt);
          continue;
        }
        if (!place_rv.empty()) {
          sightings_.wrote_place(req.key, req.execution_id, place_rv, sent);
          note_place(req.key, req.execution_id, true);
        }
      }
      for (const RunRecord& run : lost) {
        put_run_after_commit(req.key, run, RunWrite::IfAbsent);
      }
      if (skipped) {
        put_run_after_commit(req.key, *skipped, RunWrite::Always);
      }
      result.version = next.version;
      return result;
    }

    // The grant is the state item's write alone: a running execution is its lease entry there,
    // and its run item is written when it ends (readers merge the two).
    std::erase_if(next.queue,
                  [&](const PlaceEntry& p) { return p.execution_id == req.execution_id; });
    e.token = ++next.last_token;
    LeaseEntry lease{.run = {e, run_sort_key(e.token), stamp()},
                     .rv = nonce(),
                     .ttl = req.ttl,
                     .expires_at = epoch_seconds(wall + req.ttl)};
    next.leases.push_back(lease);
    ++next.version;
    MonoTime sent;
    AEC_ASSIGN_OR_RETURN(Commit c, commit(req.key, r.rec, next, sent));
    if (c == Commit::Conflict) {
      again(fresh, attempt);
      continue;
    }
    if (url_.python) {
      // The grant holds when the lock item is still as read: else the Python library took it
      // meanwhile, the lease is withdrawn, and the caller is answered as the item is now.
      LockItem held{.exists = true,
                    .created_at = python_time(wall),
                    .updated_at = python_time(wall),
                    .token = e.token,
                    .execution_id = e.id,
                    .rv = nonce(),
                    .ttl = req.ttl,
                    .owner = fmt::format("{}:{}", e.owner.host, e.owner.pid),
                    .expires_at = lease.expires_at};
      Result<bool> put = put_lock(req.key, lock, held);
      if (!put || !*put) {
        Status back = withdraw(req.key, e.token);
        if (!put) {
          return put.error();
        }
        AEC_RETURN_IF_ERROR(back);
        fresh = true;
        backoff(attempt);
        continue;
      }
    }
    sightings_.wrote_lease(req.key, e.token, lease.rv, sent);
    note_place(req.key, req.execution_id, false);
    for (const RunRecord& run : lost) {
      put_run_after_commit(req.key, run, RunWrite::IfAbsent);
    }
    result.lease =
        Lease{.key = req.key, .execution_id = req.execution_id, .token = e.token, .ttl = req.ttl};
    result.version = next.version;
    return result;
  }
  return contended(req.key);
}

Result<LeaseOutcome> DynamoStore::renew(std::string_view key_view, std::int64_t token,
                                        milliseconds ttl) {
  AEC_RETURN_IF_ERROR(check_lease_args(key_view, token, ttl));
  AEC_RETURN_IF_ERROR(check_key(key_view));
  std::string key(key_view);
  if (url_.python) {
    AEC_ASSIGN_OR_RETURN(bool held, touch_lock(key, token, ttl));
    if (!held) {
      // The lock item is gone (the Python library's clean-up deletes items by age, live or
      // not) or holds another run: this lease no longer keeps the Python library out.
      Result<LeaseOutcome> ended =
          release_state(key, token,
                        Outcome{.status = ExecutionStatus::Lost,
                                .reason = "the Python library's lock item was deleted or taken"});
      (void)ended;  // lost either way; the state item's lease lapses if this write failed
      return LeaseOutcome::Lost;
    }
  }
  return renew_state(key, token, ttl);
}

Result<LeaseOutcome> DynamoStore::renew_state(const std::string& key, std::int64_t token,
                                              milliseconds ttl) {
  bool fresh = false;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    AEC_ASSIGN_OR_RETURN(Read r, state_for(key, fresh));
    KeyRecord next = r.rec;
    Judged j = judge(key, next, clock_->monotonic_now());
    auto mine = find_lease(next, token);
    if (mine == next.leases.end()) {
      if (!fresh) {
        fresh = true;  // "lost" comes from a fresh read
        continue;
      }
      return LeaseOutcome::Lost;  // released, taken, or expired: the next acquire reaps it
    }
    mine->rv = nonce();
    mine->ttl = ttl;
    mine->expires_at = epoch_seconds(clock_->system_now() + ttl);
    std::string rv = mine->rv;
    std::vector<RunRecord> lost = expire(next, j, clock_->system_now());
    MonoTime sent;
    AEC_ASSIGN_OR_RETURN(Commit c, commit(key, r.rec, next, sent));
    if (c == Commit::Conflict) {
      again(fresh, attempt);
      continue;
    }
    sightings_.wrote_lease(key, token, rv, sent);
    for (const RunRecord& run : lost) {
      put_run_after_commit(key, run, RunWrite::IfAbsent);
    }
    return LeaseOutcome::Ok;
  }
  return contended(key);
}

Result<LeaseOutcome> DynamoStore::release(std::string_view key_view, std::int64_t token,
                                          const Outcome& outcome) {
  AEC_RETURN_IF_ERROR(check_release_args(key_view, token, outcome));
  AEC_RETURN_IF_ERROR(check_key(key_view));
  std::string key(key_view);
  if (!url_.python) {
    return release_state(key, token, outcome);
  }
  // The lock item first: until the state item frees the slot, no caller of aec's takes it.
  AEC_ASSIGN_OR_RETURN(bool held,
                       end_lock(key, token, outcome.status == ExecutionStatus::Succeeded));
  if (held) {
    return release_state(key, token, outcome);
  }
  Outcome lost = outcome;
  lost.status = ExecutionStatus::Lost;
  lost.reason = "the Python library's lock item was deleted or taken";
  AEC_RETURN_IF_ERROR(release_state(key, token, lost).status());
  return LeaseOutcome::Lost;
}

Result<LeaseOutcome> DynamoStore::release_state(const std::string& key, std::int64_t token,
                                                const Outcome& outcome) {
  bool fresh = false;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    AEC_ASSIGN_OR_RETURN(Read r, state_for(key, fresh));
    KeyRecord next = r.rec;
    Judged j = judge(key, next, clock_->monotonic_now());
    SysTime wall = clock_->system_now();
    std::vector<RunRecord> lost = expire(next, j, wall);
    auto mine = find_lease(next, token);
    if (mine == next.leases.end()) {
      if (!fresh) {
        fresh = true;  // "lost" comes from a fresh read
        continue;
      }
      // Not held (any more). An expired lease of this token (or any other) is reaped now and
      // recorded Lost; a lease already gone had its end written by whoever removed it.
      if (!lost.empty()) {
        MonoTime sent;
        AEC_ASSIGN_OR_RETURN(Commit c, commit(key, r.rec, next, sent));
        if (c == Commit::Conflict) {
          again(fresh, attempt);
          continue;
        }
        for (RunRecord& run : lost) {
          if (run.execution.token == token) {
            run.execution.exit_code = outcome.exit_code;
          }
          put_run_after_commit(key, run, RunWrite::IfAbsent);
        }
      }
      return LeaseOutcome::Lost;
    }
    RunRecord ended = mine->run;
    next.leases.erase(mine);
    ended.execution.status = outcome.status;
    ended.execution.exit_code = outcome.exit_code;
    ended.execution.reason = outcome.reason;
    ended.execution.ended_at = wall;
    next.last_ended = ended;
    if (outcome.status == ExecutionStatus::Succeeded) {
      next.last_succeeded = ended;
    }
    ++next.version;
    MonoTime sent;
    AEC_ASSIGN_OR_RETURN(Commit c, commit(key, r.rec, next, sent));
    if (c == Commit::Conflict) {
      again(fresh, attempt);
      continue;
    }
    for (const RunRecord& run : lost) {
      put_run_after_commit(key, run, RunWrite::IfAbsent);
    }
    put_run_after_commit(key, ended, RunWrite::Always);
    return LeaseOutcome::Ok;
  }
  return contended(key);
}

Result<ForceReleaseResult> DynamoStore::force_release(std::string_view key_view,
                                                      std::string_view reason, const Owner& by) {
  AEC_RETURN_IF_ERROR(check_key(key_view));
  std::string key(key_view);
  std::optional<Execution> python_run;
  if (url_.python) {
    // The lock item goes first, whoever holds it: a run of the Python library's never ends on
    // its own (it does not renew), and this is how an operator frees its key.
    AEC_ASSIGN_OR_RETURN(python_run, drop_lock(key));
  }
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    AEC_ASSIGN_OR_RETURN(Read r, read_state(key));
    KeyRecord next = r.rec;
    Judged j = judge(key, next, clock_->monotonic_now());
    SysTime wall = clock_->system_now();
    std::vector<RunRecord> lost = expire(next, j, wall);
    ForceReleaseResult result;
    std::vector<RunRecord> cancelled;
    for (const LeaseEntry& l : next.leases) {
      RunRecord run = l.run;
      run.execution.status = ExecutionStatus::Cancelled;
      run.execution.ended_at = wall;
      run.execution.reason = forced_reason(reason, by);
      next.last_ended = run;
      result.released.push_back(run.execution);
      cancelled.push_back(std::move(run));
    }
    if (!cancelled.empty()) {
      next.leases.clear();
      ++next.version;
    }
    if (!cancelled.empty() || !lost.empty() || j.places_lapsed > 0) {
      MonoTime sent;
      AEC_ASSIGN_OR_RETURN(Commit c, commit(key, r.rec, next, sent));
      if (c == Commit::Conflict) {
        backoff(attempt);
        continue;
      }
    }
    for (const RunRecord& run : lost) {
      put_run_after_commit(key, run, RunWrite::IfAbsent);
    }
    for (const RunRecord& run : cancelled) {
      put_run_after_commit(key, run, RunWrite::Always);
    }
    if (python_run) {
      python_run->status = ExecutionStatus::Cancelled;
      python_run->ended_at = wall;
      python_run->reason = forced_reason(reason, by);
      result.released.push_back(*python_run);
    }
    result.version = next.version;
    return result;
  }
  return contended(key);
}

Status DynamoStore::leave_queue(std::string_view key_view, std::string_view execution_id) {
  AEC_RETURN_IF_ERROR(check_key(key_view));
  std::string key(key_view);
  note_place(key, std::string(execution_id), false);
  // The version moves: the next in line may be free to go now.
  return edit_state(key, [&](KeyRecord& rec) {
    return std::erase_if(rec.queue,
                         [&](const PlaceEntry& p) { return p.execution_id == execution_id; }) > 0;
  });
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

}  // namespace aws

Result<std::unique_ptr<Store>> open_dynamodb_store(std::string_view url,
                                                   const StoreOptions& options) {
  AEC_ASSIGN_OR_RETURN(aws::DynamoUrl parsed, aws::parse_dynamo_url(url));
  aws::CredentialSources sources = aws::with_defaults({.profile = parsed.profile});
  AEC_ASSIGN_OR_RETURN(std::string region, aws::find_region(parsed.region, sources));
  auto credentials = std::make_shared<aws::CredentialCache>(sources, options.clock);
  auto client = std::make_unique<aws::DynamoClient>(aws::DynamoOptions{
      .endpoint = aws::endpoint_for(parsed, region), .region = region, .credentials = credentials});
  // layout=aec-python: the Python library's table has its primary_key alone.
  aws::TableLayout layout{.partition_key = parsed.key,
                          .sort_key = parsed.python ? "" : std::string(aws::kSortKey),
                          .ttl_attribute = "expires_at"};
  AEC_RETURN_IF_ERROR(aws::ensure_table(*client, parsed.table, layout,
                                        parsed.create && options.create, std::chrono::seconds(30)));
  std::unique_ptr<Store> store =
      std::make_unique<aws::DynamoStore>(std::move(parsed), std::move(client), options);
  return store;
}

}  // namespace aec
