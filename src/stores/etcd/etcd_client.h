// aec::etcd::Client: a synchronous client of etcd's v3 gRPC API (KV, Lease, Maintenance) over
// one gRPC channel to every member of a cluster. Internal to the etcd store: it exposes the
// generated protobuf types of etcd's API (src/stores/etcd/proto/) as they are.
//
// Failover: the channel balances calls round-robin over the members' addresses and drops a
// member from the rotation as soon as its connection breaks (process death) or its keepalive
// pings go unanswered (a half-open connection), reconnecting to it in the background. So the
// client keeps working as long as a quorum of members is reachable; a call that was on a member
// when it died fails (reads are retried within their deadline, writes are not: see below).
//
// Errors (every call returns a Status or Result<T>, nothing throws):
//   Unavailable        the cluster could not be reached or answered "no leader", "timed out",
//                      ... within the deadline. The message names the endpoints. Retryable.
//   Unavailable + indeterminate
//                      a write (put, delete_range, a txn with a write, lease_grant,
//                      lease_revoke, compact) failed after it may have reached etcd: it may or
//                      may not have been applied. aec::Status has no code or flag for that, so
//                      it is Unavailable with a message starting "indeterminate: ", and
//                      is_indeterminate() tells. A write that certainly was not sent (no member
//                      reachable before the deadline) is plain Unavailable.
//   NotFound           etcd says the thing does not exist (a lease).
//   InvalidArgument    etcd refused the request as malformed (e.g. duplicate keys in a txn).
//   FailedPrecondition the request cannot apply now (e.g. a revision that was compacted).
//   PermissionDenied, DataLoss, Internal: as etcd's gRPC code says.
//
// Thread-safety: every method may be called from any number of threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <aec/status.h>

#include "stores/etcd/proto/rpc.pb.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace aec::etcd {

class CallTimer;

using etcdserverpb::CompactionResponse;
using etcdserverpb::Compare;
using etcdserverpb::DeleteRangeResponse;
using etcdserverpb::LeaseGrantResponse;
using etcdserverpb::LeaseTimeToLiveResponse;
using etcdserverpb::PutResponse;
using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;
using etcdserverpb::RequestOp;
using etcdserverpb::StatusResponse;
using etcdserverpb::TxnRequest;
using etcdserverpb::TxnResponse;
using mvccpb::Event;
using mvccpb::KeyValue;

struct ClientOptions {
  // How long connect() waits for a connection to at least one member. Also the longest a
  // single connection attempt may take (a black-holed address).
  std::chrono::milliseconds dial_timeout{5000};
  // The deadline of each call, from its start. Reads retry within it.
  std::chrono::milliseconds rpc_timeout{5000};
  // HTTP/2 pings on a connection with calls in flight, so a member that vanished without
  // closing its connection (power loss, partition) is noticed after about time + timeout.
  // etcd answers pings more frequent than its --grpc-keepalive-min-time (default 5 s) with
  // GOAWAY ("too many pings"), so keep keepalive_time at or above that.
  std::chrono::milliseconds keepalive_time{6000};
  std::chrono::milliseconds keepalive_timeout{3000};
  // Upper bound of the backoff between reconnection attempts to a member that is down (gRPC's
  // default is 120 s, far too long to notice a restarted member).
  std::chrono::milliseconds max_reconnect_backoff{1000};
};

struct RangeOptions {
  std::int64_t limit = 0;     // 0: no limit
  std::int64_t revision = 0;  // <= 0: the newest
  bool keys_only = false;
  bool count_only = false;
  // Answer from the serving member's own state without asking the leader: faster, may be
  // stale. Linearizable (false) by default.
  bool serializable = false;
  RangeRequest::SortOrder sort_order = RangeRequest::NONE;
  RangeRequest::SortTarget sort_target = RangeRequest::KEY;
};

struct PutOptions {
  std::int64_t lease = 0;  // 0: no lease
  bool prev_kv = false;    // return the previous pair in PutResponse::prev_kv
};

// True for the error of a write that may or may not have been applied (see above).
bool is_indeterminate(const Status& status);

class Client {
 public:
  // What a call needs to know about its client (etcd_client.cc).
  struct CallSite;

  // Resolves `endpoints` ("host:port", at least one) and waits up to options.dial_timeout for
  // one of them to answer. InvalidArgument for a malformed endpoint, Unavailable when no
  // member answers in time.
  static Result<std::unique_ptr<Client>> connect(const std::vector<std::string>& endpoints,
                                                 ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The keys in [key, range_end) (only `key` when range_end is empty). A read: retried on
  // another member within the deadline when one fails.
  Result<RangeResponse> range(std::string_view key, std::string_view range_end = {},
                              const RangeOptions& options = {}) const;
  Result<PutResponse> put(std::string_view key, std::string_view value,
                          const PutOptions& options = {}) const;
  Result<DeleteRangeResponse> delete_range(std::string_view key, std::string_view range_end = {},
                                           bool prev_kv = false) const;
  // One transaction (see txn_ops.h to build it). A write when any of its operations writes,
  // else a read (and retried like range()). `succeeded` tells which branch ran.
  // Beware (etcd 3.4): a transaction whose operations are all serializable ranges, vacuously so
  // when it has none, is answered from the serving member's own state: it may be stale. Add a
  // (linearizable) op_get to a compare-only transaction.
  Result<TxnResponse> txn(const TxnRequest& request) const;
  // Compacts the history up to `revision`: watches and reads of older revisions then fail.
  Result<CompactionResponse> compact(std::int64_t revision, bool physical = false) const;

  // A new lease of at least `ttl` (etcd raises a TTL below its minimum, about 2 s with default
  // settings). Its keys are deleted when it expires or is revoked.
  Result<LeaseGrantResponse> lease_grant(std::chrono::seconds ttl) const;
  // Revokes a lease and deletes its keys. NotFound when the lease does not exist (expired).
  Status lease_revoke(std::int64_t lease) const;
  // A lease's remaining TTL in seconds (-1 when it has expired or never existed: no error) and,
  // with `keys`, the keys attached to it.
  Result<LeaseTimeToLiveResponse> lease_time_to_live(std::int64_t lease, bool keys = false) const;

  // The status of the one member at `endpoint` (any "host:port", not necessarily one of this
  // client's): its member id (header().member_id()), the leader it believes in (leader()), its
  // raft index and term. Fails fast (Unavailable) when that member is down.
  Result<StatusResponse> status(const std::string& endpoint) const;

  const std::vector<std::string>& endpoints() const { return endpoints_; }
  const ClientOptions& options() const { return options_; }
  // "etcd at a:1,b:2,c:3": how error messages name the cluster.
  const std::string& name() const { return name_; }
  // The channel the calls use, for KeepAlive and Watch (which outlive nothing: they hold it).
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  struct Stubs;
  CallSite site() const;
  Client(std::vector<std::string> endpoints, ClientOptions options,
         std::shared_ptr<grpc::Channel> channel);

  std::vector<std::string> endpoints_;
  ClientOptions options_;
  std::string name_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stubs> stubs_;
  std::unique_ptr<CallTimer> timer_;  // ends unary calls at their deadline on CLOCK_MONOTONIC
};

}  // namespace aec::etcd
