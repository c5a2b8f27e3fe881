#include "cli/run_flags.h"

#include <fmt/format.h>

#include <aec/key.h>

#include "cli/cli_context.h"
#include "core/duration.h"
#include "core/status_macros.h"
#include "core/text.h"

namespace aec::cli {

void add_run_flags(CLI::App& app, RunFlags& f) {
  app.add_option("-k,--key", f.key,
                 "What to protect, e.g. TEAM/JOB (required; UTF-8, <= 512 bytes)");
  app.add_option("--team", f.team,
                 "The team owning the job: --team TEAM --job NAME is --key TEAM/NAME");
  app.add_option("--job", f.job, "The job's name, with --team");
  app.add_option("--ttl", f.ttl, "Lease duration, renewed every ttl/3 while the command runs")
      ->capture_default_str();
  app.add_option("--limit", f.limit, "How many may hold KEY at once")->capture_default_str();
  app.add_flag("--once", f.once, "Run only if KEY has no succeeded execution in its history");
  app.add_option("--execution-id", f.execution_id, "This run's id (default: generated, unique)");
  app.add_option("--on-busy", f.on_busy,
                 "When KEY is busy: skip (exit 0), wait[=TIMEOUT] (queue until free), or fail "
                 "(exit --busy-exit-code)")
      ->capture_default_str();
  app.add_option("-E,--busy-exit-code", f.busy_exit_code,
                 "Exit code for --on-busy fail and for a wait that timed out")
      ->capture_default_str();
  app.add_option("--on-store-error", f.on_store_error,
                 "When the store is unreachable at start: fail, or proceed (run unprotected)")
      ->capture_default_str();
  app.add_option("--termination-message", f.termination_message,
                 "Write a JSON summary of the outcome to this file (Kubernetes reads "
                 "/dev/termination-log)")
      ->envname("AEC_TERMINATION_MESSAGE_PATH");
  app.add_option("--label", f.labels, "Label recorded with the execution, KEY=VALUE (repeatable)");
  app.add_option("--kill-grace", f.kill_grace,
                 "On a lost lease: time between SIGTERM and SIGKILL (capped at ttl/4)")
      ->capture_default_str();
}

namespace {

Result<std::pair<OnBusy, std::optional<milliseconds>>> parse_on_busy(const std::string& text) {
  if (text == "skip") {
    return std::pair{OnBusy::Skip, std::optional<milliseconds>()};
  }
  if (text == "fail") {
    return std::pair{OnBusy::Fail, std::optional<milliseconds>()};
  }
  if (text == "wait") {
    return std::pair{OnBusy::Wait, std::optional<milliseconds>()};
  }
  if (text.starts_with("wait=")) {
    AEC_ASSIGN_OR_RETURN(milliseconds timeout, parse_duration(text.substr(5)));
    return std::pair{OnBusy::Wait, std::optional(timeout)};
  }
  return invalid_argument(
      fmt::format("bad --on-busy '{}': use skip, fail, wait or wait=TIMEOUT (e.g. wait=5m)", text));
}

// The key from --key, or from --team and --job.
Result<std::string> key_of(const RunFlags& f) {
  bool team_job = f.team || f.job;
  if (team_job && !f.key.empty()) {
    return invalid_argument(
        "--key and --team/--job are alternatives: give --key TEAM/NAME or --team TEAM --job NAME, "
        "not both");
  }
  if (team_job && !(f.team && f.job)) {
    return invalid_argument(fmt::format("{} needs {} too: --team TEAM --job NAME",
                                        f.team ? "--team" : "--job", f.team ? "--job" : "--team"));
  }
  if (team_job) {
    Result<std::string> key = team_job_key(*f.team, *f.job);
    if (!key) {
      return invalid_argument("bad --team/--job: " + key.error().message());
    }
    return key;
  }
  if (f.key.empty()) {
    return invalid_argument(
        "--key is required: name what to protect, e.g. --key etl/daily (or --team T --job J)");
  }
  if (Status s = validate_key(f.key); !s.is_ok()) {
    return invalid_argument("bad --key: " + s.message());
  }
  return f.key;
}

}  // namespace

Result<RunPlan> plan_run(const RunFlags& f) {
  AEC_ASSIGN_OR_RETURN(std::string key, key_of(f));
  // Recorded in the store and written into the termination message: text, like a key.
  AEC_RETURN_IF_ERROR(check_clean_text("--execution-id", f.execution_id));
  RunPlan plan;
  AEC_ASSIGN_OR_RETURN(plan.options.ttl, parse_duration(f.ttl));
  if (plan.options.ttl < milliseconds(100)) {
    return invalid_argument(fmt::format("--ttl {} is too short: use at least 100ms", f.ttl));
  }
  if (f.limit < 1) {
    return invalid_argument(fmt::format("--limit must be at least 1, not {}", f.limit));
  }
  if (f.busy_exit_code < 0 || f.busy_exit_code > 255) {
    return invalid_argument("--busy-exit-code must be between 0 and 255");
  }
  if (f.on_store_error != "fail" && f.on_store_error != "proceed") {
    return invalid_argument(
        fmt::format("bad --on-store-error '{}': use fail or proceed", f.on_store_error));
  }
  AEC_ASSIGN_OR_RETURN(auto busy, parse_on_busy(f.on_busy));
  AEC_ASSIGN_OR_RETURN(plan.options.labels, parse_labels(f.labels));
  AEC_ASSIGN_OR_RETURN(milliseconds grace, parse_duration(f.kill_grace));
  plan.options.key = std::move(key);
  plan.options.limit = f.limit;
  plan.options.once = f.once;
  plan.options.execution_id = f.execution_id;
  plan.options.on_busy = busy.first;
  plan.options.wait_timeout = busy.second;
  plan.on_store_error = f.on_store_error == "fail" ? OnStoreError::Fail : OnStoreError::Proceed;
  plan.busy_exit_code = f.busy_exit_code;
  plan.termination_message = f.termination_message;
  plan.kill_grace = std::min(grace, plan.options.ttl / 4);
  return plan;
}

}  // namespace aec::cli
