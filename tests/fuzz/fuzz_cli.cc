// F5: the aec command line, parsed and checked without running anything, and the
// --termination-message writer.
//
// Input: the arguments after argv[0], separated by NUL bytes (as /proc/PID/cmdline). Like
// run_main (cli/verbs.cc): the words after the first "--" are the command; "serve" goes to
// aecd's configuration (load_server_config); any other verb is parsed by CLI11 with every verb's
// real options (verbs() and their setup functions), whose VerbMain is never called. For `run`
// and `explain` the flags are then checked by plan_run, and a termination message with the
// fields `aec run` fills in (the key, --execution-id, a reason naming the command) is written by
// write_termination_message into a temporary directory, under a name made from
// --termination-message.
//
// Properties: no crash and no exception escapes where run_main would not catch it; a plan that
// plan_run accepts keeps its promises (key and execution id clean text, ttl 100ms to 3650d,
// limit >= 1, exit code 0-255, kill grace <= ttl/4); the written file holds exactly the message
// and a newline.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <aec/key.h>

#include "cli/cli_context.h"
#include "cli/run_flags.h"
#include "cli/verbs.h"
#include "core/duration.h"
#include "core/text.h"
#include "runner/termination_message.h"
#include "server/server_config.h"
#include "tests/fuzz/fuzz_check.h"

namespace aec::fuzz {
namespace {

// The arguments, or none when they name a device or a kernel file (options such as --config or
// --tokens read the files they name; a fuzzer must not read /dev/stdin).
std::vector<std::string> split_args(std::string_view text) {
  std::vector<std::string> args;
  while (!text.empty() && args.size() < 64) {
    std::size_t nul = text.find('\0');
    args.emplace_back(text.substr(0, nul));
    text = nul == std::string_view::npos ? std::string_view() : text.substr(nul + 1);
  }
  for (const std::string& a : args) {
    if (a.find("/dev") != std::string::npos || a.find("/proc") != std::string::npos ||
        a.find("/sys") != std::string::npos) {
      return {};
    }
  }
  return args;
}

// A directory removed at exit.
struct TempDir {
  std::string path;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

const std::string& temp_dir() {
  static const TempDir dir{[] {
    // tmpfs when there is one: the writer fsyncs every message.
    std::filesystem::path base = std::filesystem::is_directory("/dev/shm")
                                     ? std::filesystem::path("/dev/shm")
                                     : std::filesystem::temp_directory_path();
    std::string tmpl = (base / "aec-fuzz-cli-XXXXXX").string();
    AEC_FUZZ_CHECK(mkdtemp(tmpl.data()) != nullptr, "mkdtemp");
    return tmpl;
  }()};
  return dir.path;
}

// `aec serve ARGS`: aecd's configuration, with no environment and no default config file.
void serve(const std::vector<std::string>& args) {
  std::vector<const char*> argv = {"aec serve"};
  for (std::size_t i = 1; i < args.size(); ++i) {
    argv.push_back(args[i].c_str());
  }
  (void)server::load_server_config(static_cast<int>(argv.size()), argv.data(), {},
                                   "/nonexistent/aecd.conf");
}

// Every verb's options, parsed as run_main parses them; nothing runs.
void parse_verbs(const std::vector<std::string>& args, const cli::Invocation& invocation) {
  CLI::App app("aec", "aec");
  app.set_version_flag("--version", "aec fuzz");
  app.require_subcommand(1);
  // Kept, not called: a verb's options write into state its VerbMain owns (as in run_main).
  std::vector<cli::VerbMain> mains;
  for (const cli::Verb& v : cli::verbs()) {
    CLI::App* sub = app.add_subcommand(v.name, v.summary);
    if (v.setup) {
      mains.push_back(v.setup(*sub, invocation));
    }
  }
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError&) {  // run_main's catches are all ParseErrors
  }
}

// The message `aec run` writes, with the fields it takes from its flags and its command.
void write_message(const cli::RunPlan& plan, const cli::Invocation& invocation) {
  std::string name = plan.termination_message.substr(0, 300);
  for (char& c : name) {
    c = c == '/' ? '_' : c;
  }
  std::string path = temp_dir() + "/" + name;
  std::string word = invocation.command.empty() ? "skipped" : invocation.command[0];
  std::optional<int> exit_code;
  if (invocation.command.size() > 1) {
    exit_code = static_cast<int>(invocation.command[1].size());
  }
  nlohmann::json j = {
      {"status", "failed"},
      {"key", plan.options.key},
      {"execution_id", plan.options.execution_id},
      {"token", 1},
      {"holder", nullptr},
      {"reason", fmt::format("command not found: {}", fmt::join(invocation.command, " "))},
      {"started_at", format_time(SysTime{})},
      {"ended_at", format_time(SysTime{})},
      {"exit_code", exit_code ? nlohmann::json(*exit_code) : nlohmann::json(nullptr)},
      {"vdk_status", runner::vdk_status("failed", exit_code)},
  };
  std::string_view vdk = runner::vdk_status(word, exit_code);
  AEC_FUZZ_CHECK(
      vdk == "Success" || vdk == "Skipped" || vdk == "User error" || vdk == "Platform error",
      std::string(vdk));
  // As cli/run_job.cc's write_report() serializes it: a command's name need not be UTF-8.
  std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  Status s = runner::write_termination_message(path, text);
  if (s.is_ok()) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream got;
    got << in.rdbuf();
    AEC_FUZZ_CHECK(got.str() == text + "\n", path);
    ::unlink(path.c_str());
  }
}

void run_flags(const std::vector<std::string>& args, const cli::Invocation& invocation) {
  CLI::App app("run", "aec run");
  cli::RunFlags flags;
  cli::Context ctx;
  cli::add_run_flags(app, flags);
  cli::add_store_option(app, ctx);
  std::vector<std::string> reversed(args.rbegin(), args.rend() - 1);  // without the verb
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError&) {
    return;
  }
  Result<cli::RunPlan> plan = cli::plan_run(flags);
  if (!plan) {
    return;
  }
  AEC_FUZZ_CHECK(validate_key(plan->options.key).is_ok(), plan->options.key);
  AEC_FUZZ_CHECK(check_clean_text("id", plan->options.execution_id).is_ok(),
                 plan->options.execution_id);
  AEC_FUZZ_CHECK(plan->options.ttl <= kMaxDuration, flags.ttl);
  AEC_FUZZ_CHECK(plan->options.ttl >= milliseconds(100), flags.ttl);
  AEC_FUZZ_CHECK(plan->options.limit >= 1, std::to_string(plan->options.limit));
  AEC_FUZZ_CHECK(plan->busy_exit_code >= 0 && plan->busy_exit_code <= 255, "busy exit code");
  AEC_FUZZ_CHECK(plan->kill_grace <= plan->options.ttl / 4, flags.kill_grace);
  if (!plan->termination_message.empty()) {
    write_message(*plan, invocation);
  }
}

}  // namespace
}  // namespace aec::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace aec::fuzz;
  std::vector<std::string> words = split_args(as_text(data, size));
  aec::cli::Invocation invocation;
  std::vector<std::string> args;
  for (std::string& w : words) {
    if (!invocation.has_separator && w == "--") {
      invocation.has_separator = true;
    } else if (invocation.has_separator) {
      invocation.command.push_back(std::move(w));
    } else {
      args.push_back(std::move(w));
    }
  }
  if (args.empty()) {
    return 0;
  }
  if (args[0] == "serve") {
    serve(args);
    return 0;
  }
  parse_verbs(args, invocation);
  if (args[0] == "run" || args[0] == "explain") {
    run_flags(args, invocation);
  }
  return 0;
}
