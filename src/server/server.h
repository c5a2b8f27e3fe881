// aec::server::Server: aecd's HTTP/1.1 (or HTTPS) service (docs/api.md) over one Store.
//
//   auto server = aec::server::Server::start({.store = store, .listen = "127.0.0.1:0"});
//   int port = (*server)->port();
//   ...
//   (*server)->stop();  // graceful: stop accepting, answer what is in flight, release nothing
//
// Event-driven: a few I/O threads run every connection on Boost.Asio; a parked request (a
// blocking query or a waiter in line) is a timer and a few hundred bytes, not a thread. Store
// calls, which may block, run on a separate pool of store threads.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include <aec/clock.h>
#include <aec/status.h>
#include <aec/store.h>

namespace aec::server {

struct ServerOptions {
  std::shared_ptr<Store> store;                 // required; shared with the caller
  std::shared_ptr<Clock> clock = real_clock();  // timers of parked requests
  std::string listen = "127.0.0.1:7070";        // HOST:PORT; port 0 picks a free port (see port())
  int io_threads = 1;                           // threads running connections
  int store_threads = 32;                       // threads calling the store (bench/RESULTS.md)
  std::size_t max_connections = 10'000;         // beyond this, new connections are closed at once
  milliseconds header_timeout{10'000};          // to receive a request's head and body
  milliseconds idle_timeout{120'000};  // an idle keep-alive connection is closed after this
  // Keys with parked requests are read again this often, for changes made by others (another
  // aecd, `aec` on the same sqlite file). A store with a change feed (postgres, etcd:
  // Store::watch_changes) also pushes them to this server at once.
  milliseconds recheck_interval{1'000};
  std::string tokens_file;       // bearer tokens (see auth.h); empty: anonymous access
  bool insecure_listen = false;  // allow anonymous access on a non-loopback address
  // PEM certificate chain and unencrypted private key; both set: serve HTTPS (TLS 1.2 or later)
  // instead of HTTP, the handshake within header_timeout. Read once, by start().
  std::string tls_cert;
  std::string tls_key;
  bool log_json = false;          // one request log line as JSON instead of text
  bool log_requests = true;       // write one line per request to stderr
  std::string logs_url_template;  // VDK executions' logs_url: {team} {job} {id} are replaced
};

class Server {
 public:
  // Binds, listens and starts serving. Errors: InvalidArgument (a bad listen address or
  // option; a token file, TLS certificate or key that cannot be read or used, naming the file),
  // Unavailable (the address is in use), PermissionDenied.
  static Result<std::unique_ptr<Server>> start(ServerOptions options);

  virtual ~Server() = default;

  // The port actually bound.
  virtual int port() const = 0;
  // "http://127.0.0.1:PORT" (or https), a URL clients can use.
  virtual std::string url() const = 0;
  // Stops accepting, answers every request in flight (parked ones with their current state:
  // a parked acquire answers busy, a blocking query the unchanged state), closes connections
  // (over TLS, waiting at most a second for each client to answer the close), and returns when
  // every thread has ended. Releases no lease. Idempotent.
  virtual void stop() = 0;
  // Blocks until stop() has run (from another thread or a signal handler thread).
  virtual void wait() = 0;
};

}  // namespace aec::server
