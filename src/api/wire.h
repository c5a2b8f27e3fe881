// The JSON forms of aecd's /v1 API (docs/api.md), shared by the server and the http:// store so
// the two can never disagree. Internal: the public headers never include nlohmann.
//
// Every decode_* function is strict: a body that is not a JSON object, a field of the wrong type
// or range, or a field the call does not know gives InvalidArgument with one line naming the
// field ("field 'ttl_ms': must be an integer >= 1"). Decoding never throws.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <aec/store.h>

namespace aec::wire {

// Parses a request or response body. InvalidArgument names the byte offset of a syntax error
// ("body is not valid JSON at byte 17: ...") or says the body is not an object.
Result<nlohmann::json> parse_object(std::string_view body);

// A body as compact text. Never throws: bytes that are not UTF-8 become U+FFFD.
std::string to_text(const nlohmann::json& j);

// POST /v1/leases. An absent execution_id stays empty (the server generates one); a present one
// must not be empty. An absent owner stays empty (the server fills in what it knows). wait_ms
// goes to `wait` (and, > 0, sets request.queue); request.park and request.stop are not sent.
// queue_ttl_ms (default 3000) carries request.queue_ttl.
struct AcquireCall {
  AcquireRequest request;
  milliseconds wait{0};  // > 0: park on the server up to this long (implies queue)
};
nlohmann::json encode(const AcquireCall& call);
Result<AcquireCall> decode_acquire_call(const nlohmann::json& j);

nlohmann::json encode(const AcquireResult& r);
Result<AcquireResult> decode_acquire_result(const nlohmann::json& j);

// POST /v1/keys/{key}/leases/{token}/renew: {"ttl_ms": N}.
nlohmann::json encode_renew(milliseconds ttl);
Result<milliseconds> decode_renew(const nlohmann::json& j);

// POST /v1/keys/{key}/leases/{token}/release: {"status", "exit_code", "reason"}.
nlohmann::json encode(const Outcome& outcome);
Result<Outcome> decode_outcome(const nlohmann::json& j);

// {"outcome": "ok" | "lost"}: the answer to renew and release.
nlohmann::json encode(LeaseOutcome outcome);
Result<LeaseOutcome> decode_lease_outcome(const nlohmann::json& j);

// Executions and key states (the forms of core/json_codec.h, and back).
nlohmann::json encode(const Execution& e);
Result<Execution> decode_execution(const nlohmann::json& j);
// Nested forms, for decoders of bodies that embed them: `where` names the value in messages
// ("holders[0]"). A holder is an execution plus "expires_in_ms".
Result<Execution> decode_execution(const nlohmann::json& j, std::string where);
nlohmann::json encode(const Holder& h);
Result<Holder> decode_holder(const nlohmann::json& j, std::string where);
// {"host", "pid", "user"}, every field optional.
nlohmann::json encode(const Owner& o);
Result<Owner> decode_owner(const nlohmann::json& j, std::string where);
nlohmann::json encode(const KeyState& s);
Result<KeyState> decode_key_state(const nlohmann::json& j);

// {"executions": [...], "next_offset": N?}
nlohmann::json encode_executions(const std::vector<Execution>& list,
                                 std::optional<std::size_t> next_offset);
Result<std::vector<Execution>> decode_executions(const nlohmann::json& j);
struct ExecutionPage {
  std::vector<Execution> executions;
  std::optional<std::size_t> next_offset;  // present when there may be more
};
Result<ExecutionPage> decode_execution_page(const nlohmann::json& j);

// POST /v1/keys/{key}/force-release: {"reason": "..."} (required, non-empty).
// An optional "by" (an owner) names who asks, for the record; a server with authentication may
// prefer the caller's authenticated name. decode_force_release gives the reason alone.
struct ForceReleaseCall {
  std::string reason;
  Owner by;  // empty when absent
};
nlohmann::json encode_force_release(std::string_view reason);
nlohmann::json encode_force_release(std::string_view reason, const Owner& by);
Result<std::string> decode_force_release(const nlohmann::json& j);
Result<ForceReleaseCall> decode_force_release_call(const nlohmann::json& j);
nlohmann::json encode(const ForceReleaseResult& r);
Result<ForceReleaseResult> decode_force_release_result(const nlohmann::json& j);

// POST /v1/purge.
nlohmann::json encode(const PurgeRequest& r);
Result<PurgeRequest> decode_purge_request(const nlohmann::json& j);
nlohmann::json encode(const PurgeResult& r);
Result<PurgeResult> decode_purge_result(const nlohmann::json& j);

// {"error": {"code": "...", "message": "..."}}. decode_error gives the Status the server sent
// (an unknown code word becomes Internal); a body of another shape gives nullopt. The HTTP-layer
// words of docs/api.md map to the nearest Code: unauthenticated to PermissionDenied,
// method_not_allowed, payload_too_large and headers_too_large to InvalidArgument; the message is
// kept. The second encode_error writes one of those words (or any code_name()).
nlohmann::json encode_error(const Status& status);
nlohmann::json encode_error(std::string_view code_word, std::string_view message);
std::optional<Status> decode_error(const nlohmann::json& j);

// The HTTP status for a code (the one table; exhaustive by -Werror=switch), and back for a
// response without a JSON error body.
int http_status(Code code);
Code code_for_http_status(int status);

// Percent-encodes a key for one path segment ('/' becomes %2F), and decodes one segment
// (InvalidArgument on a malformed escape).
std::string encode_path_segment(std::string_view raw);
Result<std::string> decode_path_segment(std::string_view segment);

}  // namespace aec::wire
