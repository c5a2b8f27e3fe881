#include <aec/status.h>

namespace aec {

std::string_view code_name(Code code) {
  switch (code) {
    case Code::Ok:
      return "ok";
    case Code::InvalidArgument:
      return "invalid_argument";
    case Code::NotFound:
      return "not_found";
    case Code::FailedPrecondition:
      return "failed_precondition";
    case Code::Unavailable:
      return "unavailable";
    case Code::DeadlineExceeded:
      return "deadline_exceeded";
    case Code::Cancelled:
      return "cancelled";
    case Code::PermissionDenied:
      return "permission_denied";
    case Code::DataLoss:
      return "data_loss";
    case Code::Internal:
      return "internal";
  }
  return "internal";
}

std::string Status::to_string() const {
  if (is_ok()) {
    return "ok";
  }
  return std::string(code_name(code_)) + ": " + message_;
}

}  // namespace aec
