// Durations as people type them: "250ms", "30s", "5m", "1h30m", "2d"; a bare number is seconds.
#pragma once

#include <string>
#include <string_view>

#include <aec/clock.h>
#include <aec/status.h>

namespace aec {

// Parses a non-negative duration. InvalidArgument names the bad text and the accepted forms.
Result<milliseconds> parse_duration(std::string_view text);

// The shortest exact form: "0s", "250ms", "30s", "1m30s", "2h".
std::string format_duration(milliseconds d);

// RFC 3339 UTC with milliseconds: "2026-11-23T18:04:01.123Z".
std::string format_time(SysTime t);

}  // namespace aec
