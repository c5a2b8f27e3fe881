// The bare recipe aec is measured against: a lease table in an SQLite WAL database, one
// conditional upsert to acquire and one delete to release, retried with a short sleep when the
// key is held. No history, no fencing counter, no waiting other than sleeping.
#include <algorithm>
#include <cstdint>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <sqlite3.h>

#include "contender.h"

namespace aec::bench {
namespace {

constexpr int kBusyTimeoutMs = 10'000;  // as aec's StoreOptions::lock_timeout
constexpr std::int64_t kTtlMs = 30'000;

constexpr const char* kSchema =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS leases("
    "  key TEXT PRIMARY KEY, token INTEGER NOT NULL, expires_at INTEGER NOT NULL);";
// Granted when the key has no row, or its lease expired: sqlite3_changes() is then 1.
constexpr const char* kAcquire =
    "INSERT INTO leases(key, token, expires_at) VALUES(?1, ?2, ?3) "
    "ON CONFLICT(key) DO UPDATE SET token=excluded.token, expires_at=excluded.expires_at "
    "WHERE leases.expires_at < ?4";
constexpr const char* kRelease = "DELETE FROM leases WHERE key=?1 AND token=?2";

std::int64_t now_ms() {
  // Every process of the host reads the same steady clock, so expiry compares across clients.
  return std::chrono::duration_cast<std::chrono::milliseconds>(BenchClock::now().time_since_epoch())
      .count();
}

Status sqlite_status(sqlite3* db, std::string_view what) {
  return unavailable(fmt::format("{}: {}", what, db ? sqlite3_errmsg(db) : "out of memory"));
}

Result<sqlite3*> open_db(const std::string& dir) {
  sqlite3* db = nullptr;
  const std::string path = dir + "/raw.db";
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    Status s = sqlite_status(db, "open " + path);
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  return db;
}

class RawSqliteSession final : public Session {
 public:
  RawSqliteSession(sqlite3* db, int client)
      : db_(db), next_token_(static_cast<std::int64_t>(client) << 40), rng_(client) {}
  ~RawSqliteSession() override {
    sqlite3_finalize(acquire_);
    sqlite3_finalize(release_);
    sqlite3_close(db_);
  }

  Status init() {
    if (sqlite3_exec(db_, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db_, kAcquire, -1, &acquire_, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db_, kRelease, -1, &release_, nullptr) != SQLITE_OK) {
      return sqlite_status(db_, "prepare");
    }
    return Status::ok();
  }

  Result<Acquired> acquire(const std::string& key, bool wait,
                           BenchClock::time_point give_up) override {
    return retry_with_backoff([&] { return try_acquire(key); }, wait, give_up, rng_, refused_);
  }

  Status release() override {
    sqlite3_bind_text(release_, 1, held_key_.data(), static_cast<int>(held_key_.size()),
                      SQLITE_STATIC);
    sqlite3_bind_int64(release_, 2, held_token_);
    const int rc = sqlite3_step(release_);
    sqlite3_reset(release_);
    if (rc != SQLITE_DONE) {
      return sqlite_status(db_, "release");
    }
    return sqlite3_changes(db_) == 1 ? Status::ok() : internal_error("release: lease not held");
  }

 private:
  // One attempt: true when granted.
  Result<bool> try_acquire(const std::string& key) {
    const std::int64_t token = ++next_token_;
    const std::int64_t now = now_ms();
    sqlite3_bind_text(acquire_, 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(acquire_, 2, token);
    sqlite3_bind_int64(acquire_, 3, now + kTtlMs);
    sqlite3_bind_int64(acquire_, 4, now);
    const int rc = sqlite3_step(acquire_);
    sqlite3_reset(acquire_);
    if (rc != SQLITE_DONE) {
      return sqlite_status(db_, "acquire");
    }
    if (sqlite3_changes(db_) != 1) {
      return false;
    }
    held_key_ = key;
    held_token_ = token;
    return true;
  }

  sqlite3* db_;
  sqlite3_stmt* acquire_ = nullptr;
  sqlite3_stmt* release_ = nullptr;
  std::int64_t next_token_;
  std::minstd_rand rng_;
  std::string held_key_;
  std::int64_t held_token_ = 0;
};

class RawSqliteContender final : public Contender {
 public:
  std::string_view name() const override { return "raw-sqlite"; }
  std::string_view guarantees() const override {
    return "one host; WAL, synchronous=NORMAL (survives any process crash, not a power loss); "
           "expiry; no fencing, no history, no line (retries)";
  }

  Status prepare(const std::string& dir) override {
    Result<sqlite3*> db = open_db(dir);
    if (!db) {
      return db.error();
    }
    Status s = sqlite3_exec(*db, kSchema, nullptr, nullptr, nullptr) == SQLITE_OK
                   ? Status::ok()
                   : sqlite_status(*db, "schema");
    sqlite3_close(*db);
    return s;
  }

  Result<std::unique_ptr<Session>> open(const std::string& dir, int client) override {
    Result<sqlite3*> db = open_db(dir);
    if (!db) {
      return db.error();
    }
    auto session = std::make_unique<RawSqliteSession>(*db, client);
    if (Status s = session->init(); !s.is_ok()) {
      return s;
    }
    return std::unique_ptr<Session>(std::move(session));
  }
};

}  // namespace

std::unique_ptr<Contender> make_raw_sqlite_contender() {
  return std::make_unique<RawSqliteContender>();
}

}  // namespace aec::bench
