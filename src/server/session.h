// One client connection: reads HTTP/1.1 requests with limits and timeouts, hands each to the
// dispatcher as an Exchange, writes the answer, and keeps the connection alive between requests.
// While an answer is pending (a parked request) it watches the socket, so a client that hangs
// up is noticed at once and its Exchange abandoned.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "server/exchange.h"

namespace aec::server {

struct SessionLimits {
  std::size_t header_limit = 16 * 1024;              // request line + headers; beyond: 431
  std::size_t body_limit = 64 * 1024;                // beyond: 413
  std::chrono::milliseconds header_timeout{10'000};  // a request, once begun, within this
  std::chrono::milliseconds idle_timeout{120'000};   // between requests
};

// What the server does with each request. Called on the session's strand; must not block.
using Dispatch = std::function<void(std::shared_ptr<Exchange>)>;
// Called once per finished request, for the request log and metrics.
using RequestLog = std::function<void(const Exchange& ex, unsigned status,
                                      std::chrono::steady_clock::duration took)>;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(boost::asio::ip::tcp::socket socket, const SessionLimits& limits, Dispatch dispatch,
          RequestLog log);
  ~Session();

  void start();
  // Closes the connection once idle: at once when waiting for a request, else after the answer
  // in flight. Thread-safe.
  void shut_down();

 private:
  void wait_for_request();
  void read_request();
  void on_read(boost::beast::error_code ec);
  void on_read_error(boost::beast::error_code ec);
  void dispatch_request();
  void watch_peer();
  void on_answer(Response res);
  void write(Response res, bool close_after);
  void close();

  boost::beast::tcp_stream stream_;
  SessionLimits limits_;
  Dispatch dispatch_;
  RequestLog log_;
  std::string peer_;
  boost::beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  // The rest runs on the strand of stream_ only.
  std::shared_ptr<Exchange> exchange_;  // the request being answered
  std::chrono::steady_clock::time_point started_;
  std::optional<Response> answer_;  // an answer that arrived while the peer watch was pending
  bool watching_ = false;
  bool idle_ = false;  // waiting for the next request
  bool closing_ = false;
};

}  // namespace aec::server
