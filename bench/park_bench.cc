// aec-park-bench: what parked waiters cost aecd, and how fast a release reaches the first of
// them. Serves a durable sqlite store from a forked aecd, holds one key, then opens N idle
// connections and parks an acquire on each (wait_ms), reading the server's resident memory
// (VmRSS) before, with the idle connections, and with every waiter parked; then releases the key
// and times the handover to the first in line.
//
//   aec-park-bench [--waiters N] [--dir DIR]
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <aec/open_store.h>

#include "server/server.h"

namespace aec::bench {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "aec-park-bench: %s\n", what.c_str());
  std::exit(1);
}

// The server process: a durable sqlite store behind aecd, port written to dir/port.
[[noreturn]] void serve(const std::string& dir, std::size_t max_connections) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto store = open_store("sqlite://" + dir + "/aec.db", {.durable = true});
  if (!store) {
    die(store.error().to_string());
  }
  auto server = server::Server::start({.store = std::shared_ptr<Store>(std::move(*store)),
                                       .listen = "127.0.0.1:0",
                                       .max_connections = max_connections,
                                       .log_requests = false});
  if (!server) {
    die(server.error().to_string());
  }
  std::ofstream(dir + "/port.tmp") << (*server)->port() << "\n";
  std::rename((dir + "/port.tmp").c_str(), (dir + "/port").c_str());
  int signal = 0;
  sigwait(&stop, &signal);
  (*server)->stop();
  _exit(0);
}

int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    die(fmt::format("cannot connect to aecd: {} (raise ulimit -n?)", std::strerror(errno)));
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

std::string request(const std::string& method, const std::string& path, const std::string& body) {
  return fmt::format(
      "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Content-Length: {}\r\n\r\n{}",
      method, path, body.size(), body);
}

void send_all(int fd, const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      die(fmt::format("send: {}", std::strerror(errno)));
    }
    sent += static_cast<std::size_t>(n);
  }
}

// Reads one whole answer (head and Content-Length body); returns its body.
std::string read_answer(int fd) {
  std::string in;
  char buf[4096];
  for (;;) {
    std::size_t head_end = in.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      std::size_t at = in.find("Content-Length: ");
      std::size_t length = at < head_end ? std::stoul(in.substr(at + 16)) : 0;
      if (in.size() >= head_end + 4 + length) {
        return in.substr(head_end + 4, length);
      }
    }
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      die("aecd closed a connection before answering");
    }
    in.append(buf, static_cast<std::size_t>(n));
  }
}

std::string call(int port, const std::string& method, const std::string& path,
                 const std::string& body = "") {
  int fd = connect_to(port);
  send_all(fd, request(method, path, body));
  std::string answer = read_answer(fd);
  close(fd);
  return answer;
}

// The value of an unlabelled gauge in aecd's /metrics.
long metric(int port, const std::string& name) {
  std::string text = call(port, "GET", "/metrics");
  std::size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stol(text.substr(at + name.size() + 2));
}

long rss_kib(pid_t pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::stol(line.substr(6));
    }
  }
  die("cannot read the server's VmRSS");
}

std::int64_t token_of(const std::string& body) {
  std::size_t at = body.find("\"token\":");
  if (at == std::string::npos) {
    die("not granted: " + body);
  }
  return std::stoll(body.substr(at + 8));
}

int run(int waiters, const std::string& dir, bool remove_dir) {
  pid_t server = fork();
  if (server == 0) {
    serve(dir, static_cast<std::size_t>(waiters) + 64);
  }
  auto deadline = Clock::now() + 10s;
  while (!std::ifstream(dir + "/port")) {
    if (Clock::now() > deadline || waitpid(server, nullptr, WNOHANG) != 0) {
      die("the server process did not start");
    }
    std::this_thread::sleep_for(1ms);  // polling for the server's port file
  }
  int port = 0;
  std::ifstream(dir + "/port") >> port;

  std::int64_t token =
      token_of(call(port, "POST", "/v1/leases",
                    R"({"key": "park/hot", "execution_id": "holder", "ttl_ms": 600000})"));
  long base = rss_kib(server);

  std::vector<int> fds;
  fds.reserve(static_cast<std::size_t>(waiters));
  for (int i = 0; i < waiters; ++i) {
    fds.push_back(connect_to(port));
  }
  // Every connection accepted (the one asking counts itself too).
  while (metric(port, "aec_connections") < waiters + 1) {
    std::this_thread::sleep_for(10ms);  // the acceptor works through its backlog
  }
  long idle = rss_kib(server);

  auto park_start = Clock::now();
  for (int i = 0; i < waiters; ++i) {
    send_all(fds[static_cast<std::size_t>(i)],
             request("POST", "/v1/leases",
                     fmt::format(R"({{"key": "park/hot", "execution_id": "w{}", "ttl_ms": 600000, )"
                                 R"("wait_ms": 600000}})",
                                 i)));
  }
  while (metric(port, "aec_waiters") < waiters) {
    std::this_thread::sleep_for(10ms);  // condition: every waiter parked
  }
  double park_s = std::chrono::duration<double>(Clock::now() - park_start).count();
  long parked = rss_kib(server);

  // Handovers down the line: each holder releases on its own connection, and the next waiter is
  // granted by the same store write; timed from sending the release to the grant's arrival.
  int chain = std::min(waiters, 200);
  std::vector<double> handover_us;
  int holder_fd = connect_to(port);
  // The line is in the order the server parked the waiters, not quite the order they were sent:
  // watch every waiter still parked (epoll, so that watching 10,000 costs the client nothing per
  // handover) for the one granted.
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (int fd : fds) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  for (int i = 0; i < chain; ++i) {
    auto release_start = Clock::now();
    send_all(holder_fd, request("POST", fmt::format("/v1/keys/park%2Fhot/leases/{}/release", token),
                                R"({"status": "succeeded"})"));
    epoll_event ready{};
    if (epoll_wait(ep, &ready, 1, 10'000) != 1) {
      die(fmt::format("no waiter was granted within 10 s of release {}", i));
    }
    handover_us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - release_start).count());
    read_answer(holder_fd);  // the release's own answer
    close(holder_fd);
    holder_fd = ready.data.fd;
    epoll_ctl(ep, EPOLL_CTL_DEL, holder_fd, nullptr);
    token = token_of(read_answer(holder_fd));
  }
  close(holder_fd);
  close(ep);
  std::sort(handover_us.begin(), handover_us.end());
  auto quantile = [&](double q) {
    return handover_us[static_cast<std::size_t>(q * static_cast<double>(handover_us.size() - 1))];
  };

  for (int fd : fds) {
    close(fd);  // (the granted ones again: EBADF, harmless)
  }
  kill(server, SIGTERM);
  waitpid(server, nullptr, 0);
  if (remove_dir) {
    std::filesystem::remove_all(dir);
  }

  fmt::print(
      "| waiters | server RSS before | with idle connections | with parked waiters | "
      "per connection | per parked waiter (connection + request) | time to park all | "
      "release → next granted p50 / p99 / max ({} handovers) |\n"
      "|--:|--:|--:|--:|--:|--:|--:|--:|\n",
      chain);
  fmt::print(
      "| {} | {:.1f} MiB | {:.1f} MiB | {:.1f} MiB | {:.1f} KiB | {:.1f} KiB | {:.2f} s | "
      "{:.0f} / {:.0f} / {:.0f} µs |\n",
      waiters, base / 1024.0, idle / 1024.0, parked / 1024.0,
      static_cast<double>(idle - base) / waiters, static_cast<double>(parked - base) / waiters,
      park_s, quantile(0.5), quantile(0.99), handover_us.back());
  return 0;
}

}  // namespace
}  // namespace aec::bench

int main(int argc, char** argv) {
  CLI::App app("aec-park-bench: memory per parked waiter in aecd, and the handover to the first");
  int waiters = 10'000;
  std::string dir;
  app.add_option("--waiters", waiters, "Parked acquire requests (each on its own connection)")
      ->check(CLI::Range(1, 100'000));
  app.add_option("--dir", dir, "Directory for the store (default: a new one under /tmp)");
  CLI11_PARSE(app, argc, argv);
  bool remove_dir = dir.empty();
  if (dir.empty()) {
    char tmpl[] = "/tmp/aec-park-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      aec::bench::die("cannot create a directory under /tmp");
    }
    dir = tmpl;
  }
  return aec::bench::run(waiters, dir, remove_dir);
}
