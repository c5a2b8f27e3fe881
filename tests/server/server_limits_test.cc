// aecd's limits over a real socket (docs/api.md, docs/aecd.md): body and head sizes, malformed
// bodies, timeouts and the connection cap.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/server/raw_http.h"

namespace aec::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(ServerLimits, BodyOver64KiBIs413AndCloses) {
  auto t = TestServer::start(memory_store());
  ASSERT_TRUE(t.server);
  RawConnection conn(t.port());
  std::string body = R"({"key": "a/k", "labels": {"pad": ")";
  body += std::string(64 * 1024 + 1 - body.size() - 3, 'x') + "\"}}";
  ASSERT_EQ(body.size(), 64u * 1024 + 1);
  HttpReply r = conn.exchange(http_request("POST", "/v1/leases", "", body));
  ASSERT_EQ(r.status, 413) << r.body;
  EXPECT_EQ(r.error_code(), "payload_too_large");
  EXPECT_TRUE(conn.wait_closed(2s));
}

TEST(ServerLimits, HeadOver16KiBIs431) {
  auto t = TestServer::start(memory_store());
  ASSERT_TRUE(t.server);
  RawConnection conn(t.port());
  std::string head =
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(17 * 1024, 'p') + "\r\n\r\n";
  HttpReply r = conn.exchange(head);
  ASSERT_EQ(r.status, 431) << r.body;
  EXPECT_EQ(r.error_code(), "headers_too_large");
  EXPECT_TRUE(conn.wait_closed(2s));
}

TEST(ServerLimits, MalformedBodiesAndKeysAre400NamingWhatIsWrong) {
  auto t = TestServer::start(memory_store());
  ASSERT_TRUE(t.server);
  // The '}' after the ',' is where the JSON goes wrong: byte 15, counted from 1.
  HttpReply bad_json = t.call("POST", "/v1/leases", "", R"({"key": "a/k",})");
  ASSERT_EQ(bad_json.status, 400) << bad_json.body;
  EXPECT_NE(bad_json.error_message().find("at byte 15"), std::string::npos) << bad_json.body;

  HttpReply unknown = t.call("POST", "/v1/leases", "", R"({"key": "a/k", "colour": "red"})");
  ASSERT_EQ(unknown.status, 400) << unknown.body;
  EXPECT_NE(unknown.error_message().find("'colour'"), std::string::npos) << unknown.body;

  std::string long_key = "a/" + std::string(511, 'k');  // 513 bytes
  HttpReply in_body = t.call("POST", "/v1/leases", "", fmt::format(R"({{"key": "{}"}})", long_key));
  ASSERT_EQ(in_body.status, 400) << in_body.body;
  EXPECT_NE(in_body.error_message().find("512"), std::string::npos) << in_body.body;
  HttpReply in_path = t.call("GET", "/v1/keys/" + path_key(long_key));
  ASSERT_EQ(in_path.status, 400) << in_path.body;
  EXPECT_NE(in_path.error_message().find("512"), std::string::npos) << in_path.body;
  HttpReply at_limit = t.call("GET", "/v1/keys/" + path_key(long_key.substr(1)));
  EXPECT_EQ(at_limit.status, 200) << "a key of exactly 512 bytes is valid: " << at_limit.body;
}

// Fuzz bug "newline": 400 messages quoted decoded client text (query values, the path's lease
// token, JSON field and label names) as it was, so an error could span lines.
TEST(ServerLimits, NewlineClientTextIn400MessagesIsEscapedOnOneLine) {
  auto t = TestServer::start(memory_store());
  ASSERT_TRUE(t.server);
  struct Case {
    std::string method, target, body, says;
  };
  const std::vector<Case> cases = {
      {"GET", "/v1/keys?limit=%0A", "", "limit='\\n'"},
      {"GET", "/v1/keys?offset=1%0D%0A", "", "offset='1\\r\\n'"},
      {"GET", "/v1/keys/a/history?status=x%0Ay", "", "status='x\\ny'"},
      {"GET", "/v1/keys/a?index=%0A", "", "index='\\n'"},
      {"GET", "/v1/keys/a?wait=5%0Am", "", "'5\\nm'"},
      {"POST", "/v1/keys/a/leases/%0A/renew", "", "lease token '\\n'"},
      {"POST", "/v1/leases", R"({"key": "a/k", "a\nb": 1})", "unknown field 'a\\nb'"},
      {"POST", "/v1/leases", R"({"key": "a/k", "labels": {"x\ny": 1}})", "label 'x\\ny'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.target + " " + c.body);
    HttpReply r = t.call(c.method, c.target, "", c.body);
    ASSERT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.error_message().find_first_of("\r\n"), std::string::npos) << r.body;
    EXPECT_NE(r.error_message().find(c.says), std::string::npos) << r.body;
  }
}

// Fuzz bug "huge-duration": ttl_ms and the like had no upper bound; now + ttl overflowed.
TEST(ServerLimits, HugeDurationIs400NamingTheFieldAndTheMaximum) {
  auto t = TestServer::start(memory_store());
  ASSERT_TRUE(t.server);
  HttpReply acquire =
      t.call("POST", "/v1/leases", "", R"({"key": "a/k", "ttl_ms": 9223372036854775807})");
  ASSERT_EQ(acquire.status, 400) << acquire.body;
  EXPECT_NE(
      acquire.error_message().find("field 'ttl_ms': must be an integer from 1 to 315360000000"),
      std::string::npos)
      << acquire.body;
  HttpReply purge = t.call("POST", "/v1/purge", "", R"({"older_than_ms": 315360000001})");
  ASSERT_EQ(purge.status, 400) << purge.body;
  EXPECT_NE(purge.error_message().find("'older_than_ms'"), std::string::npos) << purge.body;
  HttpReply at_max = t.call("POST", "/v1/leases", "", R"({"key": "a/k", "ttl_ms": 315360000000})");
  EXPECT_EQ(at_max.status, 200) << at_max.body;
}

TEST(ServerLimits, HalfARequestHeadIsCutOffAfterHeaderTimeout) {
  auto t = TestServer::start(memory_store(), {.header_timeout = 300ms, .idle_timeout = 10s});
  ASSERT_TRUE(t.server);
  RawConnection conn(t.port());
  auto start = Clock::now();
  ASSERT_TRUE(conn.send("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
  ASSERT_TRUE(conn.wait_closed(5s)) << "the server kept a half request open";
  auto took = Clock::now() - start;
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 5s);
}

TEST(ServerLimits, AnIdleKeepAliveConnectionIsClosedAfterIdleTimeout) {
  auto t = TestServer::start(memory_store(), {.header_timeout = 10s, .idle_timeout = 400ms});
  ASSERT_TRUE(t.server);
  RawConnection conn(t.port());
  HttpReply r = conn.exchange(http_request("GET", "/healthz"));
  ASSERT_EQ(r.status, 200);
  auto start = Clock::now();
  ASSERT_TRUE(conn.wait_closed(5s)) << "the server kept an idle connection open";
  auto took = Clock::now() - start;
  EXPECT_GE(took, 350ms);
  EXPECT_LT(took, 5s);
}

TEST(ServerLimits, ConnectionsBeyondTheCapAreClosedAtOnce) {
  auto t = TestServer::start(memory_store(), {.max_connections = 4});
  ASSERT_TRUE(t.server);
  std::vector<std::unique_ptr<RawConnection>> open;
  for (int i = 0; i < 4; ++i) {
    open.push_back(std::make_unique<RawConnection>(t.port()));
    ASSERT_EQ(open.back()->exchange(http_request("GET", "/healthz")).status, 200) << i;
  }
  RawConnection fifth(t.port());
  auto start = Clock::now();
  ASSERT_TRUE(fifth.wait_closed(2s)) << "the 5th connection was kept";
  EXPECT_LT(Clock::now() - start, 2s);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(open[i]->exchange(http_request("GET", "/healthz")).status, 200) << i;
  }
}

}  // namespace
}  // namespace aec::testing
