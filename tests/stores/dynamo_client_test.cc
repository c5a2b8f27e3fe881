// DynamoClient against a canned server on loopback: the request's signature (a known-answer
// vector), headers and body; DynamoDB's errors as answers; throttling retried; refused credentials
// fetched again once; answers that are not DynamoDB's.
#include "stores/dynamodb/dynamo_client.h"

#include <atomic>
#include <map>

#include <gtest/gtest.h>

#include "tests/stores/aws_test_env.h"
#include "tests/support/canned_http.h"

namespace aec::aws {
namespace {

using namespace std::chrono_literals;
using testing::CannedHttp;
using testing::CannedRequest;
using testing::CannedResponse;

// Credentials from a fake environment (AWS's documented example key).
std::shared_ptr<CredentialCache> example_credentials(std::string token = "session-token") {
  return credentials_from({{"AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"},
                           {"AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
                           {"AWS_SESSION_TOKEN", std::move(token)}});
}

CannedResponse dynamo_error(int status, const std::string& type, const std::string& message) {
  return {.status = status,
          .body = R"({"__type": "com.amazonaws.dynamodb.v20120810#)" + type + R"(", "message": ")" +
                  message + R"("})",
          .content_type = "application/x-amz-json-1.0"};
}

// The signature libcurl makes for a DynamoDB call, checked against one computed independently
// from AWS's documented Signature V4 algorithm (HMAC-SHA256 chain over the canonical request;
// the same computation gives AWS's published "get-vanilla" test vector,
// 5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31).
TEST(DynamoClient, SignsLikeAwsDocumentsIt) {
  CannedHttp server(
      [](const CannedRequest&) { return CannedResponse{.body = R"({"Table": {}})"}; });
  DynamoClient client({.endpoint = "http://dynamodb.us-east-1.amazonaws.com",
                       .region = "us-east-1",
                       .credentials = example_credentials(),
                       .fixed_amz_date = "20150830T123600Z",
                       .connect_to = "dynamodb.us-east-1.amazonaws.com:80:127.0.0.1:" +
                                     std::to_string(server.port())});
  Result<DynamoAnswer> a = client.call("DescribeTable", {{"TableName", "aec"}});
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_FALSE(a->error);
  std::vector<CannedRequest> seen = server.requests();
  ASSERT_EQ(seen.size(), 1U);
  const CannedRequest& r = seen[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/");
  EXPECT_EQ(r.body, R"({"TableName":"aec"})");
  EXPECT_EQ(r.header("host"), "dynamodb.us-east-1.amazonaws.com");
  EXPECT_EQ(r.header("x-amz-target"), "DynamoDB_20120810.DescribeTable");
  EXPECT_EQ(r.header("x-amz-security-token"), "session-token");
  EXPECT_EQ(r.header("authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/dynamodb/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, "
            "Signature=ada52f0fc4613ba4d43fb2cc7ea007855b1a8c30fa20bbc71d20e939217edfcc");
}

TEST(DynamoClient, AFailedConditionIsAnAnswerAndIsNotSentAgain) {
  CannedHttp server([](const CannedRequest&) {
    return dynamo_error(400, "ConditionalCheckFailedException", "The conditional request failed");
  });
  DynamoClient client(
      {.endpoint = server.url(), .region = "eu-west-1", .credentials = example_credentials()});
  Result<DynamoAnswer> a = client.call("PutItem", {{"TableName", "aec"}});
  ASSERT_TRUE(a) << a.error().to_string();
  ASSERT_TRUE(a->error);
  EXPECT_EQ(a->error->type, "ConditionalCheckFailedException");
  EXPECT_EQ(a->error->message, "The conditional request failed");
  EXPECT_EQ(server.requests().size(), 1U);
}

TEST(DynamoClient, ThrottlingIsRetriedWithBackoff) {
  std::atomic<int> calls{0};
  CannedHttp server([&](const CannedRequest&) {
    if (++calls <= 2) {
      return dynamo_error(
          400, calls == 1 ? "ThrottlingException" : "ProvisionedThroughputExceededException",
          "slow down");
    }
    return CannedResponse{.body = "{}"};
  });
  DynamoClient client(
      {.endpoint = server.url(), .region = "eu-west-1", .credentials = example_credentials()});
  Result<DynamoAnswer> a = client.call("GetItem", {{"TableName", "aec"}});
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_FALSE(a->error) << a->error->type;
  EXPECT_EQ(calls.load(), 3);

  // Past the retry budget the throttling error is the answer.
  calls = -100;
  DynamoClient impatient({.endpoint = server.url(),
                          .region = "eu-west-1",
                          .credentials = example_credentials(),
                          .retry_budget = 100ms});
  Result<DynamoAnswer> b = impatient.call("GetItem", {{"TableName", "aec"}});
  ASSERT_TRUE(b) << b.error().to_string();
  ASSERT_TRUE(b->error);
  EXPECT_EQ(b->error->type, "ProvisionedThroughputExceededException");
  EXPECT_GE(calls.load(), -99) << "not sent at all";
}

TEST(DynamoClient, RefusedCredentialsAreFetchedAgainOnce) {
  std::atomic<int> calls{0};
  CannedHttp server([&](const CannedRequest& r) {
    ++calls;
    if (r.header("x-amz-security-token") == "old") {
      return dynamo_error(400, "ExpiredTokenException", "The security token has expired");
    }
    return CannedResponse{.body = "{}"};
  });
  // A cache whose first fetch gives "old" and the next "new": the container endpoint's answer.
  std::atomic<int> fetched{0};
  CannedHttp endpoint([&](const CannedRequest&) {
    std::string token = fetched++ == 0 ? "old" : "new";
    return CannedResponse{.body = R"({"AccessKeyId": "ASIA", "SecretAccessKey": "s", "Token": ")" +
                                  token + R"(", "Expiration": "2099-01-01T00:00:00Z"})"};
  });
  auto creds =
      credentials_from({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url() + "/creds"}});
  DynamoClient client({.endpoint = server.url(), .region = "eu-west-1", .credentials = creds});
  Result<DynamoAnswer> a = client.call("GetItem", {{"TableName", "aec"}});
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_FALSE(a->error);
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(fetched.load(), 2);
}

TEST(DynamoClient, AnswersThatAreNotDynamoDbsAndNoServerAreUnavailable) {
  CannedHttp proxy([](const CannedRequest&) {
    return CannedResponse{
        .status = 502, .body = "<html>bad gateway</html>", .content_type = "text/html"};
  });
  DynamoClient client(
      {.endpoint = proxy.url(), .region = "eu-west-1", .credentials = example_credentials()});
  Result<DynamoAnswer> a = client.call("GetItem", {{"TableName", "aec"}});
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code(), Code::Unavailable);
  EXPECT_NE(a.error().message().find("HTTP 502 that is not DynamoDB's: <html>bad gateway"),
            std::string::npos)
      << a.error().message();

  DynamoClient nobody({.endpoint = "http://127.0.0.1:1",
                       .region = "eu-west-1",
                       .credentials = example_credentials()});
  Result<DynamoAnswer> b = nobody.call("GetItem", {{"TableName", "aec"}});
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code(), Code::Unavailable);
  EXPECT_NE(b.error().message().find("DynamoDB GetItem at http://127.0.0.1:1"), std::string::npos)
      << b.error().message();
}

}  // namespace
}  // namespace aec::aws
