#include "server/session.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

namespace aec::server {

namespace beast = boost::beast;
namespace asio = boost::asio;

namespace {

std::string peer_of(const asio::ip::tcp::socket& socket) {
  beast::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) {
    return "?";
  }
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

// An answer to a request that could not be read: the connection closes after it.
Response framing_error(unsigned status, std::string_view code, std::string_view message) {
  Request none;
  none.version(11);
  Response res = error_response(none, static_cast<int>(status), code, message);
  res.keep_alive(false);
  return res;
}

}  // namespace

Session::Session(asio::ip::tcp::socket socket, const SessionLimits& limits, Dispatch dispatch,
                 RequestLog log)
    : stream_(std::move(socket)),
      limits_(limits),
      dispatch_(std::move(dispatch)),
      log_(std::move(log)),
      peer_(peer_of(stream_.socket())) {}

Session::~Session() {
  if (exchange_) {
    exchange_->abandon();
  }
}

void Session::start() {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->wait_for_request(); });
}

void Session::shut_down() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] {
    self->closing_ = true;
    if (self->idle_) {
      self->close();
    }
  });
}

// Between requests the connection may idle for idle_timeout; once the first byte of a request
// is here, the whole request must arrive within header_timeout (a slow client cannot hold a
// connection by trickling bytes).
void Session::wait_for_request() {
  if (closing_) {
    close();
    return;
  }
  if (buffer_.size() > 0) {
    read_request();
    return;
  }
  idle_ = true;
  stream_.expires_after(limits_.idle_timeout);
  stream_.async_read_some(buffer_.prepare(4096),
                          [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                            self->idle_ = false;
                            if (ec) {
                              self->close();
                              return;
                            }
                            self->buffer_.commit(n);
                            self->read_request();
                          });
}

void Session::read_request() {
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(limits_.header_limit));
  parser_->body_limit(limits_.body_limit);
  stream_.expires_after(limits_.header_timeout);
  http::async_read(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
}

void Session::on_read(beast::error_code ec) {
  if (ec) {
    on_read_error(ec);
    return;
  }
  dispatch_request();
}

void Session::on_read_error(beast::error_code ec) {
  started_ = std::chrono::steady_clock::now();
  if (ec == http::error::body_limit) {
    write(framing_error(413, "payload_too_large",
                        "request body is over 64 KiB: send less per request"),
          true);
  } else if (ec == http::error::header_limit) {
    write(framing_error(431, "headers_too_large",
                        "request line and headers are over 16 KiB: send fewer or shorter ones"),
          true);
  } else if (ec.category() == beast::http::make_error_code(http::error::bad_target).category() &&
             ec != http::error::end_of_stream && ec != http::error::partial_message) {
    write(framing_error(400, "invalid_argument", "malformed HTTP request: " + ec.message()), true);
  } else {
    close();  // the client hung up, or was too slow (timeout)
  }
}

void Session::dispatch_request() {
  started_ = std::chrono::steady_clock::now();
  Request req = parser_->release();
  parser_.reset();
  auto routed =
      match_route(std::string_view(req.method_string().data(), req.method_string().size()),
                  std::string_view(req.target().data(), req.target().size()));
  // The sink keeps the session alive until the answer is written; Exchange drops it once used
  // or abandoned, which ends the reference cycle.
  auto sink = [self = shared_from_this()](Response res) {
    asio::post(self->stream_.get_executor(),
               [self, res = std::move(res)]() mutable { self->on_answer(std::move(res)); });
  };
  RouteMatch match;
  if (auto* m = std::get_if<RouteMatch>(&routed)) {
    match = std::move(*m);
  }
  exchange_ = std::make_shared<Exchange>(std::move(req), std::move(match), peer_, sink);
  if (auto* err = std::get_if<RouteError>(&routed)) {
    Response res = error_response(exchange_->request(), err->http_status, err->code, err->message);
    if (!err->allow.empty()) {
      res.set(http::field::allow, err->allow);
    }
    exchange_->respond(std::move(res));
  } else {
    dispatch_(exchange_);
  }
  if (!exchange_->answered()) {
    watch_peer();
  }
}

// While the answer is pending, a read on the socket tells when the client hangs up. Bytes that
// arrive meanwhile (a pipelined request) stay in the buffer for the next request.
void Session::watch_peer() {
  if (watching_ || buffer_.size() > limits_.header_limit + limits_.body_limit) {
    return;
  }
  watching_ = true;
  stream_.expires_never();
  stream_.async_read_some(buffer_.prepare(4096),
                          [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                            self->watching_ = false;
                            self->buffer_.commit(n);
                            if (self->answer_) {
                              Response res = std::move(*self->answer_);
                              self->answer_.reset();
                              self->write(std::move(res), false);
                            } else if (ec) {
                              if (self->exchange_) {
                                self->exchange_->abandon();
                              }
                              self->close();
                            } else {
                              self->watch_peer();
                            }
                          });
}

void Session::on_answer(Response res) {
  if (watching_) {
    answer_ = std::move(res);
    beast::error_code ignored;
    stream_.socket().cancel(ignored);  // the watch's handler writes the answer
    return;
  }
  write(std::move(res), false);
}

void Session::write(Response res, bool close_after) {
  if (closing_) {
    res.keep_alive(false);
  }
  bool keep = res.keep_alive() && !close_after;
  if (log_ && exchange_) {
    log_(*exchange_, res.result_int(), std::chrono::steady_clock::now() - started_);
  }
  exchange_.reset();
  auto msg = std::make_shared<Response>(std::move(res));
  stream_.expires_after(limits_.header_timeout);
  http::async_write(stream_, *msg,
                    [self = shared_from_this(), msg, keep](beast::error_code ec, std::size_t) {
                      if (ec || !keep) {
                        self->close();
                        return;
                      }
                      self->wait_for_request();
                    });
}

void Session::close() {
  beast::error_code ignored;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  stream_.close();
}

}  // namespace aec::server
