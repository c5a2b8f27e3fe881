// Replicated aecd: two `aec serve` processes over one shared store (PostgreSQL, or the etcd
// cluster) are interchangeable. Runners spread over both never overlap and are woken by changes
// made through either (the store's change feed, not polling); a client may acquire through one and
// release through the other; killing one replica loses no lease, token or history.
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <aec/open_store.h>

#include "tests/e2e/aecd_process.h"
#include "tests/e2e/e2e_support.h"
#include "tests/support/servers.h"
#include "tests/support/temp_dir.h"

namespace aec::e2e {
namespace {

using namespace std::chrono_literals;
using testing::missing_server;
using testing::server_setting;
using testing::TempDir;

// Recheck interval of the replicas: far longer than a handover through the change feed, so a
// replica that relied on polling for changes made through the other would fail the time bound.
const std::string kRecheck = "10s";

// The shared store of a test, fresh (a schema or prefix of its own) on the server `kind` names;
// nullopt (and `why`) when there is none.
std::optional<std::string> shared_store(const std::string& kind, std::string& why) {
  const std::string setting =
      kind == "postgres" ? "AEC_TEST_POSTGRES_URL" : "AEC_TEST_ETCD_ENDPOINTS";
  std::optional<std::string> server = server_setting(setting);
  if (!server) {
    why = missing_server(setting);
    return std::nullopt;
  }
#if defined(__SANITIZE_THREAD__)
  if (kind == "etcd") {
    why = "gRPC is not built with ThreadSanitizer: its synchronisation is invisible";
    return std::nullopt;
  }
#endif
  const std::string n = std::to_string(std::random_device{}() % 1'000'000'000);
  return kind == "postgres" ? *server + "?schema=e2e_" + n
                            : "etcd://" + *server + "?prefix=e2e-" + n + "/";
}

class Replicas : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string why;
    std::optional<std::string> store = shared_store(GetParam(), why);
    if (!store) {
      GTEST_SKIP() << why;
    }
    store_ = *store;
    a_ = std::make_unique<AecdProcess>(store_, free_port(), dir_.file("a.log"),
                                       std::vector<std::string>{"--recheck-interval", kRecheck});
    b_ = std::make_unique<AecdProcess>(store_, free_port(), dir_.file("b.log"),
                                       std::vector<std::string>{"--recheck-interval", kRecheck});
  }

  std::string path(const std::string& name) const { return dir_.file(name); }
  std::string gate() const { return "while [ ! -e " + path("go") + " ]; do sleep 0.01; done; "; }
  void open_gate() const { std::fclose(std::fopen(path("go").c_str(), "w")); }

  std::vector<std::string> run(const AecdProcess& via, std::vector<std::string> flags,
                               const std::string& script) const {
    std::vector<std::string> args = {"run", "--store", via.url(), "--key", "etl/shared"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), {"--", "sh", "-c", script});
    return args;
  }

  nlohmann::json status(const AecdProcess& via) const {
    Output out = run_aec({"status", "--store", via.url(), "--json", "etl/shared"});
    return nlohmann::json::parse(out.out, nullptr, false);
  }

  // Waits until both replicas together have `n` requests parked in their lines.
  bool await_parked(int n) const {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      double parked = (a_->running() ? a_->metric("aec_waiters") : 0) +
                      (b_->running() ? b_->metric("aec_waiters") : 0);
      if (parked == n) {
        return true;
      }
      std::this_thread::sleep_for(5ms);  // polling a condition
    }
    return false;
  }

  TempDir dir_;
  std::string store_;
  std::unique_ptr<AecdProcess> a_;
  std::unique_ptr<AecdProcess> b_;
};

// Each child checks that no other child is inside (a directory only one can create), then
// appends its fencing token.
std::string guarded(const std::string& dir) {
  return "mkdir " + dir + "/held 2>/dev/null || echo OVERLAP >> " + dir + "/overlap; echo " +
         "$AEC_FENCING_TOKEN >> " + dir + "/tokens; rmdir " + dir + "/held";
}

TEST_P(Replicas, WaitersSpreadOverBothRunOneAtATimeWokenThroughEither) {
  pid_t holder =
      spawn_aec(run(*a_, {}, "touch " + path("started") + "; " + gate()), {}, path("runners.log"));
  ASSERT_TRUE(wait_for_file(path("started"))) << read_file(path("runners.log"));
  const int n = 16;
  std::vector<pid_t> waiters;
  for (int i = 0; i < n; ++i) {
    const AecdProcess& via = i % 2 == 0 ? *a_ : *b_;
    waiters.push_back(spawn_aec(run(via, {"--on-busy", "wait"}, guarded(dir_.path().string())), {},
                                path("runners.log")));
  }
  ASSERT_TRUE(await_parked(n)) << read_file(path("runners.log"));
  auto opened = std::chrono::steady_clock::now();
  open_gate();
  EXPECT_EQ(wait_exit(holder), 0) << read_file(path("runners.log"));
  for (pid_t pid : waiters) {
    EXPECT_EQ(wait_exit(pid), 0) << read_file(path("runners.log"));
  }
  auto took = std::chrono::steady_clock::now() - opened;
  EXPECT_EQ(read_file(path("overlap")), "") << "two held the key at once";
  std::vector<std::string> tokens = read_lines(path("tokens"));
  ASSERT_EQ(tokens.size(), static_cast<std::size_t>(n));
  for (std::size_t i = 1; i < tokens.size(); ++i) {
    EXPECT_GT(std::stoll(tokens[i]), std::stoll(tokens[i - 1])) << "tokens out of order";
  }
  // Half the handovers cross from one replica to the other; through polling alone each would
  // wait for the 10 s recheck.
  EXPECT_LT(took, 40s) << "handovers across replicas were not pushed";
  EXPECT_GT(a_->metric("aec_store_changes_total"), 0);
  EXPECT_GT(b_->metric("aec_store_changes_total"), 0);
}

TEST_P(Replicas, AcquireThroughOneRenewAndReleaseThroughTheOther) {
  auto through_a = open_store(a_->url());
  auto through_b = open_store(b_->url());
  ASSERT_TRUE(through_a.has_value() && through_b.has_value());
  auto granted = (*through_a)->acquire({.key = "etl/shared", .execution_id = "e1", .ttl = 30s});
  ASSERT_TRUE(granted.has_value()) << granted.error().to_string();
  ASSERT_EQ(granted->outcome, AcquireOutcome::Granted);
  auto busy = (*through_b)->acquire({.key = "etl/shared", .execution_id = "e2", .ttl = 30s});
  ASSERT_EQ(busy->outcome, AcquireOutcome::Busy);
  EXPECT_EQ(*(*through_b)->renew("etl/shared", granted->lease.token, 30s), LeaseOutcome::Ok);
  EXPECT_EQ(*(*through_b)->release("etl/shared", granted->lease.token, {}), LeaseOutcome::Ok);
  auto next = (*through_a)->acquire({.key = "etl/shared", .execution_id = "e3", .ttl = 30s});
  ASSERT_EQ(next->outcome, AcquireOutcome::Granted);
  EXPECT_GT(next->lease.token, granted->lease.token);
}

TEST_P(Replicas, KillingOneReplicaLosesNothing) {
  // Held through B; its child keeps running until told, and records its pid.
  std::string held = "echo $$ > " + path("holder.pid") + "; " + gate();
  pid_t holder = spawn_aec(run(*b_, {"--ttl", "4s"}, held), {}, path("holder.log"));
  ASSERT_TRUE(wait_for_file(path("holder.pid"))) << read_file(path("holder.log"));
  // Waiters through A; each checks that the holder's child is gone before it runs.
  std::string check = "kill -0 $(cat " + path("holder.pid") + ") 2>/dev/null && echo OVERLAP >> " +
                      path("overlap") + "; " + guarded(dir_.path().string());
  std::vector<pid_t> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.push_back(spawn_aec(run(*a_, {"--on-busy", "wait"}, check), {}, path("runners.log")));
  }
  ASSERT_TRUE(await_parked(4)) << read_file(path("runners.log"));
  nlohmann::json before = status(*a_);
  ASSERT_EQ(before["holders"].size(), 1u) << before;
  b_->kill9();
  // Nothing was lost with B: the lease it granted is still held, as A reports.
  nlohmann::json after = status(*a_);
  ASSERT_EQ(after["holders"].size(), 1u) << after;
  EXPECT_EQ(after["holders"][0]["token"], before["holders"][0]["token"]);
  // The holder cannot renew through B: its runner stops the child before the lease could
  // expire and says the lease was lost. Then A's waiters run, one at a time.
  EXPECT_EQ(wait_exit(holder), 79) << read_file(path("holder.log"));
  for (pid_t pid : waiters) {
    EXPECT_EQ(wait_exit(pid), 0) << read_file(path("runners.log"));
  }
  EXPECT_EQ(read_file(path("overlap")), "") << "a waiter ran while the holder's child lived";
  std::vector<std::string> tokens = read_lines(path("tokens"));
  ASSERT_EQ(tokens.size(), 4u);
  EXPECT_GT(std::stoll(tokens[0]), before["holders"][0]["token"].get<long long>());
  // B comes back and sees exactly what A sees.
  b_->start();
  nlohmann::json via_b = status(*b_);
  nlohmann::json via_a = status(*a_);
  EXPECT_EQ(via_b["last_token"], via_a["last_token"]);
  EXPECT_EQ(via_b["version"], via_a["version"]);
  EXPECT_EQ(via_b["last_ended"]["id"], via_a["last_ended"]["id"]);
}

INSTANTIATE_TEST_SUITE_P(Stores, Replicas, ::testing::Values("postgres", "etcd"),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace aec::e2e
