#include "tests/stores/etcd_test_cluster.h"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/servers.h"

extern char** environ;

namespace aec::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) {
      out.push_back(item);
    }
  }
  return out;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// True when the member's command line serves clients at `endpoint` (a whole "host:port").
bool serves(const std::string& cmd, const std::string& endpoint) {
  return cmd.find("--listen-client-urls http://" + endpoint + " ") != std::string::npos;
}

Result<pid_t> read_pid(const fs::path& file) {
  std::string text = read_file(file);
  char* end = nullptr;
  long pid = std::strtol(text.c_str(), &end, 10);
  if (pid <= 0 || end == text.c_str()) {
    return internal_error(fmt::format("no pid in {}", file.string()));
  }
  return static_cast<pid_t>(pid);
}

// True once `pid` no longer runs. A dead process stays a zombie until its parent reaps it, and
// kill(pid, 0) still finds a zombie: a member this test process restarted is its child (reap
// it); one started by dev-servers.sh or an earlier test run belongs to init, which may take a
// while (a second, in a container), so a zombie counts as gone (its sockets and locks are).
bool gone(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) == pid) {
    return true;
  }
  if (kill(pid, 0) != 0 && errno == ESRCH) {
    return true;
  }
  // /proc/PID/stat: "pid (comm) S ...", S the state.
  std::string stat = read_file(fs::path("/proc") / std::to_string(pid) / "stat");
  std::size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

}  // namespace

std::optional<EtcdCluster> find_etcd_cluster() {
  std::optional<std::string> endpoints = server_setting("AEC_TEST_ETCD_ENDPOINTS");
  if (!endpoints) {
    return std::nullopt;
  }
  EtcdCluster cluster{.endpoints = split_commas(*endpoints), .dir = servers_dir()};
  if (cluster.endpoints.empty()) {
    return std::nullopt;
  }
  return cluster;
}

std::string no_etcd_cluster() {
  return missing_server("AEC_TEST_ETCD_ENDPOINTS");
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

Result<EtcdMember> member_with_id(const etcd::Client& client, const EtcdCluster& cluster,
                                  std::uint64_t id) {
  for (const std::string& endpoint : cluster.endpoints) {
    auto status = client.status(endpoint);
    if (!status || status->header().member_id() != id) {
      continue;
    }
    EtcdMember member{.endpoint = endpoint, .id = id};
    for (int n = 1; n <= 3 && !cluster.dir.empty(); ++n) {
      if (serves(read_file(cluster.dir / fmt::format("etcd-{}.cmd", n)), endpoint)) {
        member.n = n;
      }
    }
    if (member.n == 0) {
      return internal_error(
          fmt::format("no etcd-N.cmd under {} serves {}", cluster.dir.string(), endpoint));
    }
    return member;
  }
  return internal_error(fmt::format("no member with id {:x} answers", id));
}

Result<EtcdMember> leader(const etcd::Client& client, const EtcdCluster& cluster) {
  // Only a settled cluster: every member up and following the same leader (a member restarted
  // a moment ago may still call an election).
  std::uint64_t agreed = 0;
  bool settled = eventually(
      [&] {
        agreed = 0;
        for (const std::string& endpoint : cluster.endpoints) {
          auto status = client.status(endpoint);
          if (!status || status->leader() == 0 || (agreed != 0 && status->leader() != agreed)) {
            return false;
          }
          agreed = status->leader();
        }
        return true;
      },
      20s);
  if (!settled) {
    return unavailable("the etcd members do not agree on a leader within 20 s");
  }
  return member_with_id(client, cluster, agreed);
}

Status kill_member(const EtcdCluster& cluster, const EtcdMember& member) {
  auto pid = read_pid(cluster.dir / fmt::format("etcd-{}.pid", member.n));
  if (!pid) {
    return pid.error();
  }
  if (kill(*pid, SIGKILL) != 0 && errno != ESRCH) {
    return internal_error(fmt::format("kill -9 {}: errno {}", *pid, errno));
  }
  if (!eventually([&] { return gone(*pid); }, 10s)) {
    return internal_error(fmt::format("etcd member {} (pid {}) survived kill -9", member.n, *pid));
  }
  return Status::ok();
}

Status restart_member(const EtcdCluster& cluster, const EtcdMember& member,
                      const etcd::Client& client) {
  std::string cmd = read_file(cluster.dir / fmt::format("etcd-{}.cmd", member.n));
  while (!cmd.empty() && (cmd.back() == '\n' || cmd.back() == ' ')) {
    cmd.pop_back();
  }
  // posix_spawn, not fork: the test process runs gRPC's threads.
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&files, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&files, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  std::string script = "exec " + cmd;  // the shell becomes etcd: the pid is etcd's
  char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), script.data(), nullptr};
  pid_t pid = 0;
  int rc = posix_spawn(&pid, "/bin/sh", &files, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&files);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return internal_error(fmt::format("cannot start etcd member {}: errno {}", member.n, rc));
  }
  std::ofstream(cluster.dir / fmt::format("etcd-{}.pid", member.n)) << pid << "\n";
  if (!eventually([&] { return client.status(member.endpoint).has_value(); }, 30s)) {
    return unavailable(
        fmt::format("etcd member {} did not answer within 30 s of its restart", member.n));
  }
  return Status::ok();
}

}  // namespace aec::testing
