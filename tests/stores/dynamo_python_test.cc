// layout=aec-python against dynalite: aec and the Python atomic_execution_control library
// (v0.1.5) on one table and one key never both run. PythonLibrary below does what that library
// does to the table, request for request: write_atomically_a_key() is a PutItem conditioned on
// attribute_not_exists(primary_key), update_status() sets FINISHED, wait_other_instances_finish()
// reads until every key is FINISHED, and delete_items_finished_or_old() deletes, with no
// condition, the items it reads as FINISHED or older than N minutes.
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <aec/open_store.h>

#include "stores/dynamodb/dynamo_client.h"
#include "stores/dynamodb/dynamo_items.h"
#include "tests/stores/aws_test_env.h"
#include "tests/support/manual_clock.h"
#include "tests/support/servers.h"

namespace aec::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kPrimaryKey = "YourKey";  // the library's primary_key parameter

// The Python library's requests, its clock the test's.
class PythonLibrary {
 public:
  PythonLibrary(const std::string& endpoint, std::string table, std::shared_ptr<ManualClock> clock)
      : client_({.endpoint = endpoint,
                 .region = "eu-west-1",
                 .credentials = aws::credentials_from(
                     {{"AWS_ACCESS_KEY_ID", "AKID"}, {"AWS_SECRET_ACCESS_KEY", "s"}})}),
        table_(std::move(table)),
        clock_(std::move(clock)) {}

  bool write_atomically_a_key(const std::string& key) {
    std::string now = aws::python_time(clock_->system_now());
    json answer = call("PutItem", {{"TableName", table_},
                                   {"Item",
                                    {{kPrimaryKey, {{"S", key}}},
                                     {"status_execution", {{"S", "IN_PROGRESS"}}},
                                     {"created_at", {{"S", now}}},
                                     {"updated_at", {{"S", now}}}}},
                                   {"ConditionExpression", "attribute_not_exists(#pk)"},
                                   {"ExpressionAttributeNames", {{"#pk", kPrimaryKey}}}});
    return !answer.contains("__type");
  }

  void update_status(const std::string& key) {
    call("UpdateItem", {{"TableName", table_},
                        {"Key", {{kPrimaryKey, {{"S", key}}}}},
                        {"UpdateExpression", "SET status_execution = :st, updated_at = :ua"},
                        {"ExpressionAttributeValues",
                         {{":st", {{"S", "FINISHED"}}},
                          {":ua", {{"S", aws::python_time(clock_->system_now())}}}}}});
  }

  // One round of wait_other_instances_finish(): true when every key reads FINISHED.
  bool all_finished(const std::vector<std::string>& keys) {
    for (const std::string& key : keys) {
      if (status(key) != "FINISHED") {
        return false;
      }
    }
    return true;
  }

  // delete_items_finished_or_old(): read, then delete with no condition.
  void delete_items_finished_or_old(const std::vector<std::string>& keys,
                                    std::chrono::minutes valid_for) {
    for (const std::string& key : keys) {
      json found = item(key);
      if (found.is_null()) {
        continue;
      }
      std::optional<SysTime> updated =
          aws::parse_python_time(found["updated_at"]["S"].get<std::string>());
      ASSERT_TRUE(updated) << found.dump();  // the library fails on a value it cannot parse
      if (found["status_execution"]["S"] == "FINISHED" ||
          clock_->system_now() - *updated > valid_for) {
        call("DeleteItem", {{"TableName", table_}, {"Key", {{kPrimaryKey, {{"S", key}}}}}});
      }
    }
  }

  std::string status(const std::string& key) {
    json found = item(key);
    return found.is_null() ? "" : found["status_execution"]["S"].get<std::string>();
  }

  json item(const std::string& key) {
    json answer = call(
        "GetItem",
        {{"TableName", table_}, {"Key", {{kPrimaryKey, {{"S", key}}}}}, {"ConsistentRead", true}});
    return answer.value("Item", json());
  }

  std::vector<json> scan() {
    json answer = call("Scan", {{"TableName", table_}, {"ConsistentRead", true}});
    return answer.value("Items", json::array()).get<std::vector<json>>();
  }

 private:
  // The answer's body, or its error as {"__type": ...}.
  json call(std::string_view action, const json& body) {
    auto answer = client_.call(action, body);
    EXPECT_TRUE(answer) << answer.error().to_string();
    if (!answer) {
      return json::object();
    }
    if (answer->error) {
      return {{"__type", answer->error->type}};
    }
    return answer->body;
  }

  aws::DynamoClient client_;
  std::string table_;
  std::shared_ptr<ManualClock> clock_;
};

class DynamoPythonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::optional<std::string> endpoint = server_setting("AEC_TEST_DYNAMODB_ENDPOINT");
    if (!endpoint) {
      GTEST_SKIP() << missing_server("AEC_TEST_DYNAMODB_ENDPOINT");
    }
    setenv("AWS_ACCESS_KEY_ID", "AKIDAECTEST", 0);  // dynalite checks a signature, not whose
    setenv("AWS_SECRET_ACCESS_KEY", "aec-test-secret", 0);
    table_ = "aec-python-" + std::to_string(std::random_device{}());
    url_ = "dynamodb://" + table_ +
           "?region=eu-west-1&create=true&layout=aec-python&key=" + kPrimaryKey +
           "&endpoint=" + *endpoint;
    store_ = open();
    ASSERT_TRUE(store_);
    python_ = std::make_unique<PythonLibrary>(*endpoint, table_, clock_);
  }

  std::unique_ptr<Store> open() {
    auto store = open_store(url_, {.clock = clock_});
    EXPECT_TRUE(store) << store.error().to_string();
    return store ? std::move(*store) : nullptr;
  }

  AcquireRequest request(const std::string& id, bool once = false, milliseconds ttl = 10s) {
    return {.key = "2024-01-01",
            .execution_id = id,
            .ttl = ttl,
            .once = once,
            .owner = {.host = "h", .pid = 7}};
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::string table_;
  std::string url_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<PythonLibrary> python_;
};

TEST_F(DynamoPythonTest, AKeyThePythonLibraryHoldsIsBusyForAecAndShownAsItsHolder) {
  ASSERT_TRUE(python_->write_atomically_a_key("2024-01-01"));
  auto busy = store_->acquire(request("aec-1"));
  ASSERT_TRUE(busy) << busy.status().to_string();
  EXPECT_EQ(busy->outcome, AcquireOutcome::Busy);
  ASSERT_EQ(busy->holders.size(), 1u);
  EXPECT_EQ(busy->holders[0].execution.owner.host, "python");
  EXPECT_EQ(busy->retry_in, 1s);  // the library's release is no write aec can wait for
  auto state = store_->get("2024-01-01");
  ASSERT_TRUE(state);
  ASSERT_EQ(state->holders.size(), 1u);
  EXPECT_EQ(state->holders[0].execution.status, ExecutionStatus::Running);
  clock_->advance(1h);  // the library never renews, and aec never takes its item over
  EXPECT_EQ(store_->acquire(request("aec-1"))->outcome, AcquireOutcome::Busy);
  python_->update_status("2024-01-01");  // FINISHED: free for aec
  auto granted = store_->acquire(request("aec-1"));
  ASSERT_TRUE(granted);
  EXPECT_EQ(granted->outcome, AcquireOutcome::Granted);
}

TEST_F(DynamoPythonTest, AKeyAecHoldsIsRefusedToThePythonLibrary) {
  auto granted = store_->acquire(request("aec-1"));
  ASSERT_TRUE(granted) << granted.status().to_string();
  ASSERT_EQ(granted->outcome, AcquireOutcome::Granted);
  EXPECT_FALSE(python_->write_atomically_a_key("2024-01-01"));
  json item = python_->item("2024-01-01");
  EXPECT_EQ(item["status_execution"]["S"], "IN_PROGRESS");
  EXPECT_EQ(item["aec_token"]["N"], std::to_string(granted->lease.token));
  EXPECT_EQ(item["owner"]["S"], "h:7");
  EXPECT_TRUE(aws::parse_python_time(item["created_at"]["S"].get<std::string>()));
  EXPECT_FALSE(python_->all_finished({"2024-01-01"}));  // the library's waiters wait
}

TEST_F(DynamoPythonTest, RenewalsKeepTheLibrarysCleanUpFromTakingALiveLeaseForOld) {
  auto granted = store_->acquire(request("aec-1", false, 10min));
  ASSERT_EQ(granted->outcome, AcquireOutcome::Granted);
  for (int i = 0; i < 5; ++i) {  // 25 minutes, renewed every 5: past the library's 20
    clock_->advance(5min);
    ASSERT_EQ(*store_->renew("2024-01-01", granted->lease.token, 10min), LeaseOutcome::Ok);
  }
  std::string before = python_->item("2024-01-01")["updated_at"]["S"];
  EXPECT_EQ(before, aws::python_time(clock_->system_now()));
  python_->delete_items_finished_or_old({"2024-01-01"}, 20min);
  EXPECT_EQ(python_->status("2024-01-01"), "IN_PROGRESS");
  EXPECT_FALSE(python_->write_atomically_a_key("2024-01-01"));
}

// What the library does not protect against: its clean-up deletes by age with no condition, so
// a lease whose renewals stopped for 20 minutes (a paused holder) loses its item. aec notices at
// the next renewal: lost, and the runner stops its command.
TEST_F(DynamoPythonTest, ALeaseWhoseItemTheLibraryDeletedIsLostAtItsNextRenewal) {
  auto granted = store_->acquire(request("aec-1", false, 1h));
  ASSERT_EQ(granted->outcome, AcquireOutcome::Granted);
  clock_->advance(21min);  // a holder paused past the clean-up's age, its lease not yet over
  python_->delete_items_finished_or_old({"2024-01-01"}, 20min);
  EXPECT_EQ(python_->status("2024-01-01"), "");
  ASSERT_TRUE(python_->write_atomically_a_key("2024-01-01"));
  EXPECT_EQ(*store_->renew("2024-01-01", granted->lease.token, 30min), LeaseOutcome::Lost);
  auto history = store_->list({.key = "2024-01-01"});
  ASSERT_TRUE(history);
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].status, ExecutionStatus::Lost);
  EXPECT_EQ(python_->status("2024-01-01"), "IN_PROGRESS");  // the library's run goes on
  EXPECT_EQ(store_->acquire(request("aec-2"))->outcome, AcquireOutcome::Busy);
}

TEST_F(DynamoPythonTest, ASuccessWritesFinishedForTheLibrarysWaitersAndOnceMeansDone) {
  auto granted = store_->acquire(request("aec-1", /*once=*/true));
  ASSERT_EQ(granted->outcome, AcquireOutcome::Granted);
  ASSERT_EQ(*store_->release("2024-01-01", granted->lease.token, {}), LeaseOutcome::Ok);
  EXPECT_TRUE(python_->all_finished({"2024-01-01"}));
  json item = python_->item("2024-01-01");
  EXPECT_FALSE(item.contains("expires_at"));  // the table's time to live leaves it alone
  EXPECT_FALSE(python_->write_atomically_a_key("2024-01-01"));  // FINISHED blocks the library
  auto done = store_->acquire(request("aec-2", /*once=*/true));
  ASSERT_TRUE(done);
  EXPECT_EQ(done->outcome, AcquireOutcome::Done);
  auto again = store_->acquire(request("aec-3"));  // without --once, FINISHED is free
  ASSERT_TRUE(again);
  EXPECT_EQ(again->outcome, AcquireOutcome::Granted);
  EXPECT_GT(again->lease.token, granted->lease.token);
}

TEST_F(DynamoPythonTest, AKeyTheLibraryFinishedIsDoneForOnce) {
  ASSERT_TRUE(python_->write_atomically_a_key("2024-01-01"));
  python_->update_status("2024-01-01");
  auto done = store_->acquire(request("aec-1", /*once=*/true));
  ASSERT_TRUE(done) << done.status().to_string();
  EXPECT_EQ(done->outcome, AcquireOutcome::Done);
  ASSERT_TRUE(done->done_by);
  EXPECT_EQ(done->done_by->owner.host, "python");
}

TEST_F(DynamoPythonTest, AFailureDeletesTheItemSoTheLibraryMayRunIt) {
  auto granted = store_->acquire(request("aec-1"));
  ASSERT_EQ(granted->outcome, AcquireOutcome::Granted);
  Outcome failed{.status = ExecutionStatus::Failed, .exit_code = 3};
  ASSERT_EQ(*store_->release("2024-01-01", granted->lease.token, failed), LeaseOutcome::Ok);
  EXPECT_EQ(python_->status("2024-01-01"), "");
  EXPECT_TRUE(python_->write_atomically_a_key("2024-01-01"));
}

// A holder of aec's that died: another aec process takes over its item after seeing it unrenewed
// for the whole ttl (the library, which never renews, could only delete it by age).
TEST_F(DynamoPythonTest, AnExpiredAecLeaseIsTakenOverByAec) {
  std::unique_ptr<Store> other = open();
  ASSERT_EQ(store_->acquire(request("aec-1"))->outcome, AcquireOutcome::Granted);
  EXPECT_EQ(other->acquire(request("aec-2"))->outcome, AcquireOutcome::Busy);
  clock_->advance(10s);
  auto taken = other->acquire(request("aec-2"));
  ASSERT_TRUE(taken) << taken.status().to_string();
  EXPECT_EQ(taken->outcome, AcquireOutcome::Granted);
  EXPECT_EQ(python_->item("2024-01-01")["aec_execution_id"]["S"], "aec-2");
  EXPECT_EQ(*store_->renew("2024-01-01", 1, 10s), LeaseOutcome::Lost);
}

TEST_F(DynamoPythonTest, ForceReleaseFreesAKeyTheLibraryHolds) {
  ASSERT_TRUE(python_->write_atomically_a_key("2024-01-01"));
  auto forced = store_->force_release("2024-01-01", "stuck since Friday", {.host = "ops"});
  ASSERT_TRUE(forced) << forced.status().to_string();
  ASSERT_EQ(forced->released.size(), 1u);
  EXPECT_EQ(forced->released[0].owner.host, "python");
  EXPECT_EQ(python_->status("2024-01-01"), "");
  EXPECT_EQ(store_->acquire(request("aec-1"))->outcome, AcquireOutcome::Granted);
}

TEST_F(DynamoPythonTest, AecsOwnItemsNeverMeetTheLibrarysKeys) {
  ASSERT_EQ(store_->acquire(request("aec-1"))->outcome, AcquireOutcome::Granted);
  // The table holds the lock item, aec's state item and nothing the library would read as a
  // key of its own: aec's items are named "aec#...", and such keys are refused.
  std::vector<json> items = python_->scan();
  ASSERT_EQ(items.size(), 2u);
  for (const json& item : items) {
    std::string name = item[kPrimaryKey]["S"];
    EXPECT_TRUE(name == "2024-01-01" || name == "aec#state#2024-01-01") << name;
  }
  AcquireRequest reserved = request("x");
  reserved.key = "aec#state#2024-01-01";
  auto refused = store_->acquire(reserved);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Code::InvalidArgument);
  EXPECT_NE(refused.error().message().find("aec#"), std::string::npos);
  AcquireRequest two = request("y");
  two.key = "other";
  two.limit = 2;
  auto limited = store_->acquire(two);
  ASSERT_FALSE(limited);
  EXPECT_EQ(limited.error().code(), Code::InvalidArgument);
  EXPECT_NE(limited.error().message().find("one execution per key"), std::string::npos);
}

TEST_F(DynamoPythonTest, ANativeTableIsNotTakenForThePythonLibrarysOne) {
  std::string native = "dynamodb://" + table_ +
                       "-native?region=eu-west-1&create=true&key=" + kPrimaryKey +
                       url_.substr(url_.find("&endpoint="));
  ASSERT_TRUE(open_store(native, {.clock = clock_}));
  std::string python = native + "&layout=aec-python";
  auto refused = open_store(python, {.clock = clock_});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Code::FailedPrecondition) << refused.error().to_string();
}

}  // namespace
}  // namespace aec::testing
