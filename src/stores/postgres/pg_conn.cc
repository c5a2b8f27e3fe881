#include "stores/postgres/pg_conn.h"

#include <charconv>

#include <fmt/format.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sys/socket.h>

namespace aec::pg {
namespace {

// libpq's multi-line messages on one line: newlines and tabs become single spaces.
std::string one_line(const char* text) {
  std::string s;
  for (const char* p = text != nullptr ? text : ""; *p != '\0'; ++p) {
    bool space = *p == '\n' || *p == '\t' || *p == ' ';
    if (!space) {
      s += *p;
    } else if (!s.empty() && s.back() != ' ') {
      s += ' ';
    }
  }
  while (!s.empty() && s.back() == ' ') {
    s.pop_back();
  }
  return s;
}

// The aec code for a server error, by its SQLSTATE class.
Code code_for(std::string_view state) {
  if (state.starts_with("08") || state.starts_with("57P") || state.starts_with("53") ||
      state == "40001" || state == "40P01" || state == "55P03" || state == "57014") {
    return Code::Unavailable;  // connection, shutdown, resources, conflicts, lock/statement timeout
  }
  if (state.starts_with("28") || state == "42501") {
    return Code::PermissionDenied;
  }
  return Code::Internal;
}

}  // namespace

Rows& Rows::operator=(Rows&& other) noexcept {
  if (this != &other) {
    PQclear(result_);
    result_ = std::exchange(other.result_, nullptr);
  }
  return *this;
}

Rows::~Rows() {
  PQclear(result_);
}

int Rows::size() const {
  return PQntuples(result_);
}

bool Rows::null(int row, int col) const {
  return PQgetisnull(result_, row, col) != 0;
}

std::string_view Rows::text(int row, int col) const {
  return {PQgetvalue(result_, row, col), static_cast<std::size_t>(PQgetlength(result_, row, col))};
}

Result<std::int64_t> Rows::int64(int row, int col) const {
  std::string_view s = text(row, col);
  if (null(row, col)) {
    return std::int64_t{0};
  }
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) {
    return Status(Code::DataLoss, fmt::format("postgres answered '{}' where a number was expected "
                                              "(column {})",
                                              s, PQfname(result_, col)));
  }
  return v;
}

Result<std::unique_ptr<Conn>> Conn::open(const std::string& conninfo, std::string_view shown,
                                         milliseconds timeout) {
  // Our defaults come before the URL, so the URL's own parameters override them.
  std::string seconds = std::to_string(std::max<std::int64_t>(2, (timeout.count() + 999) / 1000));
  const char* keys[] = {"connect_timeout",
                        "application_name",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        "dbname",
                        nullptr};
  const char* values[] = {seconds.c_str(), "aec", "10", "5", "3", conninfo.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr) {
    return unavailable(fmt::format("postgres store {}: out of memory connecting", shown));
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string why = one_line(PQerrorMessage(conn));
    PQfinish(conn);
    Code code = why.find("authentication") != std::string::npos ||
                        why.find("password") != std::string::npos ||
                        why.find("permission denied") != std::string::npos
                    ? Code::PermissionDenied
                    : Code::Unavailable;
    return Status(code, fmt::format("postgres store {}: cannot connect: {}", shown, why));
  }
  // Server notices (a shutdown's "terminating connection", the schema's "already exists") are
  // not for the user's terminal: errors reach the caller as Status.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<Conn>(new Conn(conn, std::string(shown)));
}

Conn::~Conn() {
  PQfinish(conn_);
}

int Conn::socket() const {
  return PQsocket(conn_);
}

bool Conn::usable() {
  if (broken_ || PQstatus(conn_) != CONNECTION_OK) {
    return false;
  }
  // An idle connection has nothing to read, unless the server said goodbye (a shutdown notice,
  // then end of file). Read what is there without blocking, then look for the end of file.
  int fd = PQsocket(conn_);
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  if (::poll(&p, 1, 0) > 0) {
    if (PQconsumeInput(conn_) == 0 || PQstatus(conn_) != CONNECTION_OK) {
      broken_ = true;
      return false;
    }
    while (PGnotify* n = PQnotifies(conn_)) {  // stray notifications: not ours to keep
      PQfreemem(n);
    }
    char c;
    ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      broken_ = true;  // closed by the server: nothing was sent on it, so a fresh one is safe
      return false;
    }
  }
  return true;
}

Status Conn::fail(std::string_view what, bool maybe_ran) {
  broken_ = true;
  return unavailable(fmt::format("postgres store {}: {}: {}{}", shown_, what,
                                 one_line(PQerrorMessage(conn_)),
                                 maybe_ran ? " (the statement may or may not have run)" : ""));
}

Result<Rows> Conn::exec(const Statement& stmt, Params params, bool prepare, milliseconds timeout) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) {
    values.push_back(p ? p->c_str() : nullptr);
  }
  int n = static_cast<int>(values.size());
  std::string_view what = stmt.name != nullptr ? stmt.name : "statement";
  prepare = prepare && stmt.name != nullptr;
  if (prepare && !prepared_.contains(stmt.name)) {
    if (PQsendPrepare(conn_, stmt.name, stmt.sql.c_str(), stmt.params, nullptr) == 0) {
      return fail("cannot send", false);
    }
    Result<Rows> ready = finish(what, timeout);
    if (!ready) {
      return ready.error();
    }
    prepared_.insert(stmt.name);
  }
  int sent = prepare ? PQsendQueryPrepared(conn_, stmt.name, n, values.data(), nullptr, nullptr, 0)
                     : PQsendQueryParams(conn_, stmt.sql.c_str(), n, nullptr, values.data(),
                                         nullptr, nullptr, 0);
  if (sent == 0) {
    return fail("cannot send", false);
  }
  return finish(what, timeout);
}

Result<Rows> Conn::exec_text(const std::string& sql, milliseconds timeout) {
  if (PQsendQuery(conn_, sql.c_str()) == 0) {
    return fail("cannot send", false);
  }
  return finish("statement", timeout);
}

Result<Rows> Conn::finish(std::string_view what, milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (PQisBusy(conn_) != 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      // The connection is dropped, since its state is unknown. No cancel request is sent:
      // libpq's PQcancel connects and waits for the server's answer without a timeout, and on
      // the path that just went silent it waited forever (found by the reliability suite's
      // half-open partition, T11). The server ends the statement by itself: each of the store's
      // statements is one short transaction, and its backend exits when it finds the socket
      // closed.
      broken_ = true;
      return unavailable(
          fmt::format("postgres store {}: no answer to {} within {} ms (the "
                      "statement may or may not have run)",
                      shown_, what, timeout.count()));
    }
    pollfd p{.fd = PQsocket(conn_), .events = POLLIN, .revents = 0};
    int ready = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) {
      return fail("poll failed", true);
    }
    if (ready > 0 && PQconsumeInput(conn_) == 0) {
      return fail(fmt::format("connection lost during {}", what), true);
    }
  }
  std::optional<Rows> first;
  Status error;
  while (PGresult* r = PQgetResult(conn_)) {
    Rows rows(r);
    ExecStatusType st = PQresultStatus(r);
    if (error.is_ok() && st == PGRES_FATAL_ERROR) {
      const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      std::string_view sqlstate = state != nullptr ? state : "";
      error = Status(code_for(sqlstate),
                     fmt::format("postgres store {}: {} failed: {} (SQLSTATE {})", shown_, what,
                                 one_line(PQresultErrorMessage(r)), sqlstate));
    } else if (!first) {
      first.emplace(std::move(rows));
    }
  }
  if (PQstatus(conn_) != CONNECTION_OK) {
    broken_ = true;
    if (error.is_ok()) {
      return fail(fmt::format("connection lost during {}", what), true);
    }
  }
  if (!error.is_ok()) {
    if (error.code() == Code::Unavailable) {
      broken_ = true;  // shutdowns and timeouts: start again on a fresh connection
    }
    return error;
  }
  if (!first) {
    return internal_error(fmt::format("postgres store {}: {} returned no result", shown_, what));
  }
  return std::move(*first);
}

Pool::Pool(std::string conninfo, std::string shown, int max, bool pooled, milliseconds timeout)
    : conninfo_(std::move(conninfo)),
      shown_(std::move(shown)),
      max_(max),
      pooled_(pooled),
      timeout_(timeout) {}

Result<std::unique_ptr<Conn>> Pool::take() {
  std::unique_lock lock(mu_);
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (;;) {
    while (!idle_.empty()) {
      std::unique_ptr<Conn> conn = std::move(idle_.back());
      idle_.pop_back();
      if (conn->usable()) {
        return conn;
      }
      --open_;  // the server closed it while idle: drop it, nothing was sent on it
    }
    if (open_ < max_) {
      ++open_;
      lock.unlock();
      Result<std::unique_ptr<Conn>> conn = Conn::open(conninfo_, shown_, timeout_);
      if (!conn) {
        lock.lock();
        --open_;
        free_cv_.notify_one();
      }
      return conn;
    }
    if (free_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      return unavailable(
          fmt::format("postgres store {}: all {} connections busy for {} ms; "
                      "raise ?pool=",
                      shown_, max_, timeout_.count()));
    }
  }
}

void Pool::give_back(std::unique_ptr<Conn> conn) {
  std::lock_guard lock(mu_);
  if (conn->broken()) {
    --open_;
  } else {
    idle_.push_back(std::move(conn));
  }
  free_cv_.notify_one();
}

Result<Rows> Pool::run(const Statement& stmt, Params params) {
  for (int attempt = 0;; ++attempt) {
    Result<std::unique_ptr<Conn>> conn = take();
    if (!conn) {
      return conn.error();
    }
    Result<Rows> rows = (*conn)->exec(stmt, params, !pooled_, timeout_);
    bool broke = (*conn)->broken();
    give_back(std::move(*conn));
    if (rows || !broke || !stmt.idempotent || attempt > 0) {
      return rows;
    }
  }
}

Result<Rows> Pool::run_text(const std::string& sql) {
  Result<std::unique_ptr<Conn>> conn = take();
  if (!conn) {
    return conn.error();
  }
  Result<Rows> rows = (*conn)->exec_text(sql, timeout_);
  give_back(std::move(*conn));
  return rows;
}

}  // namespace aec::pg
