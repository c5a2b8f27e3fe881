// Transport: HTTP/1.1 requests to one aecd server, for the http:// store. Two of them:
// SocketTransport for http:// (its own sockets; Boost.Beast parses the answers) and CurlTransport
// for https:// (libcurl, for TLS). Both keep connections alive between requests, one per caller
// at a time, so calls from several threads at once (a heartbeat renewing while the main thread
// waits) each get their own connection; send(), shared, sends a call again while it was
// certainly never sent.
#pragma once

#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

#include <aec/clock.h>
#include <aec/status.h>

namespace aec::http {

struct TransportOptions {
  std::string base_url;  // "http://HOST:PORT": names the server in messages
  std::string host;      // as in the URL: an IPv6 address keeps its brackets
  int port = 0;
  std::string cacert;  // https: PEM file of certificates to trust; empty for the system's
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

// The most of an answer's body a call takes; a longer one fails the call.
inline constexpr std::size_t kMaxAnswerBytes = std::size_t{64} << 20;

struct HttpAnswer {
  long status = 0;  // NOLINT(google-runtime-int): libcurl's type
  std::string body;
  // The request may have reached the server twice. A request that finds its kept-alive
  // connection broken with no answer is sent once more over a new connection (as browsers and
  // libcurl do: the server may have closed an idle connection just as it was reused), although
  // the server may have got and acted on the first copy. Also set when an earlier attempt of the
  // call failed that way and was sent again after a backoff (its resend found nobody listening).
  bool reconnected = false;
};

// What one try of a call came to (one connection, or a broken reused one and its resend).
struct Try {
  enum class End {
    Answered,   // `answer` holds a complete answer, whatever its status
    Cancelled,  // call.stop was requested first; the connection is closed
    NotSent,    // could not connect (refused, unreachable, unresolved): certainly not processed
    Failed,     // anything else: the server may or may not have processed the request
  };
  enum class Why { Other, TimedOut, Silent, Untrusted, BadCaFile };

  End end = End::Failed;
  Why why = Why::Other;  // Failed
  HttpAnswer answer;     // Answered
  std::string error;     // NotSent, Failed: what failed, in a few words
  // A copy of the request may have reached the server before this try failed (see
  // HttpAnswer::reconnected).
  bool reconnected = false;
};

class Transport {
 public:
  explicit Transport(TransportOptions options) : options_(std::move(options)) {}
  virtual ~Transport() = default;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Sends `call` and returns the server's answer, whatever its status. Errors: Cancelled when
  // call.stop is requested before the answer is complete (the connection is closed, which tells
  // the server the caller left); Unavailable, naming the URL and what failed, when no complete
  // answer came (refused after the retries, timed out, reset). Thread-safe.
  Result<HttpAnswer> send(const HttpCall& call);

  const TransportOptions& options() const { return options_; }

 protected:
  // One try of `call` on a kept-alive connection or a new one, which goes back to the idle ones
  // when the answer leaves it usable.
  virtual Try try_once(const HttpCall& call) = 0;
  // Forgets the idle connections: the way to the server just failed under one of them, and
  // they share that way (half open after a network fault, a NAT that dropped them), so the next
  // call connects afresh instead of waiting out its timeout on one of them (found by the
  // reliability suite's half-open partition, T5).
  virtual void drop_idle() = 0;

 private:
  Status failure(const HttpCall& call, const Try& t, int attempts, milliseconds spent) const;

  const TransportOptions options_;
};

}  // namespace aec::http
