// Regression test for "a parked waiter's lease was born past its deadline": a runner that waits
// in line (--on-busy wait) on a store that parks the call (aecd, postgres, etcd) counted its
// lease's ttl from when it began to wait, not from its grant. A wait longer than about 0.7 x ttl
// gave a lease the runner thought already lost: it stopped its command at once and exited 79.
// Now the store says how long it held the call (AcquireResult::held) and the runner counts from
// there: a waiter that waited twice its ttl runs its command to the end.
#include <chrono>
#include <csignal>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/e2e/aecd_process.h"
#include "tests/e2e/e2e_support.h"
#include "tests/support/servers.h"
#include "tests/support/temp_dir.h"

namespace aec::e2e {
namespace {

using namespace std::chrono_literals;

class ParkedGrant : public ::testing::TestWithParam<std::string> {
 protected:
  // The store URL for the parameter; "" (and a skip) when its server is missing.
  std::string store() {
    const std::string n = std::to_string(std::random_device{}() % 1'000'000'000);
    if (GetParam() == "aecd") {
      aecd_ = std::make_unique<AecdProcess>("sqlite://" + dir_.file("aec.db"), free_port(),
                                            dir_.file("aecd.log"));
      return aecd_->url();
    }
    const std::string setting =
        GetParam() == "postgres" ? "AEC_TEST_POSTGRES_URL" : "AEC_TEST_ETCD_ENDPOINTS";
    std::optional<std::string> server = testing::server_setting(setting);
    if (!server) {
      why_ = testing::missing_server(setting);
      return "";
    }
#if defined(__SANITIZE_THREAD__)
    if (GetParam() == "etcd") {
      why_ = "gRPC is not built with ThreadSanitizer: its synchronisation is invisible";
      return "";
    }
#endif
    return GetParam() == "postgres" ? *server + "?schema=parked_" + n
                                    : "etcd://" + *server + "?prefix=parked-" + n + "/";
  }

  // Whether `store`'s key has a caller waiting in line.
  static bool someone_waits(const std::string& store) {
    Output out = run_aec({"status", "--store", store, "--json", "etl/parked"});
    nlohmann::json j = nlohmann::json::parse(out.out, nullptr, false);
    return j.is_object() && j.contains("queue") && !j["queue"].empty();
  }

  testing::TempDir dir_;
  std::unique_ptr<AecdProcess> aecd_;
  std::string why_;
};

TEST_P(ParkedGrant, AWaiterParkedLongerThanItsTtlKeepsItsLease) {
  const std::string url = store();
  if (url.empty()) {
    GTEST_SKIP() << why_;
  }
  const std::string go = dir_.file("go");
  // The holder keeps the key until told, then 5 s more: the waiter waits well over its 2 s ttl.
  pid_t holder = spawn_aec(
      {"run", "--store", url, "--key", "etl/parked", "--ttl", "30s", "--", "sh", "-c",
       "touch " + dir_.file("held") + "; while [ ! -e " + go + " ]; do sleep 0.01; done; sleep 5"},
      {}, dir_.file("holder.log"));
  ASSERT_TRUE(wait_for_file(dir_.file("held"))) << read_file(dir_.file("holder.log"));
  pid_t waiter =
      spawn_aec({"run", "--store", url, "--key", "etl/parked", "--ttl", "2s", "--on-busy", "wait",
                 "--", "sh", "-c", "sleep 1; touch " + dir_.file("finished")},
                {}, dir_.file("waiter.log"));
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!someone_waits(url) && std::chrono::steady_clock::now() < deadline) {
  }
  ASSERT_TRUE(someone_waits(url)) << read_file(dir_.file("waiter.log"));
  std::fclose(std::fopen(go.c_str(), "w"));
  EXPECT_EQ(wait_exit(holder), 0) << read_file(dir_.file("holder.log"));
  EXPECT_EQ(wait_exit(waiter), 0) << read_file(dir_.file("waiter.log"));
  EXPECT_TRUE(wait_for_file(dir_.file("finished"), 0ms)) << read_file(dir_.file("waiter.log"));
}

INSTANTIATE_TEST_SUITE_P(Stores, ParkedGrant, ::testing::Values("aecd", "postgres", "etcd"),
                         [](const auto& p) { return p.param; });

// The same stores, which run threads of their own in `aec run` (etcd's gRPC, libpq, the http://
// transport): a SIGTERM sent to aec reaches its command, whose exit code aec passes on. Found by
// review: the signals were blocked only when the command started, after the store had created
// its threads with them unblocked, and the kernel could hand the SIGTERM to one of those, whose
// default action ended aec at once (the command left running, no outcome recorded).
class StoreThreads : public ParkedGrant {};

TEST_P(StoreThreads, ASigtermReachesTheCommand) {
  const std::string url = store();
  if (url.empty()) {
    GTEST_SKIP() << why_;
  }
  const std::string started = dir_.file("started");
  const std::string got = dir_.file("got");
  pid_t runner = spawn_aec({"run", "--store", url, "--key", "etl/term", "--", "sh", "-c",
                            "trap 'touch " + got + "; exit 7' TERM; touch " + started +
                                "; i=0; while [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done"},
                           {}, dir_.file("runner.log"));
  ASSERT_TRUE(wait_for_file(started)) << read_file(dir_.file("runner.log"));
  ASSERT_EQ(kill(runner, SIGTERM), 0);
  EXPECT_EQ(wait_exit(runner), 7) << read_file(dir_.file("runner.log"));
  EXPECT_TRUE(wait_for_file(got, 0ms)) << "the command's trap did not run";
  Output out = run_aec({"status", "--store", url, "--json", "etl/term"});
  nlohmann::json j = nlohmann::json::parse(out.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << out.out << out.err;
  EXPECT_TRUE(j["holders"].empty()) << j.dump();
  EXPECT_EQ(j["last_ended"]["exit_code"], 7) << j.dump();
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreThreads, ::testing::Values("aecd", "postgres", "etcd"),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace aec::e2e
