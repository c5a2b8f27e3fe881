// What every verb shares: the --store option, messages on stderr, and opening the store.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include <aec/open_store.h>
#include <aec/status.h>
#include <aec/store.h>

namespace aec::cli {

struct Context {
  std::string store_url;  // from --store, AEC_STORE, or the default
  bool quiet = false;
  bool verbose = false;
  bool json = false;
  std::string verb;  // for messages: "aec run: ..."
};

// Adds --store (env AEC_STORE) to a verb.
void add_store_option(CLI::App& app, Context& ctx);
// Adds --json to a verb.
void add_json_option(CLI::App& app, Context& ctx);

// Opens ctx.store_url (or the default store when empty).
Result<std::unique_ptr<Store>> open_context_store(const Context& ctx);
// For verbs that only read: a store that does not exist yet is not created; it reads as an
// empty one (an empty memory store), so `aec status` or `aec explain` change nothing.
Result<std::unique_ptr<Store>> open_context_store_for_reading(const Context& ctx);

// Prints "aec VERB: error: MESSAGE" on stderr and returns the exit code for the status.
int fail(const Context& ctx, const Status& status);
// Prints "aec VERB: MESSAGE" on stderr unless quiet.
void note(const Context& ctx, std::string_view message);

// Parses "k=v" labels; InvalidArgument naming the bad one.
Result<Labels> parse_labels(const std::vector<std::string>& pairs);

// Opens the store for reading and prints the executions `filter` selects (list, history).
// Returns the exit code.
int print_list(const Context& ctx, const ListFilter& filter);

// Parses execution status words; InvalidArgument naming the bad one and the valid ones.
Result<std::vector<ExecutionStatus>> parse_statuses(const std::vector<std::string>& words);

}  // namespace aec::cli
