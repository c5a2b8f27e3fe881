// Plain HTTP calls to the credential endpoints of AWS's compute services (the container endpoint,
// the instance metadata service): link-local or loopback addresses, never through a proxy, one
// try each with a short timeout.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <aec/status.h>

namespace aec::aws {

struct MetadataReply {
  long status = 0;  // NOLINT(google-runtime-int): libcurl's type
  std::string body;
};

// Sends METHOD `url` with `headers` ("Name: value") and an empty body. Unavailable, naming the
// URL, when no whole answer comes within `timeout`; any HTTP status is an answer.
Result<MetadataReply> metadata_request(std::string_view method, const std::string& url,
                                       const std::vector<std::string>& headers,
                                       std::chrono::milliseconds timeout);

}  // namespace aec::aws
