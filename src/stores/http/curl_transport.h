// CurlTransport: HTTP/1.1 requests to one server through libcurl, for the http:// store.
//
// Connections are kept alive: each pooled handle pairs a curl easy handle with its own multi
// handle, whose connection cache keeps the connection to the server between requests. A request
// takes an idle handle from the pool (or makes one), so calls from several threads at once (a
// heartbeat renewing while the main thread waits) each get their own connection.
#pragma once

#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <aec/clock.h>
#include <aec/status.h>

namespace aec::http {

struct TransportOptions {
  std::string base_url;  // "http://HOST:PORT": every target is appended to it
  std::string cacert;    // https: PEM file of certificates to trust; empty for the system's
  // Sent as "Authorization: Bearer TOKEN" when non-empty. Never logged or put in a message.
  std::string token;
  milliseconds connect_timeout{5'000};
  // A connection refused, or a host name that does not resolve, means the request was certainly
  // not processed: it is sent again, with jittered exponential backoff, for up to this long.
  milliseconds retry_budget{3'000};
};

struct HttpCall {
  std::string_view method;       // "GET", "POST" or "DELETE"
  std::string target;            // path and query: "/v1/keys/etl%2Fdaily?index=3&wait=30s"
  std::string body;              // POST: the JSON body
  milliseconds timeout{30'000};  // the whole exchange, connecting included
  std::stop_token stop;          // aborts the call at once
  // > 0: asks aecd to stream a pending answer with a heartbeat this often (the Aec-Heartbeat-Ms
  // header: a 200 head, then a space per heartbeat, then the body), and gives the call up,
  // Unavailable, when nothing at all comes for kSilentBeats of them: the connection is dead
  // though the timeout is far (half open, or aecd stopped).
  milliseconds heartbeat{0};
};

// Heartbeats missed before a call that asked for them is given up.
inline constexpr int kSilentBeats = 3;

struct HttpAnswer {
  long status = 0;  // NOLINT(google-runtime-int): libcurl's type
  std::string body;
  // The request went over a new connection although a kept-alive one was at hand. libcurl does
  // that when the kept-alive one turns out dead, before sending or after: it sends a request
  // again, once, when its reused connection breaks with no answer, even if the server got the
  // first copy (curl has no switch for this before 8.16). So the server may have acted twice.
  // Also set when an earlier attempt of the call failed that way and was sent again after a
  // backoff (its resend found nobody listening).
  bool reconnected = false;
};

class CurlTransport {
 public:
  explicit CurlTransport(TransportOptions options);
  ~CurlTransport();
  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  // Sends `call` and returns the server's answer, whatever its status. Errors: Cancelled when
  // call.stop is requested before the answer is complete (the connection is closed, which tells
  // the server the caller left); Unavailable, naming the URL and what failed, when no complete
  // answer came (refused after the retries, timed out, reset). Thread-safe.
  Result<HttpAnswer> send(const HttpCall& call);

  struct Attempt;  // one try of a call, with what libcurl's callbacks saw (curl_transport.cc)

 private:
  struct Handle;

  std::unique_ptr<Handle> take();
  void give_back(std::unique_ptr<Handle> handle);
  Attempt perform(Handle& handle, const HttpCall& call);
  void configure(Handle& handle, const HttpCall& call, Attempt& attempt);
  Status failure(const HttpCall& call, const Attempt& attempt, int attempts,
                 milliseconds spent) const;

  const TransportOptions options_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Handle>> idle_;  // guarded by mu_
};

}  // namespace aec::http
