#include "stores/etcd/etcd_records.h"

#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/text.h"

namespace aec::etcd {
namespace {

using nlohmann::json;

Status corrupt(std::string_view what, std::string_view text) {
  return Status(Code::DataLoss, fmt::format("etcd store: a malformed {} value: {}", what,
                                            quote(text.substr(0, 200))));
}

std::optional<json> parse(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return std::nullopt;
  }
  return j;
}

std::int64_t ms_of(SysTime t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json execution_json(const Execution& e) {
  json j = {{"id", e.id},           {"key", e.key},
            {"token", e.token},     {"status", to_string(e.status)},
            {"host", e.owner.host}, {"pid", e.owner.pid},
            {"user", e.owner.user}, {"started", ms_of(e.started_at)},
            {"labels", e.labels},   {"reason", e.reason}};
  if (e.ended_at) {
    j["ended"] = ms_of(*e.ended_at);
  }
  if (e.exit_code) {
    j["exit"] = *e.exit_code;
  }
  return j;
}

// Reads field `name` of object `j` into `out` when present (absent: `out` keeps its default).
// False when it is there with another type: json::get() would throw, a corrupt value.
bool read_text(const json& j, const char* name, std::string& out) {
  auto it = j.find(name);
  if (it == j.end()) {
    return true;
  }
  if (!it->is_string()) {
    return false;
  }
  out = it->get<std::string>();
  return true;
}

bool read_int(const json& j, const char* name, std::int64_t& out) {
  auto it = j.find(name);
  if (it == j.end()) {
    return true;
  }
  if (!it->is_number_integer() ||
      (it->is_number_unsigned() &&
       it->get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max()))) {
    return false;
  }
  out = it->get<std::int64_t>();
  return true;
}

// Milliseconds since 1970 as a SysTime; false past what SysTime (int64 ns) holds.
bool read_time(const json& j, const char* name, SysTime& out) {
  constexpr std::int64_t kMaxMs =
      std::chrono::duration_cast<milliseconds>(SysTime::duration::max()).count();
  std::int64_t ms = 0;
  if (!j.contains(name)) {
    return true;
  }
  if (!read_int(j, name, ms) || ms < -kMaxMs || ms > kMaxMs) {
    return false;
  }
  out = SysTime(milliseconds(ms));
  return true;
}

std::optional<Execution> execution_of(const json& j) {
  if (!j.is_object()) {
    return std::nullopt;
  }
  std::string word;
  if (!read_text(j, "status", word)) {
    return std::nullopt;
  }
  std::optional<ExecutionStatus> status = parse_execution_status(word);
  if (!status || !j.contains("id") || !j.contains("labels") || !j["labels"].is_object()) {
    return std::nullopt;
  }
  Execution e{.status = *status};
  if (!read_text(j, "id", e.id) || !read_text(j, "key", e.key) || !read_int(j, "token", e.token) ||
      !read_text(j, "host", e.owner.host) || !read_int(j, "pid", e.owner.pid) ||
      !read_text(j, "user", e.owner.user) || !read_time(j, "started", e.started_at) ||
      !read_text(j, "reason", e.reason)) {
    return std::nullopt;
  }
  for (const auto& [k, v] : j["labels"].items()) {
    if (v.is_string()) {
      e.labels[k] = v.get<std::string>();
    }
  }
  if (j.contains("ended") && j["ended"].is_number_integer()) {
    SysTime ended{};
    if (!read_time(j, "ended", ended)) {
      return std::nullopt;
    }
    e.ended_at = ended;
  }
  if (j.contains("exit") && j["exit"].is_number_integer()) {
    e.exit_code = j["exit"].get<int>();
  }
  return e;
}

void put_expiry(json& j, std::optional<std::int64_t> expires_ns) {
  if (expires_ns) {
    j["exp"] = *expires_ns;
  }
}

std::optional<std::int64_t> expiry_of(const json& j) {
  if (j.contains("exp") && j["exp"].is_number_integer()) {
    return j["exp"].get<std::int64_t>();
  }
  return std::nullopt;
}

}  // namespace

std::string Layout::lease(std::string_view key, std::int64_t token) const {
  return fmt::format("{}{:020}", leases(key), token);
}

std::string Layout::place(std::string_view key, std::int64_t lease_id) const {
  return fmt::format("{}{:020}", places(key), lease_id);
}

std::string Layout::entry(std::string_view key, std::int64_t seq) const {
  return fmt::format("{}{:020}", history(key), seq);
}

std::string Layout::encode(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    if (c == '%') {
      out += "%25";
    } else if (c == '/') {
      out += "%2F";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Layout::decode(std::string_view encoded) {
  std::string out;
  out.reserve(encoded.size());
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    if (encoded.substr(i, 3) == "%25") {
      out += '%';
      i += 2;
    } else if (encoded.substr(i, 3) == "%2F") {
      out += '/';
      i += 2;
    } else {
      out += encoded[i];
    }
  }
  return out;
}

std::optional<Layout::Part> Layout::part_of(std::string_view etcd_key) const {
  const std::string tree = keys();
  if (!etcd_key.starts_with(tree)) {
    return std::nullopt;
  }
  etcd_key.remove_prefix(tree.size());
  const std::size_t slash = etcd_key.find('/');
  if (slash == std::string_view::npos || slash == 0) {
    return std::nullopt;
  }
  return Part{.key = decode(etcd_key.substr(0, slash)),
              .what = std::string(etcd_key.substr(slash + 1))};
}

std::string to_text(const Meta& meta) {
  return dump(json{{"key", meta.key}, {"running", meta.running}, {"ok", meta.last_ok}});
}

Result<Meta> meta_from_text(std::string_view text) {
  std::optional<json> j = parse(text);
  Meta meta;
  if (!j || !(*j)["running"].is_array() || !read_text(*j, "key", meta.key) ||
      !read_int(*j, "ok", meta.last_ok)) {
    return corrupt("meta", text);
  }
  for (const json& pair : (*j)["running"]) {
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_integer() ||
        !pair[1].is_number_integer()) {
      return corrupt("meta", text);
    }
    meta.running.emplace_back(pair[0].get<std::int64_t>(), pair[1].get<std::int64_t>());
  }
  return meta;
}

std::string to_text(const LeaseValue& lease) {
  json j = {{"e", execution_json(lease.execution)}, {"seq", lease.seq}, {"ttl", lease.ttl.count()}};
  put_expiry(j, lease.expires_ns);
  return dump(j);
}

Result<LeaseValue> lease_from_text(std::string_view text) {
  std::optional<json> j = parse(text);
  std::optional<Execution> e = j ? execution_of((*j)["e"]) : std::nullopt;
  LeaseValue lease;
  std::int64_t ttl_ms = 0;
  if (!e || !read_int(*j, "seq", lease.seq) || !read_int(*j, "ttl", ttl_ms)) {
    return corrupt("lease", text);
  }
  lease.execution = std::move(*e);
  lease.ttl = milliseconds(ttl_ms);
  lease.expires_ns = expiry_of(*j);
  return lease;
}

std::string to_text(const PlaceValue& place) {
  json j = {{"id", place.execution_id}, {"ttl", place.ttl.count()}};
  put_expiry(j, place.expires_ns);
  return dump(j);
}

Result<PlaceValue> place_from_text(std::string_view text) {
  std::optional<json> j = parse(text);
  std::int64_t ttl_ms = 0;
  if (!j || !(*j)["id"].is_string() || !read_int(*j, "ttl", ttl_ms)) {
    return corrupt("queue place", text);
  }
  return PlaceValue{.execution_id = (*j)["id"].get<std::string>(),
                    .ttl = milliseconds(ttl_ms),
                    .expires_ns = expiry_of(*j)};
}

std::string to_text(const Execution& e) {
  return dump(execution_json(e));
}

Result<Execution> execution_from_text(std::string_view text) {
  std::optional<json> j = parse(text);
  std::optional<Execution> e = j ? execution_of(*j) : std::nullopt;
  if (!e) {
    return corrupt("execution", text);
  }
  return std::move(*e);
}

}  // namespace aec::etcd
