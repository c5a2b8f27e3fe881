#include "tests/conformance/served_store.h"

#include <cstdio>
#include <cstdlib>

#include <aec/open_store.h>

#include "server/server.h"
#include "tests/support/forwarding_store.h"
#include "tests/support/test_cert.h"

namespace aec::testing {
namespace {

template <typename T>
T or_die(Result<T> r, const std::string& what) {
  if (!r) {
    std::fprintf(stderr, "%s: %s\n", what.c_str(), r.error().to_string().c_str());
    std::abort();
  }
  return std::move(*r);
}

// The http client, owning the server it talks to.
class ServedStore final : public ForwardingStore {
 public:
  ServedStore(std::unique_ptr<server::Server> server, std::unique_ptr<Store> client)
      : ForwardingStore(std::move(client)), server_(std::move(server)) {}
  ~ServedStore() override {
    drop_inner();  // close the client's connections first
    server_->stop();
  }

 private:
  std::unique_ptr<server::Server> server_;
};

}  // namespace

std::unique_ptr<Store> open_served_store(const std::string& backing_url, const StoreEnv& env,
                                         ServeOver over) {
  StoreOptions options{.clock = env.clock, .host = env.host};
  std::shared_ptr<Store> backing = or_die(open_store(backing_url, options), "open " + backing_url);
  server::ServerOptions served{.store = std::move(backing),
                               .clock = env.clock,
                               .listen = "127.0.0.1:0",
                               .log_requests = std::getenv("AEC_TEST_LOG") != nullptr};
  TestCertFiles cert;
  if (over == ServeOver::Https) {
    cert = write_test_cert(env.dir, "aecd");
    served.tls_cert = cert.cert;
    served.tls_key = cert.key;
  }
  auto server = or_die(server::Server::start(std::move(served)), "start aecd");
  std::string url = server->url();
  if (over == ServeOver::Https) {
    url += "/?cacert=" + cert.cert;
  }
  auto client = or_die(open_store(url, options), "open " + url);
  return std::make_unique<ServedStore>(std::move(server), std::move(client));
}

}  // namespace aec::testing
