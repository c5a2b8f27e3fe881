// The table of aecd's settings, and its command line. Internal to server_config.cc.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <aec/status.h>

#include "server/server_config.h"

namespace aec::server {

// One setting: a flag `--name`, a config-file line `name = value`, an environment variable.
struct Setting {
  std::string_view name;        // the long flag without "--"; also the config-file name
  std::string_view env;         // the environment variable
  std::string_view value_name;  // "HOST:PORT"...; empty for a switch (true/false)
  std::string_view help;        // one line, for --help
  // Parses `value` into `config`. The message of an error says what is accepted; the caller
  // prefixes where the value came from.
  Status (*apply)(std::string_view value, ServerConfig& config);
  // The setting's current value as text ("none" when unset), to show defaults in --help.
  std::string (*show)(const ServerConfig& config);
};

// Every setting, in the order of --help and docs/aecd.md.
std::span<const Setting> settings();

// The setting named `name` (without "--"), or null.
const Setting* find_setting(std::string_view name);

// What the command line set.
struct FlagValues {
  std::optional<std::string> config_file;     // --config
  std::map<std::string, std::string> values;  // setting name -> value ("true" for switches)
};

// Parses argv with CLI11. --help and --version set config.action and config.text (defaults in the
// help text are read from `config`). InvalidArgument for an unknown flag or a missing value.
Result<FlagValues> parse_flags(int argc, const char* const* argv, ServerConfig& config);

}  // namespace aec::server
