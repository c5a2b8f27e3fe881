// The dynamodb:// store's parts shared by its files: dynamo_state.cc (the state item),
// dynamo_store.cc (the writes), dynamo_store_reads.cc (reads, waits and purge),
// dynamo_store_python.cc (layout=aec-python's lock item). See dynamo_store.h for how it works.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <aec/open_store.h>
#include <aec/store.h>

#include "stores/dynamodb/dynamo_client.h"
#include "stores/dynamodb/dynamo_items.h"
#include "stores/dynamodb/dynamo_sightings.h"
#include "stores/dynamodb/dynamo_url.h"

namespace aec::aws {

// How many times one operation reads and decides again after its write met a newer item.
inline constexpr int kMaxAttempts = 100;
// How many times a run item's write is sent again when it gets no answer.
inline constexpr int kRunWriteTries = 3;
// Keys whose last known state is kept, to decide a write without reading first.
inline constexpr std::size_t kMaxCached = 10'000;
inline constexpr milliseconds kFirstPoll{10};
inline constexpr milliseconds kMaxPoll{100};
// How often a waiter polls when it is first in line: the slot is its next.
inline constexpr milliseconds kNextPoll{20};
inline constexpr std::string_view kConditionFailed = "ConditionalCheckFailedException";
// layout=aec-python: how often a caller refused by the Python library's lock asks again (that
// library never renews, and its release is no write of aec's that a waiter could see).
inline constexpr milliseconds kPythonPoll{1'000};

// A random 64-bit value in hex: record versions and write ids.
std::string nonce();
// A short random pause before deciding again: writers that met each other do not meet again.
void backoff(int attempt);
// A nap that ends early when `stop` is requested.
void nap(milliseconds d, const std::stop_token& stop);
// Between d/2 and d.
milliseconds jittered(milliseconds d);
// end - now, rounded up, at least 0.
milliseconds until(MonoTime end, MonoTime now);
std::int64_t epoch_seconds(SysTime t);

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
  };
  enum class Commit { Landed, Conflict };
  enum class RunWrite { IfAbsent, Always };

  using json = nlohmann::json;

  // The key attributes of aec's item `sort_key` (kStateSort, a run sort key) of `key`.
  json item_key(const std::string& key, std::string_view sort_key) const;
  // Adds those attributes to `item` (and, in layout=aec-python, its sk and aec_key).
  void place(json& item, const std::string& key, std::string_view sort_key) const;
  // The (key, sort key) of an item of aec's found by a Scan; nullopt for any other item.
  std::optional<std::pair<std::string, std::string>> identify(const json& item) const;
  // validate_key(), and in layout=aec-python no key starting "aec#" (aec's own items).
  Status check_key(std::string_view key) const;

  // layout=aec-python (dynamo_store_python.cc): the Python library's lock item of a key.
  Result<LockItem> read_lock(const std::string& key);
  // Writes `next` over the lock item when it is still as `seen` was read: absent, FINISHED, or
  // aec's lease `seen.token` unrenewed. False when it was not (another took the item).
  Result<bool> put_lock(const std::string& key, const LockItem& seen, const LockItem& next);
  // A renewal: the lock item's updated_at (so the Python library's clean-up never finds a live
  // lease old), aec_rv and expiry, while it holds `token` in progress. False when it does not.
  Result<bool> touch_lock(const std::string& key, std::int64_t token, milliseconds ttl);
  // The end of `token`'s run: FINISHED on success (the Python library's waiters return), else
  // the item is deleted. False when the item did not hold `token` in progress.
  Result<bool> end_lock(const std::string& key, std::int64_t token, bool succeeded);
  // Takes the lock item of `key` out of the Python library's hands (force_release).
  Result<std::optional<Execution>> drop_lock(const std::string& key);
  // The execution a lock item shows, for holders and done_by: a run of the Python library's,
  // or aec's own when it carries aec's attributes.
  Execution lock_execution(const std::string& key, const LockItem& l) const;
  // Sends a write of the lock item. With no answer, reads the item back and asks `landed`
  // whether the write is in it (nullopt: it is not, and the caller may send it again).
  Result<bool> write_lock(const std::string& key, std::string_view action, const json& body,
                          const std::function<std::optional<bool>(const LockItem&)>& landed);
  // Applies `edit` to the key's state item, with a new version, until the write lands; nothing
  // is written when `edit` returns false (nothing to change).
  Status edit_state(const std::string& key, const std::function<bool(KeyRecord&)>& edit);
  // Takes back a grant whose lock item could not be written: its lease leaves the state item.
  Status withdraw(const std::string& key, std::int64_t token);
  // The native operations, which the python layout wraps.
  Result<LeaseOutcome> renew_state(const std::string& key, std::int64_t token, milliseconds ttl);
  Result<LeaseOutcome> release_state(const std::string& key, std::int64_t token,
                                     const Outcome& outcome);
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
  void note_place(const std::string& key, const std::string& execution_id, bool held);
  bool first_is_mine(const std::string& key, const KeyRecord& rec);
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
  // The live lease of `token` in `rec`, or rec.leases.end().
  static std::vector<LeaseEntry>::iterator find_lease(KeyRecord& rec, std::int64_t token);
  // Sets `result` to Busy when no slot is free for the caller (all are taken, or callers ahead
  // in line are owed the free ones); then, with req.queue, keeps or takes the caller's place
  // in `next`, with a new record version (`place_rv`).
  // `outside`, when given, holds the key outside aec (the Python library's lock item): no slot
  // is free then, and the caller asks again within kPythonPoll.
  void queue_or_refuse(const AcquireRequest& req, KeyRecord& next, const Judged& j, MonoTime now,
                       const std::optional<Holder>& outside, AcquireResult& result,
                       std::string& place_rv);
  // Microseconds since the epoch, strictly increasing in this process: list()'s order across keys.
  std::int64_t stamp();
  Result<std::vector<json>> query_all(json body, std::string_view action, std::size_t enough);
  // The executions of the key's leases, which have no run item before they end: Running while
  // this process judges them live, else Lost.
  std::vector<RunRecord> lease_runs(const std::string& key, KeyRecord rec);
  // Unavailable: the key changed under every one of kMaxAttempts decisions.
  Status contended(const std::string& key) const;

  const DynamoUrl url_;
  const std::unique_ptr<DynamoClient> client_;
  const std::shared_ptr<Clock> clock_;
  Sightings sightings_;
  std::atomic<std::int64_t> last_order_{0};
  std::mutex cache_mu_;
  std::unordered_map<std::string, KeyRecord> cache_;  // guarded by cache_mu_
  // The places in line this process's callers hold, (key, execution id): wait() polls a key
  // whose first place is one of them every kNextPoll.
  std::mutex places_mu_;
  std::set<std::pair<std::string, std::string>> my_places_;  // guarded by places_mu_
};

}  // namespace aec::aws
