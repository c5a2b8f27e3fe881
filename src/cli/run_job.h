// `aec run`'s work: acquire, supervise the command under the lease, record the outcome.
#pragma once

#include <string>
#include <vector>

#include "cli/cli_context.h"
#include "cli/run_flags.h"

namespace aec::cli {

// Runs `command` under a lease per `plan` and returns aec's exit code: the command's own (128+N
// when a signal N killed it), 0 or plan.busy_exit_code when the key was busy or done, kExitLost
// when the lease was lost, 126/127 when the command cannot run, or an error's code.
int run_job(const Context& ctx, const RunPlan& plan, const std::vector<std::string>& command);

// True when AEC_RUN_ENABLED is set to false, 0, no or off: the check is bypassed.
bool run_disabled();

}  // namespace aec::cli
