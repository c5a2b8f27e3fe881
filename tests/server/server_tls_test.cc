// aecd serving HTTPS (--tls-cert/--tls-key, docs/aecd.md TLS): the https:// store against it,
// what a client that does not speak TLS (or does not trust the certificate) sees, and the
// session's timeouts, limits and dropped-peer watch over TLS.
#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <aec/open_store.h>

#include "stores/http/http_store.h"
#include "tests/server/raw_http.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_cert.h"

namespace aec::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kKey = "a/k";

// Polls `done` until it holds or `bound` passes: synchronizes on an observed state, not on time.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds bound = 5s) {
  auto deadline = Clock::now() + bound;
  while (!done()) {
    if (Clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

std::string parked_acquire(std::string_view id) {
  return http_request("POST", "/v1/leases", "",
                      fmt::format(R"({{"key": "a/k", "execution_id": "{}", "wait_ms": 30000,)"
                                  R"( "queue_ttl_ms": 30000}})",
                                  id));
}

class ServerTls : public ::testing::Test {
 protected:
  // `o` with this test's certificate and key.
  server::ServerOptions with_tls(server::ServerOptions o = {}) const {
    o.tls_cert = cert_.cert;
    o.tls_key = cert_.key;
    return o;
  }

  // The https:// store of `t`, trusting `cacert`.
  std::unique_ptr<Store> https_client(const TestServer& t, const std::string& cacert) const {
    std::string url = t.server->url() + "/?cacert=" + cacert;
    auto store = open_store(url);
    EXPECT_TRUE(store.has_value()) << url << ": " << store.error().to_string();
    return store ? std::move(*store) : nullptr;
  }

  // The error Server::start gives for these options (with a memory store), "" if it started.
  static std::string start_error(server::ServerOptions o) {
    o.store = memory_store();
    o.listen = "127.0.0.1:0";
    o.log_requests = false;
    auto started = server::Server::start(std::move(o));
    if (started) {
      return "";
    }
    EXPECT_EQ(started.error().code(), Code::InvalidArgument);
    return started.error().message();
  }

  TempDir dir_;
  TestCertFiles cert_ = write_test_cert(dir_.path());
};

TEST_F(ServerTls, HttpsStoreWorksWithTheCertificateAsCacert) {
  auto t = TestServer::start(memory_store(), with_tls());
  ASSERT_TRUE(t.server);
  EXPECT_TRUE(t.server->url().starts_with("https://127.0.0.1:")) << t.server->url();
  auto client = https_client(t, cert_.cert);
  ASSERT_TRUE(client);

  auto granted = client->acquire({.key = std::string(kKey), .execution_id = "job-1", .ttl = 60s});
  ASSERT_TRUE(granted) << granted.error().to_string();
  ASSERT_EQ(granted->outcome, AcquireOutcome::Granted);
  std::int64_t token = granted->lease.token;
  auto renewed = client->renew(kKey, token, 60s);
  ASSERT_TRUE(renewed) << renewed.error().to_string();
  EXPECT_EQ(*renewed, LeaseOutcome::Ok);
  auto state = client->get(kKey);
  ASSERT_TRUE(state) << state.error().to_string();
  ASSERT_EQ(state->holders.size(), 1u);
  EXPECT_EQ(state->holders[0].execution.token, token);
  auto served = t.store->get(kKey);  // the server's own store saw the same
  ASSERT_TRUE(served);
  ASSERT_EQ(served->holders.size(), 1u);

  auto released = client->release(kKey, token, Outcome{});
  ASSERT_TRUE(released) << released.error().to_string();
  EXPECT_EQ(*released, LeaseOutcome::Ok);
  state = client->get(kKey);
  ASSERT_TRUE(state) << state.error().to_string();
  EXPECT_TRUE(state->holders.empty());
}

TEST_F(ServerTls, AClientThatDoesNotTrustTheCertificateGetsAClearError) {
  auto t = TestServer::start(memory_store(), with_tls());
  ASSERT_TRUE(t.server);
  TestCertFiles other = write_test_cert(dir_.path(), "other");
  auto client = https_client(t, other.cert);
  ASSERT_TRUE(client);

  auto r = client->acquire({.key = std::string(kKey), .execution_id = "job-1", .ttl = 60s});
  ASSERT_FALSE(r) << "a certificate not in ?cacert= was trusted";
  EXPECT_EQ(r.error().code(), Code::Unavailable);
  EXPECT_NE(r.error().message().find("certificate"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("?cacert="), std::string::npos) << r.error().message();
  auto state = t.store->get(kKey);
  ASSERT_TRUE(state);
  EXPECT_TRUE(state->holders.empty()) << "the request got through an untrusted connection";
}

TEST_F(ServerTls, PlainHttpToTheTlsPortGetsNoAnswer) {
  auto t = TestServer::start(memory_store(), with_tls());
  ASSERT_TRUE(t.server);
  RawConnection plain(t.port(), Wire::Plain);
  // Closed at once (not after the 10 s header timeout), and never an HTTP answer in clear text.
  HttpReply r = plain.exchange(http_request("GET", "/healthz"), 5s);
  EXPECT_EQ(r.status, HttpReply::kClosed) << r.body;
  EXPECT_EQ(t.call("GET", "/healthz").status, 200) << "HTTPS stopped working";
}

TEST_F(ServerTls, AClientThatNeverSendsAClientHelloIsDroppedAfterTheHeaderTimeout) {
  auto t =
      TestServer::start(memory_store(), with_tls({.header_timeout = 300ms, .idle_timeout = 60s}));
  ASSERT_TRUE(t.server);
  auto start = Clock::now();
  RawConnection silent(t.port(), Wire::Plain);
  EXPECT_TRUE(silent.wait_closed(5s)) << "the handshake waited for longer than header_timeout";
  EXPECT_GE(Clock::now() - start, 300ms);
}

TEST_F(ServerTls, KeepAliveAndTheHeadLimitHoldOverTls) {
  auto t = TestServer::start(memory_store(), with_tls());
  ASSERT_TRUE(t.server);
  RawConnection conn(t.port(), Wire::Tls);
  ASSERT_TRUE(conn.connected());
  for (int i = 0; i < 2; ++i) {
    HttpReply r = conn.exchange(http_request("GET", "/healthz"));
    ASSERT_EQ(r.status, 200) << "request " << i << " on one connection: " << r.body;
  }
  std::string head =
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(17 * 1024, 'p') + "\r\n\r\n";
  HttpReply big = conn.exchange(head);
  ASSERT_EQ(big.status, 431) << big.body;
  EXPECT_EQ(big.error_code(), "headers_too_large");
  EXPECT_TRUE(conn.wait_closed(5s));
}

TEST_F(ServerTls, BodyOver64KiBIs413OverTls) {
  auto t = TestServer::start(memory_store(), with_tls());
  ASSERT_TRUE(t.server);
  RawConnection conn(t.port(), Wire::Tls);
  ASSERT_TRUE(conn.connected());
  std::string body = R"({"key": "a/k", "labels": {"pad": ")" + std::string(64 * 1024, 'x') + "\"}}";
  // aecd stops reading past the limit, so the rest of the body may not go through; the answer
  // comes all the same.
  (void)conn.send(http_request("POST", "/v1/leases", "", body));
  HttpReply r = conn.read_reply();
  ASSERT_EQ(r.status, 413) << r.body;
  EXPECT_TRUE(conn.wait_closed(5s));
}

TEST_F(ServerTls, AnIdleTlsConnectionIsClosedAfterTheIdleTimeout) {
  auto t = TestServer::start(memory_store(), with_tls({.idle_timeout = 300ms}));
  ASSERT_TRUE(t.server);
  RawConnection conn(t.port(), Wire::Tls);
  ASSERT_TRUE(conn.connected());
  auto start = Clock::now();
  ASSERT_EQ(conn.exchange(http_request("GET", "/healthz")).status, 200);
  EXPECT_TRUE(conn.wait_closed(5s)) << "the idle connection was kept past idle_timeout";
  EXPECT_GE(Clock::now() - start, 300ms);
}

TEST_F(ServerTls, AWaiterWhoseTlsConnectionDropsLeavesTheLine) {
  auto t = TestServer::start(memory_store(), with_tls());
  ASSERT_TRUE(t.server);
  std::int64_t held = 0;
  auto granted = t.store->acquire({.key = std::string(kKey), .execution_id = "holder", .ttl = 60s});
  ASSERT_TRUE(granted && granted->outcome == AcquireOutcome::Granted);
  held = granted->lease.token;
  auto queue_is = [&](std::vector<std::string> ids) {
    auto state = t.store->get(kKey);
    return state && state->queue == ids;
  };

  auto a = std::make_unique<RawConnection>(t.port(), Wire::Tls);
  ASSERT_TRUE(a->send(parked_acquire("A")));
  ASSERT_TRUE(eventually([&] { return queue_is({"A"}); }));
  a.reset();  // A hangs up while parked
  EXPECT_TRUE(eventually([&] { return queue_is({}); }))
      << "A kept its place in line after its TLS connection dropped";
  auto state = t.store->get(kKey);
  ASSERT_TRUE(state);
  ASSERT_EQ(state->holders.size(), 1u);
  EXPECT_EQ(state->holders[0].execution.token, held);
}

// A streamed answer (its head, then a space per heartbeat) goes out over TLS while the session
// also watches the socket: an https:// client parked longer than its silence limit (3
// heartbeats) is kept going by it.
TEST_F(ServerTls, HeartbeatsKeepAParkedHttpsCallGoing) {
  auto t = TestServer::start(memory_store(), with_tls());
  ASSERT_TRUE(t.server);
  auto granted = t.store->acquire({.key = std::string(kKey), .execution_id = "holder", .ttl = 60s});
  ASSERT_TRUE(granted && granted->outcome == AcquireOutcome::Granted);
  auto client = open_http_store(t.server->url() + "/?cacert=" + cert_.cert, {}, {.heartbeat = 1s});
  ASSERT_TRUE(client) << client.error().to_string();
  auto release_later = std::async(std::launch::async, [&] {
    // The holder works longer than the client's 3 s silence limit: only heartbeats keep the
    // parked call alive meanwhile.
    std::this_thread::sleep_for(4500ms);
    return t.store->release(kKey, granted->lease.token, Outcome{});
  });
  AcquireRequest req{.key = std::string(kKey), .execution_id = "parked", .ttl = 60s};
  req.queue = true;
  req.park = 20s;
  auto start = Clock::now();
  auto r = (*client)->acquire(req);
  ASSERT_TRUE(release_later.get());
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->outcome, AcquireOutcome::Granted);
  EXPECT_GE(Clock::now() - start, 4s);
}

TEST_F(ServerTls, StopAnswersAParkedTlsRequestPromptly) {
  auto t = TestServer::start(memory_store(), with_tls());
  ASSERT_TRUE(t.server);
  auto granted = t.store->acquire({.key = std::string(kKey), .execution_id = "holder", .ttl = 60s});
  ASSERT_TRUE(granted && granted->outcome == AcquireOutcome::Granted);
  RawConnection waiter(t.port(), Wire::Tls);
  ASSERT_TRUE(waiter.send(parked_acquire("parked")));
  ASSERT_TRUE(eventually([&] {
    auto state = t.store->get(kKey);
    return state && state->queue == std::vector<std::string>{"parked"};
  }));

  auto start = Clock::now();
  t.server->stop();
  EXPECT_LT(Clock::now() - start, 5s) << "stop() waited on a TLS connection";
  HttpReply r = waiter.read_reply(1s);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json().value("outcome", ""), "busy") << r.body;
}

// ---- Startup errors: one line naming the file and what to do ------------------------------

TEST_F(ServerTls, AMissingKeyFileStopsStartup) {
  std::string missing = dir_.file("missing.key");
  std::string error = start_error({.tls_cert = cert_.cert, .tls_key = missing});
  EXPECT_NE(error.find("--tls-key"), std::string::npos) << error;
  EXPECT_NE(error.find(missing), std::string::npos) << error;
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

TEST_F(ServerTls, AMissingCertificateFileStopsStartup) {
  std::string missing = dir_.file("missing.crt");
  std::string error = start_error({.tls_cert = missing, .tls_key = cert_.key});
  EXPECT_NE(error.find("--tls-cert"), std::string::npos) << error;
  EXPECT_NE(error.find(missing), std::string::npos) << error;
}

TEST_F(ServerTls, AKeyOfAnotherCertificateStopsStartup) {
  TestCertFiles other = write_test_cert(dir_.path(), "other");
  std::string error = start_error({.tls_cert = cert_.cert, .tls_key = other.key});
  EXPECT_NE(error.find("does not match"), std::string::npos) << error;
  EXPECT_NE(error.find(other.key), std::string::npos) << error;
  EXPECT_NE(error.find(cert_.cert), std::string::npos) << error;
}

TEST_F(ServerTls, FilesThatAreNotPemStopStartup) {
  std::string swapped = start_error({.tls_cert = cert_.key, .tls_key = cert_.cert});
  EXPECT_NE(swapped.find("--tls-cert '" + cert_.key + "' is not a PEM certificate"),
            std::string::npos)
      << swapped;
  std::string text = dir_.file("text.key");
  write_text(text, "not a key\n");
  std::string error = start_error({.tls_cert = cert_.cert, .tls_key = text});
  EXPECT_NE(error.find("--tls-key '" + text + "' is not a PEM private key"), std::string::npos)
      << error;
}

TEST_F(ServerTls, AnEncryptedKeyStopsStartupInsteadOfPrompting) {
  TestCert encrypted = make_test_cert("secret");
  ASSERT_NE(encrypted.key_pem.find("ENCRYPTED"), std::string::npos);
  std::string cert = dir_.file("enc.crt");
  std::string key = dir_.file("enc.key");
  write_text(cert, encrypted.cert_pem);
  write_text(key, encrypted.key_pem);
  std::string error = start_error({.tls_cert = cert, .tls_key = key});
  EXPECT_NE(error.find("--tls-key '" + key + "' is encrypted"), std::string::npos) << error;
}

TEST_F(ServerTls, ACertificateWithoutAKeyStopsStartup) {
  std::string error = start_error({.tls_cert = cert_.cert});
  EXPECT_NE(error.find("go together"), std::string::npos) << error;
}

}  // namespace
}  // namespace aec::testing
