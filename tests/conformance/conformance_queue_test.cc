// Conformance, continued: the FIFO queue of waiting callers.
#include "tests/conformance/conformance_fixture.h"

namespace aec::testing {
namespace {

class Queue : public Conformance {
 protected:
  AcquireOutcome queued(const std::string& key, const std::string& id, int limit = 1) {
    AcquireRequest req = request(key, id, limit);
    req.queue = true;
    req.queue_ttl = 3s;
    auto r = store_->acquire(req);
    EXPECT_TRUE(r.has_value()) << r.status().to_string();
    if (r && r->outcome == AcquireOutcome::Granted) {
      leases_[id] = r->lease;
    }
    return r ? r->outcome : AcquireOutcome::Busy;
  }
  std::map<std::string, Lease> leases_;
};

TEST_P(Queue, AFreedSlotGoesToTheFirstInLine) {
  Lease a = grant("k", "a");
  EXPECT_EQ(queued("k", "b"), AcquireOutcome::Busy);
  EXPECT_EQ(queued("k", "c"), AcquireOutcome::Busy);
  release(a);
  EXPECT_EQ(queued("k", "c"), AcquireOutcome::Busy);             // b is ahead
  EXPECT_EQ(try_acquire("k", "a-again"), AcquireOutcome::Busy);  // no jumping the queue
  EXPECT_EQ(queued("k", "b"), AcquireOutcome::Granted);
  release(leases_["b"]);
  EXPECT_EQ(queued("k", "c"), AcquireOutcome::Granted);
  EXPECT_GT(leases_["c"].token, leases_["b"].token);
}

TEST_P(Queue, AReleaseHandsTheSlotToTheNextInOneCall) {
  Lease a = grant("k", "a");
  EXPECT_EQ(queued("k", "b"), AcquireOutcome::Busy);
  EXPECT_EQ(queued("k", "c"), AcquireOutcome::Busy);
  AcquireRequest next = request("k", "b");
  next.queue = true;
  next.queue_ttl = 3s;
  auto h = store_->release_and_acquire("k", a.token, {.status = ExecutionStatus::Succeeded}, next);
  ASSERT_TRUE(h.has_value()) << h.error().to_string();
  EXPECT_EQ(h->released, LeaseOutcome::Ok);
  ASSERT_TRUE(h->next.has_value()) << h->next.error().to_string();
  ASSERT_EQ(h->next->outcome, AcquireOutcome::Granted);
  EXPECT_GT(h->next->lease.token, a.token);
  KeyState state = *store_->get("k");
  ASSERT_EQ(state.holders.size(), 1u);
  EXPECT_EQ(state.holders[0].execution.id, "b");
  EXPECT_EQ(state.version, h->next->version);
  EXPECT_EQ(history("k").back().status, ExecutionStatus::Succeeded);  // a's outcome is recorded

  // A stale token frees nothing, and the next in line (c, behind b's live lease) waits on.
  next.execution_id = "c";
  h = store_->release_and_acquire("k", a.token, {.status = ExecutionStatus::Succeeded}, next);
  ASSERT_TRUE(h.has_value()) << h.error().to_string();
  EXPECT_EQ(h->released, LeaseOutcome::Lost);
  EXPECT_EQ(h->next->outcome, AcquireOutcome::Busy);

  next.key = "other";
  h = store_->release_and_acquire("k", h->next->holders.at(0).execution.token, {}, next);
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code(), Code::InvalidArgument);
  EXPECT_EQ(store_->get("k")->holders.size(), 1u) << "a refused handoff released the holder";
}

TEST_P(Queue, BusyAnswerSaysHowManyWaitAhead) {
  Lease a = grant("k", "a");
  queued("k", "b");
  queued("k", "c");
  release(a);
  AcquireRequest req = request("k", "d");
  req.record_skipped = true;
  auto r = store_->acquire(req);
  ASSERT_EQ(r->outcome, AcquireOutcome::Busy);
  EXPECT_GT(r->retry_in, 0ms);
  EXPECT_LE(r->retry_in, 3s);
  if (r->holders.empty()) {  // the freed slot waits for b to ask
    EXPECT_EQ(r->waiting_ahead, 2);
    EXPECT_NE(history("k")[0].reason.find("2 caller(s) waiting"), std::string::npos);
  } else {  // the release granted it to b, first in line (Store::acquire allows it)
    EXPECT_EQ(r->holders.at(0).execution.id, "b");
    EXPECT_EQ(r->waiting_ahead, 1);
    EXPECT_NE(history("k")[0].reason.find("held by execution b"), std::string::npos);
  }
  EXPECT_EQ(queued("k", "c"), AcquireOutcome::Busy);
  EXPECT_EQ(queued("k", "b"), AcquireOutcome::Granted);
}

TEST_P(Queue, ADeadWaitersPlaceLapses) {
  Lease a = grant("k", "a");
  EXPECT_EQ(queued("k", "dead"), AcquireOutcome::Busy);
  release(a);
  EXPECT_EQ(try_acquire("k", "x"), AcquireOutcome::Busy);
  env_.clock->advance(3s);  // "dead" never came back to renew its place
  EXPECT_EQ(try_acquire("k", "x"), AcquireOutcome::Granted);
}

TEST_P(Queue, AskingAgainKeepsThePlace) {
  Lease a = grant("k", "a", 1);
  EXPECT_EQ(queued("k", "b"), AcquireOutcome::Busy);
  for (int i = 0; i < 4; ++i) {
    env_.clock->advance(2s);
    ASSERT_EQ(*store_->renew("k", a.token, 10s), LeaseOutcome::Ok);
    EXPECT_EQ(queued("k", "b"), AcquireOutcome::Busy);  // renews b's place
  }
  EXPECT_EQ(queued("k", "c"), AcquireOutcome::Busy);
  release(a);
  EXPECT_EQ(queued("k", "c"), AcquireOutcome::Busy);
  EXPECT_EQ(queued("k", "b"), AcquireOutcome::Granted);
}

TEST_P(Queue, LeavingTheQueueLetsTheNextOneGoAndWakesWaiters) {
  Lease a = grant("k", "a");
  queued("k", "b");
  queued("k", "c");
  release(a);
  std::int64_t version = store_->get("k")->version;
  ASSERT_TRUE(store_->leave_queue("k", "b").is_ok());
  EXPECT_GT(store_->get("k")->version, version);
  EXPECT_EQ(queued("k", "c"), AcquireOutcome::Granted);
  EXPECT_TRUE(store_->leave_queue("k", "nobody").is_ok());
}

TEST_P(Queue, WithALimitTheFirstLimitInLineMayGo) {
  if (GetParam().one_per_key) {
    GTEST_SKIP() << GetParam().name << " takes limit 1 alone";
  }
  Lease a = grant("k", "a", 2);
  Lease b = grant("k", "b", 2);
  queued("k", "c", 2);
  queued("k", "d", 2);
  queued("k", "e", 2);
  release(a);
  release(b);
  EXPECT_EQ(queued("k", "e", 2), AcquireOutcome::Busy);
  EXPECT_EQ(queued("k", "d", 2), AcquireOutcome::Granted);  // second in line, two free slots
  EXPECT_EQ(queued("k", "c", 2), AcquireOutcome::Granted);
  EXPECT_EQ(queued("k", "e", 2), AcquireOutcome::Busy);
}

TEST_P(Queue, GetListsTheLivePlacesInLineOrder) {
  using Ids = std::vector<std::string>;
  Lease a = grant("k", "a");
  EXPECT_EQ(store_->get("k")->queue, Ids{});
  EXPECT_EQ(queued("k", "b"), AcquireOutcome::Busy);
  env_.clock->advance(2s);
  EXPECT_EQ(queued("k", "c"), AcquireOutcome::Busy);
  EXPECT_EQ(store_->get("k")->queue, (Ids{"b", "c"}));
  env_.clock->advance(1s);  // b's place lapses (3 s without asking again); c's has 2 s left
  ASSERT_EQ(*store_->renew("k", a.token, 10s), LeaseOutcome::Ok);
  EXPECT_EQ(store_->get("k")->queue, Ids{"c"});
  EXPECT_EQ(queued("k", "b"), AcquireOutcome::Busy);  // back, at the tail
  EXPECT_EQ(store_->get("k")->queue, (Ids{"c", "b"}));
  release(a);
  EXPECT_EQ(queued("k", "c"), AcquireOutcome::Granted);
  EXPECT_EQ(store_->get("k")->queue, Ids{"b"});  // a granted waiter leaves the line
  EXPECT_EQ(store_->get("other")->queue, Ids{});
}

INSTANTIATE_TEST_SUITE_P(Stores, Queue, ::testing::ValuesIn(all_stores()),
                         [](const auto& p) { return p.param.name; });

}  // namespace
}  // namespace aec::testing
