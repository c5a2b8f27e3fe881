// Helpers for tests that run real processes: bounded, condition-based waits instead of sleeps.
#pragma once

#include <chrono>
#include <string>

#include <sys/types.h>

#include "runner/supervisor.h"

namespace aec::testing {

// A SpawnSpec running `script` with /bin/sh -c.
runner::SpawnSpec sh(const std::string& script);

// Polls until `path` exists, for at most `timeout`. Scripts write a file under another name and
// mv it into place, so once it exists its content is complete.
bool wait_for_file(const std::string& path,
                   std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The file's content without a trailing newline ("" if it cannot be read).
std::string read_text(const std::string& path);

// True while `pid` names a live process. A zombie counts as dead: the init of a container may
// never reap the orphans this suite creates.
bool is_alive(pid_t pid);

// Polls until `pid` is dead (see is_alive), for at most `timeout`.
bool wait_until_dead(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(2));

}  // namespace aec::testing
