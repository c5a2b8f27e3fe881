// T12: the deterministic simulation (simulation.h) over the memory store, 20,000 seeds (5,000
// under a sanitizer; AEC_SIM_SEEDS sets another number), after the seeds of
// tests/fault/sim_regressions.txt. A failing seed is printed
// and appended to sim_failures.txt in the working directory: add it to the regression list.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <aec/open_store.h>

#include "stores/memory/memory_store.h"
#include "tests/conformance/served_store.h"
#include "tests/fault/simulation.h"
#include "tests/support/fake_host.h"
#include "tests/support/forwarding_store.h"
#include "tests/support/temp_dir.h"

namespace aec::testing {
namespace {

std::uint64_t seeds_to_run() {
  const char* n = std::getenv("AEC_SIM_SEEDS");
  return n != nullptr && *n != '\0' ? std::stoull(n) : AEC_SIM_DEFAULT_SEEDS;
}

// The seeds of the regression list: one per line, '#' starts a comment.
std::vector<std::uint64_t> regression_seeds() {
  std::ifstream in(std::string(AEC_SOURCE_DIR) + "/tests/fault/sim_regressions.txt");
  std::vector<std::uint64_t> seeds;
  std::string line;
  while (std::getline(in, line)) {
    line = line.substr(0, line.find('#'));
    std::istringstream words(line);
    std::uint64_t seed = 0;
    if (words >> seed) {
      seeds.push_back(seed);
    }
  }
  return seeds;
}

SimulationResult run_seed(
    std::uint64_t seed,
    const std::function<std::unique_ptr<Store>(std::shared_ptr<ManualClock>)>& make) {
  auto clock = std::make_shared<ManualClock>();
  std::unique_ptr<Store> store = make(clock);
  return simulate(seed, *store, *clock);
}

std::unique_ptr<Store> memory(std::shared_ptr<ManualClock> clock) {
  return make_memory_store(std::move(clock));
}

void record_failure(std::uint64_t seed) {
  std::ofstream("sim_failures.txt", std::ios::app) << seed << "\n";
}

TEST(Simulation, RegressionSeedsStayFixed) {
  std::vector<std::uint64_t> seeds = regression_seeds();
  for (std::uint64_t seed : seeds) {
    SimulationResult r = run_seed(seed, memory);
    EXPECT_FALSE(r.violation) << "seed " << seed << ": " << *r.violation;
  }
}

using StoreMaker = std::function<std::unique_ptr<Store>(std::shared_ptr<ManualClock>)>;

// Seeds 1..n on stores `make` opens; prints the summary line of `name`.
void run_seeds(const std::string& name, std::uint64_t n, const StoreMaker& make) {
  std::uint64_t grants = 0;
  std::uint64_t stale = 0;
  int violations = 0;
  for (std::uint64_t seed = 1; seed <= n; ++seed) {
    SimulationResult r = run_seed(seed, make);
    grants += static_cast<std::uint64_t>(r.grants);
    stale += static_cast<std::uint64_t>(r.stale_calls);
    if (r.violation) {
      ++violations;
      record_failure(seed);
      ADD_FAILURE() << name << " seed " << seed << " (added to sim_failures.txt; add it to "
                    << "tests/fault/sim_regressions.txt once fixed): " << *r.violation;
      if (violations >= 5) {
        break;
      }
    }
  }
  std::printf("T12 %s: %llu seeds, %llu grants, %llu stale renewals/releases, %d violations\n",
              name.c_str(), static_cast<unsigned long long>(n),
              static_cast<unsigned long long>(grants), static_cast<unsigned long long>(stale),
              violations);
  // The schedules reach what they must: grants, and calls made after a lease had lapsed.
  EXPECT_GT(grants, n);
  EXPECT_GT(stale, n / 10);
}

TEST(Simulation, NoSeedBreaksAnInvariant) {
  run_seeds("memory", seeds_to_run(), memory);
}

// The same schedules against the sqlite store (a file per seed, on the same hand-moved clock):
// fewer seeds, each step being real transactions.
TEST(Simulation, NoSeedBreaksAnInvariantOnSqlite) {
  TempDir dir;
  std::uint64_t file = 0;
  auto sqlite = [&](std::shared_ptr<ManualClock> clock) -> std::unique_ptr<Store> {
    const std::string url = "sqlite://" + dir.file(fmt::format("sim-{}.db", ++file));
    Result<std::unique_ptr<Store>> store = open_store(url, {.clock = std::move(clock)});
    EXPECT_TRUE(store.has_value()) << store.error().to_string();
    return store ? std::move(*store) : nullptr;
  };
  run_seeds("sqlite", AEC_SIM_SQLITE_SEEDS, sqlite);
}

// The same schedules through aecd: an http:// store talking to an in-process server over a real
// socket, the server's store (memory) and timers on the hand-moved clock.
TEST(Simulation, NoSeedBreaksAnInvariantThroughAecd) {
  TempDir dir;
  auto served = [&](std::shared_ptr<ManualClock> clock) -> std::unique_ptr<Store> {
    return open_served_store("memory:", {.clock = std::move(clock),
                                         .host = std::make_shared<FakeHost>(),
                                         .dir = dir.path().string()});
  };
  run_seeds("aecd", AEC_SIM_AECD_SEEDS, served);
}

TEST(Simulation, TheSameSeedGivesTheSameRun) {
  for (std::uint64_t seed : {7ULL, 4242ULL, 99991ULL}) {
    SimulationResult a = run_seed(seed, memory);
    SimulationResult b = run_seed(seed, memory);
    EXPECT_EQ(a.grants, b.grants) << seed;
    EXPECT_EQ(a.stale_calls, b.stale_calls) << seed;
    EXPECT_EQ(a.violation, b.violation) << seed;
  }
}

// A store whose release frees the key's oldest lease whatever the token (the bug of a release
// matched by key alone): a stale release then frees a newer holder's lease. The simulation must
// catch it, or it proves nothing.
class ReleaseByKeyStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<LeaseOutcome> release(std::string_view key, std::int64_t token,
                               const Outcome& outcome) override {
    Result<KeyState> state = inner().get(key);
    if (state && !state->holders.empty()) {
      token = state->holders.front().execution.token;
    }
    return inner().release(key, token, outcome);
  }
};

TEST(Simulation, CatchesAReleaseThatIgnoresTheToken) {
  auto broken = [](std::shared_ptr<ManualClock> clock) -> std::unique_ptr<Store> {
    return std::make_unique<ReleaseByKeyStore>(make_memory_store(std::move(clock)));
  };
  int caught = 0;
  std::string example;
  for (std::uint64_t seed = 1; seed <= 2'000 && caught == 0; ++seed) {
    SimulationResult r = run_seed(seed, broken);
    if (r.violation) {
      ++caught;
      example = *r.violation;
    }
  }
  ASSERT_GT(caught, 0) << "2,000 seeds never caught a release that frees another's lease";
  EXPECT_NE(example.find("I2"), std::string::npos) << example;
}

// A store that keeps every lease twice as long as asked: a holder that counts on its ttl is
// safe, but a grant whose answer was lost blocks the key past one ttl. Must be caught.
class DoubleTtlStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<AcquireResult> acquire(const AcquireRequest& req) override {
    AcquireRequest longer = req;
    longer.ttl = req.ttl * 2;
    Result<AcquireResult> r = inner().acquire(longer);
    if (r && r->outcome == AcquireOutcome::Granted) {
      r->lease.ttl = req.ttl;
    }
    return r;
  }
};

TEST(Simulation, CatchesALostGrantThatOutlivesItsTtl) {
  auto broken = [](std::shared_ptr<ManualClock> clock) -> std::unique_ptr<Store> {
    return std::make_unique<DoubleTtlStore>(make_memory_store(std::move(clock)));
  };
  std::string example;
  for (std::uint64_t seed = 1; seed <= 2'000 && example.empty(); ++seed) {
    example = run_seed(seed, broken).violation.value_or("");
  }
  ASSERT_FALSE(example.empty()) << "2,000 seeds never caught a lost grant outliving its ttl";
  EXPECT_NE(example.find("answer was lost"), std::string::npos) << example;
}

}  // namespace
}  // namespace aec::testing
