#include "stores/dynamodb/dynamo_sightings.h"

#include <algorithm>

namespace aec::aws {

MonoTime Sightings::note(Sight& s, const std::string& rv, MonoTime at, bool wrote) {
  if (s.rv != rv || wrote) {
    s.rv = rv;
    s.since = at;
  }
  return s.since;
}

MonoTime Sightings::lease(const std::string& key, std::int64_t token, const std::string& rv,
                          MonoTime seen_at) {
  std::lock_guard lock(mu_);
  return note(keys_[key].leases[token], rv, seen_at, false);
}

MonoTime Sightings::place(const std::string& key, const std::string& execution_id,
                          const std::string& rv, MonoTime seen_at) {
  std::lock_guard lock(mu_);
  return note(keys_[key].places[execution_id], rv, seen_at, false);
}

void Sightings::wrote_lease(const std::string& key, std::int64_t token, const std::string& rv,
                            MonoTime sent) {
  std::lock_guard lock(mu_);
  note(keys_[key].leases[token], rv, sent, true);
}

void Sightings::wrote_place(const std::string& key, const std::string& execution_id,
                            const std::string& rv, MonoTime sent) {
  std::lock_guard lock(mu_);
  note(keys_[key].places[execution_id], rv, sent, true);
}

void Sightings::keep_only(const std::string& key, const KeyRecord& rec) {
  std::lock_guard lock(mu_);
  auto it = keys_.find(key);
  if (it == keys_.end()) {
    return;
  }
  std::erase_if(it->second.leases, [&](const auto& entry) {
    return std::none_of(rec.leases.begin(), rec.leases.end(),
                        [&](const LeaseEntry& l) { return l.run.execution.token == entry.first; });
  });
  std::erase_if(it->second.places, [&](const auto& entry) {
    return std::none_of(rec.queue.begin(), rec.queue.end(),
                        [&](const PlaceEntry& p) { return p.execution_id == entry.first; });
  });
  if (it->second.leases.empty() && it->second.places.empty()) {
    keys_.erase(it);
  }
}

std::size_t Sightings::size() const {
  std::lock_guard lock(mu_);
  return keys_.size();
}

}  // namespace aec::aws
