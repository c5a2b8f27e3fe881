// Keys: what a lease protects.
#pragma once

#include <cstddef>
#include <string_view>

#include <aec/status.h>

namespace aec {

// The longest key, in bytes.
inline constexpr std::size_t kMaxKeyBytes = 512;

// Ok when `key` is a non-empty, valid UTF-8 string of at most kMaxKeyBytes bytes with no control
// characters (U+0000–U+001F, U+007F–U+009F). Otherwise InvalidArgument naming the problem.
Status validate_key(std::string_view key);

}  // namespace aec
