#include "core/json_codec.h"

#include "core/duration.h"

namespace aec {

nlohmann::json to_json(const Execution& e) {
  nlohmann::json j = {
      {"id", e.id},
      {"key", e.key},
      {"token", e.token},
      {"status", to_string(e.status)},
      {"host", e.owner.host},
      {"pid", e.owner.pid},
      {"user", e.owner.user},
      {"started_at", format_time(e.started_at)},
      {"ended_at", e.ended_at ? nlohmann::json(format_time(*e.ended_at)) : nullptr},
      {"exit_code", e.exit_code ? nlohmann::json(*e.exit_code) : nullptr},
      {"labels", e.labels},
      {"reason", e.reason},
  };
  return j;
}

nlohmann::json to_json(const KeyState& s) {
  nlohmann::json holders = nlohmann::json::array();
  for (const Holder& h : s.holders) {
    nlohmann::json j = to_json(h.execution);
    j["expires_in_ms"] = h.expires_in.count();
    holders.push_back(std::move(j));
  }
  return {
      {"key", s.key},
      {"version", s.version},
      {"last_token", s.last_token},
      {"holders", std::move(holders)},
      {"last_ended", s.last_ended ? to_json(*s.last_ended) : nlohmann::json(nullptr)},
      {"queue", s.queue},
  };
}

std::string labels_to_text(const Labels& labels) {
  return nlohmann::json(labels).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<Labels> labels_from_text(std::string_view text) {
  if (text.empty()) {
    return Labels{};
  }
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return Status(Code::DataLoss, "stored labels are not a JSON object");
  }
  Labels labels;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) {
      return Status(Code::DataLoss, "stored label '" + k + "' is not a string");
    }
    labels[k] = v.get<std::string>();
  }
  return labels;
}

}  // namespace aec
