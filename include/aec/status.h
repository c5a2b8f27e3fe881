// aec::Status and aec::Result<T>: the one error type of the library.
//
// No function of the public API throws. Every fallible call returns a Status (no value) or a
// Result<T> (a value or a Status). "Busy", "already done" and "lost" are not errors: they are
// outcomes in the success type of the call that produces them.
//
// Result<T> uses the member names of C++23 std::expected (has_value, value, error, operator*,
// operator->), so moving to std::expected later is a one-line alias.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace aec {

// What went wrong, coarse enough for a caller to decide what to do. The CLI maps each code to an
// exit code and aecd to an HTTP status; both tables are checked exhaustive by the compiler.
enum class Code {
  Ok,                  // success
  InvalidArgument,     // the caller's input is malformed: a key, a URL, a duration, a flag
  NotFound,            // the named thing does not exist
  FailedPrecondition,  // the request is well formed but cannot apply in the current state
  Unavailable,         // the store cannot be reached or is locked past its timeout; retryable
  DeadlineExceeded,    // a wait ran out of time
  Cancelled,           // the caller asked to stop (a stop token was triggered)
  PermissionDenied,    // the OS or the store refused access
  DataLoss,            // the store's data is unreadable or corrupt
  Internal,            // a bug or an unexpected answer from a dependency
};

// The lower-case name of a code ("invalid_argument"), stable for logs, JSON and tests.
std::string_view code_name(Code code);

// A code and one line saying what was wrong and what to do. Cheap to copy when ok.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == Code::Ok; }
  Code code() const { return code_; }
  // One line, no trailing newline. Empty when ok.
  const std::string& message() const { return message_; }
  // "code_name: message", for logs.
  std::string to_string() const;

 private:
  Code code_ = Code::Ok;
  std::string message_;
};

// Helpers that read as the condition they report.
inline Status invalid_argument(std::string message) {
  return Status(Code::InvalidArgument, std::move(message));
}
inline Status unavailable(std::string message) {
  return Status(Code::Unavailable, std::move(message));
}
inline Status internal_error(std::string message) {
  return Status(Code::Internal, std::move(message));
}

// A value of type T or a non-ok Status. Constructing a Result from an ok Status is a bug.
template <typename T>
class [[nodiscard]] Result {
 public:
  using value_type = T;

  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::in_place_index<1>, std::move(status)) {  // NOLINT
    if (std::get<1>(v_).is_ok()) {
      std::abort();  // an ok Status carries no value: a programming error
    }
  }

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  // Precondition: has_value(). Aborts otherwise.
  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Result*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T& operator*() & { return checked(); }
  T&& operator*() && { return std::move(checked()); }
  const T& operator*() const& { return const_cast<Result*>(this)->checked(); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &const_cast<Result*>(this)->checked(); }

  // Precondition: !has_value().
  const Status& error() const& { return std::get<1>(v_); }
  // The status: ok when a value is held.
  Status status() const { return has_value() ? Status() : std::get<1>(v_); }

 private:
  T& checked() {
    if (v_.index() != 0) {
      std::abort();
    }
    return std::get<0>(v_);
  }
  std::variant<T, Status> v_;
};

}  // namespace aec
