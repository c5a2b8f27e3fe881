#include "server/text_file.h"

#include <cerrno>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/text.h"

namespace aec::server {
namespace {

constexpr off_t kMaxSize = 1 << 20;  // config and token files are small; more is a mistake

Status cannot_read(const std::string& path, std::string_view why) {
  return invalid_argument(fmt::format("cannot read '{}': {}", path, why));
}

}  // namespace

Result<TextFile> read_text_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return cannot_read(path, errno_text(errno));
  }
  // fstat on the open descriptor: the mode reported is that of the file actually read.
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > kMaxSize) {
    int error = errno;
    bool regular = S_ISREG(st.st_mode);
    ::close(fd);
    return cannot_read(path, !regular                ? "not a regular file"
                             : st.st_size > kMaxSize ? "larger than 1 MiB"
                                                     : errno_text(error));
  }
  TextFile file{.mode = static_cast<mode_t>(st.st_mode & 07777)};
  char buffer[8192];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      int error = errno;
      ::close(fd);
      if (n < 0) {
        return cannot_read(path, errno_text(error));
      }
      return file;
    }
    file.text.append(buffer, static_cast<std::size_t>(n));
  }
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (line.ends_with('\r')) {
      line.remove_suffix(1);
    }
    lines.push_back(line);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
  }
  return lines;
}

std::string_view trim(std::string_view text) {
  std::size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string_view::npos) {
    return {};
  }
  std::size_t end = text.find_last_not_of(" \t");
  return text.substr(begin, end - begin + 1);
}

}  // namespace aec::server
