# Warnings, sanitizers and the Debug linker, applied to aec's own targets through aec_target_defaults().
add_library(aec_warnings INTERFACE)
target_compile_options(aec_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow
                                              -Wnon-virtual-dtor -Werror=switch
                                              # designated initializers leave defaulted
                                              # fields out on purpose
                                              -Wno-missing-field-initializers)
if(AEC_WERROR)
  target_compile_options(aec_warnings INTERFACE -Werror)
endif()
if(AEC_SANITIZE)
  target_compile_options(aec_warnings INTERFACE -fsanitize=${AEC_SANITIZE}
                                                -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(aec_warnings INTERFACE -fsanitize=${AEC_SANITIZE})
  if(AEC_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 warns that TSan does not model std::atomic_thread_fence, which Boost.Asio's
    # headers use; the warning is about Asio's internals, not ours, and must not fail the build.
    target_compile_options(aec_warnings INTERFACE -Wno-tsan)
  endif()
endif()

# Debug builds (the dev, asan and tsan presets) link with lld when the compiler can use it: each
# preset links ~50 test executables of 100-200 MB of debug information, and lld links the largest
# (tests/server/server_test) in 1.3 s against GNU ld's 7.2 s. Release builds keep the default
# linker: the light `aec` binary's packed relocations (src/cli) need GNU ld 2.38's
# -z pack-relative-relocs, which bookworm's lld 14 does not have.
include(CheckLinkerFlag)
check_linker_flag(CXX "-fuse-ld=lld" AEC_HAVE_LLD)
if(AEC_HAVE_LLD)
  target_link_options(aec_warnings INTERFACE $<$<CONFIG:Debug>:-fuse-ld=lld>)
endif()

function(aec_target_defaults target)
  target_link_libraries(${target} PRIVATE $<BUILD_INTERFACE:aec_warnings>)
endfunction()
