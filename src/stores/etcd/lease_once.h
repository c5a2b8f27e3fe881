// One keep-alive of an etcd lease, answered: what a renewal with an unchanged TTL needs (the
// KeepAlive class keeps a lease alive from a thread of its own; this is a single round trip).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include <aec/status.h>

namespace aec::etcd {

class Client;

// Sends one keep-alive for `lease` over a stream of its own and waits for etcd's answer, within
// the client's rpc_timeout, retrying on another member while time is left. Returns the TTL etcd
// reset the lease to, in seconds: <= 0 when the lease no longer exists (expired or revoked).
// Unavailable when no member answered in time (the lease may or may not have been extended).
Result<std::int64_t> keep_alive_once(const Client& client, std::int64_t lease);

// keep_alive_once() over one LeaseKeepAlive stream kept open between calls (reopened, on
// another member if need be, when it fails): a keep-alive is then one message each way, with
// no stream to set up. Calls are serialised. For a store that resets leases often (renewals,
// reused leases).
class KeepAliveStream {
 public:
  explicit KeepAliveStream(const Client& client);
  ~KeepAliveStream();
  KeepAliveStream(const KeepAliveStream&) = delete;
  KeepAliveStream& operator=(const KeepAliveStream&) = delete;

  // As keep_alive_once().
  Result<std::int64_t> keep_alive(std::int64_t lease);

 private:
  struct Impl;
  const Client& client_;
  std::mutex mu_;
  std::unique_ptr<Impl> impl_;  // guarded by mu_
};

}  // namespace aec::etcd
