// What the dynamodb:// store's two libcurl clients (DynamoClient, metadata_request) share:
// libcurl's process-wide set-up, and the writer that collects an answer's body.
#pragma once

#include <cstddef>
#include <string>

#include <curl/curl.h>

namespace aec::aws {

// curl_global_init, once per process, before the first handle (thread-safe since 7.84).
inline void init_curl_once() {
  static const CURLcode init = curl_global_init(CURL_GLOBAL_DEFAULT);
  (void)init;
}

// CURLOPT_WRITEFUNCTION appending to the std::string of CURLOPT_WRITEDATA; an answer longer
// than kMax bytes ends the transfer (CURLE_WRITE_ERROR).
template <std::size_t kMax>
std::size_t append_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* body = static_cast<std::string*>(user);
  if (body->size() + size * n > kMax) {
    return 0;
  }
  body->append(data, size * n);
  return size * n;
}

}  // namespace aec::aws
