// aec explain --key K [run options]: what `aec run` would do now, and why. Changes nothing.
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/cli_context.h"
#include "cli/exit_codes.h"
#include "cli/run_flags.h"
#include "cli/run_job.h"
#include "cli/verbs.h"

namespace aec::cli {
namespace {

struct Verdict {
  std::string action;  // run | skip | fail | wait | run-unprotected
  std::string reason;
  std::optional<int> exit_code;  // nullopt: the command's own
};

Verdict busy_verdict(const RunPlan& plan, const KeyState& state) {
  const Execution& h = state.holders.front().execution;
  std::string why = fmt::format(
      "{} holder(s) of limit {}; first: execution {} (token {}) on {} "
      "pid {}",
      state.holders.size(), plan.options.limit, h.id, h.token, h.owner.host, h.owner.pid);
  if (plan.options.on_busy != OnBusy::Wait &&
      held_by_earlier_attempt(state, plan.options.execution_id)) {
    return {"wait",
            why + "; every holder is an earlier attempt of this execution (" +
                std::string(execution_base(plan.options.execution_id)) +
                "): it would wait for it, then run the command",
            {}};
  }
  switch (plan.options.on_busy) {
    case OnBusy::Skip:
      return {"skip", why + "; --on-busy skip", kExitOk};
    case OnBusy::Fail:
      return {"fail", why + "; --on-busy fail", plan.busy_exit_code};
    case OnBusy::Wait:
      return {"wait", why + "; --on-busy wait: it would queue, then run the command", {}};
  }
  return {"skip", why, kExitOk};
}

Result<Verdict> decide(const Context& ctx, const RunPlan& plan) {
  if (std::string by = check_bypassed_by(); !by.empty()) {
    return Verdict{"run-unprotected", by + " bypasses the check", {}};
  }
  auto store = open_context_store_for_reading(ctx);
  Result<KeyState> state = store ? (*store)->get(plan.options.key) : store.error();
  Result<std::vector<Execution>> done =
      store && plan.options.once
          ? (*store)->list(
                {.key = plan.options.key, .statuses = {ExecutionStatus::Succeeded}, .limit = 1})
          : std::vector<Execution>{};
  Status trouble = !state ? state.error() : done.status();
  if (!trouble.is_ok()) {
    if (plan.on_store_error == OnStoreError::Proceed && trouble.code() != Code::InvalidArgument) {
      return Verdict{"run-unprotected",
                     "store trouble (" + trouble.message() + "); --on-store-error proceed",
                     {}};
    }
    return Verdict{"fail", trouble.message(), exit_code_for(trouble.code())};
  }
  if (!done->empty()) {
    return Verdict{"skip", "--once and execution " + done->front().id + " already succeeded",
                   kExitOk};
  }
  if (static_cast<int>(state->holders.size()) >= plan.options.limit) {
    return busy_verdict(plan, *state);
  }
  return Verdict{"run",
                 fmt::format("{} holder(s) of limit {}; the next token would be above {}",
                             state->holders.size(), plan.options.limit, state->last_token),
                 {}};
}

}  // namespace

VerbMain setup_explain(CLI::App& app, const Invocation&) {
  auto flags = std::make_shared<RunFlags>();
  auto ctx = std::make_shared<Context>(Context{.verb = "explain"});
  add_run_flags(app, *flags);
  add_store_option(app, *ctx);
  add_json_option(app, *ctx);
  return [flags, ctx]() {
    Result<RunPlan> plan = plan_run(*flags);
    if (!plan) {
      return fail(*ctx, plan.error());
    }
    Result<Verdict> v = decide(*ctx, *plan);
    if (!v) {
      return fail(*ctx, v.error());
    }
    std::string code = v->exit_code ? std::to_string(*v->exit_code) : "the command's own";
    if (ctx->json) {
      nlohmann::json j = {{"key", plan->options.key},
                          {"action", v->action},
                          {"reason", v->reason},
                          {"exit_code", v->exit_code ? nlohmann::json(*v->exit_code) : nullptr}};
      fmt::print("{}\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    } else {
      fmt::print("aec run would {}: {}\nexit code: {}\n", v->action, v->reason, code);
    }
    return kExitOk;
  };
}

}  // namespace aec::cli
