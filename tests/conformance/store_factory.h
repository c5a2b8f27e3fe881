// How the conformance suite makes each store. A later store adds one entry to all_stores().
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <aec/store.h>

#include "tests/support/fake_host.h"
#include "tests/support/manual_clock.h"

namespace aec::testing {

struct StoreEnv {
  std::shared_ptr<ManualClock> clock;
  std::shared_ptr<FakeHost> host;
  std::string dir;  // a fresh temporary directory for this test
};

struct StoreKind {
  std::string name;
  // Opens the store (again, for a restart) in `env`.
  std::function<std::unique_ptr<Store>(const StoreEnv& env)> open;
  bool durable = false;      // state survives reopening
  bool boot_aware = false;   // leases end with the host's boot id
  bool one_per_key = false;  // takes limit 1 alone (dynamodb's layout=aec-python)
  std::string skip;          // when set, the store cannot be opened here: why (tests skip)
};

std::vector<StoreKind> all_stores();

// Names the store in gtest's messages instead of dumping its bytes.
inline void PrintTo(const StoreKind& kind, std::ostream* os) {
  *os << kind.name;
}

}  // namespace aec::testing
