// How the etcd client turns a failed gRPC call into an aec::Status (see etcd_client.h).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <grpcpp/support/status.h>

#include <aec/status.h>

namespace aec::etcd {

// The start of the message of a write that may or may not have been applied.
inline constexpr std::string_view kIndeterminatePrefix = "indeterminate: ";

// Whether a failed call could have changed the store: only then may a failure after sending
// be indeterminate.
enum class CallKind { Read, Write };

// "UNAVAILABLE", "DEADLINE_EXCEEDED", ...
std::string_view grpc_code_name(grpc::StatusCode code);
// "UNAVAILABLE: etcdserver: no leader": a failed call's code and message.
std::string describe(const grpc::Status& status);

// The Status of a call (`what`: "put \"key\"") to the cluster named `cluster` that ended with the
// non-ok `status` after the request may have been sent. A Write failing with a transport or
// availability error is indeterminate; an error etcd gives for the request itself (not found,
// invalid, compacted...) is definite whatever the kind.
Status from_grpc(const grpc::Status& status, std::string_view cluster, std::string_view what,
                 CallKind kind);

// A call that was never sent: no member could be reached within `waited`.
Status not_sent(std::string_view cluster, std::string_view what, std::chrono::milliseconds waited);

// True when the failure is the member's or the connection's, not the request's, so that
// sending the same read again (to whichever member is up) may succeed.
bool is_retryable(const grpc::Status& status);

// True when a member refused a call sent with the "hasleader" metadata because it knows of no
// leader: etcd checks that before it looks at the request, so the call was certainly not
// applied and may be sent again, a write too.
bool is_no_leader(const grpc::Status& status);

}  // namespace aec::etcd
