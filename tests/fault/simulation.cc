#include "tests/fault/simulation.h"

#include <algorithm>
#include <array>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <vector>

#include <fmt/format.h>

namespace aec::testing {
namespace {

using std::chrono::milliseconds;

struct SimKey {
  std::string name;
  int limit;
};
const std::array<SimKey, 2> kKeys = {SimKey{"k1", 1}, SimKey{"k2", 2}};
const std::array<milliseconds, 3> kTtls = {milliseconds(20), milliseconds(100), milliseconds(500)};
// How often an answer is lost on its way back to the caller (after the store acted on it).
constexpr double kLostReply = 0.08;
// Clock advances: mostly short (calls in quick succession), sometimes past every ttl.
const std::array<milliseconds, 8> kAdvances = {
    milliseconds(0),  milliseconds(1),  milliseconds(5),   milliseconds(19),
    milliseconds(20), milliseconds(60), milliseconds(250), milliseconds(700)};

const char* word(LeaseOutcome o) {
  return o == LeaseOutcome::Ok ? "ok" : "lost";
}

struct Held {
  std::string key;
  std::int64_t token = 0;
  milliseconds ttl{0};
  MonoTime valid_until;  // what the client counts on: send time + ttl
};

// A grant whose answer was lost on the way back (the store committed it, the caller never knew).
struct Orphan {
  std::string key;
  std::int64_t token = 0;
  MonoTime lapses_by;  // sent + ttl: the store must have let it go by then
};

struct Client {
  std::string name;
  int runs = 0;                     // numbers its execution ids
  std::optional<Held> held;         // what it believes it holds (maybe lapsed)
  std::optional<std::string> line;  // the key it waits in line for (queue)
  std::string execution_id;         // of its current or last acquire
  int paused = 0;                   // steps it sits out
};

class Sim {
 public:
  Sim(std::uint64_t seed, Store& store, ManualClock& clock, const SimulationOptions& options)
      : random_(seed), store_(store), clock_(clock), options_(options) {
    for (int i = 0; i < options.clients; ++i) {
      clients_.push_back({.name = fmt::format("c{}", i)});
    }
  }

  SimulationResult run() {
    for (step_ = 0; step_ < options_.steps && !result_.violation; ++step_) {
      act();
      check();
    }
    return result_;
  }

 private:
  std::size_t pick(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(random_);
  }
  bool chance(double p) { return std::bernoulli_distribution(p)(random_); }
  MonoTime now() { return clock_.monotonic_now(); }
  int limit_of(const std::string& key) const {
    return std::find_if(kKeys.begin(), kKeys.end(), [&](const SimKey& k) { return k.name == key; })
        ->limit;
  }

  void note(std::string what) {
    log_.push_back(fmt::format("step {}: {}", step_, what));
    if (log_.size() > 16) {
      log_.pop_front();
    }
  }

  void fail(std::string what) {
    std::string tail;
    for (const std::string& line : log_) {
      tail += "\n  " + line;
    }
    result_.violation = fmt::format("{} (step {}); the last steps:{}", what, step_, tail);
  }

  void act() {
    std::size_t action = pick(8);
    if (action == 0) {
      milliseconds d = kAdvances[pick(kAdvances.size())];
      clock_.advance(d);
      note(fmt::format("clock +{} ms", d.count()));
      return;
    }
    if (action == 1) {
      if (chance(0.5)) {
        retry_release();
        return;
      }
      auto d = std::chrono::seconds(static_cast<int>(pick(121)) - 60);
      clock_.step_wall(d);
      note(fmt::format("wall clock {:+} s", d.count()));
      return;
    }
    Client& c = clients_[pick(clients_.size())];
    if (c.paused > 0) {
      --c.paused;
      return;
    }
    switch (action) {
      case 2:
      case 3:
        c.held ? renew(c) : acquire(c);
        return;
      case 4:
        c.held ? release(c) : acquire(c);
        return;
      case 5:
        acquire(c);
        return;
      case 6:  // crash: forgets everything; what it held lapses in the store
        note(fmt::format("{} crashes", c.name));
        c.held.reset();
        c.line.reset();
        return;
      default:  // pause: sits out some steps, and may come back after its lease lapsed
        c.paused = static_cast<int>(pick(12));
        note(fmt::format("{} pauses for {} steps", c.name, c.paused));
        return;
    }
  }

  void acquire(Client& c) {
    if (c.held) {
      return;
    }
    const std::string key = c.line ? *c.line : kKeys[pick(kKeys.size())].name;
    if (!c.line) {
      c.execution_id = fmt::format("{}-{}", c.name, ++c.runs);
    }
    AcquireRequest req{.key = key,
                       .execution_id = c.execution_id,
                       .ttl = kTtls[pick(kTtls.size())],
                       .limit = limit_of(key),
                       .queue = c.line.has_value() || chance(0.4),
                       .queue_ttl = milliseconds(100)};
    const MonoTime sent = now();
    Result<AcquireResult> r = store_.acquire(req);
    if (!r) {
      fail(fmt::format("{} acquire of {} failed: {}", c.name, key, r.error().to_string()));
      return;
    }
    if (chance(kLostReply)) {
      // The answer is lost: the caller asks again later under a new execution id, as a runner
      // that exited on the error would. What it was granted must lapse within one ttl.
      note(fmt::format("{} acquire of {}: answer lost", c.name, key));
      if (r->outcome == AcquireOutcome::Granted) {
        ++result_.grants;
        note_grant(c, key, r->lease.token);
        orphans_.push_back({.key = key, .token = r->lease.token, .lapses_by = sent + req.ttl});
      }
      c.line.reset();
      return;
    }
    if (r->outcome == AcquireOutcome::Granted) {
      ++result_.grants;
      note(fmt::format("{} granted {} token {} ttl {} ms", c.name, key, r->lease.token,
                       req.ttl.count()));
      note_grant(c, key, r->lease.token);
      c.held = Held{.key = key,
                    .token = r->lease.token,
                    .ttl = req.ttl,
                    .valid_until = sent + req.ttl + r->held};
      c.line.reset();
      return;
    }
    note(fmt::format("{} busy on {}{}", c.name, key, req.queue ? " (in line)" : ""));
    if (req.queue) {
      c.line = key;
    }
  }

  void note_grant(const Client& c, const std::string& key, std::int64_t token) {
    std::int64_t& last = last_token_[key];
    if (token <= last) {  // I1
      fail(fmt::format("I1: {} granted token {} on {} after token {}", c.name, token, key, last));
    }
    last = std::max(last, token);
  }

  void renew(Client& c) {
    Held& h = *c.held;
    const MonoTime sent = now();
    if (sent >= h.valid_until) {
      ++result_.stale_calls;
    }
    Result<LeaseOutcome> r = store_.renew(h.key, h.token, h.ttl);
    if (!r) {
      fail(fmt::format("{} renew failed: {}", c.name, r.error().to_string()));
      return;
    }
    note(fmt::format("{} renews {} token {}: {}", c.name, h.key, h.token, word(*r)));
    if (chance(kLostReply)) {
      note(fmt::format("{}: answer lost (it counts on its last renewal still)", c.name));
      return;
    }
    if (*r == LeaseOutcome::Ok) {
      h.valid_until = sent + h.ttl;
    } else {
      c.held.reset();
    }
  }

  void release(Client& c) {
    Held h = *c.held;
    if (now() >= h.valid_until) {
      ++result_.stale_calls;
    }
    c.held.reset();
    Result<LeaseOutcome> r = store_.release(h.key, h.token, {});
    if (!r) {
      fail(fmt::format("{} release failed: {}", c.name, r.error().to_string()));
      return;
    }
    note(fmt::format("{} releases {} token {}: {}", c.name, h.key, h.token, word(*r)));
    if (chance(kLostReply)) {
      // The answer is lost: the caller sends the release again, maybe much later. It must never
      // free a lease granted since (I2 checks every holder that counts on one).
      note(fmt::format("{}: answer lost, the release will be sent again", c.name));
      retries_.push_back({.key = h.key, .token = h.token});
    }
  }

  // A release sent again after its answer was lost.
  void retry_release() {
    if (retries_.empty()) {
      return;
    }
    Retry again = retries_.front();
    retries_.pop_front();
    ++result_.stale_calls;
    Result<LeaseOutcome> r = store_.release(again.key, again.token, {});
    if (!r) {
      fail(fmt::format("a retried release failed: {}", r.error().to_string()));
      return;
    }
    note(fmt::format("release of {} token {} sent again: {}", again.key, again.token, word(*r)));
    if (*r == LeaseOutcome::Ok) {
      fail(
          fmt::format("a release of {} token {} sent again freed a lease", again.key, again.token));
    }
  }

  void check() {
    if (result_.violation) {
      return;
    }
    const MonoTime t = now();
    for (const Orphan& o : orphans_) {
      if (t < o.lapses_by) {
        continue;
      }
      Result<KeyState> state = store_.get(o.key);
      if (state && std::any_of(state->holders.begin(), state->holders.end(),
                               [&](const Holder& h) { return h.execution.token == o.token; })) {
        fail(
            fmt::format("a grant of {} token {} whose answer was lost still holds the key {} ms "
                        "past its ttl",
                        o.key, o.token, std::chrono::floor<milliseconds>(t - o.lapses_by).count()));
        return;
      }
    }
    std::erase_if(orphans_, [&](const Orphan& o) { return t >= o.lapses_by; });
    for (const SimKey& key : kKeys) {
      Result<KeyState> state = store_.get(key.name);
      if (!state) {
        fail(fmt::format("get {} failed: {}", key.name, state.error().to_string()));
        return;
      }
      std::set<std::int64_t> listed;
      for (const Holder& h : state->holders) {
        listed.insert(h.execution.token);
      }
      if (static_cast<int>(listed.size()) > key.limit) {  // I2
        fail(fmt::format("I2: the store lists {} holders of {} (limit {})", listed.size(), key.name,
                         key.limit));
        return;
      }
      int believers = 0;
      for (const Client& c : clients_) {
        if (!c.held || c.held->key != key.name || t >= c.held->valid_until) {
          continue;
        }
        ++believers;
        if (!listed.contains(c.held->token)) {  // I2: a lease gone under its holder
          fail(
              fmt::format("I2: {} counts on {} token {} for {} ms more, but the store lists "
                          "no such holder",
                          c.name, key.name, c.held->token,
                          std::chrono::ceil<milliseconds>(c.held->valid_until - t).count()));
          return;
        }
        if (key.limit == 1) {  // I3: the fenced sink
          std::int64_t& highest = sink_[key.name];
          if (c.held->token < highest) {
            fail(
                fmt::format("I3: the sink of {} rejects {}'s write with token {} (it has "
                            "accepted token {})",
                            key.name, c.name, c.held->token, highest));
            return;
          }
          highest = c.held->token;
        }
      }
      if (believers > key.limit) {
        fail(fmt::format("I2: {} clients count on {} (limit {})", believers, key.name, key.limit));
        return;
      }
    }
  }

  std::mt19937_64 random_;
  Store& store_;
  ManualClock& clock_;
  SimulationOptions options_;
  std::vector<Client> clients_;
  std::map<std::string, std::int64_t> last_token_;
  std::map<std::string, std::int64_t> sink_;
  struct Retry {
    std::string key;
    std::int64_t token = 0;
  };
  std::vector<Orphan> orphans_;
  std::deque<Retry> retries_;
  std::deque<std::string> log_;
  int step_ = 0;
  SimulationResult result_;
};

}  // namespace

SimulationResult simulate(std::uint64_t seed, Store& store, ManualClock& clock,
                          const SimulationOptions& options) {
  return Sim(seed, store, clock, options).run();
}

}  // namespace aec::testing
