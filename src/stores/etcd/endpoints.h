// etcd endpoints ("host:port") turned into one gRPC channel that spreads calls over every
// member and moves away from a member that dies.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <aec/status.h>

namespace grpc {
class Channel;
}  // namespace grpc

namespace aec::etcd {

struct ClientOptions;

// One endpoint split into host and port. Accepts "host:port", "[v6addr]:port" and an optional
// "http://" in front; InvalidArgument for anything else (https:// included: no TLS yet).
struct HostPort {
  std::string host;
  std::string port;
};
Result<HostPort> split_host_port(std::string_view endpoint);

// Resolves every endpoint now (getaddrinfo) into one gRPC target naming all members' addresses,
// "ipv4:10.0.0.1:2379,10.0.0.2:2379" (or "ipv6:[..]:p,..." when some host has no IPv4
// address). gRPC then balances over and reconnects to those addresses itself; a later DNS
// change is not followed. InvalidArgument for a malformed endpoint, Unavailable when a host
// does not resolve.
Result<std::string> resolve_target(const std::vector<std::string>& endpoints);

// A channel to `target` with etcd-friendly settings: round_robin over the members (a call goes
// to a connected member; a dead one leaves the rotation as soon as its connection breaks),
// HTTP/2 keepalive pings so a half-open connection is noticed, short reconnect backoff, no
// receive size limit, and a subchannel pool of its own (two clients never share a connection).
std::shared_ptr<grpc::Channel> make_channel(const std::string& target,
                                            const ClientOptions& options);

}  // namespace aec::etcd
