// aec run [options] -- CMD ARGS...
#include <memory>

#include "cli/cli_context.h"
#include "cli/exit_codes.h"
#include "cli/run_flags.h"
#include "cli/run_job.h"
#include "cli/verbs.h"

namespace aec::cli {

VerbMain setup_run(CLI::App& app, const Invocation& invocation) {
  auto flags = std::make_shared<RunFlags>();
  auto ctx = std::make_shared<Context>(Context{.verb = "run"});
  add_run_flags(app, *flags);
  add_store_option(app, *ctx);
  app.add_flag("-q,--quiet", ctx->quiet, "Print nothing but errors");
  app.add_flag("-v,--verbose", ctx->verbose, "Say what aec does");
  return [flags, ctx, &invocation]() {
    Result<RunPlan> plan = plan_run(*flags);
    if (!plan) {
      return fail(*ctx, plan.error());
    }
    if (invocation.command.empty()) {
      return fail(*ctx, invalid_argument("no command given: put it after --, e.g. aec run --key "
                                         "K -- CMD ARGS"));
    }
    return run_job(*ctx, *plan, invocation.command);
  };
}

}  // namespace aec::cli
