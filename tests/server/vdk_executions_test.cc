// The VDK executions view: status words and filters, field mapping, waiters, logs_url.
#include "server/vdk_executions.h"

#include <gtest/gtest.h>

namespace aec::server {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const SysTime kT0 = SysTime(1'800'000'000'000ms);  // 2027-01-15T08:00:00.000Z

Execution execution(std::string id, ExecutionStatus status, Labels labels = {}) {
  Execution e{.id = std::move(id),
              .key = "team-a/load",
              .token = 7,
              .status = status,
              .owner = {.host = "worker-3", .pid = 42, .user = "etl"},
              .started_at = kT0,
              .labels = std::move(labels)};
  if (status != ExecutionStatus::Running) {
    e.ended_at = kT0 + 90s;
  }
  return e;
}

VdkExecutionsQuery query() {
  return {.team = "team-a", .job = "load"};
}

std::vector<std::string> ids_of(const json& array) {
  std::vector<std::string> ids;
  for (const json& e : array) {
    ids.push_back(e["id"].get<std::string>());
  }
  return ids;
}

TEST(VdkStatusesTest, MapsEveryAecStatus) {
  EXPECT_EQ(to_string(vdk_status_of(ExecutionStatus::Running)), "running");
  EXPECT_EQ(to_string(vdk_status_of(ExecutionStatus::Succeeded)), "succeeded");
  EXPECT_EQ(to_string(vdk_status_of(ExecutionStatus::Failed)), "user_error");
  EXPECT_EQ(to_string(vdk_status_of(ExecutionStatus::Lost)), "platform_error");
  EXPECT_EQ(to_string(vdk_status_of(ExecutionStatus::Cancelled)), "cancelled");
  EXPECT_EQ(to_string(vdk_status_of(ExecutionStatus::Skipped)), "skipped");
  EXPECT_EQ(to_string(VdkStatus::Submitted), "submitted");
}

TEST(VdkStatusesTest, ParsesRepeatedAndCommaSeparatedValuesInAnyCase) {
  auto parsed = parse_vdk_statuses({"submitted", "RUNNING,user_error", "", "running,,"});
  ASSERT_TRUE(parsed.has_value()) << parsed.status().to_string();
  EXPECT_EQ(*parsed, (std::vector<VdkStatus>{VdkStatus::Submitted, VdkStatus::Running,
                                             VdkStatus::UserError}));
  EXPECT_TRUE(parse_vdk_statuses({})->empty());
}

TEST(VdkStatusesTest, AnUnknownValueIsInvalidArgumentNamingTheValidOnes) {
  auto parsed = parse_vdk_statuses({"running", "failed"});
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().code(), Code::InvalidArgument);
  const std::string& m = parsed.error().message();
  EXPECT_NE(m.find("'failed'"), std::string::npos) << m;
  for (const char* word : {"submitted", "running", "succeeded", "cancelled", "skipped",
                           "user_error", "platform_error"}) {
    EXPECT_NE(m.find(word), std::string::npos) << word << ": " << m;
  }
  auto odd = parse_vdk_statuses({"a\nb"});
  ASSERT_FALSE(odd.has_value());
  EXPECT_EQ(odd.error().message().find('\n'), std::string::npos) << odd.error().message();
}

TEST(VdkExecutionsTest, AnEndedExecutionHasVdksFields) {
  VdkExecutionsQuery q = query();
  q.executions = {execution("job-7", ExecutionStatus::Failed)};
  q.executions[0].reason = "killed by signal 9";
  json out = vdk_executions(q);
  ASSERT_TRUE(out.is_array());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], (json{{"id", "job-7"},
                          {"job_name", "load"},
                          {"status", "user_error"},
                          {"type", "manual"},
                          {"start_time", "2027-01-15T08:00:00.000Z"},
                          {"end_time", "2027-01-15T08:01:30.000Z"},
                          {"started_by", "etl@worker-3"},
                          {"message", "killed by signal 9"},
                          {"op_id", "job-7"},
                          {"logs_url", nullptr}}))
      << out.dump(2);
}

TEST(VdkExecutionsTest, LabelsGiveTypeStartedByAndOpId) {
  VdkExecutionsQuery q = query();
  q.executions = {
      execution("a", ExecutionStatus::Running,
                {{"type", "scheduled"}, {"started_by", "scheduler"}, {"op_id", "op-1"}}),
      execution("b", ExecutionStatus::Succeeded, {{"type", "nightly"}}),  // not a VDK type
  };
  json out = vdk_executions(q);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0]["status"], "running");
  EXPECT_EQ(out[0]["type"], "scheduled");
  EXPECT_EQ(out[0]["started_by"], "scheduler");
  EXPECT_EQ(out[0]["op_id"], "op-1");
  EXPECT_TRUE(out[0]["end_time"].is_null());
  EXPECT_TRUE(out[0]["message"].is_null());
  EXPECT_EQ(out[1]["type"], "manual");
  EXPECT_EQ(out[1]["op_id"], "b");
}

TEST(VdkExecutionsTest, StartedByUsesWhatIsKnownOfTheOwner) {
  VdkExecutionsQuery q = query();
  q.executions = {execution("a", ExecutionStatus::Succeeded),
                  execution("b", ExecutionStatus::Succeeded),
                  execution("c", ExecutionStatus::Succeeded)};
  q.executions[1].owner.user = "";
  q.executions[2].owner = {};
  json out = vdk_executions(q);
  EXPECT_EQ(out[0]["started_by"], "etl@worker-3");
  EXPECT_EQ(out[1]["started_by"], "worker-3");
  EXPECT_TRUE(out[2]["started_by"].is_null());
}

TEST(VdkExecutionsTest, WaitersInLineAreSubmittedNewestFirstBeforeTheRecords) {
  VdkExecutionsQuery q = query();
  q.executions = {execution("holder", ExecutionStatus::Running),
                  execution("old", ExecutionStatus::Succeeded)};
  q.queue = {"first", "second"};
  q.parked = {{.execution_id = "second",
               .owner = {.host = "h2", .pid = 1, .user = "ann"},
               .labels = {{"type", "scheduled"}},
               .since = kT0 + 1s},
              {.execution_id = "gone", .since = kT0}};  // not in the store's line: not shown
  json out = vdk_executions(q);
  EXPECT_EQ(ids_of(out), (std::vector<std::string>{"second", "first", "holder", "old"}));
  EXPECT_EQ(out[0]["status"], "submitted");
  EXPECT_EQ(out[0]["type"], "scheduled");
  EXPECT_EQ(out[0]["started_by"], "ann@h2");
  EXPECT_EQ(out[0]["start_time"], "2027-01-15T08:00:01.000Z");
  EXPECT_EQ(out[0]["message"], "waiting in line, 1 ahead");
  EXPECT_EQ(out[1]["status"], "submitted");  // known only by id
  EXPECT_TRUE(out[1]["start_time"].is_null());
  EXPECT_TRUE(out[1]["started_by"].is_null());
  EXPECT_TRUE(out[1]["end_time"].is_null());
  EXPECT_EQ(out[1]["message"], "waiting in line, 0 ahead");
  EXPECT_EQ(out[1]["op_id"], "first");
}

TEST(VdkExecutionsTest, TheFilterKeepsOnlyTheAskedStatuses) {
  VdkExecutionsQuery q = query();
  q.executions = {
      execution("r", ExecutionStatus::Running),   execution("f", ExecutionStatus::Failed),
      execution("l", ExecutionStatus::Lost),      execution("s", ExecutionStatus::Skipped),
      execution("c", ExecutionStatus::Cancelled), execution("ok", ExecutionStatus::Succeeded)};
  q.queue = {"w"};
  using Ids = std::vector<std::string>;
  EXPECT_EQ(ids_of(vdk_executions(q)), (Ids{"w", "r", "f", "l", "s", "c", "ok"}));
  q.statuses = *parse_vdk_statuses({"submitted,running"});  // what VDK's checker asks
  EXPECT_EQ(ids_of(vdk_executions(q)), (Ids{"w", "r"}));
  q.statuses = {VdkStatus::PlatformError, VdkStatus::UserError};
  EXPECT_EQ(ids_of(vdk_executions(q)), (Ids{"f", "l"}));
  q.statuses = {VdkStatus::Cancelled};
  EXPECT_EQ(ids_of(vdk_executions(q)), (Ids{"c"}));
}

TEST(VdkExecutionsTest, NothingToReportIsAnEmptyArray) {
  EXPECT_EQ(vdk_executions(query()), json::array());
  EXPECT_EQ(vdk_executions_body(query()), "[]");
}

TEST(VdkExecutionsTest, LogsUrlReplacesEveryPlaceholderPercentEncoded) {
  VdkExecutionsQuery q = query();
  q.team = "team a";
  q.executions = {execution("run/1?x", ExecutionStatus::Succeeded)};
  q.queue = {"w-1"};
  q.logs_url_template = "https://logs.example/{team}/{job}?q={id}&again={id}&{other}";
  json out = vdk_executions(q);
  EXPECT_EQ(out[0]["logs_url"], "https://logs.example/team%20a/load?q=w-1&again=w-1&{other}");
  EXPECT_EQ(out[1]["logs_url"],
            "https://logs.example/team%20a/load?q=run%2F1%3Fx&again=run%2F1%3Fx&{other}");
}

TEST(VdkExecutionsTest, TheBodyToleratesInvalidUtf8InLabels) {
  VdkExecutionsQuery q = query();
  q.executions = {execution("a", ExecutionStatus::Succeeded, {{"started_by", "bad\xff"}})};
  std::string body = vdk_executions_body(q);
  EXPECT_NE(body.find("\"started_by\":\"bad\xEF\xBF\xBD\""), std::string::npos) << body;
}

}  // namespace
}  // namespace aec::server
