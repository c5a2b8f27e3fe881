// The /v1 JSON forms: every type round-trips, and every malformed input is refused with a
// message naming the field.
#include "api/wire.h"

#include <cstdint>
#include <optional>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "api/json_fields.h"
#include "core/duration.h"

namespace aec::wire {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

SysTime at_ms(std::int64_t ms) {
  return SysTime(std::chrono::milliseconds(ms));
}

Execution sample_execution(std::string id = "20261129T034001Z-3f9a1c2b7d4e8a61") {
  return {.id = std::move(id),
          .key = "etl/daily",
          .token = 42,
          .status = ExecutionStatus::Failed,
          .owner = {.host = "worker-3", .pid = 4711, .user = "etl"},
          .started_at = at_ms(1'800'000'000'017),
          .ended_at = at_ms(1'800'000'060'123),
          .exit_code = 2,
          .labels = {{"team", "data"}, {"ü", "ö"}},
          .reason = "exit 2"};
}

// Decodes `j` with `decode` and expects InvalidArgument whose message contains `needle`.
template <typename F>
void expect_rejected(F decode, const json& j, const std::string& needle) {
  auto r = decode(j);
  ASSERT_FALSE(r.has_value()) << j.dump();
  EXPECT_EQ(r.error().code(), Code::InvalidArgument) << j.dump();
  EXPECT_NE(r.error().message().find(needle), std::string::npos)
      << "message: " << r.error().message() << "\nwanted: " << needle;
}

TEST(WireTest, ExecutionRoundTripsWithAndWithoutOptionalFields) {
  Execution e = sample_execution();
  json j = encode(e);
  EXPECT_EQ(j["started_at"], "2027-01-15T08:00:00.017Z");
  auto back = decode_execution(j);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(encode(*back), j);
  EXPECT_EQ(back->started_at, e.started_at);
  EXPECT_EQ(back->ended_at, e.ended_at);
  EXPECT_EQ(back->exit_code, 2);
  EXPECT_EQ(back->owner.pid, 4711);
  EXPECT_EQ(back->labels.at("ü"), "ö");

  Execution running{.id = "r", .key = "k", .token = 1, .started_at = at_ms(5)};
  auto r = decode_execution(encode(running));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->status, ExecutionStatus::Running);
  EXPECT_FALSE(r->ended_at.has_value());
  EXPECT_FALSE(r->exit_code.has_value());
}

TEST(WireTest, TimesAcceptRfc3339UtcFractions) {
  json j = encode(sample_execution());
  j["started_at"] = "2027-01-15T08:00:00Z";
  EXPECT_EQ(decode_execution(j)->started_at, at_ms(1'800'000'000'000));
  j["started_at"] = "2027-01-15T08:00:00.5Z";
  EXPECT_EQ(decode_execution(j)->started_at, at_ms(1'800'000'000'500));
  for (const char* bad : {"2027-01-15 08:00:00Z", "2027-01-15T08:00:00+01:00",
                          "2027-02-30T00:00:00Z", "2027-01-15T08:00:00.Z", "yesterday", ""}) {
    j["started_at"] = bad;
    expect_rejected([](const json& v) { return decode_execution(v); }, j,
                    "field 'started_at': must be an RFC 3339 UTC time");
  }
}

// Fuzz bug "time-range": years 0000-9999 were taken, and the conversion of those outside
// 1678-2261 to SysTime (int64 nanoseconds) overflowed.
TEST(WireTest, TimeRangeYearsSysTimeCannotHoldAreRejected) {
  for (const char* bad : {"0227-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z",
                          "1677-12-31T23:59:59Z", "2262-01-01T00:00:00Z", "0000-01-01T00:00:00Z"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(parse_time(bad).has_value());
    json j = encode(sample_execution());
    j["started_at"] = bad;
    expect_rejected([](const json& v) { return decode_execution(v); }, j, "from year 1678 to 2261");
  }
  for (const char* good :
       {"1678-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "2261-12-31T23:59:59.999Z"}) {
    SCOPED_TRACE(good);
    std::optional<SysTime> t = parse_time(good);
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(parse_time(format_time(*t)), t);
  }
}

// Fuzz bug "huge-duration": ttl_ms, queue_ttl_ms and older_than_ms had no upper bound, and the
// stores' now + ttl overflowed.
TEST(WireTest, HugeDurationPastTheMaximumIsRejectedNamingTheFieldAndTheMaximum) {
  const std::int64_t max = 315'360'000'000;  // 3650 days: docs/api.md
  ASSERT_EQ(kMaxDuration.count(), max);
  auto acquire = [](const json& v) { return decode_acquire_call(v); };
  for (const char* field : {"ttl_ms", "queue_ttl_ms"}) {
    SCOPED_TRACE(field);
    expect_rejected(acquire, {{"key", "k"}, {field, max + 1}},
                    fmt::format("field '{}': must be an integer from 1 to {}", field, max));
    expect_rejected(acquire, {{"key", "k"}, {field, INT64_MAX}}, field);
    expect_rejected(acquire, {{"key", "k"}, {field, UINT64_MAX}}, field);
    EXPECT_TRUE(decode_acquire_call(json{{"key", "k"}, {field, max}}).has_value());
  }
  expect_rejected([](const json& v) { return decode_renew(v); }, {{"ttl_ms", INT64_MAX}},
                  fmt::format("field 'ttl_ms': must be an integer from 1 to {}", max));
  expect_rejected([](const json& v) { return decode_purge_request(v); },
                  {{"older_than_ms", max + 1}},
                  fmt::format("field 'older_than_ms': must be an integer from 0 to {}", max));
  EXPECT_EQ(decode_renew(json{{"ttl_ms", max}}).value(), kMaxDuration);
}

// Fuzz bug "newline": field and label names a client sent were quoted as they were, so a message
// could hold a line break.
TEST(WireTest, NewlineClientTextInMessagesIsEscapedOnOneLine) {
  auto acquire = [](const json& v) { return decode_acquire_call(v); };
  expect_rejected(acquire, {{"key", "k"}, {"a\nb", 1}}, "unknown field 'a\\nb'");
  expect_rejected(acquire, {{"key", "k"}, {"labels", {{"x\ny", 1}}}},
                  "label 'x\\ny' must be a string");
  expect_rejected(acquire, {{"key", "k"}, {"it's\r", 1}}, "unknown field 'it\\'s\\r'");
  auto segment = decode_path_segment("a\n%zz");
  ASSERT_FALSE(segment.has_value());
  EXPECT_NE(segment.error().message().find("'a\\n%zz'"), std::string::npos)
      << segment.error().message();
  // An error a server sends is read as one line too.
  auto s = decode_error(encode_error("invalid_argument", "two\r\nlines"));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->message(), "two  lines");
}

TEST(WireTest, KeyStateRoundTripsWithHoldersLastEndedAndQueue) {
  KeyState s{.key = "etl/daily",
             .holders = {{.execution = sample_execution("a"), .expires_in = 28'410ms},
                         {.execution = sample_execution("b"), .expires_in = 0ms}},
             .last_ended = sample_execution("c"),
             .last_token = 43,
             .queue = {"w1", "w2"},
             .version = 17};
  s.holders[0].execution.status = ExecutionStatus::Running;
  json j = encode(s);
  EXPECT_EQ(j["queue"], json({"w1", "w2"}));
  EXPECT_EQ(j["holders"][0]["expires_in_ms"], 28'410);
  auto back = decode_key_state(j);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(encode(*back), j);
  EXPECT_EQ(back->holders[0].expires_in, 28'410ms);
  EXPECT_EQ(back->queue, s.queue);

  auto empty = decode_key_state(encode(KeyState{.key = "k"}));
  ASSERT_TRUE(empty.has_value()) << empty.error().message();
  EXPECT_FALSE(empty->last_ended.has_value());
  EXPECT_TRUE(empty->holders.empty());
}

TEST(WireTest, AcquireCallRoundTripsAndDefaultsTheRest) {
  AcquireCall call{.request = {.key = "etl/daily",
                               .execution_id = "run-1",
                               .ttl = 12s,
                               .limit = 3,
                               .once = true,
                               .record_skipped = true,
                               .queue = true,
                               .queue_ttl = 4s,
                               .owner = {.host = "h", .pid = 9, .user = "u"},
                               .labels = {{"team", "data"}}},
                   .wait = 20s};
  json j = encode(call);
  EXPECT_EQ(j["wait_ms"], 20'000);
  auto back = decode_acquire_call(j);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(encode(*back), j);
  EXPECT_EQ(back->request.queue_ttl, 4s);
  EXPECT_EQ(back->request.owner.user, "u");

  auto minimal = decode_acquire_call(json{{"key", "k"}});
  ASSERT_TRUE(minimal.has_value()) << minimal.error().message();
  EXPECT_EQ(minimal->request.ttl, 30s);
  EXPECT_EQ(minimal->request.limit, 1);
  EXPECT_TRUE(minimal->request.execution_id.empty());
  EXPECT_TRUE(minimal->request.owner.host.empty());
  EXPECT_FALSE(minimal->request.queue);
  EXPECT_EQ(minimal->wait, 0ms);
  EXPECT_FALSE(encode(AcquireCall{.request = {.key = "k"}}).contains("execution_id"));
  EXPECT_FALSE(encode(AcquireCall{.request = {.key = "k"}}).contains("owner"));

  auto parked = decode_acquire_call(json{{"key", "k"}, {"wait_ms", 5}});
  EXPECT_TRUE(parked->request.queue);  // wait_ms implies queue
}

TEST(WireTest, AcquireCallRejectionsNameTheField) {
  auto decode = [](const json& v) { return decode_acquire_call(v); };
  expect_rejected(decode, json::object(), "field 'key' is required");
  expect_rejected(decode, {{"key", 5}}, "field 'key': must be a string");
  expect_rejected(decode, {{"key", "k"}, {"ttl", 5}}, "unknown field 'ttl'");
  expect_rejected(decode, {{"key", "k"}, {"ttl_ms", 0}},
                  "field 'ttl_ms': must be an integer from 1 to 315360000000");
  expect_rejected(decode, {{"key", "k"}, {"ttl_ms", 1.5}}, "field 'ttl_ms'");
  expect_rejected(decode, {{"key", "k"}, {"ttl_ms", "30s"}}, "field 'ttl_ms'");
  expect_rejected(decode, {{"key", "k"}, {"limit", 0}}, "field 'limit'");
  expect_rejected(decode, {{"key", "k"}, {"wait_ms", 600'001}},
                  "field 'wait_ms': must be an integer from 0 to 600000");
  expect_rejected(decode, {{"key", "k"}, {"wait_ms", -1}}, "field 'wait_ms'");
  expect_rejected(decode, {{"key", "k"}, {"once", 1}}, "field 'once': must be true or false");
  expect_rejected(decode, {{"key", "k"}, {"execution_id", ""}}, "field 'execution_id'");
  expect_rejected(decode, {{"key", "k"}, {"labels", {{"a", 1}}}}, "label 'a' must be a string");
  expect_rejected(decode, {{"key", "k"}, {"labels", json::array()}}, "field 'labels'");
  expect_rejected(decode, {{"key", "k"}, {"owner", {{"pid", "x"}}}}, "field 'owner.pid'");
  expect_rejected(decode, {{"key", "k"}, {"owner", {{"uid", 1}}}}, "unknown field 'owner.uid'");
  expect_rejected(decode, {{"key", "k"}, {"owner", "me"}}, "field 'owner': must be an object");
  expect_rejected(decode, json::array(), "body must be a JSON object");
}

TEST(WireTest, AcquireResultRoundTripsEachOutcome) {
  AcquireResult granted{.outcome = AcquireOutcome::Granted,
                        .lease = {.key = "k", .execution_id = "run-1", .token = 43, .ttl = 30s},
                        .version = 18};
  AcquireResult busy{.outcome = AcquireOutcome::Busy,
                     .holders = {{.execution = sample_execution(), .expires_in = 1'200ms}},
                     .waiting_ahead = 2,
                     .version = 17,
                     .retry_in = 1'200ms};
  AcquireResult done{.outcome = AcquireOutcome::Done, .done_by = sample_execution(), .version = 17};
  for (const AcquireResult& r : {granted, busy, done}) {
    json j = encode(r);
    auto back = decode_acquire_result(j);
    ASSERT_TRUE(back.has_value()) << back.error().message();
    EXPECT_EQ(encode(*back), j);
    EXPECT_EQ(back->outcome, r.outcome);
    EXPECT_EQ(back->version, r.version);
    EXPECT_FALSE(back->parked);
  }
  EXPECT_EQ(decode_acquire_result(encode(granted))->lease.token, 43);
  EXPECT_EQ(decode_acquire_result(encode(busy))->retry_in, 1'200ms);
  EXPECT_EQ(decode_acquire_result(encode(busy))->waiting_ahead, 2);
  EXPECT_EQ(encode(busy)["outcome"], "busy");
}

TEST(WireTest, AcquireResultRejectionsNameTheField) {
  auto decode = [](const json& v) { return decode_acquire_result(v); };
  expect_rejected(decode, {{"outcome", "maybe"}}, "field 'outcome': must be one of granted");
  expect_rejected(decode, {{"outcome", "granted"}}, "field 'lease' is required");
  expect_rejected(decode, {{"outcome", "granted"}, {"lease", {{"key", "k"}}}},
                  "field 'lease.execution_id' is required");
  json busy = encode(AcquireResult{.holders = {{.execution = sample_execution()}}});
  busy["holders"][0]["token"] = -1;
  expect_rejected(decode, busy, "field 'holders[0].token': must be an integer >= 0");
  busy["holders"][0]["token"] = 1;
  busy["lease"] = json::object();  // a busy answer carries no lease
  expect_rejected(decode, busy, "unknown field 'lease'");
}

TEST(WireTest, RenewReleaseAndLeaseOutcomeRoundTrip) {
  EXPECT_EQ(*decode_renew(encode_renew(12s)), 12s);
  EXPECT_EQ(*decode_renew(json::object()), 30s);
  expect_rejected([](const json& v) { return decode_renew(v); }, {{"ttl_ms", 0}}, "'ttl_ms'");

  Outcome o{.status = ExecutionStatus::Failed, .exit_code = 2, .reason = "boom"};
  auto back = decode_outcome(encode(o));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->status, ExecutionStatus::Failed);
  EXPECT_EQ(back->exit_code, 2);
  EXPECT_EQ(back->reason, "boom");
  auto defaults = decode_outcome(json::object());
  EXPECT_EQ(defaults->status, ExecutionStatus::Succeeded);
  EXPECT_FALSE(defaults->exit_code.has_value());
  expect_rejected([](const json& v) { return decode_outcome(v); }, {{"status", "running"}},
                  "field 'status': must be one of succeeded, failed, lost, cancelled");
  expect_rejected([](const json& v) { return decode_outcome(v); }, {{"exit_code", "2"}},
                  "field 'exit_code'");

  EXPECT_EQ(*decode_lease_outcome(encode(LeaseOutcome::Ok)), LeaseOutcome::Ok);
  EXPECT_EQ(*decode_lease_outcome(encode(LeaseOutcome::Lost)), LeaseOutcome::Lost);
  expect_rejected([](const json& v) { return decode_lease_outcome(v); }, {{"outcome", "gone"}},
                  "field 'outcome': must be ok or lost");
}

TEST(WireTest, ExecutionListsRoundTripWithAndWithoutNextOffset) {
  std::vector<Execution> list = {sample_execution("a"), sample_execution("b")};
  auto page = decode_execution_page(encode_executions(list, 40));
  ASSERT_TRUE(page.has_value()) << page.error().message();
  EXPECT_EQ(page->executions.size(), 2u);
  EXPECT_EQ(page->next_offset, 40u);
  auto last = decode_execution_page(encode_executions(list, std::nullopt));
  EXPECT_FALSE(last->next_offset.has_value());
  EXPECT_EQ((*decode_executions(encode_executions(list, 2)))[1].id, "b");
  expect_rejected([](const json& v) { return decode_executions(v); }, json::object(),
                  "field 'executions' is required");
  json bad = encode_executions(list, std::nullopt);
  bad["executions"][1]["status"] = "sleeping";
  expect_rejected([](const json& v) { return decode_executions(v); }, bad,
                  "field 'executions[1].status': must be one of running, succeeded");
}

TEST(WireTest, ForceReleaseAndPurgeRoundTrip) {
  EXPECT_EQ(*decode_force_release(encode_force_release("stuck")), "stuck");
  auto call = decode_force_release_call(encode_force_release("stuck", {.user = "alice"}));
  ASSERT_TRUE(call.has_value()) << call.error().message();
  EXPECT_EQ(call->by.user, "alice");
  auto decode = [](const json& v) { return decode_force_release(v); };
  expect_rejected(decode, {{"reason", ""}}, "field 'reason': must not be empty");
  expect_rejected(decode, json::object(), "field 'reason' is required");

  ForceReleaseResult fr{.released = {sample_execution()}, .version = 19};
  auto fr_back = decode_force_release_result(encode(fr));
  ASSERT_TRUE(fr_back.has_value()) << fr_back.error().message();
  EXPECT_EQ(encode(*fr_back), encode(fr));

  PurgeRequest pr{.older_than = 20min,
                  .statuses = {ExecutionStatus::Succeeded, ExecutionStatus::Skipped},
                  .batch_size = 50};
  auto pr_back = decode_purge_request(encode(pr));
  ASSERT_TRUE(pr_back.has_value()) << pr_back.error().message();
  EXPECT_EQ(encode(*pr_back), encode(pr));
  expect_rejected([](const json& v) { return decode_purge_request(v); },
                  {{"statuses", {"succeeded", "nope"}}}, "field 'statuses': must be an array of");
  expect_rejected([](const json& v) { return decode_purge_request(v); }, {{"batch_size", 0}},
                  "field 'batch_size'");

  PurgeResult pres{.executions_deleted = 120, .leases_expired = 1};
  EXPECT_EQ(encode(*decode_purge_result(encode(pres))), encode(pres));
}

TEST(WireTest, ParseObjectNamesTheByteOffset) {
  EXPECT_TRUE(parse_object(R"({"a": 1})").has_value());
  auto bad = parse_object(R"({"a": 1,})");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), Code::InvalidArgument);
  EXPECT_NE(bad.error().message().find("body is not valid JSON at byte 9"), std::string::npos)
      << bad.error().message();
  EXPECT_NE(parse_object("[1]").error().message().find("must be a JSON object"), std::string::npos);
  EXPECT_FALSE(parse_object("").has_value());
  EXPECT_EQ(to_text(json{{"r", std::string("\xff")}}), "{\"r\":\"\xEF\xBF\xBD\"}");
}

TEST(WireTest, ErrorsRoundTripAndHttpLayerWordsMapToTheNearestCode) {
  for (Code c : {Code::InvalidArgument, Code::NotFound, Code::FailedPrecondition, Code::Unavailable,
                 Code::DeadlineExceeded, Code::Cancelled, Code::PermissionDenied, Code::DataLoss,
                 Code::Internal}) {
    auto s = decode_error(encode_error(Status(c, "why")));
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->code(), c);
    EXPECT_EQ(s->message(), "why");
    EXPECT_EQ(code_for_http_status(http_status(c)), c == Code::DataLoss ? Code::Internal : c);
  }
  EXPECT_EQ(decode_error(encode_error("unauthenticated", "no token"))->code(),
            Code::PermissionDenied);
  EXPECT_EQ(decode_error(encode_error("unauthenticated", "no token"))->message(), "no token");
  for (const char* word : {"method_not_allowed", "payload_too_large", "headers_too_large"}) {
    EXPECT_EQ(decode_error(encode_error(word, "m"))->code(), Code::InvalidArgument) << word;
  }
  auto unknown = decode_error(encode_error("teapot", "short and stout"));
  EXPECT_EQ(unknown->code(), Code::Internal);
  EXPECT_NE(unknown->message().find("teapot"), std::string::npos);
  EXPECT_FALSE(decode_error(json{{"outcome", "ok"}}).has_value());
  EXPECT_FALSE(decode_error(json{{"error", "flat"}}).has_value());
}

TEST(WireTest, HttpStatusTableMatchesTheDocs) {
  EXPECT_EQ(http_status(Code::Ok), 200);
  EXPECT_EQ(http_status(Code::InvalidArgument), 400);
  EXPECT_EQ(http_status(Code::PermissionDenied), 403);
  EXPECT_EQ(http_status(Code::NotFound), 404);
  EXPECT_EQ(http_status(Code::FailedPrecondition), 409);
  EXPECT_EQ(http_status(Code::Cancelled), 499);
  EXPECT_EQ(http_status(Code::DataLoss), 500);
  EXPECT_EQ(http_status(Code::Internal), 500);
  EXPECT_EQ(http_status(Code::Unavailable), 503);
  EXPECT_EQ(http_status(Code::DeadlineExceeded), 504);
  EXPECT_EQ(code_for_http_status(204), Code::Ok);
  EXPECT_EQ(code_for_http_status(401), Code::PermissionDenied);
  EXPECT_EQ(code_for_http_status(405), Code::InvalidArgument);
  EXPECT_EQ(code_for_http_status(413), Code::InvalidArgument);
  EXPECT_EQ(code_for_http_status(431), Code::InvalidArgument);
  EXPECT_EQ(code_for_http_status(502), Code::Unavailable);
}

TEST(WireTest, PathSegmentsEncodeEverythingButUnreservedBytes) {
  EXPECT_EQ(encode_path_segment("etl/daily"), "etl%2Fdaily");
  EXPECT_EQ(encode_path_segment("a b%c?d#e"), "a%20b%25c%3Fd%23e");
  EXPECT_EQ(encode_path_segment("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(encode_path_segment("ü"), "%C3%BC");
  std::string every;
  for (int c = 0; c < 256; ++c) {
    every += static_cast<char>(c);
  }
  EXPECT_EQ(*decode_path_segment(encode_path_segment(every)), every);
  EXPECT_EQ(*decode_path_segment("etl%2fdaily"), "etl/daily");
  EXPECT_EQ(*decode_path_segment("a+b"), "a+b");
  for (const char* bad : {"%", "%2", "%zz", "a%2"}) {
    auto r = decode_path_segment(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code(), Code::InvalidArgument);
    EXPECT_NE(r.error().message().find("two hex digits"), std::string::npos);
  }
}

}  // namespace
}  // namespace aec::wire
