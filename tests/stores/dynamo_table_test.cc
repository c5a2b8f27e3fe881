// The dynamodb:// store's table against dynalite (the servers fixture's DynamoDB-compatible
// server): created when missing with create=true, found again, refused with another key schema
// or when missing without create=true.
#include "stores/dynamodb/dynamo_table.h"

#include <map>
#include <memory>
#include <random>

#include <gtest/gtest.h>

#include "tests/stores/aws_test_env.h"
#include "tests/support/servers.h"

namespace aec::aws {
namespace {

using namespace std::chrono_literals;

class DynamoTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::optional<std::string> endpoint = testing::server_setting("AEC_TEST_DYNAMODB_ENDPOINT");
    if (!endpoint) {
      GTEST_SKIP() << testing::missing_server("AEC_TEST_DYNAMODB_ENDPOINT");
    }
    // dynalite checks that a request is signed, not by whom.
    auto creds =
        credentials_from({{"AWS_ACCESS_KEY_ID", "AKIDTEST"}, {"AWS_SECRET_ACCESS_KEY", "secret"}});
    client_ = std::make_unique<DynamoClient>(
        DynamoOptions{.endpoint = *endpoint, .region = "eu-west-1", .credentials = creds});
    table_ = "aec-test-" + std::to_string(std::random_device{}());
  }

  std::unique_ptr<DynamoClient> client_;
  std::string table_;
  const TableLayout layout_{.partition_key = "pk", .sort_key = "sk", .ttl_attribute = "expires_at"};
};

TEST_F(DynamoTableTest, CreatedWhenMissingAndAskedToThenFoundAgain) {
  Status missing = ensure_table(*client_, table_, layout_, false, 5s);
  EXPECT_EQ(missing.code(), Code::NotFound) << missing.to_string();
  EXPECT_NE(missing.message().find("add create=true to the store URL"), std::string::npos)
      << missing.message();

  Status created = ensure_table(*client_, table_, layout_, true, 10s);
  ASSERT_TRUE(created.is_ok()) << created.to_string();
  Status again = ensure_table(*client_, table_, layout_, false, 5s);
  EXPECT_TRUE(again.is_ok()) << again.to_string();

  Result<DynamoAnswer> described = client_->call("DescribeTable", {{"TableName", table_}});
  ASSERT_TRUE(described) << described.error().to_string();
  ASSERT_FALSE(described->error);
  EXPECT_EQ(described->body["Table"].value("TableStatus", ""), "ACTIVE");
}

TEST_F(DynamoTableTest, ATableWithOtherKeysIsRefusedNamingBoth) {
  TableLayout python{.partition_key = "YourKey", .sort_key = "", .ttl_attribute = ""};
  ASSERT_TRUE(ensure_table(*client_, table_, python, true, 10s).is_ok());
  Status wrong = ensure_table(*client_, table_, layout_, false, 5s);
  EXPECT_EQ(wrong.code(), Code::FailedPrecondition) << wrong.to_string();
  EXPECT_NE(wrong.message().find("has the keys YourKey (S, partition key); this store needs pk "
                                 "(S, partition key), sk (S, sort key)"),
            std::string::npos)
      << wrong.message();
}

}  // namespace
}  // namespace aec::aws
