// The etcd client while members die: kill -9 one member of the real 3-member cluster (its pid
// file from scripts/dev-servers.sh), check that calls, keep-alives and watches carry on through
// the two survivors, then restart the member from its command file and check that it rejoins.
// Skipped without a cluster started by dev-servers.sh (AEC_TEST_SERVERS_ENV).
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "stores/etcd/keep_alive.h"
#include "stores/etcd/txn_ops.h"
#include "stores/etcd/watch.h"
#include "tests/stores/etcd_test_cluster.h"

namespace aec::testing {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

class EtcdFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "gRPC is not built with ThreadSanitizer: its synchronisation is invisible";
#endif
    auto cluster = find_etcd_cluster();
    if (!cluster || cluster->dir.empty()) {
      GTEST_SKIP() << no_etcd_cluster()
                   << " (these tests kill members: they need the pid files "
                      "under the folder of AEC_TEST_SERVERS_ENV)";
    }
    cluster_ = *cluster;
    client_ = connect();
    ASSERT_NE(client_, nullptr);
    prefix_ = fmt::format("aec-test/etcd-failover/{:x}/", std::random_device{}());
  }

  void TearDown() override {
    // Whatever happened, leave three members running for the next test.
    if (killed_) {
      EXPECT_TRUE(restart_member(cluster_, *killed_, *client_).is_ok());
    }
    if (client_ != nullptr) {
      (void)client_->delete_range(prefix_, etcd::prefix_end(prefix_));
    }
  }

  std::unique_ptr<etcd::Client> connect() {
    auto client = etcd::Client::connect(cluster_.endpoints, {.rpc_timeout = 2s});
    EXPECT_TRUE(client.has_value()) << client.error().to_string();
    return client ? std::move(*client) : nullptr;
  }

  void kill(const EtcdMember& member) {
    ASSERT_TRUE(kill_member(cluster_, member).is_ok());
    killed_ = member;
  }

  void restart() {
    ASSERT_TRUE(killed_.has_value());
    Status s = restart_member(cluster_, *killed_, *client_);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    killed_.reset();
  }

  // Puts until it is known to have happened: an indeterminate failure is checked by reading
  // the key back (the values a test writes are unique), any other failure is retried.
  bool put_surely(const std::string& key, const std::string& value, std::chrono::seconds within) {
    return eventually(
        [&] {
          auto put = client_->put(key, value);
          if (put.has_value()) {
            return true;
          }
          std::cout << "put " << value << ": " << put.error().to_string() << "\n";
          auto now = client_->range(key);
          return etcd::is_indeterminate(put.error()) && now.has_value() && now->kvs_size() == 1 &&
                 now->kvs(0).value() == value;
        },
        within);
  }

  std::string key(std::string_view name) const {
    return prefix_ + std::string(name);
  }

  EtcdCluster cluster_;
  std::unique_ptr<etcd::Client> client_;
  std::string prefix_;
  std::optional<EtcdMember> killed_;
};

TEST_F(EtcdFailoverTest, CallsAndKeepAlivesGoOnWhenTheLeaderDiesAndItRejoins) {
  auto granted = client_->lease_grant(5s);
  ASSERT_TRUE(granted.has_value()) << granted.error().to_string();
  ASSERT_TRUE(client_->put(key("leased"), "x", {.lease = granted->id()}).has_value());
  auto keeper = etcd::KeepAlive::start(*client_, granted->id(),
                                       {.ttl = std::chrono::seconds(granted->ttl())});
  auto old = leader(*client_, cluster_);
  ASSERT_TRUE(old.has_value()) << old.error().to_string();

  const auto killed_at = Steady::now();
  kill(*old);
  ASSERT_TRUE(put_surely(key("k"), "after", 15s)) << "no write got through the survivors";
  const auto took = Steady::now() - killed_at;
  EXPECT_LT(took, 8s);
  std::cout << "first write after killing the leader: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n";
  // Now every call works at once.
  for (int i = 0; i < 10; ++i) {
    auto put = client_->put(key("k"), std::to_string(i));
    ASSERT_TRUE(put.has_value()) << put.error().to_string();
    auto read = client_->range(key("k"));
    ASSERT_TRUE(read.has_value()) << read.error().to_string();
    EXPECT_EQ(read->kvs(0).value(), std::to_string(i));
  }
  for (const std::string& survivor : cluster_.endpoints) {
    if (survivor != old->endpoint) {
      auto status = client_->status(survivor);
      ASSERT_TRUE(status.has_value()) << status.error().to_string();
      EXPECT_NE(status->leader(), 0u);
      EXPECT_NE(status->leader(), old->id) << "the survivors still follow the dead leader";
    }
  }
  // The keep-alive moved to a survivor; the lease outlived the election.
  const std::uint64_t answers = keeper->answers();
  ASSERT_TRUE(eventually([&] { return keeper->answers() >= answers + 2; }, 10s));
  EXPECT_EQ(keeper->state(), etcd::KeepAlive::State::Alive);
  EXPECT_EQ(client_->range(key("leased"))->kvs_size(), 1);

  restart();
  // It rejoined: all three follow one leader, and it has caught up on what it missed (read
  // from it alone, from its own state).
  auto settled = leader(*client_, cluster_);
  EXPECT_TRUE(settled.has_value()) << settled.error().to_string();
  // The client's channel took it back into the rotation (calls are spread over members).
  EXPECT_TRUE(eventually(
      [&] {
        auto read = client_->range(key("k"));
        return read && read->header().member_id() == old->id;
      },
      10s));
  auto alone = etcd::Client::connect({old->endpoint});
  ASSERT_TRUE(alone.has_value());
  EXPECT_TRUE(eventually(
      [&] {
        auto read = (*alone)->range(key("k"), {}, {.serializable = true});
        return read && read->kvs_size() == 1 && read->kvs(0).value() == "9";
      },
      20s));
  EXPECT_EQ(keeper->state(), etcd::KeepAlive::State::Alive);
}

TEST_F(EtcdFailoverTest, AWatchResumesOnAnotherMemberWithoutLosingEvents) {
  auto watch = etcd::Watch::open(*client_, key("w"));
  ASSERT_TRUE(watch.has_value()) << watch.error().to_string();
  auto serving = member_with_id(*client_, cluster_, (*watch)->member_id());
  ASSERT_TRUE(serving.has_value()) << serving.error().to_string();

  kill(*serving);
  std::vector<std::string> written = {"v1", "v2", "v3"};
  for (const std::string& v : written) {
    ASSERT_TRUE(put_surely(key("w"), v, 15s)) << v;
  }
  std::vector<std::string> seen;
  const MonoTime deadline = BootClock::now() + 20s;
  while (seen.size() < written.size() && BootClock::now() < deadline) {
    auto batch = (*watch)->next(deadline);
    if (!batch.has_value()) {
      EXPECT_EQ(batch.error().code(), Code::Unavailable) << batch.error().to_string();
      continue;
    }
    for (const etcd::Event& e : batch->events) {
      seen.push_back(e.kv().value());
    }
  }
  // Each value once, in order: the watch resumed from the revision after the last it saw.
  EXPECT_EQ(seen, written);
  EXPECT_NE((*watch)->member_id(), serving->id);
  EXPECT_NE((*watch)->member_id(), 0u);
  restart();
}

}  // namespace
}  // namespace aec::testing
