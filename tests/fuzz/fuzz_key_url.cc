// F3: the key validator and the store URL parsers, with the text parsers they lean on.
//
// Input: one selector byte, then the text. 'K' validate_key, 'T' team_job_key (TEAM NUL JOB),
// 'H' http(s):// URL, 'E' etcd:// URL, 'P' postgres:// URL, 'Y' dynamodb:// URL, 'D' duration,
// 'S' path segment,
// 'R' RFC 3339 time, 'L' aecd's listen address; any other byte picks one by its value.
//
// Properties:
// - validate_key accepts exactly the non-empty keys of at most 512 bytes that are valid UTF-8
//   (RFC 3629, checked here independently) without control characters (U+0000-001F,
//   U+007F-009F); team_job_key gives TEAM/JOB only when that holds and neither part has '/'.
// - What a URL parser accepts round-trips: http(s) through display() and base(), etcd and
//   dynamodb through the URL their fields spell; a duration through format_duration; a time through
//   format_time; a path segment through encode_path_segment.
// - Credentials never show: no error message and no display form holds the URL's token
//   (http) or password (postgres).
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include <aec/key.h>

#include "api/json_fields.h"
#include "api/wire.h"
#include "core/duration.h"
#include "server/server_config.h"
#include "stores/dynamodb/dynamo_url.h"
#include "stores/etcd/etcd_url.h"
#include "stores/http/http_url.h"
#include "stores/postgres/pg_url.h"
#include "tests/fuzz/fuzz_check.h"

namespace aec::fuzz {
namespace {

// Well-formed UTF-8 (the Unicode standard's table 3-7) with no C0 or C1 control character and
// no DEL. Written apart from key.cc's decoder on purpose.
bool clean_utf8(std::string_view s) {
  auto at = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  auto in = [&](std::size_t i, unsigned lo, unsigned hi) {
    return i < s.size() && at(i) >= lo && at(i) <= hi;
  };
  for (std::size_t i = 0; i < s.size();) {
    unsigned b = at(i);
    if (b < 0x20 || b == 0x7F) {
      return false;
    }
    if (b < 0x80) {
      i += 1;
    } else if (b == 0xC2) {  // U+0080-00BF: C1 controls up to U+009F
      if (!in(i + 1, 0xA0, 0xBF)) {
        return false;
      }
      i += 2;
    } else if (b >= 0xC3 && b <= 0xDF) {
      if (!in(i + 1, 0x80, 0xBF)) {
        return false;
      }
      i += 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      unsigned lo = b == 0xE0 ? 0xA0 : 0x80;
      unsigned hi = b == 0xED ? 0x9F : 0xBF;
      if (!in(i + 1, lo, hi) || !in(i + 2, 0x80, 0xBF)) {
        return false;
      }
      i += 3;
    } else if (b >= 0xF0 && b <= 0xF4) {
      unsigned lo = b == 0xF0 ? 0x90 : 0x80;
      unsigned hi = b == 0xF4 ? 0x8F : 0xBF;
      if (!in(i + 1, lo, hi) || !in(i + 2, 0x80, 0xBF) || !in(i + 3, 0x80, 0xBF)) {
        return false;
      }
      i += 4;
    } else {
      return false;
    }
  }
  return true;
}

bool good_key(std::string_view key) {
  return !key.empty() && key.size() <= kMaxKeyBytes && clean_utf8(key);
}

void check_key(std::string_view key) {
  Status s = validate_key(key);
  AEC_FUZZ_CHECK(s.is_ok() == good_key(key),
                 fmt::format("validate_key({:?}) = {}", key, s.to_string()));
  if (!s.is_ok()) {
    AEC_FUZZ_CHECK(s.code() == Code::InvalidArgument, s.to_string());
    check_one_line_error(s, "validate_key");
  }
}

void check_team_job(std::string_view text) {
  std::size_t nul = text.find('\0');
  std::string_view team = text.substr(0, nul);
  std::string_view job = nul == std::string_view::npos ? "" : text.substr(nul + 1);
  Result<std::string> key = team_job_key(team, job);
  bool good = !team.empty() && !job.empty() && team.find('/') == std::string_view::npos &&
              job.find('/') == std::string_view::npos &&
              good_key(std::string(team) + "/" + std::string(job));
  AEC_FUZZ_CHECK(key.has_value() == good, fmt::format("team_job_key({:?}, {:?})", team, job));
  if (key) {
    AEC_FUZZ_CHECK(*key == fmt::format("{}/{}", team, job), *key);
  }
}

// The secret between `from` and the '@' that ends the user info, when the URL has one that no
// message would hold by chance (10+ characters with a digit and a lower-case letter, no space or
// quote, no '*': a redacted message writes "***" where the secret was) and that is written nowhere
// else in the URL.
std::string_view secret_of(std::string_view url, std::size_t from) {
  std::size_t start = url.find("://");
  if (start == std::string_view::npos) {
    return {};
  }
  start += 3;
  std::size_t end = url.find_first_of("/?#", start);
  std::size_t at = url.substr(0, end).rfind('@');
  if (at == std::string_view::npos || at < start) {
    return {};
  }
  std::size_t begin = from == std::string_view::npos ? start : url.find(':', start);
  if (begin == std::string_view::npos || begin >= at) {
    return {};
  }
  begin += from == std::string_view::npos ? 0 : 1;
  std::string_view secret = url.substr(begin, at - begin);
  std::string other = std::string(url.substr(0, begin)) + " " + std::string(url.substr(at));
  auto has = [&](auto pred) { return std::any_of(secret.begin(), secret.end(), pred); };
  bool distinct = secret.size() >= 10 && has([](char c) { return c >= '0' && c <= '9'; }) &&
                  has([](char c) { return c >= 'a' && c <= 'z'; }) &&
                  !has([](char c) { return c == ' ' || c == '\'' || c == '*'; });
  if (!distinct || other.find(secret) != std::string::npos) {
    return {};  // could turn up in a message by chance, or the URL repeats it elsewhere
  }
  return secret;
}

void no_secret(std::string_view text, std::string_view secret, std::string_view what) {
  AEC_FUZZ_CHECK(secret.empty() || text.find(secret) == std::string_view::npos,
                 fmt::format("{} shows the credentials {:?}: {:?}", what, secret, text));
}

void check_http_url(std::string_view url) {
  std::string_view token = secret_of(url, std::string_view::npos);
  Result<http::HttpUrl> u = http::parse_http_url(url);
  if (!u) {
    no_secret(u.error().message(), token, "http URL error");
    return;
  }
  AEC_FUZZ_CHECK(u->port >= 1 && u->port <= 65535, u->display());
  AEC_FUZZ_CHECK(u->display().find('@') == std::string::npos, u->display());
  Result<http::HttpUrl> again = http::parse_http_url(u->display());
  AEC_FUZZ_CHECK(again.has_value(), u->display() + ": " + again.error().to_string());
  AEC_FUZZ_CHECK(again->scheme == u->scheme && again->host == u->host && again->port == u->port &&
                     again->cacert == u->cacert && again->token.empty(),
                 fmt::format("{:?} -> {:?} -> {:?}", url, u->display(), again->display()));
  Result<http::HttpUrl> base = http::parse_http_url(u->base());
  AEC_FUZZ_CHECK(base.has_value() && base->base() == u->base(), u->base());
}

void check_etcd_url(std::string_view url) {
  Result<etcd::EtcdUrl> u = etcd::parse_etcd_url(url);
  if (!u) {
    check_one_line_error(u.error(), "etcd URL");
    return;
  }
  AEC_FUZZ_CHECK(!u->endpoints.empty() && !u->prefix.empty(), u->display);
  AEC_FUZZ_CHECK(u->dial_timeout >= milliseconds(1) && u->rpc_timeout >= milliseconds(1),
                 u->display);
  std::string spelled = fmt::format(
      "etcd://{}?prefix={}&dial_timeout={}&rpc_timeout={}", fmt::join(u->endpoints, ","), u->prefix,
      format_duration(u->dial_timeout), format_duration(u->rpc_timeout));
  Result<etcd::EtcdUrl> again = etcd::parse_etcd_url(spelled);
  AEC_FUZZ_CHECK(again.has_value(), spelled + ": " + again.error().to_string());
  AEC_FUZZ_CHECK(again->endpoints == u->endpoints && again->prefix == u->prefix &&
                     again->dial_timeout == u->dial_timeout && again->rpc_timeout == u->rpc_timeout,
                 fmt::format("{:?} -> {:?}", url, spelled));
}

void check_dynamo_url(std::string_view url) {
  Result<aws::DynamoUrl> u = aws::parse_dynamo_url(url);
  if (!u) {
    check_one_line_error(u.error(), "dynamodb URL");
    return;
  }
  AEC_FUZZ_CHECK(u->table.size() >= 3 && !u->key.empty(), u->display);
  std::string spelled = fmt::format("dynamodb://{}?key={}&create={}", u->table,
                                    wire::encode_path_segment(u->key), u->create);
  for (const auto& [name, value] :
       {std::pair{"region", u->region}, {"endpoint", u->endpoint}, {"profile", u->profile}}) {
    if (!value.empty()) {
      spelled += fmt::format("&{}={}", name, wire::encode_path_segment(value));
    }
  }
  Result<aws::DynamoUrl> again = aws::parse_dynamo_url(spelled);
  AEC_FUZZ_CHECK(again.has_value(), spelled + ": " + again.error().to_string());
  AEC_FUZZ_CHECK(again->table == u->table && again->key == u->key && again->create == u->create &&
                     again->region == u->region && again->endpoint == u->endpoint &&
                     again->profile == u->profile,
                 fmt::format("{:?} -> {:?}", url, spelled));
}

void check_pg_url(std::string_view url) {
  std::string_view password = secret_of(url, 0);
  Result<pg::PgUrl> u = pg::parse_pg_url(url);
  if (!u) {
    no_secret(u.error().message(), password, "postgres URL error");
    return;
  }
  no_secret(u->display, password, "postgres URL display");
  AEC_FUZZ_CHECK(u->pool >= 1 && u->pool <= 1000, u->display);
  AEC_FUZZ_CHECK(!u->schema.empty() && u->schema.size() <= 48, u->display);
}

void check_duration(std::string_view text) {
  Result<milliseconds> d = parse_duration(text);
  if (!d) {
    return;
  }
  AEC_FUZZ_CHECK(*d >= milliseconds(0), std::string(text));
  std::string shown = format_duration(*d);
  Result<milliseconds> again = parse_duration(shown);
  AEC_FUZZ_CHECK(again.has_value() && *again == *d, fmt::format("{:?} -> {}", text, shown));
}

void check_segment(std::string_view text) {
  Result<std::string> back = wire::decode_path_segment(wire::encode_path_segment(text));
  AEC_FUZZ_CHECK(back.has_value() && *back == text, fmt::format("{:?}", text));
  Result<std::string> decoded = wire::decode_path_segment(text);
  if (decoded) {
    Result<std::string> again = wire::decode_path_segment(wire::encode_path_segment(*decoded));
    AEC_FUZZ_CHECK(again.has_value() && *again == *decoded, fmt::format("{:?}", text));
  }
}

void check_time(std::string_view text) {
  std::optional<SysTime> t = wire::parse_time(text);
  if (!t) {
    return;
  }
  std::string shown = format_time(*t);
  std::optional<SysTime> again = wire::parse_time(shown);
  auto ms = std::chrono::floor<milliseconds>(*t);
  AEC_FUZZ_CHECK(again.has_value() && *again == ms, fmt::format("{:?} -> {}", text, shown));
}

void check_listen(std::string_view text) {
  Result<server::ListenAddress> a = server::parse_listen_address(text);
  if (a) {
    AEC_FUZZ_CHECK(!a->host.empty(), std::string(text));
  }
}

}  // namespace
}  // namespace aec::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace aec::fuzz;
  if (size == 0) {
    return 0;
  }
  static constexpr std::string_view kKinds = "KTHEPYDSRL";
  char kind = kKinds.find(static_cast<char>(data[0])) != std::string_view::npos
                  ? static_cast<char>(data[0])
                  : kKinds[data[0] % kKinds.size()];
  std::string_view text = as_text(data + 1, size - 1);
  switch (kind) {
    case 'K':
      check_key(text);
      break;
    case 'T':
      check_team_job(text);
      break;
    case 'H':
      check_http_url(text);
      break;
    case 'E':
      check_etcd_url(text);
      break;
    case 'P':
      check_pg_url(text);
      break;
    case 'Y':
      check_dynamo_url(text);
      break;
    case 'D':
      check_duration(text);
      break;
    case 'S':
      check_segment(text);
      break;
    case 'R':
      check_time(text);
      break;
    default:
      check_listen(text);
      break;
  }
  return 0;
}
