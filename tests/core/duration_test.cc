#include "core/duration.h"

#include <gtest/gtest.h>

#include "tests/support/scoped_time_zone.h"

namespace aec {
namespace {

using namespace std::chrono_literals;

TEST(DurationTest, ParsesUnitsAndSums) {
  EXPECT_EQ(*parse_duration("250ms"), 250ms);
  EXPECT_EQ(*parse_duration("30s"), 30s);
  EXPECT_EQ(*parse_duration("30"), 30s);
  EXPECT_EQ(*parse_duration("5m"), 5min);
  EXPECT_EQ(*parse_duration("1h30m"), 90min);
  EXPECT_EQ(*parse_duration("2d"), 48h);
  EXPECT_EQ(*parse_duration("0s"), 0ms);
}

TEST(DurationTest, RejectsWhatIsNotADuration) {
  for (const char* bad :
       {"", "s", "10x", "-5s", "1.5s", "5 s", "1h30", "30s5", "ms", "99999999999999999999s"}) {
    auto r = parse_duration(bad);
    EXPECT_FALSE(r.has_value()) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code(), Code::InvalidArgument);
    }
  }
}

// Fuzz bug "huge-duration": --ttl (and every typed duration) had no upper bound short of int64
// milliseconds, and now + ttl overflowed.
TEST(DurationTest, HugeDurationPastTheMaximumIsRefused) {
  EXPECT_EQ(max_duration_text(), "3650d");
  EXPECT_EQ(*parse_duration("3650d"), kMaxDuration);
  EXPECT_EQ(*parse_duration("3649d23h59m59s999ms"), kMaxDuration - 1ms);
  for (const char* bad :
       {"3651d", "3650d1ms", "87601h", "9223372036854775807ms", "106751991167d"}) {
    auto r = parse_duration(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code(), Code::InvalidArgument);
    EXPECT_NE(r.error().message().find("at most 3650d"), std::string::npos) << r.error().message();
  }
}

// Fuzz bug "newline": the text a client typed is quoted escaped, on one line.
TEST(DurationTest, NewlineBadDurationIsQuotedEscaped) {
  auto r = parse_duration("5\nm");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("bad duration '5\\nm'"), std::string::npos)
      << r.error().message();
}

TEST(DurationTest, FormatsTheShortestExactForm) {
  EXPECT_EQ(format_duration(0ms), "0s");
  EXPECT_EQ(format_duration(250ms), "250ms");
  EXPECT_EQ(format_duration(90s), "1m30s");
  EXPECT_EQ(format_duration(2h), "2h");
  EXPECT_EQ(format_duration(1500ms), "1500ms");
  for (const char* text : {"250ms", "30s", "1m30s", "2h", "1h1m1s"}) {
    EXPECT_EQ(format_duration(*parse_duration(text)), text);
  }
}

TEST(DurationTest, FormatsTimesAsRfc3339Utc) {
  SysTime t = SysTime(std::chrono::milliseconds(1'800'000'000'123));
  EXPECT_EQ(format_time(t), "2027-01-15T08:00:00.123Z");
  EXPECT_EQ(format_time(SysTime(std::chrono::milliseconds(1'709'208'000'000))),
            "2024-02-29T12:00:00.000Z");
  EXPECT_EQ(format_time(SysTime(std::chrono::milliseconds(-1))), "1969-12-31T23:59:59.999Z");
}

// fmt 9 formats a system_clock time in local time: aec once wrote local times with a Z.
TEST(DurationTest, FormatsTimesInUtcWhateverTheTimeZone) {
  testing::ScopedTimeZone tz("JST-9");
  SysTime t = SysTime(std::chrono::milliseconds(1'800'000'000'123));
  EXPECT_EQ(format_time(t), "2027-01-15T08:00:00.123Z");
  UtcTime u = utc_time(t);
  EXPECT_EQ(u.hour, 8u);
  EXPECT_EQ(u.day, 15u);
}

}  // namespace
}  // namespace aec
