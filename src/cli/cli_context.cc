#include "cli/cli_context.h"

#include <cstdio>

#include <fmt/format.h>

#include "cli/exit_codes.h"

namespace aec::cli {

void add_store_option(CLI::App& app, Context& ctx) {
  app.add_option("--store", ctx.store_url,
                 "Store URL: sqlite:///PATH, postgres://USER@HOST/DB, http://HOST:PORT (an aecd) "
                 "or memory: (default: " +
                     default_store_url() + ")")
      ->envname("AEC_STORE");
}

void add_json_option(CLI::App& app, Context& ctx) {
  app.add_flag("--json", ctx.json, "Print JSON for scripts instead of a table");
}

Result<std::unique_ptr<Store>> open_context_store(const Context& ctx) {
  return open_store(ctx.store_url.empty() ? default_store_url() : ctx.store_url);
}

Result<std::unique_ptr<Store>> open_context_store_for_reading(const Context& ctx) {
  StoreOptions options;
  options.create = false;
  auto store = open_store(ctx.store_url.empty() ? default_store_url() : ctx.store_url, options);
  if (!store && store.error().code() == Code::NotFound) {
    return open_store("memory:");
  }
  return store;
}

int fail(const Context& ctx, const Status& status) {
  fmt::print(stderr, "aec {}: error: {}\n", ctx.verb, status.message());
  return exit_code_for(status.code());
}

void note(const Context& ctx, std::string_view message) {
  if (!ctx.quiet) {
    fmt::print(stderr, "aec {}: {}\n", ctx.verb, message);
  }
}

Result<Labels> parse_labels(const std::vector<std::string>& pairs) {
  Labels labels;
  for (const std::string& pair : pairs) {
    std::size_t eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) {
      return invalid_argument(fmt::format("bad label '{}': write KEY=VALUE", pair));
    }
    labels[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  return labels;
}

Result<std::vector<ExecutionStatus>> parse_statuses(const std::vector<std::string>& words) {
  std::vector<ExecutionStatus> out;
  for (const std::string& w : words) {
    auto s = parse_execution_status(w);
    if (!s) {
      return invalid_argument(fmt::format(
          "bad status '{}': use running, succeeded, failed, lost, cancelled or skipped", w));
    }
    out.push_back(*s);
  }
  return out;
}

}  // namespace aec::cli
