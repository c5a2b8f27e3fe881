// Executions, key states, lists, force release and purge in their /v1 JSON forms.
#include <fmt/format.h>

#include "api/json_fields.h"
#include "api/wire.h"
#include "core/json_codec.h"

namespace aec::wire {
namespace {

using nlohmann::json;

// The fields of an execution, read into `e`; the caller finishes `f` (a holder has one more).
void read_execution(Fields& f, Execution& e) {
  f.text("id", e.id, Need::Required);
  f.text("key", e.key, Need::Required);
  f.integer("token", e.token, 0);
  f.status("status", e.status, {}, Need::Required);
  f.text("host", e.owner.host);
  f.integer("pid", e.owner.pid, 0);
  f.text("user", e.owner.user);
  f.time("started_at", e.started_at);
  f.nullable_time("ended_at", e.ended_at);
  f.nullable_int("exit_code", e.exit_code);
  f.labels("labels", e.labels);
  f.text("reason", e.reason);
}

template <typename T>
Result<T> finished(const Fields& f, T value) {
  if (Status s = f.finish(); !s.is_ok()) {
    return s;
  }
  return value;
}

}  // namespace

json encode(const Execution& e) {
  return to_json(e);
}

Result<Execution> decode_execution(const json& j, std::string where) {
  Fields f(j, std::move(where));
  Execution e;
  read_execution(f, e);
  return finished(f, std::move(e));
}

Result<Execution> decode_execution(const json& j) {
  return decode_execution(j, "");
}

json encode(const Holder& h) {
  json j = to_json(h.execution);
  j["expires_in_ms"] = h.expires_in.count();
  return j;
}

Result<Holder> decode_holder(const json& j, std::string where) {
  Fields f(j, std::move(where));
  Holder h;
  read_execution(f, h.execution);
  f.duration("expires_in_ms", h.expires_in, 0);
  return finished(f, std::move(h));
}

json encode(const KeyState& s) {
  json j = to_json(s);
  j["queue"] = s.queue;
  return j;
}

Result<KeyState> decode_key_state(const json& j) {
  Fields f(j, "");
  KeyState s;
  f.text("key", s.key, Need::Required);
  f.integer("version", s.version, 0);
  f.integer("last_token", s.last_token, 0);
  f.array("holders", s.holders, decode_holder);
  f.nullable("last_ended", s.last_ended,
             [](const json& v, std::string where) { return decode_execution(v, where); });
  f.strings("queue", s.queue);
  return finished(f, std::move(s));
}

json encode_executions(const std::vector<Execution>& list, std::optional<std::size_t> next_offset) {
  json items = json::array();
  for (const Execution& e : list) {
    items.push_back(to_json(e));
  }
  json j = {{"executions", std::move(items)}};
  if (next_offset) {
    j["next_offset"] = *next_offset;
  }
  return j;
}

Result<ExecutionPage> decode_execution_page(const json& j) {
  Fields f(j, "");
  ExecutionPage page;
  f.array(
      "executions", page.executions,
      [](const json& v, std::string where) { return decode_execution(v, where); }, Need::Required);
  std::size_t next = 0;
  if (f.find("next_offset") != nullptr) {
    f.size("next_offset", next, 0, std::numeric_limits<std::int64_t>::max());
    page.next_offset = next;
  }
  return finished(f, std::move(page));
}

Result<std::vector<Execution>> decode_executions(const json& j) {
  auto page = decode_execution_page(j);
  if (!page) {
    return page.error();
  }
  return std::move(page->executions);
}

json encode_force_release(std::string_view reason) {
  return {{"reason", reason}};
}

json encode_force_release(std::string_view reason, const Owner& by) {
  return {{"reason", reason}, {"by", {{"host", by.host}, {"pid", by.pid}, {"user", by.user}}}};
}

Result<ForceReleaseCall> decode_force_release_call(const json& j) {
  Fields f(j, "");
  ForceReleaseCall call;
  f.text("reason", call.reason, Need::Required);
  if (f.ok() && call.reason.empty()) {
    f.fail("reason", "must not be empty: say why the leases are freed");
  }
  f.nested("by", call.by, decode_owner);
  return finished(f, std::move(call));
}

Result<std::string> decode_force_release(const json& j) {
  auto call = decode_force_release_call(j);
  if (!call) {
    return call.error();
  }
  return std::move(call->reason);
}

json encode(const ForceReleaseResult& r) {
  json released = json::array();
  for (const Execution& e : r.released) {
    released.push_back(to_json(e));
  }
  return {{"released", std::move(released)}, {"version", r.version}};
}

Result<ForceReleaseResult> decode_force_release_result(const json& j) {
  Fields f(j, "");
  ForceReleaseResult r;
  f.array("released", r.released,
          [](const json& v, std::string where) { return decode_execution(v, where); });
  f.integer("version", r.version, 0);
  return finished(f, std::move(r));
}

json encode(const PurgeRequest& r) {
  json statuses = json::array();
  for (ExecutionStatus s : r.statuses) {
    statuses.push_back(to_string(s));
  }
  return {{"older_than_ms", r.older_than.count()},
          {"statuses", std::move(statuses)},
          {"batch_size", r.batch_size}};
}

Result<PurgeRequest> decode_purge_request(const json& j) {
  Fields f(j, "");
  PurgeRequest r;
  f.duration("older_than_ms", r.older_than, 0);
  f.statuses("statuses", r.statuses);
  f.size("batch_size", r.batch_size, 1, 1'000'000);
  return finished(f, std::move(r));
}

json encode(const PurgeResult& r) {
  return {{"executions_deleted", r.executions_deleted}, {"leases_expired", r.leases_expired}};
}

Result<PurgeResult> decode_purge_result(const json& j) {
  Fields f(j, "");
  PurgeResult r;
  f.integer("executions_deleted", r.executions_deleted, 0);
  f.integer("leases_expired", r.leases_expired, 0);
  return finished(f, std::move(r));
}

}  // namespace aec::wire
