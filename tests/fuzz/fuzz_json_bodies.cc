// F2: JSON request bodies -> aecd's request structs, as the API handlers decode them
// (server/api.cc: detail::body_object, then wire::decode_*).
//
// Input: one selector byte, then the body. 'A' acquire, 'R' renew, 'L' release, 'F' force
// release, 'P' purge; any other byte picks one by its value modulo 5.
// Properties: an invalid body gives InvalidArgument (HTTP 400) with a non-empty one-line message;
// a valid one survives encode -> text -> decode unchanged (the http:// store sends what the server
// reads), and the store call the handler makes with it (on a fresh memory store: acquire, then
// renew, release, force-release or purge) answers or refuses it without undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include <aec/status.h>

#include "api/wire.h"
#include "server/api_internal.h"
#include "server/exchange.h"
#include "stores/memory/memory_store.h"
#include "tests/fuzz/fuzz_check.h"

namespace aec::fuzz {
namespace {

using nlohmann::json;
using server::Exchange;
using server::Request;

// One request type: its decoder, and its encoder for the round trip.
template <typename T>
struct Body {
  const char* name;
  Result<T> (*decode)(const json&);
  json (*encode)(const T&);
  void (*apply)(Store& store, const T& value);  // the store call the handler makes
};

// A lease on "k" to renew, release or free with what the body says.
std::int64_t lease_on_k(Store& store) {
  Result<AcquireResult> r = store.acquire({.key = "k", .execution_id = "e"});
  return r && r->outcome == AcquireOutcome::Granted ? r->lease.token : 1;
}

void apply_acquire(Store& store, const wire::AcquireCall& c) {
  AcquireRequest req = c.request;
  if (req.execution_id.empty()) {
    req.execution_id = "fuzz-execution";  // as the handler does
  }
  (void)store.acquire(req);
  (void)store.get(req.key);
}
void apply_renew(Store& store, const milliseconds& ttl) {
  (void)store.renew("k", lease_on_k(store), ttl);
}
void apply_release(Store& store, const Outcome& o) {
  (void)store.release("k", lease_on_k(store), o);
}
void apply_force(Store& store, const wire::ForceReleaseCall& c) {
  lease_on_k(store);
  (void)store.force_release("k", c.reason, c.by);
}
void apply_purge(Store& store, const PurgeRequest& r) {
  lease_on_k(store);
  (void)store.purge(r);
}

json encode_call(const wire::AcquireCall& c) {
  return wire::encode(c);
}
json encode_ttl(const milliseconds& ttl) {
  return wire::encode_renew(ttl);
}
json encode_outcome(const Outcome& o) {
  return wire::encode(o);
}
json encode_force(const wire::ForceReleaseCall& c) {
  return wire::encode_force_release(c.reason, c.by);
}
json encode_purge(const PurgeRequest& r) {
  return wire::encode(r);
}

// The body as the server reads it: blank is {}, else a JSON object.
Result<json> read_body(std::string_view text) {
  Request req;
  req.body() = std::string(text);
  Exchange ex(std::move(req), {}, "127.0.0.1:1", [](server::Response) {});
  return server::detail::body_object(ex);
}

template <typename T>
void check(const Body<T>& body, std::string_view text) {
  Result<json> j = read_body(text);
  if (!j) {
    AEC_FUZZ_CHECK(j.error().code() == Code::InvalidArgument, j.error().to_string());
    check_one_line_error(j.error(), body.name);
    return;
  }
  Result<T> decoded = body.decode(*j);
  if (!decoded) {
    AEC_FUZZ_CHECK(decoded.error().code() == Code::InvalidArgument, decoded.error().to_string());
    check_one_line_error(decoded.error(), body.name);
    return;
  }
  // What the http:// store would send for it, read back by the server, must mean the same.
  std::string sent = wire::to_text(body.encode(*decoded));
  Result<json> again = read_body(sent);
  AEC_FUZZ_CHECK(again.has_value(), std::string(body.name) + " re-encoded unreadably: " + sent);
  Result<T> redecoded = body.decode(*again);
  AEC_FUZZ_CHECK(redecoded.has_value(),
                 std::string(body.name) + ": " + sent + " -> " + redecoded.error().to_string());
  std::string resent = wire::to_text(body.encode(*redecoded));
  AEC_FUZZ_CHECK(resent == sent, std::string(body.name) + " changed: " + sent + " -> " + resent);
  std::unique_ptr<Store> store = make_memory_store(real_clock());
  body.apply(*store, *decoded);
}

}  // namespace
}  // namespace aec::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace aec;
  using namespace aec::fuzz;
  if (size == 0) {
    return 0;
  }
  static constexpr std::string_view kKinds = "ARLFP";
  char kind = kKinds.find(static_cast<char>(data[0])) != std::string_view::npos
                  ? static_cast<char>(data[0])
                  : kKinds[data[0] % kKinds.size()];
  std::string_view body = as_text(data + 1, size - 1);
  switch (kind) {
    case 'A':
      check(
          Body<wire::AcquireCall>{"acquire", wire::decode_acquire_call, encode_call, apply_acquire},
          body);
      break;
    case 'R':
      check(Body<milliseconds>{"renew", wire::decode_renew, encode_ttl, apply_renew}, body);
      break;
    case 'L':
      check(Body<Outcome>{"release", wire::decode_outcome, encode_outcome, apply_release}, body);
      break;
    case 'F':
      check(Body<wire::ForceReleaseCall>{"force-release", wire::decode_force_release_call,
                                         encode_force, apply_force},
            body);
      break;
    default:
      check(Body<PurgeRequest>{"purge", wire::decode_purge_request, encode_purge, apply_purge},
            body);
      break;
  }
  return 0;
}
