// A small Prometheus registry: counters, gauges and fixed-bucket histograms with labels, rendered
// in the text exposition format (version 0.0.4) for GET /metrics.
//
//   ServerMetrics m;
//   m.http_requests.with({"POST /v1/leases", "200"}).inc();
//   m.store_latency.with({"acquire"}).observe(elapsed);
//   std::string body = m.registry.render();
//
// Thread-safety: everything may be called from any thread. Updating a series is a relaxed
// atomic add; with() takes a shared lock and does not allocate once the series exists (keep the
// reference to skip even that: a series lives as long as its registry). Misuse — a bad metric
// or label name, a name registered twice, the wrong number of label values — is a programming
// error and aborts with a message.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace aec::server {

// A count that only goes up.
class Counter {
 public:
  void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void set(std::int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void add(std::int64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  void sub(std::int64_t n = 1) { value_.fetch_sub(n, std::memory_order_relaxed); }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// Observations counted in fixed buckets by upper bound (in seconds), plus their sum.
class Histogram {
 public:
  // `bounds`: strictly increasing finite upper bounds; +Inf is implied.
  explicit Histogram(std::span<const double> bounds);

  // Records one observation; a negative one counts as 0.
  void observe(double seconds);
  void observe(std::chrono::nanoseconds d) { observe(std::chrono::duration<double>(d).count()); }

  struct Snapshot {
    std::vector<std::uint64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;                         // seconds
    std::uint64_t count = 0;
  };
  // A consistent-enough read for rendering: count always equals the +Inf bucket.
  Snapshot snapshot() const;
  std::span<const double> bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
  std::atomic<std::uint64_t> sum_ns_{0};
};

// What a family has in common, whatever its type: name, help, labels, rendering.
class MetricFamily {
 public:
  MetricFamily(std::string name, std::string help, std::vector<std::string> label_names);
  virtual ~MetricFamily() = default;
  const std::string& name() const { return name_; }
  // Appends "# HELP", "# TYPE" and every series to `out`.
  virtual void render(std::string& out) const = 0;

 protected:
  // Aborts unless `values` has one value per label name.
  void check_arity(std::size_t values) const;
  // `{a="x",b="y"` without the closing brace (so "le" can follow), or "" without labels.
  std::string label_text(std::span<const std::string> values) const;

  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
};

// The series of one metric, one per combination of label values.
template <typename T>
class Family final : public MetricFamily {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds = {});

  // The series with these label values (one per label name, in order), created at 0 on first
  // use. The reference stays valid as long as the family.
  T& with(std::initializer_list<std::string_view> values) {
    return with(std::span<const std::string_view>(values.begin(), values.size()));
  }
  T& with(std::span<const std::string_view> values);
  // The one series of a family without labels.
  T& get() { return with(std::span<const std::string_view>()); }

  void render(std::string& out) const override;

 private:
  // Orders label-value lists, and lets a list of string_views find one without allocating.
  struct Less {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
    }
  };

  std::vector<double> bounds_;  // histograms only
  mutable std::shared_mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>, Less> series_;  // guarded by mu_
};

// Defined and instantiated in metrics.cc for these three types only.
extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

// Families by name, rendered in registration order.
class Registry {
 public:
  Family<Counter>& counter(std::string name, std::string help,
                           std::vector<std::string> label_names = {});
  Family<Gauge>& gauge(std::string name, std::string help,
                       std::vector<std::string> label_names = {});
  Family<Histogram>& histogram(std::string name, std::string help, std::vector<double> bounds,
                               std::vector<std::string> label_names = {});

  // The text exposition format of every family.
  std::string render() const;

 private:
  template <typename F>
  F& add(std::unique_ptr<F> family);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<MetricFamily>> families_;  // guarded by mu_
};

// Bucket bounds, in seconds.
inline constexpr double kWaitBuckets[] = {0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600};
inline constexpr double kHoldBuckets[] = {0.1, 1, 5, 15, 60, 300, 900, 3600, 14400, 86400};
inline constexpr double kStoreBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                           0.1,    0.25,  0.5,    1,     2.5,  5};

// aecd's metrics, declared in one place (docs/aecd.md lists them). Not copyable or movable.
// The leases granted through this server and not yet ended, for the live-lease gauge, the hold
// time histogram and the lost-lease counter: each lease is counted once, when it ends (released,
// force-released, answered lost, or seen to have lapsed by sweep()). About 100 bytes a lease.
class LeaseBook {
 public:
  using Time = std::chrono::steady_clock::time_point;
  LeaseBook(Gauge& live, Histogram& hold, Counter& lost) : live_(live), hold_(hold), lost_(lost) {}

  void granted(const std::string& key, std::int64_t token, std::chrono::milliseconds ttl, Time now);
  // ok: extended to now + ttl. Not ok: the lease was lost.
  void renewed(const std::string& key, std::int64_t token, std::chrono::milliseconds ttl, bool ok,
               Time now);
  // ok: released in time; not ok: it had lapsed (counted lost).
  void released(const std::string& key, std::int64_t token, bool ok, Time now);
  void force_released(const std::string& key, Time now);
  // Ends the leases whose ttl has passed unrenewed (counted lost).
  void sweep(Time now);

 private:
  struct Entry {
    Time granted;
    Time lapses;
  };
  // Removes the entry (observing its hold time when `held`); true when it was there.
  bool end(std::map<std::pair<std::string, std::int64_t>, Entry>::iterator it, Time now, bool held);

  Gauge& live_;
  Histogram& hold_;
  Counter& lost_;
  std::mutex mu_;
  std::map<std::pair<std::string, std::int64_t>, Entry> leases_;  // guarded by mu_
};

struct ServerMetrics {
  ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  Registry registry;
  // {route, status}: route is the route's pattern ("POST /v1/leases", "GET /v1/keys/{key}"),
  // never a raw path, so the number of series stays bounded; status the HTTP status code.
  Family<Counter>& http_requests;
  // {outcome}: granted | busy | done (pre-created at 0).
  Family<Counter>& acquires;
  Gauge& live_leases;       // leases granted through this server and not yet released or lost
  Gauge& waiters;           // requests parked in a key's line (wait_ms > 0)
  Counter& leases_lost;     // leases granted through this server that lapsed before release
  Histogram& wait_seconds;  // how long parked acquires waited, whatever the outcome
  Histogram& hold_seconds;  // from grant to release of leases granted through this server
  // {op}: the Store method ("acquire", "renew", "release", "state", "list", ...).
  Family<Histogram>& store_latency;
  Gauge& connections;  // open client connections
  // Changes to keys pushed by the store's change feed (made through any server or client).
  Counter& store_changes;
  LeaseBook leases;  // feeds live_leases, hold_seconds and leases_lost
};

}  // namespace aec::server
