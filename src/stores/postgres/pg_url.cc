#include "stores/postgres/pg_url.h"

#include <charconv>
#include <optional>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <libpq-fe.h>

namespace aec::pg {
namespace {

// Where the password of `url`'s user info is (start, length); nullopt when it has none.
std::optional<std::pair<std::size_t, std::size_t>> password_span(std::string_view url) {
  std::size_t start = url.find("://");
  start = start == std::string_view::npos ? 0 : start + 3;
  std::size_t end = url.find_first_of("/?#", start);
  std::size_t at = url.substr(0, end).rfind('@');
  if (at == std::string_view::npos || at < start) {
    return std::nullopt;
  }
  std::size_t colon = url.substr(0, at).find(':', start);
  if (colon == std::string_view::npos) {
    return std::nullopt;
  }
  return std::pair{colon + 1, at - colon - 1};
}

// `url` with the password of its user info replaced by "***".
std::string redacted(std::string_view url) {
  auto span = password_span(url);
  if (!span) {
    return std::string(url);
  }
  return fmt::format("{}***{}", url.substr(0, span->first), url.substr(span->first + span->second));
}

// `text` with every copy of `secret` replaced by "***".
std::string without(std::string text, std::string_view secret) {
  if (secret.empty()) {
    return text;
  }
  for (std::size_t at = text.find(secret); at != std::string::npos;
       at = text.find(secret, at + 3)) {
    text.replace(at, secret.size(), "***");
  }
  return text;
}

int hex(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes; nullopt-like empty error flag through `ok`.
std::string percent_decode(std::string_view s, bool& ok) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    int hi = i + 2 < s.size() ? hex(s[i + 1]) : -1;
    int lo = i + 2 < s.size() ? hex(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      ok = false;
      return {};
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

bool valid_schema(std::string_view s) {
  if (s.empty() || s.size() > 48 || (s[0] >= '0' && s[0] <= '9')) {
    return false;
  }
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      return false;
    }
  }
  return true;
}

// Checks that libpq accepts `conninfo`; its message otherwise.
Status check_conninfo(const std::string& conninfo, std::string_view shown, const char* what) {
  char* err = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &err);
  if (options == nullptr) {
    std::string msg = err != nullptr ? err : "out of memory";
    PQfreemem(err);
    // libpq quotes what it could not read, such as a password with a malformed %-escape.
    if (auto span = password_span(conninfo)) {
      msg = without(std::move(msg), std::string_view(conninfo).substr(span->first, span->second));
    }
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) {
      msg.pop_back();
    }
    return invalid_argument(
        fmt::format("store URL '{}': {}{} (aec's own parameters: schema, "
                    "pool, pooler, listen; the others are libpq's)",
                    shown, what, msg));
  }
  PQconninfoFree(options);
  return Status::ok();
}

}  // namespace

Result<PgUrl> parse_pg_url(std::string_view url) {
  PgUrl out;
  out.display = redacted(url);
  auto bad = [&](std::string_view what) {
    return invalid_argument(fmt::format("store URL '{}': {}", out.display, what));
  };
  if (!url.starts_with("postgres://") && !url.starts_with("postgresql://")) {
    return bad("write postgres://USER@HOST:PORT/DATABASE");
  }
  if (url.find('#') != std::string_view::npos) {
    return bad("a fragment ('#') means nothing here");
  }
  std::size_t q = url.find('?');
  std::string base(url.substr(0, q));
  std::vector<std::string> kept;
  bool listen_given = false;
  if (q != std::string_view::npos) {
    std::string_view query = url.substr(q + 1);
    while (!query.empty()) {
      std::size_t amp = query.find('&');
      std::string_view pair = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      std::size_t eq = pair.find('=');
      std::string_view name = pair.substr(0, eq);
      std::string_view raw =
          eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      bool ok = true;
      std::string value = percent_decode(raw, ok);
      if (!ok) {
        return bad(fmt::format("parameter '{}' has a malformed %-escape", name));
      }
      if (name == "schema") {
        if (!valid_schema(value)) {
          return bad(
              fmt::format("schema '{}' must be 1-48 of a-z, 0-9 and _, not starting with "
                          "a digit",
                          value));
        }
        out.schema = value;
      } else if (name == "pool") {
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), out.pool);
        if (ec != std::errc() || end != value.data() + value.size() || out.pool < 1 ||
            out.pool > 1000) {
          return bad(
              fmt::format("pool '{}' must be a number of connections from 1 to 1000", value));
        }
      } else if (name == "pooler") {
        if (value != "transaction" && value != "session" && value != "none") {
          return bad(
              fmt::format("pooler '{}' is unknown: use pooler=transaction for pgbouncer's "
                          "transaction mode (session and none need nothing)",
                          value));
        }
        out.pooled = value == "transaction";
      } else if (name == "listen") {
        if (!value.starts_with("postgres://") && !value.starts_with("postgresql://")) {
          return bad("listen= must be a percent-encoded postgres:// URL");
        }
        out.listen = value;
        listen_given = true;
      } else {
        kept.emplace_back(pair);
      }
    }
  }
  out.conninfo = base;
  for (std::size_t i = 0; i < kept.size(); ++i) {
    out.conninfo += (i == 0 ? "?" : "&") + kept[i];
  }
  if (Status s = check_conninfo(out.conninfo, out.display, ""); !s.is_ok()) {
    return s;
  }
  if (listen_given) {
    if (Status s = check_conninfo(out.listen, out.display, "listen= "); !s.is_ok()) {
      return s;
    }
  } else if (!out.pooled) {
    out.listen = out.conninfo;
  }
  return out;
}

}  // namespace aec::pg
