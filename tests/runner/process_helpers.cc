#include "tests/runner/process_helpers.h"

#include <fstream>
#include <sstream>
#include <thread>

#include <signal.h>
#include <unistd.h>

namespace aec::testing {

namespace {

// Polls `done` every 5 ms until it holds or `timeout` passes; returns its last value.
template <typename Predicate>
bool poll_until(Predicate done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return done();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace

runner::SpawnSpec sh(const std::string& script) {
  return {{"/bin/sh", "-c", script}, {}};
}

bool wait_for_file(const std::string& path, std::chrono::milliseconds timeout) {
  return poll_until([&] { return access(path.c_str(), F_OK) == 0; }, timeout);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  if (!text.empty() && text.back() == '\n') {
    text.pop_back();
  }
  return text;
}

bool is_alive(pid_t pid) {
  if (kill(pid, 0) != 0) {
    return false;
  }
  // /proc/PID/stat: "pid (comm) S ...": the state follows the last ')'.
  std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) {
    return false;  // gone between kill() and the read
  }
  return stat[paren + 2] != 'Z';
}

bool wait_until_dead(pid_t pid, std::chrono::milliseconds timeout) {
  return poll_until([&] { return !is_alive(pid); }, timeout);
}

}  // namespace aec::testing
