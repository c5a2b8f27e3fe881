// Control's policies, driven by the manual clock and the memory store.
#include <future>

#include <gtest/gtest.h>

#include <aec/control.h>
#include <aec/open_store.h>

#include "tests/support/fake_host.h"
#include "tests/support/faulty_store.h"
#include "tests/support/manual_clock.h"

namespace aec::testing {
namespace {

using namespace std::chrono_literals;

class ControlTest : public ::testing::Test {
 protected:
  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::shared_ptr<Store> store_ = std::move(*open_store("memory:", {.clock = clock_}));
  Control control_{store_, {.clock = clock_, .host = std::make_shared<FakeHost>()}};

  Lease hold(const std::string& key) {
    auto r = control_.acquire({.key = key, .ttl = 10s});
    EXPECT_EQ(r->outcome, AcquireOutcome::Granted);
    return r->lease;
  }
  std::vector<Execution> history(const std::string& key) { return *store_->list({.key = key}); }
};

TEST_F(ControlTest, RunCallsTheWorkAndRecordsItsOutcome) {
  int calls = 0;
  auto r = control_.run({.key = "k", .ttl = 10s}, [&](const Lease& lease, std::stop_token) {
    ++calls;
    EXPECT_EQ(lease.token, 1);
    EXPECT_EQ(lease.valid_until, clock_->monotonic_now() + 10s);
    return 0;
  });
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(r->outcome, RunOutcome::Ran);
  EXPECT_EQ(history("k")[0].status, ExecutionStatus::Succeeded);
  auto failed = control_.run({.key = "k"}, [](const Lease&, std::stop_token) { return 4; });
  EXPECT_EQ(failed->exit_code, 4);
  EXPECT_EQ(history("k")[0].status, ExecutionStatus::Failed);
  EXPECT_EQ(history("k")[0].exit_code, 4);
}

TEST_F(ControlTest, RunSkipsABusyKeyWithoutCallingTheWork) {
  Lease held = hold("k");
  bool called = false;
  auto r = control_.run({.key = "k"}, [&](const Lease&, std::stop_token) {
    called = true;
    return 0;
  });
  EXPECT_FALSE(called);
  EXPECT_EQ(r->outcome, RunOutcome::Skipped);
  ASSERT_EQ(r->acquire.holders.size(), 1u);
  EXPECT_EQ(r->acquire.holders[0].execution.token, held.token);
  EXPECT_EQ(history("k")[0].status, ExecutionStatus::Skipped);
}

TEST_F(ControlTest, OnceReportsDone) {
  ASSERT_EQ(
      control_.run({.key = "k", .once = true}, [](const Lease&, std::stop_token) { return 0; })
          ->outcome,
      RunOutcome::Ran);
  auto again = control_.run({.key = "k", .once = true}, [](const Lease&, std::stop_token) {
    ADD_FAILURE() << "ran twice";
    return 0;
  });
  EXPECT_EQ(again->outcome, RunOutcome::Done);
}

TEST_F(ControlTest, WaitPolicyIsGrantedWhenTheHolderReleases) {
  Lease held = hold("k");
  auto waiter = std::async(std::launch::async,
                           [&] { return control_.acquire({.key = "k", .on_busy = OnBusy::Wait}); });
  EXPECT_EQ(waiter.wait_for(30ms), std::future_status::timeout);
  ASSERT_EQ(*control_.release(held, {}), LeaseOutcome::Ok);
  auto r = waiter.get();  // the clock never moved: the release alone woke the waiter
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->outcome, AcquireOutcome::Granted);
  EXPECT_GT(r->lease.token, held.token);
}

TEST_F(ControlTest, WaitPolicyIsGrantedWhenTheHolderExpires) {
  hold("k");
  auto waiter = std::async(std::launch::async,
                           [&] { return control_.acquire({.key = "k", .on_busy = OnBusy::Wait}); });
  clock_->await_sleepers(1);
  clock_->advance(10s);  // expiry is not a write: the waiter must wake on its own
  auto r = waiter.get();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->outcome, AcquireOutcome::Granted);
  EXPECT_EQ(history("k")[1].status, ExecutionStatus::Lost);
}

TEST_F(ControlTest, WaitPolicyGivesUpAtItsTimeoutAndRecordsTheSkip) {
  hold("k");
  auto waiter = std::async(std::launch::async, [&] {
    return control_.acquire({.key = "k", .ttl = 10s, .on_busy = OnBusy::Wait, .wait_timeout = 3s});
  });
  clock_->await_sleepers(1);
  clock_->advance(3s);
  auto r = waiter.get();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->outcome, AcquireOutcome::Busy);
  EXPECT_EQ(history("k")[0].status, ExecutionStatus::Skipped);
}

TEST_F(ControlTest, WaitFreeReturnsWhenFreeAndTimesOut) {
  Lease held = hold("k");
  auto timed = std::async(std::launch::async,
                          [&] { return control_.wait_free("k", 1, clock_->monotonic_now() + 2s); });
  clock_->await_sleepers(1);
  clock_->advance(2s);
  EXPECT_EQ(timed.get().status().code(), Code::DeadlineExceeded);
  auto freed = std::async(std::launch::async, [&] { return control_.wait_free("k", 1, {}); });
  ASSERT_EQ(*control_.release(held, {}), LeaseOutcome::Ok);
  auto state = freed.get();
  ASSERT_TRUE(state.has_value());
  EXPECT_TRUE(state->holders.empty());
}

TEST_F(ControlTest, RenewMovesValidUntilFromWhenItWasSent) {
  Lease l = hold("k");
  clock_->advance(4s);
  ASSERT_EQ(*control_.renew(l), LeaseOutcome::Ok);
  EXPECT_EQ(l.valid_until, clock_->monotonic_now() + 10s);
}

TEST_F(ControlTest, BadKeyIsRejectedBeforeTheStore) {
  auto r = control_.acquire({.key = std::string(600, 'x')});
  EXPECT_EQ(r.status().code(), Code::InvalidArgument);
  EXPECT_TRUE(store_->list({})->empty());
}

}  // namespace
}  // namespace aec::testing
