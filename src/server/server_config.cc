#include "server/server_config.h"

#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include <aec/open_store.h>

#include "server/config_settings.h"
#include "server/text_file.h"

extern char** environ;  // NOLINT: POSIX; read only by current_environment()

namespace aec::server {
namespace {

// A raw value and where it came from, for error messages: "--listen", "AEC_LISTEN",
// "/etc/aec/aecd.conf:3".
struct RawValue {
  std::string value;
  std::string origin;
};
using Layer = std::map<std::string, RawValue, std::less<>>;

// Parses a config file's `name = value` lines. Full-line comments only: a '#' inside a value
// (a URL fragment, a template) is part of the value.
Result<Layer> parse_config_file(const std::string& path) {
  auto file = read_text_file(path);
  if (!file) {
    return invalid_argument(fmt::format("config file: {}", file.error().message()));
  }
  Layer layer;
  std::vector<std::string_view> lines = split_lines(file->text);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::string_view line = trim(lines[i]);
    std::string origin = fmt::format("{}:{}", path, i + 1);
    if (line.empty() || line.starts_with('#')) {
      continue;
    }
    std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return invalid_argument(fmt::format("{}: expected 'name = value'", origin));
    }
    std::string name(trim(line.substr(0, eq)));
    if (find_setting(name) == nullptr) {
      return invalid_argument(
          fmt::format("{}: unknown setting '{}': the names are aecd's long flags without '--' "
                      "(see aecd --help)",
                      origin, name));
    }
    if (auto seen = layer.find(name); seen != layer.end()) {
      return invalid_argument(
          fmt::format("{}: '{}' is set twice (first at {})", origin, name, seen->second.origin));
    }
    layer[name] = RawValue{std::string(trim(line.substr(eq + 1))), origin};
  }
  return layer;
}

// An empty variable counts as unset, as shells make `AEC_X= aecd` easy to write by accident.
Layer environment_layer(const Environment& env) {
  Layer layer;
  for (const Setting& s : settings()) {
    auto it = env.find(std::string(s.env));
    if (it != env.end() && !it->second.empty()) {
      layer[std::string(s.name)] = RawValue{it->second, std::string(s.env)};
    }
  }
  return layer;
}

// Which config file to read: --config, else AEC_CONFIG, else the default if it exists.
Result<std::optional<std::string>> choose_config_file(const std::optional<std::string>& flag,
                                                      const Environment& env,
                                                      std::string_view default_file) {
  if (flag) {
    return std::optional<std::string>(*flag);
  }
  if (auto it = env.find("AEC_CONFIG"); it != env.end() && !it->second.empty()) {
    return std::optional<std::string>(it->second);
  }
  std::error_code ec;
  if (!default_file.empty() && std::filesystem::exists(default_file, ec)) {
    return std::optional<std::string>(std::string(default_file));
  }
  return std::optional<std::string>();
}

// Applies the merged layers to the defaults, in the settings table's order.
Status apply_layers(const Layer& merged, ServerConfig& config) {
  for (const Setting& s : settings()) {
    auto it = merged.find(s.name);
    if (it == merged.end()) {
      continue;
    }
    Status status = s.apply(it->second.value, config);
    if (!status.is_ok()) {
      return invalid_argument(fmt::format("{}: {}", it->second.origin, status.message()));
    }
  }
  return Status::ok();
}

// Checks that involve more than one setting, and adds warnings.
Status check_combination(ServerConfig& config) {
  const ServerOptions& o = config.options;
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return invalid_argument(
        "--tls-cert and --tls-key go together: give both to serve HTTPS, or neither");
  }
  auto address = parse_listen_address(o.listen);
  if (!address) {
    return address.error();  // already checked by the setting; kept for safety
  }
  bool anonymous = o.tokens_file.empty();
  if (anonymous && !address->is_loopback && !o.insecure_listen) {
    return invalid_argument(fmt::format(
        "refusing anonymous access on non-loopback address {}: give --tokens FILE (see "
        "docs/aecd.md), or --insecure-listen if something in front of aecd authenticates",
        o.listen));
  }
  if (anonymous) {
    config.warnings.push_back(fmt::format(
        "no --tokens: every caller that can connect to {} is an admin (anonymous access)",
        o.listen));
  } else if (!address->is_loopback && o.tls_cert.empty()) {
    config.warnings.push_back(
        "bearer tokens travel in clear text: serve HTTPS with --tls-cert and --tls-key "
        "(docs/aecd.md, TLS), or put aecd behind a TLS proxy");
  }
  return Status::ok();
}

ServerConfig default_config() {
  ServerConfig config;
  config.store_url = default_store_url();
  return config;
}

}  // namespace

Result<ServerConfig> load_server_config(int argc, const char* const* argv, const Environment& env,
                                        std::string_view default_config_file) {
  ServerConfig config = default_config();
  auto flags = parse_flags(argc, argv, config);
  if (!flags) {
    return flags.error();
  }
  if (config.action != ConfigAction::Serve) {
    return config;
  }
  auto path = choose_config_file(flags->config_file, env, default_config_file);
  if (!path) {
    return path.error();
  }
  Layer merged;
  if (*path) {
    auto file = parse_config_file(**path);
    if (!file) {
      return file.error();
    }
    merged = std::move(*file);
    config.config_file = **path;
  }
  for (auto& [name, raw] : environment_layer(env)) {
    merged[name] = raw;
  }
  for (auto& [name, value] : flags->values) {
    merged[name] = RawValue{value, "--" + name};
  }
  Status status = apply_layers(merged, config);
  if (status.is_ok()) {
    status = check_combination(config);
  }
  if (!status.is_ok()) {
    return status;
  }
  return config;
}

Environment current_environment() {
  Environment env;
  for (char** p = environ; p != nullptr && *p != nullptr; ++p) {
    std::string_view entry(*p);
    std::size_t eq = entry.find('=');
    if (entry.starts_with("AEC_") && eq != std::string_view::npos) {
      env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
    }
  }
  return env;
}

}  // namespace aec::server
