// random64(): 64 random bits for ids and seeds, from the kernel, at the cost of one system call.
#pragma once

#include <cstdint>

namespace aec {

// From getrandom(2); should the kernel's pool not be ready yet (early boot) or the call be
// refused (an old seccomp filter), from std::random_device mixed with a per-process counter,
// so that two calls still differ. Thread-safe.
std::uint64_t random64();

}  // namespace aec
