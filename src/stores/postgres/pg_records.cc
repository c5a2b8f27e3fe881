#include "stores/postgres/pg_records.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/json_codec.h"
#include "core/status_macros.h"

namespace aec::pg {
namespace {

using nlohmann::json;

Status corrupt(std::string_view what, std::string_view text) {
  return Status(Code::DataLoss, fmt::format("postgres store answered a malformed {}: {}", what,
                                            text.substr(0, 200)));
}

Result<json> parse(std::string_view what, std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return corrupt(what, text);
  }
  return j;
}

SysTime from_ms(std::int64_t ms) {
  return SysTime(std::chrono::milliseconds(ms));
}

// id, key, token, status, host, pid, user, started_ms, ended_ms, exit_code, labels, reason.
Result<Execution> execution_from(const json& a) {
  if (!a.is_array() || a.size() != 12 || !a[0].is_string() || !a[1].is_string() ||
      !a[2].is_number_integer() || !a[3].is_string() || !a[4].is_string() ||
      !a[5].is_number_integer() || !a[6].is_string() || !a[7].is_number_integer() ||
      !(a[8].is_null() || a[8].is_number_integer()) ||
      !(a[9].is_null() || a[9].is_number_integer()) || !a[10].is_string() || !a[11].is_string()) {
    return corrupt("execution", a.dump());
  }
  std::optional<ExecutionStatus> status = parse_execution_status(a[3].get<std::string>());
  if (!status) {
    return corrupt("execution status", a[3].get<std::string>());
  }
  AEC_ASSIGN_OR_RETURN(Labels labels, labels_from_text(a[10].get<std::string>()));
  Execution e{.id = a[0].get<std::string>(),
              .key = a[1].get<std::string>(),
              .token = a[2].get<std::int64_t>(),
              .status = *status,
              .owner = {.host = a[4].get<std::string>(),
                        .pid = a[5].get<std::int64_t>(),
                        .user = a[6].get<std::string>()},
              .started_at = from_ms(a[7].get<std::int64_t>()),
              .labels = std::move(labels),
              .reason = a[11].get<std::string>()};
  if (!a[8].is_null()) {
    e.ended_at = from_ms(a[8].get<std::int64_t>());
  }
  if (!a[9].is_null()) {
    e.exit_code = a[9].get<int>();
  }
  return e;
}

}  // namespace

Result<Execution> execution_from_json(std::string_view text) {
  AEC_ASSIGN_OR_RETURN(json a, parse("execution", text));
  return execution_from(a);
}

Result<std::optional<Execution>> maybe_execution_from_json(std::string_view text) {
  if (text.empty()) {
    return std::optional<Execution>();
  }
  AEC_ASSIGN_OR_RETURN(Execution e, execution_from_json(text));
  return std::optional<Execution>(std::move(e));
}

Result<std::vector<Holder>> holders_from_json(std::string_view text) {
  AEC_ASSIGN_OR_RETURN(json list, parse("holder list", text));
  if (!list.is_array()) {
    return corrupt("holder list", text);
  }
  std::vector<Holder> out;
  for (const json& h : list) {
    if (!h.is_array() || h.size() != 2 || !h[1].is_number_integer()) {
      return corrupt("holder", text);
    }
    AEC_ASSIGN_OR_RETURN(Execution e, execution_from(h[0]));
    out.push_back({std::move(e), milliseconds(h[1].get<std::int64_t>())});
  }
  return out;
}

Result<std::vector<Execution>> executions_from_json(std::string_view text) {
  AEC_ASSIGN_OR_RETURN(json list, parse("execution list", text));
  if (!list.is_array()) {
    return corrupt("execution list", text);
  }
  std::vector<Execution> out;
  for (const json& e : list) {
    AEC_ASSIGN_OR_RETURN(Execution x, execution_from(e));
    out.push_back(std::move(x));
  }
  return out;
}

Result<std::vector<std::string>> strings_from_json(std::string_view text) {
  AEC_ASSIGN_OR_RETURN(json list, parse("list", text));
  std::vector<std::string> out;
  if (!list.is_array()) {
    return corrupt("list", text);
  }
  for (const json& s : list) {
    if (!s.is_string()) {
      return corrupt("list", text);
    }
    out.push_back(s.get<std::string>());
  }
  return out;
}

}  // namespace aec::pg
