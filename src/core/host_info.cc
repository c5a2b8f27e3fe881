#include <fstream>
#include <string>

#include <pwd.h>
#include <unistd.h>

#include <aec/host_info.h>

namespace aec {
namespace {

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

class RealHostInfo final : public HostInfo {
 public:
  // Read once: every acquire records the owner, and getpwuid reads /etc/passwd each time.
  std::string hostname() override {
    static const std::string name = [] {
      char buf[256] = {};
      return gethostname(buf, sizeof buf - 1) == 0 ? std::string(buf) : std::string("unknown");
    }();
    return name;
  }
  std::int64_t pid() override { return getpid(); }
  std::string boot_id() override {
    std::string id = read_first_line("/proc/sys/kernel/random/boot_id");
    return id.empty() ? "unknown-boot" : id;
  }
  std::string user() override {
    static const std::string name = [] {
      if (const passwd* pw = getpwuid(geteuid()); pw != nullptr && pw->pw_name != nullptr) {
        return std::string(pw->pw_name);
      }
      return "uid:" + std::to_string(geteuid());
    }();
    return name;
  }
};

}  // namespace

std::shared_ptr<HostInfo> real_host_info() {
  static const std::shared_ptr<HostInfo> host = std::make_shared<RealHostInfo>();
  return host;
}

}  // namespace aec
