// flock(2) on one file per key: the floor a single-host lock can reach (no history, no expiry,
// no fencing; a crashed holder's lock is freed by the kernel).
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include "contender.h"

namespace aec::bench {
namespace {

Status errno_status(std::string_view what) {
  return unavailable(fmt::format("{}: {}", what, std::strerror(errno)));
}

class FlockSession final : public Session {
 public:
  explicit FlockSession(std::string dir) : dir_(std::move(dir)) {}
  ~FlockSession() override {
    for (const auto& [key, fd] : fds_) {
      ::close(fd);
    }
  }

  Result<Acquired> acquire(const std::string& key, bool wait,
                           BenchClock::time_point /*give_up*/) override {
    Result<int> fd = fd_for(key);
    if (!fd) {
      return fd.error();
    }
    // Blocking flock cannot time out; the parent's hard deadline covers a stuck client.
    const int op = wait ? LOCK_EX : LOCK_EX | LOCK_NB;
    int rc = 0;
    do {
      rc = ::flock(*fd, op);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      if (errno != EWOULDBLOCK) {
        return errno_status("flock");
      }
      ++refused_;
      return Acquired::Busy;
    }
    held_ = *fd;
    return Acquired::Granted;
  }

  Status release() override {
    if (::flock(held_, LOCK_UN) != 0) {
      return errno_status("flock(LOCK_UN)");
    }
    return Status::ok();
  }

 private:
  // Each key's file is opened once per client and kept: flock(1) opens it per run, but the
  // bench measures the lock, and an open() per pair would only add a constant to flock's side.
  Result<int> fd_for(const std::string& key) {
    if (auto it = fds_.find(key); it != fds_.end()) {
      return it->second;
    }
    std::string file = key;
    std::replace(file.begin(), file.end(), '/', '_');
    const std::string path = dir_ + "/" + file + ".lock";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return errno_status("open " + path);
    }
    fds_.emplace(key, fd);
    return fd;
  }

  std::string dir_;
  std::map<std::string, int> fds_;
  int held_ = -1;
};

class FlockContender final : public Contender {
 public:
  std::string_view name() const override { return "flock"; }
  std::string_view guarantees() const override {
    return "one host; freed by the kernel when its holder dies; nothing on disk; no expiry, no "
           "fencing; waiters woken by the kernel";
  }
  Status prepare(const std::string& /*dir*/) override { return Status::ok(); }
  Result<std::unique_ptr<Session>> open(const std::string& dir, int /*client*/) override {
    return std::unique_ptr<Session>(std::make_unique<FlockSession>(dir));
  }
};

}  // namespace

std::unique_ptr<Contender> make_flock_contender() {
  return std::make_unique<FlockContender>();
}

}  // namespace aec::bench
