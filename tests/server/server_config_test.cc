#include "server/server_config.h"

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include <aec/open_store.h>

#include "tests/support/temp_dir.h"

namespace aec::server {
namespace {

using namespace std::chrono_literals;

// Runs load_server_config on `args` (without the program name) with no default config file.
Result<ServerConfig> load(std::vector<std::string> args, const Environment& env = {},
                          const std::string& default_file = "/nonexistent/aecd.conf") {
  args.insert(args.begin(), "aecd");
  std::vector<const char*> argv;
  for (const std::string& a : args) {
    argv.push_back(a.c_str());
  }
  return load_server_config(static_cast<int>(argv.size()), argv.data(), env, default_file);
}

std::string write_file(const testing::TempDir& dir, const std::string& text) {
  std::string path = dir.file("aecd.conf");
  std::ofstream(path) << text;
  return path;
}

// The error message of a load that must fail with InvalidArgument.
std::string error_of(const Result<ServerConfig>& r) {
  EXPECT_FALSE(r.has_value());
  if (r.has_value()) {
    return "";
  }
  EXPECT_EQ(r.error().code(), Code::InvalidArgument);
  return r.error().message();
}

TEST(ServerConfigTest, DefaultsMatchServerOptions) {
  auto c = load({});
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->action, ConfigAction::Serve);
  EXPECT_EQ(c->store_url, default_store_url());
  EXPECT_EQ(c->options.listen, "127.0.0.1:7070");
  EXPECT_EQ(c->options.io_threads, 1);
  EXPECT_EQ(c->options.store_threads, 32);
  EXPECT_EQ(c->options.max_connections, 10'000u);
  EXPECT_EQ(c->options.header_timeout, 10s);
  EXPECT_EQ(c->options.idle_timeout, 120s);
  EXPECT_TRUE(c->options.tokens_file.empty());
  EXPECT_TRUE(c->options.log_requests);
  EXPECT_FALSE(c->options.log_json);
  EXPECT_EQ(c->options.store, nullptr);
  EXPECT_NE(c->options.clock, nullptr);
  EXPECT_TRUE(c->config_file.empty());
  ASSERT_EQ(c->warnings.size(), 1u);
  EXPECT_NE(c->warnings[0].find("anonymous"), std::string::npos);
}

TEST(ServerConfigTest, FlagsBeatEnvironmentBeatsFileBeatsDefaults) {
  testing::TempDir dir;
  std::string path = write_file(dir,
                                "listen = 127.0.0.1:1\n"
                                "io-threads = 2\n"
                                "store-threads = 3\n");
  Environment env = {{"AEC_LISTEN", "127.0.0.1:2"}, {"AEC_IO_THREADS", "5"}};
  auto c = load({"--config", path, "--listen", "127.0.0.1:3"}, env);
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->options.listen, "127.0.0.1:3");  // flag
  EXPECT_EQ(c->options.io_threads, 5);          // environment
  EXPECT_EQ(c->options.store_threads, 3);       // file
  EXPECT_EQ(c->options.idle_timeout, 120s);     // default
  EXPECT_EQ(c->config_file, path);
}

TEST(ServerConfigTest, ReadsEverySettingFromAFile) {
  testing::TempDir dir;
  std::string path = write_file(dir,
                                "# aecd\n"
                                "\n"
                                "  listen   =  0.0.0.0:8080  \n"
                                "store = memory:\n"
                                "tokens = /etc/aec/tokens\n"
                                "insecure-listen = no\n"
                                "tls-cert = /c.pem\r\n"
                                "tls-key = /k.pem\n"
                                "io-threads = 2\n"
                                "store-threads = 8\n"
                                "max-connections = 50\n"
                                "header-timeout = 5s\n"
                                "idle-timeout = 1m\n"
                                "recheck-interval = 250ms\n"
                                "log-format = json\n"
                                "quiet = true\n"
                                "logs-url-template = https://logs/{team}/{job}#{id}\n");
  auto c = load({"--config", path});
  ASSERT_TRUE(c.has_value()) << c.error().message();
  const ServerOptions& o = c->options;
  EXPECT_EQ(o.listen, "0.0.0.0:8080");
  EXPECT_EQ(c->store_url, "memory:");
  EXPECT_EQ(o.tokens_file, "/etc/aec/tokens");
  EXPECT_FALSE(o.insecure_listen);
  EXPECT_EQ(o.tls_cert, "/c.pem");
  EXPECT_EQ(o.tls_key, "/k.pem");
  EXPECT_EQ(o.io_threads, 2);
  EXPECT_EQ(o.store_threads, 8);
  EXPECT_EQ(o.max_connections, 50u);
  EXPECT_EQ(o.header_timeout, 5s);
  EXPECT_EQ(o.idle_timeout, 60s);
  EXPECT_EQ(o.recheck_interval, 250ms);
  EXPECT_TRUE(o.log_json);
  EXPECT_FALSE(o.log_requests);
  EXPECT_EQ(o.logs_url_template, "https://logs/{team}/{job}#{id}");
  EXPECT_TRUE(c->warnings.empty());
}

TEST(ServerConfigTest, FileErrorsNameFileAndLine) {
  testing::TempDir dir;
  struct Case {
    std::string text;
    std::string expected;
  };
  for (const Case& k : std::vector<Case>{
           {"# c\nlisten = 127.0.0.1:1\nlsten = x\n", ":3: unknown setting 'lsten'"},
           {"io-threads = many\n", ":1: 'many' is not a whole number"},
           {"\nquiet\n", ":2: expected 'name = value'"},
           {"quiet = maybe\n", ":1: 'maybe' is not a switch value"},
           {"io-threads = 2\nio-threads = 3\n", ":2: 'io-threads' is set twice (first at "},
           {"config = /x\n", ":1: unknown setting 'config'"},
       }) {
    std::string path = write_file(dir, k.text);
    std::string message = error_of(load({"--config", path}));
    EXPECT_NE(message.find(path + k.expected), std::string::npos) << message;
  }
}

TEST(ServerConfigTest, ChoosesTheConfigFile) {
  testing::TempDir dir;
  std::string a = dir.file("a.conf");
  std::string b = dir.file("b.conf");
  std::ofstream(a) << "io-threads = 2\n";
  std::ofstream(b) << "io-threads = 3\n";
  EXPECT_EQ(load({}, {}, a)->options.io_threads, 2);  // the default file, when it exists
  EXPECT_EQ(load({}, {{"AEC_CONFIG", b}}, a)->options.io_threads, 3);
  EXPECT_EQ(load({"--config", a}, {{"AEC_CONFIG", b}})->options.io_threads, 2);
  EXPECT_EQ(load({}, {}, dir.file("missing.conf"))->options.io_threads, 1);
  std::string message = error_of(load({"--config", dir.file("missing.conf")}));
  EXPECT_NE(message.find("missing.conf"), std::string::npos) << message;
  EXPECT_FALSE(load({}, {{"AEC_CONFIG", dir.file("missing.conf")}}).has_value());
}

TEST(ServerConfigTest, ErrorsNameTheFlagOrVariable) {
  EXPECT_EQ(error_of(load({"--io-threads", "0"})).rfind("--io-threads: '0'", 0), 0u);
  EXPECT_EQ(error_of(load({}, {{"AEC_HEADER_TIMEOUT", "soon"}})).rfind("AEC_HEADER_TIMEOUT: ", 0),
            0u);
  EXPECT_NE(error_of(load({"--idle-timeout", "0s"})).find("longer than 0s"), std::string::npos);
  EXPECT_NE(error_of(load({"--log-format", "xml"})).find("use text or json"), std::string::npos);
  EXPECT_NE(error_of(load({"--logs-url-template", "x/{tem}"})).find("'{tem}'"), std::string::npos);
  EXPECT_NE(error_of(load({"--listen", "127.0.0.1:70000"})).find("--listen: bad listen address"),
            std::string::npos);
  EXPECT_NE(error_of(load({"--store", ""})).find("give a store URL"), std::string::npos);
  EXPECT_NE(error_of(load({"--no-such-flag"})).find("--no-such-flag"), std::string::npos);
  EXPECT_NE(error_of(load({"--io-threads"})).find("aecd --help"), std::string::npos);
}

TEST(ServerConfigTest, EmptyVariablesCountAsUnset) {
  auto c = load({}, {{"AEC_IO_THREADS", ""}, {"AEC_CONFIG", ""}, {"OTHER", "x"}});
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->options.io_threads, 1);
}

TEST(ServerConfigTest, SwitchesFromFlagsAndVariables) {
  auto c = load({"--quiet"}, {{"AEC_LOG_FORMAT", "json"}});
  ASSERT_TRUE(c.has_value());
  EXPECT_FALSE(c->options.log_requests);
  EXPECT_TRUE(c->options.log_json);
  c = load({}, {{"AEC_QUIET", "Off"}});
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->options.log_requests);
}

TEST(ServerConfigTest, TlsCertAndKeyGoTogether) {
  EXPECT_NE(error_of(load({"--tls-cert", "/c.pem"})).find("--tls-cert and --tls-key"),
            std::string::npos);
  EXPECT_FALSE(load({"--tls-key", "/k.pem"}).has_value());
  EXPECT_TRUE(load({"--tls-key", "/k.pem", "--tls-cert", "/c.pem"}).has_value());
}

TEST(ServerConfigTest, RefusesAnonymousAccessOffLoopback) {
  for (const char* listen : {"0.0.0.0:7070", "[::]:7070", "10.1.2.3:80", "example.com:7070"}) {
    std::string message = error_of(load({"--listen", listen}));
    EXPECT_NE(message.find("--tokens FILE"), std::string::npos) << message;
    EXPECT_NE(message.find("--insecure-listen"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos);
  }
  for (const char* listen : {"127.0.0.1:0", "127.4.5.6:1", "[::1]:7070", "LocalHost:7070"}) {
    EXPECT_TRUE(load({"--listen", listen}).has_value()) << listen;
  }
  auto insecure = load({"--listen", "0.0.0.0:7070"}, {{"AEC_INSECURE_LISTEN", "true"}});
  ASSERT_TRUE(insecure.has_value());
  EXPECT_NE(insecure->warnings.at(0).find("admin"), std::string::npos);
  auto tokens = load({"--listen", "0.0.0.0:7070", "--tokens", "/t"});
  ASSERT_TRUE(tokens.has_value());
  EXPECT_NE(tokens->warnings.at(0).find("clear text"), std::string::npos);
  EXPECT_NE(tokens->warnings.at(0).find("--tls-cert"), std::string::npos);
  auto tls =
      load({"--listen", "0.0.0.0:7070", "--tokens", "/t", "--tls-cert", "c", "--tls-key", "k"});
  ASSERT_TRUE(tls.has_value());
  EXPECT_TRUE(tls->warnings.empty());
  // TLS encrypts but does not authenticate: anonymous access still needs --insecure-listen.
  std::string anonymous_tls =
      error_of(load({"--listen", "0.0.0.0:7070", "--tls-cert", "c", "--tls-key", "k"}));
  EXPECT_NE(anonymous_tls.find("--insecure-listen"), std::string::npos) << anonymous_tls;
}

TEST(ServerConfigTest, HelpListsEverySettingWithVariableAndDefault) {
  auto c = load({"--help"}, {{"AEC_IO_THREADS", "bad"}});  // help wins over bad settings
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->action, ConfigAction::ShowHelp);
  for (const char* word : {"--config",
                           "AEC_CONFIG",
                           "--listen",
                           "AEC_LISTEN",
                           "127.0.0.1:7070",
                           "--store",
                           "AEC_STORE",
                           "--tokens",
                           "AEC_TOKENS_FILE",
                           "--insecure-listen",
                           "AEC_INSECURE_LISTEN",
                           "--tls-cert",
                           "AEC_TLS_CERT",
                           "--tls-key",
                           "AEC_TLS_KEY",
                           "--io-threads",
                           "--store-threads",
                           "--max-connections",
                           "--header-timeout",
                           "10s",
                           "--idle-timeout",
                           "2m",
                           "--recheck-interval",
                           "--log-format",
                           "AEC_LOG_FORMAT",
                           "--quiet",
                           "--logs-url-template",
                           "--version",
                           "Precedence"}) {
    EXPECT_NE(c->text.find(word), std::string::npos) << word << " not in:\n" << c->text;
  }
  EXPECT_NE(c->text.find(default_store_url()), std::string::npos);
}

TEST(ServerConfigTest, Version) {
  auto c = load({"--version"});
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->action, ConfigAction::ShowVersion);
  EXPECT_EQ(c->text.rfind("aecd ", 0), 0u);
}

TEST(ServerConfigTest, CurrentEnvironmentKeepsOnlyAecVariables) {
  ::setenv("AEC_CONFIG_TEST_VAR", "x=y", 1);
  Environment env = current_environment();
  EXPECT_EQ(env.at("AEC_CONFIG_TEST_VAR"), "x=y");
  EXPECT_EQ(env.count("PATH"), 0u);
  ::unsetenv("AEC_CONFIG_TEST_VAR");
}

TEST(ListenAddressTest, ParsesHostsAndPorts) {
  struct Case {
    const char* text;
    const char* host;
    int port;
    bool ipv6;
    bool loopback;
  };
  for (const Case& k :
       std::vector<Case>{{"127.0.0.1:7070", "127.0.0.1", 7070, false, true},
                         {"0.0.0.0:0", "0.0.0.0", 0, false, false},
                         {"[::1]:65535", "::1", 65535, true, true},
                         {"[::]:80", "::", 80, true, false},
                         {"[fe80::1]:80", "fe80::1", 80, true, false},
                         {"localhost:1", "localhost", 1, false, true},
                         {"aec-1.example.com:443", "aec-1.example.com", 443, false, false}}) {
    auto a = parse_listen_address(k.text);
    ASSERT_TRUE(a.has_value()) << k.text << ": " << a.error().message();
    EXPECT_EQ(a->host, k.host);
    EXPECT_EQ(a->port, k.port);
    EXPECT_EQ(a->is_ipv6, k.ipv6) << k.text;
    EXPECT_EQ(a->is_loopback, k.loopback) << k.text;
  }
}

TEST(ListenAddressTest, RejectsWhatIsNotHostColonPort) {
  for (const char* bad :
       {"", "7070", ":7070", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
        "127.0.0.1:7o", "127.0.0.1:123456", "::1:7070", "[::1:7070", "[zz::1]:80", "[127.0.0.1]:80",
        "300.1.1.1:80", "1.2.3:80", "bad_host:80", "-a.com:80", "a..b:80", " 127.0.0.1:80"}) {
    auto a = parse_listen_address(bad);
    EXPECT_FALSE(a.has_value()) << bad;
    if (!a) {
      EXPECT_EQ(a.error().code(), Code::InvalidArgument);
      EXPECT_NE(a.error().message().find("HOST:PORT"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace aec::server
