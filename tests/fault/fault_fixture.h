// The fixture of the fault tests on real processes (process_fault_test.cc: T1-T6, T9, T11;
// server_fault_test.cc: T8, T10): a store to break things around (sqlite, aecd over sqlite,
// postgres, etcd), runners of `aec run` over fault_child, the fenced sink they write to, worker
// processes calling the store directly, and the history all of them record, which the checker
// reads (checker.h). Every test prints one summary line and appends it to the summary file
// scripts/test.sh prints. Sizes: the CI figures from CMake, or the environment (soak.sh).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <aec/open_store.h>

#include "tests/e2e/aecd_process.h"
#include "tests/e2e/e2e_support.h"
#include "tests/fault/checker.h"
#include "tests/fault/fault_proxy.h"
#include "tests/fault/fenced_sink.h"
#include "tests/fault/history.h"
#include "tests/support/servers.h"
#include "tests/support/temp_dir.h"

namespace aec::fault {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

constexpr milliseconds kTtl = 1000ms;
constexpr const char* kFaketimeLib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
#ifdef AEC_FAULT_SANITIZED
constexpr bool kSanitized = true;  // slower processes: bounds are reported, not enforced
#else
constexpr bool kSanitized = false;
#endif

inline double ms(std::int64_t ns) {
  return static_cast<double>(ns) / 1e6;
}

// A test's size: its CI figure (set by CMake, smaller under a sanitizer), or the environment's
// value of the same name (scripts/soak.sh sets the soak figures that way).
inline int figure(const char* name, int ci) {
  const char* v = std::getenv(name);
  return v != nullptr && std::atoi(v) > 0 ? std::atoi(v) : ci;
}
#define AEC_FIGURE(NAME) figure(#NAME, NAME)

// A test's seed: AEC_FAULT_SEED when set (to run a printed schedule again), else a fresh one.
// Printed as "fault: TEST seed N" with the schedule it draws.
inline std::uint64_t fault_seed(const std::string& test) {
  const char* v = std::getenv("AEC_FAULT_SEED");
  std::uint64_t seed = v != nullptr ? std::strtoull(v, nullptr, 10) : std::random_device{}();
  std::cout << "fault: " << test << " seed " << seed << "\n";
  return seed;
}

// The p-th percentile (nearest rank) of `v`, in ms; 0 for none.
inline double percentile(std::vector<std::int64_t> v, double p) {
  if (v.empty()) {
    return 0;
  }
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return ms(v[std::clamp<std::size_t>(rank, 1, v.size()) - 1]);
}

// Appends `line` to the summary file: $AEC_FAULT_SUMMARY when set (scripts/soak.sh gives each of
// its runs a file of its own), else the build's fault-summary.txt.
inline void summary(const std::string& line) {
  std::cout << line << "\n";
  const char* file = std::getenv("AEC_FAULT_SUMMARY");
  std::ofstream(file != nullptr && *file != '\0' ? file : AEC_FAULT_SUMMARY, std::ios::app)
      << line << "\n";
}

// A store to break things around: its URL, and the aecd in front of it when there is one.
struct StoreSetup {
  std::string url;
  std::unique_ptr<e2e::AecdProcess> aecd;
  std::string skip;  // why it cannot run here, or ""
};

inline StoreSetup setup_store(const std::string& name, const std::string& dir,
                              const e2e::Env& env) {
  StoreSetup s;
  if (name == "sqlite") {
    s.url = "sqlite://" + dir + "/aec.db";
  } else if (name == "aecd") {
    s.aecd = std::make_unique<e2e::AecdProcess>("sqlite://" + dir + "/aecd.db", e2e::free_port(),
                                                dir + "/aecd.log", std::vector<std::string>{}, env);
    s.url = s.aecd->url();
  } else if (name == "postgres") {
    s.url = testing::server_setting("AEC_TEST_POSTGRES_URL").value_or("");
    s.skip = s.url.empty() ? testing::missing_server("AEC_TEST_POSTGRES_URL") : "";
  } else if (name == "etcd") {
    std::string endpoints = testing::server_setting("AEC_TEST_ETCD_ENDPOINTS").value_or("");
    s.url = endpoints.empty() ? "" : "etcd://" + endpoints;
    s.skip = endpoints.empty() ? testing::missing_server("AEC_TEST_ETCD_ENDPOINTS") : "";
  } else if (name == "dynamodb") {
    std::string endpoint = testing::server_setting("AEC_TEST_DYNAMODB_ENDPOINT").value_or("");
    s.url = endpoint.empty()
                ? ""
                : "dynamodb://aec-fault?region=eu-west-1&create=true&endpoint=" + endpoint;
    s.skip = endpoint.empty() ? testing::missing_server("AEC_TEST_DYNAMODB_ENDPOINT") : "";
    // dynalite checks that a request is signed, not by whom; the runners inherit these.
    setenv("AWS_ACCESS_KEY_ID", "AKIDAECTEST", 0);
    setenv("AWS_SECRET_ACCESS_KEY", "aec-test-secret", 0);
  }
  return s;
}

// A unique key prefix per test run: the servers fixture's stores outlive the tests.
inline std::string unique_prefix(const std::string& test) {
  return "fault/" + test + "/" + std::to_string(getpid()) + "-" + std::to_string(boot_ns());
}

// Starts ARGV in a new process group (its pgid is its pid), stdout and stderr appended to `log`.
inline pid_t spawn_group(const std::vector<std::string>& words,
                         const std::vector<std::string>& env_add, const std::string& log) {
  std::vector<std::string> env_words;
  for (char** e = environ; *e != nullptr; ++e) {
    env_words.emplace_back(*e);
  }
  env_words.insert(env_words.end(), env_add.begin(), env_add.end());
  auto pointers = [](std::vector<std::string>& v) {
    std::vector<char*> out;
    for (std::string& s : v) {
      out.push_back(s.data());
    }
    out.push_back(nullptr);
    return out;
  };
  std::vector<std::string> argv_words = words;
  std::vector<char*> argv = pointers(argv_words);
  std::vector<char*> envp = pointers(env_words);
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&files, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&files, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &files, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&files);
  posix_spawnattr_destroy(&attr);
  return rc == 0 ? pid : -1;
}

// The exit code of `pid` once it exits within `timeout` (128+N for signal N), else nullopt.
inline std::optional<int> wait_exit_within(pid_t pid, milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (std::chrono::steady_clock::now() >= until) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(5ms);  // polling a child's state: nothing to block on here
  }
}

// The stores every fault test is instantiated for (a test skips those it does not apply to).
inline std::vector<std::string> fault_stores() {
  return {"sqlite", "aecd", "postgres", "etcd", "dynamodb"};
}

class ProcessFaultTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    if (test.starts_with("T6")) {
      if (kSanitized || access(kFaketimeLib, R_OK) != 0) {
        GTEST_SKIP() << "T6 needs libfaketime (Debian package faketime) and a build without "
                        "sanitizers (their runtime must load first)";
      }
      // Only the wall clock is faked, by the offset in the file, read again at every call.
      std::ofstream(clock_file_) << "+0\n";
      fake_env_ = {{"LD_PRELOAD", kFaketimeLib},
                   {"FAKETIME_TIMESTAMP_FILE", clock_file_},
                   {"FAKETIME_NO_CACHE", "1"},
                   {"FAKETIME_DONT_FAKE_MONOTONIC", "1"}};
    }
    store_ = setup_store(GetParam(), dir_.path().string(), fake_env_);
    if (!store_.skip.empty()) {
      GTEST_SKIP() << store_.skip;
    }
    sink_ = std::make_unique<FencedSink>(history_);
    std::cout << "fault: store " << GetParam() << " at " << store_.url << ", history "
              << history_path_ << "\n";
  }

  void TearDown() override {
    for (auto& [client, r] : runners_) {
      if (r.pid > 0) {
        kill(-r.pid, SIGKILL);
        if (r.child > 0) {
          kill(-r.child, SIGKILL);
        }
        wait_exit_within(r.pid, 5s);
      }
    }
  }

  struct Runner {
    pid_t pid = -1;    // `aec run`, the leader of its process group
    pid_t child = -1;  // its fault_child, in a group of its own, once it said hello
    std::int64_t token = 0;
    std::int64_t started = 0;  // boot ns of the child's hello
  };

  // Starts runner `client`: `aec run --on-busy wait` over fault_child on `key`, talking to the
  // store at `url` (default: the store's own).
  Runner& start_runner(int client, const std::string& key, const std::string& url = "") {
    Runner& r = runners_[client];
    r.pid = spawn_group({e2e::aec_binary(), "run", "--store", url.empty() ? store_.url : url,
                         "--key", key, "--ttl", "1s", "--on-busy", "wait", "--execution-id",
                         "r" + std::to_string(client), "--quiet", "--", AEC_FAULT_CHILD},
                        runner_env(client), dir_.file("runners.log"));
    EXPECT_GT(r.pid, 0) << "cannot start aec run";
    history_.add(Event{boot_ns(), r.pid, EventKind::Invoke, key, 0, "run", 0, client});
    return r;
  }

  std::vector<std::string> runner_env(int client) const {
    std::vector<std::string> env = {"AEC_SINK=" + sink_->address(),
                                    "FAULT_CLIENT=" + std::to_string(client)};
    for (const auto& [name, value] : fake_env_) {
      env.push_back(name + "=" + value);
    }
    return env;
  }

  // Waits for runner `client`'s child to say hello; false after 15 s.
  bool await_child(int client) {
    std::optional<Event> hello = sink_->wait_start(client, 0, 15s);
    if (!hello) {
      return false;
    }
    Runner& r = runners_[client];
    r.child = hello->pid;
    r.token = hello->token;
    r.started = hello->t;
    return true;
  }

  // Waits (at most 5 s) until runner `client` has a place in the key's line, so that it is
  // waiting, not still starting, when the fault comes. Through aecd a parked caller may not be in
  // the store's line: then the test goes on after the 5 s.
  void await_in_line(const std::string& key, int client) {
    std::string id = "r" + std::to_string(client);
    auto until = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < until) {
      Result<KeyState> st = reader().get(key);
      if (st.has_value() && std::find(st->queue.begin(), st->queue.end(), id) != st->queue.end()) {
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
  }

  Store& reader() {
    if (!reader_) {
      Result<std::unique_ptr<Store>> s = open_store(store_.url);
      EXPECT_TRUE(s.has_value()) << s.status().message();
      reader_ = std::move(*s);
    }
    return *reader_;
  }

  // The runner's exit code, recorded; -1 if it has not exited within `timeout`.
  int reap(int client, milliseconds timeout) {
    Runner& r = runners_[client];
    std::optional<int> code = wait_exit_within(r.pid, timeout);
    history_.add(
        Event{boot_ns(), r.pid, EventKind::Exit, "", r.token, "run", code.value_or(-1), client});
    if (code) {
      r.pid = -1;
    }
    return code.value_or(-1);
  }

  void fault(const std::string& what, const Runner& r) {
    history_.add(Event{boot_ns(), r.pid, EventKind::Fault, "", r.token, what, 0, 0});
  }

  CheckReport check() {
    CheckReport report = check_children(history_.events());
    for (const std::string& v : report.violations) {
      ADD_FAILURE() << v;
    }
    return report;
  }

  std::string name() const { return GetParam(); }

  // T2 and T3: kill -9 the holder (`group`: runner and child; else the runner alone) while
  // the next runner waits, `cycles` times in a row on one key.
  // `before_kill(c)`, if given, injects a fault into cycle c before the kill and says which.
  void kill_cycles(const std::string& test, int cycles, bool group,
                   const std::function<std::string(int)>& before_kill = {});

  testing::TempDir dir_;
  std::string history_path_ = dir_.file("history.txt");
  History history_{history_path_};
  StoreSetup store_;
  std::unique_ptr<FencedSink> sink_;
  std::unique_ptr<Store> reader_;
  std::map<int, Runner> runners_;
  std::string clock_file_ = dir_.file("faketime.txt");  // T6: the wall clock's offset
  e2e::Env fake_env_;                                   // T6: libfaketime for runners and aecd
};

// Workers calling the store directly (fault_worker), each writing its own history file; the
// checker reads them merged. Used by T1, T8 and T9.
class Workers {
 public:
  Workers(std::string store, std::string dir, std::uint64_t seed)
      : store_(std::move(store)),
        dir_(std::move(dir)),
        prefix_(unique_prefix("calls")),
        seed_(seed) {}
  ~Workers() {
    for (auto& [client, pid] : live_) {
      kill(pid, SIGKILL);
      wait_exit_within(pid, 5s);
    }
  }
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  // Starts worker number `client` (1, 2, ...) making `ops` calls, at most `pace_ms` apart,
  // losing 1 in `lose` answers (0: none; T13).
  pid_t start(int client, int ops, int pace_ms, int lose = 0) {
    pid_t pid = spawn_group(
        {AEC_FAULT_WORKER, "--store", store_, "--prefix", prefix_, "--client",
         std::to_string(client), "--ops", std::to_string(ops), "--seed",
         std::to_string(seed_ + static_cast<std::uint64_t>(client)), "--pace",
         std::to_string(pace_ms), "--lose", std::to_string(lose), "--history", file(client)},
        {}, dir_ + "/workers.log");
    EXPECT_GT(pid, 0) << "cannot start a worker";
    live_[client] = pid;
    clients_.push_back(client);
    return pid;
  }
  // kill -9 of worker `client`, whatever call it is in the middle of.
  void kill9(int client) {
    kill(live_.at(client), SIGKILL);
    wait_exit_within(live_.at(client), 5s);
    live_.erase(client);
  }
  // Waits for every live worker to finish; false if one fails or does not finish in time.
  [[nodiscard]] bool finish(milliseconds within) {
    bool ok = true;
    for (auto& [client, pid] : live_) {
      std::optional<int> code = wait_exit_within(pid, within);
      EXPECT_EQ(code, std::optional<int>(0))
          << "worker " << client << ": " << e2e::read_file(dir_ + "/workers.log");
      ok = ok && code == 0;
    }
    live_.clear();
    return ok;
  }
  // Waits until worker `client` has had an answer to `n` of its calls (its history file says
  // so): it is running, not still starting, when the fault comes. False after `within`.
  [[nodiscard]] bool await_answers(int client, int n, milliseconds within) {
    auto until = std::chrono::steady_clock::now() + within;
    for (;;) {
      History h;
      (void)h.merge_file(file(client));  // not there yet, or a line half written: fewer answers
      std::vector<Event> events = h.events();
      auto answers = std::count_if(events.begin(), events.end(), [](const Event& e) {
        return e.kind == EventKind::Ok || e.kind == EventKind::Fail || e.kind == EventKind::Info;
      });
      if (answers >= n) {
        return true;
      }
      if (std::chrono::steady_clock::now() >= until) {
        return false;
      }
      std::this_thread::sleep_for(5ms);
    }
  }
  std::vector<int> live() const {
    std::vector<int> out;
    for (const auto& [client, pid] : live_) {
      out.push_back(client);
    }
    return out;
  }
  // The merged histories, checked; every violation is a test failure.
  CheckReport check() const {
    History all;
    for (int client : clients_) {
      EXPECT_TRUE(all.merge_file(file(client))) << "unreadable history " << file(client);
    }
    std::map<std::string, int> limits = {
        {prefix_ + "/0", 1}, {prefix_ + "/1", 1}, {prefix_ + "/2", 2}, {prefix_ + "/3", 2}};
    std::vector<Event> events = all.events();
    CheckReport report = check_calls(events, limits);
    for (const std::string& v : report.violations) {
      ADD_FAILURE() << v;
    }
    if (!report.violations.empty()) {
      // The temporary folder goes with the test: keep the merged history for a post-mortem.
      std::string kept = "/tmp/aec-fault-history-" + std::to_string(getpid()) + ".txt";
      std::ofstream out(kept);
      for (const Event& e : events) {
        out << to_line(e) << "\n";
      }
      ADD_FAILURE() << "the merged history is kept in " << kept;
    }
    return report;
  }

 private:
  std::string file(int client) const { return dir_ + "/worker-" + std::to_string(client) + ".txt"; }
  std::string store_;
  std::string dir_;
  std::string prefix_;
  std::uint64_t seed_;
  std::map<int, pid_t> live_;
  std::vector<int> clients_;
};

inline std::string calls_summary(const std::string& store, const std::string& test,
                                 std::uint64_t seed, const CheckReport& r) {
  return "fault: store=" + store + " test=" + test + " seed=" + std::to_string(seed) +
         " calls=" + std::to_string(r.calls) + " grants=" + std::to_string(r.grants) +
         " indeterminate=" + std::to_string(r.indeterminate) +
         " violations=" + std::to_string(r.violations.size());
}

// The store's URL with its (first) host:port replaced by 127.0.0.1:`port`, and where it points.
struct Rerouted {
  std::string url;
  std::string host;
  int port = 0;
};
inline std::optional<Rerouted> reroute(const std::string& url, int port) {
  if (url.starts_with("dynamodb://")) {
    // The server is the endpoint parameter's, which ends the URL (setup_store).
    std::size_t at = url.find("endpoint=http://");
    if (at == std::string::npos) {
      return std::nullopt;
    }
    std::string hostport = url.substr(at + 16);
    std::size_t colon = hostport.rfind(':');
    if (colon == std::string::npos) {
      return std::nullopt;
    }
    return Rerouted{.url = url.substr(0, at + 16) + "127.0.0.1:" + std::to_string(port),
                    .host = hostport.substr(0, colon),
                    .port = std::atoi(hostport.c_str() + colon + 1)};
  }
  std::size_t start = url.find("://");
  if (start == std::string::npos) {
    return std::nullopt;
  }
  start += 3;
  std::size_t at = url.find('@', start);
  std::size_t slash = url.find('/', start);
  if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
    start = at + 1;
  }
  std::size_t end = url.find_first_of(",/?", start);
  end = end == std::string::npos ? url.size() : end;
  std::string hostport = url.substr(start, end - start);
  std::size_t colon = hostport.rfind(':');
  if (colon == std::string::npos) {
    return std::nullopt;
  }
  Rerouted r;
  r.host = hostport.substr(0, colon);
  r.port = std::atoi(hostport.c_str() + colon + 1);
  // etcd: one member only, through the proxy (the others would route around the fault).
  std::size_t rest = url.find_first_of("/?", end);
  r.url = url.substr(0, start) + "127.0.0.1:" + std::to_string(port) +
          (rest == std::string::npos ? "" : url.substr(rest));
  return r;
}

inline void ProcessFaultTest::kill_cycles(const std::string& test, int cycles, bool group,
                                          const std::function<std::string(int)>& before_kill) {
  std::string key = unique_prefix(test);
  start_runner(0, key);
  ASSERT_TRUE(await_child(0)) << "the first runner's child never started";
  std::vector<std::int64_t> takeovers;
  std::vector<std::int64_t> orphan_deaths;
  for (int c = 0; c < cycles; ++c) {
    int next = c + 1;
    start_runner(next, key);
    await_in_line(key, next);
    Runner& holder = runners_[c];
    if (before_kill) {
      fault(before_kill(c), holder);
    }
    std::int64_t t_kill = boot_ns();
    if (group) {
      fault("kill9-group", holder);
      kill(-holder.pid, SIGKILL);
      kill(-holder.child, SIGKILL);
    } else {
      fault("kill9-runner", holder);
      kill(holder.pid, SIGKILL);
    }
    std::optional<Event> end = sink_->wait_end(holder.child, 10s);
    ASSERT_TRUE(end.has_value()) << "the holder's child (pid " << holder.child << ") did not die";
    ASSERT_TRUE(await_child(next)) << "cycle " << c << ": nobody took over";
    Runner& taker = runners_[next];
    takeovers.push_back(taker.started - t_kill);
    EXPECT_LT(end->t, taker.started) << "cycle " << c << ": the old child outlived the takeover";
    EXPECT_GT(taker.token, holder.token);
    if (!group) {
      orphan_deaths.push_back(end->t - t_kill);
      // I4: the orphan must die before its lease could expire. The runner renewed at most
      // ttl/3 before the kill, so the lease lives at least 2/3 ttl past it.
      EXPECT_LT(end->t - t_kill, (kTtl * 2 / 3).count() * 1'000'000)
          << "cycle " << c << ": the orphaned child lived " << ms(end->t - t_kill)
          << " ms after its runner died";
    }
    EXPECT_EQ(reap(c, 5s), 128 + SIGKILL);
  }
  // The last holder ends the normal way: SIGTERM to its runner, which stops its child.
  Runner& last = runners_[cycles];
  kill(last.pid, SIGTERM);
  EXPECT_NE(reap(cycles, 10s), -1);
  CheckReport report = check();
  EXPECT_EQ(report.overlap_ns, 0) << "two children of one key were alive at once";
  EXPECT_EQ(report.late_starts, 0) << "a child started behind a newer token (nobody was paused)";
  double p99 = percentile(takeovers, 99);
  double max = percentile(takeovers, 100);
  // etcd: its lease ttl is whole seconds. dynamodb: the waiter counts the ttl from its own first
  // sighting of the holder's last renewal, which it may see up to ttl/8 late (its polling).
  double slack = name() == "etcd" ? 1000 : name() == "dynamodb" ? 400 : 200;
  if (before_kill && name() != "etcd") {
    // T6: the stores that count leases on a monotonic clock (sqlite, aecd) or on the server's
    // (postgres; only the runners' clocks were stepped) take over as without the steps: never
    // before the 2/3 ttl the lease had left at the kill (a forward step would end it early), and
    // within T2's bounds (a backward step would stretch it by the step).
    EXPECT_GE(percentile(takeovers, 0), static_cast<double>(kTtl.count()) * 2 / 3 - 50)
        << test << ": a lease ended early";
  }
  if (!kSanitized) {
    EXPECT_LE(p99, static_cast<double>(kTtl.count()) + slack) << test << " takeover p99";
    EXPECT_LE(max, static_cast<double>(kTtl.count()) + slack + 300) << test << " takeover max";
  }
  std::ostringstream line;
  line << "fault: store=" << name() << " test=" << test << " cycles=" << cycles
       << " violations=" << report.violations.size() << " takeover_p50_ms=" << std::fixed
       << std::setprecision(0) << percentile(takeovers, 50) << " takeover_p99_ms=" << p99
       << " takeover_max_ms=" << max;
  if (!group) {
    line << " orphan_death_p99_ms=" << std::setprecision(1) << percentile(orphan_deaths, 99);
  }
  summary(line.str());
}

}  // namespace aec::fault
