// layout=aec-python with many processes: loops of real `aec run` and processes doing what the
// Python atomic_execution_control library does contend on one key of one dynalite table, and no
// two of them ever run at once. Each run claims a marker file with O_EXCL while it runs: a claim
// that finds the marker there is an overlap, recorded. Both sides must have run many times.
//
// The library's clean-up (delete_items_finished_or_old) is left out: it deletes by reading, then
// deleting with no condition, which no other writer can guard against (docs/dynamodb.md). Its
// processes here end their runs as the library's users do, with update_status() (FINISHED), or
// by deleting their own item (a run that failed and lets the key be run again).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stores/dynamodb/dynamo_client.h"
#include "stores/dynamodb/dynamo_items.h"
#include "tests/e2e/e2e_support.h"
#include "tests/stores/aws_test_env.h"
#include "tests/support/servers.h"

namespace aec::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kPrimaryKey = "YourKey";
constexpr const char* kKey = "2024-01-01";

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

void append(const std::string& path, const std::string& line) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    std::string l = line + "\n";
    (void)!::write(fd, l.data(), l.size());
    ::close(fd);
  }
}

// The Python library's runs of one process, until `stop` exists (in a forked child).
[[noreturn]] void python_loop(const std::string& endpoint, const std::string& table,
                              const std::string& dir, unsigned seed) {
  aws::DynamoClient client({.endpoint = endpoint,
                            .region = "eu-west-1",
                            .credentials = aws::credentials_from(
                                {{"AWS_ACCESS_KEY_ID", "AKID"}, {"AWS_SECRET_ACCESS_KEY", "s"}})});
  std::mt19937 rng(seed);
  // A run's end is sent until it lands: a run of the library's left in progress would hold the
  // key for the rest of the test.
  auto until_done = [&](std::string_view action, const json& body) {
    for (int i = 0; i < 50; ++i) {
      auto r = client.call(action, body);
      if (r && !r->error) {
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
  };
  json key = {{kPrimaryKey, {{"S", kKey}}}};
  while (!exists(dir + "/stop")) {
    std::string now = aws::python_time(std::chrono::system_clock::now());
    // write_atomically_a_key()
    auto put = client.call("PutItem", {{"TableName", table},
                                       {"Item",
                                        {{kPrimaryKey, {{"S", kKey}}},
                                         {"status_execution", {{"S", "IN_PROGRESS"}}},
                                         {"created_at", {{"S", now}}},
                                         {"updated_at", {{"S", now}}}}},
                                       {"ConditionExpression", "attribute_not_exists(#pk)"},
                                       {"ExpressionAttributeNames", {{"#pk", kPrimaryKey}}}});
    if (!put || put->error) {
      if (!put || put->error->type != "ConditionalCheckFailedException") {
        append(dir + "/python.log", put ? put->error->type : put.error().to_string());
      }
      std::this_thread::sleep_for(20ms);  // the library's waiters poll too
      continue;
    }
    int marker = ::open((dir + "/running").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (marker < 0) {
      append(dir + "/overlaps", "python");
    }
    append(dir + "/runs", "python");
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 40));
    if (marker >= 0) {
      ::close(marker);
      ::unlink((dir + "/running").c_str());
    }
    if (rng() % 2 == 0) {  // update_status(): FINISHED
      until_done("UpdateItem",
                 {{"TableName", table},
                  {"Key", key},
                  {"UpdateExpression", "SET status_execution = :st, updated_at = :ua"},
                  {"ExpressionAttributeValues",
                   {{":st", {{"S", "FINISHED"}}},
                    {":ua", {{"S", aws::python_time(std::chrono::system_clock::now())}}}}}});
    } else {  // a failed run: its own item deleted, so the key may run again
      until_done("DeleteItem", {{"TableName", table}, {"Key", key}});
    }
  }
  _exit(0);
}

TEST(DynamoPythonProcesses, AecRunsAndThePythonLibrarysRunsNeverOverlap) {
  std::optional<std::string> endpoint = testing::server_setting("AEC_TEST_DYNAMODB_ENDPOINT");
  if (!endpoint) {
    GTEST_SKIP() << testing::missing_server("AEC_TEST_DYNAMODB_ENDPOINT");
  }
  char tmpl[] = "/tmp/aec-e2e-python-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  std::string table = "aec-python-procs-" + std::to_string(std::random_device{}());
  std::string url = "dynamodb://" + table +
                    "?region=eu-west-1&create=true&layout=aec-python&key=" + kPrimaryKey +
                    "&endpoint=" + *endpoint;
  Env env = {{"AWS_ACCESS_KEY_ID", "AKIDAECTEST"}, {"AWS_SECRET_ACCESS_KEY", "aec-test-secret"}};
  // The table first (created once, before anyone contends on it).
  Output made = run_aec({"list", "--store", url}, env);
  ASSERT_EQ(made.exit_code, 0) << made.err;

  std::vector<pid_t> pids;
  for (unsigned i = 0; i < 2; ++i) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      python_loop(*endpoint, table, dir, 1000 + i);
    }
    pids.push_back(pid);
  }
  // aec's runs: a loop of `aec run --on-busy wait`, each command claiming the marker, running
  // 30-70 ms, and ending well (FINISHED) or not (the item deleted) at random.
  std::string command =
      "set -C; if ! : > \"$1/running\" 2>/dev/null; then echo aec >> \"$1/overlaps\"; fi; "
      "echo aec >> \"$1/runs\"; sleep 0.0$((3 + $(od -An -N1 -tu1 /dev/urandom) % 4)); "
      "rm -f \"$1/running\"; exit $(($(od -An -N1 -tu1 /dev/urandom) % 2))";
  std::string loop =
      "while [ ! -e \"$1/stop\" ]; do \"$2\" run --store \"$3\" --key \"$4\" --ttl 2s "
      "--on-busy wait --quiet -- /bin/sh -c \"$5\" run \"$1\"; done";
  for (int i = 0; i < 3; ++i) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int log = ::open((dir + "/loops.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(log, 1);
      ::dup2(log, 2);
      for (const auto& [name, value] : env) {
        setenv(name.c_str(), value.c_str(), 1);
      }
      std::string bin = aec_binary();
      execl("/bin/sh", "sh", "-c", loop.c_str(), "loop", dir.c_str(), bin.c_str(), url.c_str(),
            kKey, command.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    pids.push_back(pid);
  }
  std::this_thread::sleep_for(15s);  // the load runs this long: not a wait for a condition
  append(dir + "/stop", "");
  for (pid_t pid : pids) {
    wait_exit(pid);
  }
  std::vector<std::string> runs = read_lines(dir + "/runs");
  long aec_runs = std::count(runs.begin(), runs.end(), "aec");
  long python_runs = std::count(runs.begin(), runs.end(), "python");
  std::cout << "aec runs " << aec_runs << ", python runs " << python_runs << "\n";
  EXPECT_EQ(read_file(dir + "/overlaps"), "") << "runs overlapped";
  EXPECT_GE(aec_runs, 5) << read_file(dir + "/loops.log");
  EXPECT_GE(python_runs, 5) << read_file(dir + "/python.log");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace aec::e2e
