#include "runner/termination_message.h"

#include <string_view>
#include <system_error>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

namespace aec::runner {

namespace {

constexpr std::string_view kHint =
    "; choose another path with --termination-message or AEC_TERMINATION_MESSAGE_PATH";

std::string parent_dir(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

// The Status for an errno met while writing `path`.
Status path_error(const std::string& path, int err) {
  std::string what = "cannot write the termination message to " + path + ": ";
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return invalid_argument(what + "directory " + parent_dir(path) +
                              " does not exist; create it" + std::string(kHint));
    case EISDIR:
      return invalid_argument(what + "it is a directory" + std::string(kHint));
    case ENXIO:
      return invalid_argument(what + "it is a FIFO that no process is reading" +
                              std::string(kHint));
    case EACCES:
    case EPERM:
    case EROFS:
      return Status(Code::PermissionDenied, what + std::generic_category().message(err) +
                                                "; make it writable" + std::string(kHint));
    default:
      return internal_error(what + std::generic_category().message(err));
  }
}

// Writes all of `text`, retrying short writes and EINTR. On failure returns false with errno set.
bool write_fully(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return false;
    }
    text.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Temporary file + rename, so readers never see a partial message. Returns 0 or an errno.
int replace_atomically(const std::string& path, std::string_view text) {
  auto slash = path.rfind('/');
  std::string prefix = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  std::string tmp = prefix + "." + path.substr(prefix.size()) + ".XXXXXX";
  int fd = mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) {
    return errno;
  }
  int err = 0;
  // mkostemp creates 0600; a termination message is meant to be read by others (0644).
  if (fchmod(fd, 0644) != 0 || !write_fully(fd, text) || fsync(fd) != 0) {
    err = errno;
  }
  if (close(fd) != 0 && err == 0) {
    err = errno;
  }
  if (err == 0 && rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
  }
  if (err != 0) {
    unlink(tmp.c_str());
  }
  return err;
}

Status write_in_place(const std::string& path, std::string_view text) {
  // O_NONBLOCK only so that opening a FIFO nobody reads fails (ENXIO) instead of hanging; it is
  // cleared before writing.
  int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0644);
  if (fd < 0) {
    return path_error(path, errno);
  }
  int flags = fcntl(fd, F_GETFL);
  bool ok = flags >= 0 && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0 && write_fully(fd, text);
  int err = errno;
  close(fd);
  return ok ? Status::ok() : path_error(path, err);
}

}  // namespace

Status write_termination_message(const std::string& path, const std::string& json_text) {
  if (path.empty()) {
    return invalid_argument("the termination message path is empty" + std::string(kHint));
  }
  std::string text = json_text + "\n";
  struct stat st {};
  bool exists = lstat(path.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) {
    return path_error(path, errno);
  }
  if (exists && S_ISDIR(st.st_mode)) {
    return path_error(path, EISDIR);
  }
  if (exists && !S_ISREG(st.st_mode)) {
    return write_in_place(path, text);
  }
  int err = replace_atomically(path, text);
  if (err == 0) {
    return Status::ok();
  }
  // An existing file may still be writable where a new one cannot go (see the header).
  return exists ? write_in_place(path, text) : path_error(path, err);
}

std::string_view vdk_status(std::string_view status, std::optional<int> exit_code) {
  if (status == "unprotected") {
    status = exit_code == 0 ? "succeeded" : "failed";
  }
  if (status == "succeeded") {
    return "Success";
  }
  if (status == "skipped" || status == "done") {
    return "Skipped";
  }
  if (status == "failed" || status == "cancelled") {
    return "User error";
  }
  return "Platform error";  // lost, error, and anything unexpected
}

}  // namespace aec::runner
