#include <algorithm>
#include <array>
#include <chrono>

#include <fmt/format.h>

#include <aec/execution.h>

#include "core/duration.h"
#include "core/random.h"

namespace aec {

namespace {
constexpr std::array<std::pair<ExecutionStatus, std::string_view>, 6> kNames = {{
    {ExecutionStatus::Running, "running"},
    {ExecutionStatus::Succeeded, "succeeded"},
    {ExecutionStatus::Failed, "failed"},
    {ExecutionStatus::Lost, "lost"},
    {ExecutionStatus::Cancelled, "cancelled"},
    {ExecutionStatus::Skipped, "skipped"},
}};
}  // namespace

std::string_view to_string(ExecutionStatus status) {
  for (const auto& [s, name] : kNames) {
    if (s == status) {
      return name;
    }
  }
  return "unknown";
}

std::optional<ExecutionStatus> parse_execution_status(std::string_view word) {
  for (const auto& [s, name] : kNames) {
    if (name == word) {
      return s;
    }
  }
  return std::nullopt;
}

std::string_view execution_base(std::string_view id) {
  constexpr std::size_t kSuffix = 5;  // Kubernetes' random pod-name suffix
  if (id.size() < kSuffix + 2 || id[id.size() - kSuffix - 1] != '-') {
    return id;
  }
  std::string_view suffix = id.substr(id.size() - kSuffix);
  bool attempt = std::all_of(suffix.begin(), suffix.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  });
  return attempt ? id.substr(0, id.size() - kSuffix - 1) : id;
}

bool same_execution(std::string_view a, std::string_view b) {
  return execution_base(a) == execution_base(b);
}

std::string new_execution_id() {
  const UtcTime u = utc_time(std::chrono::system_clock::now());
  return fmt::format("{:04d}{:02d}{:02d}T{:02d}{:02d}{:02d}Z-{:016x}", u.year, u.month, u.day,
                     u.hour, u.minute, u.second, random64());
}

}  // namespace aec
