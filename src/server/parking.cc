#include "server/parking.h"

#include <algorithm>

#include <boost/asio/post.hpp>

namespace aec::server {

namespace asio = boost::asio;
using std::chrono::milliseconds;

struct Parking::Waiter {
  std::uint64_t id = 0;
  AcquireRequest req;
  SysTime since;
  SteadyTime parked_at;  // when it joined the line: AcquireResult::held counts from here
  AcquireDone done;
  std::unique_ptr<asio::steady_timer> timer;
  bool finished = false;  // answered or abandoned: it is no longer in the line
  bool expired = false;   // its deadline passed while its attempt was in flight
};

struct Parking::Query {
  std::uint64_t id = 0;
  std::int64_t index = 0;
  KeyState last;
  QueryDone done;
  std::unique_ptr<asio::steady_timer> timer;
};

struct Parking::Line {
  explicit Line(asio::io_context& io) : retry(io) {}
  std::deque<std::shared_ptr<Waiter>> waiters;  // arrival order; the first talks to the store
  std::vector<std::shared_ptr<Query>> queries;
  AcquireResult last_busy;
  bool attempting = false;  // an acquire of the first waiter is in flight
  bool again = false;       // the key changed during that attempt: try once more after it
  bool reading = false;     // a get for the queries is in flight
  bool read_again = false;
  asio::steady_timer retry;
};

namespace {

using Calls = std::vector<std::function<void()>>;

void run_all(Calls& calls) {
  for (auto& call : calls) {
    call();
  }
}

}  // namespace

Parking::Parking(asio::io_context& io, asio::thread_pool& pool, Store& store,
                 milliseconds recheck_interval)
    : io_(io), pool_(pool), store_(store), recheck_interval_(recheck_interval), recheck_timer_(io) {
  recheck();
}

Parking::~Parking() = default;

std::uint64_t Parking::change_mark(const std::string& key) const {
  return marks_[std::hash<std::string>{}(key) % kMarkBuckets].load() + every_mark_.load();
}

std::uint64_t Parking::park_acquire(AcquireRequest req, AcquireResult busy, std::uint64_t mark,
                                    SteadyTime deadline, AcquireDone done) {
  std::unique_lock lock(mu_);
  if (shut_down_) {
    lock.unlock();
    busy.parked = true;
    done(std::move(busy));
    return 0;
  }
  std::string key = req.key;
  auto& line = lines_[key];
  if (!line) {
    line = std::make_unique<Line>(io_);
  }
  if (line->waiters.empty()) {
    line->last_busy = busy;
  }
  std::uint64_t id = add_waiter(*line, key, std::move(req), deadline, std::move(done));
  const std::shared_ptr<Waiter>& w = line->waiters.back();
  if (line->waiters.size() == 1 && change_mark(key) != mark) {
    try_first(key);  // changed since its store call: that change woke nobody
  } else if (line->waiters.size() == 1) {
    // The first in line holds a store place already (the caller's first answer was Busy with
    // queue=true); wait for a change, or until a holder could lapse.
    arm_retry(*line, key);
  } else {
    // Only the first in line holds a store place. Concurrent first answers may have taken
    // store places in another order than callers joined this line; a place ahead of the first
    // that nobody keeps alive would hold the slot back until it lapses. So the others give
    // theirs up, and take a new one when their turn comes.
    leave_line(key, w->req.execution_id);
  }
  return id;
}

std::optional<std::uint64_t> Parking::join_line(const AcquireRequest& req, SteadyTime deadline,
                                                AcquireDone& done) {
  std::lock_guard lock(mu_);
  auto it = lines_.find(req.key);
  if (shut_down_ || it == lines_.end() || it->second->waiters.empty()) {
    return std::nullopt;
  }
  return add_waiter(*it->second, req.key, req, deadline, std::move(done));
}

std::uint64_t Parking::add_waiter(Line& line, const std::string& key, AcquireRequest req,
                                  SteadyTime deadline, AcquireDone done) {
  auto w = std::make_shared<Waiter>();
  w->id = next_id_++;
  w->since = std::chrono::system_clock::now();
  w->parked_at = std::chrono::steady_clock::now();
  w->done = std::move(done);
  w->timer = std::make_unique<asio::steady_timer>(io_, deadline);
  w->req = std::move(req);
  w->req.park = milliseconds(0);  // the store itself answers at once
  w->req.stop = {};
  w->req.queue = true;  // when its turn comes, it keeps a place in the store's line
  line.waiters.push_back(w);
  w->timer->async_wait([this, key, id = w->id](boost::system::error_code ec) {
    if (!ec) {
      expire_waiter(key, id);
    }
  });
  return w->id;
}

std::uint64_t Parking::park_query(std::string key, std::int64_t index, KeyState current,
                                  std::uint64_t mark, SteadyTime deadline, QueryDone done) {
  std::unique_lock lock(mu_);
  if (shut_down_) {
    lock.unlock();
    done(std::move(current));
    return 0;
  }
  auto q = std::make_shared<Query>();
  q->id = next_id_++;
  q->index = index;
  q->last = std::move(current);
  q->done = std::move(done);
  q->timer = std::make_unique<asio::steady_timer>(io_, deadline);
  q->timer->async_wait([this, key, id = q->id](boost::system::error_code ec) {
    if (!ec) {
      expire_query(key, id);
    }
  });
  auto& line = lines_[key];
  if (!line) {
    line = std::make_unique<Line>(io_);
  }
  line->queries.push_back(q);
  if (change_mark(key) != mark) {
    refresh_queries(key);  // changed since `current` was read: that change woke nobody
  }
  return q->id;
}

void Parking::arm_retry(Line& line, const std::string& key) {
  // By when a holder could lapse, at the recheck, and within the first waiter's queue_ttl: asking
  // again keeps its store place alive (a third of it, as the client library asks).
  milliseconds in = std::min(
      {line.last_busy.retry_in, recheck_interval_, line.waiters.front()->req.queue_ttl / 3});
  line.retry.expires_after(std::max(in, milliseconds(1)));
  line.retry.async_wait([this, key](boost::system::error_code ec) {
    if (ec) {
      return;
    }
    std::lock_guard lock(mu_);
    try_first(key);
  });
}

void Parking::try_first(const std::string& key) {
  auto it = lines_.find(key);
  if (it == lines_.end() || it->second->waiters.empty()) {
    return;
  }
  Line& line = *it->second;
  if (line.attempting) {
    line.again = true;
    return;
  }
  line.attempting = true;
  line.again = false;
  asio::post(pool_, [this, key, first = line.waiters.front()] { attempt(key, first); });
}

std::optional<Parking::Claim> Parking::claim_first(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = lines_.find(key);
  if (it == lines_.end() || it->second->waiters.empty() || it->second->attempting) {
    return std::nullopt;
  }
  Line& line = *it->second;
  line.attempting = true;
  line.again = false;
  line.retry.cancel();
  return Claim{line.waiters.front()->req, line.waiters.front(), std::chrono::steady_clock::now()};
}

void Parking::settle(const std::string& key, const Claim& claim, Result<AcquireResult> r) {
  if (r) {
    r->held += std::chrono::floor<milliseconds>(claim.began - claim.waiter->parked_at);
  }
  on_attempt(key, claim.waiter, std::move(r));
  std::lock_guard lock(mu_);
  if (lines_.contains(key)) {
    refresh_queries(key);  // the blocking queries on the key see the release and the grant
  }
}

void Parking::unclaim(const std::string& key, const Claim& claim) {
  std::lock_guard lock(mu_);
  Line& line = *lines_.at(key);  // a line with an attempt in flight is never dropped
  line.attempting = false;
  if (claim.waiter->finished) {  // it left during the handoff, which left its place to us
    leave_line(key, claim.req.execution_id);
  }
  try_first(key);  // the first one tries on its own, as after any change
  drop_if_empty(key);
}

void Parking::attempt(std::string key, std::shared_ptr<Waiter> first) {
  const SteadyTime began = std::chrono::steady_clock::now();
  Result<AcquireResult> r = store_.acquire(first->req);
  if (r) {
    // The grant came this long after the caller's request reached the line (and so at least
    // this long after the caller sent it), plus what the store says its call held it (etcd: a
    // read that waited out a paused member before the lease was asked for): the caller's lease
    // deadline counts from then.
    r->held += std::chrono::floor<milliseconds>(began - first->parked_at);
  }
  on_attempt(key, first, std::move(r));
}

void Parking::on_attempt(const std::string& key, const std::shared_ptr<Waiter>& first,
                         Result<AcquireResult> r) {
  Calls calls;
  {
    std::lock_guard lock(mu_);
    Line& line = *lines_.at(key);  // a line with an attempt in flight is never dropped
    line.attempting = false;
    bool granted = r && r->outcome == AcquireOutcome::Granted;
    bool answer = !r || r->outcome != AcquireOutcome::Busy || first->expired;
    if (first->finished) {
      if (granted) {  // nobody is there to take it: give it back at once
        calls.push_back([this, lease = r->lease] { give_back(lease); });
      } else {
        calls.push_back([this, key, id = first->req.execution_id] { leave_line(key, id); });
      }
    } else if (answer) {
      // Answered Busy (its deadline passed) or with an error, it leaves the store's line: a
      // place kept would hold the next waiter back until it lapsed.
      if (!r || r->outcome == AcquireOutcome::Busy) {
        if (r) {
          r->parked = true;
        }
        calls.push_back([this, key, id = first->req.execution_id] { leave_line(key, id); });
      }
      first->finished = true;
      first->timer->cancel();
      std::erase(line.waiters, first);
      calls.push_back([this, done = std::move(first->done), r = std::move(r)]() mutable {
        std::optional<Lease> lease;
        if (r && r->outcome == AcquireOutcome::Granted) {
          lease = r->lease;
        }
        if (!done(std::move(r)) && lease) {
          give_back(*lease);  // the client went away after its grant, before the answer
        }
      });
    } else {
      line.last_busy = *r;
    }
    if (!line.waiters.empty() && (answer || first->finished || line.again)) {
      try_first(key);  // the next in line, or the same one again after a change
    } else if (!line.waiters.empty()) {
      arm_retry(line, key);
    }
    drop_if_empty(key);
  }
  run_all(calls);
}

void Parking::leave_line(const std::string& key, std::string execution_id) {
  asio::post(pool_, [this, key, id = std::move(execution_id)] {
    (void)store_.leave_queue(key, id);
    changed(key);  // the next in line asks again, with that place gone
  });
}

void Parking::give_back(const Lease& lease) {
  asio::post(pool_, [this, lease] {
    (void)store_.release(lease.key, lease.token,
                         {.status = ExecutionStatus::Cancelled,
                          .reason = "the waiter left before its grant reached it"});
    changed(lease.key);
  });
}

void Parking::expire_waiter(const std::string& key, std::uint64_t id) {
  Calls calls;
  {
    std::lock_guard lock(mu_);
    auto it = lines_.find(key);
    if (it == lines_.end()) {
      return;
    }
    Line& line = *it->second;
    auto w = std::find_if(line.waiters.begin(), line.waiters.end(),
                          [id](const auto& x) { return x->id == id; });
    if (w == line.waiters.end()) {
      return;
    }
    bool first = w == line.waiters.begin();
    if (first && line.attempting) {
      (*w)->expired = true;  // the attempt in flight answers it, whatever it brings
      return;
    }
    AcquireResult busy = line.last_busy;
    busy.parked = true;
    busy.waiting_ahead += static_cast<int>(w - line.waiters.begin());
    std::shared_ptr<Waiter> gone = *w;
    gone->finished = true;
    line.waiters.erase(w);
    calls.push_back([done = std::move(gone->done), busy] { done(busy); });
    if (first) {
      calls.push_back([this, key, eid = gone->req.execution_id] { leave_line(key, eid); });
      try_first(key);
    }
    drop_if_empty(key);
  }
  run_all(calls);
}

void Parking::abandon(const std::string& key, std::uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = lines_.find(key);
  if (it == lines_.end()) {
    return;
  }
  Line& line = *it->second;
  for (auto w = line.waiters.begin(); w != line.waiters.end(); ++w) {
    if ((*w)->id != id) {
      continue;
    }
    bool first = w == line.waiters.begin();
    std::shared_ptr<Waiter> gone = *w;
    gone->finished = true;
    gone->timer->cancel();
    line.waiters.erase(w);
    if (first && !line.attempting) {
      leave_line(key, gone->req.execution_id);
      try_first(key);
    }
    break;  // a first whose attempt is in flight is settled by on_attempt
  }
  std::erase_if(line.queries, [id](const auto& q) {
    if (q->id == id) {
      q->timer->cancel();
      return true;
    }
    return false;
  });
  drop_if_empty(key);
}

void Parking::expire_query(const std::string& key, std::uint64_t id) {
  Calls calls;
  {
    std::lock_guard lock(mu_);
    auto it = lines_.find(key);
    if (it == lines_.end()) {
      return;
    }
    std::erase_if(it->second->queries, [&](const auto& q) {
      if (q->id != id) {
        return false;
      }
      calls.push_back([done = std::move(q->done), state = q->last] { done(state); });
      return true;
    });
    drop_if_empty(key);
  }
  run_all(calls);
}

void Parking::changed(const std::string& key) {
  if (key.empty()) {
    every_mark_.fetch_add(1);
  } else {
    marks_[std::hash<std::string>{}(key) % kMarkBuckets].fetch_add(1);
  }
  std::lock_guard lock(mu_);
  if (key.empty()) {
    for (auto& [k, line] : lines_) {
      try_first(k);
      refresh_queries(k);
    }
    return;
  }
  if (lines_.contains(key)) {
    try_first(key);
    refresh_queries(key);
  }
}

void Parking::refresh_queries(const std::string& key) {
  Line& line = *lines_.at(key);
  if (line.queries.empty()) {
    return;
  }
  if (line.reading) {
    line.read_again = true;
    return;
  }
  line.reading = true;
  line.read_again = false;
  asio::post(pool_, [this, key] {
    Result<KeyState> state = store_.get(key);
    Calls calls;
    {
      std::lock_guard lock(mu_);
      Line& l = *lines_.at(key);
      l.reading = false;
      std::erase_if(l.queries, [&](const auto& q) {
        if (state && state->version == q->index) {
          q->last = *state;
          return false;
        }
        q->timer->cancel();
        calls.push_back([done = std::move(q->done), state] { done(state); });
        return true;
      });
      if (l.read_again) {
        refresh_queries(key);
      }
      drop_if_empty(key);
    }
    run_all(calls);
  });
}

void Parking::recheck() {
  recheck_timer_.expires_after(recheck_interval_);
  recheck_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) {
      return;
    }
    changed("");
    std::lock_guard lock(mu_);
    if (!shut_down_) {
      recheck();
    }
  });
}

void Parking::drop_if_empty(const std::string& key) {
  auto it = lines_.find(key);
  if (it == lines_.end()) {
    return;
  }
  const Line& line = *it->second;
  if (line.waiters.empty() && line.queries.empty() && !line.attempting && !line.reading) {
    lines_.erase(it);
  }
}

void Parking::shut_down() {
  Calls calls;
  {
    std::lock_guard lock(mu_);
    shut_down_ = true;
    recheck_timer_.cancel();
    for (auto& [key, line] : lines_) {
      for (std::size_t i = 0; i < line->waiters.size(); ++i) {
        const auto& w = line->waiters[i];
        if (i == 0 && line->attempting) {
          w->expired = true;
          continue;
        }
        w->finished = true;
        w->timer->cancel();
        AcquireResult busy = line->last_busy;
        busy.parked = true;
        calls.push_back([done = std::move(w->done), busy] { done(busy); });
      }
      if (!line->waiters.empty() && line->attempting) {
        line->waiters.resize(1);
      } else {
        line->waiters.clear();
      }
      for (const auto& q : line->queries) {
        q->timer->cancel();
        calls.push_back([done = std::move(q->done), state = q->last] { done(state); });
      }
      line->queries.clear();
      line->retry.cancel();
    }
  }
  run_all(calls);
}

std::size_t Parking::waiters() const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (const auto& [key, line] : lines_) {
    n += line->waiters.size();
  }
  return n;
}

std::vector<ParkedWaiter> Parking::waiters_of(const std::string& key) const {
  std::lock_guard lock(mu_);
  std::vector<ParkedWaiter> out;
  auto it = lines_.find(key);
  if (it != lines_.end()) {
    for (const auto& w : it->second->waiters) {
      out.push_back({w->req.execution_id, w->req.owner, w->req.labels, w->since});
    }
  }
  return out;
}

}  // namespace aec::server
