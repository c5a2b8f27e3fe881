#include "stores/etcd/lease_once.h"

#include <fmt/format.h>
#include <grpcpp/channel.h>

#include <aec/clock.h>

#include "stores/etcd/bidi_stream.h"
#include "stores/etcd/deadline.h"
#include "stores/etcd/etcd_client.h"
#include "stores/etcd/etcd_errors.h"
#include "stores/etcd/proto/rpc.grpc.pb.h"

namespace aec::etcd {

using Stream =
    BidiStream<etcdserverpb::LeaseKeepAliveRequest, etcdserverpb::LeaseKeepAliveResponse>;

Result<std::int64_t> keep_alive_once(const Client& client, std::int64_t lease) {
  auto stub = etcdserverpb::Lease::NewStub(client.channel());
  Stream stream([&stub](grpc::ClientContext* c, grpc::CompletionQueue* q) {
    return stub->PrepareAsyncLeaseKeepAlive(c, q);
  });
  etcdserverpb::LeaseKeepAliveRequest request;
  request.set_id(lease);
  const MonoTime deadline = BootClock::now() + client.options().rpc_timeout;
  std::string error = "no answer";
  // A keep-alive is idempotent (it resets the TTL), so it may be sent again on another member.
  while (BootClock::now() < deadline) {
    grpc::Status s = stream.open(to_gpr(deadline));
    if (s.ok()) {
      s = stream.write(request, to_gpr(deadline));
    }
    if (s.ok()) {
      etcdserverpb::LeaseKeepAliveResponse answer;
      switch (stream.read(&answer, to_gpr(deadline), {})) {
        case Stream::Read::Message:
          return answer.ttl();
        case Stream::Read::Ended:
          s = stream.status();
          break;
        case Stream::Read::Timeout:
        case Stream::Read::Stopped:
          s = grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "no answer in time");
          break;
      }
    }
    error = describe(s);
    (void)pause_until(std::min(BootClock::now() + std::chrono::milliseconds(50), deadline), {});
  }
  return unavailable(
      fmt::format("{}: keep-alive of lease {:x} got no answer: {}", client.name(), lease, error));
}

}  // namespace aec::etcd
