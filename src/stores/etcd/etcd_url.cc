#include "stores/etcd/etcd_url.h"

#include <fmt/format.h>

#include "core/duration.h"
#include "core/text.h"
#include "stores/etcd/endpoints.h"

namespace aec::etcd {
namespace {

constexpr std::string_view kForm = "etcd://HOST:PORT[,HOST:PORT...][?prefix=P&dial_timeout=5s]";

Status bad(std::string_view url, std::string_view what) {
  return invalid_argument(fmt::format("store URL {}: {}; write {}", quote(url), what, kForm));
}

Status set_param(EtcdUrl& out, std::string_view url, std::string_view param) {
  std::size_t eq = param.find('=');
  if (eq == std::string_view::npos) {
    return bad(url, fmt::format("parameter {} has no value", quote(param)));
  }
  std::string_view name = param.substr(0, eq);
  std::string_view value = param.substr(eq + 1);
  if (name == "prefix") {
    if (value.empty()) {
      return bad(url, "the prefix is empty");
    }
    out.prefix = std::string(value);
    return Status::ok();
  }
  if (name == "dial_timeout" || name == "rpc_timeout") {
    Result<milliseconds> d = parse_duration(value);
    if (!d || *d < milliseconds(1)) {
      return bad(url,
                 fmt::format("{} {} is not a positive duration such as 5s", name, quote(value)));
    }
    (name == "dial_timeout" ? out.dial_timeout : out.rpc_timeout) = *d;
    return Status::ok();
  }
  return bad(url, fmt::format("unknown parameter {} (known: prefix, dial_timeout, rpc_timeout)",
                              quote(name)));
}

}  // namespace

Result<EtcdUrl> parse_etcd_url(std::string_view url) {
  if (!url.starts_with("etcd://")) {
    return bad(url, "not an etcd URL");
  }
  EtcdUrl out{.display = std::string(url)};
  std::string_view rest = url.substr(7);
  std::string_view hosts = rest.substr(0, rest.find('?'));
  if (hosts.find_first_of("@/#") != std::string_view::npos) {
    return bad(url, "the endpoints may hold no user, path or fragment");
  }
  if (hosts.empty()) {
    return bad(url, "no endpoint");
  }
  for (std::string_view endpoint : split(hosts, ',')) {
    Result<HostPort> hp = split_host_port(endpoint);
    if (!hp || hp->host.empty() || hp->port.empty()) {
      return bad(url, fmt::format("endpoint {} is not HOST:PORT", quote(endpoint)));
    }
    out.endpoints.emplace_back(endpoint);
  }
  if (hosts.size() < rest.size()) {
    for (std::string_view param : split(rest.substr(hosts.size() + 1), '&')) {
      if (Status s = set_param(out, url, param); !s.is_ok()) {
        return s;
      }
    }
  }
  return out;
}

}  // namespace aec::etcd
