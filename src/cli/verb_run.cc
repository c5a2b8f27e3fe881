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
  app.footer(
      "Usage: aec run --key KEY [options] -- CMD [ARGS...]\n"
      "       aec run --team TEAM --job NAME [options] -- CMD [ARGS...]\n\n"
      "The command runs in its own process group with AEC_KEY, AEC_EXECUTION_ID and\n"
      "AEC_FENCING_TOKEN set; SIGINT, SIGTERM and SIGHUP are forwarded to it.\n"
      "AEC_RUN_ENABLED=false (or VDK_EXECUTION_SKIP_CHECKER_ENABLED=false) runs it without a\n"
      "lease. A retry attempt (--execution-id BASE-xxxxx) waits for an earlier attempt of BASE\n"
      "that still holds KEY instead of skipping.\n\n"
      "Exit codes: the command's own (128+N if signal N killed it); 0 when skipped or already\n"
      "done; 75 busy (--on-busy fail, or a wait timed out; see -E); 79 the lease was lost and\n"
      "the command stopped; 64 bad usage; 65 corrupt store; 69 store unreachable;\n"
      "126/127 the command cannot be executed / was not found.");
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
