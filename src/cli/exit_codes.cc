#include "cli/exit_codes.h"

namespace aec::cli {

int exit_code_for(Code code) {
  switch (code) {
    case Code::Ok:
      return kExitOk;
    case Code::InvalidArgument:
      return kExitUsage;
    case Code::NotFound:
      return kExitNotFound;
    case Code::FailedPrecondition:
      return kExitPrecondition;
    case Code::Unavailable:
      return kExitUnavailable;
    case Code::DeadlineExceeded:
      return kExitTimeout;
    case Code::Cancelled:
      return kExitInterrupted;
    case Code::PermissionDenied:
      return kExitPermission;
    case Code::DataLoss:
      return kExitDataError;
    case Code::Internal:
      return kExitInternal;
  }
  return kExitInternal;
}

}  // namespace aec::cli
