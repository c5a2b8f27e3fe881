#include "api/json_fields.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "core/text.h"

namespace aec::wire {
namespace {

using nlohmann::json;

// Reads exactly `n` digits at text[i...]; -1 when they are not all digits.
int digits(std::string_view text, std::size_t i, std::size_t n) {
  if (i + n > text.size()) {
    return -1;
  }
  int v = 0;
  for (std::size_t k = i; k < i + n; ++k) {
    if (text[k] < '0' || text[k] > '9') {
      return -1;
    }
    v = v * 10 + (text[k] - '0');
  }
  return v;
}

// The fraction ".123" from text[i...] up to the 'Z' that must end the text, as nanoseconds.
std::optional<std::chrono::nanoseconds> fraction(std::string_view text, std::size_t i) {
  std::int64_t ns = 0;
  if (i < text.size() && text[i] == '.') {
    std::size_t start = ++i;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
      if (i - start < 9) {
        ns = ns * 10 + (text[i] - '0');
      }
    }
    std::size_t n = i - start;
    if (n == 0) {
      return std::nullopt;
    }
    for (; n < 9; ++n) {
      ns *= 10;
    }
  }
  if (i + 1 != text.size() || text[i] != 'Z') {
    return std::nullopt;
  }
  return std::chrono::nanoseconds(ns);
}

std::string status_words(const std::vector<ExecutionStatus>& allowed) {
  std::vector<std::string_view> words;
  for (ExecutionStatus s : allowed) {
    words.push_back(to_string(s));
  }
  return fmt::format("{}", fmt::join(words, ", "));
}

const std::vector<ExecutionStatus>& all_statuses() {
  static const std::vector<ExecutionStatus> all = {
      ExecutionStatus::Running, ExecutionStatus::Succeeded, ExecutionStatus::Failed,
      ExecutionStatus::Lost,    ExecutionStatus::Cancelled, ExecutionStatus::Skipped};
  return all;
}

}  // namespace

std::optional<SysTime> parse_time(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS
  int y = digits(text, 0, 4);
  int mo = digits(text, 5, 2);
  int d = digits(text, 8, 2);
  int h = digits(text, 11, 2);
  int mi = digits(text, 14, 2);
  int s = digits(text, 17, 2);
  if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || s < 0 || text[4] != '-' || text[7] != '-' ||
      (text[10] != 'T' && text[10] != 't') || text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  if (y < kMinYear || y > kMaxYear) {
    return std::nullopt;  // SysTime would overflow
  }
  std::chrono::year_month_day date{std::chrono::year(y), std::chrono::month(mo),
                                   std::chrono::day(d)};
  auto frac = fraction(text, 19);
  if (!date.ok() || h > 23 || mi > 59 || s > 60 || !frac) {
    return std::nullopt;
  }
  auto t = std::chrono::sys_days(date) + std::chrono::hours(h) + std::chrono::minutes(mi) +
           std::chrono::seconds(s) + *frac;
  return std::chrono::time_point_cast<SysTime::duration>(t);
}

Fields::Fields(const json& j, std::string where) : j_(j), where_(std::move(where)) {
  if (!j_.is_object()) {
    error_ =
        invalid_argument(where_.empty() ? "body must be a JSON object"
                                        : fmt::format("field '{}': must be an object", where_));
  }
}

std::string Fields::path(std::string_view name) const {
  return where_.empty() ? std::string(name) : fmt::format("{}.{}", where_, name);
}

void Fields::fail(std::string_view name, std::string_view expected) {
  if (error_.is_ok()) {
    error_ = invalid_argument(fmt::format("field '{}': {}", path(name), expected));
  }
}

const json* Fields::find(std::string_view name, Need need) {
  known_.emplace_back(name);
  if (!error_.is_ok()) {
    return nullptr;
  }
  auto it = j_.find(std::string(name));
  if (it == j_.end()) {
    if (need == Need::Required) {
      error_ = invalid_argument(fmt::format("field '{}' is required", path(name)));
    }
    return nullptr;
  }
  return &*it;
}

Status Fields::finish() const {
  if (!error_.is_ok()) {
    return error_;
  }
  for (const auto& [name, value] : j_.items()) {
    if (std::find(known_.begin(), known_.end(), name) == known_.end()) {
      return invalid_argument(
          fmt::format("unknown field {} (known: {})", quote(path(name)), fmt::join(known_, ", ")));
    }
  }
  return Status::ok();
}

void Fields::text(std::string_view name, std::string& out, Need need) {
  const json* v = find(name, need);
  if (v == nullptr) {
    return;
  }
  if (!v->is_string()) {
    fail(name, "must be a string");
    return;
  }
  out = v->get<std::string>();
}

void Fields::integer(std::string_view name, std::int64_t& out, std::int64_t min, std::int64_t max,
                     Need need) {
  const json* v = find(name, need);
  if (v == nullptr) {
    return;
  }
  bool in_range = false;
  if (v->is_number_unsigned()) {
    auto u = v->get<std::uint64_t>();
    in_range = u <= static_cast<std::uint64_t>(max) && (min <= 0 || u >= std::uint64_t(min));
  } else if (v->is_number_integer()) {
    auto i = v->get<std::int64_t>();
    in_range = i >= min && i <= max;
  }
  if (!in_range) {
    fail(name, max == std::numeric_limits<std::int64_t>::max()
                   ? fmt::format("must be an integer >= {}", min)
                   : fmt::format("must be an integer from {} to {}", min, max));
    return;
  }
  out = v->get<std::int64_t>();
}

void Fields::integer(std::string_view name, int& out, int min, int max) {
  std::int64_t v = out;
  integer(name, v, min, max);
  out = static_cast<int>(v);
}

void Fields::size(std::string_view name, std::size_t& out, std::size_t min, std::size_t max) {
  auto v = static_cast<std::int64_t>(out);
  integer(name, v, static_cast<std::int64_t>(min), static_cast<std::int64_t>(max));
  out = static_cast<std::size_t>(v);
}

void Fields::duration(std::string_view name, milliseconds& out, std::int64_t min_ms,
                      std::int64_t max_ms) {
  std::int64_t v = out.count();
  integer(name, v, min_ms, max_ms);
  out = milliseconds(v);
}

void Fields::flag(std::string_view name, bool& out) {
  const json* v = find(name);
  if (v == nullptr) {
    return;
  }
  if (!v->is_boolean()) {
    fail(name, "must be true or false");
    return;
  }
  out = v->get<bool>();
}

void Fields::nullable_int(std::string_view name, std::optional<int>& out) {
  const json* v = find(name);
  if (v == nullptr || v->is_null()) {
    return;
  }
  std::int64_t i = 0;
  integer(name, i, std::numeric_limits<int>::min(), std::numeric_limits<int>::max());
  if (ok()) {
    out = static_cast<int>(i);
  }
}

void Fields::time(std::string_view name, SysTime& out, Need need) {
  const json* v = find(name, need);
  if (v == nullptr) {
    return;
  }
  std::optional<SysTime> t;
  if (v->is_string()) {
    t = parse_time(v->get_ref<const std::string&>());
  }
  if (!t) {
    fail(name, fmt::format("must be an RFC 3339 UTC time like \"2026-11-29T03:40:00.123Z\", "
                           "from year {} to {}",
                           kMinYear, kMaxYear));
    return;
  }
  out = *t;
}

void Fields::nullable_time(std::string_view name, std::optional<SysTime>& out) {
  const json* v = find(name);
  if (v == nullptr || v->is_null()) {
    return;
  }
  SysTime t{};
  time(name, t);
  if (ok()) {
    out = t;
  }
}

void Fields::status(std::string_view name, ExecutionStatus& out,
                    const std::vector<ExecutionStatus>& allowed, Need need) {
  const json* v = find(name, need);
  if (v == nullptr) {
    return;
  }
  const std::vector<ExecutionStatus>& words = allowed.empty() ? all_statuses() : allowed;
  std::optional<ExecutionStatus> s;
  if (v->is_string()) {
    s = parse_execution_status(v->get_ref<const std::string&>());
  }
  if (!s || std::find(words.begin(), words.end(), *s) == words.end()) {
    fail(name, "must be one of " + status_words(words));
    return;
  }
  out = *s;
}

void Fields::statuses(std::string_view name, std::vector<ExecutionStatus>& out) {
  const json* v = find(name);
  if (v == nullptr) {
    return;
  }
  std::vector<ExecutionStatus> list;
  for (std::size_t i = 0; v->is_array() && i < v->size(); ++i) {
    const json& w = (*v)[i];
    auto s = w.is_string() ? parse_execution_status(w.get_ref<const std::string&>()) : std::nullopt;
    if (!s) {
      break;
    }
    list.push_back(*s);
  }
  if (!v->is_array() || list.size() != v->size()) {
    fail(name, "must be an array of " + status_words(all_statuses()));
    return;
  }
  out = std::move(list);
}

void Fields::labels(std::string_view name, Labels& out) {
  const json* v = find(name);
  if (v == nullptr) {
    return;
  }
  if (!v->is_object()) {
    fail(name, "must be an object of strings");
    return;
  }
  Labels labels;
  for (const auto& [k, value] : v->items()) {
    if (!value.is_string()) {
      fail(name, fmt::format("label {} must be a string", quote(k)));
      return;
    }
    labels[k] = value.get<std::string>();
  }
  out = std::move(labels);
}

void Fields::strings(std::string_view name, std::vector<std::string>& out) {
  const json* v = find(name);
  if (v == nullptr) {
    return;
  }
  std::vector<std::string> list;
  for (std::size_t i = 0; v->is_array() && i < v->size() && (*v)[i].is_string(); ++i) {
    list.push_back((*v)[i].get<std::string>());
  }
  if (!v->is_array() || list.size() != v->size()) {
    fail(name, "must be an array of strings");
    return;
  }
  out = std::move(list);
}

}  // namespace aec::wire
