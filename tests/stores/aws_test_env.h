// A fake process environment for tests of the dynamodb:// store's AWS credential chain.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "stores/dynamodb/aws_credentials.h"

namespace aec::aws {

// Reads variables from `env` alone.
inline std::function<std::optional<std::string>(const std::string&)> env_of(
    std::map<std::string, std::string> env) {
  return [env = std::move(env)](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

// Credentials found in `env` alone (no home directory, so no shared files), on the real clock.
inline std::shared_ptr<CredentialCache> credentials_from(std::map<std::string, std::string> env) {
  return std::make_shared<CredentialCache>(
      CredentialSources{.getenv = env_of(std::move(env)), .home = "/nonexistent"}, real_clock());
}

}  // namespace aec::aws
