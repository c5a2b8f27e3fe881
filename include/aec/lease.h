// Leases: a time-bounded claim on one of a key's slots.
#pragma once

#include <cstdint>
#include <string>

#include <aec/clock.h>

namespace aec {

// A lease as its holder sees it. A value type; copying it does not copy the claim.
struct Lease {
  std::string key;           // the protected key
  std::string execution_id;  // the execution that holds it
  // The fencing token: strictly increases per key, never repeats. Pass it to resources that can
  // refuse a stale holder's writes.
  std::int64_t token = 0;
  milliseconds ttl{0};  // the lease duration asked for at the last acquire or renew
  // The latest moment, on the holder's own monotonic clock, at which the lease may still be held:
  // the time the last successful acquire or renew was *sent* plus ttl. The store may expire the
  // lease any time after this, so a careful holder stops its work before it.
  MonoTime valid_until{};
};

}  // namespace aec
