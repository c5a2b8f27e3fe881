#include <string>

#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include <aec/host_info.h>

namespace aec {
namespace {

// The first line of a small file, or "" when it cannot be read. Plain read(2): an ifstream's
// construction (its locale and buffers) costs more than the read.
std::string read_first_line(const char* path) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return "";
  }
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  std::string line(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
  return line.substr(0, line.find('\n'));
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
  // Read once: a process does not outlive its boot.
  std::string boot_id() override {
    static const std::string id = [] {
      std::string line = read_first_line("/proc/sys/kernel/random/boot_id");
      return line.empty() ? std::string("unknown-boot") : line;
    }();
    return id;
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
