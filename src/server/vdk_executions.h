// The Versatile Data Kit's view of a data job's executions, for aecd's route
//
//   GET /data-jobs/for-team/{team}/jobs/{job}/executions?execution_status=running&...
//
// which answers VDK's control-service clients (its concurrent-execution checker asks for the
// `submitted` and `running` executions of a job) from aec's records of key TEAM/JOB (see
// team_job_key() in <aec/key.h>). The route reads the store; this module only translates.
// Pure: no I/O, no clock; every function is thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <aec/clock.h>
#include <aec/execution.h>
#include <aec/status.h>

namespace aec::server {

// VDK's execution statuses.
enum class VdkStatus {
  Submitted,      // waiting in the key's line (a queued waiter): not started yet
  Running,        // holds a lease
  Succeeded,      // aec's succeeded
  Cancelled,      // aec's cancelled
  Skipped,        // aec's skipped
  UserError,      // aec's failed: the job's command exited non-zero or could not start
  PlatformError,  // aec's lost: the lease expired or was taken while it ran
};

// VDK's word: "submitted", "running", "succeeded", "cancelled", "skipped", "user_error",
// "platform_error".
std::string_view to_string(VdkStatus status);

// The VDK status of an aec execution status (see VdkStatus).
VdkStatus vdk_status_of(ExecutionStatus status);

// Parses the values of the repeatable `execution_status` query parameter into a filter. A value
// is one word or several separated by commas (clients send both forms); words are matched
// without regard to case ("RUNNING", as VDK's Java enum is named, works too); empty items are
// ignored; a repeated word counts once. An empty answer means "no filter". An unknown word gives
// InvalidArgument naming it and the valid words.
Result<std::vector<VdkStatus>> parse_vdk_statuses(const std::vector<std::string>& values);

// A caller waiting in line that the server holds parked: what the server knows of it beyond the
// execution id the store's queue (KeyState::queue) gives.
struct ParkedWaiter {
  std::string execution_id;
  Owner owner;
  Labels labels;
  SysTime since{};  // when it joined the line, wall clock
};

// Everything one answer is built from.
struct VdkExecutionsQuery {
  std::string team;
  std::string job;
  std::vector<Execution> executions;  // the key's executions, newest first (Store::list)
  std::vector<std::string> queue;     // KeyState::queue: ids waiting in line, first in line first
  // Details of some of the waiters, any order. A waiter absent from `queue` is not reported:
  // the store's line is the truth. May be empty.
  std::vector<ParkedWaiter> parked;
  std::vector<VdkStatus> statuses;  // report only these (parse_vdk_statuses); empty for all
  // The executions' logs_url: "{team}", "{job}" and "{id}" are replaced by those values,
  // percent-encoded (RFC 3986 unreserved characters are kept). Empty: logs_url is null.
  std::string logs_url_template;
};

// The answer: a bare JSON array of VDK execution objects, newest first — the waiters in line
// from the last to the first (status "submitted"), then `executions` in their order. Each object
// has VDK's fields:
//   id          the execution id
//   job_name    `job`
//   status      VDK's word (VdkStatus)
//   type        the label "type" when it is "manual" or "scheduled"; otherwise "manual"
//   start_time  when it started (RFC 3339 UTC); for a waiter, when it joined the line if it is
//               parked here, else null
//   end_time    when it ended; null while running or waiting
//   started_by  the label "started_by"; else "user@host" (or whichever of the two is known);
//               null when nothing is known (a waiter not parked here)
//   message     the execution's reason, null when it has none; for a waiter,
//               "waiting in line, N ahead"
//   op_id       the label "op_id" (an operation spanning several jobs); else the execution id
//   logs_url    from logs_url_template, or null
// Strings are passed through as stored: serialize with vdk_executions_body(), or with
// nlohmann's error_handler_t::replace, since a label need not be valid UTF-8.
nlohmann::json vdk_executions(const VdkExecutionsQuery& query);

// vdk_executions() as the response body: compact JSON, any invalid UTF-8 replaced by U+FFFD.
std::string vdk_executions_body(const VdkExecutionsQuery& query);

}  // namespace aec::server
