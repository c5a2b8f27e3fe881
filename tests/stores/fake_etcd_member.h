// An in-process etcd member for tests: a gRPC server on a free 127.0.0.1 port serving the fakes
// of etcd's services a test gives it.
#pragma once

#include <initializer_list>
#include <memory>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

namespace aec::testing {

// Serves `services` on 127.0.0.1; `*port` is the port it took. Null if it could not start.
inline std::unique_ptr<grpc::Server> serve_fake_member(
    std::initializer_list<grpc::Service*> services, int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), port);
  for (grpc::Service* service : services) {
    builder.RegisterService(service);
  }
  return builder.BuildAndStart();
}

}  // namespace aec::testing
