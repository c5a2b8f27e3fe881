#include "server/session.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <type_traits>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>

namespace aec::server {

namespace beast = boost::beast;
namespace asio = boost::asio;
namespace ssl = asio::ssl;

namespace {

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// Closing TLS, aecd sends its close_notify and then waits this long (at most header_timeout) for
// the client's. The wait is a courtesy (RFC 8446 6.1 does not require it) and most clients never
// answer on an idle connection, so it is short: it bounds how long a graceful stop can take.
constexpr std::chrono::milliseconds kTlsCloseTimeout{1'000};

// The heartbeat a client may ask for while its answer is pending (docs/api.md): with
// "Aec-Heartbeat-Ms: N", an answer still pending after N ms is streamed: a 200 head (chunked),
// then a space every N ms (JSON allows whitespace before a value), then the answer's body, an
// error object included. So a client can tell a parked call from a dead connection, through
// proxies too (1xx answers are not forwarded by all of them; streamed bodies are, and
// "X-Accel-Buffering: no" asks nginx not to hold them back). Bounded below so that many parked
// callers cannot make the server write constantly.
constexpr std::string_view kHeartbeatHeader = "Aec-Heartbeat-Ms";
constexpr std::chrono::milliseconds kMinHeartbeat{1'000};
constexpr std::chrono::milliseconds kMaxHeartbeat{600'000};

// The heartbeat a request asks for: 0 when none (or when the client speaks HTTP/1.0, which has
// no chunked bodies); nullopt when the header is malformed.
std::optional<std::chrono::milliseconds> heartbeat_of(const Request& req) {
  auto it = req.find(beast::string_view(kHeartbeatHeader.data(), kHeartbeatHeader.size()));
  if (it == req.end() || req.version() < 11) {
    return std::chrono::milliseconds(0);
  }
  std::string_view v(it->value().data(), it->value().size());
  std::int64_t ms = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
  if (ec != std::errc() || end != v.data() + v.size() || ms < kMinHeartbeat.count() ||
      ms > kMaxHeartbeat.count()) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(ms);
}

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

// One connection over Stream: PlainStream, or TlsStream (whose lowest layer is a PlainStream,
// so timeouts, cancellation and closing work the same on both). Every member function runs on
// the strand of the stream's executor, except start() and shut_down(), which post to it.
template <class Stream>
class StreamSession final : public Session,
                            public std::enable_shared_from_this<StreamSession<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  // `stream_args` construct the stream: the socket, and for TLS the context.
  template <class... StreamArgs>
  StreamSession(const SessionLimits& limits, Dispatch dispatch, RequestLog log,
                StreamArgs&&... stream_args)
      : stream_(std::forward<StreamArgs>(stream_args)...),
        limits_(limits),
        dispatch_(std::move(dispatch)),
        log_(std::move(log)),
        peer_(peer_of(tcp().socket())),
        beat_timer_(stream_.get_executor()) {}

  ~StreamSession() override {
    if (exchange_) {
      exchange_->abandon();
    }
  }

  void start() override {
    asio::dispatch(stream_.get_executor(), [self = self()] {
      if constexpr (kTls) {
        self->handshake();
      } else {
        self->wait_for_request();
      }
    });
  }

  void shut_down() override {
    asio::post(stream_.get_executor(), [self = self()] {
      self->closing_ = true;
      if (self->idle_) {
        // The pending read (or handshake) ends with operation_aborted; its handler closes.
        beast::error_code ignored;
        self->tcp().socket().cancel(ignored);
      }
    });
  }

 private:
  std::shared_ptr<StreamSession> self() { return this->shared_from_this(); }
  PlainStream& tcp() { return beast::get_lowest_layer(stream_); }

  void handshake();
  void wait_for_request();
  void read_request();
  void on_read_error(beast::error_code ec);
  void dispatch_request();
  void watch_peer();
  void on_watch_done(beast::error_code ec, std::size_t n);
  void on_answer(Response res);
  void send_answer();
  void arm_heartbeat();
  void beat(std::uint64_t exchange);
  void write(Response res, bool close_after);
  void write_streamed(Response res);
  void after_answer(beast::error_code ec, bool keep);
  void finish();
  void close();

  Stream stream_;
  SessionLimits limits_;
  Dispatch dispatch_;
  RequestLog log_;
  std::string peer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<Exchange> exchange_;  // the request being answered
  std::chrono::steady_clock::time_point started_;
  // An answer that arrived while the peer watch or a heartbeat was pending.
  std::optional<Response> answer_;
  std::chrono::milliseconds heartbeat_{0};  // what the pending request asked for; 0: none
  boost::asio::steady_timer beat_timer_;
  std::uint64_t exchanges_ = 0;  // requests dispatched: tells a heartbeat whose request it is for
  bool watching_ = false;
  bool beating_ = false;    // the streamed head or a heartbeat's space is being written
  bool streaming_ = false;  // the pending answer's head is written: its body follows in chunks
  bool idle_ = false;       // waiting for the next request, or in the TLS handshake
  bool closing_ = false;
};

// The handshake must end within header_timeout: a client that connects and says nothing (or
// speaks plain HTTP, which fails at once) holds no connection for longer.
template <class Stream>
void StreamSession<Stream>::handshake() {
  if constexpr (kTls) {
    idle_ = true;  // no request in flight: shut_down() may cut it short
    tcp().expires_after(limits_.header_timeout);
    stream_.async_handshake(ssl::stream_base::server, [self = self()](beast::error_code ec) {
      self->idle_ = false;
      if (ec) {
        self->close();  // no TLS session, so nothing to say goodbye with
        return;
      }
      self->wait_for_request();
    });
  }
}

// Between requests the connection may idle for idle_timeout; once the first byte of a request
// is here, the whole request must arrive within header_timeout (a slow client cannot hold a
// connection by trickling bytes).
template <class Stream>
void StreamSession<Stream>::wait_for_request() {
  if (closing_) {
    finish();
    return;
  }
  if (buffer_.size() > 0) {
    read_request();
    return;
  }
  idle_ = true;
  tcp().expires_after(limits_.idle_timeout);
  stream_.async_read_some(buffer_.prepare(4096),
                          [self = self()](beast::error_code ec, std::size_t n) {
                            self->idle_ = false;
                            if (ec) {
                              // shut_down() cancelled the read: a polite close. Else the client
                              // left, or the idle timeout closed the socket already.
                              if (self->closing_) {
                                self->finish();
                              } else {
                                self->close();
                              }
                              return;
                            }
                            self->buffer_.commit(n);
                            self->read_request();
                          });
}

template <class Stream>
void StreamSession<Stream>::read_request() {
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(limits_.header_limit));
  parser_->body_limit(limits_.body_limit);
  tcp().expires_after(limits_.header_timeout);
  http::async_read(stream_, buffer_, *parser_, [self = self()](beast::error_code ec, std::size_t) {
    if (ec) {
      self->on_read_error(ec);
      return;
    }
    self->dispatch_request();
  });
}

template <class Stream>
void StreamSession<Stream>::on_read_error(beast::error_code ec) {
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

template <class Stream>
void StreamSession<Stream>::dispatch_request() {
  started_ = std::chrono::steady_clock::now();
  Request req = parser_->release();
  parser_.reset();
  auto routed =
      match_route(std::string_view(req.method_string().data(), req.method_string().size()),
                  std::string_view(req.target().data(), req.target().size()));
  // The sink keeps the session alive until the answer is written; Exchange drops it once used
  // or abandoned, which ends the reference cycle. Until then it also counts as work for the I/O
  // threads, so that they outlast a store call in flight even when nothing else of the session
  // is pending (the server's shut_down() joins them before the store pool).
  auto sink = [self = self(),
               work = asio::prefer(stream_.get_executor(),
                                   asio::execution::outstanding_work.tracked)](Response res) {
    asio::post(work, [self, res = std::move(res)]() mutable { self->on_answer(std::move(res)); });
  };
  RouteMatch match;
  if (auto* m = std::get_if<RouteMatch>(&routed)) {
    match = std::move(*m);
  }
  std::optional<std::chrono::milliseconds> heartbeat = heartbeat_of(req);
  heartbeat_ = heartbeat.value_or(std::chrono::milliseconds(0));
  ++exchanges_;
  exchange_ = std::make_shared<Exchange>(std::move(req), std::move(match), peer_, sink);
  if (!heartbeat) {
    exchange_->respond(error_response(
        exchange_->request(), 400, "invalid_argument",
        fmt::format("header {} must be a whole number of milliseconds from {} to {}",
                    kHeartbeatHeader, kMinHeartbeat.count(), kMaxHeartbeat.count())));
  } else if (auto* err = std::get_if<RouteError>(&routed)) {
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
    arm_heartbeat();
  }
}

// While the answer is pending, a read on the socket tells when the client hangs up. Bytes that
// arrive meanwhile (a pipelined request) stay in the buffer for the next request. Over TLS the
// read also consumes the client's close_notify, which ends it the same way.
template <class Stream>
void StreamSession<Stream>::watch_peer() {
  if (watching_ || buffer_.size() > limits_.header_limit + limits_.body_limit) {
    return;
  }
  watching_ = true;
  tcp().expires_never();
  stream_.async_read_some(
      buffer_.prepare(4096),
      [self = self()](beast::error_code ec, std::size_t n) { self->on_watch_done(ec, n); });
}

template <class Stream>
void StreamSession<Stream>::on_watch_done(beast::error_code ec, std::size_t n) {
  watching_ = false;
  buffer_.commit(n);
  if (answer_) {
    send_answer();
  } else if (ec) {
    if (exchange_) {
      exchange_->abandon();
    }
    close();
  } else {
    watch_peer();
  }
}

template <class Stream>
void StreamSession<Stream>::on_answer(Response res) {
  beat_timer_.cancel();
  answer_ = std::move(res);
  send_answer();
}

// Writes answer_ once neither the peer watch nor a heartbeat is pending: a heartbeat being
// written is let finish (its handler comes back here), the watch is cancelled (its handler comes
// back here). Cancelling a TLS read leaves the TLS session usable: the record bytes already read
// stay in the stream for the next read. Cancelling is never done under a heartbeat's write,
// which would leave a partial chunk on the wire.
template <class Stream>
void StreamSession<Stream>::send_answer() {
  if (!answer_ || beating_) {
    return;
  }
  if (watching_) {
    beast::error_code ignored;
    tcp().socket().cancel(ignored);
    return;
  }
  Response res = std::move(*answer_);
  answer_.reset();
  write(std::move(res), false);
}

template <class Stream>
void StreamSession<Stream>::arm_heartbeat() {
  if (heartbeat_ <= std::chrono::milliseconds(0)) {
    return;
  }
  beat_timer_.expires_after(heartbeat_);
  beat_timer_.async_wait([self = self(), exchange = exchanges_](beast::error_code ec) {
    if (!ec) {
      self->beat(exchange);
    }
  });
}

// A heartbeat while the answer to request number `exchange` is pending: the first writes the
// answer's head (200, chunked), the next ones a space each. The peer watch stays pending
// meanwhile; a client that does not take the bytes within header_timeout is gone (the timeout
// closes the connection, and the watch's handler abandons the request).
template <class Stream>
void StreamSession<Stream>::beat(std::uint64_t exchange) {
  if (exchange != exchanges_ || !exchange_ || answer_ || beating_) {
    return;  // answered (or being answered) meanwhile
  }
  beating_ = true;
  tcp().expires_after(limits_.header_timeout);
  auto done = [self = self()](beast::error_code ec) {
    self->beating_ = false;
    if (ec) {
      self->close();  // the watch's handler, if pending, abandons the request
      return;
    }
    if (self->answer_) {
      self->send_answer();
      return;
    }
    self->tcp().expires_never();
    self->arm_heartbeat();
  };
  if (streaming_) {
    static constexpr char kSpace = ' ';
    asio::async_write(stream_, http::make_chunk(asio::const_buffer(&kSpace, 1)),
                      [done](beast::error_code ec, std::size_t) { done(ec); });
    return;
  }
  streaming_ = true;
  const Request& req = exchange_->request();
  auto head = std::make_shared<http::response<http::empty_body>>(http::status::ok, req.version());
  head->set(http::field::content_type, "application/json");
  head->set(http::field::cache_control, "no-store");
  head->set("X-Accel-Buffering", "no");
  head->keep_alive(req.keep_alive() && !closing_);
  head->chunked(true);
  auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*head);
  http::async_write_header(stream_, *sr,
                           [done, head, sr](beast::error_code ec, std::size_t) { done(ec); });
}

template <class Stream>
void StreamSession<Stream>::write(Response res, bool close_after) {
  if (streaming_) {
    write_streamed(std::move(res));
    return;
  }
  if (closing_) {
    res.keep_alive(false);
  }
  bool keep = res.keep_alive() && !close_after;
  if (log_ && exchange_) {
    log_(*exchange_, res.result_int(), std::chrono::steady_clock::now() - started_);
  }
  exchange_.reset();
  beat_timer_.cancel();
  auto msg = std::make_shared<Response>(std::move(res));
  tcp().expires_after(limits_.header_timeout);
  http::async_write(stream_, *msg, [self = self(), msg, keep](beast::error_code ec, std::size_t) {
    self->after_answer(ec, keep);
  });
}

// The end of a streamed answer: its body (an error's too: the head said 200 already; the client
// that asked for the stream reads the error object) as the last chunk. Headers of `res` are not
// sent: the body holds everything the client needs.
template <class Stream>
void StreamSession<Stream>::write_streamed(Response res) {
  streaming_ = false;
  bool keep = res.keep_alive() && exchange_ && exchange_->request().keep_alive() && !closing_;
  if (log_ && exchange_) {
    log_(*exchange_, res.result_int(), std::chrono::steady_clock::now() - started_);
  }
  exchange_.reset();
  beat_timer_.cancel();
  auto body = std::make_shared<std::string>(std::move(res.body()));
  if (body->empty()) {
    *body = "{}";  // an empty chunk would end the stream with no body
  }
  tcp().expires_after(limits_.header_timeout);
  asio::async_write(
      stream_, beast::buffers_cat(http::make_chunk(asio::buffer(*body)), http::make_chunk_last()),
      [self = self(), body, keep](beast::error_code ec, std::size_t) {
        self->after_answer(ec, keep);
      });
}

template <class Stream>
void StreamSession<Stream>::after_answer(beast::error_code ec, bool keep) {
  if (ec) {
    close();
  } else if (!keep) {
    finish();
  } else {
    wait_for_request();
  }
}

// Ends a healthy connection. Over TLS, close_notify first, so the client can tell the end from
// a cut connection; the client's own close_notify, a truncated stream or the timeout all end it.
template <class Stream>
void StreamSession<Stream>::finish() {
  if constexpr (kTls) {
    tcp().expires_after(std::min(limits_.header_timeout, kTlsCloseTimeout));
    stream_.async_shutdown([self = self()](beast::error_code) { self->close(); });
  } else {
    close();
  }
}

template <class Stream>
void StreamSession<Stream>::close() {
  beast::error_code ignored;
  tcp().socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  tcp().close();
}

}  // namespace

std::shared_ptr<Session> make_session(asio::ip::tcp::socket socket, ssl::context* tls,
                                      const SessionLimits& limits, Dispatch dispatch,
                                      RequestLog log) {
  if (tls != nullptr) {
    return std::make_shared<StreamSession<TlsStream>>(limits, std::move(dispatch), std::move(log),
                                                      std::move(socket), *tls);
  }
  return std::make_shared<StreamSession<PlainStream>>(limits, std::move(dispatch), std::move(log),
                                                      std::move(socket));
}

}  // namespace aec::server
