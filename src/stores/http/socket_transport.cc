#include "stores/http/socket_transport.h"

#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/duration.h"
#include "core/text.h"
#include "core/unique_fd.h"
#include "stores/http/http_store.h"

namespace aec::http {
namespace {

namespace bhttp = boost::beast::http;
using Steady = std::chrono::steady_clock;

constexpr std::size_t kMaxIdle = 8;  // idle connections kept for reuse
constexpr std::size_t kReadBytes = 16 * 1024;
constexpr std::uint32_t kMaxHeaderBytes = 64 * 1024;
// TCP keep-alive probes after this long idle, and between them: a parked call may sit idle for
// minutes (libcurl's defaults, which the https:// transport uses).
constexpr int kKeepAliveSeconds = 60;

enum class Ready { Yes, Stopped, TimedOut };

// Waits until `fd` has `events` (or an error or hang-up to report), `wake` is readable (a stop
// request), or `until`.
Ready wait_for(int fd, short events, int wake, Steady::time_point until) {
  for (;;) {
    auto left = std::chrono::ceil<milliseconds>(until - Steady::now());
    if (left < milliseconds(0)) {
      left = milliseconds(0);
    }
    pollfd fds[2] = {{.fd = fd, .events = events, .revents = 0},
                     {.fd = wake, .events = POLLIN, .revents = 0}};
    int n = ::poll(fds, wake >= 0 ? 2 : 1,
                   static_cast<int>(std::min<std::int64_t>(left.count(), INT_MAX)));
    if (n < 0 && errno != EINTR) {
      return Ready::Yes;  // the I/O call that follows reports what is wrong
    }
    if (wake >= 0 && (fds[1].revents & POLLIN) != 0) {
      return Ready::Stopped;
    }
    if (n > 0 && fds[0].revents != 0) {
      return Ready::Yes;
    }
    if (Steady::now() >= until) {
      return Ready::TimedOut;
    }
  }
}

// now + d, or the far future for a d beyond any call's (no overflow).
Steady::time_point deadline_after(milliseconds d) {
  constexpr auto kFar = std::chrono::hours(24 * 365);
  return d >= kFar ? Steady::time_point::max() : Steady::now() + d;
}

void set_option(int fd, int level, int name, int value) {
  // Best effort: a connection works without any of them.
  (void)::setsockopt(fd, level, name, &value, sizeof(value));
}

}  // namespace

struct SocketTransport::Connection {
  UniqueFd fd;
};

namespace {

using AddrList = std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)>;

struct Addresses {
  AddrList list{nullptr, ::freeaddrinfo};
  std::string error;     // when list is null
  bool stopped = false;  // when list is null: `stop` was requested
};

// A host name's lookup, run on a thread of its own so that a resolver that does not answer
// holds the call only until its connect deadline, and a stop request not at all: the thread is
// left to finish alone, and the last of it and the caller frees this.
struct Lookup {
  std::mutex mu;
  std::condition_variable_any cv;
  bool done = false;                       // guarded by mu
  int rc = 0;                              // guarded by mu
  int err = 0;                             // errno after rc == EAI_SYSTEM; guarded by mu
  AddrList list{nullptr, ::freeaddrinfo};  // guarded by mu
};

Addresses resolve(const std::string& host, int port, const std::stop_token& stop,
                  Steady::time_point until) {
  Addresses out;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
  std::string service = std::to_string(port);
  addrinfo* found = nullptr;
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found);  // an address: no I/O
  if (rc == 0) {
    out.list.reset(found);
    return out;
  }
  hints.ai_flags = AI_NUMERICSERV;
  auto lookup = std::make_shared<Lookup>();
  try {
    std::thread([lookup, host, service, hints] {
      addrinfo* res = nullptr;
      int code = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
      int err = errno;
      std::lock_guard lock(lookup->mu);
      lookup->rc = code;
      lookup->err = err;
      lookup->list.reset(res);
      lookup->done = true;
      lookup->cv.notify_all();
    }).detach();
  } catch (const std::system_error& e) {
    out.error = fmt::format("cannot start the lookup: {}", e.what());
    return out;
  }
  std::unique_lock lock(lookup->mu);
  if (!lookup->cv.wait_until(lock, stop, until, [&] { return lookup->done; })) {
    out.stopped = stop.stop_requested();
    out.error = "no answer from the resolver in time";
    return out;
  }
  if (lookup->rc != 0) {
    out.error = lookup->rc == EAI_SYSTEM ? errno_text(lookup->err) : gai_strerror(lookup->rc);
    return out;
  }
  out.list = std::move(lookup->list);
  return out;
}

// What connecting came to: a connection, or a Try that says why there is none.
struct Connected {
  std::unique_ptr<SocketTransport::Connection> connection;
  Try failed;
};

Connected connect_to(const TransportOptions& o, const std::stop_token& stop, int wake,
                     Steady::time_point deadline) {
  Connected out;
  Try& t = out.failed;
  t.end = Try::End::NotSent;
  std::string host = o.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::string where = fmt::format("{}:{}", o.host, o.port);
  auto connect_until = std::min(deadline, deadline_after(o.connect_timeout));
  // Certainly not sent; but when the call's own time ran out, that is what the caller hears.
  auto not_sent = [&](std::string what) {
    bool call_over = Steady::now() >= deadline;
    t.end = call_over ? Try::End::Failed : Try::End::NotSent;
    t.why = call_over ? Try::Why::TimedOut : Try::Why::Other;
    t.error = std::move(what);
    return std::move(out);
  };
  Addresses addresses = resolve(host, o.port, stop, connect_until);
  if (addresses.list == nullptr) {
    if (addresses.stopped) {
      t.end = Try::End::Cancelled;
      return out;
    }
    return not_sent(fmt::format("cannot resolve host {}: {}", o.host, addresses.error));
  }
  int last_error = ECONNREFUSED;
  for (addrinfo* a = addresses.list.get(); a != nullptr; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
      last_error = errno;
      continue;
    }
    int err = ::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      // An address that does not answer (an IPv6 route that drops everything) takes at most
      // half of the time left when other addresses follow, so they get their turn.
      auto until = connect_until;
      if (a->ai_next != nullptr) {
        until = Steady::now() + (connect_until - Steady::now()) / 2;
      }
      Ready r = wait_for(fd.get(), POLLOUT, wake, until);
      if (r == Ready::Stopped) {
        t.end = Try::End::Cancelled;
        return out;
      }
      if (r == Ready::TimedOut) {
        last_error = ETIMEDOUT;
        continue;
      }
      socklen_t len = sizeof(err);
      if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
      }
    }
    if (err != 0) {
      last_error = err;
      continue;
    }
    set_option(fd.get(), IPPROTO_TCP, TCP_NODELAY, 1);
    set_option(fd.get(), SOL_SOCKET, SO_KEEPALIVE, 1);
    set_option(fd.get(), IPPROTO_TCP, TCP_KEEPIDLE, kKeepAliveSeconds);
    set_option(fd.get(), IPPROTO_TCP, TCP_KEEPINTVL, kKeepAliveSeconds);
    out.connection = std::make_unique<SocketTransport::Connection>();
    out.connection->fd = std::move(fd);
    return out;
  }
  return not_sent(fmt::format("connecting to {}: {}", where, errno_text(last_error)));
}

// One request and its answer over `c`.
struct Exchange {
  Try t;              // Answered, Cancelled or Failed
  bool keep = false;  // Answered: the connection may carry the next request
  // Failed with nothing at all back from the server (no byte, no timeout): the connection was
  // broken, perhaps before the request got there.
  bool broken = false;
};

Exchange exchange(SocketTransport::Connection& c, const std::string& request, const HttpCall& call,
                  int wake, Steady::time_point deadline) {
  Exchange x;
  Try& t = x.t;
  int fd = c.fd.get();
  auto timed_out = [&](std::string what) {
    t.end = Try::End::Failed;
    t.why = Try::Why::TimedOut;
    t.error = std::move(what);
    return x;
  };
  for (std::size_t sent = 0; sent < request.size();) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n >= 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      t.error = fmt::format("sending the request: {}", errno_text(errno));
      x.broken = true;
      return x;
    }
    Ready r = wait_for(fd, POLLOUT, wake, deadline);
    if (r == Ready::Stopped) {
      t.end = Try::End::Cancelled;
      return x;
    }
    if (r == Ready::TimedOut) {
      return timed_out("timed out sending the request");
    }
  }

  std::optional<bhttp::response_parser<bhttp::string_body>> parser;
  auto fresh_parser = [&parser] {
    parser.emplace();
    parser->body_limit(kMaxAnswerBytes);
    parser->header_limit(kMaxHeaderBytes);
    parser->eager(true);
  };
  fresh_parser();
  milliseconds silence = call.heartbeat * kSilentBeats;
  auto heard = Steady::now();
  std::size_t received = 0;
  std::string pending;  // bytes the parser has not taken yet
  char buf[kReadBytes];
  auto done = [&](bool keep) {
    auto& res = parser->get();
    t.end = Try::End::Answered;
    t.answer = HttpAnswer{.status = res.result_int(), .body = std::move(res.body())};
    x.keep = keep && res.keep_alive() && !parser->need_eof() && pending.empty();
    return x;
  };
  for (;;) {
    auto until = deadline;
    if (silence > milliseconds(0)) {
      until = std::min(until, heard + silence);
    }
    Ready r = wait_for(fd, POLLIN, wake, until);
    if (r == Ready::Stopped) {
      t.end = Try::End::Cancelled;
      return x;
    }
    if (r == Ready::TimedOut) {
      if (Steady::now() < deadline) {  // the silence ran out first
        t.end = Try::End::Failed;
        t.why = Try::Why::Silent;
        t.error = "silent";
        return x;
      }
      return timed_out(fmt::format("timed out with {} bytes of the answer received", received));
    }
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
        continue;
      }
      t.error = fmt::format("receiving the answer: {}", errno_text(errno));
      x.broken = received == 0;
      return x;
    }
    if (n == 0) {
      if (received == 0) {
        t.error = "aecd closed the connection without answering";
        x.broken = true;
        return x;
      }
      boost::system::error_code ec;
      if (parser->got_some()) {  // else only an interim answer came: nothing to end
        parser->put_eof(ec);
        if (!ec && parser->is_done()) {
          return done(/*keep=*/false);
        }
      }
      t.error = fmt::format("aecd closed the connection {} bytes into its answer", received);
      return x;
    }
    received += static_cast<std::size_t>(n);
    heard = Steady::now();
    pending.append(buf, static_cast<std::size_t>(n));
    while (!pending.empty()) {
      boost::system::error_code ec;
      std::size_t used = parser->put(boost::asio::buffer(pending), ec);
      pending.erase(0, used);
      if (ec == bhttp::error::need_more) {
        break;
      }
      if (ec) {
        t.error = ec == bhttp::error::body_limit
                      ? fmt::format("the answer is longer than {} bytes", kMaxAnswerBytes)
                      : fmt::format("not an HTTP/1.1 answer: {}", ec.message());
        return x;
      }
      if (!parser->is_done()) {
        if (used == 0) {
          break;  // nothing it can take yet
        }
        continue;
      }
      int status = parser->get().result_int();
      if (status >= 100 && status < 200 && status != 101) {
        fresh_parser();  // an interim answer: the final one follows
        continue;
      }
      return done(/*keep=*/true);
    }
  }
}

}  // namespace

SocketTransport::SocketTransport(TransportOptions options)
    : Transport(std::move(options)),
      request_head_(
          fmt::format("Host: {}:{}\r\nAccept: application/json\r\n{}", this->options().host,
                      this->options().port,
                      this->options().token.empty()
                          ? std::string()
                          : fmt::format("Authorization: Bearer {}\r\n", this->options().token))) {}

SocketTransport::~SocketTransport() = default;

std::unique_ptr<SocketTransport::Connection> SocketTransport::take_idle() {
  for (;;) {
    std::unique_ptr<Connection> c;
    {
      std::lock_guard lock(mu_);
      if (idle_.empty()) {
        return nullptr;
      }
      c = std::move(idle_.back());
      idle_.pop_back();
    }
    // An idle connection has nothing to read: anything there (the server's close, most often
    // its idle timeout) means it is done with.
    pollfd p{.fd = c->fd.get(), .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, 0) == 0) {
      return c;
    }
  }
}

void SocketTransport::give_back(std::unique_ptr<Connection> c) {
  std::lock_guard lock(mu_);
  if (idle_.size() < kMaxIdle) {
    idle_.push_back(std::move(c));
  }
}

void SocketTransport::drop_idle() {
  std::lock_guard lock(mu_);
  idle_.clear();
}

Try SocketTransport::try_once(const HttpCall& call) {
  auto deadline = deadline_after(call.timeout);
  // A stop request makes `wake` readable, which ends any wait of this try at once.
  UniqueFd wake;
  if (call.stop.stop_possible()) {
    wake = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (wake.get() < 0) {  // a call that could not be stopped: not sent at all
      Try t;
      t.error = fmt::format("cannot make an eventfd: {}", errno_text(errno));
      return t;
    }
  }
  auto poke = [fd = wake.get()] {
    std::uint64_t one = 1;
    (void)!::write(fd, &one, sizeof(one));
  };
  std::optional<std::stop_callback<decltype(poke)>> on_stop;
  if (wake.get() >= 0) {
    on_stop.emplace(call.stop, poke);
  }

  std::string request;
  request.reserve(call.target.size() + request_head_.size() + call.body.size() + 96);
  request.append(call.method).append(" ").append(call.target).append(" HTTP/1.1\r\n");
  request.append(request_head_);
  if (call.method == "POST") {
    request.append("Content-Type: application/json\r\n");
    fmt::format_to(std::back_inserter(request), "Content-Length: {}\r\n", call.body.size());
  }
  if (call.heartbeat > milliseconds(0)) {
    fmt::format_to(std::back_inserter(request), "Aec-Heartbeat-Ms: {}\r\n", call.heartbeat.count());
  }
  request.append("\r\n").append(call.body);

  std::unique_ptr<Connection> c = take_idle();
  bool reused = c != nullptr;
  for (bool resent = false;; resent = true) {
    if (c == nullptr) {
      Connected k = connect_to(options(), call.stop, wake.get(), deadline);
      if (k.connection == nullptr) {
        k.failed.reconnected = resent;
        return std::move(k.failed);
      }
      c = std::move(k.connection);
    }
    Exchange x = exchange(*c, request, call, wake.get(), deadline);
    x.t.reconnected = resent;
    if (x.t.end == Try::End::Answered && x.keep) {
      give_back(std::move(c));
    }
    if (x.broken && reused && !resent) {
      c.reset();  // broken before the answer: maybe the server closed it just as it was reused
      continue;
    }
    return std::move(x.t);
  }
}

std::unique_ptr<Transport> make_plain_transport(TransportOptions options) {
  if (options.base_url.starts_with("https://")) {
    return nullptr;
  }
  return std::make_unique<SocketTransport>(std::move(options));
}

}  // namespace aec::http
