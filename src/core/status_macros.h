// Early-return helpers for Status and Result<T>.
#pragma once

#include <aec/status.h>

// Evaluates `expr` (a Status) and returns it from the enclosing function when not ok.
#define AEC_RETURN_IF_ERROR(expr)       \
  do {                                  \
    ::aec::Status aec_status_ = (expr); \
    if (!aec_status_.is_ok()) {         \
      return aec_status_;               \
    }                                   \
  } while (false)

#define AEC_CONCAT_INNER_(a, b) a##b
#define AEC_CONCAT_(a, b) AEC_CONCAT_INNER_(a, b)

// Evaluates `expr` (a Result<T>); returns its error, or moves its value into `lhs`
// (a declaration such as `auto x` or an existing variable).
#define AEC_ASSIGN_OR_RETURN(lhs, expr) \
  AEC_ASSIGN_OR_RETURN_IMPL_(AEC_CONCAT_(aec_result_, __LINE__), lhs, expr)
#define AEC_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.has_value()) {                          \
    return tmp.error();                            \
  }                                                \
  lhs = std::move(*tmp)
