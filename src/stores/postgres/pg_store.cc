#include "stores/postgres/pg_store.h"

#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include <aec/key.h>

#include "core/json_codec.h"
#include "core/status_macros.h"
#include "core/store_checks.h"
#include "stores/postgres/pg_conn.h"
#include "stores/postgres/pg_listener.h"
#include "stores/postgres/pg_records.h"
#include "stores/postgres/pg_schema.h"
#include "stores/postgres/pg_url.h"

namespace aec {
namespace {

using pg::Rows;
using pg::Statement;
using Param = std::optional<std::string>;

std::string str(std::int64_t v) {
  return std::to_string(v);
}
std::string flag(bool b) {
  return b ? "t" : "f";
}

// Waiters without a LISTEN connection poll the key's version, backing off to this.
constexpr auto kMaxPoll = std::chrono::milliseconds(200);
// With one, they wake on notifications; this bounds each nap so a deadline on the store's
// clock (which tests move by hand) is noticed.
constexpr auto kNap = std::chrono::milliseconds(100);
// And they read the key's version at least this often, whatever they were told.
constexpr auto kReread = std::chrono::seconds(1);

class PostgresStore final : public Store {
 public:
  PostgresStore(pg::PgUrl url, const StoreOptions& options)
      : url_(std::move(url)),
        pool_(url_.conninfo, url_.display, url_.pool, url_.pooled, options.lock_timeout),
        clock_(options.clock),
        manual_clock_(options.clock.get() != real_clock().get()),
        origin_(options.clock->monotonic_now()) {
    const std::string& s = url_.schema;
    acquire_ = {"aec_acquire",
                fmt::format("SELECT * FROM {}.acquire($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                            "$11, $12, $13, $14)",
                            s),
                14, false};
    handoff_ = {"aec_handoff",
                fmt::format("SELECT * FROM {}.release_and_acquire($1, $2, $3, $4, $5, $6, $7, $8, "
                            "$9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
                            s),
                18, false};
    renew_ = {"aec_renew", fmt::format("SELECT {}.renew($1, $2, $3, $4)", s), 4, true};
    release_ = {"aec_release", fmt::format("SELECT {}.release($1, $2, $3, $4, $5, $6, $7)", s), 7,
                false};
    get_ = {"aec_get", fmt::format("SELECT * FROM {}.get_key($1, $2)", s), 2, true};
    version_ = {"aec_version", fmt::format("SELECT version FROM {}.keys WHERE key = $1", s), 1,
                true};
    force_ = {"aec_force", fmt::format("SELECT * FROM {}.force_release($1, $2, $3, $4)", s), 4,
              false};
    leave_ = {"aec_leave", fmt::format("SELECT {}.leave_queue($1, $2)", s), 2, false};
    reap_ = {"aec_reap", fmt::format("SELECT * FROM {}.reap_some($1, $2, $3)", s), 3, false};
    purge_ = {"aec_purge", fmt::format("SELECT {}.purge_batch($1, $2, $3)", s), 3, false};
    listen_ = {"aec_listen", fmt::format("SELECT {}.listen($1, $2, $3)", s), 3, true};
  }

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
  std::string url() const override { return url_.display; }
  std::unique_ptr<ChangeFeed> watch_changes(
      std::function<void(const std::string& key)> on_change) override;

  // Creates or upgrades the schema (pg_schema.h); with a hand-moved clock, reads the server's
  // time it starts from.
  Status open(bool create);

 private:
  // The store's time for the server functions: "0", the server's own clock. With a clock that
  // tests move by hand, the server's time when the store opened plus how far the test has moved
  // the clock since, so expiry tests run against a real server and see only the time they make.
  std::string store_time() const {
    if (!manual_clock_) {
      return "0";
    }
    auto moved = std::chrono::duration_cast<milliseconds>(clock_->monotonic_now() - origin_);
    return str(server_origin_ms_ + moved.count());
  }
  std::string wall_ms() const {
    return str(
        std::chrono::duration_cast<milliseconds>(clock_->system_now().time_since_epoch()).count());
  }
  std::vector<Param> acquire_params(const AcquireRequest& req) const;
  Result<AcquireResult> acquire_once(const AcquireRequest& req);
  // Reads an acquire's answer from columns [c, c + 7) of row 0.
  Result<AcquireResult> read_acquire(const Rows& rows, int c, const AcquireRequest& req) const;
  std::vector<Param> release_params(std::string_view key, std::int64_t token,
                                    const Outcome& outcome) const;
  Result<std::int64_t> read_version(std::string_view key);
  pg::Listener* listener();
  // Registers `listen` as a listener of `key` ('' for every key) in the store's table.
  Status register_listener(pg::Listener& listen, const std::string& key);

  pg::PgUrl url_;
  pg::Pool pool_;
  std::shared_ptr<Clock> clock_;
  bool manual_clock_;
  MonoTime origin_;
  std::int64_t server_origin_ms_ = 0;
  Statement acquire_, handoff_, renew_, release_, get_, version_, force_, leave_, reap_, purge_,
      listen_;
  std::mutex listener_mu_;
  std::unique_ptr<pg::Listener> listener_;  // opened at the first wait()
};

std::vector<Param> PostgresStore::acquire_params(const AcquireRequest& req) const {
  return {req.key,
          req.execution_id,
          str(req.ttl.count()),
          str(req.limit),
          flag(req.once),
          flag(req.record_skipped),
          flag(req.queue),
          str(req.queue_ttl.count()),
          req.owner.host,
          str(req.owner.pid),
          req.owner.user,
          labels_to_text(req.labels),
          wall_ms(),
          store_time()};
}

Result<AcquireResult> PostgresStore::read_acquire(const Rows& rows, int c,
                                                  const AcquireRequest& req) const {
  if (rows.size() != 1) {
    return internal_error(
        fmt::format("postgres store {}: acquire returned {} rows", url_.display, rows.size()));
  }
  AcquireResult r;
  std::string_view outcome = rows.text(0, c);
  AEC_ASSIGN_OR_RETURN(std::int64_t token, rows.int64(0, c + 1));
  AEC_ASSIGN_OR_RETURN(r.version, rows.int64(0, c + 2));
  AEC_ASSIGN_OR_RETURN(std::int64_t ahead, rows.int64(0, c + 3));
  AEC_ASSIGN_OR_RETURN(std::int64_t retry, rows.int64(0, c + 4));
  AEC_ASSIGN_OR_RETURN(r.holders, pg::holders_from_json(rows.text(0, c + 5)));
  AEC_ASSIGN_OR_RETURN(r.done_by, pg::maybe_execution_from_json(rows.text(0, c + 6)));
  if (outcome == "granted") {
    r.outcome = AcquireOutcome::Granted;
    r.lease =
        Lease{.key = req.key, .execution_id = req.execution_id, .token = token, .ttl = req.ttl};
  } else if (outcome == "busy") {
    r.outcome = AcquireOutcome::Busy;
    r.waiting_ahead = static_cast<int>(ahead);
    r.retry_in = milliseconds(std::max<std::int64_t>(retry, 0));
  } else if (outcome == "done") {
    r.outcome = AcquireOutcome::Done;
  } else {
    return Status(Code::DataLoss, fmt::format("postgres store {}: unknown acquire outcome '{}'",
                                              url_.display, outcome));
  }
  return r;
}

Result<AcquireResult> PostgresStore::acquire_once(const AcquireRequest& req) {
  std::vector<Param> params = acquire_params(req);
  AEC_ASSIGN_OR_RETURN(Rows rows, pool_.run(acquire_, params));
  return read_acquire(rows, 0, req);
}

Result<AcquireResult> PostgresStore::acquire(const AcquireRequest& req) {
  AEC_RETURN_IF_ERROR(check_acquire_request(req));
  pg::Listener* listen = req.queue && req.park.count() > 0 ? listener() : nullptr;
  if (listen == nullptr) {
    return acquire_once(req);
  }
  // Parked in the store: the caller waits in line here, woken only when a change names it first
  // in line (no herd: one waiter per release asks again), when a holder or a place ahead could
  // lapse (expiry is not a write, so it notifies nobody), or in time to keep its own place.
  std::uint64_t seen = listen->watch_turn(req.key, req.execution_id);
  struct Drop {
    pg::Listener* l;
    const AcquireRequest& req;
    ~Drop() { l->drop_turn(req.key, req.execution_id); }
  } drop{listen, req};
  return park_in_line(
      *this, req, [&](bool /*woken*/) { return acquire_once(req); },
      [&](std::chrono::nanoseconds nap) {
        if (!listen->listening()) {
          return false;  // no notifications now: the caller polls
        }
        seen = listen->await_turn(req.key, req.execution_id, seen, nap, req.stop);
        return true;
      });
}

Result<LeaseOutcome> PostgresStore::renew(std::string_view key, std::int64_t token,
                                          milliseconds ttl) {
  AEC_RETURN_IF_ERROR(check_lease_args(key, token, ttl));
  std::vector<Param> params = {std::string(key), str(token), str(ttl.count()), store_time()};
  AEC_ASSIGN_OR_RETURN(Rows rows, pool_.run(renew_, params));
  return rows.text(0, 0) == "t" ? LeaseOutcome::Ok : LeaseOutcome::Lost;
}

std::vector<Param> PostgresStore::release_params(std::string_view key, std::int64_t token,
                                                 const Outcome& outcome) const {
  return {std::string(key),
          str(token),
          std::string(to_string(outcome.status)),
          outcome.exit_code ? Param(str(*outcome.exit_code)) : Param(),
          outcome.reason,
          wall_ms(),
          store_time()};
}

Result<LeaseOutcome> PostgresStore::release(std::string_view key, std::int64_t token,
                                            const Outcome& outcome) {
  AEC_RETURN_IF_ERROR(check_release_args(key, token, outcome));
  std::vector<Param> params = release_params(key, token, outcome);
  AEC_ASSIGN_OR_RETURN(Rows rows, pool_.run(release_, params));
  return rows.text(0, 0) == "t" ? LeaseOutcome::Ok : LeaseOutcome::Lost;
}

Result<Handoff> PostgresStore::release_and_acquire(std::string_view key, std::int64_t token,
                                                   const Outcome& outcome,
                                                   const AcquireRequest& next) {
  AEC_RETURN_IF_ERROR(check_release_args(key, token, outcome));
  AEC_RETURN_IF_ERROR(check_handoff(key, next));
  AEC_RETURN_IF_ERROR(check_acquire_request(next));
  // release's parameters but the last two (wall, store time), then acquire's but the key.
  std::vector<Param> params = release_params(key, token, outcome);
  params.resize(5);
  std::vector<Param> acquire = acquire_params(next);
  params.insert(params.end(), acquire.begin() + 1, acquire.end());
  AEC_ASSIGN_OR_RETURN(Rows rows, pool_.run(handoff_, params));
  AEC_ASSIGN_OR_RETURN(AcquireResult granted, read_acquire(rows, 1, next));
  return Handoff{.released = rows.text(0, 0) == "t" ? LeaseOutcome::Ok : LeaseOutcome::Lost,
                 .next = std::move(granted)};
}

Result<KeyState> PostgresStore::get(std::string_view key) {
  AEC_RETURN_IF_ERROR(validate_key(key));
  std::vector<Param> params = {std::string(key), store_time()};
  AEC_ASSIGN_OR_RETURN(Rows rows, pool_.run(get_, params));
  KeyState state{.key = std::string(key)};
  AEC_ASSIGN_OR_RETURN(state.last_token, rows.int64(0, 0));
  AEC_ASSIGN_OR_RETURN(state.version, rows.int64(0, 1));
  AEC_ASSIGN_OR_RETURN(state.holders, pg::holders_from_json(rows.text(0, 2)));
  AEC_ASSIGN_OR_RETURN(state.queue, pg::strings_from_json(rows.text(0, 3)));
  AEC_ASSIGN_OR_RETURN(state.last_ended, pg::maybe_execution_from_json(rows.text(0, 4)));
  return state;
}

Result<std::vector<Execution>> PostgresStore::list(const ListFilter& filter) {
  // A read: an execution whose lease has expired but is not reaped yet is shown as the Lost
  // execution it is (the next write records it so). The statement is built for the filter and
  // never prepared, so each runs with a plan for its own conditions.
  const std::string& s = url_.schema;
  std::string sql = fmt::format(
      "SELECT {0}.exec_json(x) FROM (SELECT e.seq, e.id, e.key, e.token, "
      "CASE WHEN lost THEN 'lost' ELSE e.status END AS status, e.host, e.pid, e.\"user\", "
      "e.started_ms, e.ended_ms, e.exit_code, e.labels, "
      "CASE WHEN lost THEN 'lease expired' ELSE e.reason END AS reason "
      "FROM {0}.executions e, LATERAL (SELECT e.status = 'running' AND NOT EXISTS (SELECT 1 "
      "FROM {0}.leases l WHERE l.key = e.key AND l.token = e.token AND "
      "l.expires_at > {0}.clock($1::bigint))) AS shown(lost) WHERE true",
      s);
  std::vector<Param> params = {store_time()};
  if (!filter.key.empty()) {
    params.emplace_back(filter.key);
    sql += fmt::format(" AND e.key = ${}", params.size());
  }
  if (!filter.prefix.empty()) {
    params.emplace_back(filter.prefix);
    sql += fmt::format(" AND starts_with(e.key, ${})", params.size());
  }
  sql += ") x";
  if (!filter.statuses.empty()) {
    std::string words;
    for (ExecutionStatus st : filter.statuses) {
      words += fmt::format("{}{}", words.empty() ? "" : ",", to_string(st));
    }
    params.emplace_back("{" + words + "}");
    sql += fmt::format(" WHERE x.status = ANY(${}::text[])", params.size());
  }
  params.emplace_back(
      str(static_cast<std::int64_t>(std::min<std::size_t>(filter.limit, INT64_MAX))));
  params.emplace_back(
      str(static_cast<std::int64_t>(std::min<std::size_t>(filter.offset, INT64_MAX))));
  sql += fmt::format(" ORDER BY x.seq DESC LIMIT ${} OFFSET ${}", params.size() - 1, params.size());
  Statement stmt{nullptr, sql, static_cast<int>(params.size()), true};
  AEC_ASSIGN_OR_RETURN(Rows rows, pool_.run(stmt, params));
  std::vector<Execution> out;
  for (int i = 0; i < rows.size(); ++i) {
    AEC_ASSIGN_OR_RETURN(Execution e, pg::execution_from_json(rows.text(i, 0)));
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::int64_t> PostgresStore::read_version(std::string_view key) {
  std::vector<Param> params = {std::string(key)};
  AEC_ASSIGN_OR_RETURN(Rows rows, pool_.run(version_, params));
  return rows.size() == 0 ? std::int64_t{0} : rows.int64(0, 0);
}

pg::Listener* PostgresStore::listener() {
  if (url_.listen.empty()) {
    return nullptr;
  }
  std::lock_guard lock(listener_mu_);
  if (!listener_) {
    listener_ = std::make_unique<pg::Listener>(url_.listen, url_.display, url_.schema);
  }
  return listener_.get();
}

Result<std::int64_t> PostgresStore::wait(std::string_view key_view, std::int64_t version,
                                         MonoTime deadline, std::stop_token stop) {
  AEC_RETURN_IF_ERROR(validate_key(key_view));
  std::string key(key_view);
  pg::Listener* listen = listener();
  // Subscribe, and register as a listener of the key, before the first read, so that a change
  // committed after it is notified. (A writer that checked for listeners just before the
  // registration and commits just after the read is caught by the read every kReread.)
  pg::Listener::Seen seen = listen != nullptr ? listen->subscribe(key) : pg::Listener::Seen{};
  if (listen != nullptr) {
    AEC_RETURN_IF_ERROR(register_listener(*listen, key));
  }
  struct Unsubscribe {
    pg::Listener* l;
    const std::string& key;
    ~Unsubscribe() {
      if (l != nullptr) {
        l->unsubscribe(key);
      }
    }
  } unsubscribe{listen, key};
  auto poll = std::chrono::nanoseconds(std::chrono::milliseconds(2));
  bool read = true;
  std::int64_t now_version = version;
  auto last_read = std::chrono::steady_clock::now();
  for (;;) {
    if (read || std::chrono::steady_clock::now() - last_read >= kReread) {
      AEC_ASSIGN_OR_RETURN(now_version, read_version(key));
      last_read = std::chrono::steady_clock::now();
    }
    if (now_version != version || clock_->monotonic_now() >= deadline) {
      return now_version;
    }
    if (stop.stop_requested()) {
      return Status(Code::Cancelled, "wait cancelled");
    }
    auto left = deadline - clock_->monotonic_now();
    if (listen != nullptr && listen->listening()) {
      pg::Listener::Seen now =
          listen->await(key, seen, std::min<std::chrono::nanoseconds>(left, kNap), stop);
      read = now != seen;
      seen = now;
      continue;
    }
    // No LISTEN (a transaction pooler without listen=, or the listener is reconnecting): poll.
    std::condition_variable_any never;
    std::mutex mu;
    std::unique_lock lock(mu);
    never.wait_for(lock, stop, std::min<std::chrono::nanoseconds>(poll, left),
                   [] { return false; });
    poll = std::min<std::chrono::nanoseconds>(poll * 2, kMaxPoll);
    read = true;
  }
}

// A feed over the store's LISTEN connection.
class PgChangeFeed final : public ChangeFeed {
 public:
  PgChangeFeed(pg::Listener& listener, pg::Listener::Feed on_change)
      : listener_(listener), id_(listener.add_feed(std::move(on_change))) {}
  ~PgChangeFeed() override { listener_.remove_feed(id_); }

 private:
  pg::Listener& listener_;
  std::uint64_t id_;
};

std::unique_ptr<ChangeFeed> PostgresStore::watch_changes(
    std::function<void(const std::string& key)> on_change) {
  pg::Listener* listen = listener();
  if (listen == nullptr) {
    return nullptr;  // behind a transaction pooler without listen=: no feed
  }
  auto feed = std::make_unique<PgChangeFeed>(*listen, std::move(on_change));
  // A listener of every key: writers NOTIFY every change from now on. Should the registration
  // fail, the listener's thread registers it at its next refresh.
  (void)register_listener(*listen, "");
  return feed;
}

Status PostgresStore::register_listener(pg::Listener& listen, const std::string& key) {
  std::vector<Param> params = {key, listen.id(), str(pg::Listener::kRegistration.count())};
  return pool_.run(listen_, params).status();
}

Result<ForceReleaseResult> PostgresStore::force_release(std::string_view key,
                                                        std::string_view reason, const Owner& by) {
  AEC_RETURN_IF_ERROR(validate_key(key));
  std::vector<Param> params = {std::string(key), forced_reason(reason, by), wall_ms(),
                               store_time()};
  AEC_ASSIGN_OR_RETURN(Rows rows, pool_.run(force_, params));
  ForceReleaseResult result;
  AEC_ASSIGN_OR_RETURN(result.version, rows.int64(0, 0));
  AEC_ASSIGN_OR_RETURN(result.released, pg::executions_from_json(rows.text(0, 1)));
  return result;
}

Status PostgresStore::leave_queue(std::string_view key, std::string_view execution_id) {
  AEC_RETURN_IF_ERROR(validate_key(key));
  std::vector<Param> params = {std::string(key), std::string(execution_id)};
  return pool_.run(leave_, params).status();
}

Result<PurgeResult> PostgresStore::purge(const PurgeRequest& req) {
  AEC_RETURN_IF_ERROR(check_purge_request(req));
  PurgeResult result;
  for (;;) {  // batches of keys, one transaction each
    std::vector<Param> params = {"100", wall_ms(), store_time()};
    AEC_ASSIGN_OR_RETURN(Rows rows, pool_.run(reap_, params));
    AEC_ASSIGN_OR_RETURN(std::int64_t keys, rows.int64(0, 0));
    AEC_ASSIGN_OR_RETURN(std::int64_t reaped, rows.int64(0, 1));
    result.leases_expired += reaped;
    if (keys < 100) {
      break;
    }
  }
  std::string statuses;
  std::vector<ExecutionStatus> wanted = req.statuses;
  if (wanted.empty()) {
    wanted = {ExecutionStatus::Succeeded, ExecutionStatus::Failed, ExecutionStatus::Lost,
              ExecutionStatus::Cancelled, ExecutionStatus::Skipped};
  }
  for (ExecutionStatus s : wanted) {
    statuses += fmt::format("{}{}", statuses.empty() ? "" : ",", to_string(s));
  }
  auto wall = std::chrono::duration_cast<milliseconds>(clock_->system_now().time_since_epoch());
  std::int64_t cutoff = (wall - req.older_than).count();
  std::int64_t batch = static_cast<std::int64_t>(std::max<std::size_t>(req.batch_size, 1));
  for (;;) {  // one bounded batch per transaction
    std::vector<Param> params = {str(cutoff), "{" + statuses + "}", str(batch)};
    AEC_ASSIGN_OR_RETURN(Rows rows, pool_.run(purge_, params));
    AEC_ASSIGN_OR_RETURN(std::int64_t deleted, rows.int64(0, 0));
    result.executions_deleted += deleted;
    if (deleted < batch) {
      return result;
    }
  }
}

Status PostgresStore::open(bool create) {
  AEC_RETURN_IF_ERROR(pg::migrate(pool_, url_.schema, create).status());
  if (manual_clock_) {
    Statement now{"aec_now", "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint", 0,
                  true};
    AEC_ASSIGN_OR_RETURN(Rows rows, pool_.run(now, {}));
    AEC_ASSIGN_OR_RETURN(server_origin_ms_, rows.int64(0, 0));
  }
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<Store>> open_postgres_store(std::string_view url,
                                                   const StoreOptions& options) {
  AEC_ASSIGN_OR_RETURN(pg::PgUrl parsed, pg::parse_pg_url(url));
  auto store = std::make_unique<PostgresStore>(parsed, options);
  AEC_RETURN_IF_ERROR(store->open(options.create));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace aec
