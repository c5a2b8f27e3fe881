// What aec asks of the host it runs on, behind an interface so a test can simulate a reboot or
// another machine.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace aec {

class HostInfo {
 public:
  virtual ~HostInfo() = default;
  // The host name recorded as an execution's owner.
  virtual std::string hostname() = 0;
  // The calling process's id.
  virtual std::int64_t pid() = 0;
  // An id that changes on every boot (Linux: /proc/sys/kernel/random/boot_id). Leases measured
  // on the boot clock are valid only under the boot id they were written with.
  virtual std::string boot_id() = 0;
  // The name of the user running the process, for audit records ("who").
  virtual std::string user() = 0;
};

// The real host. Thread-safe.
std::shared_ptr<HostInfo> real_host_info();

}  // namespace aec
