// The checker of the fault tests (B.1 of RELIABILITY.md): reads a History and reports every
// violation of the invariants, in O(n log n). Two shapes of history:
//
// Calls (T1: workers calling the store directly; every call is Invoke then Ok, Fail or Info):
//   I1  per key, tokens of granted acquires never repeat, and an acquire that began after
//       another was granted gets a greater token (real-time order; all processes share
//       CLOCK_BOOTTIME);
//   I2  per key, at no moment are more than `limit` leases surely live. A lease is surely live
//       from its grant's answer until the earlier of its release's send and its expiry's lower
//       bound: the send of the acquire or of the last renewal that succeeded, plus the ttl (the
//       store counted the ttl from a moment after the send). A lease the store dropped before
//       that bound (a renew or release answered "not held" although the lease was surely live)
//       is a violation too, and so is a renew that succeeded after its lease was released.
//       An acquire whose outcome is unknown (Info) may hold the key: it is never counted
//       against the limit, which only makes the check looser, never wrong.
//
// Children under `aec run` (T2-T5: children say hello to the fenced sink, which logs every
// write it accepts or rejects; the kernel closes a dead child's connection):
//   I1  per key, the tokens children start with strictly increase in the order they start;
//   I3  per key, the sink's accepted writes never decrease in token, and one token's writes
//       all come from one child (two holders never share a token).
// Overlap of children's lifetimes on a limit-1 key is reported, not judged here: after a pause
// it is the unfenced overlap the fencing exists for; after a kill it must be zero, which the
// test asserts.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tests/fault/history.h"

namespace aec::fault {

struct CheckReport {
  std::vector<std::string> violations;  // one line each; empty when the history is sound
  std::int64_t grants = 0;              // granted acquires, or children started
  std::int64_t calls = 0;               // calls sent
  std::int64_t indeterminate = 0;       // calls whose outcome is unknown
  std::int64_t unanswered = 0;          // calls never answered (the history ended first)
  std::int64_t accepted = 0;            // sink writes accepted
  std::int64_t rejected = 0;            // sink writes rejected (stale tokens fenced off)
  std::int64_t overlap_ns = 0;          // children alive at once on one key, summed
  // Children that started after a child with a newer token of their key: their runner was
  // stopped (or starved) between its grant and the start. Grants stay in token order; the late
  // child's writes are fenced off (I3). Expected only where runners are paused.
  std::int64_t late_starts = 0;
};

// I1 and I2 over the calls of T1. `limits` gives each key's limit (default 1).
CheckReport check_calls(const std::vector<Event>& events, const std::map<std::string, int>& limits);

// I1 and I3 over children and the sink's log. A child's start is not its grant (its runner may
// be stopped in between), so I1 is judged as "no token starts two children"; a start behind a
// newer token is counted (late_starts), not judged.
CheckReport check_children(const std::vector<Event>& events);

}  // namespace aec::fault
