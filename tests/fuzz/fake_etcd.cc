#include "tests/fuzz/fake_etcd.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include <grpcpp/server.h>

#include "stores/etcd/proto/rpc.grpc.pb.h"
#include "tests/stores/fake_etcd_member.h"

namespace aec::fuzz {

class FakeEtcd::Service final : public etcdserverpb::KV::Service {
 public:
  grpc::Status Range(grpc::ServerContext*, const etcdserverpb::RangeRequest*,
                     etcdserverpb::RangeResponse* out) override {
    std::lock_guard lock(mu_);
    *out = range_;
    return grpc::Status::OK;
  }
  grpc::Status Txn(grpc::ServerContext*, const etcdserverpb::TxnRequest*,
                   etcdserverpb::TxnResponse* out) override {
    std::lock_guard lock(mu_);
    *out = txn_;
    return grpc::Status::OK;
  }
  void set(const etcdserverpb::TxnResponse& txn, const etcdserverpb::RangeResponse& range) {
    std::lock_guard lock(mu_);
    txn_ = txn;
    range_ = range;
  }

 private:
  std::mutex mu_;
  etcdserverpb::TxnResponse txn_;
  etcdserverpb::RangeResponse range_;
};

FakeEtcd::FakeEtcd() : service_(std::make_unique<Service>()) {
  server_ = aec::testing::serve_fake_member({service_.get()}, &port_);
  if (server_ == nullptr || port_ == 0) {
    std::fprintf(stderr, "FakeEtcd: cannot serve on 127.0.0.1\n");
    std::abort();
  }
}

FakeEtcd::~FakeEtcd() {
  server_->Shutdown();
}

std::string FakeEtcd::endpoint() const {
  return "127.0.0.1:" + std::to_string(port_);
}

void FakeEtcd::answer(const etcdserverpb::TxnResponse& txn,
                      const etcdserverpb::RangeResponse& range) {
  service_->set(txn, range);
}

}  // namespace aec::fuzz
