// parse_listen_address (declared in server_config.h).
#include <algorithm>
#include <cctype>
#include <charconv>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>

#include "server/server_config.h"

namespace aec::server {
namespace {

Status bad_address(std::string_view text, std::string_view why) {
  return invalid_argument(
      fmt::format("bad listen address '{}': {}; write HOST:PORT, e.g. 127.0.0.1:7070, "
                  "[::1]:7070, 0.0.0.0:7070 or localhost:7070",
                  text, why));
}

bool parse_port(std::string_view text, std::uint16_t& port) {
  if (text.empty() || text.size() > 5 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  unsigned value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  if (value > 65535) {
    return false;
  }
  port = static_cast<std::uint16_t>(value);
  return true;
}

// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
bool is_host_name(std::string_view host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  while (!host.empty()) {
    std::size_t dot = host.find('.');
    std::string_view label = host.substr(0, dot);
    bool chars_ok = std::all_of(label.begin(), label.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-';
    });
    if (label.empty() || label.size() > 63 || !chars_ok || label.front() == '-' ||
        label.back() == '-') {
      return false;
    }
    host = dot == std::string_view::npos ? std::string_view() : host.substr(dot + 1);
  }
  return true;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

// Fills host, is_ipv6 and is_loopback; false when `host` is no address or name.
bool classify_host(std::string_view host, bool bracketed, ListenAddress& out) {
  out.host = std::string(host);
  if (bracketed) {
    in6_addr addr{};
    out.is_ipv6 = true;
    if (inet_pton(AF_INET6, out.host.c_str(), &addr) != 1) {
      return false;
    }
    out.is_loopback = IN6_IS_ADDR_LOOPBACK(&addr);
    return true;
  }
  bool numeric = std::all_of(host.begin(), host.end(),
                             [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
  if (numeric) {
    in_addr addr{};
    if (inet_pton(AF_INET, out.host.c_str(), &addr) != 1) {
      return false;  // "300.1.2.3" or "1.2.3" is neither an address nor a name
    }
    out.is_loopback = (ntohl(addr.s_addr) >> 24) == 127;
    return true;
  }
  out.is_loopback = equals_ignoring_case(host, "localhost");
  return is_host_name(host);
}

}  // namespace

Result<ListenAddress> parse_listen_address(std::string_view text) {
  std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return bad_address(text, "no port");
  }
  std::string_view host = text.substr(0, colon);
  bool bracketed = host.starts_with('[') && host.ends_with(']') && host.size() >= 2;
  if (bracketed) {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad_address(text, "put an IPv6 address in brackets");
  }
  if (host.empty()) {
    return bad_address(text, "no host (0.0.0.0 means every IPv4 interface)");
  }
  ListenAddress address;
  if (!parse_port(text.substr(colon + 1), address.port)) {
    return bad_address(text, "the port must be a number from 0 to 65535");
  }
  if (!classify_host(host, bracketed, address)) {
    return bad_address(text, fmt::format("'{}' is not an IP address or host name", host));
  }
  return address;
}

}  // namespace aec::server
