// aec cleanup --older-than 20m [--status finished|all|STATUS,...]: purge old history.
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/cli_context.h"
#include "cli/exit_codes.h"
#include "cli/verbs.h"
#include "core/duration.h"

namespace aec::cli {
namespace {

// "finished" and "all" both mean every ended status: a Running execution is never purged.
Result<std::vector<ExecutionStatus>> cleanup_statuses(const std::vector<std::string>& words) {
  std::vector<std::string> named;
  for (const std::string& w : words) {
    if (w != "finished" && w != "all") {
      named.push_back(w);
    }
  }
  if (named.size() != words.size() || words.empty()) {
    return std::vector<ExecutionStatus>{};  // empty: every ended status
  }
  auto parsed = parse_statuses(named);
  if (parsed) {
    for (ExecutionStatus s : *parsed) {
      if (s == ExecutionStatus::Running) {
        return invalid_argument("cleanup never deletes running executions: drop --status running");
      }
    }
  }
  return parsed;
}

}  // namespace

VerbMain setup_cleanup(CLI::App& app, const Invocation&) {
  auto ctx = std::make_shared<Context>(Context{.verb = "cleanup"});
  auto older = std::make_shared<std::string>("20m");
  auto statuses = std::make_shared<std::vector<std::string>>();
  app.add_option("--older-than", *older, "Delete executions that ended longer ago than this")
      ->capture_default_str();
  app.add_option("--status", *statuses,
                 "finished (default) or all: every ended status; or a list such as "
                 "succeeded,skipped")
      ->delimiter(',');
  add_store_option(app, *ctx);
  add_json_option(app, *ctx);
  return [ctx, older, statuses]() {
    auto age = parse_duration(*older);
    if (!age) {
      return fail(*ctx, invalid_argument("bad --older-than: " + age.error().message()));
    }
    auto which = cleanup_statuses(*statuses);
    if (!which) {
      return fail(*ctx, which.error());
    }
    auto store = open_context_store_for_reading(*ctx);
    if (!store) {
      return fail(*ctx, store.error());
    }
    auto purged = (*store)->purge({.older_than = *age, .statuses = *which});
    if (!purged) {
      return fail(*ctx, purged.error());
    }
    if (ctx->json) {
      nlohmann::json j = {{"executions_deleted", purged->executions_deleted},
                          {"leases_expired", purged->leases_expired}};
      fmt::print("{}\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    } else {
      fmt::print(
          "deleted {} execution(s) that ended more than {} ago; reaped {} expired "
          "lease(s)\n",
          purged->executions_deleted, format_duration(*age), purged->leases_expired);
    }
    return kExitOk;
  };
}

}  // namespace aec::cli
