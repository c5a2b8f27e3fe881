// PostgreSQL contenders, on the server named by AEC_BENCH_POSTGRES_URL (or the test servers'
// AEC_TEST_POSTGRES_URL in the file $AEC_TEST_SERVERS_ENV, as scripts/dev-servers.sh writes it):
//   raw-postgres        the bare lease-row recipe: one `INSERT ... ON CONFLICT DO UPDATE ...
//                       WHERE expired` to acquire, a token-checked DELETE to release, retried
//                       with a short sleep when the key is held (prepared statements,
//                       synchronous_commit on: each commit flushed before it is answered);
//   raw-postgres-async  the same with synchronous_commit off: commits are answered before their
//                       flush (the last ~600 ms of them may be lost in a server crash);
//   pg-advisory         pg_try_advisory_lock / pg_advisory_unlock on a hash of the key: no row,
//                       no write; the lock lives as long as the client's connection;
//   aec-postgres        aec's postgres:// store through aec::Control (history, fencing counter,
//                       FIFO line, NOTIFY-driven waits).
// The row recipes and aec start from an empty schema of their own, dropped and created by
// prepare().
#include <algorithm>
#include <cstdlib>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <libpq-fe.h>

#include <aec/open_store.h>

#include "contender.h"

namespace aec::bench {
namespace {

Result<std::string> server_url() {
  return server_setting("PostgreSQL", "AEC_BENCH_POSTGRES_URL", "AEC_TEST_POSTGRES_URL");
}

Result<PGconn*> connect(const std::string& url) {
  PGconn* conn = PQconnectdb(url.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    Status s = unavailable(fmt::format("postgres {}: {}", url, PQerrorMessage(conn)));
    PQfinish(conn);
    return s;
  }
  return conn;
}

Status exec(PGconn* conn, const std::string& sql) {
  PGresult* r = PQexec(conn, sql.c_str());
  ExecStatusType st = PQresultStatus(r);
  Status s = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK
                 ? Status::ok()
                 : unavailable(fmt::format("postgres: {}", PQresultErrorMessage(r)));
  PQclear(r);
  return s;
}

// Prepares each (name, SQL) of `statements` on `conn`, with `params` parameters each.
Status prepare_all(PGconn* conn,
                   std::initializer_list<std::pair<const char*, const char*>> statements,
                   int params) {
  for (auto [name, sql] : statements) {
    PGresult* r = PQprepare(conn, name, sql, params, nullptr);
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
      return unavailable(fmt::format("prepare {}: {}", name, PQerrorMessage(conn)));
    }
  }
  return Status::ok();
}

// Drops and creates `schema` (the contenders' own, so runs never see each other's rows).
Status fresh_schema(const std::string& schema, const std::string& then = "") {
  Result<std::string> url = server_url();
  if (!url) {
    return url.error();
  }
  Result<PGconn*> conn = connect(*url);
  if (!conn) {
    return conn.error();
  }
  Status s = exec(*conn, fmt::format("SET client_min_messages = warning; DROP SCHEMA IF EXISTS "
                                     "{0} CASCADE; CREATE SCHEMA {0}; {1}",
                                     schema, then));
  PQfinish(*conn);
  return s;
}

constexpr const char* kRawSchema = "raw_bench";
constexpr const char* kRawTable =
    "CREATE TABLE raw_bench.leases(key text PRIMARY KEY, token bigint NOT NULL, "
    "expires_at timestamptz NOT NULL)";
// Granted when the key has no row, or its lease expired: one row affected.
constexpr const char* kAcquire =
    "INSERT INTO raw_bench.leases(key, token, expires_at) VALUES($1, $2, now() + interval '30 s') "
    "ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at "
    "WHERE raw_bench.leases.expires_at < now()";
constexpr const char* kRelease = "DELETE FROM raw_bench.leases WHERE key = $1 AND token = $2";

// Advisory locks on a 64-bit hash of the key; a held key is retried as the lease row is.
constexpr const char* kTryAdvisory = "SELECT pg_try_advisory_lock(hashtextextended($1, 0))";
constexpr const char* kAdvisoryUnlock = "SELECT pg_advisory_unlock(hashtextextended($1, 0))";

class RawPostgresSession final : public Session {
 public:
  RawPostgresSession(PGconn* conn, int client)
      : conn_(conn), next_token_(static_cast<std::int64_t>(client) << 40), rng_(client) {}
  ~RawPostgresSession() override { PQfinish(conn_); }

  Status init() { return prepare_all(conn_, {{"acquire", kAcquire}, {"release", kRelease}}, 2); }

  Result<Acquired> acquire(const std::string& key, bool wait,
                           BenchClock::time_point give_up) override {
    // The bare retry loop of raw-sqlite.
    auto attempt = [&]() -> Result<bool> {
      Result<int> changed = run("acquire", key, ++next_token_);
      if (!changed) {
        return changed.error();
      }
      if (*changed == 1) {
        held_key_ = key;
        held_token_ = next_token_;
      }
      return *changed == 1;
    };
    return retry_with_backoff(attempt, wait, give_up, rng_, refused_);
  }

  Status release() override {
    Result<int> changed = run("release", held_key_, held_token_);
    if (!changed) {
      return changed.error();
    }
    return *changed == 1 ? Status::ok() : internal_error("release: lease not held");
  }

 private:
  Result<int> run(const char* stmt, const std::string& key, std::int64_t token) {
    std::string token_text = std::to_string(token);
    const char* values[] = {key.c_str(), token_text.c_str()};
    PGresult* r = PQexecPrepared(conn_, stmt, 2, values, nullptr, nullptr, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      Status s = unavailable(fmt::format("{}: {}", stmt, PQresultErrorMessage(r)));
      PQclear(r);
      return s;
    }
    int changed = std::atoi(PQcmdTuples(r));
    PQclear(r);
    return changed;
  }

  PGconn* conn_;
  std::int64_t next_token_;
  std::minstd_rand rng_;
  std::string held_key_;
  std::int64_t held_token_ = 0;
};

class AdvisorySession final : public Session {
 public:
  AdvisorySession(PGconn* conn, int client) : conn_(conn), rng_(client) {}
  ~AdvisorySession() override { PQfinish(conn_); }

  Status init() {
    return prepare_all(conn_, {{"try_lock", kTryAdvisory}, {"unlock", kAdvisoryUnlock}}, 1);
  }

  Result<Acquired> acquire(const std::string& key, bool wait,
                           BenchClock::time_point give_up) override {
    auto attempt = [&]() -> Result<bool> {
      Result<bool> locked = run("try_lock", key);
      if (locked && *locked) {
        held_key_ = key;
      }
      return locked;
    };
    return retry_with_backoff(attempt, wait, give_up, rng_, refused_);
  }

  Status release() override {
    Result<bool> unlocked = run("unlock", held_key_);
    if (!unlocked) {
      return unlocked.error();
    }
    return *unlocked ? Status::ok() : internal_error("release: advisory lock not held");
  }

 private:
  // Runs a prepared statement answering one boolean.
  Result<bool> run(const char* stmt, const std::string& key) {
    const char* values[] = {key.c_str()};
    PGresult* r = PQexecPrepared(conn_, stmt, 1, values, nullptr, nullptr, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
      Status s = unavailable(fmt::format("{}: {}", stmt, PQresultErrorMessage(r)));
      PQclear(r);
      return s;
    }
    const bool yes = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return yes;
  }

  PGconn* conn_;
  std::minstd_rand rng_;
  std::string held_key_;
};

// raw-postgres (durable), raw-postgres-async and pg-advisory.
class RawPostgresContender final : public Contender {
 public:
  enum class Kind { LeaseRow, LeaseRowAsync, Advisory };
  explicit RawPostgresContender(Kind kind) : kind_(kind) {}

  std::string_view name() const override {
    switch (kind_) {
      case Kind::LeaseRow:
        return "raw-postgres";
      case Kind::LeaseRowAsync:
        return "raw-postgres-async";
      case Kind::Advisory:
        return "pg-advisory";
    }
    return "";
  }

  std::string_view guarantees() const override {
    switch (kind_) {
      case Kind::LeaseRow:
        return "one server; each commit flushed before it is answered; expiry by the server's "
               "clock; no fencing, no history, no line (retries)";
      case Kind::LeaseRowAsync:
        return "as raw-postgres, but commits answered before their flush: a server crash may "
               "lose the last ~0.6 s of grants and releases";
      case Kind::Advisory:
        return "one server; held as long as the client's connection, nothing written; no "
               "expiry, no fencing, no line (retries)";
    }
    return "";
  }

  Status prepare(const std::string& /*dir*/) override {
    return kind_ == Kind::Advisory ? Status::ok() : fresh_schema(kRawSchema, kRawTable);
  }

  Result<std::unique_ptr<Session>> open(const std::string& /*dir*/, int client) override {
    Result<std::string> url = server_url();
    if (!url) {
      return url.error();
    }
    Result<PGconn*> conn = connect(*url);
    if (!conn) {
      return conn.error();
    }
    if (kind_ == Kind::Advisory) {
      auto session = std::make_unique<AdvisorySession>(*conn, client);
      if (Status s = session->init(); !s.is_ok()) {
        return s;
      }
      return std::unique_ptr<Session>(std::move(session));
    }
    auto session = std::make_unique<RawPostgresSession>(*conn, client);
    if (Status s = session->init(); !s.is_ok()) {
      return s;
    }
    if (kind_ == Kind::LeaseRowAsync) {
      if (Status s = exec(*conn, "SET synchronous_commit = off"); !s.is_ok()) {
        return s;
      }
    }
    return std::unique_ptr<Session>(std::move(session));
  }

 private:
  Kind kind_;
};

constexpr const char* kAecSchema = "aec_bench";

Result<std::string> aec_url() {
  Result<std::string> url = server_url();
  if (!url) {
    return url.error();
  }
  return *url + (url->find('?') == std::string::npos ? "?" : "&") + "schema=" + kAecSchema;
}

class AecPostgresContender final : public Contender {
 public:
  std::string_view name() const override { return "aec-postgres"; }
  std::string_view guarantees() const override {
    return "one server; each grant and renewal flushed before it is answered; expiry by the "
           "server's clock, fencing tokens, history, FIFO line woken by NOTIFY";
  }

  // An empty schema, then aec's tables and functions in it (opening the store creates them).
  Status prepare(const std::string& /*dir*/) override {
    if (Status s = fresh_schema(kAecSchema); !s.is_ok()) {
      return s;
    }
    Result<std::string> url = aec_url();
    if (!url) {
      return url.error();
    }
    Result<std::unique_ptr<Store>> store = open_store(*url);
    return store ? Status::ok() : store.error();
  }

  Result<std::unique_ptr<Session>> open(const std::string& /*dir*/, int /*client*/) override {
    Result<std::string> url = aec_url();
    if (!url) {
      return url.error();
    }
    Result<std::unique_ptr<Store>> store = open_store(*url);
    if (!store) {
      return store.error();
    }
    return make_control_session(std::shared_ptr<Store>(std::move(*store)));
  }
};

}  // namespace

std::unique_ptr<Contender> make_raw_postgres_contender() {
  return std::make_unique<RawPostgresContender>(RawPostgresContender::Kind::LeaseRow);
}

std::unique_ptr<Contender> make_raw_postgres_async_contender() {
  return std::make_unique<RawPostgresContender>(RawPostgresContender::Kind::LeaseRowAsync);
}

std::unique_ptr<Contender> make_pg_advisory_contender() {
  return std::make_unique<RawPostgresContender>(RawPostgresContender::Kind::Advisory);
}

std::unique_ptr<Contender> make_aec_postgres_contender() {
  return std::make_unique<AecPostgresContender>();
}

}  // namespace aec::bench
