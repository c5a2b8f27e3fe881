// How the etcd client reports failures, against an in-process fake member (a gRPC server with
// etcd's services) that answers what a real cluster only does under trouble: a write that
// failed after it was sent is indeterminate, a read is retried, etcd's definite refusals keep
// their meaning, and a write that no member received is plainly unavailable.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/server.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stores/etcd/endpoints.h"
#include "stores/etcd/etcd_client.h"
#include "stores/etcd/keep_alive.h"
#include "stores/etcd/proto/rpc.grpc.pb.h"
#include "stores/etcd/txn_ops.h"
#include "tests/stores/etcd_test_cluster.h"
#include "tests/stores/fake_etcd_member.h"

namespace aec::testing {
namespace {

using namespace std::chrono_literals;
namespace pb = etcdserverpb;

// What etcd answers when raft did not commit a proposal in time: it may still commit.
grpc::Status timed_out() {
  return {grpc::StatusCode::UNAVAILABLE, "etcdserver: request timed out"};
}

class FakeKv final : public pb::KV::Service {
 public:
  grpc::Status Range(grpc::ServerContext*, const pb::RangeRequest*, pb::RangeResponse*) override {
    ++ranges;
    return timed_out();
  }
  grpc::Status Put(grpc::ServerContext*, const pb::PutRequest*, pb::PutResponse*) override {
    ++puts;
    return timed_out();
  }
  grpc::Status Txn(grpc::ServerContext*, const pb::TxnRequest*, pb::TxnResponse*) override {
    return timed_out();
  }
  std::atomic<int> ranges{0};
  std::atomic<int> puts{0};
};

class FakeLease final : public pb::Lease::Service {
 public:
  // Takes keep-alives and never answers (a member that hangs) on its first `silent_streams`
  // streams; on later ones, answers each with a TTL of `answer_ttl` seconds.
  grpc::Status LeaseKeepAlive(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<pb::LeaseKeepAliveResponse, pb::LeaseKeepAliveRequest>* stream)
      override {
    const bool silent = streams++ < silent_streams.load();
    pb::LeaseKeepAliveRequest request;
    while (stream->Read(&request)) {
      ++keep_alives;
      if (!silent) {
        pb::LeaseKeepAliveResponse answer;
        answer.set_id(request.id());
        answer.set_ttl(answer_ttl.load());
        stream->Write(answer);
      }
    }
    return grpc::Status::OK;
  }
  std::atomic<int> keep_alives{0};
  std::atomic<int> streams{0};
  std::atomic<int> silent_streams{1'000'000};
  std::atomic<std::int64_t> answer_ttl{0};
  grpc::Status LeaseRevoke(grpc::ServerContext*, const pb::LeaseRevokeRequest*,
                           pb::LeaseRevokeResponse*) override {
    return {grpc::StatusCode::NOT_FOUND, "etcdserver: requested lease not found"};
  }
};

// A member without a leader, for the first `refusals` writes: it refuses a call sent with the
// "hasleader" metadata as etcd does, before looking at the request; a write without that
// metadata it holds until the caller's deadline (a proposal nobody commits).
class LeaderlessKv final : public pb::KV::Service {
 public:
  explicit LeaderlessKv(int refusals) : refusals_(refusals) {}
  grpc::Status Put(grpc::ServerContext* context, const pb::PutRequest*, pb::PutResponse*) override {
    ++puts;
    auto has = context->client_metadata().find("hasleader");
    if (has == context->client_metadata().end() || has->second != "true") {
      ++without_metadata;
      return timed_out();
    }
    if (refusals_-- > 0) {
      return {grpc::StatusCode::UNAVAILABLE, "etcdserver: no leader"};
    }
    return grpc::Status::OK;
  }
  std::atomic<int> puts{0};
  std::atomic<int> without_metadata{0};

 private:
  std::atomic<int> refusals_;
};

// Serves `services` on a fresh port and connects a client to them (1 s deadline per call).
struct FakeMember {
  explicit FakeMember(std::initializer_list<grpc::Service*> services) {
    int port = 0;
    server = serve_fake_member(services, &port);
    if (server != nullptr) {
      endpoint = "127.0.0.1:" + std::to_string(port);
      auto c = etcd::Client::connect({endpoint}, {.dial_timeout = 2s, .rpc_timeout = 1s});
      if (c) {
        client = std::move(*c);
      }
    }
  }
  ~FakeMember() {
    client.reset();
    if (server != nullptr) {
      server->Shutdown();
    }
  }
  std::unique_ptr<grpc::Server> server;
  std::string endpoint;
  std::unique_ptr<etcd::Client> client;
};

class EtcdErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "gRPC is not built with ThreadSanitizer: its synchronisation is invisible";
#endif
    member_ = std::make_unique<FakeMember>(std::initializer_list<grpc::Service*>{&kv_, &lease_});
    ASSERT_NE(member_->client, nullptr);
  }

  void TearDown() override {
    member_.reset();
  }

  etcd::Client& client() {
    return *member_->client;
  }

  FakeKv kv_;
  FakeLease lease_;
  std::unique_ptr<FakeMember> member_;
};

TEST_F(EtcdErrorsTest, AWriteThatFailedAfterSendingIsIndeterminate) {
  auto r = client().put("k", "v");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::Unavailable);
  EXPECT_TRUE(etcd::is_indeterminate(r.error())) << r.error().to_string();
  EXPECT_NE(r.error().message().find(member_->endpoint), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("request timed out"), std::string::npos);
  EXPECT_EQ(kv_.puts.load(), 1) << "a write must not be sent again";
}

TEST_F(EtcdErrorsTest, AFailedReadIsRetriedAndNeverIndeterminate) {
  auto r = client().range("k");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::Unavailable);
  EXPECT_FALSE(etcd::is_indeterminate(r.error())) << r.error().to_string();
  EXPECT_GT(kv_.ranges.load(), 1);
}

TEST_F(EtcdErrorsTest, ATxnIsAWriteOnlyWhenItWrites) {
  etcd::TxnRequest read;
  *read.add_compare() = etcd::compare_version("k", etcd::Compare::EQUAL, 0);
  *read.add_success() = etcd::op_get("k");
  auto r = client().txn(read);
  ASSERT_FALSE(r.has_value());
  EXPECT_FALSE(etcd::is_indeterminate(r.error())) << r.error().to_string();

  etcd::TxnRequest write = read;
  *write.add_failure() = etcd::op_delete("k");
  r = client().txn(write);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(etcd::is_indeterminate(r.error())) << r.error().to_string();
}

TEST_F(EtcdErrorsTest, EtcdsRefusalsAreDefinite) {
  Status s = client().lease_revoke(42);
  EXPECT_EQ(s.code(), Code::NotFound) << s.to_string();
  EXPECT_FALSE(etcd::is_indeterminate(s));
}

TEST_F(EtcdErrorsTest, AKeepAliveNobodyAnswersLosesTheLeaseWhenItsTtlRunsOut) {
  std::atomic<int> calls{0};
  const MonoTime granted_at = BootClock::now();
  auto keeper = etcd::KeepAlive::start(
      client(), 7,
      {.ttl = 2s, .granted_at = granted_at, .on_lost = [&](const Status&) { ++calls; }});
  ASSERT_TRUE(eventually([&] { return keeper->state() != etcd::KeepAlive::State::Alive; }, 10s));
  ASSERT_EQ(keeper->state(), etcd::KeepAlive::State::Lost);
  EXPECT_GE(BootClock::now(), granted_at + 2s) << "lost before its TTL ran out";
  EXPECT_EQ(keeper->lost_reason().code(), Code::Unavailable);
  EXPECT_NE(keeper->lost_reason().message().find("may have expired"), std::string::npos)
      << keeper->lost_reason().message();
  EXPECT_EQ(calls.load(), 1);
  // It asked again on a new stream after each unanswered one (rpc_timeout: 1 s).
  EXPECT_GE(lease_.keep_alives.load(), 2);
}

// A request left unanswered is sent again on a new stream a third of the TTL after it went out,
// not after the client's rpc_timeout (5 s here, longer than the TTL): once it waited the whole
// rpc_timeout, and the lease lapsed on a loaded machine where one answer had gone missing.
TEST_F(EtcdErrorsTest, AnUnansweredKeepAliveIsSentAgainWhileTheLeaseHasTime) {
  auto patient =
      etcd::Client::connect({member_->endpoint}, {.dial_timeout = 2s, .rpc_timeout = 5s});
  ASSERT_TRUE(patient.has_value()) << patient.error().to_string();
  lease_.silent_streams = 1;
  lease_.answer_ttl = 3;
  const MonoTime granted_at = BootClock::now();
  auto keeper = etcd::KeepAlive::start(**patient, 7, {.ttl = 3s, .granted_at = granted_at});
  ASSERT_TRUE(eventually([&] { return keeper->answers() >= 1; }, 10s))
      << keeper->lost_reason().to_string();
  EXPECT_LT(BootClock::now(), granted_at + 3s) << "answered only after the TTL had run out";
  EXPECT_EQ(keeper->state(), etcd::KeepAlive::State::Alive) << keeper->lost_reason().to_string();
  EXPECT_GE(lease_.streams.load(), 2) << "the unanswered stream was not given up";
  keeper->stop();
}

TEST_F(EtcdErrorsTest, AWriteNoMemberReceivedIsNotIndeterminate) {
  member_->server->Shutdown();
  member_->server.reset();
  auto r = client().put("k", "v");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::Unavailable);
  EXPECT_FALSE(etcd::is_indeterminate(r.error())) << r.error().to_string();
  EXPECT_NE(r.error().message().find("not sent"), std::string::npos) << r.error().message();
}

TEST(EtcdConnect, NothingListeningIsUnavailableAndNamesTheEndpoint) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "gRPC is not built with ThreadSanitizer";
#endif
  // A port that was free a moment ago: bound, read, closed.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  const std::string endpoint = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  auto client = etcd::Client::connect({endpoint}, {.dial_timeout = 300ms});
  ASSERT_FALSE(client.has_value());
  EXPECT_EQ(client.error().code(), Code::Unavailable);
  EXPECT_NE(client.error().message().find(endpoint), std::string::npos);
}

TEST(EtcdConnect, MalformedEndpointsAreInvalid) {
  for (const char* bad :
       {"no-port", "host:", "host:99999", "https://host:2379", ":2379", "[::1:2379", "a:b:c"}) {
    auto client = etcd::Client::connect({bad});
    ASSERT_FALSE(client.has_value()) << bad;
    EXPECT_EQ(client.error().code(), Code::InvalidArgument) << bad;
  }
  EXPECT_EQ(etcd::Client::connect({}).error().code(), Code::InvalidArgument);
  auto v6 = etcd::split_host_port("[::1]:2379");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, "2379");
  EXPECT_EQ(etcd::split_host_port("http://localhost:2379/")->host, "localhost");
  EXPECT_EQ(*etcd::resolve_target({"127.0.0.1:1", "127.0.0.2:2"}), "ipv4:127.0.0.1:1,127.0.0.2:2");
}

TEST(EtcdTxnOps, PrefixEnd) {
  EXPECT_EQ(etcd::prefix_end("a/"), "a0");
  EXPECT_EQ(etcd::prefix_end("a\xff"), "b");
  EXPECT_EQ(etcd::prefix_end("\xff\xff"), std::string(1, '\0'));
  EXPECT_EQ(etcd::prefix_end(""), std::string(1, '\0'));
}

// During an election a member knows it has no leader: a write sent to it is refused at once
// (certainly not applied) and sent again until a leader answers, within the call's deadline.
TEST(EtcdNoLeader, AWriteRefusedForWantOfALeaderIsSentAgain) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "gRPC is not built with ThreadSanitizer";
#endif
  LeaderlessKv kv(2);
  FakeMember member({&kv});
  ASSERT_NE(member.client, nullptr);
  auto r = member.client->put("k", "v");
  EXPECT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(kv.puts.load(), 3);
  EXPECT_EQ(kv.without_metadata.load(), 0) << "a write went without the hasleader metadata";
}

TEST(EtcdNoLeader, AWriteRefusedUntilItsDeadlineIsNotIndeterminate) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "gRPC is not built with ThreadSanitizer";
#endif
  LeaderlessKv kv(1'000'000);
  FakeMember member({&kv});
  ASSERT_NE(member.client, nullptr);
  const MonoTime start = BootClock::now();
  auto r = member.client->put("k", "v");
  ASSERT_FALSE(r.has_value());
  EXPECT_LT(BootClock::now() - start, 3s) << "not sent again past its deadline (1 s)";
  EXPECT_EQ(r.error().code(), Code::Unavailable);
  EXPECT_FALSE(etcd::is_indeterminate(r.error())) << r.error().to_string();
  EXPECT_NE(r.error().message().find("no leader"), std::string::npos) << r.error().message();
  EXPECT_GT(kv.puts.load(), 1);
}

}  // namespace
}  // namespace aec::testing
