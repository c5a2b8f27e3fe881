#include "tests/conformance/store_factory.h"

#include <cstdlib>

#include <aec/open_store.h>

#include "tests/conformance/served_store.h"

namespace aec::testing {
namespace {

std::unique_ptr<Store> open_or_die(const std::string& url, const StoreEnv& env) {
  StoreOptions options{.clock = env.clock, .host = env.host};
  auto store = open_store(url, options);
  if (!store) {
    std::fprintf(stderr, "cannot open %s: %s\n", url.c_str(), store.error().to_string().c_str());
    std::abort();
  }
  return std::move(*store);
}

}  // namespace

std::vector<StoreKind> all_stores() {
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
  };
}

}  // namespace aec::testing
