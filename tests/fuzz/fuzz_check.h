// What the fuzz targets share: a check that aborts (so libFuzzer saves the input) and the input
// split into a selector byte and a payload. Internal to tests/fuzz.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <aec/status.h>

namespace aec::fuzz {

// Aborts with `what` when `cond` is false: a property of the code under test is broken.
#define AEC_FUZZ_CHECK(cond, what)                                                           \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "AEC_FUZZ_CHECK failed at %s:%d: %s\n  %s\n", __FILE__, __LINE__, \
                   #cond, std::string(what).c_str());                                        \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)

// The input as text.
inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Whether AEC_FUZZ_SKIP (names separated by commas) names `bug`: a known, reported bug whose
// check is skipped so that the rest of a target can still be fuzzed until it is fixed.
// tests/fuzz/README.md lists the names.
inline bool skipping(std::string_view bug) {
  static const std::string list = [] {
    const char* v = std::getenv("AEC_FUZZ_SKIP");
    return v == nullptr ? std::string() : "," + std::string(v) + ",";
  }();
  return list.find("," + std::string(bug) + ",") != std::string::npos;
}

// An error a caller shows as one line (an HTTP 400 reason, a CLI message): not ok, a non-empty
// message, no line break.
inline void check_one_line_error(const Status& s, std::string_view context) {
  std::string where = std::string(context) + ": " + s.to_string();
  AEC_FUZZ_CHECK(!s.is_ok(), where);
  AEC_FUZZ_CHECK(!s.message().empty(), where);
  AEC_FUZZ_CHECK(s.message().find_first_of("\r\n") == std::string::npos, where);
}

}  // namespace aec::fuzz
