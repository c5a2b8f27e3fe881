#include "stores/sqlite/sqlite_rows.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/json_codec.h"
#include "core/status_macros.h"

namespace aec::sqlite {
namespace {

SysTime from_ms(std::int64_t ms) {
  return SysTime(std::chrono::milliseconds(ms));
}

// Steps a single-row query; nullopt when it returned no row. Leaves the statement reset.
template <typename F>
Result<std::optional<std::invoke_result_t<F, Stmt&>>> one_row(Db& db, Stmt& st, F read) {
  AEC_ASSIGN_OR_RETURN(bool row, db.step(st));
  if (!row) {
    return std::optional<std::invoke_result_t<F, Stmt&>>();
  }
  auto value = read(st);
  sqlite3_reset(st.raw());
  return std::optional(std::move(value));
}

}  // namespace

Result<Execution> read_execution(const Stmt& st, int c) {
  std::optional<ExecutionStatus> status = parse_execution_status(st.text(c + 3));
  if (!status) {
    return Status(Code::DataLoss,
                  fmt::format("stored execution has unknown status '{}'", st.text(c + 3)));
  }
  AEC_ASSIGN_OR_RETURN(Labels labels, labels_from_text(st.text(c + 10)));
  Execution e{.id = st.text(c),
              .key = st.text(c + 1),
              .token = st.int64(c + 2),
              .status = *status,
              .owner = {.host = st.text(c + 4), .pid = st.int64(c + 5), .user = st.text(c + 6)},
              .started_at = from_ms(st.int64(c + 7)),
              .labels = std::move(labels),
              .reason = st.text(c + 11)};
  if (!st.is_null(c + 8)) {
    e.ended_at = from_ms(st.int64(c + 8));
  }
  if (!st.is_null(c + 9)) {
    e.exit_code = static_cast<int>(st.int64(c + 9));
  }
  return e;
}

Result<KeyRow> read_key(Db& db, std::string_view key) {
  static constexpr const char* kSql = "SELECT last_token, version FROM aec_keys WHERE key = ?";
  AEC_ASSIGN_OR_RETURN(Stmt * st, db.prepare(kSql));
  st->bind(1, key);
  AEC_ASSIGN_OR_RETURN(auto row, one_row(db, *st, [](Stmt& s) {
                         return KeyRow{true, s.int64(0), s.int64(1)};
                       }));
  return row.value_or(KeyRow{});
}

Status write_key(Db& db, std::string_view key, const KeyRow& row) {
  static constexpr const char* kSql =
      "INSERT INTO aec_keys(key, last_token, version) VALUES(?, ?, ?) ON CONFLICT(key) "
      "DO UPDATE SET last_token = excluded.last_token, version = excluded.version";
  AEC_ASSIGN_OR_RETURN(Stmt * st, db.prepare(kSql));
  st->bind(1, key).bind(2, row.last_token).bind(3, row.version);
  return db.run(*st).status();
}

Result<Leases> read_leases(Db& db, std::string_view key, const Now& now) {
  static const std::string kSql = fmt::format(
      "SELECT l.token, l.exec_seq, l.boot_id, l.expires_ns, {} FROM aec_leases l "
      "JOIN aec_executions e ON e.seq = l.exec_seq WHERE l.key = ? ORDER BY l.token",
      kExecutionColumns);
  AEC_ASSIGN_OR_RETURN(Stmt * st, db.prepare(kSql.c_str()));
  st->bind(1, key);
  Leases leases;
  AEC_RETURN_IF_ERROR(db.for_each_row(*st, [&](Stmt& row) {
    std::int64_t expires = row.int64(3);
    if (row.text(2) != now.boot_id || expires <= now.boot_ns) {
      leases.expired.emplace_back(row.int64(0), row.int64(1));
      return Status::ok();
    }
    AEC_ASSIGN_OR_RETURN(Execution e, read_execution(row, 4));
    auto left = std::chrono::nanoseconds(expires - now.boot_ns);
    leases.holders.push_back({std::move(e), std::chrono::ceil<milliseconds>(left)});
    leases.live_seqs.push_back(row.int64(1));
    leases.earliest_expiry_ns =
        leases.holders.size() == 1 ? expires : std::min(leases.earliest_expiry_ns, expires);
    return Status::ok();
  }));
  return leases;
}

Result<int> reap(Db& db, std::string_view key, const Leases& leases, const Now& now) {
  static constexpr const char* kDelete = "DELETE FROM aec_leases WHERE key = ? AND token = ?";
  for (const auto& [token, seq] : leases.expired) {
    AEC_RETURN_IF_ERROR(
        end_execution(db, seq, ExecutionStatus::Lost, std::nullopt, "lease expired", now.wall_ms)
            .status());
    AEC_ASSIGN_OR_RETURN(Stmt * del, db.prepare(kDelete));
    del->bind(1, key).bind(2, token);
    AEC_RETURN_IF_ERROR(db.run(*del).status());
  }
  return static_cast<int>(leases.expired.size());
}

Result<int> reap_key(Db& db, std::string_view key, const Now& now) {
  AEC_ASSIGN_OR_RETURN(Leases leases, read_leases(db, key, now));
  return reap(db, key, leases, now);
}

Status bump_version(Db& db, std::string_view key) {
  static constexpr const char* kSql = "UPDATE aec_keys SET version = version + 1 WHERE key = ?";
  AEC_ASSIGN_OR_RETURN(Stmt * st, db.prepare(kSql));
  st->bind(1, key);
  return db.run(*st).status();
}

namespace {
Result<std::optional<Execution>> newest_where(Db& db, const char* sql, std::string_view key) {
  AEC_ASSIGN_OR_RETURN(Stmt * st, db.prepare(sql));
  st->bind(1, key);
  AEC_ASSIGN_OR_RETURN(bool row, db.step(*st));
  if (!row) {
    return std::optional<Execution>();
  }
  Result<Execution> e = read_execution(*st, 0);
  sqlite3_reset(st->raw());
  if (!e) {
    return e.error();
  }
  return std::optional<Execution>(std::move(*e));
}
}  // namespace

Result<std::optional<Execution>> last_succeeded(Db& db, std::string_view key) {
  static const std::string kSql = fmt::format(
      "SELECT {} FROM aec_executions e WHERE e.key = ? AND e.status = 'succeeded' "
      "ORDER BY e.seq DESC LIMIT 1",
      kExecutionColumns);
  return newest_where(db, kSql.c_str(), key);
}

Result<std::optional<Execution>> last_ended(Db& db, std::string_view key) {
  static const std::string kSql = fmt::format(
      "SELECT {} FROM aec_executions e WHERE e.key = ? AND e.status <> 'running' "
      "ORDER BY e.seq DESC LIMIT 1",
      kExecutionColumns);
  return newest_where(db, kSql.c_str(), key);
}

Result<QueueView> read_queue(Db& db, std::string_view key, std::string_view execution_id,
                             const Now& now) {
  static constexpr const char* kRead =
      "SELECT seq, execution_id, boot_id, expires_ns FROM aec_queue WHERE key = ? ORDER BY seq";
  static constexpr const char* kLapse =
      "DELETE FROM aec_queue WHERE key = ? AND (boot_id <> ? OR expires_ns <= ?)";
  AEC_ASSIGN_OR_RETURN(Stmt * st, db.prepare(kRead));
  st->bind(1, key);
  QueueView view;
  bool lapsed = false;
  AEC_RETURN_IF_ERROR(db.for_each_row(*st, [&](Stmt& row) {
    std::int64_t expires = row.int64(3);
    if (row.text(2) != now.boot_id || expires <= now.boot_ns) {
      lapsed = true;  // a dead waiter's place: skipped, and deleted below
    } else if (view.mine == 0 && row.text(1) == execution_id) {
      view.mine = row.int64(0);
      view.mine_expires_ns = expires;
    } else if (view.mine == 0) {
      view.earliest_ahead_ns =
          view.ahead == 0 ? expires : std::min(view.earliest_ahead_ns, expires);
      ++view.ahead;
    }
    return Status::ok();
  }));
  if (lapsed) {
    AEC_ASSIGN_OR_RETURN(Stmt * del, db.prepare(kLapse));
    del->bind(1, key).bind(2, now.boot_id).bind(3, now.boot_ns);
    AEC_RETURN_IF_ERROR(db.run(*del).status());
  }
  return view;
}

Result<std::vector<std::string>> live_queue(Db& db, std::string_view key, const Now& now) {
  static constexpr const char* kSql =
      "SELECT execution_id FROM aec_queue WHERE key = ? AND boot_id = ? AND expires_ns > ? "
      "ORDER BY seq";
  AEC_ASSIGN_OR_RETURN(Stmt * st, db.prepare(kSql));
  st->bind(1, key).bind(2, now.boot_id).bind(3, now.boot_ns);
  std::vector<std::string> ids;
  AEC_RETURN_IF_ERROR(db.for_each_row(*st, [&](Stmt& row) {
    ids.push_back(row.text(0));
    return Status::ok();
  }));
  return ids;
}

Status keep_place(Db& db, std::string_view key, std::string_view execution_id, std::int64_t mine,
                  std::string_view boot_id, std::int64_t expires_ns) {
  static constexpr const char* kInsert =
      "INSERT INTO aec_queue(key, execution_id, boot_id, expires_ns) VALUES(?, ?, ?, ?)";
  static constexpr const char* kRenew = "UPDATE aec_queue SET expires_ns = ? WHERE seq = ?";
  if (mine != 0) {
    AEC_ASSIGN_OR_RETURN(Stmt * st, db.prepare(kRenew));
    st->bind(1, expires_ns).bind(2, mine);
    return db.run(*st).status();
  }
  AEC_ASSIGN_OR_RETURN(Stmt * st, db.prepare(kInsert));
  st->bind(1, key).bind(2, execution_id).bind(3, boot_id).bind(4, expires_ns);
  return db.run(*st).status();
}

Result<bool> leave_place(Db& db, std::string_view key, std::string_view execution_id) {
  static constexpr const char* kSql = "DELETE FROM aec_queue WHERE key = ? AND execution_id = ?";
  AEC_ASSIGN_OR_RETURN(Stmt * st, db.prepare(kSql));
  st->bind(1, key).bind(2, execution_id);
  AEC_ASSIGN_OR_RETURN(int changed, db.run(*st));
  return changed > 0;
}

Result<std::int64_t> insert_execution(Db& db, const Execution& e) {
  static constexpr const char* kSql =
      "INSERT INTO aec_executions(id, key, token, status, host, pid, user, started_ms, "
      "ended_ms, exit_code, labels, reason) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
  AEC_ASSIGN_OR_RETURN(Stmt * st, db.prepare(kSql));
  auto ms = [](SysTime t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  };
  st->bind(1, e.id).bind(2, e.key).bind(3, e.token).bind(4, to_string(e.status));
  st->bind(5, e.owner.host).bind(6, e.owner.pid).bind(7, e.owner.user).bind(8, ms(e.started_at));
  e.ended_at ? st->bind(9, ms(*e.ended_at)) : st->bind(9, std::nullopt);
  e.exit_code ? st->bind(10, std::int64_t{*e.exit_code}) : st->bind(10, std::nullopt);
  st->bind(11, labels_to_text(e.labels)).bind(12, e.reason);
  AEC_RETURN_IF_ERROR(db.run(*st).status());
  return sqlite3_last_insert_rowid(db.raw());
}

Status insert_lease(Db& db, std::string_view key, std::int64_t token, std::int64_t exec_seq,
                    std::string_view boot_id, std::int64_t expires_ns) {
  static constexpr const char* kSql =
      "INSERT INTO aec_leases(key, token, exec_seq, boot_id, expires_ns) VALUES(?, ?, ?, ?, ?)";
  AEC_ASSIGN_OR_RETURN(Stmt * st, db.prepare(kSql));
  st->bind(1, key).bind(2, token).bind(3, exec_seq).bind(4, boot_id).bind(5, expires_ns);
  return db.run(*st).status();
}

Result<bool> end_execution(Db& db, std::int64_t seq, ExecutionStatus status,
                           std::optional<int> exit_code, std::string_view reason,
                           std::int64_t wall_ms) {
  static constexpr const char* kSql =
      "UPDATE aec_executions SET status = ?, exit_code = ?, reason = ?, ended_ms = ? "
      "WHERE seq = ? AND status = 'running'";
  AEC_ASSIGN_OR_RETURN(Stmt * st, db.prepare(kSql));
  st->bind(1, to_string(status));
  exit_code ? st->bind(2, std::int64_t{*exit_code}) : st->bind(2, std::nullopt);
  st->bind(3, reason).bind(4, wall_ms).bind(5, seq);
  AEC_ASSIGN_OR_RETURN(int changed, db.run(*st));
  return changed > 0;
}

}  // namespace aec::sqlite
