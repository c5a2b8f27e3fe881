// What only the etcd store promises, against the real 3-member cluster of
// scripts/dev-servers.sh, on the real clock: tokens survive purge, a refused acquire writes
// nothing, etcd's own lease TTL ends a lease whose holder stopped renewing, a wait is woken by a
// change made through another Store object, malformed URLs are refused in one line, and a lease
// outlives the kill -9 of the cluster's leader without a second holder being let in, a release
// wakes only the next caller parked in line, a stale cached snapshot never grants a held key, a
// reused etcd lease is reset to its full TTL, and a grant made after a read that stalled (a
// paused member) does not reach its caller already expired.
#include <chrono>
#include <future>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <aec/open_store.h>

#include "stores/etcd/etcd_key_state.h"
#include "stores/etcd/etcd_records.h"
#include "stores/etcd/txn_ops.h"
#include "tests/fault/fault_proxy.h"
#include "tests/stores/etcd_test_cluster.h"

namespace aec::testing {
namespace {

using namespace std::chrono_literals;

class EtcdStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "gRPC is not built with ThreadSanitizer: its synchronisation is invisible";
#endif
    auto cluster = find_etcd_cluster();
    if (!cluster) {
      GTEST_SKIP() << no_etcd_cluster();
    }
    cluster_ = *cluster;
    auto client = etcd::Client::connect(cluster_.endpoints, {.rpc_timeout = 2s});
    ASSERT_TRUE(client.has_value()) << client.error().to_string();
    client_ = std::move(*client);
    prefix_ = fmt::format("aec-test/etcd-store/{:x}/", std::random_device{}());
    store_ = open();
    ASSERT_NE(store_, nullptr);
  }

  void TearDown() override {
    if (killed_) {
      EXPECT_TRUE(restart_member(cluster_, *killed_, *client_).is_ok());
    }
    if (client_ != nullptr) {
      (void)client_->delete_range(prefix_, etcd::prefix_end(prefix_));
    }
  }

  std::string url() const {
    std::string endpoints;
    for (const std::string& e : cluster_.endpoints) {
      endpoints += (endpoints.empty() ? "" : ",") + e;
    }
    return fmt::format("etcd://{}?prefix={}&rpc_timeout=3s", endpoints, prefix_);
  }

  std::unique_ptr<Store> open() {
    auto store = open_store(url());
    EXPECT_TRUE(store.has_value()) << store.error().to_string();
    return store ? std::move(*store) : nullptr;
  }

  AcquireRequest request(const std::string& key, const std::string& id, milliseconds ttl = 10s) {
    return {.key = key, .execution_id = id, .ttl = ttl, .owner = {.host = "h", .pid = 1}};
  }

  std::int64_t revision() {
    auto r = client_->range(prefix_ + "none");
    EXPECT_TRUE(r.has_value());
    return r ? r->header().revision() : -1;
  }

  EtcdCluster cluster_;
  std::unique_ptr<etcd::Client> client_;
  std::string prefix_;
  std::unique_ptr<Store> store_;
  std::optional<EtcdMember> killed_;
};

TEST_F(EtcdStoreTest, TokensStrictlyIncreaseAcrossPurge) {
  std::int64_t last = 0;
  for (int i = 0; i < 4; ++i) {
    auto r = store_->acquire(request("k", fmt::format("e{}", i)));
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    ASSERT_EQ(r->outcome, AcquireOutcome::Granted);
    EXPECT_EQ(r->lease.token, last + 1);
    last = r->lease.token;
    ASSERT_EQ(*store_->release("k", last, {}), LeaseOutcome::Ok);
    auto purged = store_->purge({.older_than = 0ms});
    ASSERT_TRUE(purged.has_value()) << purged.error().to_string();
    EXPECT_EQ(purged->executions_deleted, 1);
    EXPECT_TRUE(store_->list({.key = "k"})->empty());
  }
  EXPECT_EQ(store_->get("k")->last_token, last);
}

TEST_F(EtcdStoreTest, ARefusedAcquireWritesNothing) {
  auto held = store_->acquire(request("k", "holder"));
  ASSERT_TRUE(held.has_value()) << held.error().to_string();
  ASSERT_EQ(held->outcome, AcquireOutcome::Granted);
  std::int64_t before = revision();
  for (int i = 0; i < 30; ++i) {
    auto busy = store_->acquire(request("k", fmt::format("e{}", i)));
    ASSERT_TRUE(busy.has_value()) << busy.error().to_string();
    ASSERT_EQ(busy->outcome, AcquireOutcome::Busy);
    ASSERT_EQ(busy->holders.size(), 1u);
    EXPECT_GT(busy->retry_in, 0ms);
    EXPECT_LE(busy->retry_in, 10s);
  }
  EXPECT_EQ(revision(), before);
}

// Joining the line is one put of the place, compared against nothing and moving no counter: a
// join numbered from the key's sequence counter had to win it against every grant, and starved
// while other clients handed a hot key back and forth (bench/RESULTS.md, 2026-12-07). The line
// is ordered by when each place was created.
TEST_F(EtcdStoreTest, JoiningTheLineMovesNoCounter) {
  auto held = store_->acquire(request("k", "holder"));
  ASSERT_TRUE(held.has_value()) << held.error().to_string();
  ASSERT_EQ(held->outcome, AcquireOutcome::Granted);
  const etcd::Layout layout(prefix_);
  auto counter = [&] {
    auto r = client_->range(layout.seq("k"));
    EXPECT_TRUE(r.has_value() && r->kvs_size() == 1);
    return r && r->kvs_size() == 1 ? r->kvs(0).version() : -1;
  };
  const std::int64_t before = counter();
  for (const char* id : {"w1", "w2", "w3"}) {
    AcquireRequest req = request("k", id);
    req.queue = true;
    auto busy = store_->acquire(req);
    ASSERT_TRUE(busy.has_value()) << busy.error().to_string();
    ASSERT_EQ(busy->outcome, AcquireOutcome::Busy);
  }
  EXPECT_EQ(counter(), before) << "a join moved the sequence counter";
  auto places = client_->range(layout.places("k"), etcd::prefix_end(layout.places("k")));
  ASSERT_TRUE(places.has_value());
  EXPECT_EQ(places->kvs_size(), 3);
  EXPECT_EQ(store_->get("k")->queue, (std::vector<std::string>{"w1", "w2", "w3"}));
  ASSERT_EQ(*store_->release("k", held->lease.token, {}), LeaseOutcome::Ok);
  AcquireRequest first = request("k", "w1");
  first.queue = true;
  EXPECT_EQ(store_->acquire(first)->outcome, AcquireOutcome::Granted);
}

// What a guarded write that committed leaves as the key's snapshot (the store decides its next
// call on it) is what a read then finds: the meta, counters and leases its compares held and
// its writes changed, worked out without reading them back, and the line read back (a place
// joins without failing the compares).
TEST_F(EtcdStoreTest, AWritesSnapshotIsWhatAReadThenFinds) {
  auto held = store_->acquire(request("k", "holder"));
  ASSERT_TRUE(held.has_value()) << held.error().to_string();
  ASSERT_EQ(held->outcome, AcquireOutcome::Granted);
  const etcd::Layout layout(prefix_);
  auto expect_same = [](const etcd::KeySnapshot& a, const etcd::KeySnapshot& b) {
    EXPECT_EQ(a.revision, b.revision);
    EXPECT_EQ(a.exists, b.exists);
    EXPECT_EQ(a.version, b.version);
    EXPECT_EQ(a.meta_mod, b.meta_mod);
    EXPECT_EQ(etcd::to_text(a.meta), etcd::to_text(b.meta));
    EXPECT_EQ(a.last_token, b.last_token);
    EXPECT_EQ(a.last_seq, b.last_seq);
    ASSERT_EQ(a.leases.size(), b.leases.size());
    for (std::size_t i = 0; i < a.leases.size(); ++i) {
      EXPECT_EQ(a.leases[i].etcd_key, b.leases[i].etcd_key);
      EXPECT_EQ(a.leases[i].token, b.leases[i].token);
      EXPECT_EQ(a.leases[i].lease_id, b.leases[i].lease_id);
      EXPECT_EQ(a.leases[i].mod_revision, b.leases[i].mod_revision);
      EXPECT_EQ(etcd::to_text(a.leases[i].value), etcd::to_text(b.leases[i].value));
    }
    ASSERT_EQ(a.places.size(), b.places.size());
    for (std::size_t i = 0; i < a.places.size(); ++i) {
      EXPECT_EQ(a.places[i].etcd_key, b.places[i].etcd_key);
      EXPECT_EQ(a.places[i].seq, b.places[i].seq);
    }
  };
  auto snap = etcd::read_snapshot(*client_, layout, "k");
  ASSERT_TRUE(snap.has_value()) << snap.error().to_string();
  ASSERT_EQ(snap->leases.size(), 1u);
  // Someone joins the line after the snapshot.
  AcquireRequest waiter = request("k", "waiter");
  waiter.queue = true;
  ASSERT_EQ(open()->acquire(waiter)->outcome, AcquireOutcome::Busy);

  // A release: the history entry rewritten, the lease deleted, meta put.
  etcd::WritePlan release = etcd::WritePlan::guarded(layout, *snap);
  const etcd::LeaseEntry& l = snap->leases[0];
  Execution ended = l.value.execution;
  ended.status = ExecutionStatus::Succeeded;
  release.end(layout, l.token, l.value.seq, ended);
  release.erase(l.etcd_key);
  release.finish(layout, "k");
  ASSERT_TRUE(*etcd::commit(*client_, release));
  auto read = etcd::read_snapshot(*client_, layout, "k");
  ASSERT_TRUE(read.has_value()) << read.error().to_string();
  ASSERT_TRUE(release.after.has_value());
  EXPECT_TRUE(read->leases.empty());
  EXPECT_EQ(read->places.size(), 1u);
  expect_same(*release.after, *read);

  // A grant on that snapshot: both counters, a history entry, a lease on an etcd lease, meta.
  auto grant_lease = client_->lease_grant(10s);
  ASSERT_TRUE(grant_lease.has_value()) << grant_lease.error().to_string();
  etcd::WritePlan grant = etcd::WritePlan::guarded(layout, *release.after);
  const std::int64_t token = read->last_token + 1;
  const std::int64_t seq = read->last_seq + 1;
  Execution e{.id = "next", .key = "k", .token = token, .status = ExecutionStatus::Running};
  grant.put(layout.token("k"), std::to_string(token));
  grant.put(layout.entry("k", seq), etcd::to_text(e));
  grant.put(layout.lease("k", token), etcd::to_text(etcd::LeaseValue{.execution = e, .seq = seq}),
            grant_lease->id());
  grant.put(layout.seq("k"), std::to_string(seq));
  grant.meta.running.emplace_back(token, seq);
  grant.meta_changed = true;
  grant.finish(layout, "k");
  ASSERT_TRUE(*etcd::commit(*client_, grant));
  read = etcd::read_snapshot(*client_, layout, "k");
  ASSERT_TRUE(read.has_value()) << read.error().to_string();
  ASSERT_TRUE(grant.after.has_value());
  EXPECT_EQ(read->leases.size(), 1u);
  EXPECT_EQ(read->last_token, token);
  expect_same(*grant.after, *read);
}

// A release right after its grant is written on the snapshot the grant left, without reading
// first: it must still see what another client did meanwhile (here, a forced release), and
// report the lease lost rather than overwrite the record.
TEST_F(EtcdStoreTest, AReleaseRightAfterItsGrantSeesAForcedRelease) {
  std::unique_ptr<Store> other = open();
  ASSERT_NE(other, nullptr);
  auto held = store_->acquire(request("k", "holder"));
  ASSERT_TRUE(held.has_value()) << held.error().to_string();
  ASSERT_EQ(held->outcome, AcquireOutcome::Granted);
  auto forced = other->force_release("k", "test", {.host = "ops"});
  ASSERT_TRUE(forced.has_value()) << forced.error().to_string();
  ASSERT_EQ(forced->released.size(), 1u);
  EXPECT_EQ(*store_->release("k", held->lease.token, {.status = ExecutionStatus::Succeeded}),
            LeaseOutcome::Lost);
  auto history = store_->list({.key = "k"});
  ASSERT_TRUE(history.has_value()) << history.error().to_string();
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].status, ExecutionStatus::Cancelled);
  // And a release with nothing in between is one write that succeeds.
  auto again = store_->acquire(request("k", "again"));
  ASSERT_EQ(again->outcome, AcquireOutcome::Granted);
  EXPECT_EQ(*store_->release("k", again->lease.token, {.status = ExecutionStatus::Succeeded}),
            LeaseOutcome::Ok);
  EXPECT_EQ(store_->list({.key = "k"})->front().status, ExecutionStatus::Succeeded);
  // A waiter that joined the line after the grant does not stop that write, and goes next.
  auto third = store_->acquire(request("k", "third"));
  ASSERT_EQ(third->outcome, AcquireOutcome::Granted);
  AcquireRequest waiter = request("k", "waiter");
  waiter.queue = true;
  ASSERT_EQ(other->acquire(waiter)->outcome, AcquireOutcome::Busy);
  EXPECT_EQ(*store_->release("k", third->lease.token, {}), LeaseOutcome::Ok);
  auto next = other->acquire(waiter);
  ASSERT_TRUE(next.has_value()) << next.error().to_string();
  EXPECT_EQ(next->outcome, AcquireOutcome::Granted);
  EXPECT_EQ(next->lease.token, third->lease.token + 1);
}

TEST_F(EtcdStoreTest, AnAbandonedLeaseEndsWithItsEtcdLease) {
  auto old = store_->acquire(request("k", "old", 1s));
  ASSERT_TRUE(old.has_value()) << old.error().to_string();
  ASSERT_EQ(old->outcome, AcquireOutcome::Granted);
  std::int64_t token = 0;
  // The holder never renews: etcd deletes its lease key after the TTL (its minimum, ~2 s).
  EXPECT_TRUE(eventually(
      [&] {
        auto r = store_->acquire(request("k", "new"));
        if (r && r->outcome == AcquireOutcome::Granted) {
          token = r->lease.token;
          return true;
        }
        return false;
      },
      20s));
  EXPECT_GT(token, old->lease.token);
  auto history = store_->list({.key = "k"});
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[1].id, "old");
  EXPECT_EQ((*history)[1].status, ExecutionStatus::Lost);
  EXPECT_EQ(*store_->renew("k", old->lease.token, 1s), LeaseOutcome::Lost);
}

TEST_F(EtcdStoreTest, AWaitIsWokenByAReleaseThroughAnotherStore) {
  std::unique_ptr<Store> other = open();
  ASSERT_NE(other, nullptr);
  auto held = store_->acquire(request("k", "e1"));
  ASSERT_TRUE(held.has_value()) << held.error().to_string();
  std::int64_t version = store_->get("k")->version;
  auto waiter = std::async(std::launch::async, [&] {
    return other->wait("k", version, real_clock()->monotonic_now() + 30s, {});
  });
  EXPECT_EQ(waiter.wait_for(100ms), std::future_status::timeout);
  ASSERT_EQ(*store_->release("k", held->lease.token, {}), LeaseOutcome::Ok);
  ASSERT_EQ(waiter.wait_for(10s), std::future_status::ready);
  auto seen = waiter.get();
  ASSERT_TRUE(seen.has_value()) << seen.error().to_string();
  EXPECT_GT(*seen, version);
}

// The requests the cluster's members have received from clients: the sum over the members of
// gRPC's count of KV and Lease calls started (each call counted once, by the member it reached).
// -1 when a member did not answer.
std::int64_t requests_served(const EtcdCluster& cluster) {
  std::int64_t sum = 0;
  for (const std::string& endpoint : cluster.endpoints) {
    std::string body;
    CURL* curl = curl_easy_init();
    const std::string url = "http://" + endpoint + "/metrics";
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 5L);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(
        curl, CURLOPT_WRITEFUNCTION, +[](char* p, size_t, size_t n, void* out) {
          static_cast<std::string*>(out)->append(p, n);
          return n;
        });
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_cleanup(curl);
    if (rc != CURLE_OK) {
      return -1;
    }
    std::istringstream lines(body);
    std::string line;
    while (std::getline(lines, line)) {
      const bool call = line.starts_with("grpc_server_started_total{") &&
                        line.find("grpc_type=\"unary\"") != std::string::npos &&
                        (line.find("grpc_service=\"etcdserverpb.KV\"") != std::string::npos ||
                         line.find("grpc_service=\"etcdserverpb.Lease\"") != std::string::npos);
      if (call) {
        sum += std::stoll(line.substr(line.rfind(' ') + 1));
      }
    }
  }
  return sum;
}

// Twelve callers parked in line (AcquireRequest::park) on one key: each release wakes the next
// in line alone. Grants come in line order, and a handover costs the cluster the same few
// requests however many wait behind (a herd would add a read per waiter). etcd's metrics are
// the witness: the test counts what the cluster received, not what the store says it sent.
TEST_F(EtcdStoreTest, AReleaseWakesOnlyTheNextInLine) {
  constexpr int kWaiters = 12;
  auto held = store_->acquire(request("k", "holder", 60s));
  ASSERT_TRUE(held.has_value()) << held.error().to_string();
  std::unique_ptr<Store> other = open();
  ASSERT_NE(other, nullptr);
  std::vector<std::future<Result<AcquireResult>>> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    AcquireRequest req = request("k", fmt::format("w{}", i), 60s);
    req.queue = true;
    req.queue_ttl = 60s;
    req.park = 60s;
    waiters.push_back(
        std::async(std::launch::async, [&other, req] { return other->acquire(req); }));
    // One at a time, so that the line's order is known.
    ASSERT_TRUE(
        eventually([&] { return store_->get("k")->queue.size() == std::size_t(i) + 1; }, 10s));
  }
  std::int64_t token = held->lease.token;
  std::vector<std::int64_t> costs;
  for (int i = 0; i < kWaiters; ++i) {
    const std::int64_t before = requests_served(cluster_);
    ASSERT_EQ(*store_->release("k", token, {}), LeaseOutcome::Ok);
    ASSERT_EQ(waiters[i].wait_for(10s), std::future_status::ready) << "w" << i;
    auto granted = waiters[i].get();
    ASSERT_TRUE(granted.has_value()) << granted.error().to_string();
    ASSERT_EQ(granted->outcome, AcquireOutcome::Granted) << "w" << i;
    costs.push_back(requests_served(cluster_) - before);
    token = granted->lease.token;
    for (int j = i + 1; j < kWaiters; ++j) {
      EXPECT_EQ(waiters[j].wait_for(0s), std::future_status::timeout) << "w" << j << " too soon";
    }
  }
  ASSERT_EQ(*store_->release("k", token, {}), LeaseOutcome::Ok);
  // With a herd the first handover would cost a read per waiter behind (11) more than the last
  // one; without, they differ by a request or two (a retried commit, a keep-alive's reconnect).
  EXPECT_LT(costs.front(), costs.back() + kWaiters / 2) << fmt::format("{}", fmt::join(costs, " "));
}

// The store decides an acquire on what its own last write read back (one round trip). That
// snapshot goes stale when another client changes the key: the answer must still be the
// cluster's. Here A's snapshot says "free" while B holds the key.
TEST_F(EtcdStoreTest, AStaleSnapshotNeverGrantsAHeldKey) {
  std::unique_ptr<Store> other = open();
  ASSERT_NE(other, nullptr);
  auto first = store_->acquire(request("k", "a1"));
  ASSERT_TRUE(first.has_value()) << first.error().to_string();
  ASSERT_EQ(*store_->release("k", first->lease.token, {}), LeaseOutcome::Ok);
  auto held = other->acquire(request("k", "b1"));
  ASSERT_TRUE(held.has_value()) << held.error().to_string();
  ASSERT_EQ(held->outcome, AcquireOutcome::Granted);
  auto busy = store_->acquire(request("k", "a2"));
  ASSERT_TRUE(busy.has_value()) << busy.error().to_string();
  EXPECT_EQ(busy->outcome, AcquireOutcome::Busy);
  ASSERT_EQ(busy->holders.size(), 1u);
  EXPECT_EQ(busy->holders[0].execution.id, "b1");
  // B's release, then A again: granted, with the next token (not one A's snapshot implied).
  ASSERT_EQ(*other->release("k", held->lease.token, {}), LeaseOutcome::Ok);
  auto again = store_->acquire(request("k", "a3"));
  ASSERT_TRUE(again.has_value()) << again.error().to_string();
  ASSERT_EQ(again->outcome, AcquireOutcome::Granted);
  EXPECT_EQ(again->lease.token, held->lease.token + 1);
  // And a release of a lease another client has since taken over is refused.
  EXPECT_EQ(*store_->release("k", held->lease.token, {}), LeaseOutcome::Lost);
}

// A released lease's etcd lease is reused for the next grant, reset to its full TTL first: the
// new holder's key must live the whole ttl from its grant.
TEST_F(EtcdStoreTest, AReusedEtcdLeaseIsResetToItsFullTtl) {
  auto first = store_->acquire(request("a", "e1", 10s));
  ASSERT_TRUE(first.has_value()) << first.error().to_string();
  auto lease_of = [&](const std::string& key, std::int64_t token) -> std::int64_t {
    auto r = client_->range(prefix_ + "k/" + key + "/l/" + fmt::format("{:020}", token));
    return r && !r->kvs().empty() ? r->kvs(0).lease() : 0;
  };
  const std::int64_t used = lease_of("a", first->lease.token);
  ASSERT_NE(used, 0);
  ASSERT_EQ(*store_->release("a", first->lease.token, {}), LeaseOutcome::Ok);
  // Let the spare lease run down a little, so that a reuse without a reset would show.
  ASSERT_TRUE(eventually(
      [&] {
        auto ttl = client_->lease_time_to_live(used);
        return ttl && ttl->ttl() > 0 && ttl->ttl() <= 8;
      },
      10s));
  auto second = store_->acquire(request("b", "e2", 10s));
  ASSERT_TRUE(second.has_value()) << second.error().to_string();
  EXPECT_EQ(lease_of("b", second->lease.token), used) << "the spare etcd lease was not reused";
  auto ttl = client_->lease_time_to_live(used);
  ASSERT_TRUE(ttl.has_value()) << ttl.error().to_string();
  EXPECT_GE(ttl->ttl(), 9) << "reused without a reset to its full TTL";
}

// T10's stop-leader: a waiter's read that is held up (by a paused member; here by a proxy
// holding its bytes) past the ttl, while the holder's lease lapses, ends in a grant. The lease's
// ttl runs from its etcd lease's grant, after that read: counted from the attempt's start, the
// caller (Control: valid_until = sent + held + ttl) would find it expired on arrival and stop
// its command at once, though etcd keeps it a full TTL.
TEST_F(EtcdStoreTest, AGrantAfterAStalledReadIsNotExpiredOnArrival) {
  const std::string& member = cluster_.endpoints.front();
  const std::size_t colon = member.rfind(':');
  auto proxy =
      fault::FaultProxy::start(member.substr(0, colon), std::stoi(member.substr(colon + 1)));
  ASSERT_TRUE(proxy.has_value()) << proxy.error().to_string();
  auto through = open_store(
      fmt::format("etcd://127.0.0.1:{}?prefix={}&rpc_timeout=5s", (*proxy)->port(), prefix_));
  ASSERT_TRUE(through.has_value()) << through.error().to_string();
  std::unique_ptr<Store> waiter = std::move(*through);
  // Never renewed: lapses after 2 s. (etcd reports a TTL in whole seconds, rounded down: with
  // 2 s the waiter naps a full second before it reads again, and that read is the one held.)
  auto held = store_->acquire(request("k", "holder", 2s));
  ASSERT_TRUE(held.has_value()) << held.error().to_string();
  ASSERT_EQ(held->outcome, AcquireOutcome::Granted);
  AcquireRequest wait = request("k", "waiter", 1s);
  wait.queue = true;
  wait.park = 10s;
  const MonoTime sent = BootClock::now();
  auto asked = std::async(std::launch::async, [&] { return waiter->acquire(wait); });
  std::this_thread::sleep_for(300ms);  // parked in line, napping for a second
  (*proxy)->blackhole();               // its next read waits for the heal, past the lapse
  std::this_thread::sleep_for(3s);
  (*proxy)->pass();
  Result<AcquireResult> granted = asked.get();
  const MonoTime answered = BootClock::now();
  ASSERT_TRUE(granted.has_value()) << granted.error().to_string();
  ASSERT_EQ(granted->outcome, AcquireOutcome::Granted);
  EXPECT_GT(sent + granted->held + granted->lease.ttl, answered)
      << "expired on arrival by its holder's count: held " << granted->held.count() << " ms, "
      << "answered after " << std::chrono::duration_cast<milliseconds>(answered - sent).count()
      << " ms";
  auto renewed = store_->renew("k", granted->lease.token, 1s);
  ASSERT_TRUE(renewed.has_value()) << renewed.error().to_string();
  EXPECT_EQ(*renewed, LeaseOutcome::Ok) << "etcd did not keep the lease";
}

TEST_F(EtcdStoreTest, MalformedUrlsAreRefusedInOneLine) {
  for (std::string bad : {"etcd://", "etcd://host", "etcd://a:1,,b:2", "etcd://user@h:1",
                          "etcd://h:1/path", "etcd://h:1?prefix=", "etcd://h:1?colour=red",
                          "etcd://h:1?dial_timeout=soon", "etcd://h:1?prefix"}) {
    auto store = open_store(bad);
    ASSERT_FALSE(store.has_value()) << bad;
    EXPECT_EQ(store.error().code(), Code::InvalidArgument) << bad;
    EXPECT_EQ(store.error().message().find('\n'), std::string::npos) << bad;
    EXPECT_NE(store.error().message().find("etcd://HOST:PORT"), std::string::npos)
        << store.error().message();
  }
}

TEST_F(EtcdStoreTest, ALeaseOutlivesTheLeadersDeath) {
  if (cluster_.dir.empty()) {
    GTEST_SKIP() << "no pid files (AEC_TEST_SERVERS_ENV): cannot kill the leader";
  }
  auto held = store_->acquire(request("k", "holder", 10s));
  ASSERT_TRUE(held.has_value()) << held.error().to_string();
  ASSERT_EQ(held->outcome, AcquireOutcome::Granted);
  auto lead = leader(*client_, cluster_);
  ASSERT_TRUE(lead.has_value()) << lead.error().to_string();
  ASSERT_TRUE(kill_member(cluster_, *lead).is_ok());
  killed_ = *lead;
  std::unique_ptr<Store> rival = open();
  ASSERT_NE(rival, nullptr);
  bool renewed = false;
  EXPECT_TRUE(eventually(
      [&] {
        auto other = rival->acquire(request("k", "rival"));
        EXPECT_FALSE(other && other->outcome == AcquireOutcome::Granted) << "a second holder";
        auto r = store_->renew("k", held->lease.token, 10s);
        EXPECT_FALSE(r && *r == LeaseOutcome::Lost) << "the lease was lost in the failover";
        renewed = r && *r == LeaseOutcome::Ok;
        return renewed;
      },
      15s));
  EXPECT_TRUE(renewed);
  auto busy = rival->acquire(request("k", "rival"));
  ASSERT_TRUE(busy.has_value()) << busy.error().to_string();
  EXPECT_EQ(busy->outcome, AcquireOutcome::Busy);
  auto released = store_->release("k", held->lease.token, {});
  ASSERT_TRUE(released.has_value()) << released.error().to_string();
  EXPECT_EQ(*released, LeaseOutcome::Ok);
}

}  // namespace
}  // namespace aec::testing
