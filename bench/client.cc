#include "client.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <type_traits>

#include <fmt/format.h>

namespace aec::bench {
namespace {

std::int64_t ns_between(BenchClock::time_point a, BenchClock::time_point b) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

void note_error(ClientReport& report, const Status& status) {
  if (report.errors++ == 0) {
    report.first_error = status.to_string();
  }
}

// The fixed-size part of a report, written as raw bytes: parent and child are the same binary.
struct ReportHeader {
  std::int64_t successes, busy, errors, abandoned, refused, elapsed_ns, longest_abandoned_ns, holds;
  char first_error[256];
};

static_assert(std::is_trivially_copyable_v<Histogram>, "written as raw bytes");

using File = std::unique_ptr<std::FILE, decltype(&std::fclose)>;

}  // namespace

ClientReport run_client(Session& session, const ClientPlan& plan) {
  ClientReport report;
  const BenchClock::time_point start = BenchClock::now();
  const BenchClock::time_point end = start + plan.duration;
  const BenchClock::time_point give_up = end + plan.grace;
  BenchClock::time_point now = start;
  while (now < end) {
    const BenchClock::time_point first_attempt = now;
    Result<Acquired> acquired = session.acquire(plan.key, plan.wait, give_up);
    now = BenchClock::now();
    if (!acquired) {
      note_error(report, acquired.error());
      continue;
    }
    if (*acquired == Acquired::Busy) {
      if (plan.wait) {
        ++report.abandoned;
        report.longest_abandoned_ns =
            std::max(report.longest_abandoned_ns, ns_between(first_attempt, now));
      } else {
        ++report.busy;
      }
      continue;
    }
    report.acquire_ns.record(ns_between(first_attempt, now));
    if (plan.wait) {
      report.holds.push_back({now.time_since_epoch().count(), 0});
      report.holds.back().released_ns = BenchClock::now().time_since_epoch().count();
    }
    if (Status s = session.release(); !s.is_ok()) {
      note_error(report, s);
    } else {
      ++report.successes;
    }
    now = BenchClock::now();
  }
  report.elapsed_ns = ns_between(start, now);
  report.refused = session.refused_attempts();
  return report;
}

Status write_report(const std::string& path, const ClientReport& report) {
  ReportHeader header{report.successes,
                      report.busy,
                      report.errors,
                      report.abandoned,
                      report.refused,
                      report.elapsed_ns,
                      report.longest_abandoned_ns,
                      static_cast<std::int64_t>(report.holds.size()),
                      {}};
  std::snprintf(header.first_error, sizeof header.first_error, "%s", report.first_error.c_str());
  File file(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!file || std::fwrite(&header, sizeof header, 1, file.get()) != 1 ||
      std::fwrite(&report.acquire_ns, sizeof report.acquire_ns, 1, file.get()) != 1 ||
      (!report.holds.empty() &&  // fwrite of a null pointer, even for 0 items, is undefined
       std::fwrite(report.holds.data(), sizeof(Hold), report.holds.size(), file.get()) !=
           report.holds.size()) ||
      std::fflush(file.get()) != 0) {
    return unavailable(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  }
  return Status::ok();
}

Result<ClientReport> read_report(const std::string& path) {
  ReportHeader header{};
  ClientReport report;
  File file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file || std::fread(&header, sizeof header, 1, file.get()) != 1 ||
      std::fread(&report.acquire_ns, sizeof report.acquire_ns, 1, file.get()) != 1) {
    return unavailable(fmt::format("cannot read the client report {}", path));
  }
  report.holds.resize(static_cast<std::size_t>(std::max<std::int64_t>(header.holds, 0)));
  if (!report.holds.empty() && std::fread(report.holds.data(), sizeof(Hold), report.holds.size(),
                                          file.get()) != report.holds.size()) {
    return unavailable(fmt::format("the client report {} is cut short", path));
  }
  header.first_error[sizeof header.first_error - 1] = '\0';
  report.successes = header.successes;
  report.busy = header.busy;
  report.errors = header.errors;
  report.abandoned = header.abandoned;
  report.refused = header.refused;
  report.elapsed_ns = header.elapsed_ns;
  report.longest_abandoned_ns = header.longest_abandoned_ns;
  report.first_error = header.first_error;
  return report;
}

}  // namespace aec::bench
