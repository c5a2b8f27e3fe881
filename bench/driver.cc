#include "driver.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace aec::bench {
namespace {

// How long a hot-key wait may run past the end before the client abandons it: long enough to
// see a multi-second stall, short enough to keep runs bounded.
BenchClock::duration grace_for(BenchClock::duration duration) {
  return duration;
}

// The machine's CPU time so far, from the first line of /proc/stat, in ticks: all of it, and
// the part that was idle or waiting for I/O; and its context switches so far (the "ctxt" line).
// Nothing when it cannot be read.
struct CpuTimes {
  std::int64_t total = 0;
  std::int64_t idle = 0;
  std::int64_t switches = -1;
};

std::optional<CpuTimes> cpu_times() {
  std::ifstream in("/proc/stat");
  std::string line;
  if (!std::getline(in, line) || !line.starts_with("cpu ")) {
    return std::nullopt;
  }
  std::istringstream fields(line.substr(4));
  CpuTimes t;
  std::int64_t v = 0;
  // user nice system idle iowait irq softirq steal (guest time is already in user).
  for (int i = 0; i < 8 && fields >> v; ++i) {
    t.total += v;
    if (i == 3 || i == 4) {
      t.idle += v;
    }
  }
  while (std::getline(in, line)) {
    if (line.starts_with("ctxt ")) {
      t.switches = std::strtoll(line.c_str() + 5, nullptr, 10);
      break;
    }
  }
  return t;
}

double busy_percent(const std::optional<CpuTimes>& before, const std::optional<CpuTimes>& after) {
  if (!before || !after || after->total <= before->total) {
    return -1;
  }
  const double total = static_cast<double>(after->total - before->total);
  return 100.0 * (total - static_cast<double>(after->idle - before->idle)) / total;
}

// The machine's busy CPU time between the two readings, in seconds; -1 when not measured.
double busy_seconds(const std::optional<CpuTimes>& before, const std::optional<CpuTimes>& after) {
  if (!before || !after || after->total <= before->total) {
    return -1;
  }
  const auto busy = (after->total - after->idle) - (before->total - before->idle);
  return static_cast<double>(busy) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string report_path(const RunConfig& config, int client) {
  return fmt::format("{}/client{}.report", config.dir, client);
}

// The body of client `i`: opens its session, says it is ready, waits for the start signal (EOF
// on `start_fd`), runs, writes its report. Returns the process exit code.
int client_main(Contender& contender, const RunConfig& config, int i, int ready_fd, int start_fd) {
  Result<std::unique_ptr<Session>> session = contender.open(config.dir, i);
  if (!session) {
    fmt::print(stderr, "client {}: {}\n", i, session.error().to_string());
    return 2;
  }
  char byte = 'r';
  // Closing our end of the ready pipe lets the parent see EOF if a sibling dies before it is
  // ready, instead of waiting for it forever.
  const bool ready = ::write(ready_fd, &byte, 1) == 1;
  ::close(ready_fd);
  if (!ready || ::read(start_fd, &byte, 1) != 0) {
    return 3;  // the parent went away
  }
  const ClientPlan plan{
      .key = config.workload == Workload::Hot ? "bench/hot" : fmt::format("bench/k{}", i),
      .wait = config.workload == Workload::Hot,
      .duration = config.duration,
      .grace = grace_for(config.duration)};
  const ClientReport report = run_client(**session, plan);
  session->reset();  // close connections before the report marks the client done
  if (Status s = write_report(report_path(config, i), report); !s.is_ok()) {
    fmt::print(stderr, "client {}: {}\n", i, s.to_string());
    return 4;
  }
  return 0;
}

// Waits for every child; kills those still running at `deadline`. Returns a failure or "".
std::string reap(const std::vector<pid_t>& pids, BenchClock::time_point deadline) {
  std::string failure;
  std::size_t left = pids.size();
  std::vector<bool> done(pids.size());
  while (left > 0) {
    for (std::size_t i = 0; i < pids.size(); ++i) {
      int status = 0;
      if (done[i] || ::waitpid(pids[i], &status, WNOHANG) == 0) {
        continue;
      }
      done[i] = true;
      --left;
      if (failure.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        failure = fmt::format("client {} ended with status {:#x}", i, status);
      }
    }
    if (left > 0 && BenchClock::now() > deadline) {
      for (std::size_t i = 0; i < pids.size(); ++i) {
        if (!done[i]) {
          ::kill(pids[i], SIGKILL);
        }
      }
      failure = "clients still running past the deadline were killed";
      deadline = BenchClock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return failure;
}

// The body of preloading process `p` of `processes`: holds keys bench/pre<i> for every i < n
// with i % processes == p. Returns the process exit code.
int preload_main(Contender& contender, const RunConfig& config, int p, int processes) {
  Result<std::unique_ptr<Session>> session = contender.open(config.dir, config.clients + p);
  if (!session) {
    fmt::print(stderr, "preload {}: {}\n", p, session.error().to_string());
    return 2;
  }
  for (std::int64_t i = p; i < config.preload; i += processes) {
    if (Status s = (*session)->hold(fmt::format("bench/pre{}", i)); !s.is_ok()) {
      fmt::print(stderr, "preload {}: {}\n", p, s.to_string());
      return 3;
    }
  }
  return 0;
}

// Takes config.preload leases before the run, in parallel processes; "" or what failed.
std::string preload(Contender& contender, const RunConfig& config) {
  const int processes = static_cast<int>(std::min<std::int64_t>(16, config.preload));
  std::vector<pid_t> pids;
  for (int p = 0; p < processes; ++p) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::_exit(preload_main(contender, config, p, processes));
    }
    if (pid < 0) {
      break;
    }
    pids.push_back(pid);
  }
  std::string failure = reap(pids, BenchClock::now() + std::chrono::hours(2));
  if (failure.empty() && static_cast<int>(pids.size()) != processes) {
    failure = "fork failed";
  }
  return failure.empty() ? "" : "preload: " + failure;
}

// Forks the clients and starts them together; returns their pids (fewer than asked if a fork
// failed), and the machine's CPU times at the start signal in `at_start`.
Result<std::vector<pid_t>> start_clients(Contender& contender, const RunConfig& config,
                                         std::optional<CpuTimes>& at_start) {
  int ready[2];
  int start[2];
  if (::pipe(ready) != 0 || ::pipe(start) != 0) {
    return unavailable(fmt::format("pipe: {}", std::strerror(errno)));
  }
  std::vector<pid_t> pids;
  for (int i = 0; i < config.clients; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(ready[0]);
      ::close(start[1]);
      ::_exit(client_main(contender, config, i, ready[1], start[0]));
    }
    if (pid < 0) {
      break;  // the caller reports fewer clients than asked
    }
    pids.push_back(pid);
  }
  ::close(ready[1]);
  ::close(start[0]);
  // Start together only once every client has opened its session: a slow open (schema checks,
  // WAL recovery) must not count as the first acquire's latency nor let early clients run alone.
  int ready_count = 0;
  char byte = 0;
  while (ready_count < static_cast<int>(pids.size()) && ::read(ready[0], &byte, 1) == 1) {
    ++ready_count;
  }
  ::close(ready[0]);
  at_start = cpu_times();
  ::close(start[1]);  // the start signal: every client's read() returns 0
  return pids;
}

}  // namespace

std::string_view workload_name(Workload workload) {
  return workload == Workload::Hot ? "hot" : "distinct";
}

Result<RunResult> run_clients(Contender& contender, const RunConfig& config) {
  if (Status s = contender.prepare(config.dir); !s.is_ok()) {
    return s;
  }
  RunResult result;
  if (config.preload > 0) {
    result.rss_before_preload = contender.server_rss();
    const BenchClock::time_point start = BenchClock::now();
    result.failure = preload(contender, config);
    result.preload_seconds = std::chrono::duration<double>(BenchClock::now() - start).count();
    result.rss_after_preload = contender.server_rss();
    if (!result.failure.empty()) {
      return result;
    }
  }
  std::optional<CpuTimes> cpu_before;
  Result<std::vector<pid_t>> pids = start_clients(contender, config, cpu_before);
  if (!pids) {
    return pids.error();
  }
  const auto deadline =
      BenchClock::now() + config.duration + grace_for(config.duration) + std::chrono::seconds(30);
  result.failure = reap(*pids, deadline);
  std::optional<CpuTimes> cpu_after = cpu_times();
  result.cpu_busy_percent = busy_percent(cpu_before, cpu_after);
  result.cpu_seconds = busy_seconds(cpu_before, cpu_after);
  if (cpu_before && cpu_after && cpu_before->switches >= 0 && cpu_after->switches >= 0) {
    result.context_switches = cpu_after->switches - cpu_before->switches;
  }
  if (result.failure.empty() && static_cast<int>(pids->size()) != config.clients) {
    result.failure =
        fmt::format("fork: only {} of {} clients started", pids->size(), config.clients);
  }
  if (!result.failure.empty()) {
    return result;
  }
  for (int i = 0; i < config.clients; ++i) {
    Result<ClientReport> report = read_report(report_path(config, i));
    if (!report) {
      return report.error();
    }
    result.clients.push_back(std::move(*report));
  }
  return result;
}

}  // namespace aec::bench
