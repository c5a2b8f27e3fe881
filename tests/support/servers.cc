#include "tests/support/servers.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace aec::testing {

std::optional<std::string> server_setting(std::string_view name) {
  std::string key(name);
  if (const char* v = std::getenv(key.c_str()); v != nullptr && *v != '\0') {
    return std::string(v);
  }
  const char* file = std::getenv("AEC_TEST_SERVERS_ENV");
  if (file == nullptr) {
    return std::nullopt;
  }
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == '=') {
      return line.substr(key.size() + 1);
    }
  }
  return std::nullopt;
}

std::string missing_server(std::string_view name) {
  return std::string(name) +
         " is not set: run the tests through ctest (which starts the servers), or start them "
         "with scripts/dev-servers.sh up and export AEC_TEST_SERVERS_ENV";
}

std::string servers_dir() {
  const char* file = std::getenv("AEC_TEST_SERVERS_ENV");
  return file == nullptr ? std::string() : std::filesystem::path(file).parent_path().string();
}

}  // namespace aec::testing
