// Durations as people type them: "250ms", "30s", "5m", "1h30m", "2d"; a bare number is seconds.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <aec/clock.h>
#include <aec/status.h>

namespace aec {

// The longest duration aec takes anywhere: a lease's ttl, a queue place's queue_ttl, a park, a
// purge's older_than, and every duration typed on a command line, in a query parameter or in a
// configuration. A time plus or minus it stays well inside what SysTime and MonoTime (int64
// nanoseconds: about 292 years either side of their epoch) can hold.
inline constexpr milliseconds kMaxDuration = std::chrono::days(3650);
// kMaxDuration as messages and docs give it: "3650d".
std::string max_duration_text();

// Parses a non-negative duration of at most kMaxDuration. InvalidArgument names the bad text and
// the accepted forms, or the maximum.
Result<milliseconds> parse_duration(std::string_view text);

// The shortest exact form: "0s", "250ms", "30s", "1m30s", "2h".
std::string format_duration(milliseconds d);

// A time's UTC calendar fields, whatever the process's time zone (TZ). fmt 9 formats a
// system_clock time in local time, so neither it nor localtime() may stand in for this.
struct UtcTime {
  int year;
  unsigned month, day, hour, minute, second, millisecond;
};
UtcTime utc_time(SysTime t);

// RFC 3339 UTC with milliseconds: "2026-11-23T18:04:01.123Z".
std::string format_time(SysTime t);

}  // namespace aec
