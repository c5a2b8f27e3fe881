// aec list [--prefix P] [--status S]...: executions, newest first.
#include <memory>

#include "cli/cli_context.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "cli/verbs.h"

namespace aec::cli {

VerbMain setup_list(CLI::App& app, const Invocation&) {
  auto ctx = std::make_shared<Context>(Context{.verb = "list"});
  auto filter = std::make_shared<ListFilter>();
  auto statuses = std::make_shared<std::vector<std::string>>();
  app.add_option("--prefix", filter->prefix, "Only keys that start with this");
  app.add_option("--status", *statuses, "Only executions with this status (repeatable)")
      ->delimiter(',');
  app.add_option("--limit", filter->limit, "At most this many")->capture_default_str();
  add_store_option(app, *ctx);
  add_json_option(app, *ctx);
  return [ctx, filter, statuses]() {
    auto parsed = parse_statuses(*statuses);
    if (!parsed) {
      return fail(*ctx, parsed.error());
    }
    filter->statuses = *parsed;
    return print_list(*ctx, *filter);
  };
}

int print_list(const Context& ctx, const ListFilter& filter) {
  auto store = open_context_store_for_reading(ctx);
  if (!store) {
    return fail(ctx, store.error());
  }
  auto list = (*store)->list(filter);
  if (!list) {
    return fail(ctx, list.error());
  }
  print_executions(*list, ctx.json);
  return kExitOk;
}

}  // namespace aec::cli
