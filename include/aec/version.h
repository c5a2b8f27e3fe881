// The library's version.
#pragma once

#include <string_view>

namespace aec {

// "MAJOR.MINOR.PATCH" of this build.
std::string_view version();

}  // namespace aec
