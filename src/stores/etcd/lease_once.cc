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

namespace {

// How long an answer is awaited on a stream opened earlier. etcd checks that a member has a
// leader when a stream is opened (the hasleader metadata), not for each message on it: a member
// that lost its leader since holds the keep-alive until its own timeout. Past this the stream is
// dropped and the keep-alive (idempotent) sent on a new one.
constexpr auto kReusedStreamPatience = std::chrono::seconds(1);

// One keep-alive of `lease` on `stream` (opened first when it is not open), retried on a new
// stream while the client's rpc_timeout lasts.
Result<std::int64_t> keep_alive_on(const Client& client, Stream& stream, std::int64_t lease) {
  etcdserverpb::LeaseKeepAliveRequest request;
  request.set_id(lease);
  const MonoTime deadline = BootClock::now() + client.options().rpc_timeout;
  std::string error = "no answer";
  // A keep-alive is idempotent (it resets the TTL), so it may be sent again on another member.
  while (BootClock::now() < deadline) {
    const bool reused = stream.is_open();
    grpc::Status s = reused ? grpc::Status::OK : stream.open(to_gpr(deadline));
    const MonoTime answer_by =
        reused ? std::min(deadline, BootClock::now() + kReusedStreamPatience) : deadline;
    if (s.ok()) {
      s = stream.write(request, to_gpr(answer_by));
    }
    if (s.ok()) {
      etcdserverpb::LeaseKeepAliveResponse answer;
      switch (stream.read(&answer, to_gpr(answer_by), {})) {
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
    stream.close();  // a stream that failed once is opened anew (an answer may be on its way)
    error = describe(s);
    (void)pause_until(std::min(BootClock::now() + std::chrono::milliseconds(50), deadline), {});
  }
  return unavailable(
      fmt::format("{}: keep-alive of lease {:x} got no answer: {}", client.name(), lease, error));
}

}  // namespace

struct KeepAliveStream::Impl {
  explicit Impl(const Client& client)
      : stub(etcdserverpb::Lease::NewStub(client.channel())),
        stream([this](grpc::ClientContext* c, grpc::CompletionQueue* q) {
          return stub->PrepareAsyncLeaseKeepAlive(c, q);
        }) {}
  std::unique_ptr<etcdserverpb::Lease::Stub> stub;
  Stream stream;
};

KeepAliveStream::KeepAliveStream(const Client& client)
    : client_(client), impl_(std::make_unique<Impl>(client)) {}

KeepAliveStream::~KeepAliveStream() = default;

Result<std::int64_t> KeepAliveStream::keep_alive(std::int64_t lease) {
  std::lock_guard lock(mu_);
  return keep_alive_on(client_, impl_->stream, lease);
}

}  // namespace aec::etcd
