#include "tests/fuzz/fake_aecd.h"

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace aec::fuzz {
namespace {

// The Content-Length of a request head, 0 when absent.
std::size_t content_length(std::string_view head) {
  std::string lower(head);
  for (char& c : lower) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  std::size_t at = lower.find("\r\ncontent-length:");
  if (at == std::string::npos) {
    return 0;
  }
  return std::strtoul(lower.c_str() + at + 17, nullptr, 10);
}

bool write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    text.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

FakeAecd::FakeAecd() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listen_fd_, 16) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("FakeAecd: cannot listen on 127.0.0.1");
    std::abort();
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { serve(); });
}

FakeAecd::~FakeAecd() {
  stop_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  thread_.join();
  ::close(listen_fd_);
}

void FakeAecd::answer(int status, std::string body) {
  std::lock_guard lock(mu_);
  status_ = status;
  body_ = std::move(body);
}

void FakeAecd::serve() {
  while (!stop_) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    serve_connection(fd);
    ::close(fd);
  }
}

// Reads requests (head, then Content-Length bytes of body) and answers each, until the client
// closes or a second passes without a byte (the client keeps another connection meanwhile).
void FakeAecd::serve_connection(int fd) {
  std::string in;
  char chunk[4096];
  while (!stop_) {
    std::size_t end = in.find("\r\n\r\n");
    if (end != std::string::npos && in.size() >= end + 4 + content_length(in.substr(0, end))) {
      in.erase(0, end + 4 + content_length(in.substr(0, end)));
      std::string reply;
      {
        std::lock_guard lock(mu_);
        reply = fmt::format(
            "HTTP/1.1 {} Fuzz\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            status_, body_.size(), body_);
      }
      if (!write_all(fd, reply)) {
        return;
      }
      continue;
    }
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, 1000) <= 0) {
      return;
    }
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      return;
    }
    in.append(chunk, static_cast<std::size_t>(n));
  }
}

}  // namespace aec::fuzz
