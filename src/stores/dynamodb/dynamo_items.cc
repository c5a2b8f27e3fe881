#include "stores/dynamodb/dynamo_items.h"

#include <charconv>
#include <ctime>

#include <fmt/format.h>

#include "core/duration.h"

namespace aec::aws {
namespace {

using nlohmann::json;

std::int64_t epoch_ms(SysTime t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

// Well inside what SysTime's int64 nanoseconds hold (about 292 years either side of 1970).
constexpr std::int64_t kMaxEpochMs = std::int64_t{200} * 365 * 24 * 3600 * 1000;

SysTime from_epoch_ms(std::int64_t ms) {
  return SysTime(std::chrono::duration_cast<SysTime::duration>(milliseconds(ms)));
}

// Reads the attributes of one item or map, remembering the first thing wrong with them.
class Reader {
 public:
  Reader(const json& attrs, std::string_view where) : attrs_(attrs), where_(where) {
    if (!attrs_.is_object()) {
      fail("", "is not a map");
    }
  }

  // An S attribute; "" when missing and optional.
  std::string s(const char* name, bool required = true) {
    const json* v = find(name, "S", required);
    return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
  }

  std::int64_t n(const char* name, bool required = true) {
    const json* v = find(name, "N", required);
    if (v == nullptr || !v->is_string()) {
      return 0;
    }
    const std::string& text = v->get_ref<const std::string&>();
    std::int64_t out = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (ec != std::errc() || end != text.data() + text.size()) {
      fail(name, "is not a whole number");
    }
    return out;
  }

  // Epoch milliseconds that a SysTime can hold.
  std::int64_t time_ms(const char* name) {
    std::int64_t ms = n(name);
    if (ms < -kMaxEpochMs || ms > kMaxEpochMs) {
      fail(name, "is out of range");
      return 0;
    }
    return ms;
  }

  // A duration aec could have written: 0 to kMaxDuration milliseconds.
  milliseconds duration_ms(const char* name) {
    std::int64_t ms = n(name);
    if (ms < 0 || ms > kMaxDuration.count()) {
      fail(name, "is out of range");
      return milliseconds(0);
    }
    return milliseconds(ms);
  }

  bool has(const char* name) const { return attrs_.is_object() && attrs_.contains(name); }

  // The content of an M attribute (an empty object when missing and optional).
  const json& m(const char* name, bool required = true) {
    const json* v = find(name, "M", required);
    return v != nullptr && v->is_object() ? *v : empty_object();
  }

  const json& l(const char* name, bool required = true) {
    const json* v = find(name, "L", required);
    return v != nullptr && v->is_array() ? *v : empty_array();
  }

  void fail(std::string_view name, std::string_view what) {
    if (error_.is_ok()) {
      error_ = Status(Code::DataLoss,
                      name.empty()
                          ? fmt::format("DynamoDB item {} {}", where_, what)
                          : fmt::format("DynamoDB item {}: attribute {} {}", where_, name, what));
    }
  }

  const Status& error() const { return error_; }

 private:
  static const json& empty_object() {
    static const json e = json::object();
    return e;
  }
  static const json& empty_array() {
    static const json e = json::array();
    return e;
  }

  const json* find(const char* name, const char* type, bool required) {
    if (!attrs_.is_object()) {
      return nullptr;
    }
    auto it = attrs_.find(name);
    if (it == attrs_.end()) {
      if (required) {
        fail(name, "is missing");
      }
      return nullptr;
    }
    if (!it->is_object() || !it->contains(type)) {
      fail(name, fmt::format("is not of type {}", type));
      return nullptr;
    }
    const json& v = (*it)[type];
    bool ok = std::string_view(type) == "M"   ? v.is_object()
              : std::string_view(type) == "L" ? v.is_array()
                                              : v.is_string();
    if (!ok) {
      fail(name, fmt::format("holds a malformed {} value", type));
      return nullptr;
    }
    return &v;
  }

  const json& attrs_;
  std::string where_;
  Status error_;
};

json lease_attributes(const LeaseEntry& l) {
  json m = record_attributes(l.run);
  m["lease_rv"] = attr_s(l.rv);
  m["ttl_ms"] = attr_n(l.ttl.count());
  m["expires_at"] = attr_n(l.expires_at);
  return m;
}

json place_attributes(const PlaceEntry& p) {
  return {{"execution_id", attr_s(p.execution_id)},
          {"place_rv", attr_s(p.rv)},
          {"queue_ttl_ms", attr_n(p.queue_ttl.count())}};
}

}  // namespace

json attr_s(std::string_view s) {
  return {{"S", std::string(s)}};
}

json attr_n(std::int64_t n) {
  return {{"N", std::to_string(n)}};
}

std::string run_sort_key(std::int64_t token) {
  return fmt::format("{}{:020d}", kRunPrefix, token);
}

std::string skipped_sort_key(std::int64_t last_token, std::int64_t seq) {
  return fmt::format("{}{:020d}#{:020d}", kRunPrefix, last_token, seq);
}

json record_attributes(const RunRecord& r) {
  const Execution& e = r.execution;
  json m = {{"execution_id", attr_s(e.id)},
            {"token", attr_n(e.token)},
            {"status", attr_s(to_string(e.status))},
            {"run_sk", attr_s(r.sort_key)},
            {"order", attr_n(r.order)},
            {"owner_host", attr_s(e.owner.host)},
            {"owner_pid", attr_n(e.owner.pid)},
            {"owner_user", attr_s(e.owner.user)},
            {"started_at_ms", attr_n(epoch_ms(e.started_at))}};
  if (e.ended_at) {
    m["ended_at_ms"] = attr_n(epoch_ms(*e.ended_at));
  }
  if (e.exit_code) {
    m["exit_code"] = attr_n(*e.exit_code);
  }
  if (!e.reason.empty()) {
    m["reason"] = attr_s(e.reason);
  }
  if (!e.labels.empty()) {
    json labels = json::object();
    for (const auto& [k, v] : e.labels) {
      labels[k] = attr_s(v);
    }
    m["labels"] = {{"M", std::move(labels)}};
  }
  return m;
}

Result<RunRecord> record_from(const json& attrs, std::string_view key, std::string_view where) {
  Reader r(attrs, where);
  RunRecord out;
  Execution& e = out.execution;
  e.key = std::string(key);
  e.id = r.s("execution_id");
  e.token = r.n("token");
  std::string status = r.s("status");
  out.sort_key = r.s("run_sk");
  out.order = r.n("order");
  e.owner.host = r.s("owner_host", false);
  e.owner.pid = r.n("owner_pid", false);
  e.owner.user = r.s("owner_user", false);
  e.started_at = from_epoch_ms(r.time_ms("started_at_ms"));
  if (r.has("ended_at_ms")) {
    e.ended_at = from_epoch_ms(r.time_ms("ended_at_ms"));
  }
  if (r.has("exit_code")) {
    std::int64_t code = r.n("exit_code");
    if (code < INT32_MIN || code > INT32_MAX) {
      r.fail("exit_code", "is out of range");
    }
    e.exit_code = static_cast<int>(code);
  }
  e.reason = r.s("reason", false);
  for (const auto& [k, v] : r.m("labels", false).items()) {
    if (!v.is_object() || !v.contains("S") || !v["S"].is_string()) {
      r.fail("labels", "holds a value that is not a string");
      break;
    }
    e.labels[k] = v["S"].get<std::string>();
  }
  if (r.error().is_ok()) {
    if (std::optional<ExecutionStatus> st = parse_execution_status(status)) {
      e.status = *st;
    } else {
      r.fail("status", fmt::format("'{}' is not an execution status", status));
    }
  }
  if (!r.error().is_ok()) {
    return r.error();
  }
  return out;
}

json state_item(std::string_view partition_key, std::string_view key, const KeyRecord& rec) {
  json leases = json::array();
  for (const LeaseEntry& l : rec.leases) {
    leases.push_back({{"M", lease_attributes(l)}});
  }
  json queue = json::array();
  for (const PlaceEntry& p : rec.queue) {
    queue.push_back({{"M", place_attributes(p)}});
  }
  json item = {{std::string(partition_key), attr_s(key)},
               {std::string(kSortKey), attr_s(kStateSort)},
               {"rev", attr_n(rec.rev)},
               {"version", attr_n(rec.version)},
               {"last_token", attr_n(rec.last_token)},
               {"seq", attr_n(rec.seq)},
               {"write_id", attr_s(rec.write_id)},
               {"leases", {{"L", std::move(leases)}}},
               {"queue", {{"L", std::move(queue)}}}};
  if (rec.last_ended) {
    item["last_ended"] = {{"M", record_attributes(*rec.last_ended)}};
  }
  if (rec.last_succeeded) {
    item["last_succeeded"] = {{"M", record_attributes(*rec.last_succeeded)}};
  }
  return item;
}

Result<KeyRecord> state_from(const json& item, std::string_view key) {
  KeyRecord rec;
  if (item.is_null() || (item.is_object() && item.empty())) {
    return rec;
  }
  std::string where = fmt::format("'{}' (state)", key);
  Reader r(item, where);
  rec.exists = true;
  rec.rev = r.n("rev");
  rec.version = r.n("version");
  rec.last_token = r.n("last_token");
  rec.seq = r.n("seq");
  rec.write_id = r.s("write_id", false);
  for (const json& v : r.l("leases")) {
    if (!v.is_object() || !v.contains("M")) {
      r.fail("leases", "holds an entry that is not a map");
      break;
    }
    Reader lr(v["M"], where + " lease");
    LeaseEntry l;
    l.rv = lr.s("lease_rv");
    l.ttl = lr.duration_ms("ttl_ms");
    l.expires_at = lr.n("expires_at", false);
    if (!lr.error().is_ok()) {
      return lr.error();
    }
    Result<RunRecord> run = record_from(v["M"], key, where + " lease");
    if (!run) {
      return run.error();
    }
    l.run = std::move(*run);
    rec.leases.push_back(std::move(l));
  }
  for (const json& v : r.l("queue")) {
    if (!v.is_object() || !v.contains("M")) {
      r.fail("queue", "holds an entry that is not a map");
      break;
    }
    Reader pr(v["M"], where + " place");
    PlaceEntry p{.execution_id = pr.s("execution_id"),
                 .rv = pr.s("place_rv"),
                 .queue_ttl = pr.duration_ms("queue_ttl_ms")};
    if (!pr.error().is_ok()) {
      return pr.error();
    }
    rec.queue.push_back(std::move(p));
  }
  for (auto [name, slot] : {std::pair{"last_ended", &rec.last_ended},
                            std::pair{"last_succeeded", &rec.last_succeeded}}) {
    if (r.has(name)) {
      Result<RunRecord> run = record_from(r.m(name), key, where + " " + name);
      if (!run) {
        return run.error();
      }
      *slot = std::move(*run);
    }
  }
  if (!r.error().is_ok()) {
    return r.error();
  }
  return rec;
}

std::string python_item_key(std::string_view key, std::string_view sort_key) {
  if (sort_key == kStateSort) {
    return fmt::format("{}state#{}", kPythonPrefix, key);
  }
  // run#TOKEN, or run#TOKEN#SEQ for a skipped run: the numbers are of fixed width, and the two
  // forms get prefixes of their own, so the key after them is never mistaken for a number.
  std::string_view numbers = sort_key.substr(kRunPrefix.size());
  bool skipped = numbers.find('#') != std::string_view::npos;
  return fmt::format("{}{}{}#{}", kPythonPrefix, skipped ? "skip#" : "run#", numbers, key);
}

std::string python_time(SysTime t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::int64_t seconds = us / 1'000'000;
  std::int64_t fraction = us % 1'000'000;
  if (fraction < 0) {
    fraction += 1'000'000;
    --seconds;
  }
  std::time_t tt = static_cast<std::time_t>(seconds);
  std::tm local{};
  localtime_r(&tt, &local);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}", local.tm_year + 1900,
                     local.tm_mon + 1, local.tm_mday, local.tm_hour, local.tm_min, local.tm_sec,
                     fraction);
}

std::optional<SysTime> parse_python_time(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS.ffffff
  if (s.size() != 26 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != '.') {
    return std::nullopt;
  }
  auto number = [&](std::size_t at, std::size_t width) -> std::optional<int> {
    int out = 0;
    auto [end, ec] = std::from_chars(s.data() + at, s.data() + at + width, out);
    if (ec != std::errc() || end != s.data() + at + width) {
      return std::nullopt;
    }
    return out;
  };
  std::optional<int> parts[] = {number(0, 4),  number(5, 2),  number(8, 2), number(11, 2),
                                number(14, 2), number(17, 2), number(20, 6)};
  for (const auto& p : parts) {
    if (!p || *p < 0) {
      return std::nullopt;
    }
  }
  std::tm local{};
  local.tm_year = *parts[0] - 1900;
  local.tm_mon = *parts[1] - 1;
  local.tm_mday = *parts[2];
  local.tm_hour = *parts[3];
  local.tm_min = *parts[4];
  local.tm_sec = *parts[5];
  local.tm_isdst = -1;
  // Years a SysTime holds (int64 nanoseconds: 1678-2262), with room for the zone.
  if (*parts[0] < 1700 || *parts[0] > 2200 || local.tm_mon > 11 || local.tm_mday < 1 ||
      local.tm_mday > 31 || local.tm_hour > 23 || local.tm_min > 59 || local.tm_sec > 60) {
    return std::nullopt;
  }
  std::time_t t = std::mktime(&local);
  if (t == static_cast<std::time_t>(-1)) {
    return std::nullopt;
  }
  SysTime out(std::chrono::duration_cast<SysTime::duration>(std::chrono::seconds(t) +
                                                            std::chrono::microseconds(*parts[6])));
  if (python_time(out) != s) {
    return std::nullopt;  // a day the month does not have, an hour a clock change skipped
  }
  return out;
}

json lock_item(std::string_view partition_key, std::string_view key, const LockItem& l) {
  json item = {{std::string(partition_key), attr_s(key)},
               {"status_execution", attr_s(l.finished ? kFinished : kInProgress)},
               {"created_at", attr_s(l.created_at)},
               {"updated_at", attr_s(l.updated_at)}};
  if (l.token > 0) {
    item["aec_token"] = attr_n(l.token);
    item["aec_execution_id"] = attr_s(l.execution_id);
    item["aec_rv"] = attr_s(l.rv);
    item["aec_ttl_ms"] = attr_n(l.ttl.count());
    item["owner"] = attr_s(l.owner);
    item["expires_at"] = attr_n(l.expires_at);
  }
  return item;
}

Result<LockItem> lock_from(const json& item, std::string_view key) {
  LockItem l;
  if (item.is_null() || (item.is_object() && item.empty())) {
    return l;
  }
  Reader r(item, fmt::format("'{}' (lock)", key));
  l.exists = true;
  std::string status = r.s("status_execution");
  l.created_at = r.s("created_at", false);
  l.updated_at = r.s("updated_at", false);
  if (r.has("aec_token")) {
    l.token = r.n("aec_token");
    l.execution_id = r.s("aec_execution_id");
    l.rv = r.s("aec_rv");
    l.ttl = r.duration_ms("aec_ttl_ms");
    l.owner = r.s("owner", false);
    l.expires_at = r.n("expires_at", false);
    if (l.token <= 0) {
      r.fail("aec_token", "is not positive");
    }
  }
  if (r.error().is_ok() && status != kInProgress && status != kFinished) {
    r.fail("status_execution",
           fmt::format("'{}' is neither {} nor {}", status, kInProgress, kFinished));
  }
  l.finished = status == kFinished;
  if (!r.error().is_ok()) {
    return r.error();
  }
  return l;
}

}  // namespace aec::aws
