#include <cstdio>
#include <set>

#include <gtest/gtest.h>

#include <aec/execution.h>
#include <aec/key.h>

#include "core/duration.h"
#include "tests/support/scoped_time_zone.h"

namespace aec {
namespace {

TEST(KeyTest, AcceptsUtf8NamesUpTo512Bytes) {
  EXPECT_TRUE(validate_key("etl/2024-01-01").is_ok());
  EXPECT_TRUE(validate_key("équipe/tâche-日本").is_ok());
  EXPECT_TRUE(validate_key(std::string(512, 'k')).is_ok());
  EXPECT_TRUE(validate_key("\xF0\x9F\x98\x80").is_ok());  // U+1F600
}

TEST(KeyTest, RejectsWhatTheModelForbids) {
  struct Case {
    std::string key;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {"", "empty"},
           {std::string(513, 'k'), "513 bytes"},
           {"a\tb", "U+0009"},
           {std::string("a\0b", 3), "U+0000"},
           {"a\x7f", "U+007F"},
           {"a\xC2\x85", "U+0085"},                  // NEL, a C1 control
           {"\xC3\x28", "not valid UTF-8"},          // bad continuation
           {"\xC0\xAF", "not valid UTF-8"},          // overlong '/'
           {"\xED\xA0\x80", "not valid UTF-8"},      // a surrogate
           {"\xF4\x90\x80\x80", "not valid UTF-8"},  // past U+10FFFF
           {"abc\xE2\x82", "not valid UTF-8"},       // truncated
       }) {
    Status s = validate_key(c.key);
    EXPECT_EQ(s.code(), Code::InvalidArgument) << c.says;
    EXPECT_NE(s.message().find(c.says), std::string::npos) << s.message();
  }
}

TEST(TeamJobKeyTest, JoinsTeamAndJobWithASlash) {
  auto key = team_job_key("analytics", "daily-load");
  ASSERT_TRUE(key.has_value()) << key.status().to_string();
  EXPECT_EQ(*key, "analytics/daily-load");
}

TEST(TeamJobKeyTest, RejectsEmptyPartsSlashesAndBadKeys) {
  struct Case {
    std::string team, job, says;
  };
  for (const Case& c : std::vector<Case>{
           {"", "j", "team name is empty"},
           {"t", "", "job name is empty"},
           {"a/b", "j", "team name 'a/b' contains '/'"},
           {"t", "x/", "job name 'x/' contains '/'"},
           {"t", "a\tb", "control character"},
           {"t", std::string(600, 'j'), "512 bytes"},
       }) {
    auto key = team_job_key(c.team, c.job);
    ASSERT_FALSE(key.has_value()) << c.says;
    EXPECT_EQ(key.error().code(), Code::InvalidArgument) << c.says;
    EXPECT_NE(key.error().message().find(c.says), std::string::npos) << key.error().message();
  }
}

TEST(ExecutionIdTest, IsUniqueAndSortsByTime) {
  std::set<std::string> ids;
  for (int i = 0; i < 10000; ++i) {
    ids.insert(new_execution_id());
  }
  EXPECT_EQ(ids.size(), 10000u);
  EXPECT_EQ(ids.begin()->size(), std::string("20261123T180401Z-3f9a1c2b7d4e8a61").size());
}

// The id's time is UTC (its Z says so), whatever TZ the process runs in.
TEST(ExecutionIdTest, ItsTimeIsUtcWhateverTheTimeZone) {
  testing::ScopedTimeZone tz("JST-9");
  auto stamp = [](SysTime t) {
    UtcTime u = utc_time(t);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04d%02u%02uT%02u%02u%02uZ-", u.year, u.month, u.day, u.hour,
                  u.minute, u.second);
    return std::string(buf);
  };
  SysTime before = std::chrono::system_clock::now();
  std::string id = new_execution_id();
  SysTime after = std::chrono::system_clock::now();
  std::string prefix = id.substr(0, 17);
  EXPECT_TRUE(prefix == stamp(before) || prefix == stamp(after)) << id << " vs " << stamp(before);
}

TEST(ExecutionStatusTest, NamesRoundTrip) {
  for (auto s : {ExecutionStatus::Running, ExecutionStatus::Succeeded, ExecutionStatus::Failed,
                 ExecutionStatus::Lost, ExecutionStatus::Cancelled, ExecutionStatus::Skipped}) {
    EXPECT_EQ(parse_execution_status(to_string(s)), s);
  }
  EXPECT_FALSE(parse_execution_status("done").has_value());
}

}  // namespace
}  // namespace aec
