#include "stores/sqlite/sqlite_schema.h"

#include <charconv>

#include <fmt/format.h>

#include "core/status_macros.h"

namespace aec::sqlite {
namespace {

constexpr const char* kCreate = R"sql(
CREATE TABLE IF NOT EXISTS aec_meta(
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL) WITHOUT ROWID;
-- One row per key ever acquired. Never deleted: last_token is the fencing-token counter.
CREATE TABLE IF NOT EXISTS aec_keys(
  key TEXT PRIMARY KEY,
  last_token INTEGER NOT NULL,
  version INTEGER NOT NULL) WITHOUT ROWID;
-- Live (and not yet reaped expired) leases. expires_ns is CLOCK_BOOTTIME of boot boot_id.
CREATE TABLE IF NOT EXISTS aec_leases(
  key TEXT NOT NULL,
  token INTEGER NOT NULL,
  exec_seq INTEGER NOT NULL,
  boot_id TEXT NOT NULL,
  expires_ns INTEGER NOT NULL,
  PRIMARY KEY(key, token)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aec_executions(
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  key TEXT NOT NULL,
  token INTEGER NOT NULL,
  status TEXT NOT NULL,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  user TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  ended_ms INTEGER,
  exit_code INTEGER,
  labels TEXT NOT NULL,
  reason TEXT NOT NULL);
-- Callers waiting in line for a key, first in line first (seq). A place lapses at expires_ns
-- (boot clock of boot_id) unless its waiter renews it.
CREATE TABLE IF NOT EXISTS aec_queue(
  seq INTEGER PRIMARY KEY,
  key TEXT NOT NULL,
  execution_id TEXT NOT NULL,
  boot_id TEXT NOT NULL,
  expires_ns INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS aec_queue_key ON aec_queue(key, seq);
-- Every index is written on the hot path, so there are only two: a key's history, and its
-- successes (what `once` asks). Purge scans; it runs rarely and in batches.
CREATE INDEX IF NOT EXISTS aec_executions_key ON aec_executions(key, seq);
CREATE INDEX IF NOT EXISTS aec_executions_succeeded ON aec_executions(key, seq)
  WHERE status = 'succeeded';
)sql";

Result<std::string> read_meta(Db& db, std::string_view name) {
  static constexpr const char* kSql = "SELECT value FROM aec_meta WHERE name = ?";
  Result<Stmt*> st = db.prepare(kSql);
  if (!st) {
    return st.error();
  }
  (*st)->bind(1, name);
  Result<bool> row = db.step(**st);
  if (!row) {
    return row.error();
  }
  std::string value = *row ? (*st)->text(0) : std::string();
  if (*row) {
    sqlite3_reset((*st)->raw());
  }
  return value;
}

Status write_meta(Db& db, std::string_view name, std::string_view value) {
  static constexpr const char* kSql =
      "INSERT INTO aec_meta(name, value) VALUES(?, ?) "
      "ON CONFLICT(name) DO UPDATE SET value = excluded.value";
  Result<Stmt*> st = db.prepare(kSql);
  if (!st) {
    return st.error();
  }
  (*st)->bind(1, name).bind(2, value);
  return db.run(**st).status();
}

// A file that already has tables but not ours belongs to something else: refuse to write to it.
// Returns whether the file is already an aec store.
Result<bool> check_foreign(Db& db) {
  AEC_ASSIGN_OR_RETURN(Stmt * st, db.prepare("SELECT count(*), coalesce(sum(name = 'aec_meta'), 0) "
                                             "FROM sqlite_master WHERE type = 'table'"));
  AEC_ASSIGN_OR_RETURN(bool row, db.step(*st));
  std::int64_t tables = row ? st->int64(0) : 0;
  std::int64_t ours = row ? st->int64(1) : 0;
  sqlite3_reset(st->raw());
  if (tables > 0 && ours == 0) {
    return Status(Code::DataLoss, fmt::format("{} is an SQLite database but not an aec store: "
                                              "point --store at another file",
                                              db.path()));
  }
  return ours > 0;
}

// Settings of this connection (none of them is stored in the file but the journal mode):
// - synchronous=NORMAL: commits are durable against a crash of any process, and a power loss
//   can drop only the last ones (the boot epoch below keeps tokens from repeating then);
// - the WAL file is kept when the last connection closes, and checkpointed and started over
//   then only when it holds more than 128 frames (Db::enable_wal_policy): a short-lived
//   `aec run` neither deletes the WAL for the next one to create again (fsyncs of the file and
//   the directory) nor pays a checkpoint's fsyncs every time, while the next opener's recovery
//   read of the WAL stays short.
Status tune(Db& db) {
  AEC_RETURN_IF_ERROR(db.exec("PRAGMA synchronous=NORMAL"));
  AEC_RETURN_IF_ERROR(db.exec("PRAGMA journal_size_limit=16777216"));
  int persist = 1;
  sqlite3_file_control(db.raw(), "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
  sqlite3_db_config(db.raw(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  db.enable_wal_policy();
  return Status::ok();
}

struct Meta {
  std::int64_t schema = 0;
  std::string boot_id;
  std::int64_t epoch = 0;
};

// Parses a meta value written by us; an empty value reads as 0.
Result<std::int64_t> meta_int(const Db& db, std::string_view name, const std::string& text) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (!text.empty() && (ec != std::errc() || end != text.data() + text.size())) {
    return Status(Code::DataLoss,
                  fmt::format("{}: meta value {} is corrupt: '{}'", db.path(), name, text));
  }
  return v;
}

// The three meta values in one read (one snapshot).
Result<Meta> read_all_meta(Db& db) {
  AEC_ASSIGN_OR_RETURN(
      Stmt * st, db.prepare("SELECT (SELECT value FROM aec_meta WHERE name = 'schema_version'), "
                            "(SELECT value FROM aec_meta WHERE name = 'boot_id'), "
                            "(SELECT value FROM aec_meta WHERE name = 'epoch')"));
  AEC_ASSIGN_OR_RETURN(bool row, db.step(*st));
  std::string schema = row ? st->text(0) : "";
  std::string boot = row ? st->text(1) : "";
  std::string epoch = row ? st->text(2) : "";
  if (row) {
    sqlite3_reset(st->raw());
  }
  AEC_ASSIGN_OR_RETURN(std::int64_t schema_version, meta_int(db, "schema_version", schema));
  AEC_ASSIGN_OR_RETURN(std::int64_t epoch_value, meta_int(db, "epoch", epoch));
  return Meta{schema_version, boot, epoch_value};
}

}  // namespace

Result<std::int64_t> prepare_tables(Db& db, const std::string& boot_id);

Result<std::int64_t> prepare_schema(Db& db, const std::string& boot_id) {
  // check_foreign is the first statement to read the file, so a non-database file fails there,
  // and another application's database is refused before anything (even the journal mode) in
  // it changes.
  AEC_ASSIGN_OR_RETURN(bool ours, check_foreign(db));
  if (!ours || !db.file_in_wal_mode()) {  // set once, kept in the file
    AEC_RETURN_IF_ERROR(db.exec_retrying("PRAGMA journal_mode=WAL"));
  }
  AEC_RETURN_IF_ERROR(tune(db));
  if (ours) {
    // The common case, every `aec run`: the schema is current and this boot has opened the file
    // before. One read, no write transaction.
    AEC_ASSIGN_OR_RETURN(Meta meta, read_all_meta(db));
    if (meta.schema == kSchemaVersion && meta.boot_id == boot_id) {
      return meta.epoch;
    }
  }
  // The schema transaction commits with synchronous=FULL (see the epoch below); everything after
  // it runs with NORMAL. The level cannot change inside a transaction, so set it around it.
  AEC_RETURN_IF_ERROR(db.exec("PRAGMA synchronous=FULL"));
  Result<std::int64_t> epoch = prepare_tables(db, boot_id);
  AEC_RETURN_IF_ERROR(db.exec("PRAGMA synchronous=NORMAL"));
  return epoch;
}

Result<std::int64_t> prepare_tables(Db& db, const std::string& boot_id) {
  WriteTxn txn(db);
  if (Status s = txn.begin(); !s.is_ok()) {
    return s;
  }
  if (Status s = db.exec(kCreate); !s.is_ok()) {
    return s;
  }
  Result<std::string> version = read_meta(db, "schema_version");
  Result<std::string> stored_boot = read_meta(db, "boot_id");
  Result<std::string> epoch_text = read_meta(db, "epoch");
  if (!version || !stored_boot || !epoch_text) {
    return !version ? version.error() : !stored_boot ? stored_boot.error() : epoch_text.error();
  }
  Result<std::int64_t> schema = meta_int(db, "schema_version", *version);
  Result<std::int64_t> stored_epoch = meta_int(db, "epoch", *epoch_text);
  if (!schema || !stored_epoch) {
    return !schema ? schema.error() : stored_epoch.error();
  }
  if (*schema > kSchemaVersion) {
    return Status(Code::FailedPrecondition,
                  fmt::format("{} has schema version {}, newer than this aec ({}): upgrade aec",
                              db.path(), *schema, kSchemaVersion));
  }
  std::int64_t epoch = *stored_epoch;
  bool fresh = version->empty();
  bool new_boot = !fresh && *stored_boot != boot_id;
  bool older = !fresh && *schema < kSchemaVersion;
  if (!fresh && !new_boot && !older) {
    return epoch;  // the transaction rolls back: nothing was changed
  }
  // A file of an older aec, opened in the boot that last stamped it: what kCreate added (a table
  // or index that version lacked) is committed with the new version, or every open would come
  // here again and find it missing once the transaction rolled back.
  // Tokens are committed with synchronous=NORMAL, so a power loss can drop the last grants of
  // the previous boot and the counter would go back. Every power loss is followed by a new boot,
  // and the first open of each boot moves all later tokens above epoch_floor(epoch + 1), beyond
  // anything the previous boot could have issued. This one commit is made with synchronous=FULL,
  // so the new epoch itself is on disk before any token of this boot is handed out.
  if (new_boot) {
    ++epoch;
  }
  Status s = write_meta(db, "schema_version", std::to_string(kSchemaVersion));
  if (s.is_ok())
    s = write_meta(db, "boot_id", boot_id);
  if (s.is_ok())
    s = write_meta(db, "epoch", std::to_string(epoch));
  if (s.is_ok())
    s = txn.commit();
  if (!s.is_ok()) {
    return s;
  }
  return epoch;
}

}  // namespace aec::sqlite
