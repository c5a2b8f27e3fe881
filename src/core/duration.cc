#include "core/duration.h"

#include <charconv>
#include <cstdint>

#include <fmt/format.h>

#include "core/text.h"

namespace aec {
namespace {

Status bad_duration(std::string_view text) {
  return invalid_argument(fmt::format(
      "bad duration {}: use a number with a unit, e.g. 250ms, 30s, 5m, 1h30m, 2d", quote(text)));
}

Status too_long(std::string_view text) {
  return invalid_argument(
      fmt::format("duration {} is too long: at most {}", quote(text), max_duration_text()));
}

// Milliseconds per unit, or 0 for an unknown unit.
std::int64_t unit_ms(std::string_view unit) {
  if (unit == "ms")
    return 1;
  if (unit == "s" || unit.empty())
    return 1000;
  if (unit == "m")
    return 60'000;
  if (unit == "h")
    return 3'600'000;
  if (unit == "d")
    return 86'400'000;
  return 0;
}

}  // namespace

Result<milliseconds> parse_duration(std::string_view text) {
  if (text.empty()) {
    return bad_duration(text);
  }
  std::int64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::int64_t n = 0;
    if (text[i] < '0' || text[i] > '9') {
      return bad_duration(text);  // no signs, no spaces
    }
    auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), n);
    if (ec != std::errc() || end == text.data() + i) {
      return bad_duration(text);
    }
    i = static_cast<std::size_t>(end - text.data());
    std::size_t unit_start = i;
    while (i < text.size() && text[i] >= 'a' && text[i] <= 'z') {
      ++i;
    }
    std::string_view unit = text.substr(unit_start, i - unit_start);
    std::int64_t per = unit_ms(unit);
    bool bare_number = unit.empty();
    if (per == 0 || (bare_number && (unit_start != text.size() || total != 0))) {
      return bad_duration(text);  // unknown unit, or a bare number mixed with units
    }
    if (n > (kMaxDuration.count() - total) / per) {
      return too_long(text);
    }
    total += n * per;
  }
  return milliseconds(total);
}

std::string max_duration_text() {
  return fmt::format("{}d", std::chrono::duration_cast<std::chrono::days>(kMaxDuration).count());
}

std::string format_duration(milliseconds d) {
  std::int64_t ms = d.count();
  if (ms == 0) {
    return "0s";
  }
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  if (ms % 1000 != 0) {
    return out + fmt::format("{}ms", ms);
  }
  std::int64_t s = ms / 1000;
  std::int64_t h = s / 3600;
  std::int64_t m = (s % 3600) / 60;
  s %= 60;
  if (h != 0)
    out += fmt::format("{}h", h);
  if (m != 0)
    out += fmt::format("{}m", m);
  if (s != 0)
    out += fmt::format("{}s", s);
  return out;
}

UtcTime utc_time(SysTime t) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(t);
  const auto day = floor<days>(ms);
  const year_month_day date{day};
  const hh_mm_ss time{ms - day};
  return {.year = static_cast<int>(date.year()),
          .month = static_cast<unsigned>(date.month()),
          .day = static_cast<unsigned>(date.day()),
          .hour = static_cast<unsigned>(time.hours().count()),
          .minute = static_cast<unsigned>(time.minutes().count()),
          .second = static_cast<unsigned>(time.seconds().count()),
          .millisecond = static_cast<unsigned>(time.subseconds().count())};
}

std::string format_time(SysTime t) {
  const UtcTime u = utc_time(t);
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z", u.year, u.month, u.day,
                     u.hour, u.minute, u.second, u.millisecond);
}

}  // namespace aec
