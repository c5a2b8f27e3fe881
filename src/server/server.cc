#include "server/server.h"

#include <atomic>
#include <condition_variable>
#include <list>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/duration.h"
#include "core/status_macros.h"
#include "server/api.h"
#include "server/parking.h"
#include "server/server_config.h"
#include "server/session.h"
#include "server/tls_context.h"

namespace aec::server {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Result<tcp::endpoint> resolve(asio::io_context& io, const ListenAddress& where) {
  boost::system::error_code ec;
  tcp::resolver resolver(io);
  auto results = resolver.resolve(where.host, std::to_string(where.port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return invalid_argument(fmt::format("listen address '{}': cannot resolve: {}", where.host,
                                        ec ? ec.message() : "no address"));
  }
  return results.begin()->endpoint();
}

void log_line(const ServerOptions& options, const Exchange& ex, unsigned status,
              std::chrono::steady_clock::duration took) {
  double ms = std::chrono::duration<double, std::milli>(took).count();
  std::string_view method(ex.request().method_string().data(), ex.request().method_string().size());
  std::string_view target(ex.request().target().data(), ex.request().target().size());
  std::string line;
  if (options.log_json) {
    nlohmann::json j = {{"time", format_time(std::chrono::system_clock::now())},
                        {"peer", ex.peer()},
                        {"principal", ex.principal},
                        {"method", method},
                        {"target", target},
                        {"route", ex.route().matched ? route_name(ex.route().route) : "unmatched"},
                        {"status", status},
                        {"ms", ms}};
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line = fmt::format("{} {} {} {} {} {:.3f}ms {}", format_time(std::chrono::system_clock::now()),
                       ex.peer(), method, target, status, ms,
                       ex.principal.empty() ? "-" : ex.principal);
  }
  std::fprintf(stderr, "aecd: %s\n", line.c_str());
}

class ServerImpl final : public Server {
 public:
  // `tls` null: plain HTTP.
  ServerImpl(ServerOptions options, Authorizer auth, std::unique_ptr<asio::ssl::context> tls)
      : options_(std::move(options)),
        auth_(std::move(auth)),
        tls_(std::move(tls)),
        acceptor_(io_),
        pool_(static_cast<std::size_t>(std::max(1, options_.store_threads))),
        parking_(io_, pool_, *options_.store, options_.recheck_interval),
        api_{*options_.store,
             pool_,
             parking_,
             auth_,
             metrics_,
             options_.logs_url_template,
             /*key_calls_inline=*/options_.store->url().starts_with("memory:")} {
    // Changes made through other servers or clients wake this server's waiters at once.
    feed_ = options_.store->watch_changes([this](const std::string& key) {
      metrics_.store_changes.inc();
      parking_.changed(key);
    });
  }

  ~ServerImpl() override { stop(); }

  Status listen(const tcp::endpoint& at) {
    boost::system::error_code ec;
    acceptor_.open(at.protocol(), ec);
    if (!ec) {
      acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    }
    if (!ec) {
      acceptor_.bind(at, ec);
    }
    if (!ec) {
      acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
      std::string what = fmt::format("cannot listen on {}:{}: {}", at.address().to_string(),
                                     at.port(), ec.message());
      if (ec == asio::error::address_in_use) {
        return unavailable(what + "; stop the other server or choose another --listen port");
      }
      if (ec == asio::error::access_denied) {
        return Status(Code::PermissionDenied, what + "; use a port above 1023");
      }
      return invalid_argument(what);
    }
    port_ = acceptor_.local_endpoint().port();
    return Status::ok();
  }

  void run() {
    accept();
    for (int i = 0; i < std::max(1, options_.io_threads); ++i) {
      threads_.emplace_back([this] { io_.run(); });
    }
  }

  int port() const override { return port_; }

  std::string url() const override {
    auto ep = acceptor_.local_endpoint();
    std::string host = ep.address().to_string();
    if (ep.address().is_unspecified()) {
      host = ep.address().is_v6() ? "::1" : "127.0.0.1";
    }
    if (ep.address().is_v6()) {
      host = "[" + host + "]";
    }
    return fmt::format("{}://{}:{}", tls_ ? "https" : "http", host, port_);
  }

  void stop() override {
    std::call_once(stopped_once_, [this] { shut_down(); });
  }

  void wait() override {
    std::unique_lock lock(stop_mu_);
    stopped_cv_.wait(lock, [this] { return stopped_; });
  }

 private:
  void accept() {
    acceptor_.async_accept(asio::make_strand(io_),
                           [this](boost::system::error_code ec, tcp::socket socket) {
                             if (ec == asio::error::operation_aborted || !acceptor_.is_open()) {
                               return;
                             }
                             if (!ec) {
                               start_session(std::move(socket));
                             }
                             accept();
                           });
  }

  void start_session(tcp::socket socket) {
    std::lock_guard lock(sessions_mu_);
    std::erase_if(sessions_, [](const auto& s) { return s.expired(); });
    if (sessions_.size() >= options_.max_connections || stopping_) {
      boost::system::error_code ignored;
      socket.close(ignored);  // over the cap: the client sees a closed connection at once
      return;
    }
    SessionLimits limits{.header_timeout = options_.header_timeout,
                         .idle_timeout = options_.idle_timeout};
    auto session = make_session(
        std::move(socket), tls_.get(), limits,
        [this, counted = count_connection()](std::shared_ptr<Exchange> ex) { dispatch(ex); },
        [this](const Exchange& ex, unsigned status, std::chrono::steady_clock::duration took) {
          metrics_.http_requests
              .with({ex.route().matched ? route_pattern(ex.route().route) : "unmatched",
                     std::to_string(status)})
              .inc();
          if (options_.log_requests) {
            log_line(options_, ex, status, took);
          }
        });
    sessions_.push_back(session);
    session->start();
  }

  void dispatch(const std::shared_ptr<Exchange>& ex) { handle_request(api_, ex); }

  // Counts one open connection until the returned handle (kept by the session) is dropped.
  std::shared_ptr<void> count_connection() {
    metrics_.connections.add(1);
    return std::shared_ptr<void>(nullptr, [this](void*) { metrics_.connections.sub(1); });
  }

  // Graceful: no new connections; parked requests answered now; requests in flight finish and
  // their connections close after the answer; then the threads end. Nothing is released.
  void shut_down() {
    {
      std::lock_guard lock(sessions_mu_);
      stopping_ = true;
    }
    asio::post(io_, [this] {
      boost::system::error_code ignored;
      acceptor_.close(ignored);
    });
    feed_.reset();  // no more wake-ups from the store
    parking_.shut_down();
    {
      std::lock_guard lock(sessions_mu_);
      for (const auto& weak : sessions_) {
        if (auto s = weak.lock()) {
          s->shut_down();
        }
      }
    }
    // The I/O threads end once the last connection has closed, each after the answer to its
    // request in flight. Only then is the store pool joined: a session still reading a request
    // when it was told to close hands it to the pool all the same, and a pool joined before
    // would never run it (the request unanswered, this wait endless).
    for (std::thread& t : threads_) {
      t.join();
    }
    pool_.join();  // idle by now: every store call has answered
    {
      std::lock_guard lock(stop_mu_);
      stopped_ = true;
    }
    stopped_cv_.notify_all();
  }

  ServerOptions options_;
  Authorizer auth_;
  std::unique_ptr<asio::ssl::context> tls_;  // null: plain HTTP; outlives io_ and its sessions
  ServerMetrics metrics_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  asio::thread_pool pool_;
  Parking parking_;
  ApiContext api_;
  std::unique_ptr<ChangeFeed> feed_;  // after parking_: destroyed first
  int port_ = 0;
  std::vector<std::thread> threads_;
  std::mutex sessions_mu_;
  std::vector<std::weak_ptr<Session>> sessions_;  // guarded by sessions_mu_
  bool stopping_ = false;                         // guarded by sessions_mu_
  std::once_flag stopped_once_;
  std::mutex stop_mu_;
  std::condition_variable stopped_cv_;
  bool stopped_ = false;  // guarded by stop_mu_
};

}  // namespace

Result<std::unique_ptr<Server>> Server::start(ServerOptions options) {
  if (!options.store) {
    return invalid_argument("aecd needs a store");
  }
  AEC_ASSIGN_OR_RETURN(ListenAddress where, parse_listen_address(options.listen));
  std::unique_ptr<asio::ssl::context> tls;
  if (!options.tls_cert.empty() || !options.tls_key.empty()) {
    AEC_ASSIGN_OR_RETURN(tls, make_tls_context(options.tls_cert, options.tls_key));
  }
  Authorizer auth = Authorizer::anonymous();
  if (!options.tokens_file.empty()) {
    AEC_ASSIGN_OR_RETURN(auth, Authorizer::from_file(options.tokens_file));
  } else if (!where.is_loopback && !options.insecure_listen) {
    return invalid_argument(fmt::format(
        "listen address '{}' is not loopback and no --tokens file is given: add --tokens FILE, "
        "or --insecure-listen to serve anyone who can connect",
        options.listen));
  }
  auto server = std::make_unique<ServerImpl>(std::move(options), std::move(auth), std::move(tls));
  asio::io_context resolver_io;
  AEC_ASSIGN_OR_RETURN(tcp::endpoint at, resolve(resolver_io, where));
  AEC_RETURN_IF_ERROR(server->listen(at));
  server->run();
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace aec::server
