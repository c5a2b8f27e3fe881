// aec's embedded SQLite store, driven through aec::Control as a user of the library would: one
// store and one Control per client process, OnBusy::Wait for the hot key.
#include <chrono>
#include <optional>

#include <aec/control.h>
#include <aec/open_store.h>

#include "contender.h"
#include "tests/support/forwarding_store.h"

namespace aec::bench {
namespace {

using namespace std::chrono_literals;

std::string store_url(const std::string& dir) {
  return "sqlite://" + dir + "/aec.db";
}

// Forwards every call to the store (release_and_acquire and watch_changes too, which
// ForwardingStore leaves to Store's defaults) and counts the acquires it answered busy: the
// attempts that reached the store and were refused (Session::refused_attempts).
class CountingStore final : public testing::ForwardingStore {
 public:
  CountingStore(std::shared_ptr<Store> store, std::int64_t& refused)
      : ForwardingStore(std::move(store)), refused_(refused) {}

  Result<AcquireResult> acquire(const AcquireRequest& req) override {
    return count(inner().acquire(req));
  }
  Result<Handoff> release_and_acquire(std::string_view key, std::int64_t token,
                                      const Outcome& outcome, const AcquireRequest& next) override {
    Result<Handoff> handoff = inner().release_and_acquire(key, token, outcome, next);
    if (handoff) {
      handoff->next = count(std::move(handoff->next));
    }
    return handoff;
  }
  std::unique_ptr<ChangeFeed> watch_changes(
      std::function<void(const std::string& key)> on_change) override {
    return inner().watch_changes(std::move(on_change));
  }

 private:
  Result<AcquireResult> count(Result<AcquireResult> result) {
    if (result && result->outcome == AcquireOutcome::Busy) {
      ++refused_;
    }
    return result;
  }

  std::int64_t& refused_;
};

class AecSession final : public Session {
 public:
  explicit AecSession(std::shared_ptr<Store> store)
      : control_(std::make_shared<CountingStore>(std::move(store), refused_)) {}

  Result<Acquired> acquire(const std::string& key, bool wait,
                           BenchClock::time_point give_up) override {
    // Assigned, not designated: GCC's -Wmissing-field-initializers flags omitted members.
    RunOptions options;
    options.key = key;
    options.ttl = 30s;
    options.on_busy = wait ? OnBusy::Wait : OnBusy::Skip;
    if (wait) {
      options.wait_timeout =
          std::max(1ms, std::chrono::duration_cast<milliseconds>(give_up - BenchClock::now()));
    }
    Result<AcquireResult> result = control_.acquire(options);
    if (!result) {
      return result.error();
    }
    if (result->outcome != AcquireOutcome::Granted) {
      return Acquired::Busy;
    }
    lease_ = std::move(result->lease);
    return Acquired::Granted;
  }

  Status hold(const std::string& key) override {
    RunOptions options;
    options.key = key;
    options.ttl = 1h;
    options.on_busy = OnBusy::Skip;
    Result<AcquireResult> result = control_.acquire(options);
    if (!result) {
      return result.error();
    }
    return result->outcome == AcquireOutcome::Granted
               ? Status::ok()
               : internal_error("preload: " + key + " is held already");
  }

  Status release() override {
    Outcome outcome;
    outcome.status = ExecutionStatus::Succeeded;
    outcome.exit_code = 0;
    Result<LeaseOutcome> result = control_.release(lease_, outcome);
    if (!result) {
      return result.error();
    }
    return *result == LeaseOutcome::Ok ? Status::ok() : internal_error("release: lease lost");
  }

 private:
  Control control_;
  Lease lease_;
};

class AecSqliteContender final : public Contender {
 public:
  std::string_view name() const override { return "aec-sqlite"; }
  std::string_view guarantees() const override {
    return "one host; each grant and release committed (WAL, synchronous=NORMAL: survives any "
           "process crash, not a power loss); expiry, fencing tokens, history, FIFO waits";
  }

  // Opening the store once creates the database and its schema; the store is closed again
  // before the clients fork.
  Status prepare(const std::string& dir) override {
    Result<std::unique_ptr<Store>> store = open_store(store_url(dir));
    return store ? Status::ok() : store.error();
  }

  Result<std::unique_ptr<Session>> open(const std::string& dir, int /*client*/) override {
    Result<std::unique_ptr<Store>> store = open_store(store_url(dir));
    if (!store) {
      return store.error();
    }
    return make_control_session(std::shared_ptr<Store>(std::move(*store)));
  }
};

}  // namespace

std::unique_ptr<Session> make_control_session(std::shared_ptr<Store> store) {
  return std::make_unique<AecSession>(std::move(store));
}

std::unique_ptr<Contender> make_aec_sqlite_contender() {
  return std::make_unique<AecSqliteContender>();
}

}  // namespace aec::bench
