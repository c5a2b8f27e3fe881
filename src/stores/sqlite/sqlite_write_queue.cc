#include "stores/sqlite/sqlite_write_queue.h"

#include <algorithm>

namespace aec::sqlite {

Status WriteQueue::write_group(Writer& w) {
  std::unique_lock queue(queue_mu_);
  writers_.push_back(&w);
  w.cv.wait(queue, [&] { return w.done || writers_.front() == &w; });
  if (w.done) {
    return w.status;  // a leader committed this write with its group
  }
  std::size_t n = std::min(writers_.size(), kMaxGroup);
  std::vector<Writer*> group(writers_.begin(), writers_.begin() + static_cast<std::ptrdiff_t>(n));
  queue.unlock();
  run_group(group);
  queue.lock();
  for (Writer* g : group) {
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

void WriteQueue::run_group(const std::vector<Writer*>& group) {
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
    g->status = g->body();
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

}  // namespace aec::sqlite
