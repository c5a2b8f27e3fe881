// Acquire, renew and release in their /v1 JSON forms.
#include <fmt/format.h>

#include "api/json_fields.h"
#include "api/wire.h"

namespace aec::wire {
namespace {

using nlohmann::json;

constexpr std::int64_t kMaxWaitMs = 600'000;  // docs/api.md: wait_ms is at most 10 minutes
constexpr int kMaxLimit = 1'000'000;

template <typename T>
Result<T> finished(const Fields& f, T value) {
  if (Status s = f.finish(); !s.is_ok()) {
    return s;
  }
  return value;
}

std::string_view outcome_word(AcquireOutcome o) {
  switch (o) {
    case AcquireOutcome::Granted:
      return "granted";
    case AcquireOutcome::Busy:
      return "busy";
    case AcquireOutcome::Done:
      return "done";
  }
  return "busy";
}

json encode_holders(const std::vector<Holder>& holders) {
  json list = json::array();
  for (const Holder& h : holders) {
    list.push_back(encode(h));
  }
  return list;
}

json encode_lease(const Lease& l) {
  return {{"key", l.key},
          {"execution_id", l.execution_id},
          {"token", l.token},
          {"ttl_ms", l.ttl.count()}};
}

Result<Lease> decode_lease(const json& j, std::string where) {
  Fields f(j, std::move(where));
  Lease l;
  f.text("key", l.key, Need::Required);
  f.text("execution_id", l.execution_id, Need::Required);
  f.integer("token", l.token, 1, std::numeric_limits<std::int64_t>::max(), Need::Required);
  f.duration("ttl_ms", l.ttl, 0);
  return finished(f, std::move(l));
}

// The fields an answer with outcome `o` carries besides "outcome" and "version".
void read_outcome_fields(Fields& f, AcquireResult& r) {
  switch (r.outcome) {
    case AcquireOutcome::Granted:
      f.nested("lease", r.lease, decode_lease, Need::Required);
      f.duration("held_ms", r.held, 0);
      return;
    case AcquireOutcome::Busy:
      f.array("holders", r.holders, decode_holder);
      f.integer("waiting_ahead", r.waiting_ahead, 0);
      f.duration("retry_in_ms", r.retry_in, 0);
      return;
    case AcquireOutcome::Done:
      f.nested(
          "done_by", r.done_by,
          [](const json& v, std::string where) -> Result<std::optional<Execution>> {
            auto e = decode_execution(v, std::move(where));
            if (!e) {
              return e.error();
            }
            return std::optional<Execution>(std::move(*e));
          },
          Need::Required);
      return;
  }
}

}  // namespace

json encode(const Owner& o) {
  return {{"host", o.host}, {"pid", o.pid}, {"user", o.user}};
}

Result<Owner> decode_owner(const json& j, std::string where) {
  Fields f(j, std::move(where));
  Owner o;
  f.text("host", o.host);
  f.integer("pid", o.pid, 0);
  f.text("user", o.user);
  return finished(f, std::move(o));
}

json encode(const AcquireCall& call) {
  const AcquireRequest& r = call.request;
  json j = {{"key", r.key},
            {"ttl_ms", r.ttl.count()},
            {"limit", r.limit},
            {"once", r.once},
            {"record_skipped", r.record_skipped},
            {"labels", r.labels},
            {"queue", r.queue},
            {"queue_ttl_ms", r.queue_ttl.count()},
            {"wait_ms", call.wait.count()}};
  if (!r.execution_id.empty()) {
    j["execution_id"] = r.execution_id;
  }
  if (!r.owner.host.empty() || r.owner.pid != 0 || !r.owner.user.empty()) {
    j["owner"] = encode(r.owner);
  }
  return j;
}

Result<AcquireCall> decode_acquire_call(const json& j) {
  Fields f(j, "");
  AcquireCall call;
  AcquireRequest& r = call.request;
  f.text("key", r.key, Need::Required);
  f.text("execution_id", r.execution_id);
  if (f.ok() && j.contains("execution_id") && r.execution_id.empty()) {
    f.fail("execution_id", "must not be empty; leave it out to have one generated");
  }
  f.duration("ttl_ms", r.ttl, 1);
  f.integer("limit", r.limit, 1, kMaxLimit);
  f.flag("once", r.once);
  f.flag("record_skipped", r.record_skipped);
  f.labels("labels", r.labels);
  f.nested("owner", r.owner, decode_owner);
  f.flag("queue", r.queue);
  f.duration("queue_ttl_ms", r.queue_ttl, 1);
  f.duration("wait_ms", call.wait, 0, kMaxWaitMs);
  if (call.wait > milliseconds(0)) {
    r.queue = true;  // waiting in line on the server is queueing
  }
  return finished(f, std::move(call));
}

json encode(const AcquireResult& r) {
  json j = {{"outcome", outcome_word(r.outcome)}, {"version", r.version}};
  switch (r.outcome) {
    case AcquireOutcome::Granted:
      j["lease"] = encode_lease(r.lease);
      if (r.held > milliseconds(0)) {
        j["held_ms"] = r.held.count();
      }
      break;
    case AcquireOutcome::Busy:
      j["holders"] = encode_holders(r.holders);
      j["waiting_ahead"] = r.waiting_ahead;
      j["retry_in_ms"] = r.retry_in.count();
      break;
    case AcquireOutcome::Done:
      j["done_by"] = r.done_by ? encode(*r.done_by) : json(nullptr);
      break;
  }
  return j;
}

Result<AcquireResult> decode_acquire_result(const json& j) {
  Fields f(j, "");
  AcquireResult r;
  std::string word;
  f.text("outcome", word, Need::Required);
  if (word == "granted" || word == "busy" || word == "done") {
    r.outcome = word == "granted" ? AcquireOutcome::Granted
                : word == "busy"  ? AcquireOutcome::Busy
                                  : AcquireOutcome::Done;
  } else if (f.ok()) {
    f.fail("outcome", "must be one of granted, busy, done");
  }
  f.integer("version", r.version, 0);
  read_outcome_fields(f, r);
  return finished(f, std::move(r));
}

json encode_renew(milliseconds ttl) {
  return {{"ttl_ms", ttl.count()}};
}

Result<milliseconds> decode_renew(const json& j) {
  Fields f(j, "");
  milliseconds ttl{30'000};
  f.duration("ttl_ms", ttl, 1);
  return finished(f, ttl);
}

json encode(const Outcome& outcome) {
  return {{"status", to_string(outcome.status)},
          {"exit_code", outcome.exit_code ? json(*outcome.exit_code) : json(nullptr)},
          {"reason", outcome.reason}};
}

Result<Outcome> decode_outcome(const json& j) {
  Fields f(j, "");
  Outcome o;
  f.status("status", o.status,
           {ExecutionStatus::Succeeded, ExecutionStatus::Failed, ExecutionStatus::Lost,
            ExecutionStatus::Cancelled});
  f.nullable_int("exit_code", o.exit_code);
  f.text("reason", o.reason);
  return finished(f, std::move(o));
}

json encode(LeaseOutcome outcome) {
  return {{"outcome", outcome == LeaseOutcome::Ok ? "ok" : "lost"}};
}

Result<LeaseOutcome> decode_lease_outcome(const json& j) {
  Fields f(j, "");
  std::string word;
  f.text("outcome", word, Need::Required);
  if (f.ok() && word != "ok" && word != "lost") {
    f.fail("outcome", "must be ok or lost");
  }
  return finished(f, word == "ok" ? LeaseOutcome::Ok : LeaseOutcome::Lost);
}

}  // namespace aec::wire
