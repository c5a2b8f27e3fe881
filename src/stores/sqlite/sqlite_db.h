// A thin RAII layer over the SQLite C API for the sqlite store: one connection, cached prepared
// statements, and SQLite result codes turned into aec::Status. Not thread-safe: the store
// serialises access with its own mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include <sqlite3.h>

#include <aec/status.h>

#include "core/random.h"

namespace aec::sqlite {

// A prepared statement, reset and unbound after each use by Db::query().
class Stmt {
 public:
  explicit Stmt(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Binds parameters 1..N in order. Strings are copied by SQLite (SQLITE_TRANSIENT).
  Stmt& bind(int i, std::int64_t v);
  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, std::nullopt_t);

  std::int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string text(int col) const;

  sqlite3_stmt* raw() { return stmt_; }

 private:
  sqlite3_stmt* stmt_;
};

class Db {
 public:
  // Opens (creating if missing) the file at `path`.
  static Result<std::unique_ptr<Db>> open(const std::string& path, int busy_timeout_ms);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Runs SQL text with no results (several statements allowed).
  Status exec(const char* sql);
  // As exec(), but retries while SQLite answers BUSY without waiting itself (it does so where
  // waiting could deadlock, e.g. switching a new file to WAL while another connection writes),
  // until the busy timeout.
  Status exec_retrying(const char* sql);

  // Prepares (once, then cached by `sql`'s address) and resets a statement for binding.
  Result<Stmt*> prepare(const char* sql);

  // Prepares a statement built at run time (not cached), for queries with variable filters.
  Result<std::unique_ptr<Stmt>> prepare_dynamic(const std::string& sql);

  // Steps `stmt`: true when a row is ready, false when done. Resets on done or error.
  Result<bool> step(Stmt& stmt);
  // Steps `stmt` to its end, calling row(stmt) -> Status for each row; stops at the first
  // error, leaving the statement reset.
  template <typename F>
  Status for_each_row(Stmt& stmt, F row) {
    for (;;) {
      Result<bool> more = step(stmt);
      if (!more) {
        return more.error();
      }
      if (!*more) {
        return Status::ok();
      }
      if (Status s = row(stmt); !s.is_ok()) {
        sqlite3_reset(stmt.raw());
        return s;
      }
    }
  }

  // Steps a statement to completion; returns the number of rows changed.
  Result<int> run(Stmt& stmt);
  // Prepares (cached, as prepare()) and runs one statement without results.
  Status run(const char* sql);

  // True when the file says it is in WAL mode (its header's format bytes are 2), read from the
  // file itself: a mode set once stays in the file, so a store need not set it at every open.
  bool file_in_wal_mode();

  // Checkpoints (passively) once the WAL holds kCheckpointPages frames after a commit, as
  // SQLite's auto-checkpoint would, and on close, when it holds more than
  // kCloseCheckpointPages and no other connection is busy, checkpoints it and starts it over,
  // so the next process's recovery read of the WAL stays short.
  void enable_wal_policy();
  static constexpr int kCheckpointPages = 4000;
  static constexpr int kCloseCheckpointPages = 128;

  // True when the last error this connection reported was SQLITE_BUSY (a lock held elsewhere).
  bool busy() const { return last_busy_; }

  // Maps a SQLite result code to a Status with the store path and `what` in the message.
  Status error(int rc, std::string_view what) const;

  sqlite3* raw() { return db_; }
  const std::string& path() const { return path_; }

 private:
  Db(sqlite3* db, std::string path, int busy_timeout_ms)
      : db_(db), path_(std::move(path)), busy_timeout_ms_(busy_timeout_ms) {}
  static int on_busy(void* self, int count);
  static int on_wal_commit(void* self, sqlite3* db, const char* name, int pages);
  void start_wal_over();

  sqlite3* db_;
  std::string path_;
  int busy_timeout_ms_;
  std::chrono::steady_clock::time_point busy_since_{};  // when the current wait for a lock began
  std::minstd_rand jitter_{static_cast<std::uint_fast32_t>(random64())};
  int wal_pages_ = 0;               // frames in the WAL after this connection's last commit
  mutable bool last_busy_ = false;  // set by error()
  std::map<const char*, std::unique_ptr<Stmt>> cache_;
};

// A BEGIN IMMEDIATE transaction: rolled back on destruction unless commit() succeeded.
// IMMEDIATE takes the write lock up front, so two processes never both read a key's state
// and then both decide to grant it: the second waits (busy_timeout) and then reads the first's
// committed grant.
//
// A deferred transaction (begin(false)) takes no lock until its first write, so one that only
// reads costs other writers nothing; when its first write finds another writer ahead of it, the
// caller gets an error for which Db::busy() is true and retries with an immediate one.
class WriteTxn {
 public:
  explicit WriteTxn(Db& db) : db_(db) {}
  ~WriteTxn();
  Status begin(bool immediate = true);
  Status commit();

 private:
  Db& db_;
  bool open_ = false;
};

}  // namespace aec::sqlite
