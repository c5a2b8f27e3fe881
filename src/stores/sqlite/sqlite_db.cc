#include "stores/sqlite/sqlite_db.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "core/status_macros.h"

namespace aec::sqlite {

Stmt& Stmt::bind(int i, std::int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}

Stmt& Stmt::bind(int i, std::string_view v) {
  sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Stmt& Stmt::bind(int i, std::nullopt_t) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

std::string Stmt::text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), n);
}

namespace {

// Process-wide SQLite settings, made once before the first connection opens (sqlite3_config must
// precede sqlite3_initialize; should SQLite be initialised already, the call fails and changes
// nothing). No initial bulk allocation for each connection's page cache: SQLite would otherwise
// carve 20 pages' worth of memory (~90 KB) up front and write a free-list link into every slot,
// ~25 page faults at each open; a short-lived `aec run` touches a dozen pages in all, and a
// long-lived aecd allocates its cache lines one at a time and keeps them.
void configure_sqlite_once() {
  static std::once_flag once;
  std::call_once(once, [] { sqlite3_config(SQLITE_CONFIG_PAGECACHE, nullptr, 0, 0); });
}

}  // namespace

Result<std::unique_ptr<Db>> Db::open(const std::string& path, int busy_timeout_ms) {
  configure_sqlite_once();
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<Db> db(new Db(raw, path, busy_timeout_ms));
  if (rc != SQLITE_OK) {
    return db->error(rc, "cannot open the database");
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_handler(raw, &Db::on_busy, db.get());
  return db;
}

// SQLite's own busy timeout sleeps 1, 2, 5 … up to 100 ms between tries, so under contention a
// process that found the lock taken sleeps while its peers take it again within microseconds:
// multi-second stalls and unfair service. This handler tries again after 50–250 µs at first,
// never waiting more than about a millisecond between tries, with jitter so the waiters do not
// wake in step, until the lock timeout.
int Db::on_busy(void* self, int count) {
  Db& db = *static_cast<Db*>(self);
  auto now = std::chrono::steady_clock::now();
  if (count == 0) {
    db.busy_since_ = now;
  }
  if (now - db.busy_since_ >= std::chrono::milliseconds(db.busy_timeout_ms_)) {
    return 0;  // give up: the caller sees SQLITE_BUSY
  }
  int base_us = std::min(100 << std::min(count / 2, 5), 2000);
  int jitter_us = static_cast<int>(db.jitter_() % static_cast<unsigned>(base_us / 2 + 1));
  std::this_thread::sleep_for(std::chrono::microseconds(base_us + jitter_us));
  return 1;
}

void Db::enable_wal_policy() {
  sqlite3_wal_hook(db_, &Db::on_wal_commit, this);
}

int Db::on_wal_commit(void* self, sqlite3* db, const char* name, int pages) {
  static_cast<Db*>(self)->wal_pages_ = pages;
  if (pages >= kCheckpointPages) {
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  }
  return SQLITE_OK;
}

Db::~Db() {
  cache_.clear();  // finalize statements before closing
  if (wal_pages_ > kCloseCheckpointPages) {
    // The next process to open the store (when no other has it open) rebuilds SQLite's index of
    // the WAL by reading and checksumming every frame of its current generation, so a WAL that
    // only grows makes every `aec run` slower (thousands of frames: a passive checkpoint copies
    // the frames but SQLite starts the WAL over only at a later write of the same process, which
    // a short-lived `aec run` never makes). So the last to close a long WAL copies it into the
    // database, then makes one small write, which starts the WAL over: a new header with new
    // salts, and the old frames no longer count. The next opener reads one frame. Cheaper than
    // a TRUNCATE checkpoint, which cuts the file to nothing (an ext4 truncate, ~0.6 ms here)
    // and leaves the next writer to sync a new header and the directory. Without waiting: when
    // another connection reads or writes, the checkpoint or the write gives up at once (the
    // last to close does it).
    sqlite3_busy_handler(db_, nullptr, nullptr);
    int frames = -1;
    int copied = -1;
    if (sqlite3_wal_checkpoint_v2(db_, "main", SQLITE_CHECKPOINT_PASSIVE, &frames, &copied) ==
            SQLITE_OK &&
        frames > 0 && copied == frames) {
      start_wal_over();
    }
  }
  sqlite3_close_v2(db_);
}

// Rewrites the database header's user version (unused by aec) with the value it has: the
// smallest write there is. Being the first write after a complete checkpoint, it starts the WAL
// over (SQLite syncs the new WAL header). Best effort: a failure leaves the WAL as it was.
void Db::start_wal_over() {
  Result<std::unique_ptr<Stmt>> read = prepare_dynamic("PRAGMA user_version");
  if (!read) {
    return;
  }
  Result<bool> row = step(**read);
  if (!row || !*row) {
    return;
  }
  const std::int64_t version = (*read)->int64(0);
  read->reset();  // finalized: the write below runs with no read of this connection open
  (void)exec(fmt::format("PRAGMA user_version = {}", version).c_str());
}

Status Db::exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  sqlite3_free(err);
  return rc == SQLITE_OK ? Status::ok() : error(rc, "statement failed");
}

Status Db::exec_retrying(const char* sql) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_timeout_ms_);
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) {
      return Status::ok();
    }
    if ((rc & 0xFF) != SQLITE_BUSY || std::chrono::steady_clock::now() >= deadline) {
      return error(rc, "statement failed");
    }
    std::this_thread::sleep_for(pause);  // another process holds the lock: back off and retry
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

Result<Stmt*> Db::prepare(const char* sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) {
      return error(rc, "cannot prepare a statement");
    }
    it = cache_.emplace(sql, std::make_unique<Stmt>(stmt)).first;
  }
  sqlite3_reset(it->second->raw());
  sqlite3_clear_bindings(it->second->raw());
  return it->second.get();
}

Result<std::unique_ptr<Stmt>> Db::prepare_dynamic(const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return error(rc, "cannot prepare a statement");
  }
  return std::make_unique<Stmt>(stmt);
}

Result<bool> Db::step(Stmt& stmt) {
  int rc = sqlite3_step(stmt.raw());
  if (rc == SQLITE_ROW) {
    return true;
  }
  sqlite3_reset(stmt.raw());
  if (rc == SQLITE_DONE) {
    return false;
  }
  return error(rc, "query failed");
}

Result<int> Db::run(Stmt& stmt) {
  Result<bool> r = step(stmt);
  while (r && *r) {
    r = step(stmt);
  }
  if (!r) {
    return r.error();
  }
  return sqlite3_changes(db_);
}

Status Db::run(const char* sql) {
  AEC_ASSIGN_OR_RETURN(Stmt * st, prepare(sql));
  return run(*st).status();
}

bool Db::file_in_wal_mode() {
  sqlite3_file* file = nullptr;
  if (sqlite3_file_control(db_, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK ||
      file == nullptr || file->pMethods == nullptr) {
    return false;
  }
  unsigned char version[2] = {0, 0};  // header bytes 18 and 19: file format write/read version
  return file->pMethods->xRead(file, version, sizeof version, 18) == SQLITE_OK && version[0] == 2 &&
         version[1] == 2;
}

Status Db::error(int rc, std::string_view what) const {
  last_busy_ = (rc & 0xFF) == SQLITE_BUSY;
  std::string detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  switch (rc & 0xFF) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return unavailable(fmt::format(
          "sqlite store {}: {}: the database is locked by another process ({}); retry, or find "
          "the process holding it",
          path_, what, detail));
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return Status(Code::DataLoss,
                    fmt::format("sqlite store {} is not an aec database or is corrupt ({}): "
                                "move it aside and let aec create a new one",
                                path_, detail));
    case SQLITE_CANTOPEN:
      return unavailable(
          fmt::format("sqlite store {}: {} ({}): check that the directory exists and is writable",
                      path_, what, detail));
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return Status(Code::PermissionDenied,
                    fmt::format("sqlite store {}: {} ({}): check the file's permissions", path_,
                                what, detail));
    case SQLITE_FULL:
    case SQLITE_IOERR:
      return unavailable(fmt::format("sqlite store {}: {}: I/O error ({})", path_, what, detail));
    default:
      return internal_error(fmt::format("sqlite store {}: {}: {}", path_, what, detail));
  }
}

WriteTxn::~WriteTxn() {
  if (open_) {
    sqlite3_exec(db_.raw(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

// BEGIN and COMMIT as cached statements: sqlite3_exec would compile them at every transaction.
Status WriteTxn::begin(bool immediate) {
  Status s = db_.run(immediate ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED");
  open_ = s.is_ok();
  return s;
}

Status WriteTxn::commit() {
  Status s = db_.run("COMMIT");
  if (s.is_ok()) {
    open_ = false;
  }
  return s;
}

}  // namespace aec::sqlite
