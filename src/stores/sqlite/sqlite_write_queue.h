// Group commit for the sqlite store, as leveldb's writers queue: writes from several threads are
// committed together, with one fsync for the group when the store syncs every commit.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <span>

#include <aec/status.h>

#include "stores/sqlite/sqlite_db.h"

namespace aec::sqlite {

class WriteQueue {
 public:
  // `db` is guarded by `db_mu`; `committed` is notified after each commit.
  WriteQueue(Db& db, std::mutex& db_mu, std::condition_variable_any& committed)
      : db_(db), db_mu_(db_mu), committed_(committed) {}

  // Runs `body` (returning Result<T>) inside a write transaction and commits it when it
  // succeeds. The writer at the head of the queue leads: it takes every writer queued behind it
  // (up to kMaxGroup), runs their bodies in one BEGIN IMMEDIATE transaction, each in its own
  // savepoint so that a body's error undoes only its own writes, and commits once. The others
  // wait for its verdict; newcomers queue up for the next group meanwhile.
  template <typename F>
  auto write(F& body) -> decltype(body()) {
    std::optional<decltype(body())> result;
    Writer w;
    w.body = [&]() -> Status {
      result.emplace(body());
      return result->has_value() ? Status::ok() : result->error();
    };
    if (Status s = write_group(w); !s.is_ok()) {
      return s;  // the body's own error, or the group's begin or commit failed
    }
    return std::move(*result);
  }

  static constexpr std::size_t kMaxGroup = 256;

 private:
  struct Writer {
    std::function<Status()> body;  // runs inside the group's transaction
    Status status;                 // its verdict, set by the group's leader
    bool done = false;             // guarded by queue_mu_
    std::condition_variable cv;
  };
  Status write_group(Writer& w);
  void run_group(std::span<Writer* const> group);
  // Runs one writer's body; an exception it throws (e.g. std::bad_alloc) is that writer's error,
  // so that the group's others still get their verdicts and the queue goes on.
  static Status run_body(Writer& w);

  Db& db_;
  std::mutex& db_mu_;
  std::condition_variable_any& committed_;
  std::mutex queue_mu_;          // guards writers_ and Writer::done
  std::deque<Writer*> writers_;  // waiting to be committed; the front one leads
};

}  // namespace aec::sqlite
