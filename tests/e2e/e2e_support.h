// Driving the real aec binary from tests: run it, start it in the background, read what it wrote.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <sys/types.h>

namespace aec::e2e {

// Extra environment for a child: added to (or overriding) the test's own environment.
using Env = std::map<std::string, std::string>;

struct Output {
  int exit_code = -1;  // 0..255, or 128+N when killed by signal N
  std::string out;     // stdout
  std::string err;     // stderr
};

// The aec binary under test (set by CMake).
std::string aec_binary();

// In a forked child: sets `env` and execs `aec ARGS...`; _exit(127) if exec fails.
[[noreturn]] void exec_aec(const std::vector<std::string>& args, const Env& env);

// Runs `aec ARGS...` to completion with `env` added to the environment and stdin from /dev/null.
Output run_aec(const std::vector<std::string>& args, const Env& env = {});
// The same with another aec binary (a copy of it elsewhere, say).
Output run_binary(const std::string& binary, const std::vector<std::string>& args,
                  const Env& env = {});

// Starts `aec ARGS...` (or any argv when `argv0` is not aec) in the background, stdout and stderr
// appended to `log_path`. Returns its pid; the child is not in a new process group.
pid_t spawn_aec(const std::vector<std::string>& args, const Env& env, const std::string& log_path);

// Waits for `pid` and returns its exit code (128+N when killed by signal N).
int wait_exit(pid_t pid);

// Polls until `path` exists (returns true) or `timeout` passes (false). Condition-based: a test
// waits for what it needs, never a fixed sleep.
bool wait_for_file(const std::string& path,
                   std::chrono::milliseconds timeout = std::chrono::seconds(10));

// The whole file, or "" when it does not exist.
std::string read_file(const std::string& path);

// The lines of a file.
std::vector<std::string> read_lines(const std::string& path);

// CLOCK_BOOTTIME in nanoseconds, the clock aec measures leases on.
long long boot_ns();

}  // namespace aec::e2e
