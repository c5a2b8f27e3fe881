// The aec command end to end: exit codes, --once, input checking, store errors, busy keys,
// termination messages, the admin verbs and labels, each against the real binary and a real
// sqlite file in its own temporary directory.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/e2e/e2e_support.h"
#include "tests/support/canned_http.h"

namespace aec::e2e {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kPatience{10'000};  // upper bound for anything a test waits on

bool exists(const std::string& path) {
  return access(path.c_str(), F_OK) == 0;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

std::vector<std::string> cat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Json read_json(const std::string& file) {
  return Json::parse(read_file(file), nullptr, /*allow_exceptions=*/false);
}

std::size_t line_count(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

std::string user_name() {
  const passwd* pw = getpwuid(geteuid());
  return pw != nullptr && pw->pw_name != nullptr ? pw->pw_name : "";
}

// waitpid with a deadline: the exit code, or nullopt if `pid` is still running at `timeout`.
std::optional<int> wait_exit_within(pid_t pid, milliseconds timeout = kPatience) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (r < 0 || Clock::now() >= deadline) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
}

// "" when equal, else where two byte strings first differ (gtest would print every byte).
std::string difference(const std::string& a, const std::string& b) {
  auto [ia, ib] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  if (ia == a.end() && ib == b.end()) {
    return "";
  }
  return "sizes " + std::to_string(a.size()) + " -> " + std::to_string(b.size()) +
         ", first difference at byte " + std::to_string(ia - a.begin());
}

bool still_running(pid_t pid) {
  int status = 0;
  return waitpid(pid, &status, WNOHANG) == 0;
}

// A temporary directory with an aec store in it, removed at the end.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The children inherit this process's environment: keep the caller's settings out of it.
    for (const char* name : {"AEC_STORE", "AEC_RUN_ENABLED", "VDK_EXECUTION_SKIP_CHECKER_ENABLED",
                             "AEC_TERMINATION_MESSAGE_PATH"}) {
      unsetenv(name);
    }
    char tmpl[] = "/tmp/aec-cli-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    db_ = dir_ + "/aec.db";
    store_ = "sqlite://" + db_;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // `aec VERB --store STORE ARGS...`: args[0] is the verb.
  Output aec(std::vector<std::string> args, const Env& env = {}) const {
    args.insert(args.begin() + 1, {"--store", store_});
    return run_aec(args, env);
  }

  Json aec_json(std::vector<std::string> args) const {
    args.emplace_back("--json");
    Output o = aec(std::move(args));
    EXPECT_EQ(o.exit_code, 0) << o.err;
    return Json::parse(o.out, nullptr, /*allow_exceptions=*/false);
  }

  Json history(const std::string& key) const { return aec_json({"history", key}); }
  std::string list_json() const { return aec({"list", "--json"}).out; }

  std::string dir_;
  std::string db_;
  std::string store_;
};

// A background `aec run` that holds a key until finish() (or the end of the test): its command
// writes AEC_EXECUTION_ID, AEC_FENCING_TOKEN and its pid to a file, then waits for a "go" file.
class Holder {
 public:
  Holder(const std::string& base, const std::string& store, const std::string& key,
         std::vector<std::string> extra = {})
      : dir_(base + "/holder-" + key) {
    std::filesystem::create_directories(dir_);
    std::vector<std::string> args = {"run", "--key", key, "--store", store};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"--", "sh", "-c", script(), "holder", dir_});
    pid_ = spawn_aec(args, {}, dir_ + "/log");
  }
  ~Holder() { finish(); }
  Holder(const Holder&) = delete;
  Holder& operator=(const Holder&) = delete;

  // True once the command runs under the lease.
  bool started() const { return wait_for_file(dir_ + "/started", kPatience); }
  std::string id() const { return line(0); }
  std::int64_t token() const { return std::stoll(line(1)); }
  pid_t command_pid() const { return std::stoi(line(2)); }
  std::string log() const { return read_file(dir_ + "/log"); }

  // Lets the command end and returns aec's exit code (nullopt if it did not end in time).
  std::optional<int> finish() {
    if (!code_ && pid_ > 0) {
      write_file(dir_ + "/go", "");
      code_ = wait_exit_within(pid_);
      if (!code_) {
        kill(pid_, SIGKILL);
        wait_exit(pid_);
      }
      pid_ = -1;
    }
    return code_;
  }
  // Waits for aec to exit on its own (e.g. after losing its lease), without letting it finish.
  std::optional<int> exit_within(milliseconds timeout) {
    code_ = wait_exit_within(pid_, timeout);
    if (code_) {
      pid_ = -1;
    }
    return code_;
  }

 private:
  // Bounded loop: even a test that never says "go" leaves no process behind for long.
  static std::string script() {
    return "printf '%s\\n%s\\n%s\\n' \"$AEC_EXECUTION_ID\" \"$AEC_FENCING_TOKEN\" $$ "
           ">\"$1/ids.tmp\" && mv \"$1/ids.tmp\" \"$1/started\"; i=0; "
           "while [ ! -e \"$1/go\" ] && [ $i -lt 1500 ]; do sleep 0.02; i=$((i+1)); done";
  }
  std::string line(std::size_t i) const {
    std::vector<std::string> lines = read_lines(dir_ + "/started");
    return i < lines.size() ? lines[i] : "";
  }

  std::string dir_;
  pid_t pid_ = -1;
  std::optional<int> code_;
};

// ---- 1. Exit codes ----------------------------------------------------------------------------

TEST_F(CliTest, ExitCodesPassThroughAndFailuresAreRecorded) {
  write_file(path("plain.txt"), "not a program\n");
  chmod(path("plain.txt").c_str(), 0644);
  std::vector<std::pair<std::vector<std::string>, int>> cases = {
      {{"sh", "-c", "exit 42"}, 42},
      {{"sh", "-c", "kill -KILL $$"}, 137},  // 128 + SIGKILL
      {{"aec-no-such-command-xyz"}, 127},
      {{path("plain.txt")}, 126},  // exists, not executable
  };
  std::vector<int> expected;
  for (const auto& [cmd, code] : cases) {
    EXPECT_EQ(aec(cat({"run", "--key", "k", "--"}, cmd)).exit_code, code) << cmd[0];
    expected.insert(expected.begin(), code);  // history is newest first
  }
  std::vector<int> recorded;
  for (const Json& e : history("k")) {
    EXPECT_EQ(e["status"], "failed") << e.dump();
    recorded.push_back(e["exit_code"].is_number() ? e["exit_code"].get<int>() : -1);
  }
  EXPECT_EQ(recorded, expected);
  EXPECT_EQ(aec({"run", "--key", "k", "--", "true"}).exit_code, 0);
}

// The renewal threads start only when the first renewal is near (ttl/3): a command that runs
// for more than two ttls must still have been renewed all along.
TEST_F(CliTest, ACommandRunningPastItsTtlKeepsTheLeaseByRenewingIt) {
  Output o = aec({"run", "--key", "k", "--ttl", "1s", "--", "sleep", "2.5"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  Json e = history("k")[0];
  EXPECT_EQ(e["status"], "succeeded") << e.dump();
}

// ---- 2. --once --------------------------------------------------------------------------------

TEST_F(CliTest, OnceSkipsAKeyThatAlreadySucceeded) {
  ASSERT_EQ(aec({"run", "--key", "job", "--once", "--", "true"}).exit_code, 0);
  Output second = aec({"run", "--key", "job", "--once", "--termination-message", path("tm"), "--",
                       "touch", path("marker")});
  EXPECT_EQ(second.exit_code, 0);
  EXPECT_FALSE(exists(path("marker")));
  EXPECT_NE(second.err.find("already done"), std::string::npos) << second.err;
  Json tm = read_json(path("tm"));
  EXPECT_EQ(tm["status"], "skipped") << tm.dump();
}

TEST_F(CliTest, OnceRunsAgainAfterAFailedRun) {
  ASSERT_EQ(aec({"run", "--key", "job", "--once", "--", "false"}).exit_code, 1);
  Output second = aec({"run", "--key", "job", "--once", "--", "touch", path("marker")});
  EXPECT_EQ(second.exit_code, 0) << second.err;
  EXPECT_TRUE(exists(path("marker")));
  EXPECT_EQ(history("job")[0]["status"], "succeeded");
}

// ---- 3. Bad input -----------------------------------------------------------------------------

struct BadInput {
  std::string name;
  std::vector<std::string> args;  // after "aec run --store STORE"
  std::string says;               // the one stderr line names the problem with this
};

std::vector<BadInput> bad_inputs() {
  return {
      {"empty key", {"--key", "", "--", "true"}, "--key"},
      {"513-byte key", {"--key", std::string(513, 'a'), "--", "true"}, "512"},
      {"tab in key", {"--key", "a\tb", "--", "true"}, "control character"},
      {"\\x01 key", {"--key", "\x01", "--", "true"}, "control character"},
      {"invalid UTF-8 key", {"--key", "a\xff\xfe", "--", "true"}, "UTF-8"},
      {"bad --ttl", {"--key", "k", "--ttl", "10x", "--", "true"}, "10x"},
      {"bad --on-busy wait", {"--key", "k", "--on-busy", "wait=abc", "--", "true"}, "abc"},
      {"missing command", {"--key", "k"}, "no command"},
      {"unknown flag", {"--key", "k", "--bogus", "--", "true"}, "--bogus"},
      {"bad label", {"--key", "k", "--label", "novalue", "--", "true"}, "novalue"},
      {"--team with --key", {"--key", "k", "--team", "t", "--job", "j", "--", "true"}, "not both"},
      {"--team without --job", {"--team", "t", "--", "true"}, "--team needs --job"},
      {"--job without --team", {"--job", "j", "--", "true"}, "--job needs --team"},
      {"empty --team", {"--team", "", "--job", "j", "--", "true"}, "team name is empty"},
      {"slash in --job", {"--team", "t", "--job", "a/b", "--", "true"}, "contains '/'"},
      // Fuzz bug "huge-duration": now + ttl overflowed.
      {"--ttl past 3650d", {"--key", "k", "--ttl", "3651d", "--", "true"}, "at most 3650d"},
      {"--on-busy wait past 3650d",
       {"--key", "k", "--on-busy", "wait=9999999d", "--", "true"},
       "at most 3650d"},
      // Fuzz bug "termination-utf8": the id is recorded and written into the message.
      {"invalid UTF-8 --execution-id",
       {"--key", "k", "--execution-id", "\xff", "--", "true"},
       "--execution-id is not valid UTF-8"},
      {"newline in --execution-id",
       {"--key", "k", "--execution-id", "a\nb", "--", "true"},
       "--execution-id contains control character U+000A"},
  };
}

void expect_usage_error(const Output& o, const std::string& says, const std::string& name) {
  EXPECT_EQ(o.exit_code, 64) << name << ": " << o.err;
  EXPECT_EQ(line_count(o.err), 1U) << name << ": " << o.err;
  EXPECT_NE(o.err.find(says), std::string::npos) << name << ": " << o.err;
}

// Each case runs twice: on a path with no store (which it must not create) and on a store with
// history (which it must not change).
TEST_F(CliTest, BadInputIsAUsageErrorAndTouchesNoStore) {
  ASSERT_EQ(aec({"run", "--key", "k", "--", "true"}).exit_code, 0);
  std::string before = list_json();
  std::string fresh = path("fresh.db");
  for (const BadInput& b : bad_inputs()) {
    expect_usage_error(run_aec(cat({"run", "--store", "sqlite://" + fresh}, b.args)), b.says,
                       b.name);
    EXPECT_FALSE(exists(fresh)) << b.name << " created the store";
    expect_usage_error(aec(cat({"run"}, b.args)), b.says, b.name);
    EXPECT_EQ(list_json(), before) << b.name;
  }
}

TEST_F(CliTest, UnknownStoreSchemeIsAUsageError) {
  Output o = run_aec({"run", "--key", "k", "--store", "redis://x", "--", "touch", path("m")});
  expect_usage_error(o, "redis", "redis://x");
  EXPECT_FALSE(exists(path("m")));
}

// The light aec hands a network store to aec-full (execv, the same process): the answer is the
// http store's own, from the full binary found next to aec.
TEST_F(CliTest, ANetworkStoreIsServedByAecFull) {
  Output o = run_aec({"run", "--key", "k", "--store", "http://127.0.0.1:9", "--on-busy", "fail",
                      "--", "touch", path("m")});
  EXPECT_EQ(o.exit_code, 69) << o.err;
  EXPECT_NE(o.err.find("cannot reach aecd at http://127.0.0.1:9"), std::string::npos) << o.err;
  EXPECT_FALSE(exists(path("m")));
}

// A light aec without its aec-full says so, and where it looked, and runs nothing.
TEST_F(CliTest, ANetworkStoreWithoutAecFullSaysWhereItLooked) {
  const std::string lonely = path("lonely");
  ASSERT_EQ(mkdir(lonely.c_str(), 0755), 0);
  std::filesystem::copy_file(aec_binary(), lonely + "/aec");
  Output o = run_binary(
      lonely + "/aec",
      {"run", "--key", "k", "--store", "postgres://aec@127.0.0.1:9/aec", "--", "touch", path("m")});
  EXPECT_EQ(o.exit_code, 78) << o.err;
  EXPECT_EQ(line_count(o.err), 1U) << o.err;
  EXPECT_NE(o.err.find("the postgres:// store needs aec-full"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find(lonely + "/aec-full"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("No such file or directory"), std::string::npos) << o.err;
  EXPECT_FALSE(exists(path("m")));
  o = run_binary(lonely + "/aec", {"serve", "--store", "memory:"});
  EXPECT_EQ(o.exit_code, 78) << o.err;
  EXPECT_NE(o.err.find("aec serve needs aec-full"), std::string::npos) << o.err;
  // There but not runnable (no execute permission, which even root needs): the reason is given.
  write_file(lonely + "/aec-full", "not a program\n");
  ASSERT_EQ(chmod((lonely + "/aec-full").c_str(), 0644), 0);
  o = run_binary(lonely + "/aec", {"status", "k", "--store", "https://127.0.0.1:9"});
  EXPECT_EQ(o.exit_code, 78) << o.err;
  EXPECT_NE(o.err.find("Permission denied"), std::string::npos) << o.err;
}

// The light aec speaks to aecd over http:// itself (aec's own transport, no libcurl): alone, with
// no aec-full next to it, it reaches the server, or says it cannot.
TEST_F(CliTest, TheLightAecServesAnHttpStoreWithoutAecFull) {
  const std::string lonely = path("lonely");
  ASSERT_EQ(mkdir(lonely.c_str(), 0755), 0);
  std::filesystem::copy_file(aec_binary(), lonely + "/aec");
  Output o = run_binary(lonely + "/aec", {"status", "k", "--store", "http://127.0.0.1:9"});
  EXPECT_EQ(o.exit_code, 69) << o.err;
  EXPECT_NE(o.err.find("cannot reach aecd at http://127.0.0.1:9"), std::string::npos) << o.err;
  EXPECT_EQ(o.err.find("aec-full"), std::string::npos) << o.err;
}

TEST_F(CliTest, UnknownVerbSuggestsTheClosestOne) {
  Output o = run_aec({"rnu", "--key", "k"});
  EXPECT_EQ(o.exit_code, 64);
  EXPECT_EQ(line_count(o.err), 1U) << o.err;
  EXPECT_NE(o.err.find("did you mean 'run'"), std::string::npos) << o.err;
}

TEST_F(CliTest, GarbageStoreFileIsDataErrorAndLeftUnchanged) {
  std::string garbage(4096, '\0');
  for (std::size_t i = 0; i < garbage.size(); ++i) {
    garbage[i] = static_cast<char>((i * 7919 + 13) % 251);
  }
  write_file(db_, garbage);
  Output o = aec({"run", "--key", "k", "--", "touch", path("m")});
  EXPECT_EQ(o.exit_code, 65) << o.err;
  EXPECT_EQ(line_count(o.err), 1U) << o.err;
  EXPECT_FALSE(exists(path("m")));
  EXPECT_EQ(difference(garbage, read_file(db_)), "");
}

// Creates an SQLite database with one table of its own; false when no sqlite3 CLI is installed.
bool make_foreign_db(const std::string& file) {
  if (std::system("command -v sqlite3 >/dev/null 2>&1") != 0) {
    return false;
  }
  std::string cmd = "sqlite3 '" + file + "' 'create table t(x); insert into t values(1)'";
  return std::system(cmd.c_str()) == 0;
}

TEST_F(CliTest, AnotherApplicationsSqliteDbIsRefusedWithDataError) {
  if (!make_foreign_db(db_)) {
    GTEST_SKIP() << "no sqlite3 command";
  }
  Output o = aec({"run", "--key", "k", "--", "touch", path("m")});
  EXPECT_EQ(o.exit_code, 65) << o.err;
  EXPECT_EQ(line_count(o.err), 1U) << o.err;
  EXPECT_NE(o.err.find("not an aec store"), std::string::npos) << o.err;
  EXPECT_FALSE(exists(path("m")));
}

// Refusing a foreign database must not write to it. (Header bytes 18-19 hold the journal mode:
// 1 = rollback journal, 2 = WAL; switching them is a write.)
TEST_F(CliTest, AnotherApplicationsSqliteDbIsLeftByteForByteUnchanged) {
  if (!make_foreign_db(db_)) {
    GTEST_SKIP() << "no sqlite3 command";
  }
  std::string before = read_file(db_);
  EXPECT_EQ(aec({"list", "--json"}).exit_code, 65);
  EXPECT_EQ(aec({"run", "--key", "k", "--", "true"}).exit_code, 65);
  EXPECT_EQ(difference(before, read_file(db_)), "") << "aec modified another application's db";
}

// ---- 4. AEC_RUN_ENABLED=false -----------------------------------------------------------------

TEST_F(CliTest, RunDisabledRunsTheCommandAndRecordsNothing) {
  ASSERT_EQ(aec({"run", "--key", "other", "--", "true"}).exit_code, 0);
  std::string before = list_json();
  Output o = aec({"run", "--key", "k", "--", "sh", "-c", "touch \"$0\"; exit 3", path("m")},
                 {{"AEC_RUN_ENABLED", "false"}});
  EXPECT_EQ(o.exit_code, 3);
  EXPECT_TRUE(exists(path("m")));
  EXPECT_NE(o.err.find("AEC_RUN_ENABLED"), std::string::npos) << o.err;
  EXPECT_EQ(history("k").size(), 0U);
  EXPECT_EQ(list_json(), before);
}

TEST_F(CliTest, VdksSkipCheckerSettingBypassesTheCheckToo) {
  Holder h(dir_, store_, "t/j");
  ASSERT_TRUE(h.started());
  std::string before = list_json();
  Output o = aec({"run", "--team", "t", "--job", "j", "--", "touch", path("m")},
                 {{"VDK_EXECUTION_SKIP_CHECKER_ENABLED", "false"}});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(exists(path("m")));
  EXPECT_NE(o.err.find("VDK_EXECUTION_SKIP_CHECKER_ENABLED=false"), std::string::npos) << o.err;
  EXPECT_EQ(list_json(), before);
  Output explain =
      aec({"explain", "--team", "t", "--job", "j"}, {{"VDK_EXECUTION_SKIP_CHECKER_ENABLED", "0"}});
  EXPECT_NE(explain.out.find("VDK_EXECUTION_SKIP_CHECKER_ENABLED=0"), std::string::npos)
      << explain.out;
  EXPECT_EQ(h.finish(), 0);
}

// ---- 5. --on-store-error ----------------------------------------------------------------------

const char* const kUnreachable = "sqlite:///proc/aec-nope/aec.db";

TEST_F(CliTest, UnreachableStoreFailsWith69AndDoesNotRunTheCommand) {
  Output o = run_aec({"run", "--key", "k", "--store", kUnreachable, "--termination-message",
                      path("tm"), "--", "touch", path("m")});
  EXPECT_EQ(o.exit_code, 69) << o.err;
  EXPECT_EQ(line_count(o.err), 1U) << o.err;
  EXPECT_FALSE(exists(path("m")));
  Json tm = read_json(path("tm"));
  EXPECT_EQ(tm["status"], "error") << tm.dump();
  EXPECT_EQ(tm["vdk_status"], "Platform error") << tm.dump();
}

// Found by the reliability suite (T11 on postgres): a runner stopped between its grant and its
// command's start started the command on a lease another caller held by then (its writes were
// fenced off). A grant that reaches aec run after about its ttl (here: an aecd that answers
// 1.5 s late for a 1 s ttl) does not start the command: the run is recorded lost, exit 79.
TEST_F(CliTest, AGrantThatArrivesAfterItsTtlDoesNotStartTheCommand) {
  testing::CannedHttp aecd([](const testing::CannedRequest& r) {
    if (r.target == "/v1/leases") {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the late answer is the fault
      Json req = Json::parse(r.body);
      Json lease = {{"key", req["key"]},
                    {"execution_id", req["execution_id"]},
                    {"token", 7},
                    {"ttl_ms", req["ttl_ms"]}};
      return testing::CannedResponse{
          .body = Json{{"outcome", "granted"}, {"lease", lease}, {"version", 1}}.dump()};
    }
    return testing::CannedResponse{.body = R"({"outcome": "lost"})"};
  });
  Output o = run_aec({"run", "--store", aecd.url(), "--key", "etl/late", "--ttl", "1s",
                      "--termination-message", path("tm"), "--", "touch", path("m")});
  EXPECT_EQ(o.exit_code, 79) << o.err;
  EXPECT_FALSE(exists(path("m"))) << "the command ran on a lease that had run out";
  Json tm = read_json(path("tm"));
  EXPECT_EQ(tm["status"], "lost") << tm.dump();
  EXPECT_NE(tm.value("reason", "").find("had run out before the command could start"),
            std::string::npos)
      << "the command was started, then stopped: " << tm.dump();
  std::vector<testing::CannedRequest> seen = aecd.requests();
  auto release = std::find_if(seen.begin(), seen.end(), [](const testing::CannedRequest& r) {
    return r.target == "/v1/keys/etl%2Flate/leases/7/release";
  });
  ASSERT_NE(release, seen.end()) << "the lost run was not recorded";
  EXPECT_EQ(Json::parse(release->body).value("status", ""), "lost") << release->body;
}

TEST_F(CliTest, AWaitingRunGivesALateGrantBackAndWaitsAgain) {
  std::atomic<int> asked{0};
  testing::CannedHttp aecd([&](const testing::CannedRequest& r) {
    if (r.target == "/v1/leases") {
      int n = ++asked;
      if (n == 1) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the late answer
      }
      Json req = Json::parse(r.body);
      Json lease = {{"key", req["key"]},
                    {"execution_id", req["execution_id"]},
                    {"token", n == 1 ? 7 : 8},
                    {"ttl_ms", req["ttl_ms"]}};
      return testing::CannedResponse{
          .body = Json{{"outcome", "granted"}, {"lease", lease}, {"version", n}}.dump()};
    }
    bool second = r.target.find("/leases/8/") != std::string::npos;
    return testing::CannedResponse{.body =
                                       second ? R"({"outcome": "ok"})" : R"({"outcome": "lost"})"};
  });
  Output o = run_aec({"run", "--store", aecd.url(), "--key", "etl/late", "--ttl", "1s", "--on-busy",
                      "wait", "--", "sh", "-c", "echo $AEC_FENCING_TOKEN > " + path("m")});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(read_file(path("m")), "8\n") << "the command must run on the second grant alone";
  EXPECT_NE(o.err.find("waiting in line again"), std::string::npos) << o.err;
  std::vector<testing::CannedRequest> seen = aecd.requests();
  auto given_back = std::find_if(seen.begin(), seen.end(), [](const testing::CannedRequest& r) {
    return r.target == "/v1/keys/etl%2Flate/leases/7/release";
  });
  ASSERT_NE(given_back, seen.end()) << "the late grant was not given back";
  EXPECT_EQ(Json::parse(given_back->body).value("status", ""), "lost") << given_back->body;
}

TEST_F(CliTest, UnreachableStoreWithProceedRunsTheCommandWithAWarning) {
  Output o = run_aec({"run", "--key", "k", "--store", kUnreachable, "--on-store-error", "proceed",
                      "--", "touch", path("m")});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(exists(path("m")));
  EXPECT_NE(o.err.find("warning"), std::string::npos) << o.err;
}

// ---- 6. --on-busy -----------------------------------------------------------------------------

TEST_F(CliTest, BusyKeyFailsWith75OrTheChosenCode) {
  Holder h(dir_, store_, "k");
  ASSERT_TRUE(h.started());
  auto busy = [&](const std::vector<std::string>& flags) {
    return aec(cat(cat({"run", "--key", "k"}, flags), {"--", "touch", path("m")})).exit_code;
  };
  EXPECT_EQ(busy({"--on-busy", "fail"}), 75);
  EXPECT_EQ(busy({"--on-busy", "fail", "-E", "3"}), 3);
  EXPECT_EQ(busy({"--on-busy", "fail", "--busy-exit-code", "3"}), 3);
  EXPECT_EQ(busy({}), 0);  // the default is skip
  EXPECT_FALSE(exists(path("m")));
  EXPECT_EQ(h.finish(), 0);
}

TEST_F(CliTest, BusyKeyWaitWithTimeoutGivesUpWith75AfterTheTimeout) {
  Holder h(dir_, store_, "k");
  ASSERT_TRUE(h.started());
  auto start = Clock::now();
  Output o = aec({"run", "--key", "k", "--on-busy", "wait=300ms", "--", "touch", path("m")});
  auto took = Clock::now() - start;
  EXPECT_EQ(o.exit_code, 75) << o.err;
  EXPECT_GE(took, milliseconds(300));
  EXPECT_FALSE(exists(path("m")));
  EXPECT_EQ(h.finish(), 0);
}

TEST_F(CliTest, InterruptedWaiterGivesUpItsPlaceAtOnce) {
  Holder h(dir_, store_, "k");
  ASSERT_TRUE(h.started());
  pid_t waiter = spawn_aec({"run", "--store", store_, "--key", "k", "--on-busy", "wait",
                            "--execution-id", "waiter-1", "--", "touch", path("m")},
                           {}, path("waiter.log"));
  auto queued = [&] {
    return read_file(path("waiter.log")).find("waiting in line") != std::string::npos;
  };
  auto deadline = Clock::now() + kPatience;
  while (!queued() && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(2));
  }
  ASSERT_TRUE(queued()) << read_file(path("waiter.log"));
  EXPECT_EQ(aec_json({"status", "k"})["queue"], Json::array({"waiter-1"}));
  kill(waiter, SIGINT);
  EXPECT_EQ(wait_exit_within(waiter), 130) << read_file(path("waiter.log"));
  EXPECT_EQ(h.finish(), 0);
  // Had the place been left to lapse, a skip-policy run would be refused for up to 3 s.
  Output next = aec({"run", "--key", "k", "--", "true"});
  EXPECT_EQ(next.exit_code, 0) << next.err;
  EXPECT_EQ(next.err, "");
  EXPECT_FALSE(exists(path("m")));
}

// A retry attempt (job-7-fghij) started while an earlier attempt of the same execution
// (job-7-abcde) holds the key waits for it and then runs; another execution (job-77-xyzab,
// whose id starts the same) skips as usual.
TEST_F(CliTest, ARetryAttemptWaitsForTheEarlierAttemptInsteadOfSkipping) {
  Holder h(dir_, store_, "t/j", {"--execution-id", "job-7-abcde"});
  ASSERT_TRUE(h.started());
  Output other = aec({"run", "--team", "t", "--job", "j", "--execution-id", "job-77-xyzab", "--",
                      "touch", path("other")});
  EXPECT_EQ(other.exit_code, 0) << other.err;
  EXPECT_NE(other.err.find("skipped"), std::string::npos) << other.err;
  EXPECT_FALSE(exists(path("other")));
  Output explain = aec({"explain", "--key", "t/j", "--execution-id", "job-7-fghij"});
  EXPECT_NE(explain.out.find("would wait"), std::string::npos) << explain.out;

  pid_t retry = spawn_aec({"run", "--store", store_, "--team", "t", "--job", "j", "--execution-id",
                           "job-7-fghij", "--", "touch", path("retry")},
                          {}, path("retry.log"));
  auto waiting = [&] {
    return read_file(path("retry.log")).find("earlier attempt") != std::string::npos;
  };
  auto deadline = Clock::now() + kPatience;
  while (!waiting() && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(2));
  }
  ASSERT_TRUE(waiting()) << read_file(path("retry.log"));
  EXPECT_TRUE(still_running(retry));
  EXPECT_FALSE(exists(path("retry")));
  EXPECT_EQ(h.finish(), 0);
  std::optional<int> code = wait_exit_within(retry);
  if (!code) {
    kill(retry, SIGKILL);
    wait_exit(retry);
  }
  EXPECT_EQ(code, 0) << read_file(path("retry.log"));
  EXPECT_TRUE(exists(path("retry")));
  std::vector<std::pair<std::string, std::string>> seen;  // newest first
  for (const Json& e : history("t/j")) {
    seen.emplace_back(e["id"], e["status"]);
  }
  using Seen = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(seen, (Seen{{"job-7-fghij", "succeeded"},
                        {"job-77-xyzab", "skipped"},
                        {"job-7-abcde", "succeeded"}}));
}

// ---- 7. Termination message -------------------------------------------------------------------

void expect_common_fields(const Json& tm, const std::string& key) {
  EXPECT_EQ(tm["key"], key) << tm.dump();
  for (const char* field : {"execution_id", "reason", "started_at", "ended_at"}) {
    EXPECT_TRUE(tm.contains(field) && tm[field].is_string()) << field << ": " << tm.dump();
  }
  EXPECT_TRUE(tm.contains("holder") && tm.contains("token")) << tm.dump();
}

TEST_F(CliTest, TerminationMessageForSuccess) {
  std::string script = "printf '%s %s' \"$AEC_EXECUTION_ID\" \"$AEC_FENCING_TOKEN\" > \"$0\"";
  Output o = aec({"run", "--key", "k", "--termination-message", path("tm"), "--", "sh", "-c",
                  script, path("ids")});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  Json tm = read_json(path("tm"));
  expect_common_fields(tm, "k");
  EXPECT_EQ(tm["status"], "succeeded");
  EXPECT_EQ(tm["vdk_status"], "Success");
  EXPECT_EQ(tm["exit_code"], 0);
  std::string seen = read_file(path("ids"));
  EXPECT_EQ(seen, tm["execution_id"].get<std::string>() + " " + tm["token"].dump());
  EXPECT_GT(tm["token"].get<std::int64_t>(), 0);
}

TEST_F(CliTest, TerminationMessageForFailureViaEnvironment) {
  Output o = aec({"run", "--key", "k", "--", "sh", "-c", "exit 7"},
                 {{"AEC_TERMINATION_MESSAGE_PATH", path("tm")}});
  ASSERT_EQ(o.exit_code, 7) << o.err;
  Json tm = read_json(path("tm"));
  expect_common_fields(tm, "k");
  EXPECT_EQ(tm["status"], "failed");
  EXPECT_EQ(tm["vdk_status"], "User error");
  EXPECT_EQ(tm["exit_code"], 7);
}

TEST_F(CliTest, TerminationMessageForSkipNamesTheHolder) {
  Holder h(dir_, store_, "k");
  ASSERT_TRUE(h.started());
  Output flag = aec({"run", "--key", "k", "--termination-message", path("tm1"), "--", "true"});
  Output env =
      aec({"run", "--key", "k", "--", "true"}, {{"AEC_TERMINATION_MESSAGE_PATH", path("tm2")}});
  EXPECT_EQ(flag.exit_code, 0);
  EXPECT_EQ(env.exit_code, 0);
  for (const char* file : {"tm1", "tm2"}) {
    Json tm = read_json(path(file));
    expect_common_fields(tm, "k");
    EXPECT_EQ(tm["status"], "skipped") << file;
    EXPECT_EQ(tm["vdk_status"], "Skipped") << file;
    EXPECT_EQ(tm["holder"]["id"], h.id()) << file << ": " << tm.dump();
    EXPECT_TRUE(tm["exit_code"].is_null()) << file;
  }
  EXPECT_EQ(h.finish(), 0);
}

// Fuzz bug "termination-utf8": a command name that is not UTF-8 made the JSON serializer throw,
// and aec run aborted (exit 134) instead of writing its termination message.
TEST_F(CliTest, TerminationUtf8CommandNameIsWrittenReplaced) {
  Output o = aec({"run", "--key", "k", "--termination-message", path("tm"), "--", "/x\xff"});
  EXPECT_EQ(o.exit_code, 127) << o.err;
  Json tm = read_json(path("tm"));
  ASSERT_FALSE(tm.is_discarded()) << read_file(path("tm"));
  EXPECT_EQ(tm["status"], "failed");
  EXPECT_EQ(tm["reason"], "command not found: /x\xEF\xBF\xBD");  // U+FFFD for the \xff
  // The failure recorded with that reason reads back as JSON too.
  Output history = aec({"history", "k", "--json"});
  EXPECT_EQ(history.exit_code, 0) << history.err;
  Json h = Json::parse(history.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(h.is_discarded()) << history.out;
  ASSERT_EQ(h.size(), 1U) << history.out;
  EXPECT_EQ(h[0]["reason"], "command not found: /x\xEF\xBF\xBD");
}

// ---- 8. Admin verbs ---------------------------------------------------------------------------

TEST_F(CliTest, StatusShowsTheHolder) {
  Holder h(dir_, store_, "k");
  ASSERT_TRUE(h.started());
  Json s = aec_json({"status", "k"});
  ASSERT_EQ(s["holders"].size(), 1U) << s.dump(2);
  EXPECT_EQ(s["holders"][0]["id"], h.id());
  EXPECT_EQ(s["holders"][0]["token"], h.token());
  EXPECT_EQ(s["holders"][0]["status"], "running");
  EXPECT_EQ(h.finish(), 0);
  EXPECT_EQ(aec_json({"status", "k"})["holders"].size(), 0U);
}

std::vector<std::string> keys_of(const Json& executions) {
  std::vector<std::string> keys;
  for (const Json& e : executions) {
    keys.push_back(e["key"].get<std::string>());
  }
  return keys;
}

TEST_F(CliTest, ListFiltersByPrefixAndStatus) {
  aec({"run", "--key", "team-a/x", "--", "true"});
  aec({"run", "--key", "team-a/y", "--", "false"});
  aec({"run", "--key", "team-b/z", "--", "true"});
  using Keys = std::vector<std::string>;
  EXPECT_EQ(keys_of(aec_json({"list", "--prefix", "team-a/"})), (Keys{"team-a/y", "team-a/x"}));
  EXPECT_EQ(keys_of(aec_json({"list", "--status", "failed"})), (Keys{"team-a/y"}));
  EXPECT_EQ(keys_of(aec_json({"list", "--prefix", "team-a/", "--status", "succeeded"})),
            (Keys{"team-a/x"}));
  EXPECT_EQ(keys_of(aec_json({"list"})).size(), 3U);
}

TEST_F(CliTest, HistoryIsNewestFirst) {
  for (const char* id : {"first", "second", "third"}) {
    ASSERT_EQ(aec({"run", "--key", "k", "--execution-id", id, "--", "true"}).exit_code, 0);
  }
  aec({"run", "--key", "other", "--", "true"});
  Json h = history("k");
  std::vector<std::string> ids;
  for (const Json& e : h) {
    ids.push_back(e["id"].get<std::string>());
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"third", "second", "first"}));
}

TEST_F(CliTest, ReleaseWithoutForceIsAUsageErrorAndChangesNothing) {
  Holder h(dir_, store_, "k");
  ASSERT_TRUE(h.started());
  std::string before = list_json();
  Output o = aec({"release", "k", "--reason", "stuck"});
  EXPECT_EQ(o.exit_code, 64);
  EXPECT_EQ(line_count(o.err), 1U) << o.err;
  EXPECT_NE(o.err.find("--force"), std::string::npos) << o.err;
  EXPECT_EQ(list_json(), before);
  EXPECT_EQ(h.finish(), 0);
}

TEST_F(CliTest, ForcedReleaseCancelsTheHolderWhichExits79) {
  Holder h(dir_, store_, "k", {"--ttl", "1s", "--termination-message", path("tm.json")});
  ASSERT_TRUE(h.started());
  Output o = aec({"release", "k", "--force", "--reason", "stuck"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  Json e = history("k")[0];
  EXPECT_EQ(e["id"], h.id());
  EXPECT_EQ(e["status"], "cancelled");
  std::string reason = e["reason"];
  EXPECT_NE(reason.find("stuck"), std::string::npos) << reason;
  EXPECT_NE(reason.find(user_name()), std::string::npos) << reason;
  // It renews every ttl/3 (~333 ms): it must notice well within two seconds.
  EXPECT_EQ(h.exit_within(milliseconds(2000)), 79) << h.log();
  EXPECT_NE(kill(h.command_pid(), 0), 0) << "the command outlived its lease";
  EXPECT_EQ(history("k")[0]["status"], "cancelled");
  // The holder's own account of the loss.
  Json tm = Json::parse(read_file(path("tm.json")), nullptr, /*allow_exceptions=*/false);
  EXPECT_EQ(tm["status"], "lost") << tm.dump();
  EXPECT_EQ(tm["vdk_status"], "Platform error") << tm.dump();
  EXPECT_EQ(tm["execution_id"], h.id()) << tm.dump();
  EXPECT_EQ(tm["token"], h.token()) << tm.dump();
}

TEST_F(CliTest, CleanupDeletesEndedExecutionsButKeepsARunningOne) {
  aec({"run", "--key", "done", "--", "true"});
  aec({"run", "--key", "done", "--", "false"});
  Holder h(dir_, store_, "live");
  ASSERT_TRUE(h.started());
  Output o = aec({"cleanup", "--older-than", "0s"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  Json left = aec_json({"list"});
  ASSERT_EQ(left.size(), 1U) << left.dump(2);
  EXPECT_EQ(left[0]["id"], h.id());
  EXPECT_EQ(left[0]["status"], "running");
  EXPECT_EQ(h.finish(), 0);
}

TEST_F(CliTest, WaitTimesOutWith124OnAHeldKey) {
  Holder h(dir_, store_, "k");
  ASSERT_TRUE(h.started());
  auto start = Clock::now();
  EXPECT_EQ(aec({"wait", "k", "--timeout", "200ms"}).exit_code, 124);
  EXPECT_GE(Clock::now() - start, milliseconds(200));
  EXPECT_EQ(h.finish(), 0);
}

TEST_F(CliTest, WaitReturnsOnceTheHolderFinishes) {
  Holder h(dir_, store_, "k");
  ASSERT_TRUE(h.started());
  pid_t waiter = spawn_aec({"wait", "k", "--store", store_}, {}, path("wait.log"));
  EXPECT_TRUE(still_running(waiter)) << read_file(path("wait.log"));
  EXPECT_EQ(h.finish(), 0);
  std::optional<int> code = wait_exit_within(waiter);
  if (!code) {
    kill(waiter, SIGKILL);
    wait_exit(waiter);
  }
  EXPECT_EQ(code, 0) << read_file(path("wait.log"));
}

TEST_F(CliTest, ExplainSaysWhatRunWouldDoAndChangesNothing) {
  Output fresh = aec({"explain", "--key", "k"});  // no store file yet
  EXPECT_EQ(fresh.exit_code, 0) << fresh.err;
  EXPECT_NE(fresh.out.find("would run"), std::string::npos) << fresh.out;
  EXPECT_NE(access(db_.c_str(), F_OK), 0) << "explain created the store";
  ASSERT_EQ(aec({"run", "--key", "other", "--", "true"}).exit_code, 0);
  Output free = aec({"explain", "--key", "k"});
  EXPECT_NE(free.out.find("would run"), std::string::npos) << free.out;
  Holder h(dir_, store_, "k");
  ASSERT_TRUE(h.started());
  std::string before = list_json();
  Output skip = aec({"explain", "--key", "k"});
  EXPECT_NE(skip.out.find("would skip"), std::string::npos) << skip.out;
  Output fail = aec({"explain", "--key", "k", "--on-busy", "fail"});
  EXPECT_EQ(fail.exit_code, 0) << fail.err;
  EXPECT_NE(fail.out.find("would fail"), std::string::npos) << fail.out;
  EXPECT_NE(fail.out.find("exit code: 75"), std::string::npos) << fail.out;
  EXPECT_EQ(list_json(), before);
  EXPECT_EQ(h.finish(), 0);
}

// ---- 9. Labels --------------------------------------------------------------------------------

TEST_F(CliTest, LabelsAreRecorded) {
  Output o =
      aec({"run", "--key", "k", "--label", "team=data", "--label", "env=prod", "--", "true"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  Json labels = history("k")[0]["labels"];
  EXPECT_EQ(labels, (Json{{"team", "data"}, {"env", "prod"}})) << labels.dump();
}

// A label without "=" (--label novalue) is among the bad inputs above: 64, one line, no store.

}  // namespace
}  // namespace aec::e2e
