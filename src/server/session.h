// One client connection: reads HTTP/1.1 requests with limits and timeouts, hands each to the
// dispatcher as an Exchange, writes the answer, and keeps the connection alive between requests.
// While an answer is pending (a parked request) it watches the socket, so a client that hangs
// up is noticed at once and its Exchange abandoned. The same logic serves plain HTTP and HTTPS
// (a TLS handshake first, then HTTP over the encrypted stream).
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "server/exchange.h"

namespace aec::server {

struct SessionLimits {
  std::size_t header_limit = 16 * 1024;  // request line + headers; beyond: 431
  std::size_t body_limit = 64 * 1024;    // beyond: 413
  // A request, once begun, within this; also the TLS handshake.
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds idle_timeout{120'000};  // between requests
};

// What the server does with each request. Called on the session's strand; must not block.
using Dispatch = std::function<void(std::shared_ptr<Exchange>)>;
// Called once per finished request, for the request log and metrics.
using RequestLog = std::function<void(const Exchange& ex, unsigned status,
                                      std::chrono::steady_clock::duration took)>;

class Session {
 public:
  virtual ~Session() = default;

  // Starts serving: the TLS handshake if any, then requests. Call once.
  virtual void start() = 0;
  // Closes the connection once idle: at once when waiting for a request (or in the TLS
  // handshake), else after the answer in flight. Thread-safe.
  virtual void shut_down() = 0;
};

// A session over `socket`, whose executor must be a strand (every step of the session runs on
// it). `tls` null: plain HTTP; else HTTPS with that context, which must outlive the session.
// Keeps itself alive while it has work pending; the caller may keep a weak_ptr to shut it down.
std::shared_ptr<Session> make_session(boost::asio::ip::tcp::socket socket,
                                      boost::asio::ssl::context* tls, const SessionLimits& limits,
                                      Dispatch dispatch, RequestLog log);

}  // namespace aec::server
