#include "stores/etcd/etcd_errors.h"

#include <string>

#include <fmt/format.h>

namespace aec::etcd {
namespace {

// The codes after which etcd (or the transport) may have applied a write: the connection broke,
// the deadline passed, or etcd gave up waiting for raft ("request timed out", "leader changed"
// are Unavailable) while the proposal may still commit.
bool may_have_applied(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::INTERNAL:
      return true;
    default:
      return false;
  }
}

Code definite_code(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::NOT_FOUND:
      return Code::NotFound;
    case grpc::StatusCode::INVALID_ARGUMENT:
      return Code::InvalidArgument;
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:  // "mvcc: required revision has been compacted"
    case grpc::StatusCode::ALREADY_EXISTS:
      return Code::FailedPrecondition;
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return Code::PermissionDenied;
    case grpc::StatusCode::DATA_LOSS:  // "etcdserver: corrupt cluster"
      return Code::DataLoss;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:  // "too many requests", "database space exceeded"
      return Code::Unavailable;
    default:
      return Code::Internal;
  }
}

}  // namespace

std::string_view grpc_code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::DO_NOT_USE:
      break;
  }
  return "UNKNOWN_CODE";
}

std::string describe(const grpc::Status& status) {
  // gRPC messages are one line already; etcd's start with "etcdserver: ".
  return fmt::format("{}: {}", grpc_code_name(status.error_code()), status.error_message());
}

Status from_grpc(const grpc::Status& status, std::string_view cluster, std::string_view what,
                 CallKind kind) {
  std::string detail = describe(status);
  if (is_no_leader(status)) {
    return unavailable(
        fmt::format("{}: {} refused ({}); is a quorum of members up?", cluster, what, detail));
  }
  if (!may_have_applied(status.error_code())) {
    return Status(definite_code(status.error_code()),
                  fmt::format("{}: {} failed: {}", cluster, what, detail));
  }
  if (kind == CallKind::Write) {
    return unavailable(fmt::format(
        "{}{}: {} may or may not have been applied ({}); read the state back to find out",
        kIndeterminatePrefix, cluster, what, detail));
  }
  return unavailable(
      fmt::format("{}: {} failed ({}); is a quorum of members up?", cluster, what, detail));
}

Status not_sent(std::string_view cluster, std::string_view what, std::chrono::milliseconds waited) {
  return unavailable(
      fmt::format("{}: {} not sent: no member reachable within {} ms; is etcd "
                  "running there?",
                  cluster, what, waited.count()));
}

bool is_retryable(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE;
}

bool is_no_leader(const grpc::Status& status) {
  // etcd's ErrGRPCNoLeader, which only its interceptor of "hasleader" calls gives to a unary
  // call (a write that loses its leader under it times out with other messages).
  return status.error_code() == grpc::StatusCode::UNAVAILABLE &&
         status.error_message() == "etcdserver: no leader";
}

}  // namespace aec::etcd
