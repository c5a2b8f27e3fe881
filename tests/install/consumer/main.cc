// Runs a function under a lease, skipping when the key is busy: the README's C++ example.
#include <aec/aec.h>

#include <cstdio>

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  auto store = aec::open_store(argc > 1 ? argv[1] : "memory:");
  if (!store) {
    std::fprintf(stderr, "%s\n", store.error().to_string().c_str());
    return 1;
  }
  aec::Control control(std::move(*store));
  auto run = control.run({.key = "etl/daily", .ttl = 30s},
                         [](const aec::Lease& lease, std::stop_token) {
                           std::printf("working with fencing token %lld\n",
                                       static_cast<long long>(lease.token));
                           return 0;
                         });
  if (!run) {
    std::fprintf(stderr, "%s\n", run.error().to_string().c_str());
    return 1;
  }
  return run->outcome == aec::RunOutcome::Ran ? 0 : 2;
}
