#include <aec/store.h>

#include "core/store_checks.h"

namespace aec {

Result<Handoff> Store::release_and_acquire(std::string_view key, std::int64_t token,
                                           const Outcome& outcome, const AcquireRequest& next) {
  if (Status s = check_handoff(key, next); !s.is_ok()) {
    return s;
  }
  Result<LeaseOutcome> released = release(key, token, outcome);
  if (!released) {
    return released.error();
  }
  return Handoff{.released = *released, .next = acquire(next)};
}

std::unique_ptr<ChangeFeed> Store::watch_changes(std::function<void(const std::string&)>) {
  return nullptr;
}

}  // namespace aec
