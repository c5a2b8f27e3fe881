#include "contender.h"

#include <algorithm>
#include <thread>

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

std::vector<std::string> contender_names() {
  return {"raw-sqlite", "flock", "aec-sqlite", "aecd-sqlite", "raw-postgres", "aec-postgres"};
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
  return nullptr;
}

}  // namespace aec::bench
