// Row-level operations of the sqlite store: reading and writing keys, leases and executions.
// Every function expects the caller to hold the store's mutex and, for writes, a WriteTxn.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <aec/key_state.h>
#include <aec/store.h>

#include "stores/sqlite/sqlite_db.h"

namespace aec::sqlite {

// The moment of an operation: the store's clock (boot time + boot id) and the wall clock.
struct Now {
  std::int64_t boot_ns = 0;
  std::string_view boot_id;
  std::int64_t wall_ms = 0;
};

struct KeyRow {
  bool exists = false;
  std::int64_t last_token = 0;
  std::int64_t version = 0;
};

// The execution columns, in the order read_execution() expects, for table alias `e`.
inline constexpr const char* kExecutionColumns =
    "e.id, e.key, e.token, e.status, e.host, e.pid, e.user, e.started_ms, e.ended_ms, "
    "e.exit_code, e.labels, e.reason";
// Reads an execution from `stmt`'s columns [first, first + 12).
Result<Execution> read_execution(const Stmt& stmt, int first);

Result<KeyRow> read_key(Db& db, std::string_view key);
// Writes the key row with `row`'s counter and version (creating it if new).
Status write_key(Db& db, std::string_view key, const KeyRow& row);

// The leases of `key` with their executions, oldest token first, split into the live ones
// and the expired ones (another boot, or expiry passed) not yet reaped: one read.
struct Leases {
  std::vector<Holder> holders;          // live
  std::vector<std::int64_t> live_seqs;  // their executions' sequence numbers, same order
  std::int64_t earliest_expiry_ns = 0;  // of the live ones
  std::vector<std::pair<std::int64_t, std::int64_t>> expired;  // (token, exec_seq)
};
Result<Leases> read_leases(Db& db, std::string_view key, const Now& now);

// Records the expired leases of `leases` Lost and deletes them. Returns how many.
Result<int> reap(Db& db, std::string_view key, const Leases& leases, const Now& now);
// read_leases() then reap(): every expired lease of `key`.
Result<int> reap_key(Db& db, std::string_view key, const Now& now);

// Moves the key's version (the key row must exist).
Status bump_version(Db& db, std::string_view key);

// The newest Succeeded execution of `key`, if any.
Result<std::optional<Execution>> last_succeeded(Db& db, std::string_view key);
// The newest ended execution of `key`, if any.
Result<std::optional<Execution>> last_ended(Db& db, std::string_view key);

// The key's queue as one caller sees it, after lapsed places are deleted.
struct QueueView {
  int ahead = 0;                       // live places before the caller's (all, if it has none)
  std::int64_t mine = 0;               // the caller's place (seq), 0 if it has none
  std::int64_t mine_expires_ns = 0;    // when the caller's place lapses
  std::int64_t earliest_ahead_ns = 0;  // when the first of the places ahead lapses
};
Result<QueueView> read_queue(Db& db, std::string_view key, std::string_view execution_id,
                             const Now& now);
// The execution ids with live places in the key's queue, first in line first. A read: lapsed
// places are left out, not deleted.
Result<std::vector<std::string>> live_queue(Db& db, std::string_view key, const Now& now);
// Takes a place at the tail (mine == 0) or renews place `mine`, until expires_ns.
Status keep_place(Db& db, std::string_view key, std::string_view execution_id, std::int64_t mine,
                  std::string_view boot_id, std::int64_t expires_ns);
// Deletes the caller's place; returns whether it had one.
Result<bool> leave_place(Db& db, std::string_view key, std::string_view execution_id);

// Appends `e` to history; returns its sequence number.
Result<std::int64_t> insert_execution(Db& db, const Execution& e);
Status insert_lease(Db& db, std::string_view key, std::int64_t token, std::int64_t exec_seq,
                    std::string_view boot_id, std::int64_t expires_ns);

// Ends the Running execution with sequence `seq` (no-op if it already ended). Returns whether
// it changed.
Result<bool> end_execution(Db& db, std::int64_t seq, ExecutionStatus status,
                           std::optional<int> exit_code, std::string_view reason,
                           std::int64_t wall_ms);

}  // namespace aec::sqlite
