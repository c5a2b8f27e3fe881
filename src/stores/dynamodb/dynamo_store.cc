#include "stores/dynamodb/dynamo_store.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include <aec/key.h>

#include "core/status_macros.h"
#include "core/store_checks.h"
#include "stores/dynamodb/dynamo_client.h"
#include "stores/dynamodb/dynamo_items.h"
#include "stores/dynamodb/dynamo_sightings.h"
#include "stores/dynamodb/dynamo_table.h"
#include "stores/dynamodb/dynamo_url.h"

namespace aec {
namespace aws {
namespace {

using nlohmann::json;

// How many times one operation reads and decides again after its write met a newer item.
constexpr int kMaxAttempts = 100;
// How many times a run item's write is sent again when it gets no answer.
constexpr int kRunWriteTries = 3;
// Keys whose last known state is kept, to decide a write without reading first.
constexpr std::size_t kMaxCached = 10'000;
constexpr milliseconds kFirstPoll{10};
constexpr milliseconds kMaxPoll{100};
constexpr std::string_view kConditionFailed = "ConditionalCheckFailedException";

std::string nonce() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  return fmt::format("{:016x}", random());
}

// A short random pause before deciding again: writers that met each other do not meet again.
void backoff(int attempt) {
  thread_local std::minstd_rand random{std::random_device{}()};
  int cap = std::min(50, 1 + attempt * 2);
  std::this_thread::sleep_for(milliseconds(std::uniform_int_distribution<int>(0, cap)(random)));
}

// A nap that ends early when `stop` is requested.
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

// What a process sees of a key's state item at one moment: which leases and places it judges
// lapsed (dynamo_sightings.h), and when the others end.
struct Judged {
  std::vector<LeaseEntry> expired;   // taken out of the record
  std::vector<MonoTime> lease_ends;  // of the record's leases that remain, in order
  std::vector<MonoTime> place_ends;  // of the record's places that remain, in order
  int places_lapsed = 0;
};

class DynamoStore final : public Store {
 public:
  DynamoStore(DynamoUrl url, std::unique_ptr<DynamoClient> client, const StoreOptions& options)
      : url_(std::move(url)), client_(std::move(client)), clock_(options.clock) {}

  Result<AcquireResult> acquire(const AcquireRequest& req) override;
  Result<LeaseOutcome> renew(std::string_view key, std::int64_t token, milliseconds ttl) override;
  Result<LeaseOutcome> release(std::string_view key, std::int64_t token,
                               const Outcome& outcome) override;
  Result<KeyState> get(std::string_view key) override;
  Result<std::vector<Execution>> list(const ListFilter& filter) override;
  Result<std::int64_t> wait(std::string_view key, std::int64_t version, MonoTime deadline,
                            std::stop_token stop) override;
  Result<ForceReleaseResult> force_release(std::string_view key, std::string_view reason,
                                           const Owner& by) override;
  Result<PurgeResult> purge(const PurgeRequest& req) override;
  Status leave_queue(std::string_view key, std::string_view execution_id) override;
  std::string url() const override { return url_.display; }

 private:
  struct Read {
    KeyRecord rec;
    MonoTime at{};  // when the answer arrived
  };
  enum class Commit { Landed, Conflict };
  enum class RunWrite { IfAbsent, Always };

  json item_key(const std::string& key, std::string_view sort_key) const;
  // Sends `action`; DynamoDB's errors other than a failed condition become a Status.
  // `condition_failed` (when given) is set instead for a failed condition.
  Result<json> call(std::string_view action, const json& body, bool* condition_failed = nullptr);
  Result<Read> read_state(const std::string& key);
  // The key's state to decide on: the copy this process last read or wrote while `fresh` is
  // false and it has one (a decision on it must write, and the write's condition checks it),
  // else a read (and `fresh` becomes true).
  Result<Read> state_for(const std::string& key, bool& fresh);
  // After a write met a newer item: decide again on a fresh read, at once when the decision was
  // made on the cached copy, else after a short random pause.
  static void again(bool& fresh, int attempt);
  void remember(const std::string& key, const KeyRecord& rec);
  void forget(const std::string& key);
  // Writes `after` over `before` (rev + 1, a new write_id) when the item is still `before`.
  // `sent` is when the write went out.
  Result<Commit> commit(const std::string& key, const KeyRecord& before, KeyRecord& after,
                        MonoTime& sent);
  // Takes the leases and places this process judges lapsed out of `rec`.
  Judged judge(const std::string& key, KeyRecord& rec, MonoTime now);
  // Records the expired leases of `j` Lost in `rec` (version, last_ended); their run records.
  std::vector<RunRecord> expire(KeyRecord& rec, const Judged& j, SysTime wall);
  // Writes a run item; false when its condition kept it from being written.
  Result<bool> put_run(const std::string& key, const RunRecord& run, RunWrite mode);
  // put_run for a record whose lease the state item no longer has: a few tries; the history
  // shows an unwritten end as Lost, so a failure here fails nothing the caller asked for.
  void put_run_after_commit(const std::string& key, const RunRecord& run, RunWrite mode);
  std::vector<Holder> holders(const KeyRecord& rec, const Judged& j, MonoTime now) const;
  // Microseconds since the epoch, strictly increasing in this process: list()'s order across keys.
  std::int64_t stamp();
  Result<std::vector<json>> query_all(json body, std::string_view action, std::size_t enough);
  // The executions of the key's leases, which have no run item before they end: Running while
  // this process judges them live, else Lost.
  std::vector<RunRecord> lease_runs(const std::string& key, KeyRecord rec);

  const DynamoUrl url_;
  const std::unique_ptr<DynamoClient> client_;
  const std::shared_ptr<Clock> clock_;
  Sightings sightings_;
  std::atomic<std::int64_t> last_order_{0};
  std::mutex cache_mu_;
  std::unordered_map<std::string, KeyRecord> cache_;  // guarded by cache_mu_
};

json DynamoStore::item_key(const std::string& key, std::string_view sort_key) const {
  return {{url_.key, attr_s(key)}, {std::string(kSortKey), attr_s(sort_key)}};
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
  Read r{.at = clock_->monotonic_now()};
  AEC_ASSIGN_OR_RETURN(r.rec, state_from(answer.value("Item", json()), key));
  sightings_.keep_only(key, r.rec);
  remember(key, r.rec);
  return r;
}

Result<DynamoStore::Read> DynamoStore::state_for(const std::string& key, bool& fresh) {
  if (!fresh) {
    std::lock_guard lock(cache_mu_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      return Read{.rec = it->second, .at = clock_->monotonic_now()};
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
  if (cache_.size() >= kMaxCached && cache_.count(key) == 0) {
    cache_.clear();  // crude, but a cache miss costs one read
  }
  cache_[key] = rec;
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
  json body = {{"TableName", url_.table}, {"Item", state_item(url_.key, key, after)}};
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
  item[url_.key] = attr_s(key);
  item[std::string(kSortKey)] = attr_s(run.sort_key);
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

Result<AcquireResult> DynamoStore::acquire(const AcquireRequest& req) {
  AEC_RETURN_IF_ERROR(check_acquire_request(req));
  bool fresh = false;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
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
    } else {
      auto mine = std::find_if(next.queue.begin(), next.queue.end(), [&](const PlaceEntry& p) {
        return p.execution_id == req.execution_id;
      });
      auto ahead = mine - next.queue.begin();
      int free = req.limit - static_cast<int>(next.leases.size());
      if (free <= 0 || ahead >= free) {
        result.outcome = AcquireOutcome::Busy;
        result.holders = holders(next, j, now);
        result.waiting_ahead = static_cast<int>(ahead);
        MonoTime earliest = MonoTime::max();
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
        if (req.queue) {
          place_rv = nonce();
          if (mine == next.queue.end()) {
            next.queue.push_back({req.execution_id, place_rv, req.queue_ttl});
          } else {
            mine->rv = place_rv;
            mine->queue_ttl = req.queue_ttl;
          }
          changed = true;
        }
      }
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
    sightings_.wrote_lease(req.key, e.token, lease.rv, sent);
    for (const RunRecord& run : lost) {
      put_run_after_commit(req.key, run, RunWrite::IfAbsent);
    }
    result.lease =
        Lease{.key = req.key, .execution_id = req.execution_id, .token = e.token, .ttl = req.ttl};
    result.version = next.version;
    return result;
  }
  return unavailable(
      fmt::format("DynamoDB table {}: key '{}' changed under {} attempts in a row; "
                  "try again",
                  url_.table, req.key, kMaxAttempts));
}

Result<LeaseOutcome> DynamoStore::renew(std::string_view key_view, std::int64_t token,
                                        milliseconds ttl) {
  AEC_RETURN_IF_ERROR(check_lease_args(key_view, token, ttl));
  std::string key(key_view);
  bool fresh = false;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    AEC_ASSIGN_OR_RETURN(Read r, state_for(key, fresh));
    KeyRecord next = r.rec;
    Judged j = judge(key, next, clock_->monotonic_now());
    auto mine = std::find_if(next.leases.begin(), next.leases.end(),
                             [&](const LeaseEntry& l) { return l.run.execution.token == token; });
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
  return unavailable(
      fmt::format("DynamoDB table {}: key '{}' changed under {} attempts in a row; "
                  "try again",
                  url_.table, key, kMaxAttempts));
}

Result<LeaseOutcome> DynamoStore::release(std::string_view key_view, std::int64_t token,
                                          const Outcome& outcome) {
  AEC_RETURN_IF_ERROR(check_release_args(key_view, token, outcome));
  std::string key(key_view);
  bool fresh = false;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    AEC_ASSIGN_OR_RETURN(Read r, state_for(key, fresh));
    KeyRecord next = r.rec;
    Judged j = judge(key, next, clock_->monotonic_now());
    SysTime wall = clock_->system_now();
    std::vector<RunRecord> lost = expire(next, j, wall);
    auto mine = std::find_if(next.leases.begin(), next.leases.end(),
                             [&](const LeaseEntry& l) { return l.run.execution.token == token; });
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
  return unavailable(
      fmt::format("DynamoDB table {}: key '{}' changed under {} attempts in a row; "
                  "try again",
                  url_.table, key, kMaxAttempts));
}

Result<KeyState> DynamoStore::get(std::string_view key_view) {
  AEC_RETURN_IF_ERROR(validate_key(key_view));
  std::string key(key_view);
  AEC_ASSIGN_OR_RETURN(Read r, read_state(key));
  KeyState state{.key = key};
  if (!r.rec.exists) {
    return state;
  }
  KeyRecord rec = r.rec;
  MonoTime now = clock_->monotonic_now();
  Judged j = judge(key, rec, now);
  state.holders = holders(rec, j, now);
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
    AEC_RETURN_IF_ERROR(validate_key(filter.key));
    AEC_ASSIGN_OR_RETURN(Read r, read_state(filter.key));
    json body = {
        {"TableName", url_.table},
        {"KeyConditionExpression", "#pk = :k AND begins_with(#sk, :run)"},
        {"ExpressionAttributeNames", {{"#pk", url_.key}, {"#sk", kSortKey}}},
        {"ExpressionAttributeValues", {{":k", attr_s(filter.key)}, {":run", attr_s(kRunPrefix)}}},
        {"ScanIndexForward", false},
        {"ConsistentRead", true}};
    // Newest first; with no status to filter by, read only as far as the page asked for.
    std::size_t enough = filter.statuses.empty() ? filter.offset + filter.limit : SIZE_MAX;
    AEC_ASSIGN_OR_RETURN(std::vector<json> items, query_all(body, "Query", enough));
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
      const json& pk = item.value(url_.key, json::object());
      const json& sk = item.value(std::string(kSortKey), json::object());
      if (!pk.contains("S") || !sk.contains("S") || !pk["S"].is_string() || !sk["S"].is_string()) {
        continue;  // not an item of aec's
      }
      std::string key = pk["S"].get<std::string>();
      std::string sort = sk["S"].get<std::string>();
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
  AEC_RETURN_IF_ERROR(validate_key(key_view));
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
    milliseconds cap = kMaxPoll;
    for (const LeaseEntry& l : r.rec.leases) {
      cap = std::min(cap, std::max(kFirstPoll, l.ttl / 8));
    }
    poll = std::min(poll, cap);
    nap(std::min(jittered(poll), std::chrono::ceil<milliseconds>(deadline - now)), stop);
    poll = std::min(poll * 2, cap);
  }
}

Result<ForceReleaseResult> DynamoStore::force_release(std::string_view key_view,
                                                      std::string_view reason, const Owner& by) {
  AEC_RETURN_IF_ERROR(validate_key(key_view));
  std::string key(key_view);
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
    result.version = next.version;
    return result;
  }
  return unavailable(
      fmt::format("DynamoDB table {}: key '{}' changed under {} attempts in a row; "
                  "try again",
                  url_.table, key, kMaxAttempts));
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
    const json& pk = item.value(url_.key, json::object());
    const json& sk = item.value(std::string(kSortKey), json::object());
    if (!pk.contains("S") || !sk.contains("S") || !pk["S"].is_string() || !sk["S"].is_string()) {
      continue;
    }
    std::string key = pk["S"].get<std::string>();
    std::string sort = sk["S"].get<std::string>();
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

Status DynamoStore::leave_queue(std::string_view key_view, std::string_view execution_id) {
  AEC_RETURN_IF_ERROR(validate_key(key_view));
  std::string key(key_view);
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    AEC_ASSIGN_OR_RETURN(Read r, read_state(key));
    KeyRecord next = r.rec;
    if (std::erase_if(next.queue,
                      [&](const PlaceEntry& p) { return p.execution_id == execution_id; }) == 0) {
      return Status::ok();
    }
    ++next.version;  // the next in line may be free to go now
    MonoTime sent;
    AEC_ASSIGN_OR_RETURN(Commit c, commit(key, r.rec, next, sent));
    if (c == Commit::Landed) {
      return Status::ok();
    }
    backoff(attempt);
  }
  return unavailable(
      fmt::format("DynamoDB table {}: key '{}' changed under {} attempts in a row; "
                  "try again",
                  url_.table, key, kMaxAttempts));
}

}  // namespace
}  // namespace aws

Result<std::unique_ptr<Store>> open_dynamodb_store(std::string_view url,
                                                   const StoreOptions& options) {
  AEC_ASSIGN_OR_RETURN(aws::DynamoUrl parsed, aws::parse_dynamo_url(url));
  aws::CredentialSources sources = aws::with_defaults({.profile = parsed.profile});
  AEC_ASSIGN_OR_RETURN(std::string region, aws::find_region(parsed.region, sources));
  auto credentials = std::make_shared<aws::CredentialCache>(sources, options.clock);
  auto client = std::make_unique<aws::DynamoClient>(aws::DynamoOptions{
      .endpoint = aws::endpoint_for(parsed, region), .region = region, .credentials = credentials});
  aws::TableLayout layout{.partition_key = parsed.key,
                          .sort_key = std::string(aws::kSortKey),
                          .ttl_attribute = "expires_at"};
  AEC_RETURN_IF_ERROR(aws::ensure_table(*client, parsed.table, layout,
                                        parsed.create && options.create, std::chrono::seconds(30)));
  std::unique_ptr<Store> store =
      std::make_unique<aws::DynamoStore>(std::move(parsed), std::move(client), options);
  return store;
}

}  // namespace aec
