// FaultProxy over real sockets on 127.0.0.1: an echo server runs in threads behind the proxy and
// a blocking client talks to it through the proxy. Waits are polls with a deadline; a short poll
// that must see nothing is how a test asserts that the proxy holds bytes back.
#include "tests/fault/fault_proxy.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace aec::fault {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

constexpr milliseconds kPatience = 10s;  // for what must happen: generous, never reached

sockaddr_in loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  return address;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Polls `done` until it holds or `timeout` passes, for counters the proxy's thread updates.
template <typename Predicate>
bool eventually(Predicate done, milliseconds timeout = kPatience) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Echoes every connection (one thread each) and counts the connections it accepted and the EOFs
// it read. After an EOF it shuts its own sending side, so the EOF travels back.
class EchoServer {
 public:
  EchoServer() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = loopback(0);
    socklen_t length = sizeof address;
    auto* raw = reinterpret_cast<sockaddr*>(&address);
    EXPECT_EQ(::bind(listener_, raw, length), 0);
    EXPECT_EQ(::listen(listener_, SOMAXCONN), 0);
    EXPECT_EQ(::getsockname(listener_, raw, &length), 0);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~EchoServer() {
    ::shutdown(listener_, SHUT_RDWR);  // on Linux this wakes the blocked accept()
    acceptor_.join();
    {
      std::lock_guard lock(mu_);
      for (int fd : fds_) {
        ::shutdown(fd, SHUT_RDWR);
      }
    }
    for (std::thread& worker : workers_) {
      worker.join();
    }
    // Closed only now, so no shutdown() above can hit a number the kernel handed out again.
    for (int fd : fds_) {
      ::close(fd);
    }
    ::close(listener_);
  }
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

  int port() const { return port_; }
  int accepted() {
    std::lock_guard lock(mu_);
    return accepted_;
  }
  bool wait_for_eofs(int count, milliseconds timeout = kPatience) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return eofs_ >= count; });
  }

 private:
  void accept_loop() {
    while (true) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0 && (errno == EINTR || errno == ECONNABORTED)) {
        continue;
      }
      if (fd < 0) {
        return;  // the listener was shut down
      }
      std::lock_guard lock(mu_);
      ++accepted_;
      fds_.push_back(fd);
      workers_.emplace_back([this, fd] { echo(fd); });
    }
  }
  void echo(int fd) {
    std::vector<char> buffer(std::size_t{64} * 1024);
    while (true) {
      const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n == 0) {
        ::shutdown(fd, SHUT_WR);
        std::lock_guard lock(mu_);
        ++eofs_;
        cv_.notify_all();
      }
      if (n <= 0 || !send_all(fd, {buffer.data(), static_cast<std::size_t>(n)})) {
        return;
      }
    }
  }

  int listener_ = -1;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  int accepted_ = 0;                  // guarded by mu_
  int eofs_ = 0;                      // guarded by mu_
  std::vector<int> fds_;              // guarded by mu_
  std::vector<std::thread> workers_;  // guarded by mu_ until acceptor_ is joined
  std::thread acceptor_;
};

// A blocking client socket.
class Client {
 public:
  explicit Client(int port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    const sockaddr_in address = loopback(port);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    const int on = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  int fd() const { return fd_; }
  bool send(std::string_view data) { return send_all(fd_, data); }
  // Up to `size` bytes: fewer on EOF, an error or when `timeout` runs out.
  std::string read(std::size_t size, milliseconds timeout = kPatience) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string got;
    std::vector<char> buffer(std::size_t{64} * 1024);
    while (got.size() < size) {
      const auto left =
          std::chrono::ceil<milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        break;
      }
      const ssize_t n = ::recv(fd_, buffer.data(), std::min(buffer.size(), size - got.size()), 0);
      if (n <= 0) {
        break;
      }
      got.append(buffer.data(), static_cast<std::size_t>(n));
    }
    return got;
  }
  std::string round_trip(std::string_view message) {
    return send(message) ? read(message.size()) : "(send failed)";
  }
  // True when nothing at all (no byte, no EOF, no error) arrives for `period`.
  bool quiet_for(milliseconds period) {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(period.count())) == 0;
  }
  // How the connection ended, waiting up to kPatience: "reset", "eof", or what came instead.
  std::string ending() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(kPatience.count())) <= 0) {
      return "still open";
    }
    char byte = 0;
    const ssize_t n = ::recv(fd_, &byte, 1, 0);
    if (n > 0) {
      return "data";
    }
    if (n == 0) {
      return "eof";
    }
    return errno == ECONNRESET ? "reset" : std::error_code(errno, std::system_category()).message();
  }

 private:
  int fd_;
};

TEST(FaultProxyStart, RejectsATargetPortOutOfRange) {
  Result<std::unique_ptr<FaultProxy>> proxy = FaultProxy::start("127.0.0.1", 0);
  ASSERT_FALSE(proxy.has_value());
  EXPECT_EQ(proxy.error().code(), Code::InvalidArgument);
}

class FaultProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<FaultProxy>> started = FaultProxy::start("127.0.0.1", echo_.port());
    ASSERT_TRUE(started.has_value()) << started.error().to_string();
    proxy_ = std::move(*started);
  }

  EchoServer echo_;
  std::unique_ptr<FaultProxy> proxy_;  // destroyed first: it closes its connections to echo_
};

TEST_F(FaultProxyTest, PassesALargePayloadBothWaysByteExact) {
  constexpr std::size_t kSize = std::size_t{4} * 1024 * 1024;
  std::string payload(kSize, '\0');
  std::mt19937_64 random(42);
  for (char& byte : payload) {
    byte = static_cast<char>(random());
  }
  Client client(proxy_->port());
  bool sent = false;
  // The echo comes back while the payload still goes out: one thread writes, this one reads.
  std::thread writer([&] {
    sent = client.send(payload);
    ::shutdown(client.fd(), SHUT_WR);
  });
  const std::string echoed = client.read(kSize, 60s);
  writer.join();
  EXPECT_TRUE(sent);
  ASSERT_EQ(echoed.size(), kSize);
  EXPECT_TRUE(echoed == payload);     // not EXPECT_EQ: a mismatch must not print 8 MiB
  EXPECT_EQ(client.ending(), "eof");  // the client's EOF went there and the echo's came back
  EXPECT_TRUE(eventually([&] { return proxy_->bytes_forwarded() == 2 * kSize; }))
      << proxy_->bytes_forwarded();
  EXPECT_EQ(proxy_->connections_accepted(), 1U);
}

TEST_F(FaultProxyTest, BlackholeHoldsBytesAndDeliversThemWhenHealed) {
  Client before(proxy_->port());
  ASSERT_EQ(before.round_trip("hello"), "hello");

  proxy_->blackhole();
  ASSERT_TRUE(before.send("held"));
  Client during(proxy_->port());  // accepted, but the target must not hear of it yet
  ASSERT_TRUE(during.send("new"));
  EXPECT_TRUE(before.quiet_for(300ms));
  EXPECT_TRUE(during.quiet_for(50ms));
  EXPECT_EQ(echo_.accepted(), 1);
  EXPECT_TRUE(eventually([&] { return proxy_->connections_accepted() == 2; }));

  proxy_->pass();
  EXPECT_EQ(before.read(4), "held");
  EXPECT_EQ(during.read(3), "new");
  EXPECT_EQ(echo_.accepted(), 2);
  EXPECT_EQ(before.round_trip("after"), "after");
}

TEST_F(FaultProxyTest, DelayAddsAtLeastBaseMinusJitterEachWay) {
  Client client(proxy_->port());
  ASSERT_EQ(client.round_trip("warm"), "warm");
  constexpr milliseconds kBase = 60ms;
  constexpr milliseconds kJitter = 20ms;
  proxy_->delay(kBase, kJitter, 7);
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    ASSERT_EQ(client.round_trip("ping"), "ping");
    const auto took = std::chrono::steady_clock::now() - start;
    // A round trip crosses the proxy twice, each crossing delayed by at least base - jitter.
    EXPECT_GE(took, 2 * (kBase - kJitter)) << "round trip " << i;
  }
}

TEST_F(FaultProxyTest, DelayWithJitterKeepsByteOrder) {
  Client client(proxy_->port());
  proxy_->delay(5ms, 5ms, 11);
  std::string expected;
  for (int i = 0; i < 100; ++i) {
    const std::string message = fmt::format("msg-{:03},", i);
    expected += message;
    ASSERT_TRUE(client.send(message));
    // Spaced out (not synchronisation) so that the proxy reads many separate chunks, each with
    // its own jittered delay, which would reorder them if the proxy let it.
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(client.read(expected.size()), expected);
}

TEST_F(FaultProxyTest, ResetClosesEveryConnectionWithRstUntilPass) {
  Client before(proxy_->port());
  ASSERT_EQ(before.round_trip("hello"), "hello");

  proxy_->reset();
  const std::string ended = before.ending();
  EXPECT_TRUE(ended == "reset" || ended == "eof") << ended;
  Client during(proxy_->port());  // reset as soon as accepted
  const std::string refused = during.ending();
  EXPECT_TRUE(refused == "reset" || refused == "eof") << refused;

  proxy_->pass();
  Client after(proxy_->port());
  EXPECT_EQ(after.round_trip("again"), "again");
}

TEST_F(FaultProxyTest, HalfOpenKeepsTheClientOpenAndSilentForGood) {
  Client before(proxy_->port());
  ASSERT_EQ(before.round_trip("hello"), "hello");

  proxy_->half_open();
  EXPECT_TRUE(echo_.wait_for_eofs(1));  // the target side was closed
  EXPECT_TRUE(before.send("anyone there?"));
  EXPECT_TRUE(before.quiet_for(300ms));
  Client during(proxy_->port());  // half open from the start: never reaches the target
  EXPECT_TRUE(during.send("hello?"));
  EXPECT_TRUE(during.quiet_for(50ms));
  EXPECT_EQ(echo_.accepted(), 1);

  proxy_->pass();
  Client after(proxy_->port());
  EXPECT_EQ(after.round_trip("fresh"), "fresh");
  EXPECT_TRUE(before.send("still there?"));
  EXPECT_TRUE(before.quiet_for(200ms));  // a half-open connection does not recover
  EXPECT_EQ(echo_.accepted(), 2);
}

}  // namespace
}  // namespace aec::fault
