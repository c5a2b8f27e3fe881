// The etcd store's key readers (etcd_key_state.h) against an in-process fake member that answers
// every Txn with a set TxnResponse: an answer a real etcd never gives (too few results, a key
// outside the range asked for) is an error or ignored, never an out-of-range read or an
// exception.
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/server.h>
#include <gtest/gtest.h>

#include "stores/etcd/etcd_client.h"
#include "stores/etcd/etcd_key_state.h"
#include "stores/etcd/etcd_records.h"
#include "stores/etcd/proto/rpc.grpc.pb.h"
#include "stores/etcd/txn_ops.h"
#include "tests/stores/fake_etcd_member.h"

namespace aec::testing {
namespace {

using namespace std::chrono_literals;
namespace pb = etcdserverpb;

class FixedKv final : public pb::KV::Service {
 public:
  grpc::Status Txn(grpc::ServerContext*, const pb::TxnRequest*, pb::TxnResponse* out) override {
    std::lock_guard lock(mu_);
    *out = answer_;
    return grpc::Status::OK;
  }
  void answer(const pb::TxnResponse& r) {
    std::lock_guard lock(mu_);
    answer_ = r;
  }

 private:
  std::mutex mu_;
  pb::TxnResponse answer_;
};

class EtcdAnswersTest : public ::testing::Test {
 protected:
  void SetUp() override {
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "gRPC is not built with ThreadSanitizer: its synchronisation is invisible";
#endif
    int port = 0;
    server_ = serve_fake_member({&kv_}, &port);
    ASSERT_NE(server_, nullptr);
    auto client = etcd::Client::connect({"127.0.0.1:" + std::to_string(port)},
                                        {.dial_timeout = 2s, .rpc_timeout = 1s});
    ASSERT_TRUE(client.has_value()) << client.error().to_string();
    client_ = std::move(*client);
  }

  void TearDown() override {
    client_.reset();
    if (server_ != nullptr) {
      server_->Shutdown();
    }
  }

  // A range answer holding `key` = `value`.
  static void add_range(pb::TxnResponse& r, const std::string& key = "",
                        const std::string& value = "") {
    pb::RangeResponse* range = r.add_responses()->mutable_response_range();
    if (!key.empty()) {
      mvccpb::KeyValue* kv = range->add_kvs();
      kv->set_key(key);
      kv->set_value(value);
      kv->set_version(1);
    }
  }

  FixedKv kv_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<etcd::Client> client_;
  const etcd::Layout layout_{"aec/"};
};

// Fuzz bug "etcd-short-txn": the readers read responses(i) without checking how many answers
// came: with fewer than they asked for, protobuf's Get(i) reads past the end.
TEST_F(EtcdAnswersTest, EtcdShortTxnFewerAnswersThanAskedForIsAnError) {
  pb::TxnResponse none;
  none.set_succeeded(true);
  kv_.answer(none);
  auto snap = etcd::read_snapshot(*client_, layout_, "k");
  ASSERT_FALSE(snap.has_value());
  EXPECT_EQ(snap.error().code(), Code::Internal) << snap.error().to_string();
  EXPECT_NE(snap.error().message().find("0 result(s) where 1 were due"), std::string::npos)
      << snap.error().to_string();

  pb::TxnResponse two;
  add_range(two);
  add_range(two);
  kv_.answer(two);
  auto entries = etcd::read_entries(*client_, layout_, "k", {1, 2, 3}, 7);
  ASSERT_FALSE(entries.has_value());
  EXPECT_EQ(entries.error().code(), Code::Internal) << entries.error().to_string();

  EXPECT_TRUE(etcd::check_answers(two, 2, "x").is_ok());
  EXPECT_EQ(etcd::check_answers(two, 3, "leases").code(), Code::Internal);
}

// Fuzz bug "etcd-foreign-key": number_after() took substr(dir.size()) of a key outside (and
// shorter than) the range read, and std::out_of_range terminated the process.
TEST_F(EtcdAnswersTest, EtcdForeignKeyAKeyOutsideTheRangeReadIsNoLease) {
  etcd::LeaseValue lease{
      .execution = {.id = "run-1", .key = "k", .token = 2}, .seq = 5, .ttl = 30s};
  pb::TxnResponse r;
  add_range(r, layout_.meta("k"), R"({"key":"k","running":[[2,5]],"ok":0})");
  pb::RangeResponse* tree = r.mutable_responses(0)->mutable_response_range();
  auto add = [&](const std::string& key, const std::string& value) {
    mvccpb::KeyValue* kv = tree->add_kvs();
    kv->set_key(key);
    kv->set_value(value);
  };
  add("aec/x", etcd::to_text(lease));        // outside the key's tree "aec/k/k/": ignored
  add("aec/k/k/l/x", etcd::to_text(lease));  // a lease whose name is no token
  add("aec/k/k/q/99999999999999999999", R"({"id":"run-2","ttl":3000})");  // past int64
  kv_.answer(r);
  auto snap = etcd::read_snapshot(*client_, layout_, "k");
  ASSERT_TRUE(snap.has_value()) << snap.error().to_string();
  ASSERT_EQ(snap->leases.size(), 1U);
  EXPECT_EQ(snap->leases[0].token, 0) << "no token: the key is not one of the key's leases";
  EXPECT_EQ(snap->lease(2), nullptr);
  ASSERT_EQ(snap->places.size(), 1U);
  EXPECT_EQ(snap->places[0].seq, 0);
}

}  // namespace
}  // namespace aec::testing
