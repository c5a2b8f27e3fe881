// An http:// store talking to an in-process aecd, for the conformance suite: the suite runs
// against the client and server together, over a real socket.
#pragma once

#include <memory>
#include <string>

#include <aec/store.h>

#include "tests/conformance/store_factory.h"

namespace aec::testing {

// How the served store reaches its aecd.
enum class ServeOver {
  Http,
  Https,  // a fresh self-signed certificate in env.dir, trusted by the client (?cacert=)
};

// Opens `backing_url` with env's clock and host, serves it with an aecd on 127.0.0.1:0 (timers
// on env's clock), and returns an http(s) store pointed at that server. Destroying the store
// stops the server. Aborts when any step fails (a test cannot run without it).
std::unique_ptr<Store> open_served_store(const std::string& backing_url, const StoreEnv& env,
                                         ServeOver over = ServeOver::Http);

}  // namespace aec::testing
