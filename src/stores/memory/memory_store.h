// The `memory:` store: all state in this process, for tests and simulation. Same semantics as
// every other store (the conformance suite runs against it); nothing survives the process.
#pragma once

#include <memory>

#include <aec/clock.h>
#include <aec/host_info.h>
#include <aec/store.h>

namespace aec {

// Expiry is measured on `clock`'s monotonic time; waits sleep on `clock` too, so a ManualClock
// drives every timeout of this store.
std::unique_ptr<Store> make_memory_store(std::shared_ptr<Clock> clock);

}  // namespace aec
