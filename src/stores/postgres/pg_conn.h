// libpq, wrapped: a connection with timed statements, their results, and a small pool.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <aec/clock.h>
#include <aec/status.h>

struct pg_conn;
struct pg_result;

namespace aec::pg {

// A result of a statement (PGresult), in text format.
class Rows {
 public:
  explicit Rows(pg_result* result) : result_(result) {}
  Rows(Rows&& other) noexcept : result_(std::exchange(other.result_, nullptr)) {}
  Rows& operator=(Rows&& other) noexcept;
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;
  ~Rows();

  int size() const;
  bool null(int row, int col) const;
  std::string_view text(int row, int col) const;
  // The value as an integer; DataLoss naming the column when it is not one. Null reads as 0.
  Result<std::int64_t> int64(int row, int col) const;

 private:
  pg_result* result_ = nullptr;
};

// A statement: prepared once per connection under `name` (unless the pool is behind a
// transaction pooler), run with text parameters. `idempotent` statements may be sent again on a
// fresh connection when the first one broke; any other is reported indeterminate then.
struct Statement {
  const char* name;
  std::string sql;
  int params;
  bool idempotent;
};

using Params = std::span<const std::optional<std::string>>;

class Conn {
 public:
  // Connects; Unavailable (or PermissionDenied for a refused login) with libpq's reason.
  static Result<std::unique_ptr<Conn>> open(const std::string& conninfo, std::string_view shown,
                                            milliseconds timeout);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // Runs `stmt` and waits up to `timeout` for its answer. A connection that fails or times out
  // is left broken(); its error says whether the statement may have run.
  Result<Rows> exec(const Statement& stmt, Params params, bool prepare, milliseconds timeout);
  // Runs plain SQL text (no parameters): schema changes, LISTEN.
  Result<Rows> exec_text(const std::string& sql, milliseconds timeout);
  // False when the server has closed the connection while it sat idle (checked without
  // blocking), or an earlier call broke it.
  bool usable();
  bool broken() const { return broken_; }
  pg_conn* raw() { return conn_; }
  int socket() const;

 private:
  Conn(pg_conn* conn, std::string shown) : conn_(conn), shown_(std::move(shown)) {}
  // Waits for the answer of the query just sent; `sent` tells whether the server may have run it.
  Result<Rows> finish(std::string_view what, milliseconds timeout);
  Status fail(std::string_view what, bool maybe_ran);

  pg_conn* conn_;
  std::string shown_;  // the URL for messages
  std::unordered_set<std::string> prepared_;
  bool broken_ = false;
};

// Up to `max` connections, opened as needed and reused; a broken one is dropped.
class Pool {
 public:
  Pool(std::string conninfo, std::string shown, int max, bool pooled, milliseconds timeout);

  // Runs `stmt` on a pooled connection. An idempotent statement whose connection broke is sent
  // once more on a fresh one.
  Result<Rows> run(const Statement& stmt, Params params);
  // Runs plain SQL text on a pooled connection (no retry).
  Result<Rows> run_text(const std::string& sql);

  const std::string& shown() const { return shown_; }
  milliseconds timeout() const { return timeout_; }

 private:
  Result<std::unique_ptr<Conn>> take();
  void give_back(std::unique_ptr<Conn> conn);

  const std::string conninfo_;
  const std::string shown_;
  const int max_;
  const bool pooled_;
  const milliseconds timeout_;
  std::mutex mu_;
  std::condition_variable free_cv_;
  std::vector<std::unique_ptr<Conn>> idle_;
  int open_ = 0;  // connections in use or idle
};

}  // namespace aec::pg
