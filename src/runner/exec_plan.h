// ExecPlan: everything the child needs to exec a SpawnSpec, prepared in the parent.
//
// Internal to the runner. The child (started like posix_spawn's, sharing the parent's memory
// until it execs; forked under ThreadSanitizer) may only make async-signal-safe calls (no
// malloc, no locks), so the argv/envp arrays and the PATH candidates are all built before it
// starts, and exec_child() only reads them and makes system calls.
#pragma once

#include <string>
#include <vector>

#include <sys/types.h>

#include <aec/status.h>

#include "runner/supervisor.h"

namespace aec::runner {

struct ExecPlan {
  std::string name;                     // argv[0] as given, for messages
  std::vector<std::string> candidates;  // paths execve() tries in order (PATH lookup done)
  bool searched_path = false;           // candidates come from PATH (name has no '/')
  std::vector<std::string> args;        // argv strings
  std::vector<std::string> env;         // "NAME=value" strings
  // Null-terminated arrays pointing into the strings above. Moving an ExecPlan keeps them valid:
  // a moved std::vector hands over its buffer, so its elements do not move.
  std::vector<char*> argv;
  std::vector<char*> envp;
  // {"/bin/sh", <candidate>, argv[1]..., nullptr}: how execvp runs a file that has execute
  // permission but no recognised format (ENOEXEC). The child fills slot 1.
  std::vector<char*> sh_argv;
};

// Why the child could not exec, written by the child to the report pipe (a few bytes: one write
// on a pipe is atomic).
struct ExecFailure {
  enum Stage : int { kSetpgid, kPdeathsig, kExec };
  int stage = kExec;
  int error = 0;      // errno
  int candidate = 0;  // index into ExecPlan::candidates, for kExec
};

// Validates `spec` and builds the plan from it and the current environment.
// InvalidArgument when argv or argv[0] is empty, a string holds a NUL byte, or an env name is
// empty or contains '='.
[[nodiscard]] Result<ExecPlan> make_exec_plan(const SpawnSpec& spec);

// In the child: joins its own process group, sets PR_SET_PDEATHSIG (exiting if `parent`
// already died), resets signal dispositions and the mask, and execs the plan. On failure writes
// an ExecFailure to `report_fd` and _exit(127)s. Never returns; async-signal-safe.
[[noreturn]] void exec_child(ExecPlan& plan, pid_t parent, int report_fd) noexcept;

// The Status for a failure the child reported: NotFound, PermissionDenied, InvalidArgument or
// Internal, naming the command.
[[nodiscard]] Status exec_failure_status(const ExecFailure& failure, const ExecPlan& plan);

}  // namespace aec::runner
