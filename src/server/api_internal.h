// Helpers shared by the route handlers (api.cc, api_reads.cc). Internal to aecd.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "server/api.h"

namespace aec::server::detail {

// Runs `fn` on the store pool; a Status it returns that is not ok answers the exchange with
// the error (fn answers it itself on success).
inline void on_pool(ApiContext& api, const std::shared_ptr<Exchange>& ex,
                    std::function<Status()> fn) {
  boost::asio::post(api.pool, [ex, fn = std::move(fn)] {
    Status s = fn();
    if (!s.is_ok()) {
      ex->respond_error(s);
    }
  });
}

// A key's acquire, renewal, release or leave: on the I/O thread when the store allows it
// (ApiContext::key_calls_inline), else on the store pool.
inline void on_key_call(ApiContext& api, const std::shared_ptr<Exchange>& ex,
                        std::function<Status()> fn) {
  if (!api.key_calls_inline) {
    on_pool(api, ex, std::move(fn));
    return;
  }
  if (Status s = fn(); !s.is_ok()) {
    ex->respond_error(s);
  }
}

// The request body as a JSON object; an empty body is {}.
Result<nlohmann::json> body_object(const Exchange& ex);

// A decimal integer >= 0 and nothing else.
std::optional<std::int64_t> whole_number(std::string_view text);

// Query parameters: limit (1..1000, default 100), offset (>= 0), a duration.
Result<std::size_t> limit_param(const Exchange& ex);
Result<std::size_t> offset_param(const Exchange& ex);
Result<std::optional<milliseconds>> duration_param(const Exchange& ex, std::string_view name);

// Times a store call into aec_store_latency_seconds{op}.
template <typename F>
auto timed(ApiContext& api, std::string_view op, F&& call) {
  auto start = std::chrono::steady_clock::now();
  auto r = call();
  api.metrics.store_latency.with({op}).observe(std::chrono::steady_clock::now() - start);
  return r;
}

void get_key(ApiContext& api, const std::shared_ptr<Exchange>& ex);
void list_keys(ApiContext& api, const std::shared_ptr<Exchange>& ex);
void list_executions(ApiContext& api, const std::shared_ptr<Exchange>& ex, std::string key);
void vdk_executions_route(ApiContext& api, const std::shared_ptr<Exchange>& ex);
void readyz(ApiContext& api, const std::shared_ptr<Exchange>& ex);

}  // namespace aec::server::detail
