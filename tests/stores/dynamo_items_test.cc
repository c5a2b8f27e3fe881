// The native layout's items: a state item and a run record read back as written, and items that
// are not what aec wrote refused with DataLoss naming the attribute, never a crash. The lock item
// of layout=aec-python, as the Python library writes and reads it.
#include "stores/dynamodb/dynamo_items.h"

#include <cstdlib>
#include <ctime>

#include <gtest/gtest.h>

namespace aec::aws {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

RunRecord sample_run(std::int64_t token) {
  RunRecord r;
  r.execution = {.id = "exec-" + std::to_string(token),
                 .key = "team/job",
                 .token = token,
                 .status = ExecutionStatus::Failed,
                 .owner = {.host = "h1", .pid = 42, .user = "alice"},
                 .started_at = SysTime(1'700'000'000'123ms),
                 .ended_at = SysTime(1'700'000'005'456ms),
                 .exit_code = -3,
                 .labels = {{"team", "data"}, {"tier", "gold"}},
                 .reason = "exit 253"};
  r.sort_key = run_sort_key(token);
  r.order = 1'700'000'000'123'000 + token;
  return r;
}

TEST(DynamoItems, SortKeysOrderAKeysHistoryByTokenWithSkipsBetween) {
  EXPECT_EQ(run_sort_key(7), "run#00000000000000000007");
  EXPECT_LT(run_sort_key(7), skipped_sort_key(7, 1));
  EXPECT_LT(skipped_sort_key(7, 1), skipped_sort_key(7, 2));
  EXPECT_LT(skipped_sort_key(7, 99), run_sort_key(8));
  EXPECT_LT(run_sort_key(9), run_sort_key(10));
}

TEST(DynamoItems, ARunRecordReadsBackAsWritten) {
  RunRecord r = sample_run(5);
  Result<RunRecord> back = record_from(record_attributes(r), "team/job", "run");
  ASSERT_TRUE(back) << back.error().to_string();
  const Execution& e = back->execution;
  EXPECT_EQ(e.id, r.execution.id);
  EXPECT_EQ(e.key, "team/job");
  EXPECT_EQ(e.token, 5);
  EXPECT_EQ(e.status, ExecutionStatus::Failed);
  EXPECT_EQ(e.owner.host, "h1");
  EXPECT_EQ(e.owner.pid, 42);
  EXPECT_EQ(e.owner.user, "alice");
  EXPECT_EQ(e.started_at, r.execution.started_at);
  EXPECT_EQ(e.ended_at, r.execution.ended_at);
  EXPECT_EQ(e.exit_code, -3);
  EXPECT_EQ(e.labels, r.execution.labels);
  EXPECT_EQ(e.reason, "exit 253");
  EXPECT_EQ(back->sort_key, r.sort_key);
  EXPECT_EQ(back->order, r.order);
}

TEST(DynamoItems, AStateItemReadsBackAsWrittenAndHasNoTopLevelExpiry) {
  KeyRecord rec;
  rec.rev = 9;
  rec.version = 4;
  rec.last_token = 6;
  rec.seq = 2;
  rec.write_id = "w1";
  RunRecord running = sample_run(6);
  running.execution.status = ExecutionStatus::Running;
  running.execution.ended_at.reset();
  running.execution.exit_code.reset();
  rec.leases.push_back({.run = running, .rv = "rv6", .ttl = 30s, .expires_at = 1'700'000'030});
  rec.queue.push_back({.execution_id = "next", .rv = "p1", .queue_ttl = 3s});
  rec.last_ended = sample_run(5);
  rec.last_succeeded = sample_run(4);
  json item = state_item("job_key", "team/job", rec);
  EXPECT_EQ(item["job_key"], attr_s("team/job"));
  EXPECT_EQ(item["sk"], attr_s("#state"));
  EXPECT_FALSE(item.contains("expires_at"));  // the table's time to live never deletes it
  Result<KeyRecord> back = state_from(item, "team/job");
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_TRUE(back->exists);
  EXPECT_EQ(back->rev, 9);
  EXPECT_EQ(back->version, 4);
  EXPECT_EQ(back->last_token, 6);
  EXPECT_EQ(back->seq, 2);
  EXPECT_EQ(back->write_id, "w1");
  ASSERT_EQ(back->leases.size(), 1u);
  EXPECT_EQ(back->leases[0].rv, "rv6");
  EXPECT_EQ(back->leases[0].ttl, 30s);
  EXPECT_EQ(back->leases[0].expires_at, 1'700'000'030);
  EXPECT_EQ(back->leases[0].run.execution.status, ExecutionStatus::Running);
  EXPECT_FALSE(back->leases[0].run.execution.ended_at);
  ASSERT_EQ(back->queue.size(), 1u);
  EXPECT_EQ(back->queue[0].execution_id, "next");
  EXPECT_EQ(back->queue[0].queue_ttl, 3s);
  ASSERT_TRUE(back->last_ended);
  EXPECT_EQ(back->last_ended->execution.token, 5);
  ASSERT_TRUE(back->last_succeeded);
  EXPECT_EQ(back->last_succeeded->execution.token, 4);
}

TEST(DynamoItems, AMissingItemIsANewKey) {
  Result<KeyRecord> none = state_from(json(), "k");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->exists);
  EXPECT_EQ(none->version, 0);
}

TEST(DynamoItems, ItemsAecDidNotWriteAreDataLossNamingTheAttribute) {
  json good = state_item("pk", "k", KeyRecord{.rev = 1, .version = 1, .last_token = 1});
  struct Case {
    const char* what;
    json item;
    const char* says;
  };
  json no_rev = good;
  no_rev.erase("rev");
  json text_token = good;
  text_token["last_token"] = {{"S", "1"}};
  json bad_number = good;
  bad_number["version"] = {{"N", "1.5"}};
  json bad_lease = good;
  bad_lease["leases"] = {{"L", json::array({{{"S", "x"}}})}};
  json bad_status = good;
  RunRecord r = sample_run(1);
  json attrs = record_attributes(r);
  attrs["status"] = attr_s("paused");
  bad_status["last_ended"] = {{"M", attrs}};
  json bad_label = good;
  json labelled = record_attributes(r);
  labelled["labels"] = {{"M", {{"team", {{"N", "1"}}}}}};
  bad_label["last_ended"] = {{"M", labelled}};
  for (const Case& c :
       {Case{"no rev", no_rev, "attribute rev is missing"},
        Case{"a string token", text_token, "attribute last_token is not of type N"},
        Case{"a fraction", bad_number, "attribute version is not a whole number"},
        Case{"a lease not a map", bad_lease, "holds an entry that is not a map"},
        Case{"an unknown status", bad_status, "'paused' is not an execution status"},
        Case{"a number label", bad_label, "holds a value that is not a string"},
        Case{"not an object", json::array(), "is not a map"}}) {
    Result<KeyRecord> rec = state_from(c.item, "k");
    ASSERT_FALSE(rec) << c.what;
    EXPECT_EQ(rec.error().code(), Code::DataLoss) << c.what;
    EXPECT_NE(rec.error().message().find(c.says), std::string::npos)
        << c.what << ": " << rec.error().message();
  }
}

// The Python library writes datetime.now().strftime("%Y-%m-%dT%H:%M:%S.%f"): local time, six
// fraction digits, no zone.
TEST(DynamoItems, PythonTimesAreLocalWithSixFractionDigitsAndNoZone) {
  const char* saved = std::getenv("TZ");
  std::string restore = saved != nullptr ? saved : "";
  setenv("TZ", "Europe/Madrid", 1);  // UTC+1 in winter
  tzset();
  SysTime t = SysTime(1'700'000'000'000'000us + 42us);  // 2023-11-14T22:13:20.000042Z
  EXPECT_EQ(python_time(t), "2023-11-14T23:13:20.000042");
  setenv("TZ", "UTC", 1);
  tzset();
  EXPECT_EQ(python_time(t), "2023-11-14T22:13:20.000042");
  EXPECT_EQ(python_time(SysTime(1'700'000'000'000'000us)), "2023-11-14T22:13:20.000000");
  EXPECT_EQ(parse_python_time("2023-11-14T22:13:20.000042"), t);
  EXPECT_EQ(parse_python_time("2023-11-14T22:13:20"), std::nullopt);  // as the library: refused
  EXPECT_EQ(parse_python_time("2023-11-14T22:13:20.00004Z"), std::nullopt);
  EXPECT_EQ(parse_python_time("2023-13-14T22:13:20.000042"), std::nullopt);
  EXPECT_EQ(parse_python_time("2023-02-30T22:13:20.000042"), std::nullopt);
  // Found by fuzzing (F4): a year a SysTime cannot hold overflowed it.
  EXPECT_EQ(parse_python_time("1012-01-01T10:00:00.123457"), std::nullopt);
  EXPECT_EQ(parse_python_time("9999-12-31T23:59:59.999999"), std::nullopt);
  if (saved != nullptr) {
    setenv("TZ", restore.c_str(), 1);
  } else {
    unsetenv("TZ");
  }
  tzset();
}

TEST(DynamoItems, AecsItemsInThePythonLayoutAreNamedApartFromItsKeys) {
  EXPECT_EQ(python_item_key("2024-01-01", kStateSort), "aec#state#2024-01-01");
  EXPECT_EQ(python_item_key("etl/daily", run_sort_key(3)),
            "aec#run#00000000000000000003#etl/daily");
  EXPECT_EQ(python_item_key("etl/daily", skipped_sort_key(3, 2)),
            "aec#skip#00000000000000000003#00000000000000000002#etl/daily");
  // A key that looks like the numbers of a skipped run still gets an item of its own.
  EXPECT_NE(python_item_key("00000000000000000002#x", run_sort_key(3)),
            python_item_key("x", skipped_sort_key(3, 2)));
}

// An item exactly as the Python library's write_atomically_a_key() puts it: aec reads it as held
// by someone else (no aec attributes), and FINISHED after update_status().
TEST(DynamoItems, ThePythonLibrarysLockItemReadsAsHeldByPython) {
  json item = {{"YourKey", {{"S", "2024-01-01"}}},
               {"status_execution", {{"S", "IN_PROGRESS"}}},
               {"created_at", {{"S", "2024-01-01T10:00:00.123456"}}},
               {"updated_at", {{"S", "2024-01-01T10:00:00.123456"}}}};
  Result<LockItem> l = lock_from(item, "2024-01-01");
  ASSERT_TRUE(l.has_value()) << l.error().to_string();
  EXPECT_TRUE(l->exists);
  EXPECT_FALSE(l->finished);
  EXPECT_EQ(l->token, 0);
  EXPECT_EQ(l->updated_at, "2024-01-01T10:00:00.123456");
  item["status_execution"] = {{"S", "FINISHED"}};
  l = lock_from(item, "2024-01-01");
  ASSERT_TRUE(l.has_value());
  EXPECT_TRUE(l->finished);
  Result<LockItem> missing = lock_from(json::object(), "2024-01-01");
  ASSERT_TRUE(missing.has_value());
  EXPECT_FALSE(missing->exists);
}

TEST(DynamoItems, AecsLockItemHasThePythonAttributesAndReadsBack) {
  LockItem l{.exists = true,
             .created_at = "2024-01-01T10:00:00.000001",
             .updated_at = "2024-01-01T10:00:05.000002",
             .token = 9,
             .execution_id = "exec-9",
             .rv = "abc",
             .ttl = 30s,
             .owner = "h1:42",
             .expires_at = 1'704'103'235};
  json item = lock_item("YourKey", "2024-01-01", l);
  EXPECT_EQ(item["YourKey"], json({{"S", "2024-01-01"}}));
  EXPECT_EQ(item["status_execution"], json({{"S", "IN_PROGRESS"}}));
  EXPECT_EQ(item["created_at"], json({{"S", l.created_at}}));
  EXPECT_EQ(item["updated_at"], json({{"S", l.updated_at}}));
  EXPECT_EQ(item["expires_at"], json({{"N", "1704103235"}}));
  Result<LockItem> back = lock_from(item, "2024-01-01");
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  EXPECT_EQ(back->token, 9);
  EXPECT_EQ(back->execution_id, "exec-9");
  EXPECT_EQ(back->rv, "abc");
  EXPECT_EQ(back->ttl, 30s);
  EXPECT_EQ(back->owner, "h1:42");
  l.finished = true;
  EXPECT_EQ(lock_item("YourKey", "2024-01-01", l)["status_execution"], json({{"S", "FINISHED"}}));
}

TEST(DynamoItems, ALockItemNeitherSideWroteIsDataLossNamingTheAttribute) {
  json item = {{"k", {{"S", "x"}}}, {"status_execution", {{"S", "DONE"}}}};
  Result<LockItem> l = lock_from(item, "x");
  ASSERT_FALSE(l.has_value());
  EXPECT_EQ(l.error().code(), Code::DataLoss);
  EXPECT_NE(l.error().message().find("status_execution"), std::string::npos);
  item["status_execution"] = {{"S", "IN_PROGRESS"}};
  item["aec_token"] = {{"N", "3"}};  // the rest of aec's attributes missing
  l = lock_from(item, "x");
  ASSERT_FALSE(l.has_value());
  EXPECT_NE(l.error().message().find("aec_execution_id"), std::string::npos) << l.error().message();
  json no_status = {{"k", {{"S", "x"}}}};
  l = lock_from(no_status, "x");
  ASSERT_FALSE(l.has_value());
  EXPECT_NE(l.error().message().find("status_execution"), std::string::npos);
}

}  // namespace
}  // namespace aec::aws
