// The light `aec` binary: every verb on the embedded stores (sqlite://, memory:) and on aecd over
// http://, linking none of the network client libraries (libcurl, libpq, gRPC, OpenSSL and
// theirs: ~85 shared libraries whose loading cost each start ~15 ms of CPU, more than an `aec
// run` on sqlite takes). The http:// store's own transport needs none of them. A store URL that
// needs one (https://, postgres://, etcd://, dynamodb://), and `aec serve`, are handed to
// aec-full, which has every store: this process becomes it by execv — same pid, arguments and
// environment — at the moment the store is opened, before anything was acquired, printed or
// started.
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <limits.h>
#include <unistd.h>

#include "cli/exit_codes.h"
#include "cli/verbs.h"
#include "core/network_stores.h"
#include "stores/http/http_store.h"

namespace aec {
namespace {

char** g_argv = nullptr;

// Where aec-full is: next to this binary (a build tree), then in ../libexec/aec (an install).
std::vector<std::string> full_binary_paths() {
  char self[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir = ".";
  if (n > 0) {
    self[n] = '\0';
    dir = self;
    dir.erase(dir.rfind('/') == std::string::npos ? 0 : dir.rfind('/'));
  }
  return {dir + "/aec-full", dir + "/../libexec/aec/aec-full"};
}

// Becomes aec-full with this process's arguments. Returns only if it cannot: the error names
// what needed it and where it was looked for.
Status become_full_binary(std::string_view needed_by) {
  const std::vector<std::string> paths = full_binary_paths();
  int error = ENOENT;
  if (g_argv != nullptr) {
    // The signal mask and ignored signals survive execv: start aec-full as aec would start.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (const std::string& path : paths) {
      ::execv(path.c_str(), g_argv);  // returns only on failure
      if (errno != ENOENT) {
        error = errno;  // there, but not runnable: say why rather than "not found"
      }
    }
  }
  return Status(Code::FailedPrecondition,
                fmt::format("{} needs aec-full, which cannot be run from this aec (looked for {} "
                            "and {}: {}): reinstall aec",
                            needed_by, paths[0], paths[1], std::strerror(error)));
}

}  // namespace

Result<std::unique_ptr<Store>> open_network_store(std::string_view scheme, std::string_view url,
                                                  const StoreOptions& options) {
  if (scheme == "http") {
    return open_http_store_with(url, options, {}, http::make_plain_transport);
  }
  return become_full_binary(fmt::format("the {}:// store", scheme));
}

namespace cli {

int serve_main(std::string_view program, int /*argc*/, char** /*argv*/) {
  const Status s = become_full_binary(program);
  fmt::print(stderr, "{}: error: {}\n", program, s.message());
  return exit_code_for(s.code());
}

}  // namespace cli
}  // namespace aec

int main(int argc, char** argv) {
  aec::g_argv = argv;
  return aec::cli::run_main(argc, argv);
}
