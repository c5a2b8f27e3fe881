// aec history KEY: a key's executions, newest first.
#include <memory>

#include <aec/key.h>

#include "cli/cli_context.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "cli/verbs.h"

namespace aec::cli {

VerbMain setup_history(CLI::App& app, const Invocation&) {
  auto ctx = std::make_shared<Context>(Context{.verb = "history"});
  auto filter = std::make_shared<ListFilter>();
  app.add_option("KEY", filter->key, "The key")->required();
  app.add_option("--limit", filter->limit, "At most this many")->capture_default_str();
  add_store_option(app, *ctx);
  add_json_option(app, *ctx);
  return [ctx, filter]() {
    if (Status s = validate_key(filter->key); !s.is_ok()) {
      return fail(*ctx, s);
    }
    auto store = open_context_store_for_reading(*ctx);
    if (!store) {
      return fail(*ctx, store.error());
    }
    auto list = (*store)->list(*filter);
    if (!list) {
      return fail(*ctx, list.error());
    }
    print_executions(*list, ctx->json);
    return kExitOk;
  };
}

}  // namespace aec::cli
