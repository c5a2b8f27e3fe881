#include "stats.h"

#include <algorithm>

namespace aec::bench {

double jain_index(const std::vector<std::int64_t>& x) {
  double sum = 0;
  double sum_sq = 0;
  for (std::int64_t v : x) {
    sum += static_cast<double>(v);
    sum_sq += static_cast<double>(v) * static_cast<double>(v);
  }
  if (sum_sq == 0) {
    return 1;
  }
  return sum * sum / (static_cast<double>(x.size()) * sum_sq);
}

namespace {

// The holds of all clients in the order they were granted; each gap between one's release and
// the next one's grant is a handover.
void summarize_handovers(const std::vector<ClientReport>& clients, RunStats& stats) {
  std::vector<Hold> holds;
  for (const ClientReport& c : clients) {
    holds.insert(holds.end(), c.holds.begin(), c.holds.end());
  }
  std::sort(holds.begin(), holds.end(),
            [](const Hold& a, const Hold& b) { return a.granted_ns < b.granted_ns; });
  Histogram gaps;
  for (std::size_t i = 1; i < holds.size(); ++i) {
    std::int64_t gap = holds[i].granted_ns - holds[i - 1].released_ns;
    if (gap < 0) {
      ++stats.overlaps;  // granted before the previous holder let go
      continue;
    }
    gaps.record(gap);
  }
  stats.handovers = gaps.count();
  stats.handover_p50_ns = gaps.quantile(0.5);
  stats.handover_p99_ns = gaps.quantile(0.99);
  stats.handover_max_ns = gaps.max();
}

}  // namespace

RunStats summarize(const std::vector<ClientReport>& clients) {
  RunStats stats;
  stats.clients = static_cast<int>(clients.size());
  Histogram all;
  std::vector<std::int64_t> successes;
  std::int64_t longest = 0;
  std::int64_t elapsed_ns = 0;
  for (const ClientReport& c : clients) {
    all.merge(c.acquire_ns);
    successes.push_back(c.successes);
    stats.pairs += c.successes;
    stats.busy += c.busy;
    stats.errors += c.errors;
    stats.abandoned += c.abandoned;
    stats.refused += c.refused;
    longest = std::max({longest, c.acquire_ns.max(), c.longest_abandoned_ns});
    elapsed_ns = std::max(elapsed_ns, c.elapsed_ns);
    if (stats.first_error.empty()) {
      stats.first_error = c.first_error;
    }
  }
  stats.seconds = static_cast<double>(elapsed_ns) / 1e9;
  stats.ops_per_sec = stats.seconds > 0 ? static_cast<double>(stats.pairs) / stats.seconds : 0;
  stats.refused_per_sec =
      stats.seconds > 0 ? static_cast<double>(stats.refused) / stats.seconds : 0;
  stats.p50_ns = all.quantile(0.5);
  stats.p99_ns = all.quantile(0.99);
  stats.p999_ns = all.quantile(0.999);
  stats.max_ns = longest;
  stats.jain = jain_index(successes);
  stats.max_over_median =
      stats.p50_ns > 0 ? static_cast<double>(longest) / static_cast<double>(stats.p50_ns) : 0;
  summarize_handovers(clients, stats);
  return stats;
}

}  // namespace aec::bench
