#include "tests/support/canned_http.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace aec::testing {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string trim(const std::string& s) {
  std::size_t b = s.find_first_not_of(" \t");
  std::size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

std::string CannedRequest::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

CannedHttp::CannedHttp(Handler handler) : handler_(std::move(handler)) {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), len), 0);
  EXPECT_EQ(::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  EXPECT_EQ(::listen(listener_, 64), 0);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { serve(); });
}

CannedHttp::~CannedHttp() {
  stopping_ = true;
  thread_.join();
  ::close(listener_);
}

std::vector<CannedRequest> CannedHttp::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

void CannedHttp::serve() {
  while (!stopping_) {
    pollfd p{listener_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) {
      continue;  // checks stopping_ every 50 ms
    }
    int conn = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn >= 0) {
      answer(conn);
      ::close(conn);
    }
  }
}

void CannedHttp::answer(int conn) {
  std::string in;
  char buf[4096];
  std::size_t end = std::string::npos;
  std::size_t body_length = 0;
  for (;;) {
    if (end == std::string::npos && (end = in.find("\r\n\r\n")) != std::string::npos) {
      std::string head = lower(in.substr(0, end));
      if (std::size_t cl = head.find("content-length:"); cl != std::string::npos) {
        body_length = std::strtoul(head.c_str() + cl + 15, nullptr, 10);
      }
    }
    if (end != std::string::npos && in.size() >= end + 4 + body_length) {
      break;
    }
    pollfd p{conn, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) {
      return;  // a client that sends nothing for 5 s gets nothing
    }
    ssize_t n = ::read(conn, buf, sizeof(buf));
    if (n <= 0) {
      return;
    }
    in.append(buf, static_cast<std::size_t>(n));
  }
  CannedRequest req;
  std::size_t line_end = in.find("\r\n");
  std::string first = in.substr(0, line_end);
  std::size_t sp1 = first.find(' ');
  std::size_t sp2 = first.find(' ', sp1 + 1);
  req.method = first.substr(0, sp1);
  req.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
  std::size_t pos = line_end + 2;
  while (pos < end) {
    std::size_t next = in.find("\r\n", pos);
    std::string line = in.substr(pos, next - pos);
    if (std::size_t colon = line.find(':'); colon != std::string::npos) {
      req.headers[lower(line.substr(0, colon))] = trim(line.substr(colon + 1));
    }
    pos = next + 2;
  }
  req.body = in.substr(end + 4, body_length);
  CannedResponse res = handler_(req);
  {
    std::lock_guard lock(mu_);
    requests_.push_back(req);
  }
  std::string out = "HTTP/1.1 " + std::to_string(res.status) +
                    " X\r\nConnection: close\r\nContent-Type: " + res.content_type +
                    "\r\nContent-Length: " + std::to_string(res.body.size()) + "\r\n\r\n" +
                    res.body;
  std::size_t sent = 0;
  while (sent < out.size()) {
    ssize_t n = ::write(conn, out.data() + sent, out.size() - sent);
    if (n <= 0) {
      return;
    }
    sent += static_cast<std::size_t>(n);
  }
}

}  // namespace aec::testing
