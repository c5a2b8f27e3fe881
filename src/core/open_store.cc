#include <cstdlib>

#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <aec/open_store.h>

#include "core/network_stores.h"
#include "stores/memory/memory_store.h"
#include "stores/sqlite/sqlite_store.h"

namespace aec {
namespace {

std::string schemes_list() {
  return fmt::format("{}", fmt::join(built_in_stores(), ", "));
}

std::string home_dir() {
  if (const char* home = std::getenv("HOME"); home != nullptr && home[0] == '/') {
    return home;
  }
  if (const passwd* pw = getpwuid(geteuid()); pw != nullptr && pw->pw_dir != nullptr) {
    return pw->pw_dir;
  }
  return "/tmp";
}

Result<std::unique_ptr<Store>> open_sqlite_url(std::string_view url, std::string_view rest,
                                               StoreOptions options) {
  if (rest.find('#') != std::string_view::npos) {
    return invalid_argument(fmt::format(
        "store URL '{}': a sqlite URL has no fragment; use sqlite:///PATH[?sync=full|normal]",
        url));
  }
  std::string_view path = rest.substr(0, rest.find('?'));
  if (path.size() < rest.size()) {
    std::string_view query = rest.substr(path.size() + 1);
    if (query == "sync=full") {
      options.durable = true;
    } else if (query == "sync=normal") {
      options.durable = false;
    } else {
      return invalid_argument(
          fmt::format("store URL '{}': unknown sqlite parameter '{}'; the only one is "
                      "sync=full (fsync every commit) or sync=normal",
                      url, query));
    }
  }
  if (path.empty() || path == "/") {
    return invalid_argument(
        fmt::format("store URL '{}' names no file: use sqlite:///ABSOLUTE/PATH/aec.db", url));
  }
  return open_sqlite_store(std::string(path), options);
}

}  // namespace

std::vector<std::string> built_in_stores() {
  return {"memory", "sqlite", "http", "https", "postgres", "postgresql", "etcd", "dynamodb"};
}

Result<std::unique_ptr<Store>> open_store(std::string_view url, const StoreOptions& options) {
  if (url == "memory:" || url == "memory://") {
    return make_memory_store(options.clock);
  }
  std::size_t colon = url.find(':');
  if (url.empty() || colon == std::string_view::npos || colon == 0) {
    return invalid_argument(
        fmt::format("store URL '{}' has no scheme: use sqlite:///PATH or memory: (built in: {})",
                    url, schemes_list()));
  }
  std::string_view scheme = url.substr(0, colon);
  std::string_view after = url.substr(colon + 1);
  if (scheme == "sqlite") {
    if (!after.starts_with("//")) {
      return invalid_argument(fmt::format(
          "store URL '{}': write sqlite:///ABSOLUTE/PATH or sqlite://RELATIVE/PATH", url));
    }
    return open_sqlite_url(url, after.substr(2), options);
  }
  if (is_network_scheme(scheme)) {
    return open_network_store(scheme, url, options);
  }
  return invalid_argument(fmt::format("store URL '{}': unknown scheme '{}' (built in: {})", url,
                                      scheme, schemes_list()));
}

std::string default_store_url() {
  const char* state = std::getenv("XDG_STATE_HOME");
  std::string dir =
      state != nullptr && state[0] == '/' ? std::string(state) : home_dir() + "/.local/state";
  return "sqlite://" + dir + "/aec/aec.db";
}

}  // namespace aec
