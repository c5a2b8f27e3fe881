// The options of `aec run`, shared with `aec explain` (which takes the same ones).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <aec/control.h>
#include <aec/status.h>

namespace aec::cli {

enum class OnStoreError { Fail, Proceed };

// The flags as typed.
struct RunFlags {
  std::string key;
  // --team TEAM --job NAME: the Versatile Data Kit's way to name a job, shorthand for
  // --key TEAM/NAME. Both or neither, and never with --key; set when given, even empty.
  std::optional<std::string> team;
  std::optional<std::string> job;
  std::string ttl = "30s";
  int limit = 1;
  bool once = false;
  std::string execution_id;
  std::string on_busy = "skip";
  int busy_exit_code = 75;
  std::string on_store_error = "fail";
  std::string termination_message;
  std::vector<std::string> labels;
  std::string kill_grace = "10s";
};

// The flags checked and converted.
struct RunPlan {
  RunOptions options;
  OnStoreError on_store_error = OnStoreError::Fail;
  int busy_exit_code = 75;
  std::string termination_message;  // empty: none
  milliseconds kill_grace{10'000};  // already capped at ttl/4
};

void add_run_flags(CLI::App& app, RunFlags& flags);

// Checks every flag; InvalidArgument names the first bad one. The key comes from --key or from
// --team and --job (see team_job_key()).
Result<RunPlan> plan_run(const RunFlags& flags);

}  // namespace aec::cli
