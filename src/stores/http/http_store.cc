#include "stores/http/http_store.h"

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>

#include <aec/key.h>

#include "api/wire.h"
#include "core/duration.h"
#include "core/status_macros.h"
#include "core/store_checks.h"
#include "stores/http/http_url.h"
#include "stores/http/transport.h"

namespace aec {
namespace {

using http::HttpAnswer;
using http::HttpCall;
using nlohmann::json;

constexpr milliseconds kMaxServerWait{600'000};     // docs/api.md: wait_ms and wait at most 10 min
constexpr std::size_t kMaxPage = 1'000;             // docs/api.md: limit at most 1000
constexpr milliseconds kPurgeTimeout{600'000};      // purge deletes in many batches
constexpr milliseconds kLostReleaseTimeout{5'000};  // recording a lost lease: see release()

class HttpStore final : public Store {
 public:
  HttpStore(http::HttpUrl url, std::shared_ptr<Clock> clock, HttpStoreOptions options,
            std::unique_ptr<http::Transport> transport)
      : url_(std::move(url)),
        clock_(std::move(clock)),
        options_(std::move(options)),
        transport_(std::move(transport)) {}

  Result<AcquireResult> acquire(const AcquireRequest& req) override;
  Result<LeaseOutcome> renew(std::string_view key, std::int64_t token, milliseconds ttl) override;
  Result<LeaseOutcome> release(std::string_view key, std::int64_t token,
                               const Outcome& outcome) override;
  Result<KeyState> get(std::string_view key) override;
  Result<std::vector<Execution>> list(const ListFilter& filter) override;
  Result<std::int64_t> wait(std::string_view key, std::int64_t version, MonoTime deadline,
                            std::stop_token stop) override;
  Result<ForceReleaseResult> force_release(std::string_view key, std::string_view reason,
                                           const Owner& by) override;
  Result<PurgeResult> purge(const PurgeRequest& req) override;
  Status leave_queue(std::string_view key, std::string_view execution_id) override;
  std::string url() const override { return url_.display(); }

 private:
  // Sends `c` and decodes a 2xx answer with `decode`; any other answer is the server's error.
  template <typename T, typename F>
  // `reconnected`, when given, is set to HttpAnswer::reconnected.
  Result<T> call(const HttpCall& c, F decode, bool* reconnected = nullptr);
  // The error a non-2xx answer carries, prefixed with the server's HOST:PORT.
  Status server_error(const HttpCall& c, const HttpAnswer& answer) const;
  Status unexpected(const HttpCall& c, const Status& why) const;
  HttpCall post(std::string target, const json& body) const {
    return {.method = "POST",
            .target = std::move(target),
            .body = wire::to_text(body),
            .timeout = options_.request_timeout};
  }
  HttpCall get_call(std::string target) const {
    return {.method = "GET", .target = std::move(target), .timeout = options_.request_timeout};
  }

  const http::HttpUrl url_;
  const std::shared_ptr<Clock> clock_;
  const HttpStoreOptions options_;
  const std::unique_ptr<http::Transport> transport_;
};

std::string key_path(std::string_view key) {
  return "/v1/keys/" + wire::encode_path_segment(key);
}

std::string lease_path(std::string_view key, std::int64_t token, std::string_view verb) {
  return fmt::format("{}/leases/{}/{}", key_path(key), token, verb);
}

template <typename T, typename F>
Result<T> HttpStore::call(const HttpCall& c, F decode, bool* reconnected) {
  AEC_ASSIGN_OR_RETURN(HttpAnswer answer, transport_->send(c));
  if (reconnected != nullptr) {
    *reconnected = answer.reconnected;
  }
  if (answer.status < 200 || answer.status >= 300) {
    return server_error(c, answer);
  }
  auto j = wire::parse_object(answer.body);
  if (!j) {
    return unexpected(c, j.error());
  }
  if (c.heartbeat > milliseconds(0) && j->contains("error")) {
    // A streamed answer (asked for with a heartbeat) is 200 from its head on, whatever came of
    // the call: an error comes as its body.
    return server_error(c, answer);
  }
  Result<T> value = decode(*j);
  if (!value) {
    return unexpected(c, value.error());
  }
  return value;
}

Status HttpStore::server_error(const HttpCall& c, const HttpAnswer& answer) const {
  if (auto j = wire::parse_object(answer.body); j) {
    if (std::optional<Status> s = wire::decode_error(*j); s && !s->is_ok()) {
      return Status(s->code(), fmt::format("{}: {}", url_.authority(), s->message()));
    }
  }
  // Not aecd's error shape: a proxy, or something else listening on the port.
  std::string head = answer.body.substr(0, 200);
  std::replace_if(
      head.begin(), head.end(), [](char ch) { return ch == '\n' || ch == '\r'; }, ' ');
  return Status(wire::code_for_http_status(static_cast<int>(answer.status)),
                fmt::format("{}: HTTP {} to {} {}: {}", url_.authority(), answer.status, c.method,
                            c.target, head));
}

Status HttpStore::unexpected(const HttpCall& c, const Status& why) const {
  return internal_error(fmt::format("{}: unexpected answer to {} {}: {}", url_.authority(),
                                    c.method, c.target, why.message()));
}

// Whether the answer to an acquire the transport may have sent twice could be about the first
// copy's grant: a "busy" that names the caller's own execution among the holders, or a grant of
// one of several slots (the first copy may hold another). A grant of the only slot is sound: had
// the first copy taken it, the second would have been busy.
bool sent_twice_may_mislead(const AcquireRequest& req, const AcquireResult& r) {
  if (r.outcome == AcquireOutcome::Granted) {
    return req.limit > 1;
  }
  return r.outcome == AcquireOutcome::Busy &&
         std::any_of(r.holders.begin(), r.holders.end(),
                     [&](const Holder& h) { return h.execution.id == req.execution_id; });
}

Result<AcquireResult> HttpStore::acquire(const AcquireRequest& req) {
  AEC_RETURN_IF_ERROR(check_acquire_request(req));
  wire::AcquireCall body{.request = req};
  if (req.queue && req.park > milliseconds(0)) {
    body.wait = std::min(req.park, kMaxServerWait);
  }
  HttpCall c = post("/v1/leases", wire::encode(body));
  if (body.wait > milliseconds(0)) {
    c.timeout += body.wait + options_.park_margin;
    c.heartbeat = options_.heartbeat;
  }
  c.stop = req.stop;
  bool reconnected = false;
  AEC_ASSIGN_OR_RETURN(AcquireResult r,
                       call<AcquireResult>(c, wire::decode_acquire_result, &reconnected));
  if (reconnected && sent_twice_may_mislead(req, r)) {
    // As for a release (below): the transport may have sent this acquire twice, and an acquire
    // is not idempotent. The first copy may have been granted: a "busy" naming this very
    // execution as a holder is about that grant, and a second slot (limit > 1) leaves the first
    // one held. Say that nobody knows rather than give a definite answer that is wrong.
    return unavailable(fmt::format(
        "{}: the connection to aecd broke under the acquire and the transport sent it again, so "
        "its answer may be about the first copy, which may have been granted (a lease held "
        "until its ttl, then recorded lost)",
        url_.authority()));
  }
  r.parked = body.wait > milliseconds(0) && r.outcome == AcquireOutcome::Busy;
  return r;
}

Result<LeaseOutcome> HttpStore::renew(std::string_view key, std::int64_t token, milliseconds ttl) {
  AEC_RETURN_IF_ERROR(check_lease_args(key, token, ttl));
  HttpCall c = post(lease_path(key, token, "renew"), wire::encode_renew(ttl));
  // An answer later than the ttl is of no use (the lease is lost by then, and its holder has
  // stopped its work), and waiting longer on a dead connection would keep the runner from
  // exiting for the whole request timeout (the reliability suite's half-open partition, T5).
  c.timeout = std::min(c.timeout, std::max(ttl, milliseconds(100)));
  return call<LeaseOutcome>(c, wire::decode_lease_outcome);
}

Result<LeaseOutcome> HttpStore::release(std::string_view key, std::int64_t token,
                                        const Outcome& outcome) {
  AEC_RETURN_IF_ERROR(check_release_args(key, token, outcome));
  HttpCall c = post(lease_path(key, token, "release"), wire::encode(outcome));
  if (outcome.status == ExecutionStatus::Lost) {
    // The lease is gone already (its renewals went unanswered, most likely because aecd cannot
    // be reached); this release only records how the run ended. Its caller has stopped its work
    // and should not wait out the whole request timeout on a dead connection to say so.
    c.timeout = std::min(c.timeout, kLostReleaseTimeout);
  }
  bool reconnected = false;
  AEC_ASSIGN_OR_RETURN(LeaseOutcome released,
                       call<LeaseOutcome>(c, wire::decode_lease_outcome, &reconnected));
  if (released == LeaseOutcome::Lost && reconnected) {
    // The transport may have sent this release twice (its connection broke under the first
    // copy):
    // "lost" may then be the answer to the second, the first having released the lease. Say
    // that nobody knows, rather than that the lease was lost (found by the reliability suite's
    // aecd crashes, T8).
    return unavailable(fmt::format(
        "{}: the connection to aecd broke under the release and the transport sent it again, so "
        "its answer 'not held' may be about the first copy: the lease is free now, released by "
        "this call or lost before it",
        url_.authority()));
  }
  return released;
}

Result<KeyState> HttpStore::get(std::string_view key) {
  AEC_RETURN_IF_ERROR(validate_key(key));
  return call<KeyState>(get_call(key_path(key)), wire::decode_key_state);
}

std::string list_target(const ListFilter& filter, std::size_t limit, std::size_t offset) {
  std::string target = fmt::format("/v1/executions?limit={}&offset={}", limit, offset);
  if (!filter.key.empty()) {
    target += "&key=" + wire::encode_path_segment(filter.key);
  }
  if (!filter.prefix.empty()) {
    target += "&prefix=" + wire::encode_path_segment(filter.prefix);
  }
  for (ExecutionStatus s : filter.statuses) {
    target += fmt::format("&status={}", to_string(s));
  }
  return target;
}

Result<std::vector<Execution>> HttpStore::list(const ListFilter& filter) {
  // The server answers at most kMaxPage executions a call: a longer list takes several pages.
  std::vector<Execution> out;
  std::size_t offset = filter.offset;
  while (out.size() < filter.limit) {
    std::size_t limit = std::min(filter.limit - out.size(), kMaxPage);
    AEC_ASSIGN_OR_RETURN(wire::ExecutionPage page,
                         call<wire::ExecutionPage>(get_call(list_target(filter, limit, offset)),
                                                   wire::decode_execution_page));
    bool more = page.next_offset && *page.next_offset > offset && !page.executions.empty();
    std::move(page.executions.begin(), page.executions.end(), std::back_inserter(out));
    if (!more) {
      break;
    }
    offset = *page.next_offset;
  }
  if (out.size() > filter.limit) {
    out.resize(filter.limit);
  }
  return out;
}

Result<std::int64_t> HttpStore::wait(std::string_view key, std::int64_t version, MonoTime deadline,
                                     std::stop_token stop) {
  AEC_RETURN_IF_ERROR(validate_key(key));
  // A blocking query holds the request on the server until the version moves or its `wait`
  // passes (by the server's clock); a longer wait than the server allows takes several.
  for (;;) {
    auto left = std::chrono::ceil<milliseconds>(deadline - clock_->monotonic_now());
    HttpCall c = get_call(key_path(key));
    c.stop = stop;
    if (left > milliseconds(0)) {
      milliseconds chunk = std::min(left, kMaxServerWait);
      c.target += fmt::format("?index={}&wait={}", version, format_duration(chunk));
      c.timeout = chunk + options_.park_margin;
      c.heartbeat = options_.heartbeat;
    }
    AEC_ASSIGN_OR_RETURN(KeyState state, call<KeyState>(c, wire::decode_key_state));
    if (state.version != version || left <= milliseconds(0) ||
        clock_->monotonic_now() >= deadline) {
      return state.version;
    }
  }
}

Result<ForceReleaseResult> HttpStore::force_release(std::string_view key, std::string_view reason,
                                                    const Owner& by) {
  AEC_RETURN_IF_ERROR(validate_key(key));
  return call<ForceReleaseResult>(
      post(key_path(key) + "/force-release", wire::encode_force_release(reason, by)),
      wire::decode_force_release_result);
}

Result<PurgeResult> HttpStore::purge(const PurgeRequest& req) {
  AEC_RETURN_IF_ERROR(check_purge_request(req));
  HttpCall c = post("/v1/purge", wire::encode(req));
  c.timeout = std::max(c.timeout, kPurgeTimeout);
  return call<PurgeResult>(c, wire::decode_purge_result);
}

Status HttpStore::leave_queue(std::string_view key, std::string_view execution_id) {
  AEC_RETURN_IF_ERROR(validate_key(key));
  if (execution_id.empty()) {
    return Status::ok();  // an empty id holds no place
  }
  HttpCall c{.method = "DELETE",
             .target = key_path(key) + "/queue/" + wire::encode_path_segment(execution_id),
             .timeout = options_.request_timeout};
  return call<json>(c, [](const json& j) { return Result<json>(j); }).status();
}

}  // namespace

Result<std::unique_ptr<Store>> open_http_store_with(std::string_view url,
                                                    const StoreOptions& options,
                                                    const HttpStoreOptions& http,
                                                    http::TransportMaker make) {
  AEC_ASSIGN_OR_RETURN(http::HttpUrl parsed, http::parse_http_url(url));
  std::string token = parsed.token;
  if (http.token) {
    token = *http.token;
  } else if (const char* env = std::getenv("AEC_TOKEN"); token.empty() && env != nullptr) {
    token = env;
  }
  // It goes into a header line as it is: a space, a control character or a byte outside ASCII
  // would break the request (a bearer token is letters, digits and a few marks).
  if (std::any_of(token.begin(), token.end(), [](char ch) { return ch <= ' ' || ch > '~'; })) {
    return invalid_argument(fmt::format(
        "the bearer token for {} has a space, a control character or a non-ASCII byte, which "
        "an HTTP header cannot carry: check $AEC_TOKEN or the token in the URL",
        parsed.display()));
  }
  auto transport = make(http::TransportOptions{.base_url = parsed.base(),
                                               .host = parsed.host,
                                               .port = parsed.port,
                                               .cacert = parsed.cacert,
                                               .token = std::move(token),
                                               .connect_timeout = http.connect_timeout,
                                               .retry_budget = http.retry_budget});
  if (transport == nullptr) {  // https:// where libcurl is not linked (the light `aec` binary)
    return Status(Code::FailedPrecondition,
                  fmt::format("{}: https:// needs aec-full (libcurl)", parsed.display()));
  }
  return std::unique_ptr<Store>(
      std::make_unique<HttpStore>(std::move(parsed), options.clock, http, std::move(transport)));
}

}  // namespace aec
