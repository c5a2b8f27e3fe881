// The stores that need a network client: http:// (aec's own sockets), https:// (libcurl),
// postgres:// (libpq), etcd:// (gRPC) and dynamodb:// (libcurl). open_store() hands their URLs
// to open_network_store(), which aec_core defines (network_stores.cc) and the light `aec` binary
// defines otherwise: it links none of those libraries, whose loading would cost every `aec run`
// on the embedded store more than the run itself; it opens http:// itself and passes any other
// such URL to the full binary (src/cli/light_main.cc).
#pragma once

#include <memory>
#include <string_view>

#include <aec/open_store.h>
#include <aec/status.h>
#include <aec/store.h>

namespace aec {

// http, https, postgres, postgresql, etcd, dynamodb.
inline bool is_network_scheme(std::string_view scheme) {
  return scheme == "http" || scheme == "https" || scheme == "postgres" || scheme == "postgresql" ||
         scheme == "etcd" || scheme == "dynamodb";
}

// Opens `url`, whose scheme is `scheme` (is_network_scheme()).
Result<std::unique_ptr<Store>> open_network_store(std::string_view scheme, std::string_view url,
                                                  const StoreOptions& options);

}  // namespace aec
