// Strict reading of one JSON object's fields, for the wire decoders. Internal to aec_api.
//
//   Fields f(j, "");
//   f.text("key", call.request.key, Need::Required);
//   f.duration("ttl_ms", call.request.ttl, 1);
//   if (Status s = f.finish(); !s.is_ok()) return s;
//
// Every reader marks its field known, leaves `out` unchanged when the field is absent, and on a
// wrong type or range records one InvalidArgument naming the field and what it must be. Only the
// first problem is kept; readers after it do nothing. finish() also reports a field no reader
// asked for. Names and texts from the JSON are quoted escaped (core/text.h quote()), so every
// message is one line. Nothing here throws.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <aec/clock.h>
#include <aec/execution.h>
#include <aec/status.h>

#include "core/duration.h"

namespace aec::wire {

enum class Need { Optional, Required };

// "2026-11-29T03:40:00.123Z" (RFC 3339, UTC, any number of fraction digits, or none), of a year
// from kMinYear to kMaxYear: the whole years SysTime (int64 nanoseconds since 1970) holds.
inline constexpr int kMinYear = 1678;
inline constexpr int kMaxYear = 2261;
std::optional<SysTime> parse_time(std::string_view text);

class Fields {
 public:
  // `where` names the object in messages: "" for a body, "owner" or "holders[2]" when nested.
  // `j` must outlive this object.
  Fields(const nlohmann::json& j, std::string where);

  void text(std::string_view name, std::string& out, Need need = Need::Optional);
  void integer(std::string_view name, std::int64_t& out, std::int64_t min,
               std::int64_t max = std::numeric_limits<std::int64_t>::max(),
               Need need = Need::Optional);
  void integer(std::string_view name, int& out, int min, int max = std::numeric_limits<int>::max());
  void size(std::string_view name, std::size_t& out, std::size_t min, std::size_t max);
  // Integer milliseconds in [min_ms, max_ms] (at most kMaxDuration: core/duration.h).
  void duration(std::string_view name, milliseconds& out, std::int64_t min_ms,
                std::int64_t max_ms = kMaxDuration.count());
  void flag(std::string_view name, bool& out);
  // An integer, or null for none.
  void nullable_int(std::string_view name, std::optional<int>& out);
  void time(std::string_view name, SysTime& out, Need need = Need::Optional);
  // A time, or null for none.
  void nullable_time(std::string_view name, std::optional<SysTime>& out);
  // A status word; `allowed` empty means any status.
  void status(std::string_view name, ExecutionStatus& out,
              const std::vector<ExecutionStatus>& allowed = {}, Need need = Need::Optional);
  void statuses(std::string_view name, std::vector<ExecutionStatus>& out);
  // An object of string values.
  void labels(std::string_view name, Labels& out);
  void strings(std::string_view name, std::vector<std::string>& out);

  // A nested object, decoded by `decode(const json&, std::string where) -> Result<T>`.
  template <typename T, typename F>
  void nested(std::string_view name, T& out, F decode, Need need = Need::Optional);
  // A nested object or null.
  template <typename T, typename F>
  void nullable(std::string_view name, std::optional<T>& out, F decode);
  // An array of nested objects.
  template <typename T, typename F>
  void array(std::string_view name, std::vector<T>& out, F decode, Need need = Need::Optional);

  // The field's value, or nullptr when absent (or after an error); marks it known.
  const nlohmann::json* find(std::string_view name, Need need = Need::Optional);
  // Records "field 'NAME': EXPECTED" unless a problem was recorded already.
  void fail(std::string_view name, std::string_view expected);
  // The field's name as messages show it: "holders[0].token".
  std::string path(std::string_view name) const;
  bool ok() const { return error_.is_ok(); }
  // The first problem, or InvalidArgument naming the first field no reader asked for.
  Status finish() const;

 private:
  const nlohmann::json& j_;
  std::string where_;
  std::vector<std::string> known_;
  Status error_;
};

template <typename T, typename F>
void Fields::nested(std::string_view name, T& out, F decode, Need need) {
  const nlohmann::json* v = find(name, need);
  if (v == nullptr) {
    return;
  }
  auto r = decode(*v, path(name));
  if (!r) {
    error_ = r.error();
    return;
  }
  out = std::move(*r);
}

template <typename T, typename F>
void Fields::nullable(std::string_view name, std::optional<T>& out, F decode) {
  const nlohmann::json* v = find(name);
  if (v == nullptr || v->is_null()) {
    return;
  }
  auto r = decode(*v, path(name));
  if (!r) {
    error_ = r.error();
    return;
  }
  out = std::move(*r);
}

template <typename T, typename F>
void Fields::array(std::string_view name, std::vector<T>& out, F decode, Need need) {
  const nlohmann::json* v = find(name, need);
  if (v == nullptr) {
    return;
  }
  if (!v->is_array()) {
    fail(name, "must be an array");
    return;
  }
  std::vector<T> items;
  for (std::size_t i = 0; i < v->size(); ++i) {
    auto r = decode((*v)[i], path(name) + "[" + std::to_string(i) + "]");
    if (!r) {
      error_ = r.error();
      return;
    }
    items.push_back(std::move(*r));
  }
  out = std::move(items);
}

}  // namespace aec::wire
