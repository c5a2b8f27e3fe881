// FakeAecd: an HTTP/1.1 server on 127.0.0.1 that answers every request with the status and body
// it was last given, so fuzz_store_responses can feed hostile answers to the real http:// store
// (libcurl, keep-alive connections). One thread; a connection at a time. Internal to tests/fuzz.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

namespace aec::fuzz {

class FakeAecd {
 public:
  // Listens on 127.0.0.1 on a free port. Aborts when it cannot.
  FakeAecd();
  ~FakeAecd();
  FakeAecd(const FakeAecd&) = delete;
  FakeAecd& operator=(const FakeAecd&) = delete;

  int port() const { return port_; }
  // The answer to every request from now on. Thread-safe.
  void answer(int status, std::string body);

 private:
  void serve();
  void serve_connection(int fd);

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  int status_ = 200;  // guarded by mu_
  std::string body_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace aec::fuzz
