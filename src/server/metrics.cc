#include "server/metrics.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

#include <fmt/format.h>

namespace aec::server {
namespace {

[[noreturn]] void misuse(std::string_view what) {
  fmt::print(stderr, "aecd: metrics misuse (a bug): {}\n", what);
  std::abort();
}

bool is_name(std::string_view name, bool allow_colon) {
  auto ok = [&](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (allow_colon && c == ':') || (!first && c >= '0' && c <= '9');
  };
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!ok(name[i], i == 0)) {
      return false;
    }
  }
  return !name.empty();
}

// Label values escape backslash, double quote and newline; help text only the first and last.
std::string escape(std::string_view text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// Shortest round-trip form; Prometheus reads "1", "0.005" and "1e-05" alike.
std::string number(double v) {
  return std::isinf(v) ? (v > 0 ? "+Inf" : "-Inf") : fmt::format("{}", v);
}

// `labels` is MetricFamily::label_text(): "" or `{a="x"` without its closing brace.
std::string close_labels(const std::string& labels) {
  return labels.empty() ? "" : labels + "}";
}

void render_series(std::string& out, const std::string& name, const std::string& labels,
                   const Counter& c) {
  out += fmt::format("{}{} {}\n", name, close_labels(labels), c.value());
}

void render_series(std::string& out, const std::string& name, const std::string& labels,
                   const Gauge& g) {
  out += fmt::format("{}{} {}\n", name, close_labels(labels), g.value());
}

void render_series(std::string& out, const std::string& name, const std::string& labels,
                   const Histogram& h) {
  Histogram::Snapshot s = h.snapshot();
  std::string open = labels.empty() ? "{" : labels + ",";
  for (std::size_t i = 0; i < s.cumulative.size(); ++i) {
    double le = i < h.bounds().size() ? h.bounds()[i] : INFINITY;
    out += fmt::format("{}_bucket{}le=\"{}\"}} {}\n", name, open, number(le), s.cumulative[i]);
  }
  out += fmt::format("{}_sum{} {}\n", name, close_labels(labels), number(s.sum));
  out += fmt::format("{}_count{} {}\n", name, close_labels(labels), s.count);
}

template <typename T>
constexpr std::string_view type_name() {
  if constexpr (std::is_same_v<T, Counter>) {
    return "counter";
  } else if constexpr (std::is_same_v<T, Gauge>) {
    return "gauge";
  } else {
    return "histogram";
  }
}

}  // namespace

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds.begin(), bounds.end()),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size() + 1)) {
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1])) {
      misuse("histogram bounds must be finite and strictly increasing");
    }
  }
}

void Histogram::observe(double seconds) {
  if (!(seconds > 0)) {
    seconds = 0;  // negative or NaN: a clock oddity, not worth a bogus bucket
  }
  // Bucket i counts values <= bounds_[i]: the first bound not below the value.
  std::size_t i = static_cast<std::size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  double ns = std::min(seconds * 1e9, 1e18);  // ~31 years per observation at most
  sum_ns_.fetch_add(static_cast<std::uint64_t>(std::llround(ns)), std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.cumulative.reserve(bounds_.size() + 1);
  // The count is the sum of the buckets read, so count and +Inf agree even while others observe.
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    s.count += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(s.count);
  }
  s.sum = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

MetricFamily::MetricFamily(std::string name, std::string help, std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {
  if (!is_name(name_, /*allow_colon=*/true)) {
    misuse(fmt::format("bad metric name '{}'", name_));
  }
  for (const std::string& label : label_names_) {
    if (!is_name(label, /*allow_colon=*/false) || label.starts_with("__")) {
      misuse(fmt::format("bad label name '{}' of metric {}", label, name_));
    }
  }
}

void MetricFamily::check_arity(std::size_t values) const {
  if (values != label_names_.size()) {
    misuse(
        fmt::format("metric {} takes {} label values, not {}", name_, label_names_.size(), values));
  }
}

std::string MetricFamily::label_text(std::span<const std::string> values) const {
  std::string out;
  for (std::size_t i = 0; i < label_names_.size(); ++i) {
    out += fmt::format("{}{}=\"{}\"", i == 0 ? "{" : ",", label_names_[i],
                       escape(values[i], /*quote=*/true));
  }
  return out;
}

template <typename T>
Family<T>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bounds)
    : MetricFamily(std::move(name), std::move(help), std::move(label_names)),
      bounds_(std::move(bounds)) {
  if (std::is_same_v<T, Histogram> &&
      std::find(label_names_.begin(), label_names_.end(), "le") != label_names_.end()) {
    misuse(fmt::format("histogram {} may not have a label 'le'", name_));
  }
  if (label_names_.empty()) {
    get();  // a metric without labels is shown at 0 before its first update
  }
}

template <typename T>
T& Family<T>::with(std::span<const std::string_view> values) {
  check_arity(values.size());
  {
    std::shared_lock lock(mu_);
    auto it = series_.find(values);
    if (it != series_.end()) {
      return *it->second;
    }
  }
  std::unique_lock lock(mu_);
  auto [it, inserted] =
      series_.try_emplace(std::vector<std::string>(values.begin(), values.end()), nullptr);
  if (inserted) {
    if constexpr (std::is_same_v<T, Histogram>) {
      it->second = std::make_unique<Histogram>(bounds_);
    } else {
      it->second = std::make_unique<T>();
    }
  }
  return *it->second;
}

template <typename T>
void Family<T>::render(std::string& out) const {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name_, escape(help_, /*quote=*/false), name_,
                     type_name<T>());
  std::shared_lock lock(mu_);
  for (const auto& [values, series] : series_) {
    render_series(out, name_, label_text(values), *series);
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

template <typename F>
F& Registry::add(std::unique_ptr<F> family) {
  std::lock_guard lock(mu_);
  for (const auto& f : families_) {
    if (f->name() == family->name()) {
      misuse(fmt::format("metric {} registered twice", family->name()));
    }
  }
  F& ref = *family;
  families_.push_back(std::move(family));
  return ref;
}

Family<Counter>& Registry::counter(std::string name, std::string help,
                                   std::vector<std::string> label_names) {
  return add(
      std::make_unique<Family<Counter>>(std::move(name), std::move(help), std::move(label_names)));
}

Family<Gauge>& Registry::gauge(std::string name, std::string help,
                               std::vector<std::string> label_names) {
  return add(
      std::make_unique<Family<Gauge>>(std::move(name), std::move(help), std::move(label_names)));
}

Family<Histogram>& Registry::histogram(std::string name, std::string help,
                                       std::vector<double> bounds,
                                       std::vector<std::string> label_names) {
  return add(std::make_unique<Family<Histogram>>(std::move(name), std::move(help),
                                                 std::move(label_names), std::move(bounds)));
}

std::string Registry::render() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& family : families_) {
    family->render(out);
  }
  return out;
}

ServerMetrics::ServerMetrics()
    : http_requests(registry.counter("aec_http_requests_total",
                                     "HTTP requests answered, by route pattern and status",
                                     {"route", "status"})),
      acquires(registry.counter("aec_acquires_total", "Acquire calls answered, by outcome",
                                {"outcome"})),
      live_leases(
          registry.gauge("aec_live_leases", "Leases granted through this server and not yet ended")
              .get()),
      waiters(registry.gauge("aec_waiters", "Acquire requests parked in a key's line").get()),
      leases_lost(
          registry
              .counter("aec_leases_lost_total",
                       "Leases granted through this server that lapsed before their release")
              .get()),
      wait_seconds(registry
                       .histogram("aec_wait_seconds", "Time parked acquires waited",
                                  {std::begin(kWaitBuckets), std::end(kWaitBuckets)})
                       .get()),
      hold_seconds(registry
                       .histogram("aec_hold_seconds", "Time from grant to release of a lease",
                                  {std::begin(kHoldBuckets), std::end(kHoldBuckets)})
                       .get()),
      store_latency(
          registry.histogram("aec_store_latency_seconds", "Time of Store calls, by operation",
                             {std::begin(kStoreBuckets), std::end(kStoreBuckets)}, {"op"})),
      connections(registry.gauge("aec_connections", "Open client connections").get()),
      store_changes(registry
                        .counter("aec_store_changes_total",
                                 "Key changes pushed by the store's change feed (any writer)")
                        .get()),
      leases(live_leases, hold_seconds, leases_lost) {
  for (std::string_view outcome : {"granted", "busy", "done"}) {
    acquires.with({outcome});
  }
}

void LeaseBook::granted(const std::string& key, std::int64_t token, std::chrono::milliseconds ttl,
                        Time now) {
  std::lock_guard lock(mu_);
  leases_[{key, token}] = {now, now + ttl};
  live_.set(static_cast<std::int64_t>(leases_.size()));
}

void LeaseBook::renewed(const std::string& key, std::int64_t token, std::chrono::milliseconds ttl,
                        bool ok, Time now) {
  std::lock_guard lock(mu_);
  auto it = leases_.find({key, token});
  if (ok && it != leases_.end()) {
    it->second.lapses = now + ttl;
  } else if (!ok && end(it, now, /*held=*/false)) {
    lost_.inc();
  }
}

void LeaseBook::released(const std::string& key, std::int64_t token, bool ok, Time now) {
  std::lock_guard lock(mu_);
  if (end(leases_.find({key, token}), now, /*held=*/ok) && !ok) {
    lost_.inc();  // it lapsed before its release
  }
}

void LeaseBook::force_released(const std::string& key, Time now) {
  std::lock_guard lock(mu_);
  auto it = leases_.lower_bound({key, 0});
  while (it != leases_.end() && it->first.first == key) {
    auto next = std::next(it);
    end(it, now, /*held=*/true);
    it = next;
  }
}

void LeaseBook::sweep(Time now) {
  std::lock_guard lock(mu_);
  for (auto it = leases_.begin(); it != leases_.end();) {
    auto next = std::next(it);
    if (it->second.lapses < now && end(it, now, /*held=*/false)) {
      lost_.inc();
    }
    it = next;
  }
}

bool LeaseBook::end(std::map<std::pair<std::string, std::int64_t>, Entry>::iterator it, Time now,
                    bool held) {
  if (it == leases_.end()) {
    return false;
  }
  if (held) {
    hold_.observe(now - it->second.granted);
  }
  leases_.erase(it);
  live_.set(static_cast<std::int64_t>(leases_.size()));
  return true;
}

}  // namespace aec::server
