// aec::etcd::Client against a real 3-member etcd cluster (scripts/dev-servers.sh up --only etcd;
// skipped without one): KV and transactions, leases kept alive and lost, watches. Failover
// (members killed) is in etcd_failover_test.cc; what a real cluster cannot be made to answer on
// demand (timeouts after sending) is in etcd_errors_test.cc.
#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <stop_token>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "stores/etcd/keep_alive.h"
#include "stores/etcd/txn_ops.h"
#include "stores/etcd/watch.h"
#include "tests/stores/etcd_test_cluster.h"

namespace aec::testing {
namespace {

using namespace std::chrono_literals;
using etcd::Compare;
using etcd::Event;

class EtcdClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "gRPC is not built with ThreadSanitizer: its synchronisation is invisible";
#endif
    auto cluster = find_etcd_cluster();
    if (!cluster) {
      GTEST_SKIP() << no_etcd_cluster();
    }
    cluster_ = *cluster;
    client_ = connect();
    ASSERT_NE(client_, nullptr);
    // Every test works under a prefix of its own, so runs and tests never see each other.
    prefix_ = fmt::format("aec-test/etcd-client/{:x}/", std::random_device{}());
  }

  void TearDown() override {
    if (client_ != nullptr) {
      (void)client_->delete_range(prefix_, etcd::prefix_end(prefix_));
    }
  }

  std::unique_ptr<etcd::Client> connect() {
    auto client = etcd::Client::connect(cluster_.endpoints, {.rpc_timeout = 5s});
    EXPECT_TRUE(client.has_value()) << client.error().to_string();
    return client ? std::move(*client) : nullptr;
  }

  std::string key(std::string_view name) const {
    return prefix_ + std::string(name);
  }

  EtcdCluster cluster_;
  std::unique_ptr<etcd::Client> client_;
  std::string prefix_;
};

TEST_F(EtcdClientTest, PutRangeAndDelete) {
  auto put = client_->put(key("a"), "1");
  ASSERT_TRUE(put.has_value()) << put.error().to_string();
  auto again = client_->put(key("a"), "2", {.prev_kv = true});
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->prev_kv().value(), "1");
  EXPECT_GT(again->header().revision(), put->header().revision());
  ASSERT_TRUE(client_->put(key("b"), "3").has_value());
  ASSERT_TRUE(client_->put(key("c"), "4").has_value());

  auto one = client_->range(key("a"));
  ASSERT_TRUE(one.has_value());
  ASSERT_EQ(one->kvs_size(), 1);
  EXPECT_EQ(one->kvs(0).value(), "2");
  EXPECT_EQ(one->kvs(0).version(), 2);
  EXPECT_EQ(one->kvs(0).mod_revision(), again->header().revision());
  EXPECT_EQ(one->kvs(0).create_revision(), put->header().revision());

  const std::string end = etcd::prefix_end(prefix_);
  auto limited =
      client_->range(prefix_, end, {.limit = 2, .sort_order = etcd::RangeRequest::DESCEND});
  ASSERT_TRUE(limited.has_value());
  ASSERT_EQ(limited->kvs_size(), 2);
  EXPECT_EQ(limited->kvs(0).key(), key("c"));
  EXPECT_TRUE(limited->more());
  EXPECT_EQ(limited->count(), 3);
  auto counted = client_->range(prefix_, end, {.count_only = true});
  EXPECT_EQ(counted->kvs_size(), 0);
  EXPECT_EQ(counted->count(), 3);
  auto keys = client_->range(prefix_, end, {.keys_only = true});
  EXPECT_EQ(keys->kvs(1).key(), key("b"));
  EXPECT_EQ(keys->kvs(1).value(), "");

  auto deleted = client_->delete_range(key("a"), key("c"), /*prev_kv=*/true);
  ASSERT_TRUE(deleted.has_value());
  EXPECT_EQ(deleted->deleted(), 2);
  EXPECT_EQ(deleted->prev_kvs(1).value(), "3");
  EXPECT_EQ(client_->range(prefix_, end)->count(), 1);
  EXPECT_EQ(client_->range(key("missing"))->kvs_size(), 0);  // absent: no error
}

TEST_F(EtcdClientTest, TxnCreatesOnlyWhenAbsent) {
  etcd::TxnRequest create;
  *create.add_compare() = etcd::compare_version(key("k"), Compare::EQUAL, 0);
  *create.add_success() = etcd::op_put(key("k"), "mine");
  *create.add_failure() = etcd::op_get(key("k"));
  auto first = client_->txn(create);
  ASSERT_TRUE(first.has_value()) << first.error().to_string();
  EXPECT_TRUE(first->succeeded());

  *create.mutable_success(0) = etcd::op_put(key("k"), "theirs");
  auto second = client_->txn(create);
  ASSERT_TRUE(second.has_value());
  EXPECT_FALSE(second->succeeded());
  ASSERT_EQ(second->responses_size(), 1);
  EXPECT_EQ(second->responses(0).response_range().kvs(0).value(), "mine");
}

TEST_F(EtcdClientTest, TxnComparesEveryTarget) {
  auto granted = client_->lease_grant(30s);
  ASSERT_TRUE(granted.has_value());
  auto put = client_->put(key("k"), "v", {.lease = granted->id()});
  ASSERT_TRUE(put.has_value());
  const std::int64_t rev = put->header().revision();
  const std::string k = key("k");
  auto holds = [&](Compare c) {
    etcd::TxnRequest t;
    *t.add_compare() = std::move(c);
    // Without an operation etcd 3.4 treats the txn as serializable: a member that has not
    // applied the put yet could answer.
    *t.add_success() = etcd::op_get(k);
    auto r = client_->txn(t);
    EXPECT_TRUE(r.has_value()) << r.error().to_string();
    return r && r->succeeded();
  };
  EXPECT_TRUE(holds(etcd::compare_value(k, Compare::EQUAL, "v")));
  EXPECT_FALSE(holds(etcd::compare_value(k, Compare::NOT_EQUAL, "v")));
  EXPECT_TRUE(holds(etcd::compare_value(k, Compare::GREATER, "u")));
  EXPECT_TRUE(holds(etcd::compare_version(k, Compare::EQUAL, 1)));
  EXPECT_TRUE(holds(etcd::compare_version(k, Compare::GREATER, 0)));
  EXPECT_TRUE(holds(etcd::compare_mod(k, Compare::EQUAL, rev)));
  EXPECT_TRUE(holds(etcd::compare_mod(k, Compare::LESS, rev + 1)));
  EXPECT_FALSE(holds(etcd::compare_mod(k, Compare::GREATER, rev)));
  EXPECT_TRUE(holds(etcd::compare_create(k, Compare::EQUAL, rev)));
  EXPECT_TRUE(holds(etcd::compare_create(k, Compare::NOT_EQUAL, rev - 1)));
  EXPECT_TRUE(holds(etcd::compare_lease(k, Compare::EQUAL, granted->id())));
  EXPECT_FALSE(holds(etcd::compare_lease(k, Compare::EQUAL, 0)));
  // Every compare must hold (a conjunction), and a range compare covers every key in it.
  etcd::TxnRequest both;
  *both.add_compare() = etcd::compare_value(k, Compare::EQUAL, "v");
  *both.add_compare() = etcd::compare_version(k, Compare::EQUAL, 7);
  *both.add_success() = etcd::op_get(k);
  EXPECT_FALSE(client_->txn(both)->succeeded());
  Compare in_range = etcd::compare_version(prefix_, Compare::GREATER, 0);
  in_range.set_range_end(etcd::prefix_end(prefix_));
  EXPECT_TRUE(holds(in_range));
  EXPECT_TRUE(client_->lease_revoke(granted->id()).is_ok());
}

TEST_F(EtcdClientTest, TxnRefusesTwoWritesOfOneKey) {
  etcd::TxnRequest twice;
  *twice.add_success() = etcd::op_put(key("k"), "1");
  *twice.add_success() = etcd::op_put(key("k"), "2");
  auto r = client_->txn(twice);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::InvalidArgument) << r.error().to_string();
  EXPECT_FALSE(etcd::is_indeterminate(r.error()));
}

TEST_F(EtcdClientTest, RevokeDeletesTheLeaseKeys) {
  auto granted = client_->lease_grant(30s);
  ASSERT_TRUE(granted.has_value()) << granted.error().to_string();
  EXPECT_GE(granted->ttl(), 30);
  ASSERT_TRUE(client_->put(key("leased"), "x", {.lease = granted->id()}).has_value());
  auto ttl = client_->lease_time_to_live(granted->id(), /*keys=*/true);
  ASSERT_TRUE(ttl.has_value());
  EXPECT_GT(ttl->ttl(), 0);
  ASSERT_EQ(ttl->keys_size(), 1);
  EXPECT_EQ(ttl->keys(0), key("leased"));

  ASSERT_TRUE(client_->lease_revoke(granted->id()).is_ok());
  EXPECT_EQ(client_->range(key("leased"))->kvs_size(), 0);
  EXPECT_EQ(client_->lease_time_to_live(granted->id())->ttl(), -1);
  Status again = client_->lease_revoke(granted->id());
  EXPECT_EQ(again.code(), Code::NotFound) << again.to_string();
}

TEST_F(EtcdClientTest, KeepAliveKeepsKeyPastItsTtlAndStoppingLetsItExpire) {
  const MonoTime before = BootClock::now();
  // A settled cluster first: a member restarted by an earlier test may still call an election,
  // and keep-alives sent meanwhile go unanswered.
  ASSERT_TRUE(leader(*client_, cluster_).has_value());
  // 4 s: long enough that a leader election (500 ms election timeout on the test cluster) on a
  // loaded machine does not let the lease lapse between keep-alives (sent every ttl / 3).
  auto granted = client_->lease_grant(4s);
  ASSERT_TRUE(granted.has_value());
  const auto ttl = std::chrono::seconds(granted->ttl());
  auto put = client_->put(key("held"), "x", {.lease = granted->id()});
  ASSERT_TRUE(put.has_value());
  // From the revision after the put: a watch "from now" opened on a member that has not applied
  // the put yet would report the put itself as a change.
  auto watch =
      etcd::Watch::open(*client_, key("held"), {.start_revision = put->header().revision() + 1});
  ASSERT_TRUE(watch.has_value()) << watch.error().to_string();
  auto keeper = etcd::KeepAlive::start(*client_, granted->id(), {.ttl = ttl, .granted_at = before});

  // Two TTLs pass without the key being deleted.
  const MonoTime until = BootClock::now() + 2 * ttl;
  while (BootClock::now() < until) {
    auto batch = (*watch)->next(until);
    ASSERT_TRUE(batch.has_value()) << batch.error().to_string();
    EXPECT_TRUE(batch->events.empty())
        << "the leased key changed under its keep-alive: "
        << (batch->events.empty() ? "" : Event::EventType_Name(batch->events[0].type()));
  }
  EXPECT_EQ(client_->range(key("held"))->kvs_size(), 1);
  EXPECT_EQ(keeper->state(), etcd::KeepAlive::State::Alive) << keeper->lost_reason().to_string();
  EXPECT_GE(keeper->answers(), 2u);
  EXPECT_GT(keeper->expires_at(), BootClock::now());

  keeper->stop();
  EXPECT_EQ(keeper->state(), etcd::KeepAlive::State::Stopped);
  // etcd deletes the key once the TTL runs out (it checks expiry every 500 ms).
  auto batch = (*watch)->next(BootClock::now() + ttl + 5s);
  ASSERT_TRUE(batch.has_value()) << batch.error().to_string();
  ASSERT_EQ(batch->events.size(), 1u);
  EXPECT_EQ(batch->events[0].type(), Event::DELETE);
}

TEST_F(EtcdClientTest, KeepAliveReportsARevokedLease) {
  auto granted = client_->lease_grant(3s);
  ASSERT_TRUE(granted.has_value());
  std::atomic<int> calls{0};
  auto keeper = etcd::KeepAlive::start(
      *client_, granted->id(),
      {.ttl = std::chrono::seconds(granted->ttl()), .on_lost = [&](const Status&) { ++calls; }});
  ASSERT_TRUE(eventually([&] { return keeper->answers() > 0; }, 5s));
  ASSERT_TRUE(client_->lease_revoke(granted->id()).is_ok());
  // The next keep-alive (within ttl/3) is answered with TTL 0.
  ASSERT_TRUE(eventually([&] { return keeper->state() == etcd::KeepAlive::State::Lost; }, 5s));
  EXPECT_EQ(keeper->lost_reason().code(), Code::NotFound) << keeper->lost_reason().to_string();
  EXPECT_EQ(calls.load(), 1);
  keeper->stop();
  EXPECT_EQ(keeper->state(), etcd::KeepAlive::State::Lost);  // stop() keeps the verdict
}

TEST_F(EtcdClientTest, WatchSeesChangesFromAnotherClient) {
  auto other = connect();
  ASSERT_NE(other, nullptr);
  auto watch = etcd::Watch::open(*client_, prefix_, {.range_end = etcd::prefix_end(prefix_)});
  ASSERT_TRUE(watch.has_value()) << watch.error().to_string();
  auto put = other->put(key("w"), "v1");
  ASSERT_TRUE(put.has_value());

  auto batch = (*watch)->next(BootClock::now() + 5s);
  ASSERT_TRUE(batch.has_value()) << batch.error().to_string();
  ASSERT_EQ(batch->events.size(), 1u);
  EXPECT_EQ(batch->events[0].type(), Event::PUT);
  EXPECT_EQ(batch->events[0].kv().key(), key("w"));
  EXPECT_EQ(batch->events[0].kv().value(), "v1");
  EXPECT_EQ((*watch)->next_revision(), put->header().revision() + 1);

  ASSERT_TRUE(other->delete_range(key("w")).has_value());
  batch = (*watch)->next(BootClock::now() + 5s);
  ASSERT_EQ(batch->events.size(), 1u);
  EXPECT_EQ(batch->events[0].type(), Event::DELETE);
  // Nothing more: a timeout is an empty batch, not an error.
  batch = (*watch)->next(BootClock::now() + 100ms);
  ASSERT_TRUE(batch.has_value());
  EXPECT_TRUE(batch->events.empty());
}

TEST_F(EtcdClientTest, WatchStopsOnRequestAndGoesOnAfterwards) {
  auto watch = etcd::Watch::open(*client_, key("s"));
  ASSERT_TRUE(watch.has_value());
  std::stop_source source;
  std::jthread stopper([&] { source.request_stop(); });
  auto stopped = (*watch)->next(BootClock::now() + 30s, source.get_token());
  ASSERT_FALSE(stopped.has_value());
  EXPECT_EQ(stopped.error().code(), Code::Cancelled);
  // Stopping cancelled the stream; the next call opens another from where it was.
  ASSERT_TRUE(client_->put(key("s"), "after").has_value());
  auto batch = (*watch)->next(BootClock::now() + 5s);
  ASSERT_TRUE(batch.has_value()) << batch.error().to_string();
  ASSERT_EQ(batch->events.size(), 1u);
  EXPECT_EQ(batch->events[0].kv().value(), "after");
}

TEST_F(EtcdClientTest, WatchReportsCompactedHistoryAndGoesOn) {
  auto first = client_->put(key("c"), "1");
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(client_->put(key("c"), "2").has_value());
  auto last = client_->put(key("c"), "3");
  ASSERT_TRUE(client_->compact(last->header().revision()).has_value());
  auto old = client_->range(key("c"), {}, {.revision = first->header().revision()});
  ASSERT_FALSE(old.has_value());
  EXPECT_EQ(old.error().code(), Code::FailedPrecondition) << old.error().to_string();

  auto watch =
      etcd::Watch::open(*client_, key("c"), {.start_revision = first->header().revision()});
  ASSERT_TRUE(watch.has_value()) << watch.error().to_string();
  auto batch = (*watch)->next(BootClock::now() + 5s);
  ASSERT_TRUE(batch.has_value()) << batch.error().to_string();
  EXPECT_TRUE(batch->events.empty());
  EXPECT_GE(batch->compact_revision, last->header().revision());
  EXPECT_EQ((*watch)->next_revision(), batch->compact_revision);
  // It goes on from the compaction revision: the newest value again, then new changes.
  ASSERT_TRUE(client_->put(key("c"), "4").has_value());
  std::vector<std::string> seen;
  while (seen.empty() || seen.back() != "4") {
    batch = (*watch)->next(BootClock::now() + 5s);
    ASSERT_TRUE(batch.has_value()) << batch.error().to_string();
    ASSERT_FALSE(batch->events.empty());
    for (const Event& e : batch->events) {
      seen.push_back(e.kv().value());
    }
  }
  EXPECT_LE(seen.size(), 2u);
}

TEST_F(EtcdClientTest, StatusNamesTheLeader) {
  std::uint64_t leader = 0;
  for (const std::string& endpoint : cluster_.endpoints) {
    auto status = client_->status(endpoint);
    ASSERT_TRUE(status.has_value()) << status.error().to_string();
    EXPECT_NE(status->header().member_id(), 0u);
    if (leader == 0) {
      leader = status->leader();
    }
    EXPECT_EQ(status->leader(), leader) << "members disagree on the leader";
  }
}

}  // namespace
}  // namespace aec::testing
