// aecd over the embedded sqlite store, as a fleet would use it: the server runs in a process of
// its own (forked by prepare(), before any thread exists), and every client process talks to it
// through the http:// store and aec::Control — OnBusy::Wait parks in the server's line.
#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include <aec/open_store.h>

#include "contender.h"
#include "server/server.h"

namespace aec::bench {
namespace {

using namespace std::chrono_literals;

// The server process: serves dir/aec.db on a free loopback port, writes the port to dir/port,
// and stops on SIGTERM.
[[noreturn]] void serve(const std::string& dir) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto store = open_store("sqlite://" + dir + "/aec.db", {.durable = true});  // as aecd opens it
  if (!store) {
    std::fprintf(stderr, "aecd-sqlite: %s\n", store.error().to_string().c_str());
    _exit(1);
  }
  auto server = server::Server::start({.store = std::shared_ptr<Store>(std::move(*store)),
                                       .listen = "127.0.0.1:0",
                                       .store_threads = 16,
                                       .log_requests = false});
  if (!server) {
    std::fprintf(stderr, "aecd-sqlite: %s\n", server.error().to_string().c_str());
    _exit(1);
  }
  std::ofstream(dir + "/port.tmp") << (*server)->port() << "\n";
  std::rename((dir + "/port.tmp").c_str(), (dir + "/port").c_str());
  int signal = 0;
  sigwait(&stop, &signal);
  (*server)->stop();
  _exit(0);
}

class AecdSqliteContender final : public Contender {
 public:
  ~AecdSqliteContender() override {
    if (server_ > 0) {
      kill(server_, SIGTERM);
      waitpid(server_, nullptr, 0);
    }
  }

  std::string_view name() const override { return "aecd-sqlite"; }

  Status prepare(const std::string& dir) override {
    if (server_ > 0) {  // a previous run's server: each run gets a fresh one
      kill(server_, SIGTERM);
      waitpid(server_, nullptr, 0);
    }
    server_ = fork();
    if (server_ < 0) {
      return internal_error("fork failed");
    }
    if (server_ == 0) {
      serve(dir);
    }
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!std::ifstream(dir + "/port")) {
      if (std::chrono::steady_clock::now() > deadline || waitpid(server_, nullptr, WNOHANG) != 0) {
        return unavailable("aecd-sqlite: the server process did not start");
      }
      std::this_thread::sleep_for(1ms);  // polling for the server's port file
    }
    return Status::ok();
  }

  Result<std::unique_ptr<Session>> open(const std::string& dir, int /*client*/) override {
    int port = 0;
    std::ifstream(dir + "/port") >> port;
    auto store = open_store("http://127.0.0.1:" + std::to_string(port));
    if (!store) {
      return store.error();
    }
    return make_control_session(std::shared_ptr<Store>(std::move(*store)));
  }

 private:
  pid_t server_ = -1;
};

}  // namespace

std::unique_ptr<Contender> make_aecd_sqlite_contender() {
  return std::make_unique<AecdSqliteContender>();
}

}  // namespace aec::bench
