#include "stores/etcd/endpoints.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <optional>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <netdb.h>
#include <sys/socket.h>

#include "core/status_macros.h"
#include "stores/etcd/etcd_client.h"

namespace aec::etcd {
namespace {

// The first address of each family that `hp` resolves to.
struct Addresses {
  std::optional<std::string> v4;
  std::optional<std::string> v6;
};

Result<Addresses> resolve(const HostPort& hp) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  int rc = getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &list);
  if (rc != 0) {
    return unavailable(
        fmt::format("cannot resolve etcd host \"{}\": {}", hp.host, gai_strerror(rc)));
  }
  Addresses out;
  for (addrinfo* a = list; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET && !out.v4) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
      inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
      out.v4 = fmt::format("{}:{}", text, hp.port);
    } else if (a->ai_family == AF_INET6 && !out.v6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(a->ai_addr);
      inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof text);
      out.v6 = fmt::format("[{}]:{}", text, hp.port);
    }
  }
  freeaddrinfo(list);
  return out;
}

bool valid_port(std::string_view port) {
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  int n = std::stoi(std::string(port));
  return n > 0 && n <= 65535;
}

}  // namespace

Result<HostPort> split_host_port(std::string_view endpoint) {
  std::string_view rest = endpoint;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  }
  if (rest.ends_with("/")) {
    rest.remove_suffix(1);
  }
  auto bad = [&](std::string_view why) {
    return invalid_argument(
        fmt::format("bad etcd endpoint \"{}\": {}; expected host:port", endpoint, why));
  };
  if (rest.find("://") != std::string_view::npos) {
    return bad("only plain http:// is supported (no TLS)");
  }
  HostPort hp;
  std::size_t colon = rest.rfind(':');
  if (rest.starts_with("[")) {
    std::size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 != colon) {
      return bad("an IPv6 address needs [brackets] and a port");
    }
    hp.host = std::string(rest.substr(1, close - 1));
  } else {
    if (colon == std::string_view::npos || rest.find(':') != colon) {
      return bad("no port");
    }
    hp.host = std::string(rest.substr(0, colon));
  }
  hp.port = std::string(rest.substr(colon + 1));
  if (hp.host.empty()) {
    return bad("no host");
  }
  if (!valid_port(hp.port)) {
    return bad("the port must be a number from 1 to 65535");
  }
  return hp;
}

Result<std::string> resolve_target(const std::vector<std::string>& endpoints) {
  if (endpoints.empty()) {
    return invalid_argument("no etcd endpoint given; expected host:port[,host:port...]");
  }
  std::vector<Addresses> all;
  bool every_v4 = true;
  bool every_v6 = true;
  for (const std::string& e : endpoints) {
    AEC_ASSIGN_OR_RETURN(HostPort hp, split_host_port(e));
    AEC_ASSIGN_OR_RETURN(Addresses a, resolve(hp));
    every_v4 = every_v4 && a.v4.has_value();
    every_v6 = every_v6 && a.v6.has_value();
    all.push_back(std::move(a));
  }
  // One gRPC target holds addresses of one family only.
  if (!every_v4 && !every_v6) {
    return invalid_argument(
        "the etcd endpoints mix IPv4-only and IPv6-only hosts; give addresses of one family");
  }
  std::string target = every_v4 ? "ipv4:" : "ipv6:";
  for (std::size_t i = 0; i < all.size(); ++i) {
    target += (i == 0 ? "" : ",") + (every_v4 ? *all[i].v4 : *all[i].v6);
  }
  return target;
}

std::shared_ptr<grpc::Channel> make_channel(const std::string& target,
                                            const ClientOptions& options) {
  auto ms = [](std::chrono::milliseconds d) {
    return static_cast<int>(std::clamp<std::int64_t>(d.count(), 1, INT_MAX));
  };
  grpc::ChannelArguments args;
  // round_robin rather than pick_first: every member stays connected, so when one dies the
  // next call goes to another at once instead of waiting for a new connection, and a member
  // that answers "no leader" is not asked again by the next retry.
  args.SetLoadBalancingPolicyName("round_robin");
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, ms(options.keepalive_time));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, ms(options.keepalive_timeout));
  // Pings only while calls are in flight (watches and keep-alive streams always are): etcd's
  // server counts pings on an idle connection as abuse. Unlimited pings without data: a watch
  // may see no data for hours, and gRPC's default (2) would stop checking it.
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // gRPC's reconnect backoff (1 s growing to 120 s) and its minimum connect timeout (20 s, set
  // by the same MIN_RECONNECT_BACKOFF argument) are made for far bigger fleets.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, ms(options.dial_timeout));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, ms(options.max_reconnect_backoff));
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

}  // namespace aec::etcd
