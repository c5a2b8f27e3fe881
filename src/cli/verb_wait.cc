// aec wait KEY [--timeout T]: block until the key is free.
#include <memory>
#include <optional>

#include <fmt/format.h>

#include <aec/control.h>

#include "cli/cli_context.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "cli/verbs.h"
#include "core/duration.h"

namespace aec::cli {

VerbMain setup_wait(CLI::App& app, const Invocation&) {
  auto ctx = std::make_shared<Context>(Context{.verb = "wait"});
  auto key = std::make_shared<std::string>();
  auto timeout = std::make_shared<std::string>();
  auto limit = std::make_shared<int>(1);
  app.add_option("KEY", *key, "The key")->required();
  app.add_option("--timeout", *timeout, "Give up after this long (exit 124); default: forever");
  app.add_option("--limit", *limit, "Free means fewer than this many holders")
      ->capture_default_str();
  add_store_option(app, *ctx);
  add_json_option(app, *ctx);
  app.add_flag("-q,--quiet", ctx->quiet, "Print nothing but errors");
  return [ctx, key, timeout, limit]() {
    std::optional<milliseconds> within;
    if (!timeout->empty()) {
      auto d = parse_duration(*timeout);
      if (!d) {
        return fail(*ctx, invalid_argument("bad --timeout: " + d.error().message()));
      }
      within = *d;
    }
    if (*limit < 1) {
      return fail(*ctx, invalid_argument("--limit must be at least 1"));
    }
    auto store = open_context_store_for_reading(*ctx);
    if (!store) {
      return fail(*ctx, store.error());
    }
    Control control(std::shared_ptr<Store>(std::move(*store)));
    std::optional<MonoTime> deadline;
    if (within) {
      deadline = control.clock().monotonic_now() + *within;
    }
    auto state = control.wait_free(*key, *limit, deadline);
    if (!state) {
      return fail(*ctx, state.error());
    }
    if (!ctx->quiet) {
      print_key_state(*state, ctx->json);
    }
    return kExitOk;
  };
}

}  // namespace aec::cli
