// A raw HTTP/1.1 client over a blocking TCP socket, for tests that must send malformed requests
// byte by byte, and an in-process aecd over a store for them to talk to.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <aec/store.h>

#include "server/server.h"

struct ssl_ctx_st;
struct ssl_st;

namespace aec::testing {

// One answer read off a connection.
struct HttpReply {
  int status = 0;                              // kClosed or kTimedOut when no whole answer came
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;

  static constexpr int kClosed = 0;     // the peer closed (or reset) the connection first
  static constexpr int kTimedOut = -1;  // nothing complete within the bound

  std::string header(const std::string& lower_name) const;
  // The body as JSON; a discarded (null) value when it is not JSON.
  nlohmann::json json() const;
  // The message of the error shape {"error": {"code", "message"}}, "" otherwise.
  std::string error_message() const;
  std::string error_code() const;
};

// How a RawConnection talks: plain HTTP, or HTTP over TLS (1.2 or later; the client accepts any
// certificate: tests of verification go through the https:// store).
enum class Wire { Plain, Tls };

// A client connection to 127.0.0.1:port. Not thread-safe; closes on destruction.
class RawConnection {
 public:
  // Connects, and for Wire::Tls completes the handshake within 5 s; a failure fails the test
  // (ADD_FAILURE) and leaves the connection closed.
  explicit RawConnection(int port, Wire wire = Wire::Plain);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  // Writes every byte; false when the peer has closed or reset the connection.
  bool send(std::string_view bytes);
  // Reads one whole answer (Content-Length framed), waiting at most `bound`.
  HttpReply read_reply(std::chrono::milliseconds bound = std::chrono::seconds(5));
  // Reads until the bytes read (and not yet consumed) hold `needle`, at most `bound`; returns
  // them up to and including the needle (consumed), or "" when it does not come in time.
  std::string read_until(std::string_view needle,
                         std::chrono::milliseconds bound = std::chrono::seconds(5));
  // send() then read_reply().
  HttpReply exchange(std::string_view request,
                     std::chrono::milliseconds bound = std::chrono::seconds(5));
  // Waits until the peer closes the connection (EOF or reset), discarding any bytes; false when
  // `bound` passes first.
  bool wait_closed(std::chrono::milliseconds bound);
  void close();

 private:
  // Reads more bytes into buffer_ until `deadline`: >0 bytes read, 0 closed, -1 timed out.
  int fill(std::chrono::steady_clock::time_point deadline);
  int fill_tls(std::chrono::steady_clock::time_point deadline);
  bool send_tls(std::string_view bytes);
  // Runs the TLS handshake on fd_; false (and an ADD_FAILURE) when it fails.
  bool start_tls();
  // Waits until fd_ is ready for `events` (POLLIN/POLLOUT), at most until `deadline`.
  bool wait_ready(short events, std::chrono::steady_clock::time_point deadline) const;

  int fd_ = -1;
  ssl_ctx_st* tls_ctx_ = nullptr;  // OpenSSL's SSL_CTX and SSL, for Wire::Tls
  ssl_st* tls_ = nullptr;
  std::string buffer_;  // bytes read and not yet consumed
};

// A well-formed request: the request line, Host, an optional bearer token, Content-Length
// (always, also 0) and the body.
std::string http_request(std::string_view method, std::string_view target,
                         std::string_view token = "", std::string_view body = "");

// An aecd started in-process on 127.0.0.1:0 over `store`; stopped on destruction.
struct TestServer {
  std::shared_ptr<Store> store;
  std::unique_ptr<server::Server> server;
  Wire wire = Wire::Plain;  // Tls when options.tls_cert was given

  // Starts a server with `options` (store and listen are filled in); fails the test (and
  // leaves server null) when it cannot start.
  static TestServer start(std::shared_ptr<Store> store, server::ServerOptions options = {});
  int port() const { return server->port(); }
  // One request over a fresh connection (over TLS when the server serves HTTPS).
  HttpReply call(std::string_view method, std::string_view target, std::string_view token = "",
                 std::string_view body = "") const;
};

// The memory store ("memory:"), real clock and host.
std::shared_ptr<Store> memory_store();

// "a/k" -> "a%2Fk": a key as one path segment.
std::string path_key(std::string_view key);

}  // namespace aec::testing
