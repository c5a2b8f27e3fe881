// FakeHost: a HostInfo whose boot id a test can change, to simulate a reboot.
#pragma once

#include <mutex>
#include <string>

#include <aec/host_info.h>

namespace aec::testing {

class FakeHost final : public HostInfo {
 public:
  std::string hostname() override { return "testhost"; }
  std::int64_t pid() override { return 4242; }
  std::string user() override { return "tester"; }
  std::string boot_id() override {
    std::lock_guard lock(mu_);
    return boot_id_;
  }
  void reboot() {
    std::lock_guard lock(mu_);
    boot_id_ += "+";
  }

 private:
  std::mutex mu_;
  std::string boot_id_ = "boot-1";
};

}  // namespace aec::testing
