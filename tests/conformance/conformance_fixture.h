// The conformance fixture: every test runs once per store kind of all_stores().
#pragma once

#include <map>

#include <gtest/gtest.h>

#include <aec/store.h>

#include "tests/conformance/store_factory.h"
#include "tests/support/temp_dir.h"

namespace aec::testing {

using namespace std::chrono_literals;

class Conformance : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    if (!GetParam().skip.empty()) {
      GTEST_SKIP() << GetParam().name << ": " << GetParam().skip;
    }
    env_ = {std::make_shared<ManualClock>(), std::make_shared<FakeHost>(), dir_.path().string()};
    store_ = GetParam().open(env_);
  }

  // Reopens the store on the same data (a process restart).
  void reopen() {
    store_.reset();
    store_ = GetParam().open(env_);
  }

  AcquireRequest request(const std::string& key, const std::string& id, int limit = 1) {
    return {.key = key,
            .execution_id = id,
            .ttl = 10s,
            .limit = limit,
            .owner = {.host = "h1", .pid = 7, .user = "u"},
            .labels = {{"team", "data"}}};
  }

  // Acquires and expects a grant; returns the lease.
  Lease grant(const std::string& key, const std::string& id, int limit = 1) {
    auto r = store_->acquire(request(key, id, limit));
    EXPECT_TRUE(r.has_value()) << r.status().to_string();
    if (!r) {
      return {};
    }
    EXPECT_EQ(r->outcome, AcquireOutcome::Granted);
    return r->lease;
  }

  AcquireOutcome try_acquire(const std::string& key, const std::string& id, int limit = 1) {
    auto r = store_->acquire(request(key, id, limit));
    EXPECT_TRUE(r.has_value()) << r.status().to_string();
    return r ? r->outcome : AcquireOutcome::Busy;
  }

  LeaseOutcome release(const Lease& l, ExecutionStatus status = ExecutionStatus::Succeeded,
                       std::optional<int> code = 0) {
    auto r = store_->release(l.key, l.token, {.status = status, .exit_code = code});
    EXPECT_TRUE(r.has_value()) << r.status().to_string();
    return r ? *r : LeaseOutcome::Lost;
  }

  std::vector<Execution> history(const std::string& key) {
    auto r = store_->list({.key = key, .limit = 1000});
    EXPECT_TRUE(r.has_value()) << r.status().to_string();
    return r ? *r : std::vector<Execution>{};
  }

  TempDir dir_;
  StoreEnv env_;
  std::unique_ptr<Store> store_;
};

}  // namespace aec::testing
