// The PostgreSQL server stopped (immediate mode: a crash) and started again while runners hold
// leases and others keep acquiring: a runner whose lease outlives the outage keeps it and
// finishes normally; a runner whose lease would lapse during the outage stops its child before
// it could, and says the lease was lost (exit 79). SERIAL: the server is shared.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/e2e/e2e_support.h"
#include "tests/support/servers.h"
#include "tests/support/temp_dir.h"

namespace aec::e2e {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int dev_servers(const std::string& command) {
  std::string cmd = std::string(AEC_SOURCE_DIR) + "/scripts/dev-servers.sh " + command + " --dir " +
                    testing::servers_dir() + " --mode immediate >/dev/null 2>&1";
  return std::system(cmd.c_str());
}

TEST(PostgresRestart, LongLeasesSurviveTheOutageShortOnesStopTheirChildInTime) {
  std::optional<std::string> pg = testing::server_setting("AEC_TEST_POSTGRES_URL");
  if (!pg || testing::servers_dir().empty()) {
    GTEST_SKIP() << testing::missing_server("AEC_TEST_POSTGRES_URL");
  }
  testing::TempDir dir;
  std::random_device rd;
  std::string store = *pg + "?schema=restart_" + std::to_string(rd() % 1'000'000'000);
  auto path = [&](const std::string& name) { return dir.file(name); };
  std::string gate = "while [ ! -e " + path("go") + " ]; do sleep 0.01; done";
  auto runner = [&](const std::string& key, const std::string& ttl) {
    std::string script =
        "touch " + path(key + ".started") + "; " + gate + "; touch " + path(key + ".finished");
    return spawn_aec({"run", "--store", store, "--key", "restart/" + key, "--ttl", ttl, "--", "sh",
                      "-c", script},
                     {}, path(key + ".log"));
  };
  // Long leases (30 s) outlive the outage; short ones (2 s) cannot.
  std::vector<std::pair<std::string, pid_t>> longs, shorts;
  for (int i = 0; i < 3; ++i) {
    longs.emplace_back("long" + std::to_string(i), runner("long" + std::to_string(i), "30s"));
    shorts.emplace_back("short" + std::to_string(i), runner("short" + std::to_string(i), "2s"));
  }
  for (auto& [key, pid] : longs) {
    ASSERT_TRUE(wait_for_file(path(key + ".started"))) << read_file(path(key + ".log"));
  }
  for (auto& [key, pid] : shorts) {
    ASSERT_TRUE(wait_for_file(path(key + ".started"))) << read_file(path(key + ".log"));
  }
  // Load: quick runs on other keys, all through the outage.
  std::atomic<bool> stop{false};
  std::atomic<int> ok_before{0}, ok_after{0}, failed{0};
  std::atomic<bool> restarted{false};
  std::thread load([&] {
    for (int i = 0; !stop; ++i) {
      Output o = run_aec(
          {"run", "--store", store, "--key", "load/" + std::to_string(i % 8), "--", "true"});
      if (o.exit_code == 0) {
        (restarted ? ok_after : ok_before)++;
      } else {
        failed++;
      }
    }
  });
  auto loaded = Clock::now() + 20s;
  while (ok_before == 0 && Clock::now() < loaded) {
    std::this_thread::sleep_for(5ms);  // polling a condition: the load running
  }
  auto stopped_at = Clock::now();
  ASSERT_EQ(dev_servers("stop-postgres"), 0);
  // Every short runner stops its child before its lease (renewed at most 2 s before the crash)
  // could expire, and reports the lease lost.
  for (auto& [key, pid] : shorts) {
    EXPECT_EQ(wait_exit(pid), 79) << key << ": " << read_file(path(key + ".log"));
    // The child dies before the lease could expire (at most 2 s after the crash); the runner's
    // own exit (under a sanitizer, its leak check too) may take a moment longer.
    EXPECT_LT(Clock::now() - stopped_at, 3s) << key << " ran past its lease";
    EXPECT_EQ(read_file(path(key + ".finished")), "") << key << "'s child was not stopped";
  }
  ASSERT_EQ(dev_servers("start-postgres"), 0);
  restarted = true;
  auto back = Clock::now() + 20s;
  while (ok_after == 0 && Clock::now() < back) {
    std::this_thread::sleep_for(10ms);  // polling a condition: a run succeeding again
  }
  stop = true;
  load.join();
  EXPECT_GT(ok_before.load(), 0);
  EXPECT_GT(ok_after.load(), 0) << "no run succeeded after the restart";
  // The long runners kept their leases through the outage and finish normally.
  std::fclose(std::fopen(path("go").c_str(), "w"));
  for (auto& [key, pid] : longs) {
    EXPECT_EQ(wait_exit(pid), 0) << key << ": " << read_file(path(key + ".log"));
    EXPECT_TRUE(wait_for_file(path(key + ".finished")));
    Output h = run_aec({"history", "--store", store, "--json", "restart/" + key});
    nlohmann::json runs = nlohmann::json::parse(h.out, nullptr, false);
    ASSERT_TRUE(runs.is_array() && runs.size() == 1) << h.out << h.err;
    EXPECT_EQ(runs[0]["status"], "succeeded") << read_file(path(key + ".log"));
  }
}

}  // namespace
}  // namespace aec::e2e
