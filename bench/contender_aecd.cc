// aecd as a fleet would use it: the server runs in a process of its own (forked by prepare(),
// before any thread exists), and every client process talks to it through the http:// store and
// aec::Control — OnBusy::Wait parks in the server's line.
//   aecd-sqlite  over the embedded sqlite store, opened as aecd opens it (durable: every grant
//                and release flushed before it is answered, commits grouped);
//   aecd-memory  over the memory store: nothing reaches a disk; a restart forgets every lease.
#include <csignal>

#include <aec/open_store.h>

#include "contender.h"
#include "server/server.h"

namespace aec::bench {
namespace {

// The server process: serves `store_url` on a free loopback port, publishes the port in `dir`,
// and stops on SIGTERM.
[[noreturn]] void serve(const std::string& dir, const std::string& store_url, const char* name) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto store = open_store(store_url, {.durable = true});  // as aecd opens it
  if (!store) {
    std::fprintf(stderr, "%s: %s\n", name, store.error().to_string().c_str());
    _exit(1);
  }
  auto server = server::Server::start({.store = std::shared_ptr<Store>(std::move(*store)),
                                       .listen = "127.0.0.1:0",
                                       .log_requests = false});
  if (!server) {
    std::fprintf(stderr, "%s: %s\n", name, server.error().to_string().c_str());
    _exit(1);
  }
  publish_port(dir, (*server)->port());
  int signal = 0;
  sigwait(&stop, &signal);
  (*server)->stop();
  _exit(0);
}

class AecdContender final : public Contender {
 public:
  explicit AecdContender(bool memory) : memory_(memory) {}

  std::string_view name() const override { return memory_ ? "aecd-memory" : "aecd-sqlite"; }
  std::string_view guarantees() const override {
    return memory_ ? "many hosts over HTTP; nothing on disk: an aecd restart forgets every lease; "
                     "expiry, fencing tokens, history, FIFO waits parked in the server"
                   : "many hosts over HTTP; each grant and release flushed (fsync) before it is "
                     "answered, commits grouped; expiry, fencing tokens, history, FIFO waits "
                     "parked in the server";
  }

  Status prepare(const std::string& dir) override {
    const std::string url = memory_ ? "memory:" : "sqlite://" + dir + "/aec.db";
    const char* what = memory_ ? "aecd-memory" : "aecd-sqlite";
    return server_.start(
        dir, [&](const std::string& d) { serve(d, url, what); }, what);
  }

  std::optional<std::int64_t> server_rss() const override { return server_.rss(); }

  Result<std::unique_ptr<Session>> open(const std::string& dir, int /*client*/) override {
    auto store = open_store("http://127.0.0.1:" + std::to_string(published_port(dir)));
    if (!store) {
      return store.error();
    }
    return make_control_session(std::shared_ptr<Store>(std::move(*store)));
  }

 private:
  bool memory_;
  ServerProcess server_;
};

}  // namespace

std::unique_ptr<Contender> make_aecd_sqlite_contender() {
  return std::make_unique<AecdContender>(false);
}

std::unique_ptr<Contender> make_aecd_memory_contender() {
  return std::make_unique<AecdContender>(true);
}

}  // namespace aec::bench
