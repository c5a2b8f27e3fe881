// The child workload of the fault tests: what `aec run` supervises. It connects to the fenced
// sink (fenced_sink.h) named by $AEC_SINK, says hello with $AEC_KEY and $AEC_FENCING_TOKEN (set
// by `aec run`), then writes to it every 20 ms, fenced by its token, until it has run for
// --hold MS (0, the default: until it is killed). A rejected write does not stop it: the resource
// fenced it off, and whether its runner stops it in time is what the tests measure.
//
//   AEC_SINK=127.0.0.1:PORT FAULT_CLIENT=N aec run --key K -- fault_child [--hold MS]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

int fail(const char* what) {
  std::fprintf(stderr, "fault_child: %s\n", what);
  return 2;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

// Sends `line` and reads one reply line; false when the sink is gone.
bool exchange(int fd, const std::string& line) {
  if (send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    return false;
  }
  char c = 0;
  while (read(fd, &c, 1) == 1) {
    if (c == '\n') {
      return true;
    }
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  long hold_ms = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--hold") == 0 && i + 1 < argc) {
      hold_ms = std::strtol(argv[++i], nullptr, 10);
    } else {
      return fail("usage: fault_child [--hold MS] (with AEC_SINK, AEC_KEY, AEC_FENCING_TOKEN)");
    }
  }
  std::string sink = env("AEC_SINK");
  std::size_t colon = sink.rfind(':');
  if (colon == std::string::npos || env("AEC_KEY").empty() || env("AEC_FENCING_TOKEN").empty()) {
    return fail("AEC_SINK=HOST:PORT, AEC_KEY and AEC_FENCING_TOKEN must be set");
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(std::atoi(sink.c_str() + colon + 1)));
  if (inet_pton(AF_INET, sink.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    return fail("AEC_SINK must be IPV4:PORT");
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return fail("cannot connect to the sink");
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::string client = env("FAULT_CLIENT").empty() ? "0" : env("FAULT_CLIENT");
  if (!exchange(fd, "hello " + env("AEC_KEY") + " " + env("AEC_FENCING_TOKEN") + " " +
                        std::to_string(getpid()) + " " + client + "\n")) {
    return fail("the sink closed the connection");
  }
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(hold_ms);
  for (long seq = 1;; ++seq) {
    if (!exchange(fd, "write " + std::to_string(seq) + "\n")) {
      return fail("the sink closed the connection");
    }
    if (hold_ms > 0 && std::chrono::steady_clock::now() >= until) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  close(fd);
  return 0;
}
