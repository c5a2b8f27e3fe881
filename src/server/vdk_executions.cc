#include "server/vdk_executions.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "core/duration.h"

namespace aec::server {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<VdkStatus, std::string_view>, 7> kWords = {{
    {VdkStatus::Submitted, "submitted"},
    {VdkStatus::Running, "running"},
    {VdkStatus::Succeeded, "succeeded"},
    {VdkStatus::Cancelled, "cancelled"},
    {VdkStatus::Skipped, "skipped"},
    {VdkStatus::UserError, "user_error"},
    {VdkStatus::PlatformError, "platform_error"},
}};

std::optional<VdkStatus> parse_word(std::string_view word) {
  std::string lower(word);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const auto& [status, name] : kWords) {
    if (name == lower) {
      return status;
    }
  }
  return std::nullopt;
}

// `text` fit for a one-line message: at most 64 characters, anything but printable ASCII as '?'.
std::string printable(std::string_view text) {
  std::string out(text.substr(0, 64));
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c < 0x20 || c > 0x7e; }, '?');
  return out;
}

std::string valid_words() {
  std::string all;
  for (const auto& [status, name] : kWords) {
    all += all.empty() ? "" : ", ";
    all += name;
  }
  return all;
}

// RFC 3986: everything but the unreserved characters is percent-encoded.
std::string percent_encode(std::string_view text) {
  std::string out;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
  return out;
}

json logs_url(const VdkExecutionsQuery& q, std::string_view id) {
  if (q.logs_url_template.empty()) {
    return nullptr;
  }
  const std::array<std::pair<std::string_view, std::string>, 3> fields = {{
      {"{team}", percent_encode(q.team)},
      {"{job}", percent_encode(q.job)},
      {"{id}", percent_encode(id)},
  }};
  std::string_view t = q.logs_url_template;
  std::string out;
  while (!t.empty()) {
    auto field = std::find_if(fields.begin(), fields.end(),
                              [&](const auto& f) { return t.starts_with(f.first); });
    if (field != fields.end()) {
      out += field->second;
      t.remove_prefix(field->first.size());
    } else {
      out += t.front();
      t.remove_prefix(1);
    }
  }
  return out;
}

const std::string* label(const Labels& labels, const char* name) {
  auto it = labels.find(name);
  return it == labels.end() ? nullptr : &it->second;
}

std::string type_of(const Labels& labels) {
  const std::string* type = label(labels, "type");
  return type != nullptr && (*type == "manual" || *type == "scheduled") ? *type : "manual";
}

json started_by(const Labels& labels, const Owner& owner) {
  if (const std::string* by = label(labels, "started_by")) {
    return *by;
  }
  if (!owner.user.empty() && !owner.host.empty()) {
    return owner.user + "@" + owner.host;
  }
  if (owner.user.empty() && owner.host.empty()) {
    return nullptr;
  }
  return owner.user.empty() ? owner.host : owner.user;
}

json op_id(const Labels& labels, const std::string& id) {
  const std::string* op = label(labels, "op_id");
  return op != nullptr ? *op : id;
}

json from_execution(const VdkExecutionsQuery& q, const Execution& e) {
  return {
      {"id", e.id},
      {"job_name", q.job},
      {"status", to_string(vdk_status_of(e.status))},
      {"type", type_of(e.labels)},
      {"start_time", format_time(e.started_at)},
      {"end_time", e.ended_at ? json(format_time(*e.ended_at)) : json(nullptr)},
      {"started_by", started_by(e.labels, e.owner)},
      {"message", e.reason.empty() ? json(nullptr) : json(e.reason)},
      {"op_id", op_id(e.labels, e.id)},
      {"logs_url", logs_url(q, e.id)},
  };
}

// The waiter `place` places from the front of the line (0: first in line).
json from_waiter(const VdkExecutionsQuery& q, const std::string& id, std::size_t place) {
  auto parked = std::find_if(q.parked.begin(), q.parked.end(),
                             [&](const ParkedWaiter& w) { return w.execution_id == id; });
  static const Labels kNone;
  const Labels& labels = parked != q.parked.end() ? parked->labels : kNone;
  return {
      {"id", id},
      {"job_name", q.job},
      {"status", to_string(VdkStatus::Submitted)},
      {"type", type_of(labels)},
      {"start_time", parked != q.parked.end() ? json(format_time(parked->since)) : json(nullptr)},
      {"end_time", nullptr},
      {"started_by", parked != q.parked.end() ? started_by(labels, parked->owner) : json(nullptr)},
      {"message", fmt::format("waiting in line, {} ahead", place)},
      {"op_id", op_id(labels, id)},
      {"logs_url", logs_url(q, id)},
  };
}

bool wanted(const VdkExecutionsQuery& q, VdkStatus status) {
  return q.statuses.empty() ||
         std::find(q.statuses.begin(), q.statuses.end(), status) != q.statuses.end();
}

}  // namespace

std::string_view to_string(VdkStatus status) {
  for (const auto& [s, name] : kWords) {
    if (s == status) {
      return name;
    }
  }
  return "platform_error";  // unreachable: every status is in kWords
}

VdkStatus vdk_status_of(ExecutionStatus status) {
  switch (status) {
    case ExecutionStatus::Running:
      return VdkStatus::Running;
    case ExecutionStatus::Succeeded:
      return VdkStatus::Succeeded;
    case ExecutionStatus::Failed:
      return VdkStatus::UserError;
    case ExecutionStatus::Lost:
      return VdkStatus::PlatformError;
    case ExecutionStatus::Cancelled:
      return VdkStatus::Cancelled;
    case ExecutionStatus::Skipped:
      return VdkStatus::Skipped;
  }
  return VdkStatus::PlatformError;
}

Result<std::vector<VdkStatus>> parse_vdk_statuses(const std::vector<std::string>& values) {
  std::vector<VdkStatus> statuses;
  for (std::string_view value : values) {
    while (true) {
      std::size_t comma = value.find(',');
      std::string_view word = value.substr(0, comma);
      if (!word.empty()) {
        std::optional<VdkStatus> status = parse_word(word);
        if (!status) {
          return invalid_argument(
              fmt::format("unknown execution_status '{}': use {}", printable(word), valid_words()));
        }
        if (std::find(statuses.begin(), statuses.end(), *status) == statuses.end()) {
          statuses.push_back(*status);
        }
      }
      if (comma == std::string_view::npos) {
        break;
      }
      value.remove_prefix(comma + 1);
    }
  }
  return statuses;
}

json vdk_executions(const VdkExecutionsQuery& q) {
  json out = json::array();
  if (wanted(q, VdkStatus::Submitted)) {
    for (std::size_t i = q.queue.size(); i-- > 0;) {
      out.push_back(from_waiter(q, q.queue[i], i));
    }
  }
  for (const Execution& e : q.executions) {
    if (wanted(q, vdk_status_of(e.status))) {
      out.push_back(from_execution(q, e));
    }
  }
  return out;
}

std::string vdk_executions_body(const VdkExecutionsQuery& q) {
  return vdk_executions(q).dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace aec::server
