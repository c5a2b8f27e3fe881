// write_termination_message: the one-line JSON outcome `aec run` leaves for whoever started it.
//
// Kubernetes reads a container's /dev/termination-log (terminationMessagePath) after it exits;
// other callers pass any file with --termination-message or AEC_TERMINATION_MESSAGE_PATH.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <aec/status.h>

namespace aec::runner {

// Writes `json_text` and a trailing newline to `path`, replacing what was there.
//
// - `path` is a regular file or does not exist: the text goes to a temporary file in the same
//   directory (mode 0644, whatever the umask; fsync'ed) that is renamed over `path`, so a reader
//   sees the old content or the new, never a mix. If that fails for an existing file (its
//   directory is read-only, or it is a bind mount such as Kubernetes' /dev/termination-log, which
//   cannot be renamed over), the existing file is truncated and written in place instead.
// - `path` is anything else (a character device, a FIFO with a reader, a symbolic link): it is
//   opened O_WRONLY|O_TRUNC (O_CREAT, mode 0644, for a dangling link) and the text written fully;
//   a symbolic link is written through, not replaced.
//
// Errors, each one line naming the path and what to do:
//   InvalidArgument  — `path` is empty or a directory, its parent directory does not exist, or it
//                      is a FIFO that no process is reading.
//   PermissionDenied — the file or its directory is not writable (or is on a read-only mount).
//   Internal         — any other I/O error (a full disk, for example).
// Thread-safe: concurrent calls use distinct temporary files; the last rename wins.
[[nodiscard]] Status write_termination_message(const std::string& path,
                                               const std::string& json_text);

// The word the Versatile Data Kit writes in its termination messages for an `aec run` that ended
// with `status` (the message's "status" field) and `exit_code`, so VDK's readers can take aec's
// message as their own:
//   succeeded                          -> "Success"
//   skipped (busy), done (already ran) -> "Skipped"
//   failed (non-zero exit, or the command could not start) -> "User error"
//   cancelled                          -> "User error": VDK has no word for it, and a cancel is
//                                         a person's decision about the job, not a platform fault
//   lost, error (the store failed)     -> "Platform error"
//   unprotected (the check bypassed)   -> "Success" when exit_code is 0, else "User error"
// Any other word (running, or unknown) gives "Platform error". Pure; thread-safe.
[[nodiscard]] std::string_view vdk_status(std::string_view status, std::optional<int> exit_code);

}  // namespace aec::runner
