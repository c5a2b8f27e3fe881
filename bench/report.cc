#include "report.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "contender.h"

namespace aec::bench {
namespace {

double us(std::int64_t ns) {
  return static_cast<double>(ns) / 1e3;
}

// The ops/s of `run` over that of `peer` in the same repetition, workload and C.
std::optional<double> ratio_to(const RunStats& run, const std::vector<RunStats>& runs,
                               std::string_view peer) {
  for (const RunStats& other : runs) {
    if (other.contender == peer && other.workload == run.workload && other.clients == run.clients &&
        other.repetition == run.repetition && other.failure.empty() && other.ops_per_sec > 0) {
      return run.ops_per_sec / other.ops_per_sec;
    }
  }
  return std::nullopt;
}

// Two decimals, or two significant digits for the small ratios against flock.
std::string format_ratio(std::optional<double> ratio) {
  if (!ratio) {
    return "–";
  }
  return *ratio >= 0.1 ? fmt::format("{:.2f}×", *ratio) : fmt::format("{:.2g}×", *ratio);
}

// The CPU busy share with no decimals, or "–" when it was not measured.
std::string cpu_text(double percent) {
  return percent < 0 ? "–" : fmt::format("{:.0f}", percent);
}

// A per-pair cost with no decimals (one under 10), or "–" when it was not measured.
std::string per_pair_text(double v) {
  if (v < 0) {
    return "–";
  }
  return v < 10 ? fmt::format("{:.1f}", v) : fmt::format("{:.0f}", v);
}

// JSON string escaping for the few characters an error message may contain.
std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_object(const RunStats& r, const std::vector<RunStats>& runs) {
  auto number = [](std::optional<double> v) { return v ? fmt::format("{:.4f}", *v) : "null"; };
  return fmt::format(
      "{{\"contender\": {}, \"workload\": {}, \"clients\": {}, \"repetition\": {}, "
      "\"seconds\": {:.3f}, \"pairs\": {}, \"ops_per_sec\": {:.1f}, \"acquire_p50_us\": {:.1f}, "
      "\"acquire_p99_us\": {:.1f}, \"acquire_p999_us\": {:.1f}, \"acquire_max_us\": {:.1f}, "
      "\"jain\": {:.4f}, \"max_over_median\": {:.1f}, \"vs_raw_sqlite\": {}, \"vs_flock\": {}, "
      "\"handovers\": {}, \"handover_p50_us\": {:.1f}, \"handover_p99_us\": {:.1f}, "
      "\"handover_max_us\": {:.1f}, \"overlaps\": {}, "
      "\"busy\": {}, \"errors\": {}, \"abandoned\": {}, \"refused\": {}, "
      "\"refused_per_sec\": {:.1f}, \"cpu_busy_percent\": {:.1f}, \"cpu_us_per_pair\": {:.1f}, "
      "\"switches_per_pair\": {:.1f}, \"preloaded\": {}, "
      "\"preload_seconds\": {:.1f}, \"rss_before_preload\": {}, \"rss_after_preload\": {}, "
      "\"first_error\": {}, \"failure\": {}}}",
      json_string(r.contender), json_string(r.workload), r.clients, r.repetition, r.seconds,
      r.pairs, r.ops_per_sec, us(r.p50_ns), us(r.p99_ns), us(r.p999_ns), us(r.max_ns), r.jain,
      r.max_over_median, number(ratio_to(r, runs, "raw-sqlite")),
      number(ratio_to(r, runs, "flock")), r.handovers, us(r.handover_p50_ns), us(r.handover_p99_ns),
      us(r.handover_max_ns), r.overlaps, r.busy, r.errors, r.abandoned, r.refused,
      r.refused_per_sec, r.cpu_busy_percent, r.cpu_us_per_pair, r.switches_per_pair, r.preloaded,
      r.preload_seconds, r.rss_before_preload, r.rss_after_preload, json_string(r.first_error),
      json_string(r.failure));
}

template <typename T>
T median_of(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? T{} : v[(v.size() - 1) / 2];
}

// The runs of one (contender, workload, C) across repetitions, failed runs left out.
std::vector<const RunStats*> same_config(const RunStats& r, const std::vector<RunStats>& runs) {
  std::vector<const RunStats*> out;
  for (const RunStats& o : runs) {
    if (o.contender == r.contender && o.workload == r.workload && o.clients == r.clients &&
        o.failure.empty()) {
      out.push_back(&o);
    }
  }
  return out;
}

void print_summary_row(std::FILE* out, const RunStats& r, const std::vector<RunStats>& runs) {
  std::vector<double> ops, jain, wait_ratio, vs_raw, vs_flock, refused, cpu, cpu_pair, switches;
  std::vector<std::int64_t> p50, p99, p999, hand50, hand99, overlaps;
  for (const RunStats* o : same_config(r, runs)) {
    ops.push_back(o->ops_per_sec);
    p50.push_back(o->p50_ns);
    p99.push_back(o->p99_ns);
    p999.push_back(o->p999_ns);
    jain.push_back(o->jain);
    wait_ratio.push_back(o->max_over_median);
    hand50.push_back(o->handover_p50_ns);
    hand99.push_back(o->handover_p99_ns);
    overlaps.push_back(o->overlaps);
    refused.push_back(o->refused_per_sec);
    cpu.push_back(o->cpu_busy_percent);
    cpu_pair.push_back(o->cpu_us_per_pair);
    switches.push_back(o->switches_per_pair);
    if (auto v = ratio_to(*o, runs, "raw-sqlite")) {
      vs_raw.push_back(*v);
    }
    if (auto v = ratio_to(*o, runs, "flock")) {
      vs_flock.push_back(*v);
    }
  }
  auto ratio = [](const std::vector<double>& v) {
    return v.empty() ? std::string("–") : format_ratio(median_of(v));
  };
  fmt::print(
      out,
      "| {} | {} | {} | {} | {:.0f} | {:.1f} | {:.1f} | {:.1f} | {:.3f} | {} | {} | {:.0f} | "
      "{} | {} | {} | {} | {} |\n",
      r.contender, r.workload, r.clients, ops.size(), median_of(ops), us(median_of(p50)),
      us(median_of(p99)), us(median_of(p999)), median_of(jain),
      r.workload == "hot" ? fmt::format("{:.1f}", median_of(wait_ratio)) : "–",
      r.workload == "hot"
          ? fmt::format("{:.0f} / {:.0f} ({} overlaps)", us(median_of(hand50)),
                        us(median_of(hand99)), *std::max_element(overlaps.begin(), overlaps.end()))
          : "–",
      median_of(refused), cpu_text(median_of(cpu)), per_pair_text(median_of(cpu_pair)),
      per_pair_text(median_of(switches)), ratio(vs_raw), ratio(vs_flock));
}

}  // namespace

void print_summary(std::FILE* out, const std::vector<RunStats>& runs) {
  fmt::print(out,
             "| contender | workload | C | runs | ops/s | p50 µs | p99 µs | p99.9 µs | Jain | "
             "max/p50 wait | handover p50 / p99 µs | refused/s | CPU % | CPU µs/pair | "
             "switches/pair | vs raw-sqlite | vs flock |\n"
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  for (const RunStats& r : runs) {
    if (r.repetition == 1) {
      print_summary_row(out, r, runs);
    }
  }
}

std::string progress_line(const RunStats& r) {
  if (!r.failure.empty()) {
    return fmt::format("{} {} C={} rep {}: FAILED: {}", r.contender, r.workload, r.clients,
                       r.repetition, r.failure);
  }
  return fmt::format("{} {} C={} rep {}: {:.0f} pairs/s, p50 {:.1f} µs, p99 {:.1f} µs, jain {:.3f}",
                     r.contender, r.workload, r.clients, r.repetition, r.ops_per_sec, us(r.p50_ns),
                     us(r.p99_ns), r.jain);
}

void print_markdown(std::FILE* out, const std::vector<RunStats>& runs) {
  fmt::print(out,
             "| contender | workload | C | rep | ops/s | p50 µs | p99 µs | p99.9 µs | max µs | "
             "Jain | max/p50 wait | handover p50 / p99 µs | refused/s | CPU % | CPU µs/pair | "
             "switches/pair | vs raw-sqlite | vs flock | busy/err/abandoned |\n"
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  for (const RunStats& r : runs) {
    if (!r.failure.empty()) {
      fmt::print(out, "| {} | {} | {} | {} | failed: {} ||||||||||||||\n", r.contender, r.workload,
                 r.clients, r.repetition, r.failure);
      continue;
    }
    fmt::print(out,
               "| {} | {} | {} | {} | {:.0f} | {:.1f} | {:.1f} | {:.1f} | {:.0f} | {:.3f} | "
               "{} | {} | {:.0f} | {} | {} | {} | {} | {} | {}/{}/{} |\n",
               r.contender, r.workload, r.clients, r.repetition, r.ops_per_sec, us(r.p50_ns),
               us(r.p99_ns), us(r.p999_ns), us(r.max_ns), r.jain,
               // On distinct keys nobody waits: the ratio would only measure scheduling noise.
               r.workload == "hot" ? fmt::format("{:.1f}", r.max_over_median) : "–",
               r.workload == "hot"
                   ? fmt::format("{:.0f} / {:.0f} ({} overlaps)", us(r.handover_p50_ns),
                                 us(r.handover_p99_ns), r.overlaps)
                   : "–",
               r.refused_per_sec, cpu_text(r.cpu_busy_percent), per_pair_text(r.cpu_us_per_pair),
               per_pair_text(r.switches_per_pair), format_ratio(ratio_to(r, runs, "raw-sqlite")),
               format_ratio(ratio_to(r, runs, "flock")), r.busy, r.errors, r.abandoned);
  }
  for (const RunStats& r : runs) {
    if (!r.first_error.empty()) {
      fmt::print(out, "\n{} {} C={} rep {}: first error: {}\n", r.contender, r.workload, r.clients,
                 r.repetition, r.first_error);
    }
  }
}

void print_preload(std::FILE* out, const std::vector<RunStats>& runs) {
  fmt::print(out,
             "| contender | workload | C | rep | preloaded leases | preload s | server RSS before "
             "| after | per lease | ops/s |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  auto mib = [](std::int64_t bytes) {
    return bytes < 0 ? std::string("–") : fmt::format("{:.1f} MiB", bytes / 1048576.0);
  };
  for (const RunStats& r : runs) {
    if (r.preloaded == 0) {
      continue;
    }
    const bool measured = r.rss_before_preload >= 0 && r.rss_after_preload >= 0;
    fmt::print(out, "| {} | {} | {} | {} | {} | {:.1f} | {} | {} | {} | {} |\n", r.contender,
               r.workload, r.clients, r.repetition, r.preloaded, r.preload_seconds,
               mib(r.rss_before_preload), mib(r.rss_after_preload),
               measured ? fmt::format("{:.0f} B", static_cast<double>(r.rss_after_preload -
                                                                      r.rss_before_preload) /
                                                      static_cast<double>(r.preloaded))
                        : "–",
               r.failure.empty() ? fmt::format("{:.0f}", r.ops_per_sec) : "failed");
  }
}

void print_guarantees(std::FILE* out, const std::vector<RunStats>& runs) {
  fmt::print(out, "| contender | guarantees |\n|---|---|\n");
  for (const std::string& name : contender_names()) {
    const bool ran = std::any_of(runs.begin(), runs.end(),
                                 [&](const RunStats& r) { return r.contender == name; });
    if (ran) {
      fmt::print(out, "| {} | {} |\n", name, make_contender(name)->guarantees());
    }
  }
}

namespace {

// The median over repetitions of `figure` for (contender, workload, C); nothing if it never ran.
std::optional<double> median_figure(const std::vector<RunStats>& runs, std::string_view contender,
                                    std::string_view workload, int clients,
                                    double (*figure)(const RunStats&)) {
  std::vector<double> v;
  for (const RunStats& r : runs) {
    if (r.contender == contender && r.workload == workload && r.clients == clients &&
        r.failure.empty()) {
      v.push_back(figure(r));
    }
  }
  return v.empty() ? std::nullopt : std::optional<double>(median_of(v));
}

// The median over repetitions of contender's ops/s over peer's, same workload and C.
std::optional<double> median_ratio(const std::vector<RunStats>& runs, std::string_view contender,
                                   std::string_view peer, std::string_view workload, int clients) {
  std::vector<double> v;
  for (const RunStats& r : runs) {
    if (r.contender == contender && r.workload == workload && r.clients == clients &&
        r.failure.empty()) {
      if (auto ratio = ratio_to(r, runs, peer)) {
        v.push_back(*ratio);
      }
    }
  }
  return v.empty() ? std::nullopt : std::optional<double>(median_of(v));
}

double ops(const RunStats& r) {
  return r.ops_per_sec;
}

Status write_text(const std::string& path, const std::string& text) {
  std::FILE* file = std::fopen(path.c_str(), "w");
  const bool ok = file != nullptr && std::fputs(text.c_str(), file) >= 0;
  if ((file != nullptr && std::fclose(file) != 0) || !ok) {
    return unavailable(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  }
  return Status::ok();
}

}  // namespace

void print_targets(std::FILE* out, const std::vector<RunStats>& runs) {
  constexpr int kC = 64;
  if (std::none_of(runs.begin(), runs.end(), [](const RunStats& r) { return r.clients == kC; })) {
    fmt::print(out, "No run with C = {}: the targets are measured there.\n", kC);
    return;
  }
  fmt::print(out, "| target (C = {}) | measured | wanted | |\n|---|--:|--:|---|\n", kC);
  auto row = [&](const std::string& what, std::optional<double> value, double wanted, bool at_least,
                 const char* unit) {
    if (!value) {
      return;
    }
    const bool met = at_least ? *value >= wanted : *value <= wanted;
    fmt::print(out, "| {} | {:.3g}{} | {} {:.3g}{} | {} |\n", what, *value, unit,
               at_least ? "≥" : "≤", wanted, unit, met ? "met" : "**missed**");
  };
  const struct {
    const char* peer;
    double wanted;
  } distinct[] = {
      {"raw-redis", 1.0}, {"raw-postgres", 4.0}, {"raw-etcd", 10.0}, {"floor-loopback", 0.8}};
  for (const auto& [peer, wanted] : distinct) {
    row(fmt::format("aecd-sqlite / {}, distinct keys, pairs/s", peer),
        median_ratio(runs, "aecd-sqlite", peer, "distinct", kC), wanted, true, "×");
  }
  row("aecd-sqlite / raw-redis, hot key, successful pairs/s",
      median_ratio(runs, "aecd-sqlite", "raw-redis", "hot", kC), 5.0, true, "×");
  row("aecd-sqlite, hot key, Jain's fairness index",
      median_figure(runs, "aecd-sqlite", "hot", kC, [](const RunStats& r) { return r.jain; }), 0.99,
      true, "");
  row("aecd-sqlite, hot key, wake-up: release to the next waiter's grant, p99",
      median_figure(runs, "aecd-sqlite", "hot", kC,
                    [](const RunStats& r) { return us(r.handover_p99_ns) / 1e3; }),
      2.0, false, " ms");
  row("aecd-sqlite, hot key, refused attempts/s",
      median_figure(runs, "aecd-sqlite", "hot", kC,
                    [](const RunStats& r) { return r.refused_per_sec; }),
      0, false, "");
}

Status write_plot_data(const std::string& dir, const std::vector<RunStats>& runs) {
  for (const char* workload : {"distinct", "hot"}) {
    std::vector<int> clients;
    for (const RunStats& r : runs) {
      if (r.workload == workload &&
          std::find(clients.begin(), clients.end(), r.clients) == clients.end()) {
        clients.push_back(r.clients);
      }
    }
    if (clients.empty()) {
      continue;
    }
    std::sort(clients.begin(), clients.end());
    const int top = clients.back();
    std::string throughput = "contender";
    for (int c : clients) {
      throughput += fmt::format(" \"C={}\"", c);
    }
    throughput += "\n";
    std::string latency = fmt::format(
        "contender \"p50 (C={0})\" \"p99 (C={0})\" "
        "\"p99.9 (C={0})\"\n",
        top);
    for (const std::string& name : contender_names()) {
      if (!median_figure(runs, name, workload, top, ops)) {
        continue;
      }
      throughput += name;
      for (int c : clients) {
        auto v = median_figure(runs, name, workload, c, ops);
        throughput += v ? fmt::format(" {:.1f}", *v) : " NaN";
      }
      throughput += "\n";
      auto at = [&](double (*figure)(const RunStats&)) {
        return *median_figure(runs, name, workload, top, figure);
      };
      latency += fmt::format("{} {:.1f} {:.1f} {:.1f}\n", name,
                             at([](const RunStats& r) { return us(r.p50_ns); }),
                             at([](const RunStats& r) { return us(r.p99_ns); }),
                             at([](const RunStats& r) { return us(r.p999_ns); }));
    }
    for (const auto& [file, text] :
         {std::pair{fmt::format("{}/throughput-{}.dat", dir, workload), throughput},
          std::pair{fmt::format("{}/latency-{}.dat", dir, workload), latency}}) {
      if (Status st = write_text(file, text); !st.is_ok()) {
        return st;
      }
    }
  }
  return Status::ok();
}

Status write_json(const std::string& path, const std::vector<RunStats>& runs) {
  std::string text = "[\n";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    text += "  " + json_object(runs[i], runs) + (i + 1 < runs.size() ? ",\n" : "\n");
  }
  text += "]\n";
  if (path == "-") {
    fmt::print("{}", text);
    return Status::ok();
  }
  return write_text(path, text);
}

}  // namespace aec::bench
