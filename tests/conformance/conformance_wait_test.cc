// Conformance, continued: waits and concurrent acquires.
#include <atomic>
#include <future>
#include <thread>

#include "tests/conformance/conformance_fixture.h"

namespace aec::testing {
namespace {

TEST_P(Conformance, WaitReturnsAtOnceWhenTheVersionAlreadyMoved) {
  Lease l = grant("k", "e1");
  auto v = store_->wait("k", 0, env_.clock->monotonic_now() + 1h, {});
  ASSERT_TRUE(v.has_value());
  EXPECT_GT(*v, 0);
  (void)l;
}

TEST_P(Conformance, WaitWakesOnARelease) {
  Lease l = grant("k", "e1");
  std::int64_t version = store_->get("k")->version;
  auto waiter = std::async(std::launch::async, [&] {
    return store_->wait("k", version, env_.clock->monotonic_now() + 1h, {});
  });
  EXPECT_EQ(waiter.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  release(l);
  auto v = waiter.get();  // the manual clock never moves: only the release can end the wait
  ASSERT_TRUE(v.has_value());
  EXPECT_GT(*v, version);
}

TEST_P(Conformance, WaitEndsAtItsDeadlineWithTheSameVersion) {
  grant("k", "e1");
  std::int64_t version = store_->get("k")->version;
  auto waiter = std::async(std::launch::async, [&] {
    return store_->wait("k", version, env_.clock->monotonic_now() + 5s, {});
  });
  EXPECT_EQ(waiter.wait_for(std::chrono::milliseconds(20)), std::future_status::timeout);
  env_.clock->advance(5s);
  auto v = waiter.get();
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, version);
}

TEST_P(Conformance, WaitIsCancelledByItsStopToken) {
  grant("k", "e1");
  std::int64_t version = store_->get("k")->version;
  std::stop_source stop;
  auto waiter = std::async(std::launch::async, [&] {
    return store_->wait("k", version, env_.clock->monotonic_now() + 1h, stop.get_token());
  });
  stop.request_stop();
  auto v = waiter.get();
  EXPECT_EQ(v.status().code(), Code::Cancelled);
}

TEST_P(Conformance, ConcurrentAcquiresNeverExceedTheLimit) {
  for (int limit : {1, 2}) {
    if (limit > 1 && GetParam().one_per_key) {
      break;
    }
    std::string key = "hot/" + std::to_string(limit);
    std::atomic<int> granted{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i) {
      threads.emplace_back([&, i] {
        auto r = store_->acquire(request(key, "t" + std::to_string(i), limit));
        ASSERT_TRUE(r.has_value()) << r.status().to_string();
        if (r->outcome == AcquireOutcome::Granted) {
          ++granted;
        }
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    EXPECT_EQ(granted.load(), limit);
    EXPECT_EQ(store_->get(key)->holders.size(), static_cast<std::size_t>(limit));
  }
}

}  // namespace
}  // namespace aec::testing
