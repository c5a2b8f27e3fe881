#include "tests/e2e/aecd_process.h"

#include <chrono>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/e2e/e2e_support.h"

namespace aec::e2e {

using namespace std::chrono_literals;

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string http_get(int port, const std::string& target) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string all;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) {
    all.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  std::size_t body = all.find("\r\n\r\n");
  return body == std::string::npos ? "" : all.substr(body + 4);
}

AecdProcess::AecdProcess(std::string store, int port, std::string log,
                         std::vector<std::string> extra, Env env)
    : store_(std::move(store)),
      port_(port),
      log_(std::move(log)),
      extra_(std::move(extra)),
      env_(std::move(env)) {
  start();
}

AecdProcess::~AecdProcess() {
  kill9();
}

void AecdProcess::start() {
  std::vector<std::string> args = {"serve",   "--listen", "127.0.0.1:" + std::to_string(port_),
                                   "--store", store_,     "--quiet"};
  args.insert(args.end(), extra_.begin(), extra_.end());
  pid_ = spawn_aec(args, env_, log_);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (http_get(port_, "/healthz").find("ok") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);  // polling a condition: the server answering
  }
}

void AecdProcess::kill9() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    wait_exit(pid_);
    pid_ = -1;
  }
}

int AecdProcess::stop() {
  kill(pid_, SIGTERM);
  int code = wait_exit(pid_);
  pid_ = -1;
  return code;
}

double AecdProcess::metric(const std::string& name) const {
  std::string text = http_get(port_, "/metrics");
  std::size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 2));
}

}  // namespace aec::e2e
