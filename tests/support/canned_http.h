// CannedHttp: an HTTP/1.1 server on 127.0.0.1 for tests of clients, answering each request with
// what a handler returns (one request per connection; "Connection: close"). It keeps every
// request it read, for the test to check what was sent.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace aec::testing {

struct CannedRequest {
  std::string method;
  std::string target;                          // path and query
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;

  std::string header(const std::string& lower_name) const;
};

struct CannedResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

class CannedHttp {
 public:
  using Handler = std::function<CannedResponse(const CannedRequest&)>;

  explicit CannedHttp(Handler handler);
  ~CannedHttp();  // stops serving; a connection being answered is finished first
  CannedHttp(const CannedHttp&) = delete;
  CannedHttp& operator=(const CannedHttp&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<CannedRequest> requests() const;

 private:
  void serve();
  void answer(int conn);

  Handler handler_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::vector<CannedRequest> requests_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace aec::testing
