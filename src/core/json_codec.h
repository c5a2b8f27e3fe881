// JSON forms of aec's records, shared by the termination message, `--json` output and stores
// that keep labels as text. Internal: the public headers never include nlohmann.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <aec/execution.h>
#include <aec/key_state.h>
#include <aec/status.h>

namespace aec {

nlohmann::json to_json(const Execution& e);
nlohmann::json to_json(const KeyState& s);

// Labels as a compact JSON object, and back. A malformed text gives DataLoss.
std::string labels_to_text(const Labels& labels);
Result<Labels> labels_from_text(std::string_view text);

}  // namespace aec
