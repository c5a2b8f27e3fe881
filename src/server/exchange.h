// One request and the way back to its client. The session that read the request makes it; the
// API handlers answer it, at once or later (a parked request), from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>

#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <aec/status.h>

#include "server/router.h"

namespace aec::server {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// A JSON response with `status`.
Response json_response(const Request& req, http::status status, const nlohmann::json& body);
// The one error shape of docs/api.md: {"error": {"code": ..., "message": ...}}.
Response error_response(const Request& req, int status, std::string_view code,
                        std::string_view message);
// An aec::Status as an error response, its HTTP status from wire::http_status.
Response error_response(const Request& req, const Status& status);

class Exchange {
 public:
  // `sink` delivers the response to the connection; it runs at most once.
  Exchange(Request request, RouteMatch route, std::string peer, std::function<void(Response)> sink);

  const Request& request() const { return request_; }
  const RouteMatch& route() const { return route_; }
  const std::string& peer() const { return peer_; }  // "127.0.0.1:53422"
  // Set by the API once the caller is known (for the request log).
  std::string principal;

  // Sends the answer. The first call wins; later calls, and calls after the client went away,
  // are ignored. Returns whether this call's answer was sent. Thread-safe.
  bool respond(Response res);
  bool respond_json(http::status status, const nlohmann::json& body);
  bool respond_error(const Status& status);
  // Runs `fn` once if the client goes away before respond() (a parked waiter whose connection
  // dropped must leave the line). Runs it at once if the client is already gone. Thread-safe.
  void on_abandon(std::function<void()> fn);
  // Called by the session when the connection closed before the answer.
  void abandon();
  bool answered() const;

 private:
  Request request_;
  RouteMatch route_;
  std::string peer_;
  mutable std::mutex mu_;
  bool answered_ = false;               // guarded by mu_
  bool abandoned_ = false;              // guarded by mu_
  std::function<void(Response)> sink_;  // guarded by mu_; cleared once used
  std::function<void()> abandon_fn_;    // guarded by mu_
};

}  // namespace aec::server
