// aecd's bearer tokens: who a caller is (authenticate) and what it may do (authorize).
//
// A token file (--tokens FILE) has one token per line, documented in docs/aecd.md:
//
//   # TOKEN                                 NAME      ROLE    PREFIXES
//   3f1c9e0b7a5d42e8b6c1f0a9d8e7c6b5a4f3e2d1  etl-bot   writer  etl/,reports/
//   sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  ops  admin  *
//
// A TOKEN is either the secret itself (16 to 512 characters of A-Z a-z 0-9 - . _ ~ + / =) or
// "sha256:" and the hex SHA-256 of the secret, so the file need not hold secrets. ROLE is
// reader, writer or admin. PREFIXES is a comma-separated list of key prefixes, or "*" for every
// key. Blank lines and lines starting with '#' are ignored.
//
// Errors map to HTTP statuses by the call that returns them: an error of authenticate() is 401
// (unauthenticated; answer with "WWW-Authenticate: Bearer"), an error of authorize(),
// authorize_list() or authorize_global() is 403 (permission_denied). All are
// Code::PermissionDenied. No message ever contains a token.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <aec/status.h>

namespace aec::server {

enum class Role {
  Reader,  // Read
  Writer,  // Read and Write
  Admin,   // Read, Write and Admin
};

// What a request does, for authorize().
enum class Access {
  Read,   // GET a key's state, lists, history; blocking queries
  Write,  // acquire, renew, release, leave the line
  Admin,  // force-release, purge
};

// "reader", "writer", "admin" / "read", "write", "admin": for messages and logs.
std::string_view role_name(Role role);
std::string_view access_name(Access access);

// An authenticated caller. Copyable; holds no secret.
struct Principal {
  std::string name;  // from the token file; "anonymous" without one
  Role role = Role::Reader;
  bool all_keys = false;              // the token's prefixes are "*"
  std::vector<std::string> prefixes;  // key prefixes; empty when all_keys
};

// One token of a token file, as stored: only the SHA-256 of the secret is kept.
struct TokenEntry {
  std::array<std::uint8_t, 32> hash{};
  Principal principal;
};

// Immutable after construction; every const method is safe to call from many threads at once.
class Authorizer {
 public:
  // Anonymous mode: every caller, with or without a header, is an admin named "anonymous" with
  // every key.
  static Authorizer anonymous();
  // Reads a token file. InvalidArgument naming FILE:LINE for a malformed line, a token given
  // twice, or a file without tokens; InvalidArgument when the file cannot be read. A file that
  // holds tokens in clear and that group or others may read is accepted with a warning in
  // warnings().
  static Result<Authorizer> from_file(const std::string& path);
  // Parses token-file text; `origin` names it in messages (FILE in FILE:LINE).
  static Result<Authorizer> from_text(std::string_view text, std::string_view origin);

  // Who sends `authorization_header` (the value of the Authorization header, "" when absent):
  // "Bearer TOKEN", the scheme in any case. PermissionDenied (answer 401) when the header is
  // missing or malformed or the token unknown. Compares SHA-256 hashes in constant time and
  // looks at every token, so timing reveals neither the token nor which one matched.
  Result<Principal> authenticate(std::string_view authorization_header) const;

  // Whether `who` may do `access` on `key`: the role must allow the access and the key must
  // start with one of the token's prefixes. PermissionDenied (answer 403) saying which.
  static Status authorize(const Principal& who, Access access, std::string_view key);
  // Whether `who` may list keys or executions under `prefix` (Read access): allowed when every
  // key under `prefix` is within the token's prefixes, i.e. `prefix` starts with one of them. A
  // list without a prefix ("") needs a "*" token. Lists are never filtered silently: a caller
  // sees all it asked for or gets 403 naming the prefixes it may use.
  static Status authorize_list(const Principal& who, std::string_view prefix);
  // For calls that touch every key (purge): the role must allow `access` and the token must
  // have "*". PermissionDenied (403) otherwise.
  static Status authorize_global(const Principal& who, Access access);
  // Whether `key` is within the token's prefixes (no role check), e.g. to filter a result.
  static bool covers(const Principal& who, std::string_view key);

  bool is_anonymous() const { return anonymous_; }
  std::size_t token_count() const { return entries_.size(); }
  // Lines for the log about the token file that did not stop loading it (e.g. its mode).
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  Authorizer() = default;

  bool anonymous_ = false;
  bool holds_secrets_ = false;  // some token is given in clear, not as "sha256:HEX"
  std::vector<TokenEntry> entries_;
  std::vector<std::string> warnings_;
};

// The SHA-256 of `data` (OpenSSL EVP). Thread-safe.
std::array<std::uint8_t, 32> sha256(std::string_view data);

}  // namespace aec::server
