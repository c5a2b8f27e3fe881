// The store conformance suite: the semantics of DESIGN.md's store interface, for every store.
#include <set>

#include "tests/conformance/conformance_fixture.h"

namespace aec::testing {
namespace {

TEST_P(Conformance, FirstGrantGetsTokenOneAndASecondCallerIsBusy) {
  Lease a = grant("etl/daily", "e1");
  EXPECT_EQ(a.token, 1);
  EXPECT_EQ(a.key, "etl/daily");
  EXPECT_EQ(a.execution_id, "e1");
  auto busy = store_->acquire(request("etl/daily", "e2"));
  ASSERT_TRUE(busy.has_value());
  EXPECT_EQ(busy->outcome, AcquireOutcome::Busy);
  ASSERT_EQ(busy->holders.size(), 1u);
  EXPECT_EQ(busy->holders[0].execution.id, "e1");
  EXPECT_EQ(busy->holders[0].execution.token, 1);
  EXPECT_EQ(busy->holders[0].execution.owner.host, "h1");
  EXPECT_GT(busy->retry_in, 0ms);
  EXPECT_LE(busy->retry_in, 10s);
}

TEST_P(Conformance, TokensStrictlyIncreaseAcrossReleases) {
  std::int64_t last = 0;
  for (int i = 0; i < 5; ++i) {
    Lease l = grant("k", "e" + std::to_string(i));
    EXPECT_GT(l.token, last);
    last = l.token;
    EXPECT_EQ(release(l), LeaseOutcome::Ok);
  }
}

TEST_P(Conformance, KeysAreIndependent) {
  Lease a = grant("team/a", "e1");
  Lease b = grant("team/b", "e2");
  EXPECT_EQ(a.token, 1);
  EXPECT_EQ(b.token, 1);
}

TEST_P(Conformance, LimitAllowsThatManyHoldersWithDistinctTokens) {
  if (GetParam().one_per_key) {
    GTEST_SKIP() << GetParam().name << " takes limit 1 alone";
  }
  std::set<std::int64_t> tokens;
  for (int i = 0; i < 3; ++i) {
    tokens.insert(grant("k", "e" + std::to_string(i), 3).token);
  }
  EXPECT_EQ(tokens.size(), 3u);
  EXPECT_EQ(try_acquire("k", "e4", 3), AcquireOutcome::Busy);
  auto state = store_->get("k");
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->holders.size(), 3u);
}

TEST_P(Conformance, ExpiredLeaseIsTakenOverAndRecordedLost) {
  Lease old = grant("k", "old");
  env_.clock->advance(10s + 1ms);
  Lease fresh = grant("k", "new");
  EXPECT_GT(fresh.token, old.token);
  auto h = history("k");
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[1].id, "old");
  EXPECT_EQ(h[1].status, ExecutionStatus::Lost);
  EXPECT_TRUE(h[1].ended_at.has_value());
}

TEST_P(Conformance, StaleTokenCannotRenewOrReleaseANewerLease) {
  Lease old = grant("k", "old");
  env_.clock->advance(11s);
  Lease fresh = grant("k", "new");
  auto renewed = store_->renew("k", old.token, 10s);
  ASSERT_TRUE(renewed.has_value());
  EXPECT_EQ(*renewed, LeaseOutcome::Lost);
  EXPECT_EQ(release(old), LeaseOutcome::Lost);
  // The newer lease is untouched: still held, still renewable.
  EXPECT_EQ(try_acquire("k", "third"), AcquireOutcome::Busy);
  EXPECT_EQ(*store_->renew("k", fresh.token, 10s), LeaseOutcome::Ok);
  EXPECT_EQ(history("k")[1].status, ExecutionStatus::Lost);  // "old" stays Lost
}

TEST_P(Conformance, ExpiredButUnclaimedLeaseCannotBeRenewed) {
  Lease l = grant("k", "e1");
  env_.clock->advance(10s);
  EXPECT_EQ(*store_->renew("k", l.token, 10s), LeaseOutcome::Lost);
  EXPECT_EQ(release(l), LeaseOutcome::Lost);
  EXPECT_EQ(history("k")[0].status, ExecutionStatus::Lost);
}

TEST_P(Conformance, RenewExtendsFromTheStoresNow) {
  Lease l = grant("k", "e1");
  env_.clock->advance(9s);
  EXPECT_EQ(*store_->renew("k", l.token, 10s), LeaseOutcome::Ok);
  env_.clock->advance(9s);  // 18 s after the grant, 9 s after the renewal
  EXPECT_EQ(try_acquire("k", "e2"), AcquireOutcome::Busy);
  env_.clock->advance(1s + 1ms);
  EXPECT_EQ(try_acquire("k", "e3"), AcquireOutcome::Granted);
}

TEST_P(Conformance, AWallClockStepChangesNoLease) {
  grant("k", "e1");
  env_.clock->step_wall(2h);
  EXPECT_EQ(try_acquire("k", "e2"), AcquireOutcome::Busy);
  env_.clock->step_wall(-4h);
  EXPECT_EQ(try_acquire("k", "e3"), AcquireOutcome::Busy);
  env_.clock->advance(10s);
  EXPECT_EQ(try_acquire("k", "e4"), AcquireOutcome::Granted);
}

TEST_P(Conformance, RenewAfterReleaseIsLost) {
  Lease l = grant("k", "e1");
  EXPECT_EQ(release(l), LeaseOutcome::Ok);
  EXPECT_EQ(*store_->renew("k", l.token, 10s), LeaseOutcome::Lost);
  EXPECT_EQ(release(l), LeaseOutcome::Lost);  // a retried release changes nothing
  EXPECT_EQ(history("k")[0].status, ExecutionStatus::Succeeded);
}

TEST_P(Conformance, ReleaseRecordsOutcomeAndExitCode) {
  Lease a = grant("k", "ok");
  release(a, ExecutionStatus::Succeeded, 0);
  Lease b = grant("k", "bad");
  release(b, ExecutionStatus::Failed, 3);
  auto h = history("k");
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].id, "bad");
  EXPECT_EQ(h[0].status, ExecutionStatus::Failed);
  EXPECT_EQ(h[0].exit_code, 3);
  EXPECT_EQ(h[1].status, ExecutionStatus::Succeeded);
  EXPECT_EQ(h[1].exit_code, 0);
  EXPECT_EQ(h[1].labels.at("team"), "data");
  EXPECT_EQ(h[1].owner.pid, 7);
  EXPECT_EQ(h[1].started_at, env_.clock->system_now());
}

TEST_P(Conformance, OnceReportsDoneAfterASuccessOnly) {
  AcquireRequest req = request("k", "e1");
  req.once = true;
  auto first = store_->acquire(req);
  ASSERT_EQ(first->outcome, AcquireOutcome::Granted);
  release(first->lease, ExecutionStatus::Failed, 1);
  req.execution_id = "e2";
  auto second = store_->acquire(req);
  ASSERT_EQ(second->outcome, AcquireOutcome::Granted);  // a failure does not count as done
  release(second->lease);
  req.execution_id = "e3";
  auto third = store_->acquire(req);
  ASSERT_EQ(third->outcome, AcquireOutcome::Done);
  ASSERT_TRUE(third->done_by.has_value());
  EXPECT_EQ(third->done_by->id, "e2");
  auto state = store_->get("k");
  EXPECT_TRUE(state->holders.empty());
}

TEST_P(Conformance, SkippedRunsAreRecordedOnlyWhenAsked) {
  Lease l = grant("k", "holder");
  EXPECT_EQ(try_acquire("k", "quiet"), AcquireOutcome::Busy);
  AcquireRequest req = request("k", "loud");
  req.record_skipped = true;
  EXPECT_EQ(store_->acquire(req)->outcome, AcquireOutcome::Busy);
  auto h = history("k");
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].id, "loud");
  EXPECT_EQ(h[0].status, ExecutionStatus::Skipped);
  EXPECT_NE(h[0].reason.find("holder"), std::string::npos) << h[0].reason;
  EXPECT_EQ(h[0].token, 0);
}

TEST_P(Conformance, GetReportsHoldersLastEndedAndVersion) {
  auto empty = store_->get("k");
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->version, 0);
  EXPECT_TRUE(empty->holders.empty());
  Lease l = grant("k", "e1");
  auto held = store_->get("k");
  ASSERT_EQ(held->holders.size(), 1u);
  EXPECT_EQ(held->holders[0].execution.status, ExecutionStatus::Running);
  EXPECT_EQ(held->holders[0].expires_in, 10s);
  EXPECT_EQ(held->last_token, 1);
  EXPECT_GT(held->version, 0);
  env_.clock->advance(2s);
  ASSERT_EQ(*store_->renew("k", l.token, 10s), LeaseOutcome::Ok);
  auto renewed = store_->get("k");
  EXPECT_EQ(renewed->version, held->version);  // renewals do not move the version
  release(l);
  auto released = store_->get("k");
  EXPECT_GT(released->version, held->version);
  EXPECT_TRUE(released->holders.empty());
  ASSERT_TRUE(released->last_ended.has_value());
  EXPECT_EQ(released->last_ended->id, "e1");
}

TEST_P(Conformance, GetLeavesOutExpiredLeasesWithoutWriting) {
  grant("k", "e1");
  std::int64_t version = store_->get("k")->version;
  env_.clock->advance(10s);
  auto state = store_->get("k");
  ASSERT_TRUE(state.has_value());
  EXPECT_TRUE(state->holders.empty());
  EXPECT_EQ(state->version, version);  // a read: nothing reaped, nothing written
}

TEST_P(Conformance, ListShowsAnExpiredLeaseAsLostWithoutWriting) {
  grant("k", "e1");
  std::int64_t version = store_->get("k")->version;
  env_.clock->advance(10s);
  auto lost = store_->list({.statuses = {ExecutionStatus::Lost}});
  ASSERT_TRUE(lost.has_value());
  ASSERT_EQ(lost->size(), 1u);
  EXPECT_EQ((*lost)[0].id, "e1");
  EXPECT_TRUE(store_->list({.statuses = {ExecutionStatus::Running}})->empty());
  EXPECT_EQ(store_->get("k")->version, version);
}

TEST_P(Conformance, ListFiltersByKeyPrefixAndStatusNewestFirst) {
  release(grant("a/x", "1"));
  release(grant("a/y", "2"), ExecutionStatus::Failed, 1);
  release(grant("b/z", "3"));
  Lease running = grant("a/x", "4");
  auto by_prefix = store_->list({.prefix = "a/"});
  ASSERT_TRUE(by_prefix.has_value());
  ASSERT_EQ(by_prefix->size(), 3u);
  EXPECT_EQ((*by_prefix)[0].id, "4");
  EXPECT_EQ((*by_prefix)[2].id, "1");
  auto failed = store_->list({.statuses = {ExecutionStatus::Failed}});
  ASSERT_EQ(failed->size(), 1u);
  EXPECT_EQ((*failed)[0].id, "2");
  auto limited = store_->list({.limit = 2});
  ASSERT_EQ(limited->size(), 2u);
  EXPECT_EQ((*limited)[0].id, "4");
  auto by_key = store_->list({.key = "a/x", .statuses = {ExecutionStatus::Running}});
  ASSERT_EQ(by_key->size(), 1u);
  EXPECT_EQ((*by_key)[0].token, running.token);
}

TEST_P(Conformance, ListPagesWithOffsetAfterFiltering) {
  for (int i = 0; i < 5; ++i) {
    release(grant("p/k", "p" + std::to_string(i)));
    release(grant("q/k", "q" + std::to_string(i)));
  }
  auto page2 = store_->list({.prefix = "p/", .limit = 2, .offset = 2});
  ASSERT_TRUE(page2.has_value()) << page2.status().to_string();
  ASSERT_EQ(page2->size(), 2u);
  EXPECT_EQ((*page2)[0].id, "p2");  // newest first: p4 p3 | p2 p1 | p0
  EXPECT_EQ((*page2)[1].id, "p1");
  auto last = store_->list({.prefix = "p/", .limit = 2, .offset = 4});
  ASSERT_EQ(last->size(), 1u);
  EXPECT_EQ((*last)[0].id, "p0");
  EXPECT_TRUE(store_->list({.prefix = "p/", .offset = 5})->empty());
}

TEST_P(Conformance, ForceReleaseCancelsHoldersAndRecordsWho) {
  if (GetParam().one_per_key) {
    GTEST_SKIP() << GetParam().name << " takes limit 1 alone";
  }
  Lease a = grant("k", "e1", 2);
  Lease b = grant("k", "e2", 2);
  auto r = store_->force_release("k", "stuck job", {.host = "ops", .pid = 1, .user = "alice"});
  ASSERT_TRUE(r.has_value()) << r.status().to_string();
  EXPECT_EQ(r->released.size(), 2u);
  for (const Execution& e : history("k")) {
    EXPECT_EQ(e.status, ExecutionStatus::Cancelled);
    EXPECT_NE(e.reason.find("alice"), std::string::npos);
    EXPECT_NE(e.reason.find("stuck job"), std::string::npos);
  }
  EXPECT_EQ(*store_->renew("k", a.token, 10s), LeaseOutcome::Lost);
  EXPECT_EQ(release(b), LeaseOutcome::Lost);
  EXPECT_GT(grant("k", "e3").token, b.token);
}

TEST_P(Conformance, PurgeDeletesOldHistoryButNeverLiveLeasesOrCounters) {
  release(grant("k", "old1"));
  release(grant("k", "old2"), ExecutionStatus::Failed, 2);
  env_.clock->advance(1h);
  grant("other", "live");
  auto r = store_->purge({.older_than = 30min, .statuses = {ExecutionStatus::Succeeded}});
  ASSERT_TRUE(r.has_value()) << r.status().to_string();
  EXPECT_EQ(r->executions_deleted, 1);
  ASSERT_EQ(history("k").size(), 1u);
  EXPECT_EQ(history("k")[0].id, "old2");
  auto all = store_->purge({.older_than = 0ms, .batch_size = 1});
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->executions_deleted, 1);
  EXPECT_TRUE(history("k").empty());
  EXPECT_EQ(history("other").size(), 1u);  // the live lease's execution stays
  EXPECT_EQ(try_acquire("other", "x"), AcquireOutcome::Busy);
  EXPECT_EQ(grant("k", "after").token, 3);  // the counter survived the purge
}

TEST_P(Conformance, PurgeReapsExpiredLeases) {
  grant("k", "e1");
  env_.clock->advance(11s);
  auto r = store_->purge({.older_than = 1h});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->leases_expired, 1);
  EXPECT_EQ(history("k")[0].status, ExecutionStatus::Lost);
}

TEST_P(Conformance, InvalidArgumentsChangeNothing) {
  auto code = [](const auto& r) { return r.status().code(); };
  EXPECT_EQ(code(store_->acquire(request("", "e"))), Code::InvalidArgument);
  EXPECT_EQ(code(store_->acquire(request("a\nb", "e"))), Code::InvalidArgument);
  EXPECT_EQ(code(store_->acquire(request(std::string(513, 'k'), "e"))), Code::InvalidArgument);
  EXPECT_EQ(code(store_->acquire(request("k", ""))), Code::InvalidArgument);
  EXPECT_EQ(code(store_->acquire(request("k", "e", 0))), Code::InvalidArgument);
  AcquireRequest zero_ttl = request("k", "e");
  zero_ttl.ttl = 0ms;
  EXPECT_EQ(code(store_->acquire(zero_ttl)), Code::InvalidArgument);
  Lease l = grant("held", "h");
  EXPECT_EQ(code(store_->renew("held", 0, 10s)), Code::InvalidArgument);
  EXPECT_EQ(code(store_->release("held", l.token, {.status = ExecutionStatus::Running})),
            Code::InvalidArgument);
  EXPECT_EQ(code(store_->release("held", l.token, {.status = ExecutionStatus::Skipped})),
            Code::InvalidArgument);
  auto all = store_->list({});
  ASSERT_EQ(all->size(), 1u);  // only the one valid grant
  EXPECT_EQ((*all)[0].status, ExecutionStatus::Running);
}

TEST_P(Conformance, TokensNeverRepeatAcrossRestartsAndPurges) {
  if (!GetParam().durable) {
    GTEST_SKIP() << GetParam().name << " keeps nothing across restarts";
  }
  Lease a = grant("k", "e1");
  release(a);
  ASSERT_TRUE(store_->purge({.older_than = 0ms}).has_value());
  reopen();
  Lease b = grant("k", "e2");
  EXPECT_GT(b.token, a.token);
  EXPECT_EQ(try_acquire("k", "e3"), AcquireOutcome::Busy);  // b survives another restart
  reopen();
  EXPECT_EQ(try_acquire("k", "e4"), AcquireOutcome::Busy);
}

TEST_P(Conformance, RebootFreesEveryLeaseAndTokensStayAbove) {
  if (!GetParam().boot_aware) {
    GTEST_SKIP() << GetParam().name << " does not measure leases on the host's boot clock";
  }
  Lease before = grant("k", "e1");
  env_.host->reboot();
  reopen();
  Lease after = grant("k", "e2");
  EXPECT_GT(after.token, before.token);
  EXPECT_EQ(history("k")[1].status, ExecutionStatus::Lost);
}

INSTANTIATE_TEST_SUITE_P(Stores, Conformance, ::testing::ValuesIn(all_stores()),
                         [](const auto& p) { return p.param.name; });

}  // namespace
}  // namespace aec::testing
