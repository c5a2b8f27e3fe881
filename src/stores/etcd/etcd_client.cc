#include "stores/etcd/etcd_client.h"

#include <algorithm>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include "core/status_macros.h"
#include "stores/etcd/call_timer.h"
#include "stores/etcd/deadline.h"
#include "stores/etcd/endpoints.h"
#include "stores/etcd/etcd_errors.h"
#include "stores/etcd/proto/rpc.grpc.pb.h"
#include "stores/etcd/txn_ops.h"

namespace aec::etcd {

using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

struct Client::Stubs {
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
};

struct Client::CallSite {
  const std::string& cluster;
  grpc::Channel& channel;
  milliseconds timeout;
  CallTimer& timer;
  etcdserverpb::KV::Stub& kv;
};

Client::CallSite Client::site() const {
  return {name_, *channel_, options_.rpc_timeout, *timer_, *stubs_->kv};
}

namespace {

using CallSite = Client::CallSite;

// What a call cancelled by `armed` at its deadline answers: what gRPC would have, on time.
grpc::Status on_time(grpc::Status status, const CallTimer::Armed& armed) {
  if (!status.ok() && armed.fired()) {
    return {grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded (aec's monotonic timer)"};
  }
  return status;
}

// Whether the channel is connected to some member, waiting for one until `deadline`. Instead of
// grpc::Channel::WaitForConnected, whose wait ends on gRPC's timers (call_timer.h): a connected
// channel answers at once; else a call, a count of one key that any member answers from its own
// copy without raft, makes the channel connect (gRPC works on a connection while a call or a
// watch waits on it; looking at the state alone does not) and ends at the deadline on aec's
// clock.
bool reach(const CallSite& site, Steady::time_point deadline) {
  if (site.channel.GetState(/*try_to_connect=*/true) == GRPC_CHANNEL_READY) {
    return true;
  }
  etcdserverpb::RangeRequest request;
  request.set_key("aec/ping");
  request.set_count_only(true);
  request.set_serializable(true);
  grpc::ClientContext context;
  context.set_deadline(to_gpr(deadline));
  context.set_wait_for_ready(true);
  RangeResponse response;
  CallTimer::Armed armed = site.timer.arm(&context, deadline);
  grpc::Status status = site.kv.Range(&context, request, &response);
  // Any answer, even a refusal the real call will report, means a member was reached.
  return status.ok() || site.channel.GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY;
}

// Runs one unary call `fn(context, response)` with the client's deadline, which both gRPC and
// the client's CallTimer keep (gRPC's alone may be moved by a wall-clock step).
//
// A write first makes sure some member answers (reach): if none does before the deadline the
// request was certainly never sent, which is worth saying (it is not indeterminate). After
// that, the call itself waits for a ready member (wait_for_ready) instead of failing at once
// while the channel reconnects, and its failure is indeterminate when it may have been sent.
//
// A read that fails for the member's sake (Unavailable: it died under the call, has no leader,
// or timed out inside raft) is sent again, to the next member in the rotation, until the
// deadline: reads are idempotent. A write goes with the "hasleader" metadata, so a member that
// knows it has no leader (an election is on) refuses it before applying anything, and it too is
// sent again until the deadline; sent to a member that still believes in a dead leader, it
// waits for the deadline and its outcome is unknown.
template <typename Resp, typename Fn>
Result<Resp> unary(const CallSite& site, const std::string& what, CallKind kind, Fn&& fn) {
  const Steady::time_point deadline = Steady::now() + site.timeout;
  if (kind == CallKind::Write && !reach(site, deadline)) {
    return not_sent(site.cluster, what, site.timeout);
  }
  milliseconds backoff(20);
  while (true) {
    grpc::ClientContext context;
    context.set_deadline(to_gpr(deadline));
    context.set_wait_for_ready(true);
    if (kind == CallKind::Write) {
      // A member that knows it has no leader refuses the write at once (Unavailable, and
      // certainly not applied) instead of holding it until the deadline.
      context.AddMetadata("hasleader", "true");
    }
    Resp response;
    grpc::Status status;
    {
      CallTimer::Armed armed = site.timer.arm(&context, deadline);
      status = on_time(fn(&context, &response), armed);
    }
    if (status.ok()) {
      return response;
    }
    const bool again = kind == CallKind::Read ? is_retryable(status) : is_no_leader(status);
    if (again && Steady::now() + backoff < deadline) {
      // A pause, not a wait for a condition: the member that failed needs a moment (an
      // election takes about a second) and the others are tried in turn meanwhile.
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, milliseconds(250));
      continue;
    }
    return from_grpc(status, site.cluster, what, kind);
  }
}

// A key for a message: quoted, escaped, and cut short when long.
std::string quoted(std::string_view key) {
  constexpr std::size_t kMax = 80;
  if (key.size() > kMax) {
    return fmt::format("{:?}...", key.substr(0, kMax));
  }
  return fmt::format("{:?}", key);
}

std::string describe_range(std::string_view verb, std::string_view key,
                           std::string_view range_end) {
  if (range_end.empty()) {
    return fmt::format("{} {}", verb, quoted(key));
  }
  return fmt::format("{} [{}, {})", verb, quoted(key), quoted(range_end));
}

}  // namespace

bool is_indeterminate(const Status& status) {
  return status.code() == Code::Unavailable && status.message().starts_with(kIndeterminatePrefix);
}

Result<std::unique_ptr<Client>> Client::connect(const std::vector<std::string>& endpoints,
                                                ClientOptions options) {
  AEC_ASSIGN_OR_RETURN(std::string target, resolve_target(endpoints));
  std::shared_ptr<grpc::Channel> channel = make_channel(target, options);
  std::unique_ptr<Client> client(new Client(endpoints, options, channel));
  // Fail early with a clear message rather than at the first call.
  if (!reach(client->site(), Steady::now() + options.dial_timeout)) {
    return unavailable(fmt::format("{}: no member reachable within {} ms; is etcd running there?",
                                   client->name(), options.dial_timeout.count()));
  }
  return client;
}

Client::Client(std::vector<std::string> endpoints, ClientOptions options,
               std::shared_ptr<grpc::Channel> channel)
    : endpoints_(std::move(endpoints)),
      options_(options),
      name_(fmt::format("etcd at {}", fmt::join(endpoints_, ","))),
      channel_(std::move(channel)),
      stubs_(
          new Stubs{etcdserverpb::KV::NewStub(channel_), etcdserverpb::Lease::NewStub(channel_)}),
      timer_(std::make_unique<CallTimer>()) {}

Client::~Client() = default;

Result<RangeResponse> Client::range(std::string_view key, std::string_view range_end,
                                    const RangeOptions& options) const {
  etcdserverpb::RangeRequest request = range_request(key, range_end, options);
  return unary<RangeResponse>(
      site(), describe_range("range", key, range_end), CallKind::Read,
      [&](grpc::ClientContext* c, RangeResponse* r) { return stubs_->kv->Range(c, request, r); });
}

Result<PutResponse> Client::put(std::string_view key, std::string_view value,
                                const PutOptions& options) const {
  etcdserverpb::PutRequest request = put_request(key, value, options);
  return unary<PutResponse>(
      site(), fmt::format("put {}", quoted(key)), CallKind::Write,
      [&](grpc::ClientContext* c, PutResponse* r) { return stubs_->kv->Put(c, request, r); });
}

Result<DeleteRangeResponse> Client::delete_range(std::string_view key, std::string_view range_end,
                                                 bool prev_kv) const {
  etcdserverpb::DeleteRangeRequest request = delete_request(key, range_end, prev_kv);
  return unary<DeleteRangeResponse>(site(), describe_range("delete", key, range_end),
                                    CallKind::Write,
                                    [&](grpc::ClientContext* c, DeleteRangeResponse* r) {
                                      return stubs_->kv->DeleteRange(c, request, r);
                                    });
}

Result<TxnResponse> Client::txn(const TxnRequest& request) const {
  const bool write = writes(request);
  std::string what = fmt::format(
      "txn of {} compare(s) on {}", request.compare_size(),
      request.compare_size() > 0 ? quoted(request.compare(0).key()) : std::string("no key"));
  return unary<TxnResponse>(
      site(), what, write ? CallKind::Write : CallKind::Read,
      [&](grpc::ClientContext* c, TxnResponse* r) { return stubs_->kv->Txn(c, request, r); });
}

Result<CompactionResponse> Client::compact(std::int64_t revision, bool physical) const {
  etcdserverpb::CompactionRequest request;
  request.set_revision(revision);
  request.set_physical(physical);
  return unary<CompactionResponse>(site(), fmt::format("compact to revision {}", revision),
                                   CallKind::Write,
                                   [&](grpc::ClientContext* c, CompactionResponse* r) {
                                     return stubs_->kv->Compact(c, request, r);
                                   });
}

Result<LeaseGrantResponse> Client::lease_grant(std::chrono::seconds ttl) const {
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(ttl.count());
  AEC_ASSIGN_OR_RETURN(LeaseGrantResponse response,
                       unary<LeaseGrantResponse>(
                           site(), fmt::format("lease grant (ttl {} s)", ttl.count()),
                           CallKind::Write, [&](grpc::ClientContext* c, LeaseGrantResponse* r) {
                             return stubs_->lease->LeaseGrant(c, request, r);
                           }));
  if (!response.error().empty()) {  // an old way of refusing; etcd 3.4 uses gRPC codes
    return unavailable(fmt::format("{}: lease grant refused: {}", name_, response.error()));
  }
  return response;
}

Status Client::lease_revoke(std::int64_t lease) const {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(lease);
  return unary<etcdserverpb::LeaseRevokeResponse>(
             site(), fmt::format("lease revoke of {:x}", lease), CallKind::Write,
             [&](grpc::ClientContext* c, etcdserverpb::LeaseRevokeResponse* r) {
               return stubs_->lease->LeaseRevoke(c, request, r);
             })
      .status();
}

Result<LeaseTimeToLiveResponse> Client::lease_time_to_live(std::int64_t lease, bool keys) const {
  etcdserverpb::LeaseTimeToLiveRequest request;
  request.set_id(lease);
  request.set_keys(keys);
  return unary<LeaseTimeToLiveResponse>(site(), fmt::format("lease time-to-live of {:x}", lease),
                                        CallKind::Read,
                                        [&](grpc::ClientContext* c, LeaseTimeToLiveResponse* r) {
                                          return stubs_->lease->LeaseTimeToLive(c, request, r);
                                        });
}

Result<StatusResponse> Client::status(const std::string& endpoint) const {
  AEC_ASSIGN_OR_RETURN(std::string target, resolve_target({endpoint}));
  // A channel of its own: the question is about that one member, not the cluster.
  std::shared_ptr<grpc::Channel> channel = make_channel(target, options_);
  auto stub = etcdserverpb::Maintenance::NewStub(channel);
  grpc::ClientContext context;
  const Steady::time_point deadline = Steady::now() + options_.rpc_timeout;
  context.set_deadline(to_gpr(deadline));
  etcdserverpb::StatusRequest request;
  StatusResponse response;
  grpc::Status status;
  {
    CallTimer::Armed armed = timer_->arm(&context, deadline);
    status = on_time(stub->Status(&context, request, &response), armed);
  }
  if (!status.ok()) {
    return from_grpc(status, fmt::format("etcd member at {}", endpoint), "status", CallKind::Read);
  }
  return response;
}

}  // namespace aec::etcd
