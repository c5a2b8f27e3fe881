// aec-bench: the load generator. Forks C client processes per (contender, workload, C) that loop
// acquire+release on distinct keys or on one hot key, and reports throughput, acquire latency
// and fairness side by side with a raw SQLite lease table and flock(2).
//
//   aec-bench --contender all --clients 1,16 --workload distinct --workload hot --duration 5s
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <stdlib.h>

#include "contender.h"
#include "core/duration.h"
#include "driver.h"
#include "report.h"
#include "stats.h"

namespace aec::bench {
namespace {

namespace fs = std::filesystem;

struct Flags {
  std::vector<std::string> contenders{"all"};
  std::vector<int> clients{1, 16};
  std::vector<std::string> workloads{"distinct", "hot"};
  std::string duration = "5s";
  std::string dir;
  std::string json;
  std::string plot_data;
  bool targets = false;
  int repetitions = 1;
  std::int64_t preload = 0;
};

void add_flags(CLI::App& app, Flags& f) {
  std::vector<std::string> known = contender_names();
  known.insert(known.begin(), "all");
  app.add_option("--contender", f.contenders,
                 "a contender or all (repeatable). The servers' addresses come from "
                 "AEC_BENCH_POSTGRES_URL, AEC_BENCH_ETCD_ENDPOINTS=host:port,..., "
                 "AEC_BENCH_DYNAMODB_ENDPOINT and AEC_BENCH_REDIS_ADDRESS=host:port, or from "
                 "the file $AEC_TEST_SERVERS_ENV that scripts/dev-servers.sh writes")
      ->check(CLI::IsMember(known))
      ->capture_default_str();
  app.add_option("--clients", f.clients, "client processes per run (repeatable, or 1,16)")
      ->delimiter(',')
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--workload", f.workloads, "distinct keys or one hot key (repeatable)")
      ->check(CLI::IsMember({"distinct", "hot"}))
      ->capture_default_str();
  app.add_option("--duration", f.duration, "length of each run, e.g. 500ms, 5s")
      ->capture_default_str();
  app.add_option("--dir", f.dir, "data directory (default: a fresh one under /tmp, removed)");
  app.add_option("--json", f.json, "also write the runs as JSON to this file (- for stdout)");
  app.add_option("--plot-data", f.plot_data,
                 "also write gnuplot data files (throughput and latency per workload) into this "
                 "directory");
  app.add_flag("--targets", f.targets,
               "also print what each contender guarantees and the performance targets met or "
               "missed (needs C = 64 runs)");
  app.add_option("--preload", f.preload,
                 "live leases to take before each run (held for an hour; aec's contenders only): "
                 "a scale run, reporting the server's memory per lease")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{100'000'000}))
      ->capture_default_str();
  app.add_option("--repetitions", f.repetitions, "runs of each configuration")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
}

// The contenders to run, in the canonical order whatever the order on the command line.
std::vector<std::string> selected_contenders(const std::vector<std::string>& asked) {
  std::vector<std::string> names;
  for (const std::string& name : contender_names()) {
    if (std::count(asked.begin(), asked.end(), name) > 0 ||
        std::count(asked.begin(), asked.end(), "all") > 0) {
      names.push_back(name);
    }
  }
  return names;
}

// Runs one configuration in its own subdirectory of `root`, removed afterwards so that runs do
// not inherit each other's databases.
RunStats run_one(const std::string& name, const RunConfig& base, int repetition,
                 const fs::path& root) {
  RunConfig config = base;
  config.dir = (root / fmt::format("{}-{}-c{}-r{}", name, workload_name(config.workload),
                                   config.clients, repetition))
                   .string();
  std::error_code ec;
  fs::create_directories(config.dir, ec);
  RunStats stats;
  Result<RunResult> result = run_clients(*make_contender(name), config);
  if (!result) {
    stats.failure = result.error().to_string();
  } else if (!result->failure.empty()) {
    stats.failure = result->failure;
  } else {
    stats = summarize(result->clients);
    stats.cpu_busy_percent = result->cpu_busy_percent;
    if (stats.pairs > 0 && result->cpu_seconds >= 0) {
      stats.cpu_us_per_pair = result->cpu_seconds * 1e6 / static_cast<double>(stats.pairs);
    }
    if (stats.pairs > 0 && result->context_switches >= 0) {
      stats.switches_per_pair =
          static_cast<double>(result->context_switches) / static_cast<double>(stats.pairs);
    }
  }
  if (result) {
    stats.preloaded = config.preload;
    stats.preload_seconds = result->preload_seconds;
    stats.rss_before_preload = result->rss_before_preload.value_or(-1);
    stats.rss_after_preload = result->rss_after_preload.value_or(-1);
  }
  fs::remove_all(config.dir, ec);
  stats.contender = name;
  stats.workload = std::string(workload_name(config.workload));
  stats.clients = config.clients;
  stats.repetition = repetition;
  return stats;
}

// The data directory: --dir, made absolute (store URLs need it), or a fresh temporary one.
Result<fs::path> data_dir(const std::string& flag, bool& remove_at_end) {
  remove_at_end = flag.empty();
  if (!flag.empty()) {
    std::error_code ec;
    fs::create_directories(flag, ec);
    if (ec) {
      return unavailable(fmt::format("cannot create {}: {}", flag, ec.message()));
    }
    return fs::absolute(flag);
  }
  std::string tmpl = (fs::temp_directory_path() / "aec-bench-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return unavailable(fmt::format("mkdtemp {}: {}", tmpl, std::strerror(errno)));
  }
  return fs::path(tmpl);
}

// Every configuration of one repetition, contenders innermost so that the runs compared with
// each other are close in time on a shared machine.
void run_repetition(const Flags& flags, milliseconds duration, int repetition, const fs::path& root,
                    std::vector<RunStats>& runs) {
  for (const std::string& workload : flags.workloads) {
    for (int clients : flags.clients) {
      for (const std::string& name : selected_contenders(flags.contenders)) {
        if (workload == "hot" && !make_contender(name)->is_lock()) {
          continue;  // a floor excludes nobody: a hot key would only show overlaps
        }
        const RunConfig config{.workload = workload == "hot" ? Workload::Hot : Workload::Distinct,
                               .clients = clients,
                               .duration = duration,
                               .dir = {},
                               .preload = flags.preload};
        runs.push_back(run_one(name, config, repetition, root));
        fmt::print(stderr, "{}\n", progress_line(runs.back()));
      }
    }
  }
}

// A run is healthy when it completed pairs without errors; the exit code says whether all were.
bool healthy(const RunStats& r) {
  return r.failure.empty() && r.errors == 0 && r.pairs > 0;
}

}  // namespace

int bench_main(int argc, char** argv) {
  CLI::App app("aec-bench: acquire+release load against aec and its peers");
  Flags flags;
  add_flags(app, flags);
  CLI11_PARSE(app, argc, argv);
  Result<milliseconds> duration = parse_duration(flags.duration);
  if (!duration || *duration <= milliseconds(0)) {
    fmt::print(stderr, "aec-bench: --duration: {}\n",
               duration ? "must be positive" : duration.error().message());
    return 2;
  }
  bool remove_at_end = false;
  Result<fs::path> root = data_dir(flags.dir, remove_at_end);
  if (!root) {
    fmt::print(stderr, "aec-bench: {}\n", root.error().message());
    return 2;
  }
  std::vector<RunStats> runs;
  for (int rep = 1; rep <= flags.repetitions; ++rep) {
    run_repetition(flags, *duration, rep, *root, runs);
  }
  if (remove_at_end) {
    std::error_code ec;
    fs::remove_all(*root, ec);
  }
  print_markdown(stdout, runs);
  if (flags.preload > 0) {
    fmt::print("\nPreloaded leases:\n\n");
    print_preload(stdout, runs);
  }
  if (flags.repetitions > 1) {
    fmt::print("\nMedians over {} repetitions:\n\n", flags.repetitions);
    print_summary(stdout, runs);
  }
  if (flags.targets) {
    fmt::print("\nWhat each contender guarantees:\n\n");
    print_guarantees(stdout, runs);
    fmt::print("\nTargets (medians over the repetitions):\n\n");
    print_targets(stdout, runs);
  }
  if (!flags.plot_data.empty()) {
    std::error_code ec;
    fs::create_directories(flags.plot_data, ec);
    if (Status s = write_plot_data(flags.plot_data, runs); !s.is_ok()) {
      fmt::print(stderr, "aec-bench: {}\n", s.message());
      return 1;
    }
  }
  if (!flags.json.empty()) {
    if (Status s = write_json(flags.json, runs); !s.is_ok()) {
      fmt::print(stderr, "aec-bench: {}\n", s.message());
      return 1;
    }
  }
  return std::all_of(runs.begin(), runs.end(), healthy) ? 0 : 1;
}

}  // namespace aec::bench

int main(int argc, char** argv) {
  return aec::bench::bench_main(argc, argv);
}
