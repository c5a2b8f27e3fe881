// The real aecd (`aec serve`) over a real socket and a real sqlite file, driven by many real
// `aec run --store http://…` processes: mutual exclusion, the server's FIFO line, and a kill -9
// of the server while leases are held.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <unistd.h>

#include "tests/e2e/aecd_process.h"
#include "tests/e2e/e2e_support.h"

namespace aec::e2e {
namespace {

using namespace std::chrono_literals;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/aec-e2e-aecd-XXXXXX";
    const char* made = mkdtemp(tmpl);
    path_ = made != nullptr ? made : "";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// aecd over dir/aec.db.
class Aecd : public AecdProcess {
 public:
  Aecd(const TempDir& dir, int port)
      : AecdProcess("sqlite://" + dir / "aec.db", port, dir / "aecd.log") {}
};

std::vector<std::string> run_through(const Aecd& aecd, std::vector<std::string> flags,
                                     const std::string& script) {
  std::vector<std::string> args = {"run", "--store", aecd.url(), "--key", "etl/daily"};
  args.insert(args.end(), flags.begin(), flags.end());
  args.insert(args.end(), {"--", "sh", "-c", script});
  return args;
}

TEST(Aecd, ThirtyTwoRunnersOneRunsTheRestSkip) {
  TempDir dir;
  Aecd aecd(dir, free_port());
  std::string script =
      "echo ran >> " + dir / "ran" + "; while [ ! -e " + dir / "go" + " ]; do sleep 0.01; done";
  pid_t holder = spawn_aec(run_through(aecd, {}, script), {}, dir / "runners.log");
  ASSERT_TRUE(wait_for_file(dir / "ran")) << read_file(dir / "runners.log");
  std::vector<pid_t> others;
  for (int i = 0; i < 31; ++i) {
    others.push_back(spawn_aec(run_through(aecd, {}, script), {}, dir / "runners.log"));
  }
  for (pid_t pid : others) {
    EXPECT_EQ(wait_exit(pid), 0) << read_file(dir / "runners.log");
  }
  EXPECT_EQ(read_lines(dir / "ran").size(), 1u) << "more than one ran";
  Output skipped = run_aec({"list", "--store", aecd.url(), "--status", "skipped", "--json"});
  EXPECT_EQ(nlohmann::json::parse(skipped.out, nullptr, false).size(), 31u) << skipped.out;
  std::FILE* go = std::fopen((dir / "go").c_str(), "w");
  std::fclose(go);
  EXPECT_EQ(wait_exit(holder), 0) << read_file(dir / "runners.log");
}

TEST(Aecd, WaitersRunOneAfterAnotherInArrivalOrder) {
  TempDir dir;
  Aecd aecd(dir, free_port());
  const int n = 16;
  std::string gate = "while [ ! -e " + dir / "go" + " ]; do sleep 0.01; done; ";
  std::string held = dir / "held";
  pid_t holder = spawn_aec(run_through(aecd, {}, "touch " + dir / "started" + "; " + gate), {},
                           dir / "runners.log");
  ASSERT_TRUE(wait_for_file(dir / "started")) << read_file(dir / "runners.log");
  std::vector<pid_t> waiters;
  for (int i = 0; i < n; ++i) {
    std::string script = "mkdir " + held + " 2>/dev/null || echo OVERLAP >> " + dir / "overlap" +
                         "; echo " + std::to_string(i) + " $AEC_FENCING_TOKEN >> " + dir / "order" +
                         "; rmdir " + held;
    waiters.push_back(
        spawn_aec(run_through(aecd, {"--on-busy", "wait"}, script), {}, dir / "runners.log"));
    // The next one starts only once this one is parked in the server's line (arrival order).
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (aecd.metric("aec_waiters") < i + 1 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(2ms);
    }
    ASSERT_EQ(aecd.metric("aec_waiters"), i + 1) << read_file(dir / "runners.log");
  }
  std::FILE* go = std::fopen((dir / "go").c_str(), "w");
  std::fclose(go);
  EXPECT_EQ(wait_exit(holder), 0);
  for (pid_t pid : waiters) {
    EXPECT_EQ(wait_exit(pid), 0) << read_file(dir / "runners.log");
  }
  EXPECT_EQ(read_file(dir / "overlap"), "") << "two held the key at once";
  std::vector<std::string> order = read_lines(dir / "order");
  ASSERT_EQ(order.size(), static_cast<size_t>(n));
  long long last_token = 0;
  for (int i = 0; i < n; ++i) {
    int who = 0;
    long long token = 0;
    ASSERT_EQ(std::sscanf(order[i].c_str(), "%d %lld", &who, &token), 2) << order[i];
    EXPECT_EQ(who, i) << "not in arrival order";
    EXPECT_GT(token, last_token);
    last_token = token;
  }
}

TEST(Aecd, KillNineOfAecdLosesNoLeaseTokenOrHistory) {
  TempDir dir;
  Aecd aecd(dir, free_port());
  ASSERT_EQ(run_aec(run_through(aecd, {}, "true")).exit_code, 0);  // token 1, succeeded
  std::string script = "echo $AEC_FENCING_TOKEN > " + dir / "token" + "; while [ ! -e " +
                       dir / "go" + " ]; do sleep 0.01; done";
  pid_t holder = spawn_aec(run_through(aecd, {"--ttl", "6s"}, script), {}, dir / "holder.log");
  ASSERT_TRUE(wait_for_file(dir / "token")) << read_file(dir / "holder.log");
  aecd.kill9();
  aecd.start();  // same file, same port, within the lease's ttl
  Output status = run_aec({"status", "--store", aecd.url(), "--json", "etl/daily"});
  nlohmann::json state = nlohmann::json::parse(status.out, nullptr, false);
  ASSERT_TRUE(state.is_object()) << status.out << status.err;
  ASSERT_EQ(state["holders"].size(), 1u) << status.out;
  EXPECT_EQ(std::to_string(state["holders"][0]["token"].get<long long>()) + "\n",
            read_file(dir / "token"));
  EXPECT_EQ(state["last_ended"]["status"], "succeeded") << "a finished execution was lost";
  Output busy = run_aec(run_through(aecd, {"--on-busy", "fail"}, "true"));
  EXPECT_EQ(busy.exit_code, 75) << "the held lease must still be held after the restart";
  std::FILE* go = std::fopen((dir / "go").c_str(), "w");
  std::fclose(go);
  EXPECT_EQ(wait_exit(holder), 0) << read_file(dir / "holder.log");
  ASSERT_EQ(run_aec(run_through(aecd, {}, "echo $AEC_FENCING_TOKEN > " + dir / "next")).exit_code,
            0);
  EXPECT_GT(std::stoll(read_file(dir / "next")), std::stoll(read_file(dir / "token")))
      << "a fencing token was reissued";
  EXPECT_EQ(aecd.stop(), 0) << read_file(dir / "aecd.log");
}

}  // namespace
}  // namespace aec::e2e
