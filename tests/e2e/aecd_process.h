// A real aecd (`aec serve`) in a child process, for end-to-end tests: started on 127.0.0.1:port
// over a store URL, waited for until /healthz answers, killed by its pid.
#pragma once

#include <string>
#include <vector>

#include <sys/types.h>

#include "tests/e2e/e2e_support.h"

namespace aec::e2e {

// A port that was free a moment ago (for a server that must come back on the same address).
int free_port();

// One GET over a fresh connection to 127.0.0.1:port; the response body ("" on failure).
std::string http_get(int port, const std::string& target);

class AecdProcess {
 public:
  // Starts `aec serve --listen 127.0.0.1:PORT --store STORE --quiet EXTRA...` with `env` added
  // to its environment, its output appended to `log`. Killed (SIGKILL) when destroyed.
  AecdProcess(std::string store, int port, std::string log, std::vector<std::string> extra = {},
              Env env = {});
  ~AecdProcess();
  AecdProcess(const AecdProcess&) = delete;
  AecdProcess& operator=(const AecdProcess&) = delete;

  // Starts it again (same store, port and flags) and waits until it answers.
  void start();
  void kill9();
  int stop();  // SIGTERM, the graceful path; returns the exit code
  bool running() const { return pid_ > 0; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  // The value of an unlabelled metric, or -1.
  double metric(const std::string& name) const;

 private:
  std::string store_;
  int port_;
  std::string log_;
  std::vector<std::string> extra_;
  Env env_;
  pid_t pid_ = -1;
};

}  // namespace aec::e2e
