// KeepAlive: keeps one etcd lease alive from a background thread.
//
// The thread sends a keep-alive over etcd's LeaseKeepAlive stream every ttl/3 (ttl: the TTL of
// etcd's last answer) and waits for the answer. When the stream fails (its member died, lost
// its leader, or answered nothing for rpc_timeout or a third of the TTL, whichever is shorter,
// so that a request left unanswered is sent again while the lease still has time) it opens a
// new one, on whichever member the channel picks, and sends again at once.
//
// The lease is lost when etcd answers that it no longer exists (TTL 0: expired or revoked), or
// when no answer has come by the time it would expire: then etcd may already have deleted its
// keys. The expiry is reckoned conservatively from the time each answered request was sent
// (etcd extended the lease at some point after that). Loss is reported once, through
// `on_lost` (called on the background thread, which ends) and through state().
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include <aec/clock.h>
#include <aec/status.h>

namespace grpc {
class Channel;
}  // namespace grpc

namespace aec::etcd {

class Client;

class KeepAlive {
 public:
  enum class State {
    Alive,    // the last keep-alive was answered in time (or the first is under way)
    Lost,     // the lease expired, was revoked, or may have expired unseen: lost_reason()
    Stopped,  // stop() was called or the object destroyed before any loss
  };

  struct Options {
    // The TTL etcd granted (LeaseGrantResponse::ttl()).
    std::chrono::seconds ttl{0};
    // When the lease is taken to expire until the first answer: ttl after this instant, which
    // should be taken before the grant was sent. Default: ttl after start() (fine right after
    // the grant; off by the grant's round trip).
    std::optional<MonoTime> granted_at;
    // Called once, on the background thread, when the lease is lost. Must neither destroy this
    // KeepAlive nor call stop() (both join that thread).
    std::function<void(const Status&)> on_lost;
  };

  // Starts the background thread for `lease` over `client`'s channel (shared: the KeepAlive may
  // outlive the Client). Never fails: trouble is reported as loss.
  static std::unique_ptr<KeepAlive> start(const Client& client, std::int64_t lease,
                                          Options options);

  // Stops the thread. The lease is not revoked: it expires unless the owner revokes it.
  ~KeepAlive();
  KeepAlive(const KeepAlive&) = delete;
  KeepAlive& operator=(const KeepAlive&) = delete;

  // Stops sending keep-alives and joins the thread. Idempotent; state() becomes Stopped unless
  // the lease was already lost.
  void stop();

  std::int64_t lease() const { return lease_; }
  // Thread-safe, as every accessor below.
  State state() const { return state_.load(); }
  // Why the lease was lost; ok unless state() is Lost.
  Status lost_reason() const;
  // When the lease expires at the latest unless another keep-alive gets through.
  MonoTime expires_at() const;
  // How many keep-alives etcd has answered.
  std::uint64_t answers() const { return answers_.load(); }

 private:
  KeepAlive(std::shared_ptr<grpc::Channel> channel, std::string cluster,
            std::chrono::milliseconds rpc_timeout, std::int64_t lease, Options options);
  struct Loop;  // the background thread's stream and schedule (keep_alive.cc)
  void run(const std::stop_token& stop);
  // One turn: (re)open, send when due, wait for the answer or the next send. False to end.
  bool step(Loop& loop, const std::stop_token& stop);
  bool on_answer(Loop& loop, std::int64_t ttl_seconds);
  // How long a request waits for its answer before the stream is given up.
  std::chrono::milliseconds answer_within(const Loop& loop) const;
  // Records a failure and pauses before the next attempt. False when stopped.
  bool retry_later(Loop& loop, std::string error, const std::stop_token& stop);
  void lose(Status why);

  const std::shared_ptr<grpc::Channel> channel_;
  const std::string cluster_;
  const std::chrono::milliseconds rpc_timeout_;
  const std::int64_t lease_;
  Options options_;
  std::atomic<State> state_{State::Alive};
  std::atomic<std::uint64_t> answers_{0};
  mutable std::mutex mu_;
  MonoTime expires_at_;  // guarded by mu_
  Status lost_reason_;   // guarded by mu_
  std::jthread thread_;  // last: started after everything it reads
};

}  // namespace aec::etcd
