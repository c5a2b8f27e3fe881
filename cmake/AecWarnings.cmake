# Warnings and sanitizers, applied to aec's own targets through aec_target_defaults().
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

function(aec_target_defaults target)
  target_link_libraries(${target} PRIVATE $<BUILD_INTERFACE:aec_warnings>)
endfunction()
