#include "stores/etcd/keep_alive.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>
#include <grpcpp/channel.h>

#include "stores/etcd/bidi_stream.h"
#include "stores/etcd/deadline.h"
#include "stores/etcd/etcd_client.h"
#include "stores/etcd/etcd_errors.h"
#include "stores/etcd/proto/rpc.grpc.pb.h"

namespace aec::etcd {

using std::chrono::milliseconds;
using Stream =
    BidiStream<etcdserverpb::LeaseKeepAliveRequest, etcdserverpb::LeaseKeepAliveResponse>;

namespace {}  // namespace

std::unique_ptr<KeepAlive> KeepAlive::start(const Client& client, std::int64_t lease,
                                            Options options) {
  std::unique_ptr<KeepAlive> k(new KeepAlive(
      client.channel(), client.name(), client.options().rpc_timeout, lease, std::move(options)));
  k->thread_ = std::jthread([self = k.get()](std::stop_token stop) { self->run(stop); });
  return k;
}

KeepAlive::KeepAlive(std::shared_ptr<grpc::Channel> channel, std::string cluster,
                     milliseconds rpc_timeout, std::int64_t lease, Options options)
    : channel_(std::move(channel)),
      cluster_(std::move(cluster)),
      rpc_timeout_(rpc_timeout),
      lease_(lease),
      options_(std::move(options)),
      expires_at_(options_.granted_at.value_or(BootClock::now()) + options_.ttl) {}

KeepAlive::~KeepAlive() {
  stop();
}

void KeepAlive::stop() {
  thread_.request_stop();
  if (thread_.joinable()) {
    thread_.join();
  }
  State alive = State::Alive;
  state_.compare_exchange_strong(alive, State::Stopped);
}

Status KeepAlive::lost_reason() const {
  std::lock_guard lock(mu_);
  return lost_reason_;
}

MonoTime KeepAlive::expires_at() const {
  std::lock_guard lock(mu_);
  return expires_at_;
}

void KeepAlive::lose(Status why) {
  {
    std::lock_guard lock(mu_);
    lost_reason_ = why;
  }
  state_.store(State::Lost);
  if (options_.on_lost) {
    options_.on_lost(why);
  }
}

struct KeepAlive::Loop {
  Stream stream;
  etcdserverpb::LeaseKeepAliveRequest request;
  MonoTime next_send;
  std::optional<MonoTime> sent_at;  // the request awaiting its answer
  milliseconds backoff{50};
  std::string last_error = "no answer yet";
  milliseconds ttl{0};  // etcd's last answer's TTL; until the first, the granted one
};

// One request in flight at a time: send, wait for its answer (answer_within()), then wait until
// a third of the TTL has passed since that request was sent. Any failure drops the stream and
// the next step opens a new one, pausing from 50 ms up to 1 s between failed attempts, never
// past the expiry.
void KeepAlive::run(const std::stop_token& stop) {
  auto stub = etcdserverpb::Lease::NewStub(channel_);
  Loop loop{.stream = Stream([&stub](grpc::ClientContext* c, grpc::CompletionQueue* q) {
              return stub->PrepareAsyncLeaseKeepAlive(c, q);
            }),
            .next_send = BootClock::now(),
            .ttl = options_.ttl};
  loop.request.set_id(lease_);
  while (!stop.stop_requested() && step(loop, stop)) {
  }
}

bool KeepAlive::step(Loop& loop, const std::stop_token& stop) {
  const MonoTime now = BootClock::now();
  const MonoTime expiry = expires_at();
  if (now >= expiry) {
    lose(
        unavailable(fmt::format("{}: lease {:x} may have expired: no keep-alive was answered "
                                "before its TTL ran out (last error: {})",
                                cluster_, lease_, loop.last_error)));
    return false;
  }
  if (!loop.stream.is_open()) {
    grpc::Status opened = loop.stream.open(to_gpr(std::min(now + rpc_timeout_, expiry)));
    return opened.ok() || retry_later(loop, describe(opened), stop);
  }
  if (!loop.sent_at && now >= loop.next_send) {
    grpc::Status wrote = loop.stream.write(loop.request, to_gpr(now + rpc_timeout_));
    if (!wrote.ok()) {
      return retry_later(loop, describe(wrote), stop);
    }
    loop.sent_at = now;
  }
  const MonoTime wake =
      std::min(loop.sent_at ? *loop.sent_at + answer_within(loop) : loop.next_send, expiry);
  etcdserverpb::LeaseKeepAliveResponse answer;
  switch (loop.stream.read(&answer, to_gpr(wake), stop)) {
    case Stream::Read::Stopped:
      return false;
    case Stream::Read::Timeout:
      if (loop.sent_at && BootClock::now() >= *loop.sent_at + answer_within(loop)) {
        loop.stream.close();  // a member that does not answer: try another
        return retry_later(loop, fmt::format("no answer within {} ms", answer_within(loop).count()),
                           stop);
      }
      return true;
    case Stream::Read::Ended:
      return retry_later(loop, describe(loop.stream.status()), stop);
    case Stream::Read::Message:
      return on_answer(loop, answer.ttl());
  }
  return true;
}

milliseconds KeepAlive::answer_within(const Loop& loop) const {
  // A third of the TTL: sent on time (a third into it), an unanswered request leaves another
  // third to send it again on a new stream. (Found under ASan on a loaded machine: one request
  // left unanswered for the whole rpc_timeout of 5 s let a lease with a TTL of 4 s lapse.)
  if (loop.ttl < milliseconds(3)) {
    return rpc_timeout_;
  }
  return std::min(rpc_timeout_, loop.ttl / 3);
}

bool KeepAlive::on_answer(Loop& loop, std::int64_t ttl_seconds) {
  if (ttl_seconds <= 0) {
    lose(Status(Code::NotFound, fmt::format("{}: lease {:x} no longer exists (it expired or was "
                                            "revoked)",
                                            cluster_, lease_)));
    return false;
  }
  if (loop.sent_at) {  // always: one request in flight at a time
    const std::chrono::seconds ttl(ttl_seconds);
    {
      std::lock_guard lock(mu_);
      expires_at_ = *loop.sent_at + ttl;
    }
    loop.next_send = *loop.sent_at + ttl / 3;
    loop.ttl = ttl;
    loop.sent_at.reset();
    loop.backoff = milliseconds(50);
    answers_.fetch_add(1);
  }
  return true;
}

bool KeepAlive::retry_later(Loop& loop, std::string error, const std::stop_token& stop) {
  loop.last_error = std::move(error);
  loop.sent_at.reset();
  MonoTime until = std::min(BootClock::now() + loop.backoff, expires_at());
  loop.backoff = std::min(loop.backoff * 2, milliseconds(1000));
  return pause_until(until, stop);
}

}  // namespace aec::etcd
