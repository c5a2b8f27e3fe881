// The etcd store's deadlines hold on the monotonic clock when the wall clock is far off: the real
// aec binary under libfaketime (wall clock only) against an in-process etcd member whose calls
// never come back, and a listener that never speaks HTTP/2. gRPC 1.51's own deadline timers
// follow the wall clock (src/stores/etcd/call_timer.h): 1,000 s ahead, a call with a 1 s
// deadline hung for good before aec ended calls on its own monotonic timer.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/server.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stores/etcd/proto/rpc.grpc.pb.h"
#include "tests/e2e/e2e_support.h"
#include "tests/stores/fake_etcd_member.h"

namespace aec::testing {
namespace {

using namespace std::chrono_literals;
namespace pb = etcdserverpb;

constexpr const char* kFaketimeLib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

// The way from aec to the fake member: it passes the connection and aec's first call (its
// check that a member answers) both ways, then nothing more that aec sends, so that the calls
// after it reach no server. (A server that got a call would end it at its deadline itself, on
// its own clock, and hide the client's.) It reads the client's HTTP/2 frames to find the
// second call: the 24-byte preface, then frames of a 9-byte header (length, type, flags,
// stream); a call starts with a HEADERS frame (type 1) on a new stream.
class SecondCallHole {
 public:
  explicit SecondCallHole(int member_port) : member_port_(member_port) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = loopback(0);
    socklen_t len = sizeof addr;
    if (bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        listen(listener_, 16) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~SecondCallHole() {
    ::shutdown(listener_, SHUT_RDWR);
    if (acceptor_.joinable()) {
      acceptor_.join();  // no connection comes after this
    }
    for (int fd : fds_) {
      ::shutdown(fd, SHUT_RDWR);  // ends the passing threads' reads
    }
    for (std::thread& t : threads_) {
      t.join();
    }
    for (int fd : fds_) {
      close(fd);
    }
    close(listener_);
  }
  int port() const { return port_; }

 private:
  static sockaddr_in loopback(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    return addr;
  }

  void accept_loop() {
    while (true) {
      int client = accept(listener_, nullptr, nullptr);
      if (client < 0) {
        return;  // shut down
      }
      int member = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr = loopback(member_port_);
      if (connect(member, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        close(client);
        close(member);
        continue;
      }
      fds_.push_back(client);
      fds_.push_back(member);
      threads_.emplace_back([member, client] { pass(member, client); });
      threads_.emplace_back([client, member] { pass_until_second_call(client, member); });
    }
  }

  static void pass(int from, int to) {
    char buf[16384];
    ssize_t n = 0;
    while ((n = recv(from, buf, sizeof buf, 0)) > 0) {
      if (send(to, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) {
        return;
      }
    }
  }

  static void pass_until_second_call(int from, int to) {
    std::string pending;
    std::size_t preface = 24;
    int calls = 0;
    char buf[16384];
    ssize_t n = 0;
    while ((n = recv(from, buf, sizeof buf, 0)) > 0) {
      if (calls > 1) {
        continue;  // swallowed
      }
      pending.append(buf, static_cast<std::size_t>(n));
      std::string out;
      std::size_t take = std::min(preface, pending.size());
      out += pending.substr(0, take);
      pending.erase(0, take);
      preface -= take;
      while (preface == 0 && pending.size() >= 9) {
        std::size_t length = (static_cast<std::uint8_t>(pending[0]) << 16) |
                             (static_cast<std::uint8_t>(pending[1]) << 8) |
                             static_cast<std::uint8_t>(pending[2]);
        if (pending[3] == 1 && ++calls > 1) {
          break;  // the second call's HEADERS: from here on, nothing passes
        }
        if (pending.size() < 9 + length) {
          break;
        }
        out += pending.substr(0, 9 + length);
        pending.erase(0, 9 + length);
      }
      if (!out.empty() && send(to, out.data(), out.size(), MSG_NOSIGNAL) < 0) {
        return;
      }
    }
  }

  const int member_port_;
  int listener_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::vector<int> fds_;              // written by acceptor_ only, read once it has ended
  std::vector<std::thread> threads_;  // likewise
};

// The member behind the hole: it answers what reaches it, which should be only each client's
// first call (its check that a member answers, a count of one key).
class FakeKv final : public pb::KV::Service {
 public:
  grpc::Status Range(grpc::ServerContext*, const pb::RangeRequest* request,
                     pb::RangeResponse*) override {
    (request->count_only() ? pings : others)++;
    return grpc::Status::OK;
  }
  grpc::Status Put(grpc::ServerContext*, const pb::PutRequest*, pb::PutResponse*) override {
    ++others;
    return grpc::Status::OK;
  }
  grpc::Status Txn(grpc::ServerContext*, const pb::TxnRequest*, pb::TxnResponse*) override {
    ++others;
    return grpc::Status::OK;
  }
  std::atomic<int> pings{0};
  std::atomic<int> others{0};
};

class EtcdWallClockTest : public ::testing::Test {
 protected:
  void SetUp() override {
#if defined(AEC_SANITIZED)
    GTEST_SKIP() << "libfaketime cannot be preloaded under a sanitizer (its runtime must load "
                    "first)";
#endif
    if (access(kFaketimeLib, R_OK) != 0) {
      GTEST_SKIP() << "needs libfaketime (Debian package faketime)";
    }
    int port = 0;
    server_ = serve_fake_member({&kv_}, &port);
    ASSERT_NE(server_, nullptr);
    hole_ = std::make_unique<SecondCallHole>(port);
    ASSERT_NE(hole_->port(), 0);
    member_ = "127.0.0.1:" + std::to_string(hole_->port());
  }

  void TearDown() override {
    hole_.reset();
    if (server_ != nullptr) {
      server_->Shutdown();
    }
  }

  // `aec ARGS...` with the wall clock `offset` away (libfaketime's FAKETIME, e.g. "+1000"),
  // killed after 30 s if it hangs; `*took` is how long it ran.
  static e2e::Output run_offset(const std::string& offset, const std::vector<std::string>& args,
                                std::chrono::milliseconds* took) {
    // Only aec is under libfaketime: `timeout` keeps the real clock.
    std::vector<std::string> argv = {"-s",
                                     "KILL",
                                     "30",
                                     "env",
                                     std::string("LD_PRELOAD=") + kFaketimeLib,
                                     "FAKETIME=" + offset,
                                     "FAKETIME_DONT_FAKE_MONOTONIC=1",
                                     e2e::aec_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto start = std::chrono::steady_clock::now();
    e2e::Output out = e2e::run_binary("/usr/bin/timeout", argv);
    *took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start);
    return out;
  }

  FakeKv kv_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<SecondCallHole> hole_;
  std::string member_;  // the hole's address
};

// A call's 1 s deadline ends it in about 1 s whichever way the wall clock is off. The bound,
// 10 s, is far above the deadline and far below the hang (30 s, then killed).
TEST_F(EtcdWallClockTest, DeadlinesHoldUnderAWallClockOffset) {
  const std::string store = "etcd://" + member_ + "?rpc_timeout=1s&dial_timeout=1s";
  for (const char* offset : {"+1000", "-1000"}) {
    SCOPED_TRACE(std::string("wall clock ") + offset + " s");
    std::chrono::milliseconds took{};
    e2e::Output status = run_offset(offset, {"status", "--store", store, "k"}, &took);
    EXPECT_EQ(status.exit_code, 69) << status.err;  // the store cannot be reached
    EXPECT_NE(status.err.find("DEADLINE_EXCEEDED"), std::string::npos) << status.err;
    EXPECT_LT(took, 10s);

    e2e::Output run =
        run_offset(offset, {"run", "--store", store, "--key", "k", "--", "true"}, &took);
    EXPECT_EQ(run.exit_code, 69) << run.err;
    EXPECT_NE(run.err.find("DEADLINE_EXCEEDED"), std::string::npos) << run.err;
    EXPECT_LT(took, 10s);
  }
  EXPECT_GE(kv_.pings.load(), 4);   // every aec reached the member
  EXPECT_EQ(kv_.others.load(), 0);  // and no later call did
}

// Connecting gives up at the dial timeout too: a listener that takes the connection and never
// speaks HTTP/2 keeps gRPC's channel connecting until its own (wall-clock) timers end it.
TEST_F(EtcdWallClockTest, DialTimeoutHoldsUnderAWallClockOffset) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(listen(listener, 16), 0);  // never accepted: the kernel completes the handshake
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string store =
      "etcd://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "?dial_timeout=1s";
  for (const char* offset : {"+1000", "-1000"}) {
    SCOPED_TRACE(std::string("wall clock ") + offset + " s");
    std::chrono::milliseconds took{};
    e2e::Output status = run_offset(offset, {"status", "--store", store, "k"}, &took);
    EXPECT_EQ(status.exit_code, 69) << status.err;
    EXPECT_NE(status.err.find("no member reachable within 1000 ms"), std::string::npos)
        << status.err;
    EXPECT_LT(took, 10s);
  }
  close(listener);
}

}  // namespace
}  // namespace aec::testing
