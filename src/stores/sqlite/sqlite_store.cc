#include "stores/sqlite/sqlite_store.h"

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>

#include <fmt/format.h>

#include <aec/key.h>

#include "core/status_macros.h"
#include "core/store_checks.h"
#include "stores/sqlite/sqlite_db.h"
#include "stores/sqlite/sqlite_rows.h"
#include "stores/sqlite/sqlite_schema.h"
#include "stores/sqlite/sqlite_write_queue.h"

namespace aec {
namespace {

using sqlite::Db;
using sqlite::KeyRow;
using sqlite::Now;
using sqlite::Stmt;
using sqlite::WriteTxn;

// Waits poll the key's version, starting fast (a release is usually seen within a millisecond
// or two) and backing off to this ceiling, with jitter so waiters do not poll in step.
constexpr auto kFirstPoll = std::chrono::microseconds(500);
constexpr auto kMaxPoll = std::chrono::milliseconds(5);

class SqliteStore final : public Store {
 public:
  SqliteStore(std::unique_ptr<Db> db, const StoreOptions& options, std::int64_t epoch)
      : db_(std::move(db)),
        clock_(options.clock),
        boot_id_(options.host->boot_id()),
        epoch_(epoch) {}

  Result<AcquireResult> acquire(const AcquireRequest& req) override;
  Result<LeaseOutcome> renew(std::string_view key, std::int64_t token, milliseconds ttl) override;
  Result<LeaseOutcome> release(std::string_view key, std::int64_t token,
                               const Outcome& outcome) override;
  Result<Handoff> release_and_acquire(std::string_view key, std::int64_t token,
                                      const Outcome& outcome, const AcquireRequest& next) override;
  Result<KeyState> get(std::string_view key) override;
  Result<std::vector<Execution>> list(const ListFilter& filter) override;
  Result<std::int64_t> wait(std::string_view key, std::int64_t version, MonoTime deadline,
                            std::stop_token stop) override;
  Result<ForceReleaseResult> force_release(std::string_view key, std::string_view reason,
                                           const Owner& by) override;
  Result<PurgeResult> purge(const PurgeRequest& req) override;
  Status leave_queue(std::string_view key, std::string_view execution_id) override;
  std::string url() const override { return "sqlite://" + db_->path(); }

 private:
  Now now() {
    auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(
        clock_->system_now().time_since_epoch());
    return Now{clock_->monotonic_now().time_since_epoch().count(), boot_id_, wall.count()};
  }

  // Runs `body` inside a write transaction and commits it (waking this process's waiters) when
  // it succeeds, together with the writes of other threads queued at the same time.
  template <typename F>
  auto write(F body) -> decltype(body()) {
    return writes_.write(body);
  }

  // As write(), but first in a deferred transaction that takes the writer lock only if `body`
  // writes: a waiter asking again for a key that is still busy changes nothing and should not
  // hold up the writers. If the deferred transaction cannot write (another process wrote first),
  // it is rolled back and `body` runs again in an immediate one.
  template <typename F>
  auto write_optimistic(F body) -> decltype(body()) {
    std::lock_guard lock(mu_);
    auto result = write_locked(body, /*immediate=*/false);
    if (!result.has_value() && db_->busy()) {
      result = write_locked(body, /*immediate=*/true);
    }
    return result;
  }

  template <typename F>
  auto write_locked(F& body, bool immediate) -> decltype(body()) {
    WriteTxn txn(*db_);
    AEC_RETURN_IF_ERROR(txn.begin(immediate));
    auto result = body();
    if (result.has_value()) {
      AEC_RETURN_IF_ERROR(txn.commit());
      committed_.notify_all();
    }
    return result;
  }

  Result<AcquireResult> acquire_in_txn(const AcquireRequest& req);
  Result<LeaseOutcome> release_in_txn(std::string_view key, std::int64_t token,
                                      const Outcome& outcome);
  // Sets result to Busy when the slots are taken or the queue holds the caller back, keeping the
  // caller's queue place when it asked to queue, or removing it when the caller is granted.
  Status check_busy(const AcquireRequest& req, const Now& t, sqlite::Leases& live,
                    AcquireResult& result);
  Result<KeyState> get_in_read(std::string_view key);
  Result<int> reap_all();
  // Deletes up to req.batch_size executions chosen by `select`; returns how many.
  Result<int> purge_batch(const std::string& select, std::int64_t cutoff, const PurgeRequest& req);

  std::mutex mu_;  // guards db_
  std::unique_ptr<Db> db_;
  std::shared_ptr<Clock> clock_;
  std::string boot_id_;
  std::int64_t epoch_;
  std::condition_variable_any committed_;  // notified after each local commit
  sqlite::WriteQueue writes_{*db_, mu_, committed_};
};

Result<AcquireResult> SqliteStore::acquire(const AcquireRequest& req) {
  AEC_RETURN_IF_ERROR(check_acquire_request(req));
  // Waiters ask again on every change; most of the time the answer is still Busy and nothing is
  // written, so their tries take no lock. Every other caller means to write: lock up front.
  if (req.queue) {
    return write_optimistic([&] { return acquire_in_txn(req); });
  }
  return write([&] { return acquire_in_txn(req); });
}

Status SqliteStore::check_busy(const AcquireRequest& req, const Now& t, sqlite::Leases& live,
                               AcquireResult& result) {
  AEC_ASSIGN_OR_RETURN(sqlite::QueueView queue,
                       sqlite::read_queue(*db_, req.key, req.execution_id, t));
  int free = req.limit - static_cast<int>(live.holders.size());
  if (free > 0 && queue.ahead < free) {
    if (queue.mine != 0) {
      AEC_RETURN_IF_ERROR(sqlite::leave_place(*db_, req.key, req.execution_id).status());
    }
    return Status::ok();  // granted: a free slot, and no more callers in line ahead than slots
  }
  result.outcome = AcquireOutcome::Busy;
  result.waiting_ahead = queue.ahead;
  std::int64_t lapse = free <= 0 ? live.earliest_expiry_ns : queue.earliest_ahead_ns;
  result.retry_in = std::chrono::ceil<milliseconds>(std::chrono::nanoseconds(lapse - t.boot_ns));
  result.holders = std::move(live.holders);
  if (!req.queue) {
    return Status::ok();
  }
  std::int64_t ttl_ns = std::chrono::nanoseconds(req.queue_ttl).count();
  if (queue.mine != 0 && queue.mine_expires_ns - t.boot_ns > ttl_ns / 2) {
    return Status::ok();  // the place is fresh enough: spare the waiters a write on every poll
  }
  return sqlite::keep_place(*db_, req.key, req.execution_id, queue.mine, boot_id_,
                            t.boot_ns + ttl_ns);
}

Result<AcquireResult> SqliteStore::acquire_in_txn(const AcquireRequest& req) {
  Now t = now();
  AEC_ASSIGN_OR_RETURN(KeyRow key, sqlite::read_key(*db_, req.key));
  AEC_ASSIGN_OR_RETURN(sqlite::Leases leases, sqlite::read_leases(*db_, req.key, t));
  AEC_ASSIGN_OR_RETURN(int reaped, sqlite::reap(*db_, req.key, leases, t));
  bool changed = reaped > 0;
  AcquireResult result{.outcome = AcquireOutcome::Granted};  // unless a check below says no
  if (req.once) {
    AEC_ASSIGN_OR_RETURN(result.done_by, sqlite::last_succeeded(*db_, req.key));
    if (result.done_by) {
      result.outcome = AcquireOutcome::Done;
    }
  }
  Execution e{.id = req.execution_id,
              .key = req.key,
              .owner = req.owner,
              .started_at = SysTime(std::chrono::milliseconds(t.wall_ms)),
              .labels = req.labels};
  if (!result.done_by) {
    AEC_RETURN_IF_ERROR(check_busy(req, t, leases, result));
  }
  if (result.outcome == AcquireOutcome::Granted) {
    e.token = std::max(key.last_token + 1, sqlite::epoch_floor(epoch_));
    key.last_token = e.token;
    AEC_ASSIGN_OR_RETURN(std::int64_t seq, sqlite::insert_execution(*db_, e));
    std::int64_t expires = t.boot_ns + std::chrono::nanoseconds(req.ttl).count();
    AEC_RETURN_IF_ERROR(sqlite::insert_lease(*db_, req.key, e.token, seq, boot_id_, expires));
    result.lease =
        Lease{.key = req.key, .execution_id = req.execution_id, .token = e.token, .ttl = req.ttl};
    changed = true;
  } else if (req.record_skipped) {
    e.status = ExecutionStatus::Skipped;
    e.ended_at = e.started_at;
    e.reason = skip_reason(result);
    AEC_RETURN_IF_ERROR(sqlite::insert_execution(*db_, e).status());
    changed = true;
  }
  if (changed) {
    ++key.version;
    AEC_RETURN_IF_ERROR(sqlite::write_key(*db_, req.key, key));
  }
  result.version = key.version;
  return result;
}

Result<LeaseOutcome> SqliteStore::renew(std::string_view key, std::int64_t token,
                                        milliseconds ttl) {
  AEC_RETURN_IF_ERROR(check_lease_args(key, token, ttl));
  // One conditional UPDATE, atomic on its own: it extends the lease only while it is live under
  // this boot, so an expired lease is never revived, even when nobody has reaped it yet.
  static constexpr const char* kSql =
      "UPDATE aec_leases SET expires_ns = ? "
      "WHERE key = ? AND token = ? AND boot_id = ? AND expires_ns > ?";
  return write([&]() -> Result<LeaseOutcome> {
    Now t = now();
    AEC_ASSIGN_OR_RETURN(Stmt * st, db_->prepare(kSql));
    st->bind(1, t.boot_ns + std::chrono::nanoseconds(ttl).count()).bind(2, key).bind(3, token);
    st->bind(4, boot_id_).bind(5, t.boot_ns);
    AEC_ASSIGN_OR_RETURN(int changed, db_->run(*st));
    return changed == 1 ? LeaseOutcome::Ok : LeaseOutcome::Lost;
  });
}

Result<LeaseOutcome> SqliteStore::release(std::string_view key, std::int64_t token,
                                          const Outcome& outcome) {
  AEC_RETURN_IF_ERROR(check_release_args(key, token, outcome));
  return write([&] { return release_in_txn(key, token, outcome); });
}

Result<Handoff> SqliteStore::release_and_acquire(std::string_view key, std::int64_t token,
                                                 const Outcome& outcome,
                                                 const AcquireRequest& next) {
  AEC_RETURN_IF_ERROR(check_release_args(key, token, outcome));
  AEC_RETURN_IF_ERROR(check_handoff(key, next));
  AEC_RETURN_IF_ERROR(check_acquire_request(next));
  return write([&]() -> Result<Handoff> {
    AEC_ASSIGN_OR_RETURN(LeaseOutcome released, release_in_txn(key, token, outcome));
    // An error undoes both: the caller sees the release fail, and nothing changed.
    AEC_ASSIGN_OR_RETURN(AcquireResult granted, acquire_in_txn(next));
    return Handoff{.released = released, .next = std::move(granted)};
  });
}

Result<LeaseOutcome> SqliteStore::release_in_txn(std::string_view key, std::int64_t token,
                                                 const Outcome& outcome) {
  // One conditional DELETE frees the lease only while it is live under this boot, and returns
  // its execution so the outcome is recorded in the same transaction.
  static constexpr const char* kFree =
      "DELETE FROM aec_leases WHERE key = ? AND token = ? AND boot_id = ? AND expires_ns > ? "
      "RETURNING exec_seq";
  static constexpr const char* kStale =
      "SELECT seq FROM aec_executions WHERE key = ? AND token = ? AND status = 'running'";
  Now t = now();
  AEC_ASSIGN_OR_RETURN(Stmt * free, db_->prepare(kFree));
  free->bind(1, key).bind(2, token).bind(3, boot_id_).bind(4, t.boot_ns);
  AEC_ASSIGN_OR_RETURN(bool live, db_->step(*free));
  std::int64_t seq = live ? free->int64(0) : 0;
  if (live) {
    AEC_RETURN_IF_ERROR(db_->run(*free).status());  // finish the statement
    AEC_RETURN_IF_ERROR(sqlite::end_execution(*db_, seq, outcome.status, outcome.exit_code,
                                              outcome.reason, t.wall_ms)
                            .status());
    AEC_RETURN_IF_ERROR(sqlite::bump_version(*db_, key));
    return LeaseOutcome::Ok;
  }
  // Stale token: record its own execution Lost (if nobody has yet), reaping its expired lease
  // row with it; no other lease is touched.
  AEC_RETURN_IF_ERROR(sqlite::reap_key(*db_, key, t).status());
  AEC_ASSIGN_OR_RETURN(Stmt * stale, db_->prepare(kStale));
  stale->bind(1, key).bind(2, token);
  AEC_ASSIGN_OR_RETURN(bool running, db_->step(*stale));
  seq = running ? stale->int64(0) : 0;
  if (running) {
    sqlite3_reset(stale->raw());
    AEC_RETURN_IF_ERROR(sqlite::end_execution(*db_, seq, ExecutionStatus::Lost, outcome.exit_code,
                                              "lease expired", t.wall_ms)
                            .status());
  }
  // bump_version is a no-op for a key never seen (no row): nothing changed then.
  AEC_RETURN_IF_ERROR(sqlite::bump_version(*db_, key));
  return LeaseOutcome::Lost;
}

Result<KeyState> SqliteStore::get(std::string_view key) {
  AEC_RETURN_IF_ERROR(validate_key(key));
  // A read, not a write: expired leases are left for the next write to reap, and read_leases()
  // already leaves them out, so `aec status` and `aec explain` change nothing.
  std::lock_guard lock(mu_);
  AEC_RETURN_IF_ERROR(db_->exec("BEGIN"));
  Result<KeyState> state = get_in_read(key);
  Status end = db_->exec(state ? "COMMIT" : "ROLLBACK");
  if (state && !end.is_ok()) {
    return end;
  }
  return state;
}

Result<KeyState> SqliteStore::get_in_read(std::string_view key) {
  Now t = now();
  AEC_ASSIGN_OR_RETURN(KeyRow row, sqlite::read_key(*db_, key));
  KeyState state{.key = std::string(key)};
  if (!row.exists) {
    return state;
  }
  AEC_ASSIGN_OR_RETURN(sqlite::Leases live, sqlite::read_leases(*db_, key, t));
  AEC_ASSIGN_OR_RETURN(state.last_ended, sqlite::last_ended(*db_, key));
  AEC_ASSIGN_OR_RETURN(state.queue, sqlite::live_queue(*db_, key, t));
  state.holders = std::move(live.holders);
  state.last_token = row.last_token;
  state.version = row.version;
  return state;
}

Result<int> SqliteStore::reap_all() {
  static constexpr const char* kExpiredKeys =
      "SELECT DISTINCT key FROM aec_leases WHERE boot_id <> ? OR expires_ns <= ? LIMIT 500";
  return write([&]() -> Result<int> {
    Now t = now();
    std::vector<std::string> keys;
    AEC_ASSIGN_OR_RETURN(Stmt * st, db_->prepare(kExpiredKeys));
    st->bind(1, boot_id_).bind(2, t.boot_ns);
    AEC_RETURN_IF_ERROR(db_->for_each_row(*st, [&](Stmt& row) {
      keys.push_back(row.text(0));
      return Status::ok();
    }));
    static constexpr const char* kLapsedPlaces =
        "DELETE FROM aec_queue WHERE boot_id <> ? OR expires_ns <= ?";
    AEC_ASSIGN_OR_RETURN(Stmt * lapsed, db_->prepare(kLapsedPlaces));
    lapsed->bind(1, boot_id_).bind(2, t.boot_ns);
    AEC_RETURN_IF_ERROR(db_->run(*lapsed).status());
    int total = 0;
    for (const std::string& key : keys) {
      AEC_ASSIGN_OR_RETURN(KeyRow row, sqlite::read_key(*db_, key));
      AEC_ASSIGN_OR_RETURN(int reaped, sqlite::reap_key(*db_, key, t));
      ++row.version;
      AEC_RETURN_IF_ERROR(sqlite::write_key(*db_, key, row));
      total += reaped;
    }
    return total;
  });
}

Result<std::vector<Execution>> SqliteStore::list(const ListFilter& filter) {
  // A read: an execution whose lease has expired but is not reaped yet is shown as the Lost
  // execution it is (the next write records it so), computed here rather than written.
  static constexpr const char* kLive =
      "(e.status = 'running' AND NOT EXISTS (SELECT 1 FROM aec_leases l WHERE l.key = e.key AND "
      "l.token = e.token AND l.boot_id = ?4 AND l.expires_ns > ?5))";
  std::string sql = fmt::format(
      "SELECT e.id, e.key, e.token, CASE WHEN {0} THEN 'lost' ELSE e.status END AS shown, "
      "e.host, e.pid, e.user, e.started_ms, e.ended_ms, e.exit_code, e.labels, "
      "CASE WHEN {0} THEN 'lease expired' ELSE e.reason END "
      "FROM aec_executions e WHERE 1",
      kLive);
  if (!filter.key.empty()) {
    sql += " AND e.key = ?1";
  }
  if (!filter.prefix.empty()) {
    sql += " AND substr(e.key, 1, length(?2)) = ?2";
  }
  if (!filter.statuses.empty()) {
    sql += " AND shown IN (";
    for (std::size_t i = 0; i < filter.statuses.size(); ++i) {
      sql += fmt::format("{}'{}'", i == 0 ? "" : ", ", to_string(filter.statuses[i]));
    }
    sql += ")";
  }
  sql += " ORDER BY e.seq DESC LIMIT ?3 OFFSET ?6";
  std::lock_guard lock(mu_);
  Now t = now();
  AEC_ASSIGN_OR_RETURN(std::unique_ptr<Stmt> st, db_->prepare_dynamic(sql));
  if (!filter.key.empty()) {
    st->bind(1, filter.key);
  }
  if (!filter.prefix.empty()) {
    st->bind(2, filter.prefix);
  }
  st->bind(3, static_cast<std::int64_t>(std::min<std::size_t>(filter.limit, INT64_MAX)));
  st->bind(4, boot_id_).bind(5, t.boot_ns);
  st->bind(6, static_cast<std::int64_t>(std::min<std::size_t>(filter.offset, INT64_MAX)));
  std::vector<Execution> out;
  AEC_RETURN_IF_ERROR(db_->for_each_row(*st, [&](Stmt& row) {
    AEC_ASSIGN_OR_RETURN(Execution e, sqlite::read_execution(row, 0));
    out.push_back(std::move(e));
    return Status::ok();
  }));
  return out;
}

Result<std::int64_t> SqliteStore::wait(std::string_view key, std::int64_t version,
                                       MonoTime deadline, std::stop_token stop) {
  AEC_RETURN_IF_ERROR(validate_key(key));
  std::minstd_rand jitter(
      static_cast<unsigned>(clock_->monotonic_now().time_since_epoch().count()));
  auto pause = std::chrono::duration_cast<std::chrono::nanoseconds>(kFirstPoll);
  std::unique_lock lock(mu_);
  for (;;) {
    AEC_ASSIGN_OR_RETURN(KeyRow row, sqlite::read_key(*db_, key));
    if (row.version != version || clock_->monotonic_now() >= deadline) {
      return row.version;
    }
    if (stop.stop_requested()) {
      return Status(Code::Cancelled, "wait cancelled");
    }
    // Sleep a poll interval of real time (other processes' commits are only seen by polling),
    // or until a commit in this process, or the stop token; the deadline is on the store clock.
    auto left = deadline - clock_->monotonic_now();
    auto nap = std::min<std::chrono::nanoseconds>(pause, left);
    nap = std::max<std::chrono::nanoseconds>(nap, std::chrono::microseconds(100));
    committed_.wait_for(lock, stop, nap, [] { return false; });
    auto next = pause * 2;
    pause = std::min<std::chrono::nanoseconds>(next, kMaxPoll);
    pause -= pause / 4 * (jitter() % 100) / 100;
  }
}

Result<ForceReleaseResult> SqliteStore::force_release(std::string_view key, std::string_view reason,
                                                      const Owner& by) {
  AEC_RETURN_IF_ERROR(validate_key(key));
  static constexpr const char* kDelete = "DELETE FROM aec_leases WHERE key = ?";
  return write([&]() -> Result<ForceReleaseResult> {
    Now t = now();
    AEC_ASSIGN_OR_RETURN(KeyRow row, sqlite::read_key(*db_, key));
    AEC_ASSIGN_OR_RETURN(sqlite::Leases live, sqlite::read_leases(*db_, key, t));
    AEC_ASSIGN_OR_RETURN(int reaped, sqlite::reap(*db_, key, live, t));
    std::string why = forced_reason(reason, by);
    for (std::int64_t seq : live.live_seqs) {
      AEC_RETURN_IF_ERROR(
          sqlite::end_execution(*db_, seq, ExecutionStatus::Cancelled, std::nullopt, why, t.wall_ms)
              .status());
    }
    AEC_ASSIGN_OR_RETURN(Stmt * del, db_->prepare(kDelete));
    del->bind(1, key);
    AEC_RETURN_IF_ERROR(db_->run(*del).status());
    ForceReleaseResult result;
    for (Holder& h : live.holders) {
      h.execution.status = ExecutionStatus::Cancelled;
      h.execution.reason = why;
      h.execution.ended_at = SysTime(std::chrono::milliseconds(t.wall_ms));
      result.released.push_back(std::move(h.execution));
    }
    if (row.exists && (reaped > 0 || !live.live_seqs.empty())) {
      ++row.version;
      AEC_RETURN_IF_ERROR(sqlite::write_key(*db_, key, row));
    }
    result.version = row.version;
    return result;
  });
}

Status SqliteStore::leave_queue(std::string_view key, std::string_view execution_id) {
  AEC_RETURN_IF_ERROR(validate_key(key));
  return write([&]() -> Result<bool> {
           AEC_ASSIGN_OR_RETURN(bool left, sqlite::leave_place(*db_, key, execution_id));
           if (left) {
             // The next in line may be free to go now: wake the waiters.
             AEC_ASSIGN_OR_RETURN(KeyRow row, sqlite::read_key(*db_, key));
             ++row.version;
             AEC_RETURN_IF_ERROR(sqlite::write_key(*db_, key, row));
           }
           return left;
         })
      .status();
}

Result<PurgeResult> SqliteStore::purge(const PurgeRequest& req) {
  AEC_RETURN_IF_ERROR(check_purge_request(req));
  PurgeResult result;
  for (;;) {
    AEC_ASSIGN_OR_RETURN(int reaped, reap_all());
    result.leases_expired += reaped;
    if (reaped == 0) {
      break;
    }
  }
  std::string statuses = "'succeeded', 'failed', 'lost', 'cancelled', 'skipped'";
  if (!req.statuses.empty()) {
    statuses = "'_'";
    for (ExecutionStatus s : req.statuses) {
      statuses += fmt::format(", '{}'", to_string(s));
    }
  }
  std::string select = fmt::format(
      "SELECT seq, key FROM aec_executions WHERE ended_ms IS NOT NULL AND ended_ms < ? "
      "AND status <> 'running' AND status IN ({}) LIMIT ?",
      statuses);
  std::int64_t cutoff = now().wall_ms - req.older_than.count();
  // One bounded batch per transaction, so a large purge never holds the writer lock for long.
  for (;;) {
    AEC_ASSIGN_OR_RETURN(int deleted, write([&] { return purge_batch(select, cutoff, req); }));
    result.executions_deleted += deleted;
    if (deleted < static_cast<int>(req.batch_size)) {
      return result;
    }
  }
}

Result<int> SqliteStore::purge_batch(const std::string& select, std::int64_t cutoff,
                                     const PurgeRequest& req) {
  static constexpr const char* kDelete = "DELETE FROM aec_executions WHERE seq = ?";
  AEC_ASSIGN_OR_RETURN(auto st, db_->prepare_dynamic(select));
  st->bind(1, cutoff).bind(2, static_cast<std::int64_t>(req.batch_size));
  std::set<std::string> keys;
  std::vector<std::int64_t> seqs;
  AEC_RETURN_IF_ERROR(db_->for_each_row(*st, [&](Stmt& row) {
    seqs.push_back(row.int64(0));
    keys.insert(row.text(1));
    return Status::ok();
  }));
  for (std::int64_t seq : seqs) {
    AEC_ASSIGN_OR_RETURN(Stmt * del, db_->prepare(kDelete));
    del->bind(1, seq);
    AEC_RETURN_IF_ERROR(db_->run(*del).status());
  }
  for (const std::string& key : keys) {  // history changed: move each key's version
    AEC_ASSIGN_OR_RETURN(KeyRow row, sqlite::read_key(*db_, key));
    ++row.version;
    AEC_RETURN_IF_ERROR(sqlite::write_key(*db_, key, row));
  }
  return static_cast<int>(seqs.size());
}

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path,
                                                 const StoreOptions& options) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!options.create && !std::filesystem::exists(path, ec)) {
    return Status(Code::NotFound, fmt::format("sqlite store {} does not exist yet", path));
  }
  if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return unavailable(fmt::format("sqlite store {}: cannot create directory {}: {}", path,
                                     parent.string(), ec.message()));
    }
  }
  auto timeout = static_cast<int>(std::min<std::int64_t>(options.lock_timeout.count(), INT32_MAX));
  AEC_ASSIGN_OR_RETURN(std::unique_ptr<Db> db, Db::open(path, timeout));
  AEC_ASSIGN_OR_RETURN(std::int64_t epoch, sqlite::prepare_schema(*db, options.host->boot_id()));
  if (options.durable) {
    AEC_RETURN_IF_ERROR(db->exec("PRAGMA synchronous=FULL"));  // fsync the WAL at every commit
  }
  return std::unique_ptr<Store>(std::make_unique<SqliteStore>(std::move(db), options, epoch));
}

}  // namespace aec
