// aec release KEY --force --reason TEXT: an operator frees a key's leases, on the record.
#include <memory>

#include <fmt/format.h>

#include <aec/host_info.h>
#include <aec/key.h>

#include "cli/cli_context.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "cli/verbs.h"

namespace aec::cli {

VerbMain setup_release(CLI::App& app, const Invocation&) {
  auto ctx = std::make_shared<Context>(Context{.verb = "release"});
  auto key = std::make_shared<std::string>();
  auto reason = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  app.add_option("KEY", *key, "The key")->required();
  app.add_flag("--force", *force, "Required: confirms you are taking leases from their holders");
  app.add_option("--reason", *reason, "Why, recorded in the history (required)");
  add_store_option(app, *ctx);
  add_json_option(app, *ctx);
  return [ctx, key, reason, force]() {
    if (!*force) {
      return fail(*ctx, invalid_argument("release takes leases from running holders: add --force "
                                         "to confirm (their commands are told on next renewal)"));
    }
    if (reason->empty()) {
      return fail(*ctx, invalid_argument("--reason is required: say why, for the record"));
    }
    if (Status s = validate_key(*key); !s.is_ok()) {
      return fail(*ctx, s);
    }
    auto store = open_context_store_for_reading(*ctx);
    if (!store) {
      return fail(*ctx, store.error());
    }
    auto host = real_host_info();
    Owner by{.host = host->hostname(), .pid = host->pid(), .user = host->user()};
    auto released = (*store)->force_release(*key, *reason, by);
    if (!released) {
      return fail(*ctx, released.error());
    }
    if (ctx->json || !released->released.empty()) {
      print_executions(released->released, ctx->json);
    } else {
      fmt::print("{} had no live leases; nothing released\n", *key);
    }
    return kExitOk;
  };
}

}  // namespace aec::cli
