#include "contender.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <fmt/format.h>

namespace aec::bench {

Result<Acquired> retry_with_backoff(const std::function<Result<bool>()>& attempt, bool wait,
                                    BenchClock::time_point give_up, std::minstd_rand& rng) {
  std::chrono::microseconds backoff{100};
  for (;;) {
    Result<bool> granted = attempt();
    if (!granted) {
      return granted.error();
    }
    if (*granted) {
      return Acquired::Granted;
    }
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

std::vector<std::string> contender_names() {
  return {"raw-sqlite",   "flock",    "aec-sqlite", "aecd-sqlite",  "raw-postgres",
          "aec-postgres", "raw-etcd", "aec-etcd",   "raw-dynamodb", "aec-dynamodb"};
}

std::unique_ptr<Contender> make_contender(std::string_view name) {
  if (name == "aec-sqlite") {
    return make_aec_sqlite_contender();
  }
  if (name == "aecd-sqlite") {
    return make_aecd_sqlite_contender();
  }
  if (name == "raw-sqlite") {
    return make_raw_sqlite_contender();
  }
  if (name == "flock") {
    return make_flock_contender();
  }
  if (name == "raw-postgres") {
    return make_raw_postgres_contender();
  }
  if (name == "aec-postgres") {
    return make_aec_postgres_contender();
  }
  if (name == "raw-etcd") {
    return make_raw_etcd_contender();
  }
  if (name == "aec-etcd") {
    return make_aec_etcd_contender();
  }
  if (name == "raw-dynamodb") {
    return make_raw_dynamodb_contender();
  }
  if (name == "aec-dynamodb") {
    return make_aec_dynamodb_contender();
  }
  return nullptr;
}

}  // namespace aec::bench
