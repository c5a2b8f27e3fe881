// F1: HTTP requests as aecd reads them. server/session.cc reads with a Beast request_parser
// limited by SessionLimits (16 KiB of request line and headers, 64 KiB of body) inside a session
// template over a socket; this target drives the same parser with the same limits over the input
// (a stream of pipelined requests, fed in reads of up to 4 KiB as the session's first read is),
// then what the session and the handlers do with each request: match_route (path, percent
// escapes, query), the bearer token (Authorizer::authenticate), the query parameters (limit,
// offset, index, wait, execution_status), the JSON body of the route, the key checks.
//
// Properties: no crash, leak or hang; every error a client would read is one non-empty line;
// no error message repeats the bearer token; a token route has a positive token.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <aec/key.h>

#include "api/wire.h"
#include "server/api_internal.h"
#include "server/auth.h"
#include "server/exchange.h"
#include "server/router.h"
#include "server/session.h"
#include "server/vdk_executions.h"
#include "tests/fuzz/fuzz_check.h"

namespace aec::fuzz {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using server::Exchange;
using server::Request;
using server::Route;
using server::RouteMatch;

constexpr std::string_view kToken = "fuzz-token-0123456789abcdef";

const server::Authorizer& authorizer() {
  static const server::Authorizer a = *server::Authorizer::from_text(
      std::string(kToken) + " fuzzer writer etl/,reports/\n", "fuzz-tokens");
  return a;
}

// A bearer token as token files hold them (auth.h): long enough, and with a digit and a letter,
// not to turn up in a message by chance.
bool looks_like_token(std::string_view t) {
  auto is = [&](auto pred) { return std::any_of(t.begin(), t.end(), pred); };
  return t.size() >= 12 && is([](char c) { return c >= '0' && c <= '9'; }) &&
         is([](char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }) &&
         t.find_first_not_of(
             "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=") ==
             std::string_view::npos;
}

// An error the client reads: one line, and never the token it sent.
void check_error(const Status& s, std::string_view what, std::string_view token) {
  check_one_line_error(s, what);
  if (!token.empty()) {
    AEC_FUZZ_CHECK(s.message().find(token) == std::string::npos,
                   std::string(what) + " repeats the bearer token: " + s.message());
  }
}

template <typename T>
void check_result(const Result<T>& r, std::string_view what, std::string_view token) {
  if (!r) {
    check_error(r.error(), what, token);
  }
}

// The JSON body of a route that takes one, decoded as the handler decodes it.
void check_body(const Exchange& ex, const server::Principal* who, std::string_view token) {
  Route route = ex.route().route;
  if (route != Route::Acquire && route != Route::Renew && route != Route::Release &&
      route != Route::ForceRelease && route != Route::Purge) {
    return;
  }
  Result<nlohmann::json> body = server::detail::body_object(ex);
  if (!body) {
    check_error(body.error(), "body", token);
    return;
  }
  switch (route) {
    case Route::Acquire: {
      auto call = wire::decode_acquire_call(*body);
      check_result(call, "acquire body", token);
      if (call && who != nullptr) {
        Status s = server::Authorizer::authorize(*who, server::Access::Write, call->request.key);
        if (!s.is_ok()) {
          check_error(s, "authorize acquire", token);
        }
      }
      return;
    }
    case Route::Renew:
      check_result(wire::decode_renew(*body), "renew body", token);
      return;
    case Route::Release:
      check_result(wire::decode_outcome(*body), "release body", token);
      return;
    case Route::ForceRelease:
      check_result(wire::decode_force_release_call(*body), "force-release body", token);
      return;
    default:
      check_result(wire::decode_purge_request(*body), "purge body", token);
      return;
  }
}

// The query parameters and path parameters the handlers read.
void check_params(const Exchange& ex, const server::Principal* who, std::string_view token) {
  const RouteMatch& m = ex.route();
  check_result(server::detail::limit_param(ex), "limit", token);
  check_result(server::detail::offset_param(ex), "offset", token);
  check_result(server::detail::duration_param(ex, "wait"), "wait", token);
  if (auto index = m.param("index")) {
    (void)server::detail::whole_number(*index);
  }
  check_result(server::parse_vdk_statuses(m.params("execution_status")), "execution_status", token);
  if (m.route == Route::Renew || m.route == Route::Release) {
    AEC_FUZZ_CHECK(m.token > 0, "a lease route matched with token " + std::to_string(m.token));
  }
  if (m.route == Route::VdkExecutions) {
    check_result(team_job_key(m.team, m.job), "team/job", token);
  }
  if (!m.key.empty()) {
    Status valid = validate_key(m.key);
    if (!valid.is_ok()) {
      check_error(valid, "key", token);
    }
    if (who != nullptr) {
      Status s = server::Authorizer::authorize(*who, server::Access::Read, m.key);
      if (!s.is_ok()) {
        check_error(s, "authorize key", token);
      }
    }
  }
  if (who != nullptr && (m.route == Route::ListKeys || m.route == Route::Executions)) {
    Status s = server::Authorizer::authorize_list(*who, m.param("prefix").value_or(""));
    if (!s.is_ok()) {
      check_error(s, "authorize list", token);
    }
  }
}

// One request, as the session's dispatch_request() and then the handlers see it.
void handle(Request req) {
  auto routed =
      server::match_route(std::string_view(req.method_string().data(), req.method_string().size()),
                          std::string_view(req.target().data(), req.target().size()));
  if (auto* err = std::get_if<server::RouteError>(&routed)) {
    check_one_line_error(invalid_argument(err->message), "route");
    AEC_FUZZ_CHECK(err->http_status == 400 || err->http_status == 404 || err->http_status == 405,
                   err->message);
    (void)server::error_response(req, err->http_status, err->code, err->message);
    return;
  }
  std::string header(req[http::field::authorization]);
  std::string_view sent = header;
  if (std::size_t space = sent.find(' '); space != std::string_view::npos) {
    sent.remove_prefix(space + 1);
  }
  if (!looks_like_token(sent) ||
      std::string_view(req.target().data(), req.target().size()).find(sent) !=
          std::string_view::npos ||
      req.body().find(sent) != std::string::npos) {
    sent = {};  // not a token, or one the target or body repeats: no secret to look for
  }
  Result<server::Principal> who = authorizer().authenticate(header);
  if (!who) {
    AEC_FUZZ_CHECK(who.error().code() == Code::PermissionDenied, who.error().to_string());
    check_error(who.error(), "authenticate", sent);
  }
  Exchange ex(std::move(req), std::get<RouteMatch>(std::move(routed)), "127.0.0.1:5",
              [](server::Response) {});
  const server::Principal* principal = who ? &*who : nullptr;
  check_params(ex, principal, sent);
  check_body(ex, principal, sent);
}

using Parser = http::request_parser<http::string_body>;

void fresh(std::optional<Parser>& parser) {
  static const server::SessionLimits limits;
  parser.emplace();
  parser->header_limit(static_cast<std::uint32_t>(limits.header_limit));
  parser->body_limit(limits.body_limit);
}

// A read error the session answers (413, 431, 400) or closes on; it ends the connection.
void read_error(beast::error_code ec) {
  if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
    check_one_line_error(invalid_argument("malformed HTTP request: " + ec.message()), "framing");
  }
}

}  // namespace
}  // namespace aec::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace aec::fuzz;
  constexpr std::size_t kRead = 4096;  // as the session's first read
  beast::flat_buffer buffer;
  std::size_t pos = 0;
  auto read_more = [&] {
    std::size_t n = std::min(kRead, size - pos);
    auto into = buffer.prepare(n);
    std::copy_n(data + pos, n, static_cast<std::uint8_t*>(into.data()));
    buffer.commit(n);
    pos += n;
  };
  std::optional<Parser> parser;
  for (int steps = 0; steps < 1'000'000; ++steps) {
    if (buffer.size() == 0 && pos < size) {
      read_more();
    }
    if (!parser && buffer.size() == 0) {
      return 0;  // the client closed between requests
    }
    if (!parser) {
      fresh(parser);
    }
    beast::error_code ec;
    if (buffer.size() > 0) {
      buffer.consume(parser->put(buffer.data(), ec));
    } else {
      parser->put_eof(ec);  // the client closed within a request
    }
    if (ec == http::error::need_more) {
      ec = {};
      if (pos < size) {
        read_more();
        continue;
      }
      parser->put_eof(ec);
    }
    if (ec) {
      read_error(ec);
      return 0;
    }
    if (parser->is_done()) {
      Request req = parser->release();
      parser.reset();
      bool keep_alive = req.keep_alive();
      handle(std::move(req));
      if (!keep_alive) {
        return 0;
      }
    }
  }
  AEC_FUZZ_CHECK(false, "the parser made no progress");
  return 0;
}
