#include <string>
#include <utility>

#include <fmt/format.h>

#include <aec/key.h>

#include "core/text.h"

namespace aec {

Status validate_key(std::string_view key) {
  if (key.empty()) {
    return invalid_argument("key is empty: give a name such as TEAM/JOB");
  }
  if (key.size() > kMaxKeyBytes) {
    return invalid_argument(
        fmt::format("key is {} bytes long; the limit is {} bytes", key.size(), kMaxKeyBytes));
  }
  return check_clean_text("key", key);
}

Result<std::string> team_job_key(std::string_view team, std::string_view job) {
  std::pair<const char*, std::string_view> parts[] = {{"team", team}, {"job", job}};
  for (auto [what, part] : parts) {
    if (part.empty()) {
      return invalid_argument(fmt::format("the {} name is empty", what));
    }
  }
  std::string key = fmt::format("{}/{}", team, job);
  // Checked before '/' so that a name with a control character is never echoed.
  if (Status s = validate_key(key); !s.is_ok()) {
    return s;
  }
  for (auto [what, part] : parts) {
    if (part.find('/') != std::string_view::npos) {
      return invalid_argument(fmt::format("the {} name '{}' contains '/'", what, part));
    }
  }
  return key;
}

}  // namespace aec
