#include "core/duration.h"

#include <gtest/gtest.h>

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
}

}  // namespace
}  // namespace aec
