// The URL of an aecd server, as the http:// store takes it:
//
//   http://HOST[:PORT][/]               port 80 when left out
//   https://HOST[:PORT][/][?cacert=PATH] port 443; PATH: PEM certificates to trust instead of
//                                        the system's
//   http://TOKEN@HOST:PORT              a bearer token in the user info (or user:TOKEN@), which
//                                        url() never shows
//
// HOST is a name, an IPv4 address or a bracketed IPv6 address ([::1]).
#pragma once

#include <string>
#include <string_view>

#include <aec/status.h>

namespace aec::http {

struct HttpUrl {
  std::string scheme;  // "http" or "https"
  std::string host;    // as written; an IPv6 address keeps its brackets
  int port = 0;
  std::string cacert;  // https: the cacert parameter, decoded; empty for the system's
  std::string token;   // from the user info; empty when none

  // "http://HOST:PORT", the prefix of every request.
  std::string base() const;
  // "HOST:PORT", which prefixes the server's error messages.
  std::string authority() const;
  // The URL without credentials: base() plus the cacert parameter when set.
  std::string display() const;
};

// Parses `url`. InvalidArgument naming the URL and what is wrong: another scheme, no host, a bad
// port, a path other than "/", an unknown parameter, a fragment.
Result<HttpUrl> parse_http_url(std::string_view url);

}  // namespace aec::http
