// One keep-alive of an etcd lease, answered: what a renewal with an unchanged TTL, or the reuse
// of a spare lease, needs (the KeepAlive class keeps a lease alive from a thread of its own;
// this is a single round trip).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include <aec/status.h>

namespace aec::etcd {

class Client;

// Keep-alives over one LeaseKeepAlive stream kept open between calls (reopened, on another
// member if need be, when it fails): a keep-alive is one message each way, with no stream to set
// up. Calls are serialised.
class KeepAliveStream {
 public:
  explicit KeepAliveStream(const Client& client);
  ~KeepAliveStream();
  KeepAliveStream(const KeepAliveStream&) = delete;
  KeepAliveStream& operator=(const KeepAliveStream&) = delete;

  // Sends one keep-alive for `lease` and waits for etcd's answer, within the client's
  // rpc_timeout, retrying on another member while time is left. Returns the TTL etcd reset the
  // lease to, in seconds: <= 0 when the lease no longer exists (expired or revoked).
  // Unavailable when no member answered in time (the lease may or may not have been extended).
  Result<std::int64_t> keep_alive(std::int64_t lease);

 private:
  struct Impl;
  const Client& client_;
  std::mutex mu_;
  std::unique_ptr<Impl> impl_;  // guarded by mu_
};

}  // namespace aec::etcd
