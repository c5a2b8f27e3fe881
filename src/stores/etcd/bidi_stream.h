// BidiStream: one bidirectional gRPC stream (etcd's Watch, LeaseKeepAlive) driven through a
// completion queue of its own, so that every wait has a deadline and can be stopped. gRPC's
// synchronous streams block in Read() with neither.
//
// Not thread-safe: one thread at a time drives a stream (its owner serialises the calls).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stop_token>
#include <utility>

#include <grpc/support/time.h>
#include <grpcpp/client_context.h>
#include <grpcpp/completion_queue.h>
#include <grpcpp/support/async_stream.h>
#include <grpcpp/support/status.h>

namespace aec::etcd {

template <typename Req, typename Resp>
class BidiStream {
 public:
  using Rpc = grpc::ClientAsyncReaderWriter<Req, Resp>;
  // A stub's PrepareAsync method: creates the call on (context, queue) without starting it.
  using Prepare = std::function<std::unique_ptr<Rpc>(grpc::ClientContext*, grpc::CompletionQueue*)>;

  enum class Read { Message, Timeout, Ended, Stopped };

  explicit BidiStream(Prepare prepare) : prepare_(std::move(prepare)) {}
  ~BidiStream() {
    close();
    queue_.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (queue_.Next(&tag, &ok)) {
    }
  }
  BidiStream(const BidiStream&) = delete;
  BidiStream& operator=(const BidiStream&) = delete;

  bool is_open() const { return rpc_ != nullptr; }

  // Closes the current stream, if any, and starts a new one on whichever member the channel
  // picks, waiting for a member until `deadline`. The stream asks etcd to require a leader
  // ("hasleader" metadata, as etcd's own client does for watches and keep-alives): a member
  // cut off from the quorum then ends the stream with "no leader" instead of going silent.
  grpc::Status open(gpr_timespec deadline) {
    close();
    context_ = std::make_unique<grpc::ClientContext>();
    context_->set_wait_for_ready(true);
    context_->AddMetadata("hasleader", "true");
    rpc_ = prepare_(context_.get(), &queue_);
    start(kStart, [&] { rpc_->StartCall(tag(kStart)); });
    if (!await(kStart, deadline)) {
      close();
      return {grpc::StatusCode::DEADLINE_EXCEEDED, "no member took the stream in time"};
    }
    if (!ok_[kStart]) {
      return fail();
    }
    return grpc::Status::OK;
  }

  // Sends one message, waiting until gRPC has taken it or `deadline`. On failure the stream is
  // closed and the status says why.
  grpc::Status write(const Req& request, gpr_timespec deadline) {
    if (await(kWrite, deadline)) {
      start(kWrite, [&] { rpc_->Write(request, tag(kWrite)); });
      if (await(kWrite, deadline)) {
        return ok_[kWrite] ? grpc::Status::OK : fail();
      }
    }
    close();
    return {grpc::StatusCode::DEADLINE_EXCEEDED, "the stream took no message in time"};
  }

  // Waits for the next message until `deadline` or `stop`. Message: `*out` holds it. Timeout:
  // nothing yet (the stream stays open and the next read() goes on waiting). Ended: the stream
  // failed or the server ended it; it is closed and status() says why. Stopped: `stop` was
  // requested; the stream is closed (cancelled).
  Read read(Resp* out, gpr_timespec deadline, const std::stop_token& stop) {
    if (!pending_[kRead]) {
      start(kRead, [&] { rpc_->Read(&incoming_, tag(kRead)); });
    }
    bool done = false;
    {
      // Cancelling the call is the one way to wake a thread waiting on the queue; the stream
      // is given up then, which is what stopping means.
      grpc::ClientContext* context = context_.get();
      std::stop_callback cancel(stop, [context] { context->TryCancel(); });
      done = await(kRead, deadline);
    }
    if (stop.stop_requested()) {
      close();
      return Read::Stopped;
    }
    if (!done) {
      return Read::Timeout;
    }
    if (!ok_[kRead]) {
      fail();
      return Read::Ended;
    }
    *out = std::move(incoming_);
    return Read::Message;
  }

  // The status the last stream ended with (OK while it is open or when it was closed by us).
  const grpc::Status& status() const { return status_; }

  // Cancels the stream if it is live, waits for its pending operations and releases it.
  void close() {
    if (rpc_ == nullptr) {
      return;
    }
    if (!ended_) {
      context_->TryCancel();
    }
    finish();
  }

 private:
  enum Tag : std::intptr_t { kStart = 0, kRead, kWrite, kFinish, kTags };

  static void* tag(Tag t) { return reinterpret_cast<void*>(static_cast<std::intptr_t>(t) + 1); }

  template <typename Fn>
  void start(Tag t, Fn&& fn) {
    pending_[t] = true;
    fn();
  }

  // Waits until operation `t` has completed (true) or `deadline` passed (false), recording the
  // completions of the other operations meanwhile.
  bool await(Tag t, gpr_timespec deadline) {
    while (pending_[t]) {
      void* got = nullptr;
      bool ok = false;
      if (queue_.AsyncNext(&got, &ok, deadline) != grpc::CompletionQueue::GOT_EVENT) {
        return false;
      }
      auto done = static_cast<Tag>(reinterpret_cast<std::intptr_t>(got) - 1);
      pending_[done] = false;
      ok_[done] = ok;
    }
    return true;
  }

  // The stream failed (an operation completed with ok=false): the call is over, so Finish
  // gives the real status (etcd's error, or the transport's).
  grpc::Status fail() {
    ended_ = true;
    finish();
    if (status_.ok()) {
      status_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the stream ended");
    }
    return status_;
  }

  void finish() {
    const gpr_timespec forever = gpr_inf_future(GPR_CLOCK_MONOTONIC);
    // After a cancel or the end of the call every pending operation completes at once.
    await(kStart, forever);
    await(kRead, forever);
    await(kWrite, forever);
    grpc::Status status;
    start(kFinish, [&] { rpc_->Finish(&status, tag(kFinish)); });
    await(kFinish, forever);
    status_ = ended_ ? status : grpc::Status::OK;
    rpc_.reset();
    context_.reset();
    ended_ = false;
  }

  Prepare prepare_;
  grpc::CompletionQueue queue_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<Rpc> rpc_;
  Resp incoming_;
  bool pending_[kTags] = {};
  bool ok_[kTags] = {};
  bool ended_ = false;
  grpc::Status status_;
};

}  // namespace aec::etcd
