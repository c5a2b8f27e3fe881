// Many real `aec run` processes contending for one key on one sqlite file: mutual exclusion,
// --limit, fencing tokens, takeover after a crash or a pause, and signal forwarding.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/e2e/e2e_support.h"

namespace aec::e2e {
namespace {

using namespace std::chrono_literals;
using Ms = std::chrono::milliseconds;

constexpr int kExitLost = 79;

// A fresh directory for one test's database, scripts' files and logs; removed afterwards.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/aec-e2e-conc-XXXXXX";
    const char* made = mkdtemp(tmpl);
    path_ = made != nullptr ? made : "";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }
  Env env() const { return {{"AEC_STORE", "sqlite://" + path_ + "/aec.db"}}; }

 private:
  std::string path_;
};

int decode(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

// The exit code of `pid` if it exits within `timeout`, else nullopt (it is then still running).
std::optional<int> wait_exit_for(pid_t pid, Ms timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return decode(status);
    }
    if (r < 0 && errno != EINTR) {
      return -1;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(2ms);
  }
}

// Runners started by a test. Whatever is still running when the test ends is SIGKILLed and
// reaped, so a failing test leaves nothing behind (the runners' children die with them through
// PR_SET_PDEATHSIG).
class Runners {
 public:
  ~Runners() {
    for (pid_t pid : pids_) {
      kill(pid, SIGKILL);
      wait_exit(pid);
    }
  }
  void add(pid_t pid) { pids_.push_back(pid); }
  // Waits for one runner (bounded) and forgets it. -2 when it did not exit in time.
  int wait(pid_t pid, Ms timeout = 30s) {
    std::optional<int> code = wait_exit_for(pid, timeout);
    if (code) {
      std::erase(pids_, pid);
    }
    return code.value_or(-2);
  }
  const std::vector<pid_t>& pids() const { return pids_; }

 private:
  std::vector<pid_t> pids_;
};

// Starts `aec ARGS...` in a process that first blocks reading `gate_fd` until every write end is
// closed: the test forks many, then closes the gate to release them all at the same moment.
pid_t spawn_gated(const std::vector<std::string>& args, const Env& env, const std::string& log,
                  int gate_read, int gate_write) {
  pid_t pid = fork();
  if (pid != 0) {
    return pid;
  }
  close(gate_write);
  char byte = 0;
  while (read(gate_read, &byte, 1) < 0 && errno == EINTR) {
  }
  int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  dup2(devnull, 0);
  dup2(out, 1);
  dup2(out, 2);
  exec_aec(args, env);
}

// Starts n runners, argv from `args_for(i)`, released together by one gate. The store does not
// exist yet, so the runners also race to create it.
void start_together(Runners& runners, int n, const TempDir& dir,
                    const std::function<std::vector<std::string>(int)>& args_for) {
  int gate[2];
  ASSERT_EQ(pipe2(gate, O_CLOEXEC), 0);
  for (int i = 0; i < n; ++i) {
    pid_t pid = spawn_gated(args_for(i), dir.env(), dir / "runners.log", gate[0], gate[1]);
    ASSERT_GT(pid, 0);
    runners.add(pid);
  }
  close(gate[1]);  // every runner reads EOF now
  close(gate[0]);
}

// `aec run --key K FLAGS... -- sh -c SCRIPT`.
std::vector<std::string> run_sh(const std::vector<std::string>& flags, const std::string& script) {
  std::vector<std::string> args{"run", "--key", "K"};
  args.insert(args.end(), flags.begin(), flags.end());
  args.insert(args.end(), {"--", "sh", "-c", script});
  return args;
}

nlohmann::json json_file(const std::string& path) {
  return nlohmann::json::parse(read_file(path), nullptr, /*allow_exceptions=*/false);
}

// `aec history K --json`, or an empty array when it fails.
nlohmann::json history(const TempDir& dir) {
  Output o = run_aec({"history", "K", "--json"}, dir.env());
  EXPECT_EQ(o.exit_code, 0) << o.err;
  auto j = nlohmann::json::parse(o.out, nullptr, /*allow_exceptions=*/false);
  return j.is_array() ? j : nlohmann::json::array();
}

// The execution with this token in K's history, or null.
nlohmann::json execution_with_token(const TempDir& dir, long long token) {
  for (const auto& e : history(dir)) {
    if (e.value("token", -1LL) == token) {
      return e;
    }
  }
  return nullptr;
}

// The number in a file a script wrote (e.g. a pid), once it is complete; 0 on timeout.
long long wait_for_number(const std::string& path, Ms timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::string s = read_file(path);
    if (!s.empty() && s.back() == '\n') {
      return std::stoll(s);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return 0;
    }
    std::this_thread::sleep_for(2ms);
  }
}

// True while `pid` (not our child) exists and is not a zombie.
bool alive(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close_paren = stat.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < stat.size() &&
         stat[close_paren + 2] != 'Z';
}

double seconds_since(long long start_ns) {
  return static_cast<double>(boot_ns() - start_ns) / 1e9;
}

// ---------------------------------------------------------------------------------------------

// Waits until all runners but one have exited and returns their pids with their exit codes.
std::vector<std::pair<pid_t, int>> wait_all_but_one(Runners& runners, Ms timeout) {
  std::vector<std::pair<pid_t, int>> done;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (runners.pids().size() > 1 && std::chrono::steady_clock::now() < deadline) {
    std::vector<pid_t> pending = runners.pids();
    for (pid_t pid : pending) {
      if (int code = runners.wait(pid, 0ms); code != -2) {
        done.emplace_back(pid, code);
      }
    }
    std::this_thread::sleep_for(5ms);
  }
  return done;
}

TEST(Concurrency, ThirtyTwoAtOnceWithSkipRunExactlyOne) {
  TempDir dir;
  const int n = 32;
  // The holder stays until the test creates `release` (bounded, should the test die first).
  std::string script = "echo \"$AEC_FENCING_TOKEN\" >> " + dir / "ran" + "; i=0; while [ ! -e " +
                       dir / "release" + " ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done";
  Runners runners;
  start_together(runners, n, dir, [&](int i) {
    return run_sh({"--termination-message", dir / ("tm." + std::to_string(i))}, script);
  });
  auto skipped = wait_all_but_one(runners, 30s);
  std::ofstream(dir / "release").put('\n');
  ASSERT_EQ(skipped.size(), static_cast<size_t>(n - 1)) << read_file(dir / "runners.log");
  for (const auto& [pid, code] : skipped) {
    EXPECT_EQ(code, 0) << "runner " << pid << ":\n" << read_file(dir / "runners.log");
  }
  pid_t holder_pid = runners.pids().front();
  EXPECT_EQ(runners.wait(holder_pid), 0);

  std::vector<std::string> ran = read_lines(dir / "ran");
  ASSERT_EQ(ran.size(), 1u) << "children that ran";
  int succeeded = 0;
  for (int i = 0; i < n; ++i) {
    nlohmann::json tm = json_file(dir / ("tm." + std::to_string(i)));
    ASSERT_TRUE(tm.is_object()) << "tm." << i;
    if (tm["status"] == "succeeded") {
      ++succeeded;
      EXPECT_EQ(std::to_string(tm["token"].get<long long>()), ran[0]);
      continue;
    }
    EXPECT_EQ(tm["status"], "skipped") << tm.dump();
    ASSERT_TRUE(tm["holder"].is_object()) << tm.dump();
    EXPECT_EQ(std::to_string(tm["holder"]["token"].get<long long>()), ran[0]) << tm.dump();
  }
  EXPECT_EQ(succeeded, 1);
}

// ---------------------------------------------------------------------------------------------

TEST(Concurrency, ThirtyTwoWaitersRunOneAtATimeWithIncreasingTokens) {
  TempDir dir;
  const int n = 32;
  // mkdir is atomic: it fails when another child holds the marker.
  std::string held = dir / "held";
  std::string script = "mkdir " + held + " 2>/dev/null || echo OVERLAP >> " + dir / "overlap" +
                       "; echo \"$AEC_FENCING_TOKEN\" >> " + dir / "tokens" +
                       "; sleep 0.005; rmdir " + held + " 2>/dev/null; true";
  Runners runners;
  start_together(runners, n, dir, [&](int) { return run_sh({"--on-busy", "wait"}, script); });
  std::vector<pid_t> pids = runners.pids();
  for (pid_t pid : pids) {
    EXPECT_EQ(runners.wait(pid, 40s), 0) << read_file(dir / "runners.log");
  }
  EXPECT_EQ(read_file(dir / "overlap"), "") << "two children held the key at once";
  std::vector<std::string> tokens = read_lines(dir / "tokens");
  ASSERT_EQ(tokens.size(), static_cast<size_t>(n));
  for (size_t i = 1; i < tokens.size(); ++i) {
    EXPECT_LT(std::stoll(tokens[i - 1]), std::stoll(tokens[i])) << "run " << i;
  }
}

// ---------------------------------------------------------------------------------------------

TEST(Concurrency, KillNineOfHolderIsTakenOverWithinTtlPlusOneSecond) {
  TempDir dir;
  Runners runners;
  pid_t runner =
      spawn_aec(run_sh({"--ttl", "1s"}, "echo $AEC_FENCING_TOKEN > " + dir / "token" +
                                            "; echo $$ > " + dir / "child.pid" + "; exec sleep 60"),
                dir.env(), dir / "runner.log");
  runners.add(runner);
  pid_t child = static_cast<pid_t>(wait_for_number(dir / "child.pid"));
  ASSERT_GT(child, 0) << read_file(dir / "runner.log");

  long long killed_at = boot_ns();
  ASSERT_EQ(kill(runner, SIGKILL), 0);
  // The child leads its own process group (PR_SET_PDEATHSIG may have killed it already).
  EXPECT_TRUE(kill(-child, SIGKILL) == 0 || errno == ESRCH);
  EXPECT_EQ(runners.wait(runner), 128 + SIGKILL);

  Output next = run_aec({"run", "--key", "K", "--on-busy", "wait=10s", "--", "true"}, dir.env());
  double takeover = seconds_since(killed_at);
  EXPECT_EQ(next.exit_code, 0) << next.err;
  EXPECT_LE(takeover, 2.0) << "takeover after kill -9 took " << takeover << " s (ttl 1 s)";
  std::printf("[ measure ] takeover after kill -9 (ttl 1s): %.3f s\n", takeover);

  nlohmann::json killed = execution_with_token(dir, wait_for_number(dir / "token", 0ms));
  ASSERT_TRUE(killed.is_object()) << history(dir).dump();
  EXPECT_EQ(killed["status"], "lost") << killed.dump();
}

// ---------------------------------------------------------------------------------------------

// Stops the runner (only it: its child runs on) until a successor has taken the key over.
TEST(Concurrency, RunnerStoppedPastTtlStopsItsChildOnContinue) {
  TempDir dir;
  Runners runners;
  std::string loop = "echo $AEC_FENCING_TOKEN > " + dir / "token" + "; echo $$ > " + dir / "a.pid" +
                     "; i=0; while [ $i -lt 1500 ]; do echo " +
                     "\"$AEC_FENCING_TOKEN $(date +%s%N)\" >> " + dir / "a.log" +
                     "; sleep 0.02; i=$((i+1)); done";
  pid_t runner = spawn_aec(run_sh({"--ttl", "1s"}, loop), dir.env(), dir / "runner.log");
  runners.add(runner);
  pid_t child = static_cast<pid_t>(wait_for_number(dir / "a.pid"));
  ASSERT_GT(child, 0) << read_file(dir / "runner.log");

  ASSERT_EQ(kill(runner, SIGSTOP), 0);
  long long stopped_at = boot_ns();
  Output successor = run_aec(run_sh({"--on-busy", "wait=10s", "--ttl", "1s"},
                                    "echo $AEC_FENCING_TOKEN > " + dir / "b.token"),
                             dir.env());
  ASSERT_EQ(successor.exit_code, 0) << successor.err;
  // The last renewal was at most ttl/3 before the stop, so the lease outlived it by >= 2/3 s.
  EXPECT_GE(seconds_since(stopped_at), 0.6) << "the successor acquired a lease still valid";
  long long token = wait_for_number(dir / "token", 0ms);
  EXPECT_GT(wait_for_number(dir / "b.token", 0ms), token) << "the successor's token";
  EXPECT_TRUE(alive(child)) << "the stopped runner's child runs on until the runner resumes";

  long long continued_at = boot_ns();
  ASSERT_EQ(kill(runner, SIGCONT), 0);
  while (alive(child) && seconds_since(continued_at) < 5) {
    std::this_thread::sleep_for(1ms);
  }
  double stopped_in = seconds_since(continued_at);
  EXPECT_LE(stopped_in, 1.0) << "child still running " << stopped_in << " s after SIGCONT";
  std::printf("[ measure ] child stopped %.3f s after SIGCONT\n", stopped_in);
  EXPECT_EQ(runners.wait(runner, 10s), kExitLost) << read_file(dir / "runner.log");

  nlohmann::json a = execution_with_token(dir, token);
  ASSERT_TRUE(a.is_object()) << history(dir).dump();
  EXPECT_EQ(a["status"], "lost") << a.dump();
}

// ---------------------------------------------------------------------------------------------

TEST(Concurrency, LimitThreeHoldsUnderTwentyWaiters) {
  TempDir dir;
  const int n = 20;
  std::ofstream(dir / "count") << "0\n";
  std::ofstream(dir / "max") << "0\n";
  // Under flock: count the children running now, and keep the highest count seen.
  std::string count = dir / "count";
  std::string max = dir / "max";
  std::string lock = " 9>" + dir / "lock";
  std::string script = "( flock 9; c=$(($(cat " + count + ")+1)); echo $c > " + count +
                       "; if [ $c -gt $(cat " + max + ") ]; then echo $c > " + max + "; fi )" +
                       lock + "; echo \"$AEC_FENCING_TOKEN\" >> " + dir / "ran" +
                       "; sleep 0.05; ( flock 9; echo $(($(cat " + count + ")-1)) > " + count +
                       " )" + lock;
  Runners runners;
  start_together(runners, n, dir, [&](int) {
    return run_sh({"--limit", "3", "--on-busy", "wait"}, script);
  });
  std::vector<pid_t> pids = runners.pids();
  for (pid_t pid : pids) {
    EXPECT_EQ(runners.wait(pid, 40s), 0) << read_file(dir / "runners.log");
  }
  std::vector<std::string> ran = read_lines(dir / "ran");
  EXPECT_EQ(ran.size(), static_cast<size_t>(n));
  EXPECT_EQ(std::set<std::string>(ran.begin(), ran.end()).size(), ran.size()) << "unique tokens";
  int highest = std::stoi(read_file(max));
  EXPECT_LE(highest, 3);
  EXPECT_GE(highest, 2);
  std::printf("[ measure ] highest concurrency with --limit 3: %d\n", highest);
  EXPECT_EQ(std::stoi(read_file(count)), 0);
}

// ---------------------------------------------------------------------------------------------

// A signal sent to the runner reaches the child, whose exit code the runner passes on.
void expect_signal_forwarded(int sig, const std::string& name) {
  TempDir dir;
  Runners runners;
  std::string script = "trap 'touch " + dir / "got" + "; exit 7' " + name +
                       "; echo $AEC_FENCING_TOKEN > " + dir / "token" + "; echo $$ > " +
                       dir / "child.pid" +
                       "; i=0; while [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done";
  pid_t runner = spawn_aec(run_sh({}, script), dir.env(), dir / "runner.log");
  runners.add(runner);
  ASSERT_GT(wait_for_number(dir / "child.pid"), 0) << read_file(dir / "runner.log");

  ASSERT_EQ(kill(runner, sig), 0);
  EXPECT_EQ(runners.wait(runner, 10s), 7) << read_file(dir / "runner.log");
  EXPECT_TRUE(wait_for_file(dir / "got", 0ms)) << "the child's trap did not run";
  nlohmann::json e = execution_with_token(dir, wait_for_number(dir / "token", 0ms));
  ASSERT_TRUE(e.is_object()) << history(dir).dump();
  EXPECT_EQ(e["status"], "failed") << e.dump();
  EXPECT_EQ(e["exit_code"], 7) << e.dump();
}

TEST(Concurrency, SigtermReachesTheChild) {
  expect_signal_forwarded(SIGTERM, "TERM");
}

TEST(Concurrency, SigintReachesTheChild) {
  expect_signal_forwarded(SIGINT, "INT");
}

// ---------------------------------------------------------------------------------------------

// Holds the lock an SQLite writer takes on a rollback-journal database file (a POSIX write lock
// on its RESERVED byte, 0x40000001): what another aec process does for a moment while it turns a
// fresh store into WAL mode. Returns the fd to close to release it, or -1.
int hold_sqlite_reserved_lock(const std::string& db_path) {
  int fd = open(db_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = 0x40000001;
  lock.l_len = 1;
  if (fd >= 0 && fcntl(fd, F_SETLK, &lock) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Many runners opening a fresh store at once: all but one find it locked while it is being
// created, and must wait for the lock (up to the store's lock timeout) rather than exit 69.
TEST(Concurrency, FreshStoreLockedByAnotherOpenerIsWaitedFor) {
  TempDir dir;
  int lock_fd = hold_sqlite_reserved_lock(dir / "aec.db");
  ASSERT_GE(lock_fd, 0);
  Runners runners;
  pid_t runner = spawn_aec({"run", "--key", "K", "--", "true"}, dir.env(), dir / "runner.log");
  runners.add(runner);
  long long started = boot_ns();
  int early = runners.wait(runner, 500ms);  // -2: still waiting for the lock, as it should
  double held_for = seconds_since(started);
  close(lock_fd);
  EXPECT_EQ(early, -2) << "aec exited " << early << " after " << held_for
                       << " s while the store was locked, without waiting for the lock:\n"
                       << read_file(dir / "runner.log");
  if (early == -2) {
    EXPECT_EQ(runners.wait(runner, 15s), 0) << read_file(dir / "runner.log");
  }
}

}  // namespace
}  // namespace aec::e2e
