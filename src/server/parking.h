// Requests that wait on the server: blocking queries on a key's version, and acquires waiting
// in a key's FIFO line. A parked request is a timer and a small record, never a thread.
//
// The line: per key, the server keeps its parked acquires in arrival order, and only the first
// of them talks to the store (an acquire with queue=true, which also keeps its place in the
// store's own line, so callers through other servers or the CLI are ordered too). It tries again
// when a write through this server changes the key, when a holder's lease could lapse
// (retry_in), and every recheck interval (changes made by others; keeping the store place).
// When it is granted the next caller in line becomes first and tries at once. So a release
// wakes exactly one waiter, and waiters never retry against the store on their own.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <aec/store.h>

#include "server/vdk_executions.h"

namespace aec::server {

using SteadyTime = std::chrono::steady_clock::time_point;

class Parking {
  struct Waiter;

 public:
  // Answers a parked acquire; returns whether the answer reached the caller (false: the client
  // went away first). A grant that did not reach it is released.
  using AcquireDone = std::function<bool(Result<AcquireResult>)>;
  using QueryDone = std::function<void(Result<KeyState>)>;

  Parking(boost::asio::io_context& io, boost::asio::thread_pool& pool, Store& store,
          std::chrono::milliseconds recheck_interval);
  ~Parking();

  // A mark of the changes to `key`: it moves at every changed() of the key (or of every key; keys
  // that share a hash bucket share it). Taken before the store call whose answer parks a caller,
  // and given to the park: when it moved meanwhile, a change came between the store's answer
  // and the park, which woke nobody, and the parked caller asks again at once rather than at
  // the next recheck.
  std::uint64_t change_mark(const std::string& key) const;

  // Parks an acquire (req.queue is set) until granted, done, or `deadline` (then it answers the
  // latest Busy with parked=true). `busy` is the Busy answer the caller already got, to a store
  // call made after change_mark() gave `mark`. `done` runs exactly once, on a pool or I/O
  // thread. Returns a handle for abandon().
  std::uint64_t park_acquire(AcquireRequest req, AcquireResult busy, std::uint64_t mark,
                             SteadyTime deadline, AcquireDone done);
  // Parks an acquire at the end of the line of its key when that line has waiters, without a
  // store call; nullopt when it has none (then nothing is parked and `done` is left untouched).
  std::optional<std::uint64_t> join_line(const AcquireRequest& req, SteadyTime deadline,
                                         AcquireDone& done);
  // Parks a blocking query until the key's version differs from `index`, or `deadline` (then it
  // answers the state it last read). `current` was read after change_mark() gave `mark`.
  std::uint64_t park_query(std::string key, std::int64_t index, KeyState current,
                           std::uint64_t mark, SteadyTime deadline, QueryDone done);
  // The client went away: drop the request without answering. A waiter granted meanwhile has
  // its lease released (recorded Cancelled).
  void abandon(const std::string& key, std::uint64_t id);
  // A release hands the key over to the first in line in the same store write
  // (Store::release_and_acquire). claim_first() gives the first waiter's request when no attempt
  // of it is in flight, and holds back its own attempts until settle() (with the acquire's answer
  // from the handoff) or unclaim() (the handoff failed: nothing changed). Otherwise nullopt, and
  // the caller releases plainly and calls changed().
  struct Claim {
    AcquireRequest req;
    std::shared_ptr<Waiter> waiter;
    SteadyTime began;  // before the store call that may grant it
  };
  std::optional<Claim> claim_first(const std::string& key);
  void settle(const std::string& key, const Claim& claim, Result<AcquireResult> r);
  void unclaim(const std::string& key, const Claim& claim);

  // A write through this server changed `key` (or every key, for an empty key).
  void changed(const std::string& key);
  // Answers every parked request now, with its latest state; later parks answer at once.
  void shut_down();

  std::size_t waiters() const;
  std::vector<ParkedWaiter> waiters_of(const std::string& key) const;

 private:
  struct Query;
  struct Line;

  // Adds a waiter at the end of `line` (mu_ held).
  std::uint64_t add_waiter(Line& line, const std::string& key, AcquireRequest req,
                           SteadyTime deadline, AcquireDone done);
  void try_first(const std::string& key);  // requires mu_ held; posts the attempt
  void attempt(std::string key, std::shared_ptr<Waiter> first);
  void on_attempt(const std::string& key, const std::shared_ptr<Waiter>& first,
                  Result<AcquireResult> r);
  void refresh_queries(const std::string& key);
  void arm_retry(Line& line, const std::string& key);  // the first waiter asks again then
  // Releases a grant whose waiter went away before it reached it (recorded Cancelled).
  void give_back(const Lease& lease);
  // Gives up a waiter's place in the store's line, then wakes the key's line (on the pool): an
  // attempt that raced the leave and found the place still ahead of it is made again.
  void leave_line(const std::string& key, std::string execution_id);
  void expire_waiter(const std::string& key, std::uint64_t id);
  void expire_query(const std::string& key, std::uint64_t id);
  void recheck();
  void drop_if_empty(const std::string& key);

  boost::asio::io_context& io_;
  boost::asio::thread_pool& pool_;
  Store& store_;
  std::chrono::milliseconds recheck_interval_;
  boost::asio::steady_timer recheck_timer_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Line>> lines_;  // guarded by mu_
  std::uint64_t next_id_ = 1;                           // guarded by mu_
  bool shut_down_ = false;                              // guarded by mu_
  // change_mark(): changed() moves them before it takes mu_, a park reads them holding mu_, so
  // a change either finds the parked caller in its line or moves the mark the park reads.
  static constexpr std::size_t kMarkBuckets = 256;
  std::array<std::atomic<std::uint64_t>, kMarkBuckets> marks_{};
  std::atomic<std::uint64_t> every_mark_{0};  // changed("")
};

}  // namespace aec::server
