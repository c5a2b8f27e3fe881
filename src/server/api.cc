#include "server/api.h"

#include <charconv>

#include <fmt/format.h>

#include <aec/key.h>

#include "api/wire.h"
#include "core/duration.h"
#include "core/status_macros.h"
#include "core/text.h"
#include "server/api_internal.h"
#include "server/dashboard.h"

namespace aec::server {
namespace detail {

Result<nlohmann::json> body_object(const Exchange& ex) {
  const std::string& body = ex.request().body();
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
    return nlohmann::json::object();
  }
  return wire::parse_object(body);
}

std::optional<std::int64_t> whole_number(std::string_view text) {
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n < 0) {
    return std::nullopt;
  }
  return n;
}

Result<std::size_t> limit_param(const Exchange& ex) {
  auto text = ex.route().param("limit");
  if (!text) {
    return std::size_t{100};
  }
  auto n = whole_number(*text);
  if (!n || *n < 1 || *n > 1000) {
    return invalid_argument(fmt::format("query parameter limit={}: use 1 to 1000", quote(*text)));
  }
  return static_cast<std::size_t>(*n);
}

Result<std::size_t> offset_param(const Exchange& ex) {
  auto text = ex.route().param("offset");
  if (!text) {
    return std::size_t{0};
  }
  auto n = whole_number(*text);
  if (!n) {
    return invalid_argument(
        fmt::format("query parameter offset={}: use a whole number >= 0", quote(*text)));
  }
  return static_cast<std::size_t>(*n);
}

Result<std::optional<milliseconds>> duration_param(const Exchange& ex, std::string_view name) {
  auto text = ex.route().param(name);
  if (!text) {
    return std::optional<milliseconds>();
  }
  auto d = parse_duration(*text);
  if (!d) {
    return invalid_argument(fmt::format("query parameter {}: {}", name, d.error().message()));
  }
  return std::optional<milliseconds>(*d);
}

}  // namespace detail

namespace {

using detail::on_key_call;
using detail::on_pool;
using detail::timed;

constexpr milliseconds kMaxWait{600'000};

void count_acquire(ApiContext& api, const AcquireResult& r) {
  std::string_view outcome = r.outcome == AcquireOutcome::Granted ? "granted"
                             : r.outcome == AcquireOutcome::Done  ? "done"
                                                                  : "busy";
  api.metrics.acquires.with({outcome}).inc();
  if (r.outcome == AcquireOutcome::Granted) {
    api.metrics.leases.granted(r.lease.key, r.lease.token, r.lease.ttl,
                               std::chrono::steady_clock::now());
  }
}

// Parks `call` in its key's line: after the store's first answer `busy` (to a call made after
// Parking::change_mark() gave `mark`), or, with none, behind the callers already waiting here
// (false when there are none: nothing parked).
bool park(ApiContext& api, const std::shared_ptr<Exchange>& ex, wire::AcquireCall& call,
          const AcquireResult* busy, std::uint64_t mark = 0) {
  std::string key = call.request.key;
  auto parked_at = std::chrono::steady_clock::now();
  // Counted out of aec_waiters here when the answer is sent, else by the abandon callback below
  // (the client went away first): once either way.
  Parking::AcquireDone done = [&api, ex, key, parked_at](Result<AcquireResult> r) {
    api.metrics.wait_seconds.observe(std::chrono::steady_clock::now() - parked_at);
    bool sent = false;
    if (!r) {
      sent = ex->respond_error(r.error());
    } else {
      count_acquire(api, *r);
      if (r->outcome != AcquireOutcome::Busy) {
        api.parking.changed(key);
      }
      sent = ex->respond_json(http::status::ok, wire::encode(*r));
    }
    if (sent) {
      api.metrics.waiters.sub(1);
    }
    return sent;
  };
  api.metrics.waiters.add(1);
  std::uint64_t id = 0;
  if (busy != nullptr) {
    id = api.parking.park_acquire(std::move(call.request), *busy, mark, parked_at + call.wait,
                                  std::move(done));
  } else if (std::optional<std::uint64_t> joined =
                 api.parking.join_line(call.request, parked_at + call.wait, done)) {
    id = *joined;
  } else {
    api.metrics.waiters.sub(1);
    return false;
  }
  ex->on_abandon([&api, key, id] {
    api.metrics.waiters.sub(1);
    api.parking.abandon(key, id);
  });
  return true;
}

// The store's answer to an acquire that may park: parks it when busy and asked to wait. A caller
// that will wait, for a key with callers already waiting here, joins the end of their line
// without asking the store: it could not go ahead of them, and so joining costs no store write.
void acquire_then_park(ApiContext& api, const std::shared_ptr<Exchange>& ex,
                       wire::AcquireCall call) {
  if (call.wait > milliseconds(0) && park(api, ex, call, nullptr)) {
    return;
  }
  on_key_call(api, ex, [&api, ex, call = std::move(call)]() mutable -> Status {
    AcquireResult r;
    std::uint64_t mark = api.parking.change_mark(call.request.key);
    {
      auto got = timed(api, "acquire", [&] { return api.store.acquire(call.request); });
      if (!got) {
        return got.error();
      }
      r = std::move(*got);
    }
    if (r.outcome != AcquireOutcome::Busy || call.request.record_skipped) {
      api.parking.changed(call.request.key);
    }
    if (r.outcome != AcquireOutcome::Busy || call.wait <= milliseconds(0)) {
      count_acquire(api, r);
      ex->respond_json(http::status::ok, wire::encode(r));
      return Status::ok();
    }
    park(api, ex, call, &r, mark);
    return Status::ok();
  });
}

Status acquire(ApiContext& api, const std::shared_ptr<Exchange>& ex, const Principal& who) {
  AEC_ASSIGN_OR_RETURN(nlohmann::json body, detail::body_object(*ex));
  AEC_ASSIGN_OR_RETURN(wire::AcquireCall call, wire::decode_acquire_call(body));
  AcquireRequest& req = call.request;
  AEC_RETURN_IF_ERROR(Authorizer::authorize(who, Access::Write, req.key));
  if (call.wait > kMaxWait) {
    return invalid_argument("field 'wait_ms': at most 600000 (10 minutes); ask again after that");
  }
  if (req.execution_id.empty()) {
    req.execution_id = new_execution_id();
  }
  if (req.owner.host.empty()) {
    req.owner.host = ex->peer().substr(0, ex->peer().rfind(':'));
  }
  if (call.wait > milliseconds(0)) {
    req.queue = true;
  }
  acquire_then_park(api, ex, std::move(call));
  return Status::ok();
}

Status renew(ApiContext& api, const std::shared_ptr<Exchange>& ex) {
  AEC_ASSIGN_OR_RETURN(nlohmann::json body, detail::body_object(*ex));
  AEC_ASSIGN_OR_RETURN(milliseconds ttl, wire::decode_renew(body));
  on_key_call(api, ex, [&api, ex, ttl]() -> Status {
    const RouteMatch& m = ex->route();
    AEC_ASSIGN_OR_RETURN(LeaseOutcome r,
                         timed(api, "renew", [&] { return api.store.renew(m.key, m.token, ttl); }));
    api.metrics.leases.renewed(m.key, m.token, ttl, r == LeaseOutcome::Ok,
                               std::chrono::steady_clock::now());
    ex->respond_json(http::status::ok, wire::encode(r));
    return Status::ok();
  });
  return Status::ok();
}

Status release(ApiContext& api, const std::shared_ptr<Exchange>& ex) {
  AEC_ASSIGN_OR_RETURN(nlohmann::json body, detail::body_object(*ex));
  AEC_ASSIGN_OR_RETURN(Outcome outcome, wire::decode_outcome(body));
  on_key_call(api, ex, [&api, ex, outcome]() -> Status {
    const RouteMatch& m = ex->route();
    // With a waiter parked here, the slot passes to it in the same store write.
    if (std::optional<Parking::Claim> claim = api.parking.claim_first(m.key)) {
      Result<Handoff> h = timed(api, "release", [&] {
        return api.store.release_and_acquire(m.key, m.token, outcome, claim->req);
      });
      if (!h) {
        api.parking.unclaim(m.key, *claim);
        return h.error();
      }
      api.metrics.leases.released(m.key, m.token, h->released == LeaseOutcome::Ok,
                                  std::chrono::steady_clock::now());
      api.parking.settle(m.key, *claim, std::move(h->next));
      ex->respond_json(http::status::ok, wire::encode(h->released));
      return Status::ok();
    }
    AEC_ASSIGN_OR_RETURN(LeaseOutcome r, timed(api, "release", [&] {
                           return api.store.release(m.key, m.token, outcome);
                         }));
    api.metrics.leases.released(m.key, m.token, r == LeaseOutcome::Ok,
                                std::chrono::steady_clock::now());
    api.parking.changed(m.key);  // the first in line may take the slot now
    ex->respond_json(http::status::ok, wire::encode(r));
    return Status::ok();
  });
  return Status::ok();
}

Status leave_queue(ApiContext& api, const std::shared_ptr<Exchange>& ex) {
  on_key_call(api, ex, [&api, ex]() -> Status {
    const RouteMatch& m = ex->route();
    AEC_RETURN_IF_ERROR(
        timed(api, "leave_queue", [&] { return api.store.leave_queue(m.key, m.execution_id); }));
    api.parking.changed(m.key);
    ex->respond_json(http::status::ok, nlohmann::json::object());
    return Status::ok();
  });
  return Status::ok();
}

Status force_release(ApiContext& api, const std::shared_ptr<Exchange>& ex, const Principal& who) {
  AEC_ASSIGN_OR_RETURN(nlohmann::json body, detail::body_object(*ex));
  AEC_ASSIGN_OR_RETURN(wire::ForceReleaseCall call, wire::decode_force_release_call(body));
  if (call.by.user.empty()) {
    call.by.user = who.name;
  }
  if (call.by.host.empty()) {
    call.by.host = ex->peer().substr(0, ex->peer().rfind(':'));
  }
  on_pool(api, ex, [&api, ex, call]() -> Status {
    const std::string& key = ex->route().key;
    AEC_ASSIGN_OR_RETURN(ForceReleaseResult r, timed(api, "force_release", [&] {
                           return api.store.force_release(key, call.reason, call.by);
                         }));
    api.metrics.leases.force_released(key, std::chrono::steady_clock::now());
    api.parking.changed(key);
    ex->respond_json(http::status::ok, wire::encode(r));
    return Status::ok();
  });
  return Status::ok();
}

Status purge(ApiContext& api, const std::shared_ptr<Exchange>& ex) {
  AEC_ASSIGN_OR_RETURN(nlohmann::json body, detail::body_object(*ex));
  AEC_ASSIGN_OR_RETURN(PurgeRequest req, wire::decode_purge_request(body));
  on_pool(api, ex, [&api, ex, req]() -> Status {
    AEC_ASSIGN_OR_RETURN(PurgeResult r, timed(api, "purge", [&] { return api.store.purge(req); }));
    api.parking.changed("");
    ex->respond_json(http::status::ok, wire::encode(r));
    return Status::ok();
  });
  return Status::ok();
}

// The dashboard page is static and holds no data: it needs no token, and its own fetches carry
// one. The CSP lets it run only its inline script and style and talk only to this origin.
void serve_dashboard(const std::shared_ptr<Exchange>& ex) {
  Response res(http::status::ok, ex->request().version());
  res.set(http::field::content_type, "text/html; charset=utf-8");
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  res.set("Content-Security-Policy",
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
          "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
          "frame-ancestors 'none'");
  res.keep_alive(ex->request().keep_alive());
  res.body() = std::string(dashboard_html());
  res.prepare_payload();
  ex->respond(std::move(res));
}

// What the route needs of the caller: nothing (health), any valid token (metrics), or an access
// to the key named in the path.
Status authorize_route(const Principal& who, const RouteMatch& m) {
  switch (m.route) {
    case Route::Healthz:
    case Route::Readyz:
    case Route::Metrics:
    case Route::Dashboard:
    case Route::Acquire:  // the key is in the body: checked by the handler
      return Status::ok();
    case Route::ListKeys:
      return Authorizer::authorize_list(who, m.param("prefix").value_or(""));
    case Route::Executions:
      if (auto key = m.param("key")) {
        return Authorizer::authorize(who, Access::Read, *key);
      }
      return Authorizer::authorize_list(who, m.param("prefix").value_or(""));
    case Route::VdkExecutions: {
      AEC_ASSIGN_OR_RETURN(std::string key, team_job_key(m.team, m.job));
      return Authorizer::authorize(who, Access::Read, key);
    }
    case Route::Renew:
    case Route::Release:
    case Route::LeaveQueue:
      return Authorizer::authorize(who, Access::Write, m.key);
    case Route::GetKey:
    case Route::History:
      return Authorizer::authorize(who, Access::Read, m.key);
    case Route::ForceRelease:
      return Authorizer::authorize(who, Access::Admin, m.key);
    case Route::Purge:
      return Authorizer::authorize_global(who, Access::Admin);
  }
  return internal_error("unknown route");
}

Status route_request(ApiContext& api, const std::shared_ptr<Exchange>& ex, const Principal& who) {
  AEC_RETURN_IF_ERROR(authorize_route(who, ex->route()));
  switch (ex->route().route) {
    case Route::Acquire:
      return acquire(api, ex, who);
    case Route::Renew:
      return renew(api, ex);
    case Route::Release:
      return release(api, ex);
    case Route::LeaveQueue:
      return leave_queue(api, ex);
    case Route::ForceRelease:
      return force_release(api, ex, who);
    case Route::Purge:
      return purge(api, ex);
    case Route::GetKey:
      detail::get_key(api, ex);
      return Status::ok();
    case Route::ListKeys:
      detail::list_keys(api, ex);
      return Status::ok();
    case Route::History:
      detail::list_executions(api, ex, ex->route().key);
      return Status::ok();
    case Route::Executions:
      detail::list_executions(api, ex, "");
      return Status::ok();
    case Route::VdkExecutions:
      detail::vdk_executions_route(api, ex);
      return Status::ok();
    case Route::Readyz:
      detail::readyz(api, ex);
      return Status::ok();
    case Route::Healthz:
      ex->respond_json(http::status::ok, {{"status", "ok"}});
      return Status::ok();
    case Route::Metrics: {
      Response res(http::status::ok, ex->request().version());
      res.set(http::field::content_type, "text/plain; version=0.0.4");
      res.keep_alive(ex->request().keep_alive());
      api.metrics.leases.sweep(std::chrono::steady_clock::now());
      res.body() = api.metrics.registry.render();
      res.prepare_payload();
      ex->respond(std::move(res));
      return Status::ok();
    }
    case Route::Dashboard:
      serve_dashboard(ex);
      return Status::ok();
  }
  return internal_error("unknown route");
}

}  // namespace

void handle_request(ApiContext& api, const std::shared_ptr<Exchange>& ex) {
  Route route = ex->route().route;
  bool open = route == Route::Healthz || route == Route::Readyz || route == Route::Dashboard;
  Principal who;
  if (!open) {
    auto header = ex->request()[http::field::authorization];
    auto authenticated = api.auth.authenticate(std::string_view(header.data(), header.size()));
    if (!authenticated) {
      Response res =
          error_response(ex->request(), 401, "unauthenticated", authenticated.error().message());
      res.set(http::field::www_authenticate, "Bearer realm=\"aecd\"");
      ex->respond(std::move(res));
      return;
    }
    who = std::move(*authenticated);
    ex->principal = who.name;
  }
  if (Status s = route_request(api, ex, who); !s.is_ok()) {
    ex->respond_error(s);
  }
}

std::string_view route_pattern(Route route) {
  switch (route) {
    case Route::Acquire:
      return "POST /v1/leases";
    case Route::Renew:
      return "POST /v1/keys/{key}/leases/{token}/renew";
    case Route::Release:
      return "POST /v1/keys/{key}/leases/{token}/release";
    case Route::LeaveQueue:
      return "DELETE /v1/keys/{key}/queue/{execution_id}";
    case Route::GetKey:
      return "GET /v1/keys/{key}";
    case Route::ListKeys:
      return "GET /v1/keys";
    case Route::History:
      return "GET /v1/keys/{key}/history";
    case Route::Executions:
      return "GET /v1/executions";
    case Route::ForceRelease:
      return "POST /v1/keys/{key}/force-release";
    case Route::Purge:
      return "POST /v1/purge";
    case Route::VdkExecutions:
      return "GET /data-jobs/for-team/{team}/jobs/{job}/executions";
    case Route::Healthz:
      return "GET /healthz";
    case Route::Readyz:
      return "GET /readyz";
    case Route::Metrics:
      return "GET /metrics";
    case Route::Dashboard:
      return "GET /";
  }
  return "unknown";
}

}  // namespace aec::server
