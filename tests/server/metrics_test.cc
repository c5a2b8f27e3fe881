#include "server/metrics.h"

#include <sstream>
#include <thread>

#include <gtest/gtest.h>

namespace aec::server {
namespace {

using namespace std::chrono_literals;

// The text exposition format read back: samples by "name{labels}" (labels unescaped, in order,
// as `a=x,b=y`), and each family's HELP and TYPE.
struct Parsed {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> help;
  std::map<std::string, std::string> type;
};

// Reads `{a="x",b="y"}` from `line` at `i` into "a=x,b=y"; returns the index after '}'.
std::size_t parse_labels(const std::string& line, std::size_t i, std::string& out) {
  ++i;  // '{'
  while (line[i] != '}') {
    std::size_t eq = line.find('=', i);
    out += line.substr(i, eq - i) + "=";
    for (i = eq + 2; line[i] != '"'; ++i) {
      if (line[i] == '\\') {
        char c = line[++i];
        out += c == 'n' ? '\n' : c;
      } else {
        out += line[i];
      }
    }
    ++i;  // closing quote
    if (line[i] == ',') {
      out += ",";
      ++i;
    }
  }
  return i + 1;
}

Parsed parse(const std::string& text) {
  Parsed p;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      std::size_t space = line.find(' ', 7);
      auto& map = line[2] == 'H' ? p.help : p.type;
      EXPECT_EQ(map.count(line.substr(7, space - 7)), 0u) << "twice: " << line;
      map[line.substr(7, space - 7)] = line.substr(space + 1);
      continue;
    }
    std::size_t end = line.find_first_of("{ ");
    std::string id = line.substr(0, end);
    if (line[end] == '{') {
      std::string labels;
      end = parse_labels(line, end, labels);
      id += "{" + labels + "}";
    }
    EXPECT_EQ(line[end], ' ') << line;
    p.samples[id] = std::stod(line.substr(end + 1));
  }
  return p;
}

TEST(MetricsTest, RendersCountersAndGaugesWithEscapedLabels) {
  Registry r;
  auto& requests = r.counter("req_total", "Requests\nby \"route\" \\ status", {"route", "status"});
  Gauge& g = r.gauge("live", "Live things").get();
  requests.with({"GET /v1/keys/{key}", "200"}).inc();
  requests.with({"GET /v1/keys/{key}", "200"}).inc(2);
  requests.with({"odd \"quoted\\\" \nroute", "500"}).inc();
  g.add(5);
  g.sub(2);
  std::string text = r.render();
  EXPECT_NE(text.find("# HELP req_total Requests\\nby \"route\" \\\\ status\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("route=\"odd \\\"quoted\\\\\\\" \\nroute\""), std::string::npos) << text;
  Parsed p = parse(text);
  EXPECT_EQ(p.type["req_total"], "counter");
  EXPECT_EQ(p.type["live"], "gauge");
  EXPECT_EQ(p.help["live"], "Live things");
  EXPECT_EQ(p.samples["req_total{route=GET /v1/keys/{key},status=200}"], 3);
  EXPECT_EQ(p.samples["req_total{route=odd \"quoted\\\" \nroute,status=500}"], 1);
  EXPECT_EQ(p.samples["live"], 3);
  EXPECT_EQ(p.samples.size(), 3u);
}

TEST(MetricsTest, HistogramBucketsAreCumulative) {
  Registry r;
  const double bounds[] = {0.01, 0.1, 1};
  auto& latency =
      r.histogram("lat_seconds", "Latency", {std::begin(bounds), std::end(bounds)}, {"op"});
  Histogram& h = latency.with({"acquire"});
  h.observe(0.01);  // on a bound: counts in that bucket (le)
  h.observe(50ms);
  h.observe(0.5);
  h.observe(30.0);
  h.observe(-1.0);  // counts as 0
  Parsed p = parse(r.render());
  EXPECT_EQ(p.type["lat_seconds"], "histogram");
  EXPECT_EQ(p.samples["lat_seconds_bucket{op=acquire,le=0.01}"], 2);
  EXPECT_EQ(p.samples["lat_seconds_bucket{op=acquire,le=0.1}"], 3);
  EXPECT_EQ(p.samples["lat_seconds_bucket{op=acquire,le=1}"], 4);
  EXPECT_EQ(p.samples["lat_seconds_bucket{op=acquire,le=+Inf}"], 5);
  EXPECT_EQ(p.samples["lat_seconds_count{op=acquire}"], 5);
  EXPECT_NEAR(p.samples["lat_seconds_sum{op=acquire}"], 30.56, 1e-9);
}

TEST(MetricsTest, MetricsWithoutLabelsShowZeroAtOnce) {
  Registry r;
  r.counter("c_total", "C");
  const double bounds[] = {1};
  r.histogram("h_seconds", "H", {std::begin(bounds), std::end(bounds)});
  r.counter("labelled_total", "L", {"x"});
  Parsed p = parse(r.render());
  EXPECT_EQ(p.samples.at("c_total"), 0);
  EXPECT_EQ(p.samples.at("h_seconds_bucket{le=1}"), 0);
  EXPECT_EQ(p.samples.at("h_seconds_bucket{le=+Inf}"), 0);
  EXPECT_EQ(p.samples.at("h_seconds_count"), 0);
  EXPECT_EQ(p.samples.at("h_seconds_sum"), 0);
  EXPECT_EQ(p.type.at("labelled_total"), "counter");  // declared, no series yet
  EXPECT_EQ(p.samples.size(), 5u);
}

TEST(MetricsTest, CountsAddUpUnderThreads) {
  Registry r;
  auto& requests = r.counter("req_total", "R", {"route", "status"});
  Gauge& g = r.gauge("g", "G").get();
  const double bounds[] = {0.001, 0.01};
  auto& hist = r.histogram("h_seconds", "H", {std::begin(bounds), std::end(bounds)}, {"op"});
  constexpr int kThreads = 8;
  constexpr int kIterations = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string status = t % 2 == 0 ? "200" : "409";
      for (int i = 0; i < kIterations; ++i) {
        requests.with({"POST /v1/leases", status}).inc();
        g.add();
        hist.with({"acquire"}).observe(0.002);
        if (i % 8 == 0) {
          g.sub(2);
        }
      }
    });
  }
  // Rendering while others update: the count always equals the +Inf bucket.
  for (int i = 0; i < 20; ++i) {
    Parsed p = parse(r.render());
    EXPECT_EQ(p.samples["h_seconds_count{op=acquire}"],
              p.samples["h_seconds_bucket{op=acquire,le=+Inf}"]);
  }
  for (std::thread& t : threads) {
    t.join();
  }
  Parsed p = parse(r.render());
  constexpr double kHalf = kThreads / 2 * kIterations;
  EXPECT_EQ(p.samples["req_total{route=POST /v1/leases,status=200}"], kHalf);
  EXPECT_EQ(p.samples["req_total{route=POST /v1/leases,status=409}"], kHalf);
  EXPECT_EQ(p.samples["g"], kThreads * (kIterations - 2 * (kIterations / 8)));
  EXPECT_EQ(p.samples["h_seconds_bucket{op=acquire,le=0.001}"], 0);
  EXPECT_EQ(p.samples["h_seconds_bucket{op=acquire,le=0.01}"], kThreads * kIterations);
  EXPECT_NEAR(p.samples["h_seconds_sum{op=acquire}"], 0.002 * kThreads * kIterations, 1e-6);
}

TEST(MetricsTest, SeriesReferencesStayValid) {
  Registry r;
  auto& f = r.counter("c_total", "C", {"k"});
  Counter& first = f.with({"a"});
  for (int i = 0; i < 100; ++i) {
    f.with({std::to_string(i)}).inc();
  }
  first.inc(7);
  EXPECT_EQ(&first, &f.with({"a"}));
  EXPECT_EQ(f.with({"a"}).value(), 7u);
}

TEST(MetricsDeathTest, MisuseAborts) {
  EXPECT_DEATH(Registry().counter("bad name", "x"), "bad metric name");
  EXPECT_DEATH(Registry().counter("ok", "x", {"__reserved"}), "bad label name");
  EXPECT_DEATH(
      {
        Registry r;
        r.counter("c", "x");
        r.gauge("c", "y");
      },
      "registered twice");
  EXPECT_DEATH(Registry().counter("c", "x", {"a", "b"}).with({"only-one"}), "takes 2 label");
}

TEST(ServerMetricsTest, DeclaresAecdsMetrics) {
  ServerMetrics m;
  m.http_requests.with({"GET /healthz", "200"}).inc();
  m.acquires.with({"granted"}).inc();
  m.live_leases.add();
  m.waiters.set(3);
  m.leases_lost.inc();
  m.wait_seconds.observe(2s);
  m.hold_seconds.observe(90s);
  m.store_latency.with({"acquire"}).observe(3ms);
  Parsed p = parse(m.registry.render());
  EXPECT_EQ(p.type["aec_http_requests_total"], "counter");
  EXPECT_EQ(p.samples["aec_http_requests_total{route=GET /healthz,status=200}"], 1);
  EXPECT_EQ(p.samples["aec_acquires_total{outcome=granted}"], 1);
  EXPECT_EQ(p.samples.at("aec_acquires_total{outcome=busy}"), 0);
  EXPECT_EQ(p.samples.at("aec_acquires_total{outcome=done}"), 0);
  EXPECT_EQ(p.type["aec_live_leases"], "gauge");
  EXPECT_EQ(p.samples["aec_live_leases"], 1);
  EXPECT_EQ(p.samples["aec_waiters"], 3);
  EXPECT_EQ(p.samples["aec_leases_lost_total"], 1);
  EXPECT_EQ(p.samples["aec_wait_seconds_count"], 1);
  EXPECT_EQ(p.samples["aec_wait_seconds_bucket{le=5}"], 1);
  EXPECT_EQ(p.samples["aec_wait_seconds_bucket{le=1}"], 0);
  EXPECT_EQ(p.samples["aec_hold_seconds_sum"], 90);
  EXPECT_EQ(p.samples["aec_store_latency_seconds_bucket{op=acquire,le=0.0025}"], 0);
  EXPECT_EQ(p.samples["aec_store_latency_seconds_bucket{op=acquire,le=0.005}"], 1);
  EXPECT_EQ(p.type["aec_store_latency_seconds"], "histogram");
  for (const char* name : {"aec_http_requests_total", "aec_acquires_total", "aec_live_leases",
                           "aec_waiters", "aec_leases_lost_total", "aec_wait_seconds",
                           "aec_hold_seconds", "aec_store_latency_seconds", "aec_connections"}) {
    EXPECT_FALSE(p.help[name].empty()) << name;
  }
}

TEST(LeaseBookTest, EachLeaseEndsOnceAndFeedsTheGaugeHoldTimesAndLosses) {
  ServerMetrics m;
  auto t0 = std::chrono::steady_clock::time_point() + 1h;
  m.leases.granted("a", 1, 10s, t0);
  m.leases.granted("a", 2, 10s, t0);
  m.leases.granted("b", 7, 10s, t0);
  m.leases.granted("c", 9, 10s, t0);
  EXPECT_EQ(m.live_leases.value(), 4);

  m.leases.released("a", 1, /*ok=*/true, t0 + 3s);   // held 3 s
  m.leases.released("a", 1, /*ok=*/false, t0 + 4s);  // a retried release: already ended
  EXPECT_EQ(m.live_leases.value(), 3);
  EXPECT_EQ(m.hold_seconds.snapshot().count, 1u);
  EXPECT_DOUBLE_EQ(m.hold_seconds.snapshot().sum, 3.0);
  EXPECT_EQ(m.leases_lost.value(), 0u);

  m.leases.renewed("a", 2, 10s, /*ok=*/false, t0 + 5s);  // lost at its renewal
  m.leases.released("a", 2, /*ok=*/false, t0 + 5s);      // and then its release: counted once
  EXPECT_EQ(m.leases_lost.value(), 1u);

  m.leases.renewed("b", 7, 60s, /*ok=*/true, t0 + 9s);  // b now lapses at t0 + 69 s
  m.leases.sweep(t0 + 30s);                             // c lapsed unrenewed at t0 + 10 s
  EXPECT_EQ(m.leases_lost.value(), 2u);
  EXPECT_EQ(m.live_leases.value(), 1);

  m.leases.granted("b", 8, 10s, t0 + 31s);
  m.leases.force_released("b", t0 + 40s);
  EXPECT_EQ(m.live_leases.value(), 0);
  EXPECT_EQ(m.hold_seconds.snapshot().count, 3u);  // a/1, and both of b's force-released
  EXPECT_EQ(m.leases_lost.value(), 2u);
  m.leases.sweep(t0 + 1h);
  EXPECT_EQ(m.leases_lost.value(), 2u);
}

}  // namespace
}  // namespace aec::server
