#include "tests/server/raw_http.h"

#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <aec/open_store.h>

namespace aec::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string trim(std::string_view text) {
  std::size_t b = text.find_first_not_of(" \t");
  std::size_t e = text.find_last_not_of(" \t");
  return b == std::string_view::npos ? "" : std::string(text.substr(b, e - b + 1));
}

// Parses a response head (without the blank line); false when it is not one.
bool parse_head(std::string_view head, HttpReply& out) {
  std::size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  if (line.size() < 12 || line.substr(0, 5) != "HTTP/") {
    return false;
  }
  out.status = std::atoi(std::string(line.substr(9, 3)).c_str());
  while (eol != std::string_view::npos) {
    head.remove_prefix(eol + 2);
    eol = head.find("\r\n");
    std::string_view field = head.substr(0, eol);
    std::size_t colon = field.find(':');
    if (colon != std::string_view::npos) {
      out.headers[lower(field.substr(0, colon))] = trim(field.substr(colon + 1));
    }
  }
  return true;
}

}  // namespace

std::string HttpReply::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

nlohmann::json HttpReply::json() const {
  return nlohmann::json::parse(body, nullptr, false);
}

std::string HttpReply::error_message() const {
  nlohmann::json j = json();
  if (!j.is_object() || !j.contains("error")) {
    return "";
  }
  return j["error"].value("message", "");
}

std::string HttpReply::error_code() const {
  nlohmann::json j = json();
  if (!j.is_object() || !j.contains("error")) {
    return "";
  }
  return j["error"].value("code", "");
}

RawConnection::RawConnection(int port, Wire wire) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ADD_FAILURE() << "connect to 127.0.0.1:" << port << ": " << std::strerror(errno);
    close();
    return;
  }
  if (wire == Wire::Tls && !start_tls()) {
    close();
  }
}

RawConnection::~RawConnection() {
  close();
}

void RawConnection::close() {
  SSL_free(tls_);  // no close_notify: tests close like a client that just goes away
  tls_ = nullptr;
  SSL_CTX_free(tls_ctx_);
  tls_ctx_ = nullptr;
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

bool RawConnection::wait_ready(short events, Clock::time_point deadline) const {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return false;
    }
    pollfd p{fd_, events, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) {
      continue;
    }
    return ready > 0;
  }
}

// Non-blocking from here on, so that every read and write can honour a deadline: a TLS record
// that is not application data (a session ticket) must not block a read.
bool RawConnection::start_tls() {
  // OpenSSL writes with write(2), not send(MSG_NOSIGNAL): a server that closes while the test
  // still writes (a 413) must fail the write, not kill the test binary.
  static const bool sigpipe_ignored = std::signal(SIGPIPE, SIG_IGN) != SIG_ERR;
  (void)sigpipe_ignored;
  tls_ctx_ = SSL_CTX_new(TLS_client_method());
  tls_ = tls_ctx_ == nullptr ? nullptr : SSL_new(tls_ctx_);
  if (tls_ == nullptr || SSL_set_fd(tls_, fd_) != 1 ||
      ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK) != 0) {
    ADD_FAILURE() << "cannot set up a TLS client";
    return false;
  }
  auto deadline = Clock::now() + std::chrono::seconds(5);
  for (;;) {
    int r = SSL_connect(tls_);
    if (r == 1) {
      return true;
    }
    int err = SSL_get_error(tls_, r);
    short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (events == 0 || !wait_ready(events, deadline)) {
      ADD_FAILURE() << "TLS handshake with 127.0.0.1 failed (SSL error " << err << ")";
      return false;
    }
  }
}

bool RawConnection::send_tls(std::string_view bytes) {
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (!bytes.empty()) {
    int n = SSL_write(tls_, bytes.data(), static_cast<int>(bytes.size()));
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    int err = SSL_get_error(tls_, n);
    short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (events == 0 || !wait_ready(events, deadline)) {
      return false;
    }
  }
  return true;
}

int RawConnection::fill_tls(Clock::time_point deadline) {
  for (;;) {
    char chunk[16384];
    int n = SSL_read(tls_, chunk, sizeof chunk);
    if (n > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(n));
      return 1;
    }
    int err = SSL_get_error(tls_, n);
    short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (events == 0) {
      return 0;  // close_notify, EOF, reset or a TLS error: the connection is over
    }
    if (!wait_ready(events, deadline)) {
      return -1;
    }
  }
}

bool RawConnection::send(std::string_view bytes) {
  if (tls_ != nullptr) {
    return send_tls(bytes);
  }
  while (!bytes.empty() && fd_ >= 0) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return fd_ >= 0;
}

int RawConnection::fill(Clock::time_point deadline) {
  if (fd_ < 0) {
    return 0;
  }
  if (tls_ != nullptr) {
    return fill_tls(deadline);
  }
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return -1;
    }
    pollfd p{fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) {
      continue;
    }
    if (ready <= 0) {
      return -1;
    }
    char chunk[16384];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return 0;  // EOF, or reset
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return 1;
  }
}

HttpReply RawConnection::read_reply(std::chrono::milliseconds bound) {
  auto deadline = Clock::now() + bound;
  HttpReply reply;
  std::size_t end = std::string::npos;
  while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (int got = fill(deadline); got <= 0) {
      reply.status = got == 0 ? HttpReply::kClosed : HttpReply::kTimedOut;
      return reply;
    }
  }
  if (!parse_head(std::string_view(buffer_).substr(0, end), reply)) {
    ADD_FAILURE() << "not an HTTP response: " << buffer_.substr(0, 200);
    reply.status = HttpReply::kClosed;
    return reply;
  }
  std::size_t length = std::strtoul(reply.header("content-length").c_str(), nullptr, 10);
  while (buffer_.size() < end + 4 + length) {
    if (int got = fill(deadline); got <= 0) {
      reply.status = got == 0 ? HttpReply::kClosed : HttpReply::kTimedOut;
      return reply;
    }
  }
  reply.body = buffer_.substr(end + 4, length);
  buffer_.erase(0, end + 4 + length);
  return reply;
}

std::string RawConnection::read_until(std::string_view needle, std::chrono::milliseconds bound) {
  auto deadline = Clock::now() + bound;
  std::size_t at = std::string::npos;
  while ((at = buffer_.find(needle)) == std::string::npos) {
    if (fill(deadline) <= 0) {
      return "";
    }
  }
  std::string out = buffer_.substr(0, at + needle.size());
  buffer_.erase(0, at + needle.size());
  return out;
}

HttpReply RawConnection::exchange(std::string_view request, std::chrono::milliseconds bound) {
  if (!send(request)) {
    HttpReply closed;
    closed.status = HttpReply::kClosed;
    return closed;
  }
  return read_reply(bound);
}

bool RawConnection::wait_closed(std::chrono::milliseconds bound) {
  auto deadline = Clock::now() + bound;
  for (;;) {
    int got = fill(deadline);
    if (got == 0) {
      return true;
    }
    if (got < 0) {
      return false;
    }
    buffer_.clear();
  }
}

std::string http_request(std::string_view method, std::string_view target, std::string_view token,
                         std::string_view body) {
  std::string out = fmt::format("{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\n", method, target);
  if (!token.empty()) {
    out += fmt::format("Authorization: Bearer {}\r\n", token);
  }
  out += fmt::format("Content-Length: {}\r\n\r\n{}", body.size(), body);
  return out;
}

TestServer TestServer::start(std::shared_ptr<Store> store, server::ServerOptions options) {
  options.store = store;
  options.listen = "127.0.0.1:0";
  options.log_requests = std::getenv("AEC_TEST_LOG") != nullptr;
  TestServer t{std::move(store), nullptr, options.tls_cert.empty() ? Wire::Plain : Wire::Tls};
  auto started = server::Server::start(std::move(options));
  if (!started) {
    ADD_FAILURE() << "start aecd: " << started.error().to_string();
    return t;
  }
  t.server = std::move(*started);
  return t;
}

HttpReply TestServer::call(std::string_view method, std::string_view target, std::string_view token,
                           std::string_view body) const {
  RawConnection conn(port(), wire);
  return conn.exchange(http_request(method, target, token, body));
}

std::shared_ptr<Store> memory_store() {
  auto store = open_store("memory:");
  EXPECT_TRUE(store.has_value());
  return store ? std::shared_ptr<Store>(std::move(*store)) : nullptr;
}

std::string path_key(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      out += c;
    } else {
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    }
  }
  return out;
}

}  // namespace aec::testing
