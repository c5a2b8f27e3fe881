// aec admin migrate [--store URL]: create or upgrade a store's schema, then say so.
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <aec/version.h>

#include "cli/cli_context.h"
#include "cli/exit_codes.h"
#include "cli/verbs.h"

namespace aec::cli {

VerbMain setup_admin(CLI::App& app, const Invocation&) {
  auto ctx = std::make_shared<Context>(Context{.verb = "admin migrate"});
  app.require_subcommand(1);
  CLI::App* migrate = app.add_subcommand(
      "migrate",
      "Create the store's tables (and, on postgres, its functions) or upgrade them to this aec's "
      "schema. Safe to run again and from several hosts at once; every store also does this at "
      "first use. Run it ahead of a rollout, with a role allowed to create tables, so the jobs "
      "themselves need none.");
  add_store_option(*migrate, *ctx);
  add_json_option(*migrate, *ctx);
  return [ctx]() {
    std::string url = ctx->store_url.empty() ? default_store_url() : ctx->store_url;
    if (url.starts_with("http://") || url.starts_with("https://")) {
      return fail(*ctx, invalid_argument("an aecd migrates its own store when it starts: run "
                                         "'aec admin migrate' against aecd's --store instead"));
    }
    auto store = open_store(url);  // opening with create applies the schema
    if (!store) {
      return fail(*ctx, store.error());
    }
    if (ctx->json) {
      nlohmann::json j = {{"store", (*store)->url()}, {"schema", "current"}};
      fmt::print("{}\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    } else {
      fmt::print("{}: schema current for aec {}\n", (*store)->url(), version());
    }
    return kExitOk;
  };
}

}  // namespace aec::cli
