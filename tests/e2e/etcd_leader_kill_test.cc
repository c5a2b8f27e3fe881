// kill -9 the etcd cluster's leader while 16 `aec run` loops hold and wait on 4 keys (on each
// key one holds and three wait in line): no key ever has two live holders, grants resume on the
// two survivors, and the killed member rejoins and catches up.
//
// The children append to their key's log as they start and end, with their fencing token; the
// runner loops append each `aec run`'s exit code to the same log. The log is appended with
// O_APPEND, one write per line, so its order is the order things happened on that key: the
// check reads it in order and trusts no clock (the times in it, from `date +%s%N`, are only
// reported). SERIAL: the cluster is shared, and one of its members dies. Skipped without the
// pid files of scripts/dev-servers.sh (AEC_TEST_SERVERS_ENV).
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include "stores/etcd/txn_ops.h"
#include "tests/e2e/e2e_support.h"
#include "tests/stores/etcd_test_cluster.h"
#include "tests/support/temp_dir.h"

extern char** environ;

namespace aec::e2e {
namespace {

using namespace std::chrono_literals;
using testing::EtcdCluster;
using testing::EtcdMember;
using testing::eventually;
using Steady = std::chrono::steady_clock;

constexpr int kKeys = 4;
constexpr int kRunnersPerKey = 4;

// What `aec run` may exit with here (README.md's table, src/cli/exit_codes.h): 0, the child
// ran and ended; 69, the store could not be reached or a write may or may not have been
// applied (the leader died under it); 79, the lease was lost and the child stopped in time (or
// before it could start).
const std::set<int> kAllowedExits = {0, 69, 79};

// The child, `sh -c kChild child LOG NAME`: holds its key for 0.4 s, logging its start and end
// with its fencing token. Stopped by its runner (SIGTERM: the lease may lapse), it logs "stop"
// instead of "end"; killed before it could log either, its runner's exit line closes its turn.
// The trap is dropped before "end" so that a SIGTERM just after it cannot add a "stop".
constexpr const char* kChild = R"sh(log=$1 me=$2
echo "start $AEC_FENCING_TOKEN $(date +%s%N) $me" >>"$log"
trap 'echo "stop $AEC_FENCING_TOKEN $(date +%s%N) $me" >>"$log"; exit 143' TERM
sleep 0.4
trap - TERM
echo "end $AEC_FENCING_TOKEN $(date +%s%N) $me" >>"$log"
)sh";

// A runner, `sh -c kRunner runner AEC STORE KEY LOG NAME STOP CHILD`: `aec run --on-busy wait`
// again and again until the stop file appears (or the test process is gone), logging each
// run's exit code. A 4 s ttl: a runner cut off by the failover stops its child within seconds.
constexpr const char* kRunner = R"sh(i=0
while [ ! -e "$6" ] && [ $i -lt 200 ] && kill -0 "$PPID" 2>/dev/null; do
  i=$((i + 1))
  "$1" run --store "$2" --key "$3" --ttl 4s --on-busy wait -- sh -c "$7" child "$4" "$5"
  rc=$?
  echo "exit $5 $rc $(date +%s%N)" >>"$4"
done
)sh";

// The runner loops, started with posix_spawn (the test process runs gRPC's threads: no fork).
// Whatever still runs at the end is killed, so a failed test leaves no loop behind.
class Runners {
 public:
  explicit Runners(std::string stop_file) : stop_file_(std::move(stop_file)) {}
  ~Runners() {
    std::ofstream(stop_file_).flush();
    for (pid_t pid : pids_) {
      kill(pid, SIGKILL);
      wait_exit(pid);
    }
  }
  Runners(const Runners&) = delete;
  Runners& operator=(const Runners&) = delete;

  // Starts `sh -c SCRIPT runner ARGS...`, its output appended to `log`.
  [[nodiscard]] bool start(const std::string& script, const std::vector<std::string>& args,
                           const std::string& log) {
    std::vector<std::string> words = {"sh", "-c", script, "runner"};
    words.insert(words.end(), args.begin(), args.end());
    std::vector<char*> argv;
    argv.reserve(words.size() + 1);
    for (std::string& w : words) {
      argv.push_back(w.data());
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_addopen(&files, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&files, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&files, 1, 2);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, "/bin/sh", &files, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&files);
    if (rc == 0) {
      pids_.push_back(pid);
    }
    return rc == 0;
  }

  // Creates the stop file and waits, at most `within` in all, for every loop to exit. Their
  // exit codes; -2 for one still running (killed by the destructor).
  [[nodiscard]] std::vector<int> stop(std::chrono::seconds within) {
    std::ofstream(stop_file_).flush();
    std::map<pid_t, int> codes;
    (void)eventually(
        [&] {
          for (pid_t pid : pids_) {
            int status = 0;
            if (!codes.contains(pid) && waitpid(pid, &status, WNOHANG) == pid) {
              codes[pid] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
          }
          return codes.size() == pids_.size();
        },
        within);
    std::vector<int> out;
    std::erase_if(pids_, [&](pid_t pid) {
      out.push_back(codes.contains(pid) ? codes[pid] : -2);
      return codes.contains(pid);
    });
    return out;
  }

 private:
  std::string stop_file_;
  std::vector<pid_t> pids_;
};

// One line of a key's log.
struct Event {
  std::string kind;     // start | end | stop (from a child) | exit (its runner's `aec run`)
  std::string runner;   // rK.N
  long long token = 0;  // start, end, stop
  int code = -1;        // exit
  long long ns = 0;     // the wall clock, for the report only
};

std::optional<Event> parse(const std::string& line) {
  std::istringstream in(line);
  Event e;
  in >> e.kind;
  if (e.kind == "exit") {
    in >> e.runner >> e.code >> e.ns;
  } else {
    in >> e.token >> e.ns >> e.runner;
  }
  bool known = e.kind == "start" || e.kind == "end" || e.kind == "stop" || e.kind == "exit";
  return in && known ? std::optional(e) : std::nullopt;
}

// What the logs say happened, summed over the keys.
struct Tally {
  int grants = 0;               // children started
  int ended = 0;                // ... that ran their 0.4 s
  int stopped = 0;              // ... stopped by SIGTERM from their runner (lease at risk)
  int killed = 0;               // ... with no last line: SIGKILLed, dead when their runner exited
  int unstarted = 0;            // tokens handed out whose child never started (gaps)
  std::map<int, int> exits;     // `aec run` exit code -> how many
  long long longest_pause = 0;  // ns, the longest time between two grants on one key
};

// Reads one key's log in order and checks it: a start only while no child is live, tokens
// strictly increasing (so never repeated), every child's turn closed by its end, its stop, or
// its runner's exit. Adds what it saw to the tally.
class KeyLogCheck {
 public:
  KeyLogCheck(std::string log, Tally& tally) : log_(std::move(log)), tally_(tally) {}

  void run() {
    for (const std::string& line : read_lines(log_)) {
      std::optional<Event> e = parse(line);
      ASSERT_TRUE(e.has_value()) << log_ << ": unreadable line '" << line << "'";
      if (e->kind == "start") {
        child_started(*e);
      } else if (e->kind == "exit") {
        runner_exited(*e);
      } else {
        EXPECT_TRUE(live_ && live_->token == e->token)
            << log_ << ": '" << line << "' ends a child that is not live:\n"
            << read_file(log_);
        (e->kind == "end" ? tally_.ended : tally_.stopped)++;
        live_.reset();
      }
    }
    EXPECT_FALSE(live_.has_value()) << log_ << ": token " << live_->token << " never ended";
  }

 private:
  void child_started(const Event& e) {
    EXPECT_FALSE(live_.has_value())
        << log_ << ": token " << e.token << " (" << e.runner << ") started while token "
        << live_->token << " (" << live_->runner << ") was live:\n"
        << read_file(log_);
    EXPECT_GT(e.token, last_.token) << log_ << ": tokens out of order:\n" << read_file(log_);
    if (last_.ns != 0) {
      tally_.longest_pause = std::max(tally_.longest_pause, e.ns - last_.ns);
    }
    tally_.unstarted += static_cast<int>(e.token - last_.token - 1);
    tally_.grants++;
    last_ = e;
    live_ = e;
  }

  // The runner's `aec run` returned: its child, if still live, is dead (the runner waits for
  // it), though it logged no end.
  void runner_exited(const Event& e) {
    tally_.exits[e.code]++;
    if (live_ && live_->runner == e.runner) {
      tally_.killed++;
      live_.reset();
    }
  }

  std::string log_;
  Tally& tally_;
  std::optional<Event> live_;  // the child holding the key, as far as the log has been read
  Event last_;                 // the last child started
};

class EtcdLeaderKillTest : public ::testing::Test {
 protected:
  void SetUp() override {
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "gRPC is not built with ThreadSanitizer: its synchronisation is invisible";
#endif
    std::optional<EtcdCluster> cluster = testing::find_etcd_cluster();
    if (!cluster || cluster->dir.empty()) {
      GTEST_SKIP() << testing::no_etcd_cluster()
                   << " (this test kills the leader: it needs the pid files under the folder "
                      "of AEC_TEST_SERVERS_ENV)";
    }
    cluster_ = *cluster;
    auto client = etcd::Client::connect(cluster_.endpoints, {.rpc_timeout = 2s});
    ASSERT_TRUE(client.has_value()) << client.error().to_string();
    client_ = std::move(*client);
    prefix_ = fmt::format("lk-{:x}/", std::random_device{}());
  }

  void TearDown() override {
    (void)runners_.stop(30s);
    // Whatever happened, leave three members running for the next test.
    if (killed_) {
      Status s = testing::restart_member(cluster_, *killed_, *client_);
      EXPECT_TRUE(s.is_ok()) << s.to_string();
    }
    if (client_ != nullptr) {
      (void)client_->delete_range(prefix_, etcd::prefix_end(prefix_));
    }
  }

  [[nodiscard]] std::string log(int key) const {
    return dir_.file(fmt::format("k{}.log", key));
  }

  void start_runners() {
    std::string endpoints;
    for (const std::string& e : cluster_.endpoints) {
      endpoints += (endpoints.empty() ? "" : ",") + e;
    }
    const std::string store = fmt::format("etcd://{}?prefix={}", endpoints, prefix_);
    for (int k = 0; k < kKeys; ++k) {
      for (int n = 0; n < kRunnersPerKey; ++n) {
        std::string name = fmt::format("r{}.{}", k, n);
        ASSERT_TRUE(runners_.start(kRunner,
                                   {aec_binary(), store, fmt::format("leader-kill/k{}", k), log(k),
                                    name, dir_.file("stop"), kChild},
                                   dir_.file(name + ".out")));
      }
    }
  }

  // Children started so far, per key.
  [[nodiscard]] std::vector<int> grants() const {
    std::vector<int> counts;
    for (int k = 0; k < kKeys; ++k) {
      int n = 0;
      for (const std::string& line : read_lines(log(k))) {
        n += line.starts_with("start ") ? 1 : 0;
      }
      counts.push_back(n);
    }
    return counts;
  }

  // Polls until every key has had `more` grants since `since`; false after `within`.
  [[nodiscard]] bool more_grants_on_every_key(const std::vector<int>& since, int more,
                                              std::chrono::seconds within) const {
    return eventually(
        [&] {
          std::vector<int> now = grants();
          for (int k = 0; k < kKeys; ++k) {
            if (now[k] < since[k] + more) {
              return false;
            }
          }
          return true;
        },
        within);
  }

  // All three members follow one leader again, and the restarted one has caught up: it has
  // applied everything the leader had logged once they agreed.
  void expect_rejoined(const EtcdMember& member) {
    auto settled = testing::leader(*client_, cluster_);
    ASSERT_TRUE(settled.has_value()) << settled.error().to_string();
    auto lead = client_->status(settled->endpoint);
    ASSERT_TRUE(lead.has_value()) << lead.error().to_string();
    EXPECT_TRUE(eventually(
        [&] {
          auto status = client_->status(member.endpoint);
          return status && status->raftappliedindex() >= lead->raftindex();
        },
        10s))
        << "member " << member.n << " did not catch up with the leader";
  }

  // What aec said, from every runner's output (for a failure's message).
  [[nodiscard]] std::string runner_messages() const {
    std::string all;
    for (int k = 0; k < kKeys; ++k) {
      for (int n = 0; n < kRunnersPerKey; ++n) {
        std::string name = fmt::format("r{}.{}", k, n);
        for (const std::string& line : read_lines(dir_.file(name + ".out"))) {
          all += fmt::format("{}: {}\n", name, line);
        }
      }
    }
    return all;
  }

  // Reads every key's log once the runners are done, checks it, and says what happened.
  void check_logs(const std::string& progress) {
    Tally tally;
    for (int k = 0; k < kKeys; ++k) {
      KeyLogCheck(log(k), tally).run();
    }
    std::string exits;
    for (const auto& [code, count] : tally.exits) {
      EXPECT_TRUE(kAllowedExits.contains(code)) << count << " runs of aec exited " << code;
      exits += fmt::format(" {}x{}", count, code);
    }
    std::cout << fmt::format(
        "{}; {} children: {} ended, {} stopped, {} killed; {} tokens never used (lost before "
        "the child started, or an indeterminate grant); longest pause between grants on a key "
        "{} ms; aec exits:{}\n",
        progress, tally.grants, tally.ended, tally.stopped, tally.killed, tally.unstarted,
        tally.longest_pause / 1'000'000, exits);
    if (HasFailure()) {
      std::cout << runner_messages();
    }
  }

  EtcdCluster cluster_;
  std::unique_ptr<etcd::Client> client_;
  std::string prefix_;
  std::optional<EtcdMember> killed_;
  testing::TempDir dir_;
  Runners runners_{dir_.file("stop")};
};

int sum(const std::vector<int>& counts) {
  int total = 0;
  for (int c : counts) {
    total += c;
  }
  return total;
}

long long ms_since(Steady::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - t).count();
}

TEST_F(EtcdLeaderKillTest, NoKeyEverHasTwoHoldersAndWorkGoesOnThroughTheFailover) {
  const auto began = Steady::now();
  ASSERT_NO_FATAL_FAILURE(start_runners());
  // Two grants on every key before the kill: a handover has happened, the others are in line.
  ASSERT_TRUE(more_grants_on_every_key(std::vector<int>(kKeys, 0), 2, 30s))
      << "the runners did not get going:\n"
      << runner_messages();
  auto lead = testing::leader(*client_, cluster_);
  ASSERT_TRUE(lead.has_value()) << lead.error().to_string();
  const std::vector<int> at_kill = grants();
  const auto killed_at = Steady::now();
  Status killed = testing::kill_member(cluster_, *lead);
  ASSERT_TRUE(killed.is_ok()) << killed.to_string();
  killed_ = *lead;
  // Two more grants on every key: the first may have been decided before the kill (its child
  // logs its start a moment after the grant); the second was decided by the survivors.
  ASSERT_TRUE(more_grants_on_every_key(at_kill, 2, 20s)) << "grants did not resume:\n"
                                                         << runner_messages();
  const long long resumed_ms = ms_since(killed_at);
  Status restarted = testing::restart_member(cluster_, *lead, *client_);
  ASSERT_TRUE(restarted.is_ok()) << restarted.to_string();
  killed_.reset();
  ASSERT_NO_FATAL_FAILURE(expect_rejoined(*lead));
  const std::vector<int> at_rejoin = grants();
  ASSERT_TRUE(more_grants_on_every_key(at_rejoin, 2, 20s)) << "no grants after the rejoin:\n"
                                                           << runner_messages();
  for (int code : runners_.stop(30s)) {
    EXPECT_EQ(code, 0) << "a runner loop did not end by itself";
  }
  const std::vector<int> at_end = grants();
  check_logs(fmt::format(
      "leader m{} killed after {} grants; every key granted twice more within {} ms; {} grants "
      "until the rejoin, {} after; {} ms in all",
      lead->n, sum(at_kill), resumed_ms, sum(at_rejoin) - sum(at_kill),
      sum(at_end) - sum(at_rejoin), ms_since(began)));
}

}  // namespace
}  // namespace aec::e2e
