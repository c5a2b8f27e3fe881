#include <aec/version.h>

namespace aec {

std::string_view version() {
  return AEC_VERSION;
}

}  // namespace aec
