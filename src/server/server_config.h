// aecd's configuration: command-line flags, AEC_* environment variables and a config file,
// merged into one ServerConfig. docs/aecd.md documents every setting.
//
//   auto config = aec::server::load_server_config(argc, argv, aec::server::current_environment());
//   if (!config) { print "aecd: error: " + config.error().message(); exit 2 }
//   if (config->action != ConfigAction::Serve) { print config->text to stdout; exit 0 }
//
// Precedence, highest first: flags > environment variables > config file > built-in defaults.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <aec/status.h>

#include "server/server.h"

namespace aec::server {

// The config file read when neither --config nor AEC_CONFIG names one, if it exists.
inline constexpr std::string_view kDefaultConfigFile = "/etc/aec/aecd.conf";

// Environment variables by name, passed explicitly so tests need not touch the process's.
using Environment = std::map<std::string, std::string>;

// What main() should do with a loaded configuration.
enum class ConfigAction {
  Serve,        // start the server with `options`
  ShowHelp,     // --help: print `text` on stdout and exit 0
  ShowVersion,  // --version: print `text` on stdout and exit 0
};

struct ServerConfig {
  ConfigAction action = ConfigAction::Serve;
  std::string text;  // the help or version text when action is not Serve
  // The store to open (--store). Defaults to aec::default_store_url().
  std::string store_url;
  // Every other setting. `options.store` is null and `options.clock` the real clock: the caller
  // opens the store and fills them in.
  ServerOptions options;
  // The config file that was read; empty when none was.
  std::string config_file;
  // Things worth a line in the log that do not stop the server (e.g. anonymous access).
  std::vector<std::string> warnings;
};

// Builds aecd's configuration from its arguments (argv[0] is the program name), the environment
// (only AEC_* names are read) and the config file they name; `default_config_file` is read only
// when neither --config nor AEC_CONFIG is set, and only if it exists.
// Errors (all InvalidArgument, one line naming where the bad value came from — the flag, the
// variable, or FILE:LINE — and what to do): an unknown flag or config name, a bad value, a config
// file that cannot be read, --tls-cert without --tls-key or the reverse, and anonymous access
// (no --tokens) on a non-loopback listen address without --insecure-listen.
// Thread-safe (reads only its arguments and the named file).
Result<ServerConfig> load_server_config(int argc, const char* const* argv, const Environment& env,
                                        std::string_view default_config_file = kDefaultConfigFile);

// The process's AEC_* environment variables, for load_server_config.
Environment current_environment();

// A parsed listen address.
struct ListenAddress {
  std::string host;  // "127.0.0.1", "::1" (without brackets), "localhost", "example.com"
  std::uint16_t port = 0;
  bool is_ipv6 = false;
  // 127.0.0.0/8, ::1 or "localhost": only processes of this host can connect.
  bool is_loopback = false;
};

// Parses HOST:PORT where HOST is an IPv4 address, a bracketed IPv6 address ("[::1]:7070") or a
// host name, and PORT is 0–65535 (0: any free port). InvalidArgument names the text and the
// accepted forms. Thread-safe.
Result<ListenAddress> parse_listen_address(std::string_view text);

}  // namespace aec::server
