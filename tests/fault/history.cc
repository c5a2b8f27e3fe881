#include "tests/fault/history.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>
#include <utility>

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

namespace aec::fault {
namespace {

constexpr std::array<std::pair<EventKind, std::string_view>, 10> kNames = {{
    {EventKind::Invoke, "invoke"},
    {EventKind::Ok, "ok"},
    {EventKind::Fail, "fail"},
    {EventKind::Info, "info"},
    {EventKind::Start, "start"},
    {EventKind::End, "end"},
    {EventKind::Accept, "accept"},
    {EventKind::Reject, "reject"},
    {EventKind::Fault, "fault"},
    {EventKind::Exit, "exit"},
}};

std::string_view or_dash(std::string_view s) {
  return s.empty() ? "-" : s;
}

}  // namespace

std::int64_t boot_ns() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::string_view kind_name(EventKind kind) {
  for (const auto& [k, name] : kNames) {
    if (k == kind) {
      return name;
    }
  }
  return "?";
}

std::string to_line(const Event& e) {
  std::ostringstream out;
  out << e.t << ' ' << e.pid << ' ' << kind_name(e.kind) << ' ' << e.client << ' ' << or_dash(e.key)
      << ' ' << e.token << ' ' << e.value << ' ' << or_dash(e.op);
  return out.str();
}

std::optional<Event> parse_line(std::string_view line) {
  std::istringstream in{std::string(line)};
  Event e;
  std::string kind;
  in >> e.t >> e.pid >> kind >> e.client >> e.key >> e.token >> e.value >> e.op;
  if (!in) {
    return std::nullopt;
  }
  auto it = std::find_if(kNames.begin(), kNames.end(),
                         [&](const auto& entry) { return entry.second == kind; });
  if (it == kNames.end()) {
    return std::nullopt;
  }
  e.kind = it->first;
  if (e.key == "-") {
    e.key.clear();
  }
  if (e.op == "-") {
    e.op.clear();
  }
  return e;
}

History::History(std::string mirror_path) : mirror_(std::move(mirror_path)) {}

void History::add(Event e) {
  std::lock_guard lock(mu_);
  if (!mirror_.empty()) {
    // One write per line on an O_APPEND descriptor: lines of concurrent writers never mix.
    int fd = open(mirror_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      std::string line = to_line(e) + "\n";
      (void)!write(fd, line.data(), line.size());
      close(fd);
    }
  }
  events_.push_back(std::move(e));
}

std::vector<Event> History::events() const {
  std::vector<Event> out;
  {
    std::lock_guard lock(mu_);
    out = events_;
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Event& a, const Event& b) { return a.t < b.t; });
  return out;
}

bool History::merge_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  std::istringstream lines(text.str());
  std::string line;
  std::vector<Event> read;
  while (std::getline(lines, line)) {
    if (lines.eof()) {
      break;  // no newline after it: torn by its writer's death
    }
    std::optional<Event> e = parse_line(line);
    if (!e) {
      return false;
    }
    read.push_back(std::move(*e));
  }
  std::lock_guard lock(mu_);
  events_.insert(events_.end(), read.begin(), read.end());
  return true;
}

}  // namespace aec::fault
