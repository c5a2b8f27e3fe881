// Watch: the changes of one key (or a range of keys) from a revision on, one batch at a time.
//
// The watch runs over etcd's Watch stream on whichever member the channel picks. When the stream
// fails (the member died or lost its leader) next() opens a new one, on another member, from the
// revision after the last one it delivered, so no event is lost or repeated. When that history
// has been compacted away, next() says so (WatchBatch::compact_revision) and goes on from the
// oldest revision etcd still has: the events in between are gone and the owner must read the
// current state again.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include <aec/clock.h>
#include <aec/status.h>

#include "stores/etcd/etcd_client.h"

namespace aec::etcd {

struct WatchOptions {
  // [key, range_end); empty: the key alone. See prefix_end() for a prefix.
  std::string range_end;
  // The first revision to report (inclusive); 0: changes after the watch is created.
  std::int64_t start_revision = 0;
  bool prev_kv = false;  // events carry the pair before the change
  // etcd sends an empty answer now and then (every 10 minutes by default) to advance the
  // revision a reconnect resumes from; they are not returned by next().
  bool progress_notify = false;
};

struct WatchBatch {
  // In revision order; empty when next() timed out or reports a compaction.
  std::vector<Event> events;
  // The store's revision when etcd sent the batch (0 on a timeout).
  std::int64_t revision = 0;
  // Non-zero when the history the watch needed was compacted: events from the previous
  // next_revision() up to compact_revision - 1 are lost; the watch goes on from
  // compact_revision.
  std::int64_t compact_revision = 0;
};

class Watch {
 public:
  // Creates the watch and waits (client.options().rpc_timeout) until etcd has confirmed it, so
  // that every change after open() returns is seen. The Watch holds the client's channel and
  // may outlive the Client. Unavailable when no member confirmed the watch in time;
  // FailedPrecondition when etcd refused it (e.g. a start revision in the future).
  static Result<std::unique_ptr<Watch>> open(const Client& client, std::string key,
                                             WatchOptions options = {});
  ~Watch();
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

  // Blocks until events come, `deadline` passes, or `stop` is requested.
  //   events: a batch (one etcd answer: the changes of one or more revisions);
  //   timeout: an empty batch, not an error;
  //   compaction: an empty batch with compact_revision set (see above);
  //   Cancelled when `stop` was requested;
  //   Unavailable when the stream failed and could not be reopened before `deadline` (the next
  //     call tries again: the watch is not lost);
  //   FailedPrecondition when etcd cancelled the watch for another reason (cancel_reason).
  // Calls are serialised (one caller at a time; others wait).
  Result<WatchBatch> next(MonoTime deadline, std::stop_token stop = {});

  // The revision the watch goes on from: one past the last event delivered.
  std::int64_t next_revision() const { return next_revision_.load(); }
  // The member serving the stream (its id), 0 while there is none.
  std::uint64_t member_id() const { return member_id_.load(); }

 private:
  struct Stream;
  Watch(const Client& client, std::string key, WatchOptions options);
  // Opens a stream and creates the watch on it from next_revision().
  Status create(MonoTime deadline, const std::stop_token& stop);
  // Waits for etcd's confirmation of the watch just requested (`what` names it in errors).
  Status confirm(MonoTime deadline, const std::stop_token& stop, const std::string& what);
  // Handles the answer just read: a batch for the caller, or nullopt (a confirmation, a
  // progress notification).
  Result<std::optional<WatchBatch>> take();

  const std::string cluster_;
  const std::chrono::milliseconds rpc_timeout_;
  const std::string key_;
  const WatchOptions options_;
  std::mutex mu_;                   // serialises next()
  std::unique_ptr<Stream> stream_;  // guarded by mu_
  std::atomic<std::int64_t> next_revision_;
  std::atomic<std::uint64_t> member_id_{0};
};

}  // namespace aec::etcd
