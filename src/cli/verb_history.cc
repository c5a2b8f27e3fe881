// aec history KEY: a key's executions, newest first.
#include <memory>

#include <aec/key.h>

#include "cli/cli_context.h"
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
    return print_list(*ctx, *filter);
  };
}

}  // namespace aec::cli
