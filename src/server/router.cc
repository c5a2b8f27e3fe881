#include "server/router.h"

#include <charconv>

#include <fmt/format.h>

#include "api/wire.h"
#include "core/text.h"

namespace aec::server {
namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t start = 1;  // skip the leading '/'
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      slash = path.size();
    }
    parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

// Query values use form encoding: '+' is a space, then percent escapes.
Result<std::string> decode_query_part(std::string_view raw) {
  std::string plus(raw);
  for (char& c : plus) {
    if (c == '+') {
      c = ' ';
    }
  }
  return wire::decode_path_segment(plus);
}

Status parse_query(std::string_view query, std::multimap<std::string, std::string>& out) {
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) {
      continue;
    }
    std::size_t eq = pair.find('=');
    auto name = decode_query_part(pair.substr(0, eq));
    auto value = decode_query_part(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    if (!name || !value) {
      return invalid_argument(
          fmt::format("query parameter {} has a malformed %-escape", quote(pair)));
    }
    out.emplace(std::move(*name), std::move(*value));
  }
  return Status::ok();
}

RouteError not_found(std::string_view path) {
  return {404, "not_found", fmt::format("no route {}: see docs/api.md for the /v1 API", path), ""};
}

RouteError bad_target(std::string message) {
  return {400, "invalid_argument", std::move(message), ""};
}

// A path shape: literal segments, and "{}" for a parameter segment.
struct Shape {
  Route route;
  const char* method;
  std::vector<std::string_view> segments;
};

const std::vector<Shape>& shapes() {
  static const std::vector<Shape> kShapes = {
      {Route::Acquire, "POST", {"v1", "leases"}},
      {Route::Renew, "POST", {"v1", "keys", "{}", "leases", "{}", "renew"}},
      {Route::Release, "POST", {"v1", "keys", "{}", "leases", "{}", "release"}},
      {Route::LeaveQueue, "DELETE", {"v1", "keys", "{}", "queue", "{}"}},
      {Route::GetKey, "GET", {"v1", "keys", "{}"}},
      {Route::ListKeys, "GET", {"v1", "keys"}},
      {Route::History, "GET", {"v1", "keys", "{}", "history"}},
      {Route::Executions, "GET", {"v1", "executions"}},
      {Route::ForceRelease, "POST", {"v1", "keys", "{}", "force-release"}},
      {Route::Purge, "POST", {"v1", "purge"}},
      {Route::VdkExecutions, "GET", {"data-jobs", "for-team", "{}", "jobs", "{}", "executions"}},
      {Route::Healthz, "GET", {"healthz"}},
      {Route::Readyz, "GET", {"readyz"}},
      {Route::Metrics, "GET", {"metrics"}},
      {Route::Dashboard, "GET", {""}},  // "/" splits into one empty segment
  };
  return kShapes;
}

bool fits(const Shape& shape, const std::vector<std::string_view>& parts,
          std::vector<std::string_view>& params) {
  if (shape.segments.size() != parts.size()) {
    return false;
  }
  params.clear();
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (shape.segments[i] == "{}") {
      params.push_back(parts[i]);
    } else if (shape.segments[i] != parts[i]) {
      return false;
    }
  }
  return true;
}

Status fill_params(Route route, const std::vector<std::string_view>& raw, RouteMatch& m) {
  std::vector<std::string> decoded;
  for (std::string_view p : raw) {
    auto d = wire::decode_path_segment(p);
    if (!d) {
      return d.error();
    }
    decoded.push_back(std::move(*d));
  }
  if (route == Route::VdkExecutions) {
    m.team = decoded[0];
    m.job = decoded[1];
    return Status::ok();
  }
  if (!decoded.empty()) {
    m.key = decoded[0];
  }
  if (route == Route::LeaveQueue) {
    m.execution_id = decoded[1];
  }
  if (route == Route::Renew || route == Route::Release) {
    std::string_view t = decoded[1];
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), m.token);
    if (ec != std::errc() || end != t.data() + t.size() || m.token <= 0) {
      return invalid_argument(
          fmt::format("lease token {} in the path is not a positive integer", quote(t)));
    }
  }
  return Status::ok();
}

}  // namespace

std::string_view route_name(Route route) {
  switch (route) {
    case Route::Acquire:
      return "acquire";
    case Route::Renew:
      return "renew";
    case Route::Release:
      return "release";
    case Route::LeaveQueue:
      return "leave_queue";
    case Route::GetKey:
      return "get_key";
    case Route::ListKeys:
      return "list_keys";
    case Route::History:
      return "history";
    case Route::Executions:
      return "executions";
    case Route::ForceRelease:
      return "force_release";
    case Route::Purge:
      return "purge";
    case Route::VdkExecutions:
      return "vdk_executions";
    case Route::Healthz:
      return "healthz";
    case Route::Readyz:
      return "readyz";
    case Route::Metrics:
      return "metrics";
    case Route::Dashboard:
      return "dashboard";
  }
  return "unknown";
}

std::optional<std::string> RouteMatch::param(std::string_view name) const {
  auto it = query.find(std::string(name));
  if (it == query.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::vector<std::string> RouteMatch::params(std::string_view name) const {
  std::vector<std::string> out;
  auto [lo, hi] = query.equal_range(std::string(name));
  for (auto it = lo; it != hi; ++it) {
    out.push_back(it->second);
  }
  return out;
}

std::variant<RouteMatch, RouteError> match_route(std::string_view method, std::string_view target) {
  if (target.empty() || target[0] != '/') {
    return bad_target(fmt::format("request target {} is not an absolute path", quote(target)));
  }
  std::size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  RouteMatch m;
  if (q != std::string_view::npos) {
    if (Status s = parse_query(target.substr(q + 1), m.query); !s.is_ok()) {
      return bad_target(s.message());
    }
  }
  std::vector<std::string_view> parts = split_path(path);
  std::vector<std::string_view> raw;
  std::string allow;
  for (const Shape& shape : shapes()) {
    if (!fits(shape, parts, raw)) {
      continue;
    }
    if (method != shape.method) {
      allow += allow.empty() ? shape.method : fmt::format(", {}", shape.method);
      continue;
    }
    m.route = shape.route;
    m.matched = true;
    if (Status s = fill_params(shape.route, raw, m); !s.is_ok()) {
      return bad_target(s.message());
    }
    return m;
  }
  if (!allow.empty()) {
    return RouteError{405, "method_not_allowed",
                      fmt::format("{} is not allowed on {}; use {}", method, path, allow), allow};
  }
  return not_found(path);
}

}  // namespace aec::server
