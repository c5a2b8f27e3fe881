// `aec serve` and the aecd binary: run the control service until SIGTERM or SIGINT.
#include <csignal>
#include <cstdio>

#include <fmt/format.h>

#include <aec/open_store.h>

#include "cli/exit_codes.h"
#include "cli/verbs.h"
#include "server/server.h"
#include "server/server_config.h"

namespace aec::cli {
namespace {

int fail(std::string_view program, const Status& status) {
  fmt::print(stderr, "{}: error: {}\n", program, status.message());
  return exit_code_for(status.code());
}

// Blocks the stop signals in every thread (the server's threads inherit the mask) so that one
// sigwait() here receives them.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

}  // namespace

int serve_main(std::string_view program, int argc, char** argv) {
  auto config = server::load_server_config(argc, argv, server::current_environment());
  if (!config) {
    return fail(program, config.error());
  }
  if (config->action != server::ConfigAction::Serve) {
    std::fputs(config->text.c_str(), stdout);
    return kExitOk;
  }
  for (const std::string& warning : config->warnings) {
    fmt::print(stderr, "{}: warning: {}\n", program, warning);
  }
  // Its clients run on other hosts: a grant must survive a power cut before it is answered.
  auto store = open_store(config->store_url, {.durable = true});
  if (!store) {
    return fail(program, store.error());
  }
  sigset_t stop_signals = block_stop_signals();
  server::ServerOptions options = config->options;
  options.store = std::shared_ptr<Store>(std::move(*store));
  auto server = server::Server::start(std::move(options));
  if (!server) {
    return fail(program, server.error());
  }
  fmt::print(stderr, "{}: serving {} at {}\n", program, config->store_url, (*server)->url());
  std::fflush(stderr);
  int signal = 0;
  sigwait(&stop_signals, &signal);
  fmt::print(stderr, "{}: {} received: answering requests in flight, then stopping\n", program,
             signal == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->stop();
  fmt::print(stderr, "{}: stopped\n", program);
  return kExitOk;
}

}  // namespace aec::cli
