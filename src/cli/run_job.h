// `aec run`'s work: acquire, supervise the command under the lease, record the outcome.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <aec/key_state.h>

#include "cli/cli_context.h"
#include "cli/run_flags.h"

namespace aec::cli {

// Runs `command` under a lease per `plan` and returns aec's exit code: the command's own (128+N
// when a signal N killed it), 0 or plan.busy_exit_code when the key was busy or done, kExitLost
// when the lease was lost, 126/127 when the command cannot run, or an error's code.
int run_job(const Context& ctx, const RunPlan& plan, const std::vector<std::string>& command);

// The setting that bypasses the check, as "NAME=VALUE": AEC_RUN_ENABLED or (the Versatile Data
// Kit's name) VDK_EXECUTION_SKIP_CHECKER_ENABLED set to false, 0, no or off. "" when neither is.
std::string check_bypassed_by();

// True when every holder of the key is an attempt of `execution_id`'s execution (see
// same_execution()) and so is every caller waiting in line: a retry started while an earlier
// attempt still holds the lease. `aec run` then waits for the lease instead of skipping.
bool held_by_earlier_attempt(const KeyState& state, std::string_view execution_id);

}  // namespace aec::cli
