// Maps a request's method and target to one of aecd's routes (docs/api.md), with the path's
// parameters decoded and the query string split. Pure: no I/O, no store.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <aec/status.h>

namespace aec::server {

enum class Route {
  Acquire,        // POST /v1/leases
  Renew,          // POST /v1/keys/{key}/leases/{token}/renew
  Release,        // POST /v1/keys/{key}/leases/{token}/release
  LeaveQueue,     // DELETE /v1/keys/{key}/queue/{execution_id}
  GetKey,         // GET /v1/keys/{key}
  ListKeys,       // GET /v1/keys
  History,        // GET /v1/keys/{key}/history
  Executions,     // GET /v1/executions
  ForceRelease,   // POST /v1/keys/{key}/force-release
  Purge,          // POST /v1/purge
  VdkExecutions,  // GET /data-jobs/for-team/{team}/jobs/{job}/executions
  Healthz,        // GET /healthz
  Readyz,         // GET /readyz
  Metrics,        // GET /metrics
  Dashboard,      // GET / (the HTML dashboard, docs/dashboard.md)
};

// A stable name for logs and metrics labels ("acquire", "get_key", ...).
std::string_view route_name(Route route);

struct RouteMatch {
  Route route = Route::Healthz;
  bool matched = false;      // false when the target matched no route (an error answer)
  std::string key;           // decoded; routes under /v1/keys/{key}
  std::int64_t token = 0;    // Renew, Release
  std::string execution_id;  // LeaveQueue
  std::string team;          // VdkExecutions
  std::string job;
  std::multimap<std::string, std::string> query;  // decoded; a name may repeat

  // The first value of a query parameter, if present.
  std::optional<std::string> param(std::string_view name) const;
  // Every value of a repeatable parameter, in order.
  std::vector<std::string> params(std::string_view name) const;
};

// Why a target matched no route.
struct RouteError {
  int http_status = 404;  // 404 no such path, 405 wrong method, 400 malformed target
  std::string code;       // "not_found", "method_not_allowed", "invalid_argument"
  std::string message;    // one line
  std::string allow;      // 405: the methods the path accepts ("GET, POST")
};

// `method` is the request's method word ("GET"), `target` the raw request-target
// ("/v1/keys/etl%2Fdaily?wait=5s").
std::variant<RouteMatch, RouteError> match_route(std::string_view method, std::string_view target);

}  // namespace aec::server
