// DynamoDB (dynalite in tests; the figures are dynalite's, not DynamoDB's): the bare lease-item
// recipe, and aec's dynamodb:// store.
//
// The bare recipe, as users of DynamoDB write it: acquire is a PutItem of the lock item
// conditioned on its absence or on its expires_at having passed by the caller's wall clock;
// release is a DeleteItem conditioned on the owner being the caller. A failed condition is a
// busy key; the caller retries with backoff. (It trusts every client's wall clock, which aec's
// store does not.)
#include <chrono>
#include <cstdlib>
#include <random>

#include <fmt/format.h>

#include <aec/open_store.h>

#include "contender.h"
#include "core/status_macros.h"
#include "stores/dynamodb/dynamo_client.h"
#include "stores/dynamodb/dynamo_table.h"

namespace aec::bench {
namespace {

using nlohmann::json;

Result<std::string> endpoint() {
  return server_setting("dynalite", "AEC_BENCH_DYNAMODB_ENDPOINT", "AEC_TEST_DYNAMODB_ENDPOINT");
}

// dynalite checks that a request is signed, not by whom; real credentials are taken when set.
void default_credentials() {
  setenv("AWS_ACCESS_KEY_ID", "AKIDAECBENCH", 0);
  setenv("AWS_SECRET_ACCESS_KEY", "aec-bench-secret", 0);
}

// A table of this run's own: named after the run's directory.
std::string table_for(const std::string& dir, std::string_view kind) {
  return fmt::format("aec-bench-{}-{:016x}", kind, std::hash<std::string>{}(dir));
}

std::unique_ptr<aws::DynamoClient> raw_client(const std::string& url) {
  aws::CredentialSources sources = aws::with_defaults({});
  return std::make_unique<aws::DynamoClient>(aws::DynamoOptions{
      .endpoint = url,
      .region = "eu-west-1",
      .credentials = std::make_shared<aws::CredentialCache>(sources, real_clock())});
}

class RawDynamoSession final : public Session {
 public:
  RawDynamoSession(std::unique_ptr<aws::DynamoClient> client, std::string table, int client_id)
      : client_(std::move(client)),
        table_(std::move(table)),
        owner_(fmt::format("client-{}-{}", client_id, std::random_device{}())),
        rng_(std::random_device{}()) {}

  Result<Acquired> acquire(const std::string& key, bool wait,
                           BenchClock::time_point give_up) override {
    auto attempt = [&]() -> Result<bool> {
      std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
      json body = {{"TableName", table_},
                   {"Item",
                    {{"pk", {{"S", key}}},
                     {"owner", {{"S", owner_}}},
                     {"expires_at", {{"N", std::to_string(now + 30)}}}}},
                   {"ConditionExpression", "attribute_not_exists(#pk) OR #exp < :now"},
                   {"ExpressionAttributeNames", {{"#pk", "pk"}, {"#exp", "expires_at"}}},
                   {"ExpressionAttributeValues", {{":now", {{"N", std::to_string(now)}}}}}};
      AEC_ASSIGN_OR_RETURN(aws::DynamoAnswer answer, client_->call("PutItem", body));
      if (answer.error) {
        if (answer.error->type == "ConditionalCheckFailedException") {
          return false;
        }
        return aws::dynamo_status("PutItem", table_, *answer.error);
      }
      held_ = key;
      return true;
    };
    return retry_with_backoff(attempt, wait, give_up, rng_, refused_);
  }

  Status release() override {
    json body = {{"TableName", table_},
                 {"Key", {{"pk", {{"S", held_}}}}},
                 {"ConditionExpression", "#owner = :me"},
                 {"ExpressionAttributeNames", {{"#owner", "owner"}}},
                 {"ExpressionAttributeValues", {{":me", {{"S", owner_}}}}}};
    AEC_ASSIGN_OR_RETURN(aws::DynamoAnswer answer, client_->call("DeleteItem", body));
    if (answer.error) {
      return aws::dynamo_status("DeleteItem", table_, *answer.error);
    }
    return Status::ok();
  }

 private:
  std::unique_ptr<aws::DynamoClient> client_;
  std::string table_;
  std::string owner_;
  std::minstd_rand rng_;
  std::string held_;
};

class RawDynamoContender final : public Contender {
 public:
  std::string_view name() const override { return "raw-dynamodb"; }
  std::string_view guarantees() const override {
    return "dynalite (DynamoDB's API on LevelDB, one process); expiry by every client's wall "
           "clock; no fencing, no line";
  }

  Status prepare(const std::string& dir) override {
    default_credentials();
    AEC_ASSIGN_OR_RETURN(std::string url, endpoint());
    std::unique_ptr<aws::DynamoClient> client = raw_client(url);
    return aws::ensure_table(*client, table_for(dir, "raw"),
                             {.partition_key = "pk", .sort_key = "", .ttl_attribute = ""}, true,
                             std::chrono::seconds(30));
  }

  Result<std::unique_ptr<Session>> open(const std::string& dir, int client) override {
    AEC_ASSIGN_OR_RETURN(std::string url, endpoint());
    return std::unique_ptr<Session>(
        std::make_unique<RawDynamoSession>(raw_client(url), table_for(dir, "raw"), client));
  }
};

class AecDynamoContender final : public Contender {
 public:
  std::string_view name() const override { return "aec-dynamodb"; }
  std::string_view guarantees() const override {
    return "dynalite as raw-dynamodb; expiry by the store's own clock, fencing tokens, history, "
           "FIFO line";
  }

  // Opening the store once creates its table; closed again before the clients fork.
  Status prepare(const std::string& dir) override {
    default_credentials();
    AEC_ASSIGN_OR_RETURN(std::string url, store_url(dir, true));
    return open_store(url).status();
  }

  Result<std::unique_ptr<Session>> open(const std::string& dir, int /*client*/) override {
    AEC_ASSIGN_OR_RETURN(std::string url, store_url(dir, false));
    AEC_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, open_store(url));
    return make_control_session(std::shared_ptr<Store>(std::move(store)));
  }

 private:
  static Result<std::string> store_url(const std::string& dir, bool create) {
    AEC_ASSIGN_OR_RETURN(std::string url, endpoint());
    return fmt::format("dynamodb://{}?region=eu-west-1&endpoint={}{}", table_for(dir, "aec"), url,
                       create ? "&create=true" : "");
  }
};

}  // namespace

std::unique_ptr<Contender> make_raw_dynamodb_contender() {
  return std::make_unique<RawDynamoContender>();
}

std::unique_ptr<Contender> make_aec_dynamodb_contender() {
  return std::make_unique<AecDynamoContender>();
}

}  // namespace aec::bench
