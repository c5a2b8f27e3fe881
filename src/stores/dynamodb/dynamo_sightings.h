// Expiry without a server clock. DynamoDB has no clock of its own that a condition can read, so a
// lease (or a place in line) is judged expired by each process for itself: only once that process
// has seen the entry's record version (rv) stay the same for the entry's whole ttl on its own
// monotonic clock. The holder writes a new rv at every renewal, so a live holder's entry never
// looks unchanged for that long; a takeover is a write conditioned on the item not having changed
// since it was read, so a renewal that lands first makes it fail.
//
// Sightings remembers, per key and entry, the rv seen and the moment it was first seen: the
// moment an answer carrying it arrived (the holder counts its ttl from before its write, so no
// earlier than that), or, for an rv this process wrote itself, the moment the write was sent.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <aec/clock.h>

#include "stores/dynamodb/dynamo_items.h"

namespace aec::aws {

class Sightings {
 public:
  // Since when lease `token` of `key` has had record version `rv`, as far as this process knows:
  // `seen_at` when the rv is new to it.
  MonoTime lease(const std::string& key, std::int64_t token, const std::string& rv,
                 MonoTime seen_at);
  // The same for the place of `execution_id` in the key's line.
  MonoTime place(const std::string& key, const std::string& execution_id, const std::string& rv,
                 MonoTime seen_at);
  // This process wrote `rv` in a write sent at `sent`.
  void wrote_lease(const std::string& key, std::int64_t token, const std::string& rv,
                   MonoTime sent);
  void wrote_place(const std::string& key, const std::string& execution_id, const std::string& rv,
                   MonoTime sent);
  // Forgets the entries `rec` (the key's state as last read) no longer holds.
  void keep_only(const std::string& key, const KeyRecord& rec);

  std::size_t size() const;  // keys remembered (tests)

 private:
  struct Sight {
    std::string rv;
    MonoTime since{};
  };
  struct KeySights {
    std::map<std::int64_t, Sight> leases;
    std::map<std::string, Sight> places;
  };

  static MonoTime note(Sight& s, const std::string& rv, MonoTime at, bool wrote);

  mutable std::mutex mu_;
  std::unordered_map<std::string, KeySights> keys_;  // guarded by mu_
};

}  // namespace aec::aws
