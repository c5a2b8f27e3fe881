// dynamodb:// URLs: what each parameter sets, and a one-line error for each kind of mistake.
#include "stores/dynamodb/dynamo_url.h"

#include <gtest/gtest.h>

namespace aec::aws {
namespace {

TEST(DynamoUrl, ATableAloneTakesTheDefaults) {
  Result<DynamoUrl> u = parse_dynamo_url("dynamodb://jobs");
  ASSERT_TRUE(u) << u.error().to_string();
  EXPECT_EQ(u->table, "jobs");
  EXPECT_EQ(u->key, "pk");
  EXPECT_FALSE(u->create);
  EXPECT_TRUE(u->region.empty());
  EXPECT_EQ(endpoint_for(*u, "us-east-2"), "https://dynamodb.us-east-2.amazonaws.com");
}

TEST(DynamoUrl, EveryParameterIsRead) {
  Result<DynamoUrl> u = parse_dynamo_url(
      "dynamodb://My.Table-1?region=us-west-2&endpoint=http%3A%2F%2F127.0.0.1%3A8000%2F"
      "&profile=ops&key=job_key&create=true&layout=native");
  ASSERT_TRUE(u) << u.error().to_string();
  EXPECT_EQ(u->table, "My.Table-1");
  EXPECT_EQ(u->region, "us-west-2");
  EXPECT_EQ(u->endpoint, "http://127.0.0.1:8000");  // the trailing slash dropped
  EXPECT_EQ(endpoint_for(*u, "us-west-2"), "http://127.0.0.1:8000");
  EXPECT_EQ(u->profile, "ops");
  EXPECT_EQ(u->key, "job_key");
  EXPECT_TRUE(u->create);
  EXPECT_FALSE(u->python);
}

TEST(DynamoUrl, TheLayoutOfThePythonLibrarysTableIsChosenByName) {
  Result<DynamoUrl> u = parse_dynamo_url("dynamodb://jobs?layout=aec-python&key=YourKey");
  ASSERT_TRUE(u) << u.error().to_string();
  EXPECT_TRUE(u->python);
  EXPECT_EQ(u->key, "YourKey");
}

TEST(DynamoUrl, AnEndpointMayBeWrittenWithoutEncoding) {
  Result<DynamoUrl> u = parse_dynamo_url("dynamodb://jobs?endpoint=https://ddb.internal:4443");
  ASSERT_TRUE(u) << u.error().to_string();
  EXPECT_EQ(u->endpoint, "https://ddb.internal:4443");
}

TEST(DynamoUrl, MistakesAreNamedInOneLine) {
  struct Case {
    const char* url;
    const char* says;
  };
  for (const Case& c : {
           Case{"dynamo://jobs", "not a dynamodb URL"},
           Case{"dynamodb://", "no table"},
           Case{"dynamodb://ab", "is not a DynamoDB table name"},
           Case{"dynamodb://my/table", "is not a DynamoDB table name"},
           Case{"dynamodb://jobs?region=EU_WEST", "is not a region name"},
           Case{"dynamodb://jobs?endpoint=127.0.0.1:8000", "is not http(s)://HOST[:PORT]"},
           Case{"dynamodb://jobs?endpoint=http://h/path", "is not http(s)://HOST[:PORT]"},
           Case{"dynamodb://jobs?create=yes", "write create=true or create=false"},
           Case{"dynamodb://jobs?layout=flat", "layout 'flat' is not known"},
           Case{"dynamodb://jobs?key=", "is not an attribute name"},
           Case{"dynamodb://jobs?profile=", "the profile is empty"},
           Case{"dynamodb://jobs?create", "parameter 'create' has no value"},
           Case{"dynamodb://jobs?tabel=x", "unknown parameter 'tabel'"},
           Case{"dynamodb://jobs?key=%zz", "not percent-encoded correctly"},
           Case{"dynamodb://jobs?endpoint=http://a%0Ab", "is not http(s)://HOST[:PORT]"},
           Case{"dynamodb://jobs?profile=a%0Ab", "holds a control character"},
           Case{"dynamodb://jo\nbs", "store URL 'dynamodb://jo\\nbs'"},  // quoted, escaped
           Case{"dynamodb://jobs?e\rndpoint=x", "unknown parameter 'e\\rndpoint'"},
       }) {
    Result<DynamoUrl> u = parse_dynamo_url(c.url);
    ASSERT_FALSE(u) << c.url;
    EXPECT_EQ(u.error().code(), Code::InvalidArgument) << c.url;
    const std::string& m = u.error().message();
    EXPECT_NE(m.find(c.says), std::string::npos) << c.url << ": " << m;
    if (std::string_view(c.url).find_first_of("\r\n") == std::string_view::npos) {
      EXPECT_NE(m.find(std::string("store URL '") + c.url + "'"), std::string::npos) << m;
    }
    EXPECT_EQ(m.find_first_of("\r\n"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace aec::aws
