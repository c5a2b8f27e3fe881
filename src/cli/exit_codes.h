// The exit codes of the aec command, in one place. README.md's table is generated from the same
// list by hand; tests/e2e checks the important ones against the real binary.
#pragma once

#include <aec/status.h>

namespace aec::cli {

inline constexpr int kExitOk = 0;               // success; also a skipped or already-done run
inline constexpr int kExitUsage = 64;           // bad flag, key, duration, URL or missing command
inline constexpr int kExitDataError = 65;       // the store's data is corrupt or not an aec store
inline constexpr int kExitNotFound = 66;        // the named thing does not exist
inline constexpr int kExitUnavailable = 69;     // the store cannot be reached or stayed locked
inline constexpr int kExitInternal = 70;        // a bug: please report it
inline constexpr int kExitBusy = 75;            // busy with --on-busy fail, or a wait timed out
inline constexpr int kExitPermission = 77;      // the OS or the store refused access
inline constexpr int kExitPrecondition = 78;    // the store cannot serve the request (e.g. schema)
inline constexpr int kExitLost = 79;            // the lease was lost while the command ran
inline constexpr int kExitTimeout = 124;        // `aec wait --timeout` ran out (as timeout(1))
inline constexpr int kExitCannotExecute = 126;  // the command exists but cannot be executed
inline constexpr int kExitCommandNotFound = 127;  // the command was not found
inline constexpr int kExitInterrupted = 130;      // cancelled by a signal

// The exit code for an error of this code. Exhaustive: a new Code fails to compile until mapped.
int exit_code_for(Code code);

}  // namespace aec::cli
