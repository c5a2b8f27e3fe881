#include "tests/conformance/store_factory.h"

#include <cctype>
#include <cstdlib>

#include <fmt/format.h>

#include <aec/open_store.h>

#include "tests/conformance/served_store.h"
#include "tests/support/servers.h"

namespace aec::testing {
namespace {

std::string percent_encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::unique_ptr<Store> open_or_die(const std::string& url, const StoreEnv& env) {
  StoreOptions options{.clock = env.clock, .host = env.host};
  auto store = open_store(url, options);
  if (!store) {
    std::fprintf(stderr, "cannot open %s: %s\n", url.c_str(), store.error().to_string().c_str());
    std::abort();
  }
  return std::move(*store);
}

// A schema of its own for each test (named after its temporary directory, so a reopen finds
// it again): tests share one database but never each other's keys.
std::string schema_for(const StoreEnv& env) {
  return fmt::format("t{:016x}", std::hash<std::string>{}(env.dir));
}

// A store on one of the real servers, or a kind that skips when the server is not configured.
StoreKind server_store(std::string name, std::string_view setting,
                       std::function<std::string(const std::string& base, const StoreEnv&)> url) {
  std::optional<std::string> base = server_setting(setting);
  StoreKind kind{std::move(name), nullptr, true, false};
  if (!base) {
    kind.skip = missing_server(setting);
    return kind;
  }
  kind.open = [base = *base, url](const StoreEnv& env) { return open_or_die(url(base, env), env); };
  return kind;
}

// The real 3-member cluster; every test under a prefix of its own. Not under ThreadSanitizer:
// Debian's gRPC is not built with it, and its threads would be reported, not ours.
StoreKind etcd_store() {
  StoreKind kind = server_store(
      "etcd", "AEC_TEST_ETCD_ENDPOINTS", [](const std::string& base, const StoreEnv& env) {
        return "etcd://" + base + "?prefix=aec-test/" + schema_for(env) + "/";
      });
#if defined(__SANITIZE_THREAD__)
  kind.skip = "gRPC is not built with ThreadSanitizer";
#endif
  return kind;
}

// dynalite, a table of its own for each test (named as the schemas above). dynalite checks that
// a request is signed, not by whom: any key will do when the environment has none.
// `layout` is the URL's layout= (empty: the default, native).
StoreKind dynamodb_store(const std::string& layout) {
  if (server_setting("AEC_TEST_DYNAMODB_ENDPOINT") && std::getenv("AWS_ACCESS_KEY_ID") == nullptr) {
    setenv("AWS_ACCESS_KEY_ID", "AKIDAECTEST", 0);
    setenv("AWS_SECRET_ACCESS_KEY", "aec-test-secret", 0);
  }
  StoreKind kind =
      server_store(layout.empty() ? "dynamodb" : "dynamodb_python", "AEC_TEST_DYNAMODB_ENDPOINT",
                   [layout](const std::string& base, const StoreEnv& env) {
                     return "dynamodb://aec-" + schema_for(env) +
                            "?region=eu-west-1&create=true&endpoint=" + percent_encode(base) +
                            (layout.empty() ? "" : "&layout=" + layout);
                   });
  kind.one_per_key = !layout.empty();
  return kind;
}

}  // namespace

std::vector<StoreKind> all_stores() {
  std::optional<std::string> session = server_setting("AEC_TEST_PGBOUNCER_SESSION_URL");
  return {
      {"memory", [](const StoreEnv& env) { return open_or_die("memory:", env); }, false, false},
      {"sqlite",
       [](const StoreEnv& env) { return open_or_die("sqlite://" + env.dir + "/aec.db", env); },
       true, true},
      {"http_memory", [](const StoreEnv& env) { return open_served_store("memory:", env); }, false,
       false},
      {"https_memory",
       [](const StoreEnv& env) { return open_served_store("memory:", env, ServeOver::Https); },
       false, false},
      {"http_sqlite",
       [](const StoreEnv& env) {
         return open_served_store("sqlite://" + env.dir + "/aec.db", env);
       },
       true, true},
      server_store("postgres", "AEC_TEST_POSTGRES_URL",
                   [](const std::string& base, const StoreEnv& env) {
                     return base + "?schema=" + schema_for(env);
                   }),
      // Through pgbouncer in transaction mode; LISTEN through its session-mode alias.
      server_store("pgbouncer", "AEC_TEST_PGBOUNCER_URL",
                   [session](const std::string& base, const StoreEnv& env) {
                     return base + "?pooler=transaction&schema=" + schema_for(env) +
                            "&listen=" + percent_encode(session.value_or(""));
                   }),
      etcd_store(),
      dynamodb_store(""),
      // The table shared with the Python atomic_execution_control library.
      dynamodb_store("aec-python"),
  };
}

}  // namespace aec::testing
