// The history of a fault test run (B.1 of RELIABILITY.md): every client call (invoke, then ok,
// fail or info when the outcome is unknown), every child's start and end, every write the fenced
// sink accepted or rejected, and every fault the test injected, each with CLOCK_BOOTTIME ns (the
// clock every process on this machine shares and aec measures leases on), the pid, the key and
// the token. Written one line per event, so a run can be checked again from its file.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace aec::fault {

// CLOCK_BOOTTIME in nanoseconds.
std::int64_t boot_ns();

enum class EventKind {
  Invoke,  // a client sent a call (`op`: acquire, renew, release)
  Ok,      // ... and it succeeded (acquire: granted with `token`)
  Fail,    // ... and it surely did not take effect (acquire: busy; renew/release: not held)
  Info,    // ... and nobody knows whether it took effect (a timeout, a lost answer)
  Start,   // a child began work under `token` (its hello reached the sink)
  End,     // a child's connection to the sink closed: it exited, or was killed
  Accept,  // the sink accepted a write with `token`
  Reject,  // the sink rejected a write with `token` (a newer token had written)
  Fault,   // the test injected a fault (`op` names it, e.g. kill9, stop, cont, blackhole)
  Exit,    // an `aec run` exited with code `value`
};

std::string_view kind_name(EventKind kind);

struct Event {
  std::int64_t t = 0;  // CLOCK_BOOTTIME ns
  int pid = 0;         // the process it happened in (a child, a runner, a worker)
  EventKind kind = EventKind::Invoke;
  std::string key;
  std::int64_t token = 0;  // 0 when it has none
  std::string op;          // Invoke/Ok/Fail/Info: the call; Fault: the fault; else ""
  std::int64_t value = 0;  // Exit: the code; Invoke acquire: the limit; Invoke/renew: the ttl ms
  int client = 0;          // the client (worker number, runner number) for per-client order
};

// One line: "T PID KIND CLIENT KEY TOKEN VALUE OP" ("-" for an empty key or op). Keys in these
// tests never hold spaces.
std::string to_line(const Event& e);
std::optional<Event> parse_line(std::string_view line);

// A thread-safe, append-only list of events, optionally mirrored to a file as they happen (so a
// run that crashes still leaves its history behind).
class History {
 public:
  History() = default;
  explicit History(std::string mirror_path);
  History(const History&) = delete;
  History& operator=(const History&) = delete;

  void add(Event e);
  std::vector<Event> events() const;  // in time order (stable for equal times)

  // Adds every event of a file written by another process (one line each). A last line without
  // its newline is left out: its writer was killed (-9) in the middle of writing it, which a
  // line crossing a page boundary of the file allows; its event counts as never recorded (the
  // call stays unanswered, which the checker treats as possibly done). False if a whole line
  // cannot be read.
  bool merge_file(const std::string& path);

 private:
  mutable std::mutex mu_;
  std::vector<Event> events_;
  std::string mirror_;
};

}  // namespace aec::fault
