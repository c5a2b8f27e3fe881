// The handlers of aecd's routes (docs/api.md): authorize, decode, call the store on the store
// pool, encode. Store calls never run on an I/O thread.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/thread_pool.hpp>

#include <aec/store.h>

#include "server/auth.h"
#include "server/exchange.h"
#include "server/metrics.h"
#include "server/parking.h"

namespace aec::server {

struct ApiContext {
  Store& store;
  boost::asio::thread_pool& pool;
  Parking& parking;
  const Authorizer& auth;
  ServerMetrics& metrics;
  std::string logs_url_template;
  // The memory store answers a key's acquire, renewal, release and leave without waiting on
  // anything but its own short lock: those calls run on the I/O thread, which saves two thread
  // hand-offs per request. Every other store's calls, and the memory store's others (lists,
  // purge, force-release, blocking queries), go to the store pool.
  bool key_calls_inline = false;
};

// Answers `ex`, at once or later. Called on an I/O thread; never blocks.
void handle_request(ApiContext& api, const std::shared_ptr<Exchange>& ex);

// The route's pattern for metrics labels ("POST /v1/leases").
std::string_view route_pattern(Route route);

}  // namespace aec::server
