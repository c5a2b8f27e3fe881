// Deterministic simulation (T12 of RELIABILITY.md): simulated clients drive one store on a
// hand-moved clock through a random interleaving of acquire, renew, release, crash, pause,
// clock advance and wall-clock steps, chosen by a seeded generator, and the invariants are
// checked after every step. Some answers are lost on their way back (the store acted, the caller
// never heard): a lost grant must lapse within its ttl, and a release sent again after its
// answer was lost must never free a lease (T13's cases). The same seed gives the same run, step for
// step.
//
// What a simulated client believes is what a runner believes: it holds a lease from the moment
// it sent the acquire until send time + ttl, extended by each renewal it saw succeed (from that
// renewal's send time). The invariants, per key:
//   I1  every grant's token is greater than every token granted before for the key;
//   I2  the store lists at most `limit` holders, at most `limit` clients believe they hold the
//       key, and every client that believes it holds the key is listed by the store (a lease
//       the store let lapse while its holder still counted on it is a violation);
//   I3  on a limit-1 key, a fenced sink that accepts a write only with a token at least the
//       highest it has accepted accepts every write of every believing client (a believer with
//       a stale token, i.e. two believers in turn of which the older still runs, is rejected).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <aec/store.h>

#include "tests/support/manual_clock.h"

namespace aec::testing {

struct SimulationOptions {
  int clients = 4;
  int steps = 120;
};

// The outcome of one seed: a violation (what broke, and the last steps), or none.
struct SimulationResult {
  std::optional<std::string> violation;
  int grants = 0;
  int stale_calls = 0;  // renewals and releases sent after their lease had lapsed
};

// Runs seed `seed` on `store`, which must run on `clock` (its expiry by that clock).
SimulationResult simulate(std::uint64_t seed, Store& store, ManualClock& clock,
                          const SimulationOptions& options = {});

}  // namespace aec::testing
