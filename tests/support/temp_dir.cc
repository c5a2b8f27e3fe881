#include "tests/support/temp_dir.h"

#include <system_error>

#include <stdlib.h>

namespace aec::testing {

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "aec-test-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    std::abort();
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace aec::testing
