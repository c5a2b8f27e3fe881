#include "tests/conformance/served_store.h"

#include <cstdio>
#include <cstdlib>

#include <aec/open_store.h>

#include "server/server.h"
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
class ServedStore final : public Store {
 public:
  ServedStore(std::unique_ptr<server::Server> server, std::unique_ptr<Store> client)
      : server_(std::move(server)), client_(std::move(client)) {}
  ~ServedStore() override {
    client_.reset();  // close the client's connections first
    server_->stop();
  }

  Result<AcquireResult> acquire(const AcquireRequest& req) override {
    return client_->acquire(req);
  }
  Result<LeaseOutcome> renew(std::string_view key, std::int64_t token, milliseconds ttl) override {
    return client_->renew(key, token, ttl);
  }
  Result<LeaseOutcome> release(std::string_view key, std::int64_t token,
                               const Outcome& outcome) override {
    return client_->release(key, token, outcome);
  }
  Result<KeyState> get(std::string_view key) override { return client_->get(key); }
  Result<std::vector<Execution>> list(const ListFilter& filter) override {
    return client_->list(filter);
  }
  Result<std::int64_t> wait(std::string_view key, std::int64_t version, MonoTime deadline,
                            std::stop_token stop) override {
    return client_->wait(key, version, deadline, std::move(stop));
  }
  Result<ForceReleaseResult> force_release(std::string_view key, std::string_view reason,
                                           const Owner& by) override {
    return client_->force_release(key, reason, by);
  }
  Result<PurgeResult> purge(const PurgeRequest& req) override { return client_->purge(req); }
  Status leave_queue(std::string_view key, std::string_view execution_id) override {
    return client_->leave_queue(key, execution_id);
  }
  std::string url() const override { return client_->url(); }

 private:
  std::unique_ptr<server::Server> server_;
  std::unique_ptr<Store> client_;
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
