// What only the dynamodb:// store promises, against dynalite (the servers fixture): expiry with
// no server clock (a process takes a lease over only after it has itself seen the lease
// unchanged for its whole ttl, and a renewal makes it count again), the items as
// docs/dynamodb.md describes them, and a clear error for each way opening can fail.
#include <memory>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include <aec/open_store.h>

#include "stores/dynamodb/dynamo_client.h"
#include "tests/stores/aws_test_env.h"
#include "tests/support/manual_clock.h"
#include "tests/support/servers.h"

namespace aec::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class DynamoStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::optional<std::string> endpoint = server_setting("AEC_TEST_DYNAMODB_ENDPOINT");
    if (!endpoint) {
      GTEST_SKIP() << missing_server("AEC_TEST_DYNAMODB_ENDPOINT");
    }
    endpoint_ = *endpoint;
    // dynalite checks that a request is signed, not by whom.
    setenv("AWS_ACCESS_KEY_ID", "AKIDAECTEST", 0);
    setenv("AWS_SECRET_ACCESS_KEY", "aec-test-secret", 0);
    table_ = "aec-store-" + std::to_string(std::random_device{}());
    url_ = "dynamodb://" + table_ + "?region=eu-west-1&create=true&key=job&endpoint=" + endpoint_;
  }

  // A store as one process would open it, on the shared hand-moved clock.
  std::unique_ptr<Store> open() {
    auto store = open_store(url_, {.clock = clock_});
    EXPECT_TRUE(store) << store.error().to_string();
    return store ? std::move(*store) : nullptr;
  }

  AcquireRequest request(const std::string& id, milliseconds ttl = 10s) {
    return {.key = "team/job", .execution_id = id, .ttl = ttl, .owner = {.host = "h", .pid = 1}};
  }

  // The raw items of the table, to check the layout from outside.
  json item(const std::string& key, const std::string& sort) {
    aws::DynamoClient client(
        {.endpoint = endpoint_,
         .region = "eu-west-1",
         .credentials = aws::credentials_from(
             {{"AWS_ACCESS_KEY_ID", "AKID"}, {"AWS_SECRET_ACCESS_KEY", "s"}})});
    auto answer = client.call("GetItem", {{"TableName", table_},
                                          {"Key", {{"job", {{"S", key}}}, {"sk", {{"S", sort}}}}},
                                          {"ConsistentRead", true}});
    EXPECT_TRUE(answer) << answer.error().to_string();
    return answer && !answer->error ? answer->body.value("Item", json()) : json();
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::string endpoint_;
  std::string table_;
  std::string url_;
};

TEST_F(DynamoStoreTest, AProcessThatJustCameTakesOverOnlyAfterAWholeTtlOfItsOwn) {
  std::unique_ptr<Store> holder = open();
  ASSERT_TRUE(holder);
  ASSERT_EQ(holder->acquire(request("first"))->outcome, AcquireOutcome::Granted);
  clock_->advance(30s);  // the holder died long ago, by its own count
  std::unique_ptr<Store> newcomer = open();
  auto busy = newcomer->acquire(request("second"));
  ASSERT_TRUE(busy) << busy.status().to_string();
  EXPECT_EQ(busy->outcome, AcquireOutcome::Busy);  // first sight of this lease: 10 s to go
  EXPECT_EQ(busy->retry_in, 10s);
  ASSERT_EQ(busy->holders.size(), 1u);
  EXPECT_EQ(busy->holders[0].expires_in, 10s);
  clock_->advance(10s - 1ms);
  EXPECT_EQ(newcomer->acquire(request("second"))->outcome, AcquireOutcome::Busy);
  clock_->advance(1ms);
  auto taken = newcomer->acquire(request("second"));
  ASSERT_TRUE(taken) << taken.status().to_string();
  EXPECT_EQ(taken->outcome, AcquireOutcome::Granted);
  EXPECT_EQ(taken->lease.token, 2);
  auto history = newcomer->list({.key = "team/job"});
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[1].id, "first");
  EXPECT_EQ((*history)[1].status, ExecutionStatus::Lost);
  EXPECT_EQ(*holder->renew("team/job", 1, 10s), LeaseOutcome::Lost);
}

TEST_F(DynamoStoreTest, ARenewalSeenByAContenderMakesItCountAgain) {
  std::unique_ptr<Store> holder = open();
  std::unique_ptr<Store> contender = open();
  ASSERT_TRUE(holder && contender);
  ASSERT_EQ(holder->acquire(request("holder"))->outcome, AcquireOutcome::Granted);
  EXPECT_EQ(contender->acquire(request("contender"))->outcome, AcquireOutcome::Busy);
  clock_->advance(6s);
  ASSERT_EQ(*holder->renew("team/job", 1, 10s), LeaseOutcome::Ok);
  clock_->advance(6s);  // 12 s since the contender first saw the lease, 6 s since the renewal
  auto busy = contender->acquire(request("contender"));
  EXPECT_EQ(busy->outcome, AcquireOutcome::Busy);
  EXPECT_EQ(busy->retry_in, 10s);  // counted from this sighting of the renewed lease
  clock_->advance(10s);
  EXPECT_EQ(contender->acquire(request("contender"))->outcome, AcquireOutcome::Granted);
}

TEST_F(DynamoStoreTest, AReleasedOrForceReleasedKeyIsFreeAtOnceToAProcessThatJustCame) {
  std::unique_ptr<Store> holder = open();
  ASSERT_EQ(holder->acquire(request("a"))->outcome, AcquireOutcome::Granted);
  ASSERT_EQ(*holder->release("team/job", 1, {.status = ExecutionStatus::Succeeded}),
            LeaseOutcome::Ok);
  std::unique_ptr<Store> newcomer = open();
  EXPECT_EQ(newcomer->acquire(request("b"))->outcome, AcquireOutcome::Granted);
  ASSERT_TRUE(holder->force_release("team/job", "stuck", {.user = "ops"}).has_value());
  std::unique_ptr<Store> third = open();
  EXPECT_EQ(third->acquire(request("c"))->outcome, AcquireOutcome::Granted);
}

TEST_F(DynamoStoreTest, TheItemsAreLaidOutAsDocumented) {
  std::unique_ptr<Store> store = open();
  ASSERT_TRUE(store);
  auto granted = store->acquire(request("e1"));
  ASSERT_EQ(granted->outcome, AcquireOutcome::Granted);
  json state = item("team/job", "#state");
  ASSERT_TRUE(state.is_object()) << state;
  EXPECT_EQ(state["last_token"], json({{"N", "1"}}));
  EXPECT_FALSE(state.contains("expires_at"));  // the table's time to live never deletes it
  ASSERT_EQ(state["leases"]["L"].size(), 1u);
  const json& lease = state["leases"]["L"][0]["M"];
  EXPECT_EQ(lease["execution_id"], json({{"S", "e1"}}));
  EXPECT_EQ(lease["token"], json({{"N", "1"}}));
  EXPECT_EQ(lease["ttl_ms"], json({{"N", "10000"}}));
  EXPECT_TRUE(lease.contains("expires_at"));
  EXPECT_TRUE(lease.contains("lease_rv"));
  // A running execution is its lease entry: the run item is written when it ends.
  json run = item("team/job", "run#00000000000000000001");
  EXPECT_TRUE(run.is_null()) << run;
  ASSERT_TRUE(store->release("team/job", 1, {.status = ExecutionStatus::Succeeded, .exit_code = 0})
                  .has_value());
  run = item("team/job", "run#00000000000000000001");
  EXPECT_EQ(run["status"], json({{"S", "succeeded"}}));
  EXPECT_EQ(run["exit_code"], json({{"N", "0"}}));
  EXPECT_EQ(item("team/job", "#state")["leases"]["L"].size(), 0u);
}

TEST_F(DynamoStoreTest, OpeningFailsClearly) {
  std::string missing = "dynamodb://aec-missing-" + std::to_string(std::random_device{}()) +
                        "?region=eu-west-1&endpoint=" + endpoint_;
  auto no_table = open_store(missing, {.clock = clock_});
  ASSERT_FALSE(no_table);
  EXPECT_EQ(no_table.error().code(), Code::NotFound) << no_table.error().to_string();
  EXPECT_NE(no_table.error().message().find("create=true"), std::string::npos)
      << no_table.error().message();

  auto bad_url = open_store("dynamodb://x", {.clock = clock_});
  ASSERT_FALSE(bad_url);
  EXPECT_EQ(bad_url.error().code(), Code::InvalidArgument);

  // A port nothing listens on.
  auto down =
      open_store("dynamodb://jobs?region=eu-west-1&endpoint=http://127.0.0.1:9", {.clock = clock_});
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code(), Code::Unavailable) << down.error().to_string();
  EXPECT_NE(down.error().message().find("127.0.0.1:9"), std::string::npos)
      << down.error().message();
}

}  // namespace
}  // namespace aec::testing
