#include "stores/sqlite/sqlite_write_queue.h"

#include <algorithm>
#include <array>
#include <exception>
#include <string>

namespace aec::sqlite {

Status WriteQueue::write_group(Writer& w) {
  std::unique_lock queue(queue_mu_);
  writers_.push_back(&w);
  w.cv.wait(queue, [&] { return w.done || writers_.front() == &w; });
  if (w.done) {
    return w.status;  // a leader committed this write with its group
  }
  // On the stack: building the group allocates nothing, so nothing can throw between taking the
  // lead and handing every writer in it its verdict.
  std::array<Writer*, kMaxGroup> members;
  std::size_t n = std::min(writers_.size(), kMaxGroup);
  std::copy_n(writers_.begin(), n, members.begin());
  queue.unlock();
  run_group(std::span<Writer* const>(members.data(), n));
  queue.lock();
  for (std::size_t i = 0; i < n; ++i) {
    Writer* g = members[i];
    writers_.pop_front();
    g->done = true;
    if (g != &w) {
      g->cv.notify_one();
    }
  }
  if (!writers_.empty()) {
    writers_.front()->cv.notify_one();  // the next group's leader
  }
  return w.status;
}

void WriteQueue::run_group(std::span<Writer* const> group) {
  std::lock_guard lock(db_mu_);
  WriteTxn txn(db_);
  auto fail_all = [&](const Status& s) {
    for (Writer* g : group) {
      if (g->status.is_ok()) {
        g->status = s;
      }
    }
  };
  if (Status s = txn.begin(/*immediate=*/true); !s.is_ok()) {
    return fail_all(s);
  }
  // A lone writer needs no savepoint: on error, the whole transaction is rolled back.
  bool savepoints = group.size() > 1;
  bool any_ok = false;
  for (Writer* g : group) {
    if (savepoints) {
      if (Status s = db_.exec("SAVEPOINT w"); !s.is_ok()) {
        return fail_all(s);
      }
    }
    g->status = run_body(*g);
    any_ok = any_ok || g->status.is_ok();
    if (savepoints) {
      Status s = g->status.is_ok() ? db_.exec("RELEASE w") : db_.exec("ROLLBACK TO w; RELEASE w");
      if (!s.is_ok()) {
        return fail_all(s);  // the transaction is in an unknown state: commit none of it
      }
    }
  }
  if (!any_ok) {
    return;  // nothing to commit; the transaction rolls back
  }
  if (Status s = txn.commit(); !s.is_ok()) {
    return fail_all(s);
  }
  committed_.notify_all();
}

Status WriteQueue::run_body(Writer& w) {
  try {
    return w.body();
  } catch (const std::exception& e) {
    return internal_error(std::string("sqlite store: a write failed: ") + e.what());
  } catch (...) {
    return internal_error("sqlite store: a write failed with an unknown exception");
  }
}

}  // namespace aec::sqlite
