#include "cli/output.h"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "core/duration.h"
#include "core/json_codec.h"

namespace aec::cli {
namespace {

using Row = std::vector<std::string>;

void print_table(const std::vector<Row>& rows) {
  std::vector<std::size_t> width;
  for (const Row& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  for (const Row& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += i + 1 == row.size() ? row[i] : fmt::format("{:<{}}  ", row[i], width[i]);
    }
    fmt::print("{}\n", line);
  }
}

Row execution_row(const Execution& e) {
  return {e.key,
          std::string(to_string(e.status)),
          e.id,
          e.token == 0 ? "-" : std::to_string(e.token),
          e.owner.host,
          std::to_string(e.owner.pid),
          format_time(e.started_at),
          e.ended_at ? format_time(*e.ended_at) : "-",
          e.exit_code ? std::to_string(*e.exit_code) : "-",
          e.reason};
}

}  // namespace

void print_executions(const std::vector<Execution>& executions, bool json) {
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const Execution& e : executions) {
      out.push_back(to_json(e));
    }
    fmt::print("{}\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  std::vector<Row> rows = {
      {"KEY", "STATUS", "EXECUTION", "TOKEN", "HOST", "PID", "STARTED", "ENDED", "EXIT", "REASON"}};
  for (const Execution& e : executions) {
    rows.push_back(execution_row(e));
  }
  print_table(rows);
}

void print_key_state(const KeyState& s, bool json) {
  if (json) {
    fmt::print("{}\n", to_json(s).dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  fmt::print("key:        {}\n", s.key);
  fmt::print("holders:    {}\n", s.holders.size());
  for (const Holder& h : s.holders) {
    const Execution& e = h.execution;
    fmt::print("  - execution {} token {} on {} pid {} since {}, expires in {}\n", e.id, e.token,
               e.owner.host, e.owner.pid, format_time(e.started_at), format_duration(h.expires_in));
  }
  fmt::print("queue:      {}\n", s.queue.size());
  for (std::size_t i = 0; i < s.queue.size(); ++i) {
    fmt::print("  {}. execution {}\n", i + 1, s.queue[i]);
  }
  fmt::print("last token: {}\n", s.last_token);
  if (s.last_ended) {
    const Execution& e = *s.last_ended;
    fmt::print("last ended: {} {} (token {}) at {}{}{}\n", e.id, to_string(e.status), e.token,
               e.ended_at ? format_time(*e.ended_at) : "-",
               e.exit_code ? fmt::format(", exit {}", *e.exit_code) : "",
               e.reason.empty() ? "" : ": " + e.reason);
  } else {
    fmt::print("last ended: none\n");
  }
  fmt::print("version:    {}\n", s.version);
}

}  // namespace aec::cli
