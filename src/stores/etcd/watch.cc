#include "stores/etcd/watch.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>
#include <grpcpp/channel.h>

#include "core/status_macros.h"
#include "stores/etcd/bidi_stream.h"
#include "stores/etcd/deadline.h"
#include "stores/etcd/etcd_errors.h"
#include "stores/etcd/proto/rpc.grpc.pb.h"

namespace aec::etcd {

using std::chrono::milliseconds;
using Bidi = BidiStream<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>;

struct Watch::Stream {
  explicit Stream(const std::shared_ptr<grpc::Channel>& channel)
      : stub(etcdserverpb::Watch::NewStub(channel)),
        bidi([this](grpc::ClientContext* c, grpc::CompletionQueue* q) {
          return stub->PrepareAsyncWatch(c, q);
        }) {}

  std::unique_ptr<etcdserverpb::Watch::Stub> stub;
  Bidi bidi;
  etcdserverpb::WatchResponse answer;
  bool unread = false;  // `answer` came with the confirmation and is still to be taken
};

namespace {

Status stopped(std::string_view cluster) {
  return Status(Code::Cancelled, fmt::format("{}: watch stopped by the caller", cluster));
}

}  // namespace

Result<std::unique_ptr<Watch>> Watch::open(const Client& client, std::string key,
                                           WatchOptions options) {
  std::unique_ptr<Watch> watch(new Watch(client, std::move(key), std::move(options)));
  std::lock_guard lock(watch->mu_);
  AEC_RETURN_IF_ERROR(watch->create(BootClock::now() + watch->rpc_timeout_, {}));
  return watch;
}

Watch::Watch(const Client& client, std::string key, WatchOptions options)
    : cluster_(client.name()),
      rpc_timeout_(client.options().rpc_timeout),
      key_(std::move(key)),
      options_(std::move(options)),
      stream_(std::make_unique<Stream>(client.channel())),
      next_revision_(options_.start_revision) {}

Watch::~Watch() = default;

// Creating a watch takes a round trip: the create request, then etcd's confirmation (created).
// Events only come after it, so once it is in, nothing from next_revision() on can be missed.
Status Watch::create(MonoTime deadline, const std::stop_token& stop) {
  Bidi& bidi = stream_->bidi;
  const std::string what = fmt::format("watch of {:?}", key_);
  grpc::Status opened = bidi.open(to_gpr(deadline));
  if (!opened.ok()) {
    return from_grpc(opened, cluster_, what, CallKind::Read);
  }
  etcdserverpb::WatchRequest request;
  etcdserverpb::WatchCreateRequest* create = request.mutable_create_request();
  create->set_key(key_);
  create->set_range_end(options_.range_end);
  create->set_start_revision(next_revision_.load());
  create->set_prev_kv(options_.prev_kv);
  create->set_progress_notify(options_.progress_notify);
  grpc::Status wrote = bidi.write(request, to_gpr(deadline));
  if (!wrote.ok()) {
    return from_grpc(wrote, cluster_, what, CallKind::Read);
  }
  return confirm(deadline, stop, what);
}

Status Watch::confirm(MonoTime deadline, const std::stop_token& stop, const std::string& what) {
  Bidi& bidi = stream_->bidi;
  etcdserverpb::WatchResponse& answer = stream_->answer;
  do {
    switch (bidi.read(&answer, to_gpr(deadline), stop)) {
      case Bidi::Read::Stopped:
        return stopped(cluster_);
      case Bidi::Read::Timeout:
        bidi.close();
        return unavailable(
            fmt::format("{}: {} not confirmed within {} ms", cluster_, what, rpc_timeout_.count()));
      case Bidi::Read::Ended:
        return from_grpc(bidi.status(), cluster_, what, CallKind::Read);
      case Bidi::Read::Message:
        break;
    }
  } while (!answer.created());  // nothing else comes first; be lenient all the same
  if (answer.canceled() && answer.compact_revision() == 0) {
    bidi.close();
    return Status(Code::FailedPrecondition,
                  fmt::format("{}: etcd refused the {} from revision {}: {}", cluster_, what,
                              next_revision_.load(), answer.cancel_reason()));
  }
  member_id_.store(answer.header().member_id());
  if (next_revision_.load() == 0) {
    next_revision_.store(answer.header().revision() + 1);
  }
  stream_->unread = answer.canceled();  // a compaction, reported by the next next()
  return Status::ok();
}

Result<WatchBatch> Watch::next(MonoTime deadline, std::stop_token stop) {
  std::lock_guard lock(mu_);
  Bidi& bidi = stream_->bidi;
  milliseconds backoff(50);
  while (true) {
    if (stop.stop_requested()) {
      return stopped(cluster_);
    }
    if (!bidi.is_open()) {
      // Reopen on whichever member is up, from the revision after the last one delivered.
      Status created = create(std::min(deadline, BootClock::now() + rpc_timeout_), stop);
      if (!created.is_ok()) {
        if (created.code() != Code::Unavailable || BootClock::now() >= deadline) {
          return created;
        }
        if (!pause_until(std::min(BootClock::now() + backoff, deadline), stop)) {
          return stopped(cluster_);
        }
        backoff = std::min(backoff * 2, milliseconds(1000));
        continue;
      }
    }
    if (!stream_->unread) {
      switch (bidi.read(&stream_->answer, to_gpr(deadline), stop)) {
        case Bidi::Read::Stopped:
          return stopped(cluster_);
        case Bidi::Read::Timeout:
          return WatchBatch{};
        case Bidi::Read::Ended:
          member_id_.store(0);
          continue;  // the member died or lost its leader: reopen elsewhere
        case Bidi::Read::Message:
          break;
      }
    }
    stream_->unread = false;
    AEC_ASSIGN_OR_RETURN(std::optional<WatchBatch> batch, take());
    if (batch) {
      return std::move(*batch);
    }
  }
}

Result<std::optional<WatchBatch>> Watch::take() {
  const etcdserverpb::WatchResponse& answer = stream_->answer;
  WatchBatch batch{.revision = answer.header().revision()};
  if (answer.canceled()) {
    stream_->bidi.close();
    member_id_.store(0);
    if (answer.compact_revision() == 0) {
      return Status(Code::FailedPrecondition,
                    fmt::format("{}: etcd cancelled the watch of {:?}: {}", cluster_, key_,
                                answer.cancel_reason()));
    }
    // Resume from the oldest revision etcd still has (it keeps the compaction revision itself).
    batch.compact_revision = answer.compact_revision();
    next_revision_.store(answer.compact_revision());
    return std::optional<WatchBatch>(std::move(batch));
  }
  if (answer.created()) {
    return std::optional<WatchBatch>();
  }
  if (answer.events().empty()) {
    // A progress notification: every event up to the header's revision has been sent.
    next_revision_.store(std::max(next_revision_.load(), answer.header().revision() + 1));
    return std::optional<WatchBatch>();
  }
  batch.events.assign(answer.events().begin(), answer.events().end());
  next_revision_.store(answer.events().rbegin()->kv().mod_revision() + 1);
  return std::optional<WatchBatch>(std::move(batch));
}

}  // namespace aec::etcd
