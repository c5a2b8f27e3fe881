#include "server/exchange.h"

#include "api/wire.h"

namespace aec::server {

Response json_response(const Request& req, http::status status, const nlohmann::json& body) {
  Response res(status, req.version());
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  res.keep_alive(req.keep_alive());
  res.body() = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  res.body() += '\n';
  res.prepare_payload();
  return res;
}

Response error_response(const Request& req, int status, std::string_view code,
                        std::string_view message) {
  nlohmann::json body = {{"error", {{"code", code}, {"message", message}}}};
  return json_response(req, static_cast<http::status>(status), body);
}

Response error_response(const Request& req, const Status& status) {
  return json_response(req, static_cast<http::status>(wire::http_status(status.code())),
                       wire::encode_error(status));
}

Exchange::Exchange(Request request, RouteMatch route, std::string peer,
                   std::function<void(Response)> sink)
    : request_(std::move(request)),
      route_(std::move(route)),
      peer_(std::move(peer)),
      sink_(std::move(sink)) {}

bool Exchange::respond(Response res) {
  std::function<void(Response)> sink;
  {
    std::lock_guard lock(mu_);
    if (answered_ || abandoned_) {
      return false;
    }
    answered_ = true;
    abandon_fn_ = nullptr;
    sink = std::move(sink_);
  }
  sink(std::move(res));
  return true;
}

bool Exchange::respond_json(http::status status, const nlohmann::json& body) {
  return respond(json_response(request_, status, body));
}

bool Exchange::respond_error(const Status& status) {
  return respond(error_response(request_, status));
}

void Exchange::on_abandon(std::function<void()> fn) {
  std::unique_lock lock(mu_);
  if (answered_) {
    return;
  }
  if (abandoned_) {
    lock.unlock();
    fn();
    return;
  }
  abandon_fn_ = std::move(fn);
}

void Exchange::abandon() {
  std::function<void()> fn;
  {
    std::lock_guard lock(mu_);
    if (answered_ || abandoned_) {
      return;
    }
    abandoned_ = true;
    fn = std::move(abandon_fn_);
    sink_ = nullptr;  // drops the session it refers to
  }
  if (fn) {
    fn();
  }
}

bool Exchange::answered() const {
  std::lock_guard lock(mu_);
  return answered_;
}

}  // namespace aec::server
