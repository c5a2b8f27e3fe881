#include "stores/http/http_url.h"

#include <charconv>

#include <fmt/format.h>

#include "api/wire.h"

namespace aec::http {
namespace {

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

// `url` with any user info (a token) replaced by "***", for messages.
std::string redacted(std::string_view url) {
  std::size_t start = url.find("://");
  start = start == std::string_view::npos ? 0 : start + 3;
  std::size_t end = url.find_first_of("/?#", start);
  std::size_t at = url.substr(0, end).rfind('@');
  if (at == std::string_view::npos || at < start) {
    return std::string(url);
  }
  return fmt::format("{}***{}", url.substr(0, start), url.substr(at));
}

class Parser {
 public:
  explicit Parser(std::string_view url) : url_(url), shown_(redacted(url)) {}

  Result<HttpUrl> parse();

 private:
  Status bad(std::string_view what) const {
    return invalid_argument(fmt::format("store URL '{}': {}", shown_, what));
  }
  Status parse_authority(std::string_view authority);
  Status parse_host_port(std::string_view host_port);
  Status parse_port(std::string_view text);
  Status parse_query(std::string_view query);

  std::string_view url_;
  std::string shown_;  // url_ without its token
  HttpUrl out_;
};

Result<HttpUrl> Parser::parse() {
  std::size_t sep = url_.find("://");
  out_.scheme = std::string(url_.substr(0, sep));
  if (sep == std::string_view::npos || (out_.scheme != "http" && out_.scheme != "https")) {
    return bad("write http://HOST:PORT or https://HOST:PORT");
  }
  std::string_view rest = url_.substr(sep + 3);
  if (rest.find('#') != std::string_view::npos) {
    return bad("a fragment ('#') means nothing here");
  }
  std::size_t end = rest.find_first_of("/?");
  if (Status s = parse_authority(rest.substr(0, end)); !s.is_ok()) {
    return s;
  }
  rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  std::size_t q = rest.find('?');
  std::string_view path = rest.substr(0, q);
  if (!path.empty() && path != "/") {
    return bad(fmt::format("aecd serves its API at the root; drop the path '{}'", path));
  }
  if (q != std::string_view::npos) {
    if (Status s = parse_query(rest.substr(q + 1)); !s.is_ok()) {
      return s;
    }
  }
  return out_;
}

Status Parser::parse_authority(std::string_view authority) {
  if (std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view user_info = authority.substr(0, at);
    std::size_t colon = user_info.find(':');
    auto token = wire::decode_path_segment(
        colon == std::string_view::npos ? user_info : user_info.substr(colon + 1));
    if (!token || token->empty()) {
      return bad("the user info before '@' must be a bearer token (TOKEN@ or user:TOKEN@)");
    }
    out_.token = std::move(*token);
    authority = authority.substr(at + 1);
  }
  return parse_host_port(authority);
}

Status Parser::parse_host_port(std::string_view host_port) {
  std::string_view port;
  if (host_port.starts_with('[')) {
    std::size_t close = host_port.find(']');
    if (close == std::string_view::npos || close == 1) {
      return bad("an IPv6 address is written in brackets: http://[::1]:7070");
    }
    out_.host = std::string(host_port.substr(0, close + 1));
    std::string_view after = host_port.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) {
      return bad("expected ':PORT' after the IPv6 address");
    }
    if (after == ":") {
      return bad("no port after ':'");
    }
    port = after.empty() ? std::string_view() : after.substr(1);
    if (out_.host.find_first_not_of("[]0123456789abcdefABCDEF:.") != std::string::npos) {
      return bad(fmt::format("'{}' is not an IPv6 address", out_.host));
    }
  } else {
    std::size_t colon = host_port.rfind(':');
    out_.host = std::string(host_port.substr(0, colon));
    port = colon == std::string_view::npos ? std::string_view() : host_port.substr(colon + 1);
    if (colon != std::string_view::npos && port.empty()) {
      return bad("no port after ':'");
    }
    for (char c : out_.host) {
      if (!is_name_char(c)) {
        return bad(fmt::format("'{}' is not a host name or address", out_.host));
      }
    }
  }
  if (out_.host.empty()) {
    return bad("no host: write http://HOST:PORT");
  }
  return parse_port(port);
}

Status Parser::parse_port(std::string_view text) {
  if (text.empty()) {
    out_.port = out_.scheme == "https" ? 443 : 80;
    return Status::ok();
  }
  int port = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc() || end != text.data() + text.size() || port < 1 || port > 65535 ||
      text[0] == '+') {
    return bad(fmt::format("bad port '{}': use a number from 1 to 65535", text));
  }
  out_.port = port;
  return Status::ok();
}

Status Parser::parse_query(std::string_view query) {
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    std::size_t eq = param.find('=');
    std::string_view name = param.substr(0, eq);
    if (name != "cacert") {
      return bad(fmt::format("unknown parameter '{}' (known: cacert)", name));
    }
    auto value =
        wire::decode_path_segment(eq == std::string_view::npos ? "" : param.substr(eq + 1));
    if (!value || value->empty()) {
      return bad("cacert needs a file: ?cacert=/PATH/TO/ca.pem");
    }
    if (out_.scheme != "https") {
      return bad("cacert applies to https:// only");
    }
    out_.cacert = std::move(*value);
  }
  return Status::ok();
}

}  // namespace

std::string HttpUrl::base() const {
  return fmt::format("{}://{}", scheme, authority());
}

std::string HttpUrl::authority() const {
  return fmt::format("{}:{}", host, port);
}

std::string HttpUrl::display() const {
  if (cacert.empty()) {
    return base();
  }
  return fmt::format("{}/?cacert={}", base(), wire::encode_path_segment(cacert));
}

Result<HttpUrl> parse_http_url(std::string_view url) {
  return Parser(url).parse();
}

}  // namespace aec::http
