// A worker of T1 (RELIABILITY.md): one process calling a store directly, acquire, renew and
// release on a few keys in a seeded random order, recording every call (invoke, then ok, fail or
// info) with CLOCK_BOOTTIME ns in its own history file for the checker. Keys KEY/0 and KEY/1 have
// limit 1, KEY/2 and KEY/3 limit 2. Now and then it abandons a lease (lets it lapse, as a crashed
// holder would), and after a release it sometimes renews or releases the old token again (a
// stale call: it must be answered "not held" and change nothing).
//
//   fault_worker --store URL --prefix KEY --client N --ops 250 --seed S --history FILE
//                [--pace MS]   (at most MS between calls; default 25)
//                [--lose N]    (T13: 1 in N answers is lost after the store acted; a release
//                               whose answer was lost is sent again, and some releases race a
//                               renewal of the same lease from a second thread)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <unistd.h>

#include <aec/open_store.h>
#include <aec/store.h>

#include "tests/fault/history.h"

namespace {

using aec::fault::Event;
using aec::fault::EventKind;
using aec::fault::History;
using namespace std::chrono_literals;

constexpr int kKeys = 4;
constexpr auto kTtl = 1000ms;

struct Options {
  std::string store;
  std::string prefix;
  int client = 0;
  int ops = 250;
  std::uint64_t seed = 1;
  std::string history;
  int pace_ms = 25;  // at most this long between two calls
  int lose = 0;      // 1 in `lose` answers is lost on its way back (0: none)
};

std::optional<Options> parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    std::string value = argv[i + 1];
    if (flag == "--store") {
      o.store = value;
    } else if (flag == "--prefix") {
      o.prefix = value;
    } else if (flag == "--client") {
      o.client = std::atoi(value.c_str());
    } else if (flag == "--ops") {
      o.ops = std::atoi(value.c_str());
    } else if (flag == "--seed") {
      o.seed = std::strtoull(value.c_str(), nullptr, 10);
    } else if (flag == "--pace") {
      o.pace_ms = std::atoi(value.c_str());
    } else if (flag == "--lose") {
      o.lose = std::atoi(value.c_str());
    } else if (flag == "--history") {
      o.history = value;
    } else {
      return std::nullopt;
    }
  }
  if (argc % 2 != 1 || o.store.empty() || o.prefix.empty() || o.history.empty()) {
    return std::nullopt;
  }
  return o;
}

// How a renew or release was answered: Info when nobody knows (an error), else Ok or Fail.
EventKind answer_of(const aec::Result<aec::LeaseOutcome>& r) {
  if (!r.has_value()) {
    return EventKind::Info;
  }
  return *r == aec::LeaseOutcome::Ok ? EventKind::Ok : EventKind::Fail;
}

class Worker {
 public:
  Worker(const Options& o, aec::Store& store)
      : o_(o), store_(store), history_(o.history), rng_(o.seed) {}

  void run() {
    for (int i = 0; i < o_.ops; ++i) {
      int k = pick(kKeys);
      std::string key = o_.prefix + "/" + std::to_string(k);
      auto held = held_.find(k);
      if (held == held_.end()) {
        if (stale_.contains(k) && pick(4) == 0) {
          stale_call(key, stale_[k]);
        } else {
          acquire(key, k);
        }
      } else if (pick(50) == 0) {
        held_.erase(held);  // abandoned: the lease lapses, its holder never heard of again
      } else if (pick(2) == 0) {
        renew(key, k, held->second);
      } else {
        release(key, k, held->second);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(pick(o_.pace_ms + 1)));
    }
  }

 private:
  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  // Whether the answer just received is lost on its way back: the store acted, this worker
  // never hears how. Recorded as Info; the worker goes on not knowing.
  bool answer_lost() { return o_.lose > 0 && pick(o_.lose) == 0; }

  void note(EventKind kind, const std::string& op, const std::string& key, std::int64_t token,
            std::int64_t value = 0) {
    history_.add(Event{aec::fault::boot_ns(), getpid(), kind, key, token, op, value, o_.client});
  }

  void acquire(const std::string& key, int k) {
    aec::AcquireRequest req;
    req.key = key;
    req.execution_id = "w" + std::to_string(o_.client) + "-" + std::to_string(++calls_);
    req.ttl = kTtl;
    req.limit = k < 2 ? 1 : 2;
    note(EventKind::Invoke, "acquire", key, 0, kTtl.count());
    aec::Result<aec::AcquireResult> r = store_.acquire(req);
    if (!r.has_value() || answer_lost()) {  // a lost grant lapses: nobody will renew it
      note(EventKind::Info, "acquire", key, 0);
    } else if (r->outcome == aec::AcquireOutcome::Granted) {
      note(EventKind::Ok, "acquire", key, r->lease.token);
      held_[k] = r->lease.token;
    } else {
      note(EventKind::Fail, "acquire", key, 0);
    }
  }

  void renew(const std::string& key, int k, std::int64_t token) {
    note(EventKind::Invoke, "renew", key, token, kTtl.count());
    aec::Result<aec::LeaseOutcome> r = store_.renew(key, token, kTtl);
    if (!r.has_value() || answer_lost()) {
      note(EventKind::Info, "renew", key, token);
    } else if (*r == aec::LeaseOutcome::Ok) {
      note(EventKind::Ok, "renew", key, token);
    } else {
      note(EventKind::Fail, "renew", key, token);
      held_.erase(k);
    }
  }

  void release(const std::string& key, int k, std::int64_t token) {
    // T13: now and then a renewal of the same lease races the release, from another thread
    // (recorded as another client): whichever wins, no renewal may succeed after the release.
    std::thread racer;
    if (o_.lose > 0 && pick(4) == 0) {
      racer = std::thread([this, key, token] {
        const int me = o_.client + 1000;
        history_.add(Event{aec::fault::boot_ns(), getpid(), EventKind::Invoke, key, token, "renew",
                           kTtl.count(), me});
        aec::Result<aec::LeaseOutcome> r = store_.renew(key, token, kTtl);
        EventKind kind = answer_of(r);
        history_.add(Event{aec::fault::boot_ns(), getpid(), kind, key, token, "renew", 0, me});
      });
    }
    for (int attempt = 0;; ++attempt) {
      note(EventKind::Invoke, "release", key, token);
      aec::Result<aec::LeaseOutcome> r = store_.release(key, token, aec::Outcome{});
      bool lost = !r.has_value() || answer_lost();
      if (lost) {
        note(EventKind::Info, "release", key, token);
      } else {
        note(*r == aec::LeaseOutcome::Ok ? EventKind::Ok : EventKind::Fail, "release", key, token);
      }
      if (!lost || attempt == 1) {
        break;  // a release whose answer was lost is sent once more: it must free nothing else
      }
    }
    if (racer.joinable()) {
      racer.join();
    }
    held_.erase(k);
    stale_[k] = token;
  }

  // A renew or release of a token released before: it must change nothing. Its answer is
  // recorded like any other; the checker flags a renew that succeeds after its release.
  void stale_call(const std::string& key, std::int64_t token) {
    if (pick(2) == 0) {
      note(EventKind::Invoke, "renew", key, token, kTtl.count());
      aec::Result<aec::LeaseOutcome> r = store_.renew(key, token, kTtl);
      note(answer_of(r), "renew", key, token);
    } else {
      note(EventKind::Invoke, "release", key, token);
      aec::Result<aec::LeaseOutcome> r = store_.release(key, token, aec::Outcome{});
      note(answer_of(r), "release", key, token);
    }
  }

  const Options& o_;
  aec::Store& store_;
  History history_;
  std::mt19937_64 rng_;
  std::map<int, std::int64_t> held_;   // key number -> token of the lease this worker holds
  std::map<int, std::int64_t> stale_;  // key number -> a token this worker released
  int calls_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::optional<Options> o = parse(argc, argv);
  if (!o) {
    std::fprintf(stderr,
                 "usage: fault_worker --store URL --prefix KEY --client N --ops N --seed S "
                 "--history FILE [--pace MS] [--lose N]\n");
    return 64;
  }
  aec::Result<std::unique_ptr<aec::Store>> store = aec::open_store(o->store);
  if (!store.has_value()) {
    std::fprintf(stderr, "fault_worker: %s\n", store.status().message().c_str());
    return 69;
  }
  Worker(*o, **store).run();
  return 0;
}
