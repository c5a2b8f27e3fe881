// aec status KEY: holders, since when, token, the line of waiters, last outcome.
#include <memory>

#include <aec/key.h>

#include "cli/cli_context.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "cli/verbs.h"

namespace aec::cli {

VerbMain setup_status(CLI::App& app, const Invocation&) {
  auto ctx = std::make_shared<Context>(Context{.verb = "status"});
  auto key = std::make_shared<std::string>();
  app.add_option("KEY", *key, "The key")->required();
  add_store_option(app, *ctx);
  add_json_option(app, *ctx);
  return [ctx, key]() {
    if (Status s = validate_key(*key); !s.is_ok()) {
      return fail(*ctx, s);
    }
    auto store = open_context_store_for_reading(*ctx);
    if (!store) {
      return fail(*ctx, store.error());
    }
    auto state = (*store)->get(*key);
    if (!state) {
      return fail(*ctx, state.error());
    }
    print_key_state(*state, ctx->json);
    return kExitOk;
  };
}

}  // namespace aec::cli
