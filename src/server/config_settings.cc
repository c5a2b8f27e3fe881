#include "server/config_settings.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <utility>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <aec/open_store.h>
#include <aec/version.h>

#include "core/duration.h"

namespace aec::server {
namespace {

Result<bool> parse_switch(std::string_view value) {
  std::string v(value);
  std::transform(v.begin(), v.end(), v.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (v == "true" || v == "yes" || v == "on" || v == "1") {
    return true;
  }
  if (v == "false" || v == "no" || v == "off" || v == "0") {
    return false;
  }
  return invalid_argument(fmt::format("'{}' is not a switch value: use true or false", value));
}

Result<long long> parse_count(std::string_view value, long long min, long long max) {
  long long n = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() || n < min ||
      n > max) {
    return invalid_argument(
        fmt::format("'{}' is not a whole number from {} to {}", value, min, max));
  }
  return n;
}

Status set_threads(std::string_view value, int& out) {
  auto n = parse_count(value, 1, 256);
  if (n) {
    out = static_cast<int>(*n);
  }
  return n.status();
}

Status set_timeout(std::string_view value, milliseconds& out) {
  auto d = parse_duration(value);
  if (d && d->count() == 0) {
    return invalid_argument("must be longer than 0s");
  }
  if (d) {
    out = *d;
  }
  return d.status();
}

Status set_switch(std::string_view value, bool& out, bool invert = false) {
  auto b = parse_switch(value);
  if (b) {
    out = *b != invert;
  }
  return b.status();
}

// Only {team}, {job} and {id} may appear in braces, so a typo does not end up in every URL.
Status check_logs_template(std::string_view value) {
  std::size_t open = value.find('{');
  while (open != std::string_view::npos) {
    std::size_t close = value.find('}', open);
    std::string_view field =
        value.substr(open, close == std::string_view::npos ? close : close - open + 1);
    if (field != "{team}" && field != "{job}" && field != "{id}") {
      return invalid_argument(fmt::format(
          "unknown placeholder '{}' in '{}': use {{team}}, {{job}} and {{id}}", field, value));
    }
    open = value.find('{', close);
  }
  return Status::ok();
}

std::string or_none(const std::string& value) {
  return value.empty() ? "none" : value;
}

// The settings table. The lambdas capture nothing, so they convert to the function pointers.
const Setting kSettings[] = {
    {"listen", "AEC_LISTEN", "HOST:PORT",
     "Address to serve on: IPv4, [IPv6] or a host name; port 0 picks a free port",
     [](std::string_view v, ServerConfig& c) {
       auto a = parse_listen_address(v);
       c.options.listen = std::string(v);
       return a.status();
     },
     [](const ServerConfig& c) { return c.options.listen; }},
    {"store", "AEC_STORE", "URL", "Store to serve: sqlite:///PATH or memory:",
     [](std::string_view v, ServerConfig& c) {
       c.store_url = std::string(v);
       return v.empty() ? invalid_argument("give a store URL, e.g. sqlite:///var/lib/aec/aec.db")
                        : Status::ok();
     },
     [](const ServerConfig& c) { return c.store_url; }},
    {"tokens", "AEC_TOKENS_FILE", "FILE",
     "Bearer tokens file (see docs/aecd.md); none: every caller is an admin",
     [](std::string_view v, ServerConfig& c) {
       c.options.tokens_file = std::string(v);
       return Status::ok();
     },
     [](const ServerConfig& c) { return or_none(c.options.tokens_file); }},
    {"insecure-listen", "AEC_INSECURE_LISTEN", "",
     "Allow anonymous access (no --tokens) on a non-loopback address",
     [](std::string_view v, ServerConfig& c) { return set_switch(v, c.options.insecure_listen); },
     [](const ServerConfig& c) { return std::string(c.options.insecure_listen ? "on" : "off"); }},
    {"tls-cert", "AEC_TLS_CERT", "FILE",
     "PEM certificate chain: serve HTTPS (TLS 1.2+) instead of HTTP; needs --tls-key",
     [](std::string_view v, ServerConfig& c) {
       c.options.tls_cert = std::string(v);
       return Status::ok();
     },
     [](const ServerConfig& c) { return or_none(c.options.tls_cert); }},
    {"tls-key", "AEC_TLS_KEY", "FILE", "PEM private key of --tls-cert (unencrypted)",
     [](std::string_view v, ServerConfig& c) {
       c.options.tls_key = std::string(v);
       return Status::ok();
     },
     [](const ServerConfig& c) { return or_none(c.options.tls_key); }},
    {"io-threads", "AEC_IO_THREADS", "N", "Threads running connections (1-256)",
     [](std::string_view v, ServerConfig& c) { return set_threads(v, c.options.io_threads); },
     [](const ServerConfig& c) { return std::to_string(c.options.io_threads); }},
    {"store-threads", "AEC_STORE_THREADS", "N", "Threads calling the store (1-256)",
     [](std::string_view v, ServerConfig& c) { return set_threads(v, c.options.store_threads); },
     [](const ServerConfig& c) { return std::to_string(c.options.store_threads); }},
    {"max-connections", "AEC_MAX_CONNECTIONS", "N",
     "Open connections beyond which new ones are closed at once",
     [](std::string_view v, ServerConfig& c) {
       auto n = parse_count(v, 1, std::numeric_limits<int>::max());
       if (n) {
         c.options.max_connections = static_cast<std::size_t>(*n);
       }
       return n.status();
     },
     [](const ServerConfig& c) { return std::to_string(c.options.max_connections); }},
    {"header-timeout", "AEC_HEADER_TIMEOUT", "DURATION",
     "Time allowed to receive a request's head and body",
     [](std::string_view v, ServerConfig& c) { return set_timeout(v, c.options.header_timeout); },
     [](const ServerConfig& c) { return format_duration(c.options.header_timeout); }},
    {"idle-timeout", "AEC_IDLE_TIMEOUT", "DURATION",
     "An idle keep-alive connection is closed after this",
     [](std::string_view v, ServerConfig& c) { return set_timeout(v, c.options.idle_timeout); },
     [](const ServerConfig& c) { return format_duration(c.options.idle_timeout); }},
    {"recheck-interval", "AEC_RECHECK_INTERVAL", "DURATION",
     "How often keys with parked requests are re-read, to see changes made by others",
     [](std::string_view v, ServerConfig& c) { return set_timeout(v, c.options.recheck_interval); },
     [](const ServerConfig& c) { return format_duration(c.options.recheck_interval); }},
    {"log-format", "AEC_LOG_FORMAT", "text|json", "Format of the request log on stderr",
     [](std::string_view v, ServerConfig& c) {
       c.options.log_json = v == "json";
       return v == "json" || v == "text"
                  ? Status::ok()
                  : invalid_argument(fmt::format("'{}' is not a log format: use text or json", v));
     },
     [](const ServerConfig& c) { return std::string(c.options.log_json ? "json" : "text"); }},
    {"quiet", "AEC_QUIET", "", "Write no request log (errors are still written)",
     [](std::string_view v, ServerConfig& c) {
       return set_switch(v, c.options.log_requests, /*invert=*/true);
     },
     [](const ServerConfig& c) { return std::string(c.options.log_requests ? "off" : "on"); }},
    {"logs-url-template", "AEC_LOGS_URL_TEMPLATE", "TEMPLATE",
     "logs_url of VDK executions; {team}, {job} and {id} are replaced",
     [](std::string_view v, ServerConfig& c) {
       c.options.logs_url_template = std::string(v);
       return check_logs_template(v);
     },
     [](const ServerConfig& c) { return or_none(c.options.logs_url_template); }},
};

std::string version_text() {
  return fmt::format("aecd {} (stores: {})", version(), fmt::join(built_in_stores(), ", "));
}

constexpr std::string_view kFooter =
    "Precedence: flags, then environment variables, then the config file, then defaults.\n"
    "The config file has lines 'name = value' (names: the flags above without '--') and\n"
    "'#' comments; switches take true or false. Every setting: docs/aecd.md.";

// Declares every setting on `app`; values land in `storage` (one string per setting).
void declare_settings(CLI::App& app, const ServerConfig& defaults,
                      std::vector<std::string>& storage, std::vector<CLI::Option*>& options) {
  for (std::size_t i = 0; i < std::size(kSettings); ++i) {
    const Setting& s = kSettings[i];
    std::string help = fmt::format("{}\n(env {}; default: {})", s.help, s.env, s.show(defaults));
    std::string flag = fmt::format("--{}", s.name);
    // std::as_const: CLI11 takes a non-const string as the flag's variable, not its help.
    options[i] = s.value_name.empty()
                     ? app.add_flag(flag, std::as_const(help))
                     : app.add_option(flag, storage[i], help)->type_name(std::string(s.value_name));
  }
}

}  // namespace

std::span<const Setting> settings() {
  return kSettings;
}

const Setting* find_setting(std::string_view name) {
  for (const Setting& s : kSettings) {
    if (s.name == name) {
      return &s;
    }
  }
  return nullptr;
}

Result<FlagValues> parse_flags(int argc, const char* const* argv, ServerConfig& config) {
  CLI::App app("aecd serves an aec store over HTTP: leases with fencing tokens for many hosts.",
               "aecd");
  app.get_formatter()->column_width(32);
  app.footer(std::string(kFooter));
  app.set_version_flag("--version", version_text());
  std::string config_file;
  CLI::Option* config_option =
      app.add_option("--config", config_file,
                     fmt::format("Config file of 'name = value' lines\n(env AEC_CONFIG; "
                                 "default: {} if it exists)",
                                 kDefaultConfigFile))
          ->type_name("FILE");
  std::vector<std::string> storage(std::size(kSettings));
  std::vector<CLI::Option*> options(std::size(kSettings));
  declare_settings(app, config, storage, options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    config.action = ConfigAction::ShowHelp;
    config.text = app.help();
    return FlagValues{};
  } catch (const CLI::CallForVersion&) {
    config.action = ConfigAction::ShowVersion;
    config.text = version_text() + "\n";
    return FlagValues{};
  } catch (const CLI::Error& e) {  // CLI11 reports by exception; it stops here
    return invalid_argument(fmt::format("{} (see aecd --help)", e.what()));
  }
  FlagValues flags;
  if (config_option->count() > 0) {
    flags.config_file = config_file;
  }
  for (std::size_t i = 0; i < std::size(kSettings); ++i) {
    if (options[i]->count() > 0) {
      flags.values[std::string(kSettings[i].name)] =
          kSettings[i].value_name.empty() ? "true" : storage[i];
    }
  }
  return flags;
}

}  // namespace aec::server
