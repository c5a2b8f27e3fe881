// The read routes: a key's state (and its blocking query), lists, the VDK executions view,
// readiness.
#include <set>

#include <fmt/format.h>

#include <aec/key.h>

#include "api/wire.h"
#include "core/status_macros.h"
#include "core/text.h"
#include "server/api_internal.h"
#include "server/vdk_executions.h"

namespace aec::server::detail {
namespace {

constexpr milliseconds kDefaultQueryWait{300'000};
constexpr milliseconds kMaxQueryWait{600'000};

void respond_state(const std::shared_ptr<Exchange>& ex, const KeyState& state) {
  Response res = json_response(ex->request(), http::status::ok, wire::encode(state));
  res.set("X-Aec-Index", std::to_string(state.version));
  ex->respond(std::move(res));
}

Result<std::vector<ExecutionStatus>> status_params(const Exchange& ex) {
  std::vector<ExecutionStatus> out;
  for (const std::string& word : ex.route().params("status")) {
    auto s = parse_execution_status(word);
    if (!s) {
      return invalid_argument(fmt::format(
          "query parameter status={}: use running, succeeded, failed, lost, cancelled or "
          "skipped",
          quote(word)));
    }
    out.push_back(*s);
  }
  return out;
}

}  // namespace

void get_key(ApiContext& api, const std::shared_ptr<Exchange>& ex) {
  std::optional<std::int64_t> index;
  if (auto text = ex->route().param("index")) {
    auto n = whole_number(*text);
    if (!n) {
      ex->respond_error(invalid_argument(fmt::format(
          "query parameter index={}: use the version of an earlier answer", quote(*text))));
      return;
    }
    index = *n;
  }
  auto wait = duration_param(*ex, "wait");
  if (!wait) {
    ex->respond_error(wait.error());
    return;
  }
  milliseconds wait_for = wait->value_or(index ? kDefaultQueryWait : milliseconds(0));
  if (wait_for > kMaxQueryWait) {
    ex->respond_error(invalid_argument("query parameter wait: at most 10m; ask again after it"));
    return;
  }
  on_pool(api, ex, [&api, ex, index, wait_for]() -> Status {
    const std::string& key = ex->route().key;
    std::uint64_t mark = api.parking.change_mark(key);
    AEC_ASSIGN_OR_RETURN(KeyState state, timed(api, "get", [&] { return api.store.get(key); }));
    if (!index || *index != state.version || wait_for <= milliseconds(0)) {
      respond_state(ex, state);
      return Status::ok();
    }
    std::uint64_t id = api.parking.park_query(key, *index, state, mark,
                                              std::chrono::steady_clock::now() + wait_for,
                                              [ex](Result<KeyState> r) {
                                                if (!r) {
                                                  ex->respond_error(r.error());
                                                } else {
                                                  respond_state(ex, *r);
                                                }
                                              });
    ex->on_abandon([&api, key, id] { api.parking.abandon(key, id); });
    return Status::ok();
  });
}

// Keys are found through their executions: the most recently active first, among the newest
// 10,000 executions under the prefix.
void list_keys(ApiContext& api, const std::shared_ptr<Exchange>& ex) {
  auto limit = limit_param(*ex);
  auto offset = offset_param(*ex);
  if (!limit || !offset) {
    ex->respond_error(!limit ? limit.error() : offset.error());
    return;
  }
  on_pool(api, ex, [&api, ex, limit = *limit, offset = *offset]() -> Status {
    std::string prefix = ex->route().param("prefix").value_or("");
    AEC_ASSIGN_OR_RETURN(std::vector<Execution> recent, timed(api, "list", [&] {
                           return api.store.list({.prefix = prefix, .limit = 10'000});
                         }));
    std::vector<std::string> keys;
    std::set<std::string> seen;
    for (const Execution& e : recent) {
      if (seen.insert(e.key).second) {
        keys.push_back(e.key);
      }
    }
    nlohmann::json out = nlohmann::json::array();
    for (std::size_t i = offset; i < keys.size() && i < offset + limit; ++i) {
      AEC_ASSIGN_OR_RETURN(KeyState state,
                           timed(api, "get", [&] { return api.store.get(keys[i]); }));
      out.push_back(wire::encode(state));
    }
    nlohmann::json body = {{"keys", std::move(out)}};
    if (offset + limit < keys.size()) {
      body["next_offset"] = offset + limit;
    }
    ex->respond_json(http::status::ok, body);
    return Status::ok();
  });
}

void list_executions(ApiContext& api, const std::shared_ptr<Exchange>& ex, std::string key) {
  auto limit = limit_param(*ex);
  auto offset = offset_param(*ex);
  auto statuses = status_params(*ex);
  if (!limit || !offset || !statuses) {
    ex->respond_error(!limit ? limit.error() : !offset ? offset.error() : statuses.error());
    return;
  }
  if (key.empty()) {
    key = ex->route().param("key").value_or("");
  }
  ListFilter filter{.key = key,
                    .prefix = ex->route().param("prefix").value_or(""),
                    .statuses = *statuses,
                    .limit = *limit,
                    .offset = *offset};
  on_pool(api, ex, [&api, ex, filter]() -> Status {
    AEC_ASSIGN_OR_RETURN(std::vector<Execution> list,
                         timed(api, "list", [&] { return api.store.list(filter); }));
    std::optional<std::size_t> next;
    if (list.size() == filter.limit) {
      next = filter.offset + filter.limit;
    }
    ex->respond_json(http::status::ok, wire::encode_executions(list, next));
    return Status::ok();
  });
}

void vdk_executions_route(ApiContext& api, const std::shared_ptr<Exchange>& ex) {
  const RouteMatch& m = ex->route();
  auto key = team_job_key(m.team, m.job);
  auto statuses = parse_vdk_statuses(m.params("execution_status"));
  if (!key || !statuses) {
    ex->respond_error(!key ? key.error() : statuses.error());
    return;
  }
  on_pool(api, ex, [&api, ex, key = *key, statuses = *statuses]() -> Status {
    VdkExecutionsQuery q{.team = ex->route().team,
                         .job = ex->route().job,
                         .statuses = statuses,
                         .logs_url_template = api.logs_url_template};
    AEC_ASSIGN_OR_RETURN(q.executions, timed(api, "list", [&] {
                           return api.store.list({.key = key, .limit = 1000});
                         }));
    AEC_ASSIGN_OR_RETURN(KeyState state, timed(api, "get", [&] { return api.store.get(key); }));
    q.queue = std::move(state.queue);
    q.parked = api.parking.waiters_of(key);
    Response res(http::status::ok, ex->request().version());
    res.set(http::field::content_type, "application/json");
    res.keep_alive(ex->request().keep_alive());
    res.body() = vdk_executions_body(q);
    res.prepare_payload();
    ex->respond(std::move(res));
    return Status::ok();
  });
}

void readyz(ApiContext& api, const std::shared_ptr<Exchange>& ex) {
  on_pool(api, ex, [&api, ex]() -> Status {
    auto probe = timed(api, "get", [&] { return api.store.get("aec/readyz"); });
    if (!probe) {
      Status s = probe.error();
      ex->respond_json(http::status::service_unavailable,
                       {{"status", "unavailable"}, {"error", s.to_string()}});
      return Status::ok();
    }
    ex->respond_json(http::status::ok, {{"status", "ok"}, {"store", api.store.url()}});
    return Status::ok();
  });
}

}  // namespace aec::server::detail
