// FakeEtcd: a gRPC server on 127.0.0.1 with etcd's KV service that answers every Txn and Range
// with the response it was last given, so fuzz_store_responses can feed hostile answers to the
// real etcd client and the etcd store's readers. Internal to tests/fuzz.
#pragma once

#include <memory>
#include <string>

#include "stores/etcd/proto/rpc.pb.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace aec::fuzz {

class FakeEtcd {
 public:
  // Serves on 127.0.0.1 on a free port. Aborts when it cannot.
  FakeEtcd();
  ~FakeEtcd();
  FakeEtcd(const FakeEtcd&) = delete;
  FakeEtcd& operator=(const FakeEtcd&) = delete;

  // "127.0.0.1:PORT"
  std::string endpoint() const;
  // The answers from now on. Not thread-safe: set them between calls.
  void answer(const etcdserverpb::TxnResponse& txn, const etcdserverpb::RangeResponse& range);

 private:
  class Service;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace aec::fuzz
