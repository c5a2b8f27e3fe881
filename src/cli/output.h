// How verbs print records: aligned tables for people, JSON for scripts.
#pragma once

#include <string>
#include <vector>

#include <aec/execution.h>
#include <aec/key_state.h>

namespace aec::cli {

// One row per execution: KEY STATUS EXECUTION TOKEN HOST PID STARTED ENDED EXIT REASON.
void print_executions(const std::vector<Execution>& executions, bool json);

// A key's holders, the callers waiting in line, last token, last outcome.
void print_key_state(const KeyState& state, bool json);

}  // namespace aec::cli
