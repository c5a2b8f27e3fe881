// CurlTransport: the https:// transport, over libcurl (which brings TLS).
//
// Each pooled handle pairs a curl easy handle with its own multi handle, whose connection cache
// keeps the connection to the server between requests. libcurl sends a request again, once,
// when its reused connection breaks with no answer (it has no switch for this before 8.16): the
// try then reports that a copy may have reached the server.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "stores/http/transport.h"

namespace aec::http {

class CurlTransport final : public Transport {
 public:
  explicit CurlTransport(TransportOptions options);
  ~CurlTransport() override;

  struct Attempt;  // one try of a call, with what libcurl's callbacks saw (curl_transport.cc)

 private:
  struct Handle;

  Try try_once(const HttpCall& call) override;
  void drop_idle() override;

  std::unique_ptr<Handle> take();
  void give_back(std::unique_ptr<Handle> handle);
  Attempt perform(Handle& handle, const HttpCall& call);
  void configure(Handle& handle, const HttpCall& call, Attempt& attempt);

  std::mutex mu_;
  std::vector<std::unique_ptr<Handle>> idle_;  // guarded by mu_
};

}  // namespace aec::http
