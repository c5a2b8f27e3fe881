#include "cli/verbs.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include <fmt/format.h>

#include <aec/open_store.h>
#include <aec/version.h>

#include "cli/exit_codes.h"

namespace aec::cli {
namespace {

// Levenshtein distance, for "did you mean".
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

int unknown_verb(std::string_view word) {
  const Verb* best = nullptr;
  std::size_t best_distance = 3;  // suggest only close matches
  for (const Verb& v : verbs()) {
    std::size_t d = edit_distance(word, v.name);
    if (d < best_distance) {
      best = &v;
      best_distance = d;
    }
  }
  std::string hint = best != nullptr ? fmt::format("; did you mean '{}'?", best->name) : "";
  fmt::print(stderr, "aec: error: unknown verb '{}'{} (see aec --help)\n", word, hint);
  return kExitUsage;
}

std::string version_text() {
  return fmt::format("aec {} (stores: {})", version(), fmt::join(built_in_stores(), ", "));
}

}  // namespace

const std::vector<Verb>& verbs() {
  static const std::vector<Verb> table = {
      {"run", "Run a command under a lease on KEY: at most LIMIT at a time", setup_run},
      {"explain", "Say what 'aec run' would do now and why, changing nothing", setup_explain},
      {"status", "Show a key's holders, tokens and last outcome", setup_status},
      {"list", "List executions, newest first", setup_list},
      {"history", "Show a key's executions, newest first", setup_history},
      {"wait", "Wait until a key is free", setup_wait},
      {"release", "Force-release a key's leases (an operator action, recorded)", setup_release},
      {"cleanup", "Delete old history and reap expired leases", setup_cleanup},
      {"admin", "Store administration: 'aec admin migrate' creates or upgrades the schema",
       setup_admin},
      // Parsed by aecd's own configuration (run_main hands it over before CLI11 sees it).
      {"serve", "Run aecd, the control service, in this process (aec serve --help)", nullptr},
  };
  return table;
}

int run_main(int argc, char** argv) {
  Invocation invocation;
  std::vector<std::string> args;  // without argv[0], up to the first "--"
  for (int i = 1; i < argc; ++i) {
    if (!invocation.has_separator && std::string_view(argv[i]) == "--") {
      invocation.has_separator = true;
    } else if (invocation.has_separator) {
      invocation.command.emplace_back(argv[i]);
    } else {
      args.emplace_back(argv[i]);
    }
  }
  if (args.empty() && !invocation.has_separator) {
    fmt::print(stderr,
               "aec: error: no verb given: try 'aec run --key KEY -- CMD', or aec --help\n");
    return kExitUsage;
  }
  if (!args.empty() && args[0] == "serve") {
    return serve_main("aec serve", argc - 1, argv + 1);
  }
  if (!args.empty() && !args[0].starts_with("-")) {
    auto known = std::find_if(verbs().begin(), verbs().end(),
                              [&](const Verb& v) { return args[0] == v.name; });
    if (known == verbs().end()) {
      return unknown_verb(args[0]);
    }
  }
  CLI::App app(
      "aec runs work at most one at a time (or at most once) per key, across processes "
      "and machines.",
      "aec");
  app.set_version_flag("--version", version_text());
  app.require_subcommand(1);
  app.footer("Run 'aec VERB --help' for a verb's options. Exit codes: see README.md.");
  // Only the verb named gets its options (an unknown word was answered above); the others are
  // listed by name for --help. Building every verb's options cost `aec run -- true` ~0.1 ms of
  // its ~3. With an option first (aec --help, aec --version) every verb is set up.
  const bool named = !args.empty() && !args[0].starts_with("-");
  std::map<const CLI::App*, VerbMain> mains;
  for (const Verb& v : verbs()) {
    CLI::App* sub = app.add_subcommand(v.name, v.summary);
    if (v.setup && (!named || args[0] == v.name)) {
      mains[sub] = v.setup(*sub, invocation);
    }
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed vector
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string verb = app.get_subcommands().empty() ? "" : app.get_subcommands()[0]->get_name();
    std::string where = verb.empty() ? "aec" : "aec " + verb;
    fmt::print(stderr, "{}: error: {} (see {} --help)\n", where, e.what(), where);
    return kExitUsage;
  }
  return mains.at(app.get_subcommands().at(0))();
}

}  // namespace aec::cli
