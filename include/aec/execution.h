// Executions: the history of work run under a key.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <aec/clock.h>

namespace aec {

// The life of one execution:
//   Running -> Succeeded | Failed | Lost | Cancelled
// and Skipped for a run that never started because the key was busy (or already done).
enum class ExecutionStatus {
  Running,    // holds a lease now
  Succeeded,  // finished with exit code 0
  Failed,     // finished with a non-zero exit code or a signal
  Lost,       // its lease expired or was taken from it before it finished
  Cancelled,  // stopped by an operator (force release) or by the caller before it ran to the end
  Skipped,    // never ran: the key was busy or already done
};

// "running", "succeeded", ... Stable: stored in databases and printed in JSON.
std::string_view to_string(ExecutionStatus status);
// The inverse of to_string; nullopt for an unknown word.
std::optional<ExecutionStatus> parse_execution_status(std::string_view word);
// True for every status but Running.
inline bool is_ended(ExecutionStatus status) {
  return status != ExecutionStatus::Running;
}

// Free-form labels attached to an execution (`--label k=v`).
using Labels = std::map<std::string, std::string>;

// Who runs (or ran) an execution.
struct Owner {
  std::string host;      // host name
  std::int64_t pid = 0;  // process id on that host
  std::string user;      // the OS user, or the operator for a forced release
};

// One run of work under a key, as recorded in the store's history.
struct Execution {
  std::string id;          // caller-supplied or generated; see new_execution_id()
  std::string key;         // the protected key
  std::int64_t token = 0;  // the fencing token of its lease; 0 when Skipped
  ExecutionStatus status = ExecutionStatus::Running;
  Owner owner;                      // who ran it
  SysTime started_at{};             // wall clock, for people; never used for expiry
  std::optional<SysTime> ended_at;  // set once status is not Running
  std::optional<int> exit_code;     // the work's exit code, when it reported one
  Labels labels;                    // caller-supplied labels
  std::string reason;               // why it ended this way (skipped, lost, cancelled)
};

// A new unique execution id: UTC time to the second plus 64 random bits, e.g.
// "20261123T180401Z-3f9a1c2b7d4e8a61". Thread-safe.
std::string new_execution_id();

// Retry attempts. An execution retried by a scheduler runs as attempts whose ids are the
// execution's id plus "-" and a 5-character suffix of lowercase letters and digits, the way
// Kubernetes names a Job's pods: "job-7-abcde" and "job-7-fghij" are attempts of "job-7".
//
// The execution `id` belongs to: `id` without such a suffix, or `id` itself when it has none (or
// when nothing would be left before it). The view points into `id`. Note that any id ending in a
// dash and five lowercase letters or digits reads as an attempt ("run-12345" of "run").
std::string_view execution_base(std::string_view id);
// True when `a` and `b` are attempts of one execution: their whole bases are equal. Never a
// prefix match: "job-1" and "job-12-abcde" are different executions.
bool same_execution(std::string_view a, std::string_view b);

}  // namespace aec
