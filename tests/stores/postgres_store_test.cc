// What only the postgres store promises, against a real server (scripts/dev-servers.sh): a
// refused acquire writes nothing, waits are woken by changes made through other connections
// (NOTIFY) or by polling behind a transaction pooler, its schema is versioned, and a call on a
// connection that went silent ends in time.
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <aec/open_store.h>

#include "stores/postgres/pg_schema.h"
#include "tests/fault/fault_proxy.h"
#include "tests/support/servers.h"

namespace aec::testing {
namespace {

using namespace std::chrono_literals;

// A plain libpq connection, to look at the store's tables from outside.
class Sql {
 public:
  explicit Sql(const std::string& url) : conn_(PQconnectdb(url.c_str())) {
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);  // DROP ... CASCADE chatter
  }
  ~Sql() { PQfinish(conn_); }
  bool ok() const { return PQstatus(conn_) == CONNECTION_OK; }
  // Notifications received so far (payloads), without blocking.
  std::vector<std::string> notifications() {
    PQconsumeInput(conn_);
    std::vector<std::string> out;
    while (PGnotify* n = PQnotifies(conn_)) {
      out.emplace_back(n->extra);
      PQfreemem(n);
    }
    return out;
  }
  // The first column of the first row, or "ERROR: ..." when the statement fails.
  std::string one(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    std::string out;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
      out = PQgetvalue(r, 0, 0);
    } else if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
      out = std::string("ERROR: ") + PQresultErrorMessage(r);
    }
    PQclear(r);
    return out;
  }

 private:
  PGconn* conn_;
};

class PostgresStoreTest : public ::testing::Test {
 protected:
  // Registers a listener of `key` the way a waiting store does.
  void sql_listen(Sql& sql, const std::string& key) {
    EXPECT_EQ(sql.one("SELECT " + schema_ + ".listen('" + key + "', 'test', 60000)"), "");
  }

  void SetUp() override {
    std::optional<std::string> url = server_setting("AEC_TEST_POSTGRES_URL");
    if (!url) {
      GTEST_SKIP() << missing_server("AEC_TEST_POSTGRES_URL");
    }
    base_ = *url;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    schema_ = "pgtest_" + std::string(info->name()).substr(0, 30);
    for (char& c : schema_) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    Sql sql(base_);
    ASSERT_TRUE(sql.ok());
    sql.one("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE");
  }

  std::string url(const std::string& extra = "") const {
    return base_ + "?schema=" + schema_ + extra;
  }

  std::unique_ptr<Store> open(const std::string& u, StoreOptions options = {}) {
    auto store = open_store(u, options);
    EXPECT_TRUE(store.has_value()) << store.error().to_string();
    return store ? std::move(*store) : nullptr;
  }

  AcquireRequest request(const std::string& id) {
    return {.key = "k", .execution_id = id, .ttl = 30s, .owner = {.host = "h", .pid = 1}};
  }

  std::string base_;
  std::string schema_;
};

// The key's row as (xmin, xmax): any write or row lock on it changes one of them.
std::string row_version(Sql& sql, const std::string& schema) {
  return sql.one("SELECT xmin::text || '/' || xmax::text FROM " + schema + ".keys WHERE key = 'k'");
}

TEST_F(PostgresStoreTest, ARefusedAcquireTakesNoLockAndWritesNothing) {
  auto store = open(url());
  ASSERT_EQ(store->acquire(request("holder"))->outcome, AcquireOutcome::Granted);
  Sql sql(base_);
  std::string before = row_version(sql, schema_);
  std::string executions = sql.one("SELECT count(*) FROM " + schema_ + ".executions");
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(store->acquire(request("caller" + std::to_string(i)))->outcome, AcquireOutcome::Busy);
  }
  EXPECT_EQ(row_version(sql, schema_), before) << "a refused acquire locked or wrote the key row";
  EXPECT_EQ(sql.one("SELECT count(*) FROM " + schema_ + ".executions"), executions);
  // The check bites: asking to queue does write (a place in line), and that shows.
  AcquireRequest queued = request("queued");
  queued.queue = true;
  ASSERT_EQ(store->acquire(queued)->outcome, AcquireOutcome::Busy);
  EXPECT_NE(row_version(sql, schema_), before);
}

// Notifications received within 10 s, until `want` have come (a condition polled, not a sleep).
std::vector<std::string> await_notifications(Sql& sql, std::size_t want) {
  std::vector<std::string> got;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
    for (std::string& n : sql.notifications()) {
      got.push_back(std::move(n));
    }
    std::this_thread::sleep_for(1ms);
  }
  return got;
}

TEST_F(PostgresStoreTest, ChangesNotifyOnlyWhenSomeoneListensForTheKey) {
  auto store = open(url());
  Sql watcher(base_);
  watcher.one("LISTEN " + schema_);  // LISTENs, but is not registered as a listener of "k"
  Sql probe(base_);
  auto pair = [&] {
    auto r = store->acquire(request("e"));
    ASSERT_EQ(r->outcome, AcquireOutcome::Granted);
    ASSERT_EQ(*store->release("k", r->lease.token, {}), LeaseOutcome::Ok);
    probe.one("SELECT 1");  // a round trip after the commits, so their notifications are out
  };
  pair();
  EXPECT_TRUE(watcher.notifications().empty()) << "a NOTIFY (and its commit lock) for nobody";
  sql_listen(probe, "k");
  pair();
  std::vector<std::string> got = await_notifications(watcher, 1);
  ASSERT_FALSE(got.empty()) << "a registered listener was not told";
  EXPECT_EQ(got[0], "k");  // the key, and no one named: no one waits in its line
}

TEST_F(PostgresStoreTest, AWaitIsWokenByAReleaseThroughAnotherConnection) {
  auto waiter_store = open(url());
  auto writer_store = open(url());
  auto granted = writer_store->acquire(request("e1"));
  ASSERT_EQ(granted->outcome, AcquireOutcome::Granted);
  std::int64_t version = waiter_store->get("k")->version;
  auto waiter = std::async(std::launch::async, [&] {
    return waiter_store->wait("k", version, BootClock::now() + 60s, {});
  });
  EXPECT_EQ(waiter.wait_for(50ms), std::future_status::timeout);
  ASSERT_EQ(*writer_store->release("k", granted->lease.token, {}), LeaseOutcome::Ok);
  auto seen = waiter.get();
  ASSERT_TRUE(seen.has_value()) << seen.error().to_string();
  EXPECT_GT(*seen, version);
}

// Schema version 3: the release grants the freed slot to the first in line in its own
// transaction and names only that waiter; the waiter's next ask takes the lease (its ttl from
// then); the grant that fills the key wakes no one else.
TEST_F(PostgresStoreTest, AReleaseHandsTheSlotToTheFirstInLineAndNamesOnlyIt) {
  auto store = open(url());
  auto a = store->acquire(request("a"));
  ASSERT_EQ(a->outcome, AcquireOutcome::Granted);
  for (const char* id : {"b", "c"}) {
    AcquireRequest req = request(id);
    req.queue = true;
    ASSERT_EQ(store->acquire(req)->outcome, AcquireOutcome::Busy);
  }
  Sql watcher(base_);
  watcher.one("LISTEN " + schema_);
  Sql probe(base_);
  ASSERT_EQ(*store->release("k", a->lease.token, {}), LeaseOutcome::Ok);
  // b holds the slot before it asks, until its place would have lapsed (queue_ttl 3 s).
  const std::string leases = schema_ + ".leases";
  EXPECT_EQ(probe.one("SELECT handed_to || ' ' || token FROM " + leases), "b 2");
  EXPECT_EQ(probe.one("SELECT expires_at - clock_timestamp() <= interval '3 s' FROM " + leases),
            "t");
  auto state = store->get("k");
  ASSERT_EQ(state->holders.size(), 1u);
  EXPECT_EQ(state->holders[0].execution.id, "b");
  ASSERT_EQ(state->queue.size(), 1u);
  EXPECT_EQ(state->queue[0], "c");
  auto told = await_notifications(watcher, 1);
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0], std::string("k\x1f"
                                 "b"))
      << "the release must name b, and only b";
  // c asks: still behind b. b asks: the lease is b's, with its whole ttl from now.
  AcquireRequest c = request("c");
  c.queue = true;
  EXPECT_EQ(store->acquire(c)->outcome, AcquireOutcome::Busy);
  AcquireRequest b = request("b");
  b.queue = true;
  auto taken = store->acquire(b);
  ASSERT_EQ(taken->outcome, AcquireOutcome::Granted);
  EXPECT_EQ(taken->lease.token, 2);
  EXPECT_EQ(probe.one("SELECT coalesce(handed_to, 'taken') FROM " + leases), "taken");
  EXPECT_EQ(probe.one("SELECT expires_at - clock_timestamp() > interval '20 s' FROM " + leases),
            "t");
  probe.one("SELECT 1");
  EXPECT_TRUE(watcher.notifications().empty()) << "taking the lease woke someone";
  ASSERT_EQ(*store->release("k", taken->lease.token, {}), LeaseOutcome::Ok);
  EXPECT_EQ(store->acquire(c)->lease.token, 3);
}

// A waiter that leaves the line after a release granted it the slot, but before it took it
// (it timed out or was cancelled), frees the slot for the next.
TEST_F(PostgresStoreTest, LeavingTheLineFreesALeaseHandedOverButNotTaken) {
  auto store = open(url());
  auto a = store->acquire(request("a"));
  ASSERT_EQ(a->outcome, AcquireOutcome::Granted);
  AcquireRequest b = request("b");
  b.queue = true;
  ASSERT_EQ(store->acquire(b)->outcome, AcquireOutcome::Busy);
  ASSERT_EQ(*store->release("k", a->lease.token, {}), LeaseOutcome::Ok);
  ASSERT_EQ(store->get("k")->holders.size(), 1u);
  ASSERT_TRUE(store->leave_queue("k", "b").is_ok());
  EXPECT_TRUE(store->get("k")->holders.empty());
  auto history = store->list({.key = "k"});
  ASSERT_TRUE(history.has_value());
  ASSERT_FALSE(history->empty());
  EXPECT_EQ(history->front().id, "b");
  EXPECT_EQ(history->front().status, ExecutionStatus::Cancelled);
  AcquireRequest c = request("c");
  c.queue = true;
  EXPECT_EQ(store->acquire(c)->outcome, AcquireOutcome::Granted);
}

TEST_F(PostgresStoreTest, BehindATransactionPoolerWithoutListenWaitsPoll) {
  std::optional<std::string> bouncer = server_setting("AEC_TEST_PGBOUNCER_URL");
  if (!bouncer) {
    GTEST_SKIP() << missing_server("AEC_TEST_PGBOUNCER_URL");
  }
  std::string pooled = *bouncer + "?pooler=transaction&schema=" + schema_;
  auto waiter_store = open(pooled);
  auto writer_store = open(pooled);
  auto granted = writer_store->acquire(request("e1"));
  ASSERT_EQ(granted->outcome, AcquireOutcome::Granted);
  std::int64_t version = waiter_store->get("k")->version;
  auto waiter = std::async(std::launch::async, [&] {
    return waiter_store->wait("k", version, BootClock::now() + 60s, {});
  });
  ASSERT_EQ(*writer_store->release("k", granted->lease.token, {}), LeaseOutcome::Ok);
  auto seen = waiter.get();
  ASSERT_TRUE(seen.has_value()) << seen.error().to_string();
  EXPECT_GT(*seen, version);
}

TEST_F(PostgresStoreTest, OpeningWithoutCreateFindsNoSchema) {
  StoreOptions options;
  options.create = false;
  auto store = open_store(url(), options);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code(), Code::NotFound);
  EXPECT_NE(store.error().message().find("aec admin migrate"), std::string::npos);
  Sql sql(base_);
  EXPECT_EQ(sql.one("SELECT count(*) FROM pg_namespace WHERE nspname = '" + schema_ + "'"), "0");
}

TEST_F(PostgresStoreTest, ANewerSchemaIsRefusedAndLeftAlone) {
  open(url());
  Sql sql(base_);
  sql.one("UPDATE " + schema_ + ".meta SET value = '99' WHERE name = 'schema_version'");
  auto store = open_store(url());
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code(), Code::FailedPrecondition);
  EXPECT_NE(store.error().message().find("upgrade aec"), std::string::npos);
  EXPECT_EQ(sql.one("SELECT value FROM " + schema_ + ".meta WHERE name = 'schema_version'"), "99");
}

// A database written by an older aec (schema version 1: the same tables, older functions) is
// upgraded in place by the next open, and what it held is still held.
TEST_F(PostgresStoreTest, AnOlderSchemaIsUpgradedInPlaceKeepingItsLeases) {
  auto first = open(url());
  auto held = first->acquire({.key = "k", .execution_id = "e1", .ttl = 60s});
  ASSERT_TRUE(held.has_value()) << held.error().to_string();
  ASSERT_EQ(held->outcome, AcquireOutcome::Granted);
  Sql sql(base_);
  sql.one("UPDATE " + schema_ + ".meta SET value = '1' WHERE name = 'schema_version'");
  auto store = open_store(url());
  ASSERT_TRUE(store.has_value()) << store.error().to_string();
  EXPECT_EQ(sql.one("SELECT value FROM " + schema_ + ".meta WHERE name = 'schema_version'"),
            std::to_string(pg::kSchemaVersion));
  auto busy = (*store)->acquire({.key = "k", .execution_id = "e2", .ttl = 60s});
  ASSERT_TRUE(busy.has_value()) << busy.error().to_string();
  EXPECT_EQ(busy->outcome, AcquireOutcome::Busy);
  EXPECT_EQ(*(*store)->release("k", held->lease.token, {}), LeaseOutcome::Ok);
}

TEST_F(PostgresStoreTest, ConcurrentFirstOpensCreateTheSchemaOnce) {
  std::vector<std::future<bool>> opens;
  for (int i = 0; i < 6; ++i) {
    opens.push_back(std::async(std::launch::async, [&] { return open_store(url()).has_value(); }));
  }
  for (auto& f : opens) {
    EXPECT_TRUE(f.get());
  }
  auto store = open(url());
  EXPECT_EQ(store->acquire(request("e1"))->lease.token, 1);
}

// Found by the reliability suite (T11, a half-open partition): a statement unanswered on a
// connection gone half open was given up at its timeout, and then libpq's cancel request,
// made on a new connection along the same dead path, waited for the server's answer forever
// (PQcancel has no timeout): `aec run` never ended, the network long healed. No cancel is sent
// now: the call ends at its timeout.
TEST_F(PostgresStoreTest, AStatementUnansweredOnAHalfOpenConnectionEndsAtItsTimeout) {
  // base_ is postgres://USER@HOST:PORT/DATABASE: the same through a proxy.
  std::size_t at = base_.find('@');
  std::size_t colon = base_.find(':', at);
  std::size_t slash = base_.find('/', colon);
  ASSERT_TRUE(at != std::string::npos && colon != std::string::npos && slash != std::string::npos)
      << base_;
  auto proxy = fault::FaultProxy::start(base_.substr(at + 1, colon - at - 1),
                                        std::stoi(base_.substr(colon + 1, slash - colon - 1)));
  ASSERT_TRUE(proxy.has_value()) << proxy.status().message();
  std::string proxied = base_.substr(0, colon + 1) + std::to_string((*proxy)->port()) +
                        base_.substr(slash) + "?schema=" + schema_ + "&connect_timeout=2";
  StoreOptions options;
  options.lock_timeout = 1s;  // how long the store waits for an answer
  auto store = open(proxied, options);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->acquire(request("first")).has_value());  // the pool's connection is open
  (*proxy)->half_open();
  auto call = std::async(std::launch::async, [&] { return store->acquire(request("second")); });
  // A generous bound (the timeout is 1 s, a new connection's 2 s): before the fix, never.
  bool ended = call.wait_for(30s) == std::future_status::ready;
  if (!ended) {
    proxy->reset();  // closes every connection: the stuck cancel returns, and the call with it
  }
  Result<AcquireResult> r = call.get();
  ASSERT_TRUE(ended) << "the call did not end within 30 s";
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::Unavailable) << r.error().to_string();
  EXPECT_NE(r.error().message().find("may or may not have run"), std::string::npos)
      << r.error().message();
}

TEST_F(PostgresStoreTest, AServerThatIsDownIsUnavailableInOneLine) {
  auto store = open_store("postgres://aec@127.0.0.1:1/aec?connect_timeout=2");
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code(), Code::Unavailable);
  EXPECT_NE(store.error().message().find("cannot connect"), std::string::npos);
  EXPECT_EQ(store.error().message().find('\n'), std::string::npos);
  EXPECT_EQ(store.error().message().find('\t'), std::string::npos);
}

}  // namespace
}  // namespace aec::testing
