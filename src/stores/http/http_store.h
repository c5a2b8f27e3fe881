// The `http://HOST:PORT` (and `https://`) store: a client of aecd's /v1 API (docs/api.md), so
// `--store http://...` behaves exactly like the store behind the server. Every guarantee (atomic
// grants, fencing tokens, expiry by the store's clock) is the server's store's; this client only
// carries calls.
//
// What it adds:
// - Parked waits: an acquire with queue and park > 0 is held in line on the server (wait_ms), and
//   wait() is a blocking query (?index=N&wait=...), so a waiter never polls. Both ask for a
//   heartbeat, so a dead connection under them is noticed within seconds.
// - Cancellation: AcquireRequest::stop and wait()'s stop token abort the call in flight at once
//   (Cancelled); the dropped connection tells the server the caller left its place in line.
// - Retries only when the request certainly was not processed (connection refused, host not
//   found); anything else is Unavailable naming the URL and what failed, and an answer from the
//   server is never retried.
// - Authentication: "Authorization: Bearer TOKEN" with the URL's token (TOKEN@HOST) or else
//   $AEC_TOKEN. The token is never logged nor put in a message.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <aec/open_store.h>
#include <aec/store.h>

namespace aec {

struct HttpStoreOptions {
  milliseconds connect_timeout{5'000};
  milliseconds request_timeout{30'000};  // a call that is not parked on the server
  milliseconds park_margin{10'000};      // added to a parked call's wait for its timeout
  // A parked call asks aecd to stream its answer with a heartbeat this often (docs/api.md), and
  // is given up (Unavailable) after http::kSilentBeats of them pass with nothing at all: a dead
  // connection (half open after a network fault, aecd stopped) shows within seconds, not at the
  // parked call's timeout (found by the reliability suite's mixed nemesis, T11). 0: no
  // heartbeat. At least 1 s.
  milliseconds heartbeat{5'000};
  // How long connections refused (or a host name that does not resolve) are retried.
  milliseconds retry_budget{3'000};
  // The bearer token. nullopt: the URL's, or else $AEC_TOKEN; empty: none.
  std::optional<std::string> token;
};

// Opens a client of the aecd at `url` (see stores/http/http_url.h for its forms). Connects
// lazily: a server that is down shows at the first call. `options.clock` measures wait()'s
// deadline. Errors: InvalidArgument for a malformed URL.
// http:// over aec's own sockets, https:// over libcurl (make_transport.cc, aec_store_http).
Result<std::unique_ptr<Store>> open_http_store(std::string_view url, const StoreOptions& options,
                                               const HttpStoreOptions& http = {});

namespace http {
class Transport;
struct TransportOptions;
// Makes the transport for a URL's options; nullptr when it cannot serve that URL's scheme.
using TransportMaker = std::unique_ptr<Transport> (*)(TransportOptions);
// The transport for http:// alone (nullptr for https://): the light `aec` binary's, which links
// no libcurl (aec_store_http_plain).
std::unique_ptr<Transport> make_plain_transport(TransportOptions options);
}  // namespace http

// open_http_store() with the transports `make` gives: an https:// URL it cannot serve is
// FailedPrecondition.
Result<std::unique_ptr<Store>> open_http_store_with(std::string_view url,
                                                    const StoreOptions& options,
                                                    const HttpStoreOptions& http,
                                                    http::TransportMaker make);

}  // namespace aec
