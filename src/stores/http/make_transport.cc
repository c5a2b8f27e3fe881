// open_http_store(): http:// over aec's own sockets, https:// over libcurl.
#include "stores/http/curl_transport.h"
#include "stores/http/http_store.h"
#include "stores/http/transport.h"

namespace aec {
namespace {

std::unique_ptr<http::Transport> make_transport(http::TransportOptions options) {
  if (options.base_url.starts_with("https://")) {
    return std::make_unique<http::CurlTransport>(std::move(options));
  }
  return http::make_plain_transport(std::move(options));
}

}  // namespace

Result<std::unique_ptr<Store>> open_http_store(std::string_view url, const StoreOptions& options,
                                               const HttpStoreOptions& http) {
  return open_http_store_with(url, options, http, make_transport);
}

}  // namespace aec
