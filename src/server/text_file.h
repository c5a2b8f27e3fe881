// Reading small configuration files (aecd's config file and token file) whole.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include <aec/status.h>

namespace aec::server {

struct TextFile {
  std::string text;
  mode_t mode = 0;  // permission bits (st_mode & 07777) of the file that was read
};

// Reads a regular file of at most 1 MiB. Errors: InvalidArgument naming the path and the reason
// (missing, unreadable, a directory, too large). Thread-safe.
Result<TextFile> read_text_file(const std::string& path);

// The lines of `text` without their "\n" (or "\r\n"); line i is at index i - 1.
std::vector<std::string_view> split_lines(std::string_view text);

// `text` without leading and trailing spaces and tabs.
std::string_view trim(std::string_view text);

}  // namespace aec::server
