// SocketTransport: the http:// transport, over aec's own TCP connections.
//
// A request is written as one buffer and its answer read with poll() and recv() straight into
// Boost.Beast's response parser (status line, headers, Content-Length, chunked or read to the
// end). Connections are kept alive (up to kMaxIdle idle ones); one found closed by the server
// before it is reused is dropped, and a request whose reused connection breaks with no byte of
// an answer is sent once more over a new connection, the try then reporting that a copy may
// have reached the server (HttpAnswer::reconnected). Connects directly: proxy settings in the
// environment (http_proxy) are not used.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "stores/http/transport.h"

namespace aec::http {

class SocketTransport final : public Transport {
 public:
  explicit SocketTransport(TransportOptions options);
  ~SocketTransport() override;

  struct Connection;  // socket_transport.cc

 private:
  Try try_once(const HttpCall& call) override;
  void drop_idle() override;

  // An idle connection that the server has not closed, or nullptr.
  std::unique_ptr<Connection> take_idle();
  void give_back(std::unique_ptr<Connection> c);

  const std::string request_head_;  // the headers every request carries
  std::mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_;  // guarded by mu_
};

}  // namespace aec::http
