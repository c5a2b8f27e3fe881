// The aec command's verbs, in one table, and the dispatcher over it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace aec::cli {

// The words after the first "--" on the command line: the command `aec run` runs.
struct Invocation {
  bool has_separator = false;
  std::vector<std::string> command;
};

// A verb registers its options on its subcommand and returns the function that runs it once the
// command line is parsed; that function returns the process's exit code.
using VerbMain = std::function<int()>;
using VerbSetup = std::function<VerbMain(CLI::App& app, const Invocation& invocation)>;

struct Verb {
  const char* name;
  const char* summary;
  VerbSetup setup;
};

VerbMain setup_run(CLI::App& app, const Invocation& invocation);
VerbMain setup_explain(CLI::App& app, const Invocation& invocation);
VerbMain setup_status(CLI::App& app, const Invocation& invocation);
VerbMain setup_list(CLI::App& app, const Invocation& invocation);
VerbMain setup_history(CLI::App& app, const Invocation& invocation);
VerbMain setup_wait(CLI::App& app, const Invocation& invocation);
VerbMain setup_release(CLI::App& app, const Invocation& invocation);
VerbMain setup_cleanup(CLI::App& app, const Invocation& invocation);
VerbMain setup_admin(CLI::App& app, const Invocation& invocation);

// `aec serve ARGS` and the aecd binary: argv[0] is the program or verb name.
int serve_main(std::string_view program, int argc, char** argv);
// Every verb, in the order `aec --help` lists them.
const std::vector<Verb>& verbs();

// Parses argv and runs the verb it names. Never throws; returns the exit code.
int run_main(int argc, char** argv);

}  // namespace aec::cli
