// Reading the postgres store's JSON answers (executions as arrays, holders) into aec's records.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include <aec/execution.h>
#include <aec/key_state.h>
#include <aec/status.h>

namespace aec::pg {

// An execution written by exec_json() in schema.sql; DataLoss when malformed.
Result<Execution> execution_from_json(std::string_view text);
// An execution or SQL NULL (empty text).
Result<std::optional<Execution>> maybe_execution_from_json(std::string_view text);
// [[execution, expires_in_ms], ...] from holders() in schema.sql.
Result<std::vector<Holder>> holders_from_json(std::string_view text);
// [execution, ...]
Result<std::vector<Execution>> executions_from_json(std::string_view text);
// ["id", ...]
Result<std::vector<std::string>> strings_from_json(std::string_view text);

}  // namespace aec::pg
