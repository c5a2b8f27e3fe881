#include "contender.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

namespace aec::bench {

Result<Acquired> retry_with_backoff(const std::function<Result<bool>()>& attempt, bool wait,
                                    BenchClock::time_point give_up, std::minstd_rand& rng,
                                    std::int64_t& refused) {
  std::chrono::microseconds backoff{100};
  for (;;) {
    Result<bool> granted = attempt();
    if (!granted) {
      return granted.error();
    }
    if (*granted) {
      return Acquired::Granted;
    }
    ++refused;
    if (!wait || BenchClock::now() >= give_up) {
      return Acquired::Busy;
    }
    std::uniform_int_distribution<std::int64_t> jitter(backoff.count() / 2, backoff.count());
    std::this_thread::sleep_for(std::chrono::microseconds(jitter(rng)));
    backoff = std::min(backoff * 2, std::chrono::microseconds(6400));
  }
}

Result<std::string> server_setting(std::string_view service, const std::string& bench_var,
                                   const std::string& test_var) {
  if (const char* value = std::getenv(bench_var.c_str()); value != nullptr && *value != '\0') {
    return std::string(value);
  }
  if (const char* file = std::getenv("AEC_TEST_SERVERS_ENV"); file != nullptr) {
    std::ifstream in(file);
    std::string line;
    const std::string key = test_var + "=";
    while (std::getline(in, line)) {
      if (line.starts_with(key)) {
        return line.substr(key.size());
      }
    }
  }
  return Status(
      Code::FailedPrecondition,
      fmt::format("no {0} for the {0} contenders: set {1}, or set AEC_TEST_SERVERS_ENV to a "
                  "file with {2}= (scripts/dev-servers.sh up writes one)",
                  service, bench_var, test_var));
}

void publish_port(const std::string& dir, int port) {
  std::ofstream(dir + "/port.tmp") << port << "\n";
  std::rename((dir + "/port.tmp").c_str(), (dir + "/port").c_str());
}

int published_port(const std::string& dir) {
  int port = 0;
  std::ifstream(dir + "/port") >> port;
  return port;
}

Status ServerProcess::start(const std::string& dir,
                            const std::function<void(const std::string&)>& serve,
                            std::string_view what) {
  stop();  // a previous run's server: each run gets a fresh one
  pid_ = ::fork();
  if (pid_ < 0) {
    return internal_error(fmt::format("{}: fork failed", what));
  }
  if (pid_ == 0) {
    serve(dir);
    ::_exit(1);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!std::ifstream(dir + "/port")) {
    if (std::chrono::steady_clock::now() > deadline || ::waitpid(pid_, nullptr, WNOHANG) != 0) {
      return unavailable(fmt::format("{}: the server process did not start", what));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polling for its port file
  }
  return Status::ok();
}

std::optional<std::int64_t> ServerProcess::rss() const {
  if (pid_ <= 0) {
    return std::nullopt;
  }
  std::ifstream status(fmt::format("/proc/{}/status", pid_));
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) {
      return std::strtoll(line.c_str() + 6, nullptr, 10) * 1024;  // "VmRSS:   1234 kB"
    }
  }
  return std::nullopt;
}

void ServerProcess::stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
}

namespace {

// The contenders in the order they are run and reported: the floors and bare recipes of each
// service next to aec on it.
const std::vector<std::pair<std::string, std::unique_ptr<Contender> (*)()>>& registry() {
  static const std::vector<std::pair<std::string, std::unique_ptr<Contender> (*)()>> all = {
      {"floor-loopback", &make_floor_loopback_contender},
      {"floor-fdatasync", &make_floor_fdatasync_contender},
      {"raw-sqlite", &make_raw_sqlite_contender},
      {"flock", &make_flock_contender},
      {"aec-sqlite", &make_aec_sqlite_contender},
      {"aecd-sqlite", &make_aecd_sqlite_contender},
      {"aecd-memory", &make_aecd_memory_contender},
      {"raw-redis", &make_raw_redis_contender},
      {"raw-redis-aof", &make_raw_redis_aof_contender},
      {"raw-postgres", &make_raw_postgres_contender},
      {"raw-postgres-async", &make_raw_postgres_async_contender},
      {"pg-advisory", &make_pg_advisory_contender},
      {"aec-postgres", &make_aec_postgres_contender},
      {"raw-etcd", &make_raw_etcd_contender},
      {"aec-etcd", &make_aec_etcd_contender},
      {"raw-dynamodb", &make_raw_dynamodb_contender},
      {"aec-dynamodb", &make_aec_dynamodb_contender},
  };
  return all;
}

}  // namespace

std::vector<std::string> contender_names() {
  std::vector<std::string> names;
  for (const auto& [name, make] : registry()) {
    names.push_back(name);
  }
  return names;
}

std::unique_ptr<Contender> make_contender(std::string_view name) {
  for (const auto& [known, make] : registry()) {
    if (known == name) {
      return make();
    }
  }
  return nullptr;
}

}  // namespace aec::bench
