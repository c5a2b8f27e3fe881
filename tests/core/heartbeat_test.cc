// Heartbeat timing on the manual clock: renewals every ttl/3, and the loss reported in time.
#include "core/heartbeat.h"

#include <atomic>
#include <optional>

#include <gtest/gtest.h>

#include <aec/open_store.h>

#include "tests/support/fake_host.h"
#include "tests/support/faulty_store.h"
#include "tests/support/manual_clock.h"

namespace aec::testing {
namespace {

using namespace std::chrono_literals;

class HeartbeatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = control_.acquire({.key = "k", .ttl = 30s});
    ASSERT_EQ(r->outcome, AcquireOutcome::Granted);
    lease_ = r->lease;
  }

  void start(milliseconds grace) {
    heartbeat_.emplace(control_, *clock_, lease_, grace, [this](MonoTime kill_at) {
      called_at_ = clock_->monotonic_now();
      kill_at_ = kill_at;
      lost_ = true;
    });
    clock_->await_sleepers(2);  // the renewer and the watchdog are parked
  }

  // Advances the clock and waits until both threads are parked again (or the loss was reported).
  void step(std::chrono::nanoseconds d) {
    clock_->advance(d);
    if (!lost_) {
      ASSERT_TRUE(eventually([&] { return lost_ || clock_->settled(2); }));
    }
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::shared_ptr<FaultyStore> store_ =
      std::make_shared<FaultyStore>(std::move(*open_store("memory:", {.clock = clock_})));
  Control control_{store_, {.clock = clock_, .host = std::make_shared<FakeHost>()}};
  Lease lease_;
  std::atomic<bool> lost_{false};
  MonoTime called_at_{};
  MonoTime kill_at_{};
  std::optional<Heartbeat> heartbeat_;
};

TEST_F(HeartbeatTest, RenewsEveryThirdOfTheTtlAndKeepsTheLease) {
  start(5s);
  for (int i = 1; i <= 6; ++i) {
    step(10s);
    ASSERT_TRUE(eventually([&] { return store_->renew_calls == i; }));
  }
  EXPECT_FALSE(lost_);
  EXPECT_EQ(heartbeat_->lease().valid_until, clock_->monotonic_now() + 30s);
  // An hour of renewals later, the lease is still held in the store.
  EXPECT_EQ(store_->get("k")->holders.size(), 1u);
}

TEST_F(HeartbeatTest, FailingRenewalsReportTheLossGraceBeforeTheKillDeadline) {
  store_->fail_renew = true;
  start(5s);
  // kill_at = valid_until - ttl/20 = grant + 28.5 s; the loss is due at kill_at - 5 s = 23.5 s.
  step(10s);  // the first renewal fails...
  for (int i = 0; i < 6; ++i) {
    step(2s);  // ...and is retried every ttl/15
  }
  step(1s);
  EXPECT_FALSE(lost_);
  EXPECT_GE(store_->renew_calls, 6);
  step(500ms);
  ASSERT_TRUE(eventually([&] { return lost_.load(); }));
  EXPECT_EQ(kill_at_, lease_.valid_until - 1500ms);
  EXPECT_EQ(called_at_, kill_at_ - 5s);
}

TEST_F(HeartbeatTest, AStoreThatSaysLostIsReportedAtOnce) {
  start(5s);
  ASSERT_TRUE(store_->force_release("k", "test", {}).has_value());
  step(10s);
  ASSERT_TRUE(eventually([&] { return lost_.load(); }));
  EXPECT_EQ(kill_at_, called_at_);  // no grace: another holder may already exist
}

TEST_F(HeartbeatTest, APauseLongerThanTheTtlIsCaughtOnWaking) {
  start(5s);
  step(2min);  // one step: as if the process had been stopped for two minutes
  ASSERT_TRUE(eventually([&] { return lost_.load(); }));
  EXPECT_LE(kill_at_, called_at_);
}

TEST_F(HeartbeatTest, ADeferredHeartbeatRunsFromStartAndIsDueByItsFirstRenewal) {
  heartbeat_.emplace(
      control_, *clock_, lease_, 5s, [this](MonoTime) { lost_ = true; },
      Heartbeat::Start::Deferred);
  // The first renewal (ttl/3 = 10 s after the grant) comes before the watchdog's first deadline
  // (kill_at - grace = 28.5 s - 5 s).
  EXPECT_EQ(heartbeat_->start_by(), lease_.valid_until - 20s);
  EXPECT_EQ(clock_->sleepers(), 0);
  clock_->advance(10s);  // the first renewal is due, but nothing runs yet
  heartbeat_->start();
  ASSERT_TRUE(eventually([&] { return store_->renew_calls == 1 && clock_->settled(2); }));
  heartbeat_->start();  // a no-op once started
  step(10s);
  ASSERT_TRUE(eventually([&] { return store_->renew_calls == 2; }));
  EXPECT_FALSE(lost_);
  heartbeat_->stop();
  EXPECT_EQ(clock_->sleepers(), 0);
  heartbeat_->start();  // a no-op once stopped
  EXPECT_EQ(clock_->sleepers(), 0);
}

TEST_F(HeartbeatTest, ADeferredHeartbeatWithALongGraceIsDueByTheWatchdogsDeadline) {
  heartbeat_.emplace(
      control_, *clock_, lease_, 25s, [this](MonoTime) { lost_ = true; },
      Heartbeat::Start::Deferred);
  // kill_at = grant + 28.5 s; less a grace of 25 s: 3.5 s after the grant, before the renewal.
  EXPECT_EQ(heartbeat_->start_by(), lease_.valid_until - 30s + 3500ms);
}

}  // namespace
}  // namespace aec::testing
