#include "server/auth.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/text.h"
#include "server/text_file.h"

namespace aec::server {
namespace {

constexpr std::string_view kHashPrefix = "sha256:";

Status denied(std::string message) {
  return Status(Code::PermissionDenied, std::move(message));
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
         std::string_view("-._~+/=").find(c) != std::string_view::npos;
}

bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
         std::string_view("-._@:").find(c) != std::string_view::npos;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// The stored hash of a TOKEN field: the hex after "sha256:", or the SHA-256 of the secret.
// Messages never repeat the field: it may be a secret.
Result<std::array<std::uint8_t, 32>> token_hash(std::string_view field) {
  if (field.starts_with(kHashPrefix)) {
    std::string_view hex = field.substr(kHashPrefix.size());
    std::array<std::uint8_t, 32> hash{};
    for (std::size_t i = 0; i < hash.size() && hex.size() == 64; ++i) {
      int hi = hex_value(hex[2 * i]);
      int lo = hex_value(hex[2 * i + 1]);
      if (hi < 0 || lo < 0) {
        hex = {};  // fails the size check below
        break;
      }
      hash[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    if (hex.size() != 64) {
      return invalid_argument("after 'sha256:' give the 64 hex digits of the token's SHA-256");
    }
    return hash;
  }
  if (field.size() < 16 || field.size() > 512 ||
      !std::all_of(field.begin(), field.end(), is_token_char)) {
    return invalid_argument(
        "a token is 16 to 512 characters of A-Z a-z 0-9 - . _ ~ + / = (generate one with "
        "'openssl rand -hex 32')");
  }
  return sha256(field);
}

Result<Role> parse_role(std::string_view word) {
  for (Role role : {Role::Reader, Role::Writer, Role::Admin}) {
    if (word == role_name(role)) {
      return role;
    }
  }
  return invalid_argument(fmt::format("unknown role '{}': use reader, writer or admin", word));
}

// Fills the principal's prefixes from "*" or "p1,p2".
Status parse_prefixes(std::string_view field, Principal& principal) {
  if (field == "*") {
    principal.all_keys = true;
    return Status::ok();
  }
  while (true) {
    std::size_t comma = field.find(',');
    std::string_view prefix = field.substr(0, comma);
    if (prefix.empty() || prefix == "*") {
      return invalid_argument(
          "PREFIXES is '*' alone or a comma-separated list of non-empty key prefixes");
    }
    principal.prefixes.emplace_back(prefix);
    if (comma == std::string_view::npos) {
      return Status::ok();
    }
    field = field.substr(comma + 1);
  }
}

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while ((i = line.find_first_not_of(" \t", i)) != std::string_view::npos) {
    std::size_t end = line.find_first_of(" \t", i);
    fields.push_back(line.substr(i, end == std::string_view::npos ? end : end - i));
    i = end;
  }
  return fields;
}

Result<TokenEntry> parse_line(std::string_view line) {
  std::vector<std::string_view> f = split_fields(line);
  if (f.size() != 4) {
    return invalid_argument(
        fmt::format("expected 4 fields 'TOKEN NAME ROLE PREFIXES', found {}", f.size()));
  }
  TokenEntry entry;
  auto hash = token_hash(f[0]);
  if (!hash) {
    return hash.error();
  }
  entry.hash = *hash;
  if (!std::all_of(f[1].begin(), f[1].end(), is_name_char)) {
    return invalid_argument(fmt::format("bad name '{}': use letters, digits and - . _ @ :", f[1]));
  }
  entry.principal.name = std::string(f[1]);
  auto role = parse_role(f[2]);
  if (!role) {
    return role.error();
  }
  entry.principal.role = *role;
  Status status = parse_prefixes(f[3], entry.principal);
  if (!status.is_ok()) {
    return status;
  }
  return entry;
}

bool role_allows(Role role, Access access) {
  switch (access) {
    case Access::Read:
      return true;
    case Access::Write:
      return role != Role::Reader;
    case Access::Admin:
      return role == Role::Admin;
  }
  return false;
}

Status role_check(const Principal& who, Access access) {
  if (role_allows(who.role, access)) {
    return Status::ok();
  }
  std::string_view needs = access == Access::Write ? "the writer or admin role" : "the admin role";
  return denied(fmt::format("token '{}' ({}) may not {}: that needs {}", who.name,
                            role_name(who.role), access_name(access), needs));
}

Status outside_prefixes(const Principal& who, std::string_view what) {
  return denied(fmt::format("{} is outside the key prefixes of token '{}' ({})", what, who.name,
                            who.all_keys ? "*" : fmt::format("{}", fmt::join(who.prefixes, ", "))));
}

}  // namespace

std::string_view role_name(Role role) {
  switch (role) {
    case Role::Reader:
      return "reader";
    case Role::Writer:
      return "writer";
    case Role::Admin:
      return "admin";
  }
  return "?";
}

std::string_view access_name(Access access) {
  switch (access) {
    case Access::Read:
      return "read";
    case Access::Write:
      return "write";
    case Access::Admin:
      return "admin";
  }
  return "?";
}

std::array<std::uint8_t, 32> sha256(std::string_view data) {
  std::array<std::uint8_t, 32> out{};
  unsigned int size = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &size, EVP_sha256(), nullptr) != 1 ||
      size != out.size()) {
    std::abort();  // SHA-256 of memory cannot fail unless OpenSSL is broken
  }
  return out;
}

Authorizer Authorizer::anonymous() {
  Authorizer a;
  a.anonymous_ = true;
  return a;
}

Result<Authorizer> Authorizer::from_file(const std::string& path) {
  auto file = read_text_file(path);
  if (!file) {
    return invalid_argument(fmt::format("token file: {}", file.error().message()));
  }
  auto authorizer = from_text(file->text, path);
  if (authorizer && authorizer->holds_secrets_ && (file->mode & 077) != 0) {
    authorizer->warnings_.push_back(
        fmt::format("token file {} may be read by group or others (mode {:04o}): run chmod 600 {}",
                    path, static_cast<unsigned>(file->mode), path));
  }
  return authorizer;
}

Result<Authorizer> Authorizer::from_text(std::string_view text, std::string_view origin) {
  Authorizer a;
  std::vector<std::size_t> line_of;  // line number of each entry, for "same token as line N"
  std::vector<std::string_view> lines = split_lines(text);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::string_view line = trim(lines[i]);
    if (line.empty() || line.starts_with('#')) {
      continue;
    }
    auto entry = parse_line(line);
    if (!entry) {
      return invalid_argument(fmt::format("{}:{}: {}", origin, i + 1, entry.error().message()));
    }
    for (std::size_t j = 0; j < a.entries_.size(); ++j) {
      if (a.entries_[j].hash == entry->hash) {
        return invalid_argument(
            fmt::format("{}:{}: the same token as line {}", origin, i + 1, line_of[j]));
      }
    }
    a.entries_.push_back(std::move(*entry));
    line_of.push_back(i + 1);
    a.holds_secrets_ = a.holds_secrets_ || !split_fields(line)[0].starts_with(kHashPrefix);
  }
  if (a.entries_.empty()) {
    return invalid_argument(fmt::format(
        "{}: no tokens, so nobody could call aecd: add 'TOKEN NAME ROLE PREFIXES' lines", origin));
  }
  return a;
}

Result<Principal> Authorizer::authenticate(std::string_view authorization_header) const {
  if (anonymous_) {
    return Principal{.name = "anonymous", .role = Role::Admin, .all_keys = true};
  }
  std::string_view header = trim(authorization_header);
  if (header.empty()) {
    return denied("missing bearer token: send 'Authorization: Bearer TOKEN'");
  }
  std::size_t space = header.find(' ');
  std::string_view scheme = header.substr(0, space);
  bool bearer = std::equal(scheme.begin(), scheme.end(), std::string_view("bearer").begin(),
                           std::string_view("bearer").end(), [](char x, char y) {
                             return std::tolower(static_cast<unsigned char>(x)) == y;
                           });
  std::string_view token = space == std::string_view::npos ? "" : trim(header.substr(space + 1));
  if (!bearer || token.empty()) {
    return denied("the Authorization header must be 'Bearer TOKEN'");
  }
  // Every entry is compared, in constant time each, and the match is picked without a branch
  // on the comparison, so the time taken does not depend on which token (if any) matched.
  std::array<std::uint8_t, 32> hash = sha256(token);
  std::size_t found = entries_.size();
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    std::size_t equal = CRYPTO_memcmp(hash.data(), entries_[i].hash.data(), hash.size()) == 0;
    found = equal * i + (1 - equal) * found;
  }
  if (found == entries_.size()) {
    return denied("unknown bearer token");
  }
  return entries_[found].principal;
}

bool Authorizer::covers(const Principal& who, std::string_view key) {
  return who.all_keys || std::any_of(who.prefixes.begin(), who.prefixes.end(),
                                     [&](const std::string& p) { return key.starts_with(p); });
}

Status Authorizer::authorize(const Principal& who, Access access, std::string_view key) {
  Status status = role_check(who, access);
  if (!status.is_ok() || covers(who, key)) {
    return status;
  }
  return outside_prefixes(who, "key " + quote(key));
}

Status Authorizer::authorize_list(const Principal& who, std::string_view prefix) {
  if (who.all_keys || (!prefix.empty() && covers(who, prefix))) {
    return Status::ok();
  }
  return outside_prefixes(
      who, prefix.empty() ? std::string("a list without a prefix") : "prefix " + quote(prefix));
}

Status Authorizer::authorize_global(const Principal& who, Access access) {
  Status status = role_check(who, access);
  if (!status.is_ok() || who.all_keys) {
    return status;
  }
  return outside_prefixes(who, "a call on every key");
}

}  // namespace aec::server
