#include "stores/etcd/etcd_records.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace aec::etcd {
namespace {

using nlohmann::json;

Status corrupt(std::string_view what, std::string_view text) {
  return Status(Code::DataLoss,
                fmt::format("etcd store: a malformed {} value: {}", what, text.substr(0, 200)));
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

std::optional<Execution> execution_of(const json& j) {
  if (!j.is_object()) {
    return std::nullopt;
  }
  std::optional<ExecutionStatus> status = parse_execution_status(j.value("status", std::string()));
  if (!status || !j.contains("id") || !j.contains("labels") || !j["labels"].is_object()) {
    return std::nullopt;
  }
  Execution e{.id = j.value("id", std::string()),
              .key = j.value("key", std::string()),
              .token = j.value("token", std::int64_t{0}),
              .status = *status,
              .owner = {.host = j.value("host", std::string()),
                        .pid = j.value("pid", std::int64_t{0}),
                        .user = j.value("user", std::string())},
              .started_at = SysTime(milliseconds(j.value("started", std::int64_t{0}))),
              .reason = j.value("reason", std::string())};
  for (const auto& [k, v] : j["labels"].items()) {
    if (v.is_string()) {
      e.labels[k] = v.get<std::string>();
    }
  }
  if (j.contains("ended") && j["ended"].is_number_integer()) {
    e.ended_at = SysTime(milliseconds(j["ended"].get<std::int64_t>()));
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

std::string Layout::place(std::string_view key, std::int64_t seq) const {
  return fmt::format("{}{:020}", places(key), seq);
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
  if (!j || !(*j)["running"].is_array()) {
    return corrupt("meta", text);
  }
  Meta meta{.key = j->value("key", std::string()), .last_ok = j->value("ok", std::int64_t{0})};
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
  if (!e) {
    return corrupt("lease", text);
  }
  return LeaseValue{.execution = std::move(*e),
                    .seq = j->value("seq", std::int64_t{0}),
                    .ttl = milliseconds(j->value("ttl", std::int64_t{0})),
                    .expires_ns = expiry_of(*j)};
}

std::string to_text(const PlaceValue& place) {
  json j = {{"id", place.execution_id}, {"ttl", place.ttl.count()}};
  put_expiry(j, place.expires_ns);
  return dump(j);
}

Result<PlaceValue> place_from_text(std::string_view text) {
  std::optional<json> j = parse(text);
  if (!j || !(*j)["id"].is_string()) {
    return corrupt("queue place", text);
  }
  return PlaceValue{.execution_id = (*j)["id"].get<std::string>(),
                    .ttl = milliseconds(j->value("ttl", std::int64_t{0})),
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
