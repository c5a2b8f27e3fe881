// The physical floors: what any lock service on this machine pays at least, timed by the same
// clients as the contenders. They exclude nobody, so they run on distinct keys only.
//   floor-loopback   one TCP round trip over 127.0.0.1 per acquire and per release (a 1-byte
//                    echo, TCP_NODELAY, a server thread per client): the floor of a lock service
//                    in another process, two round trips per pair;
//   floor-fdatasync  one pwrite + fdatasync of 64 bytes to the client's own file per acquire and
//                    per release: the floor of a service that flushes each change to this disk
//                    before answering it (group commit can share a flush between clients; this
//                    floor does not).
#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "contender.h"

namespace aec::bench {
namespace {

Status errno_status(std::string_view what) {
  return unavailable(fmt::format("{}: {}", what, std::strerror(errno)));
}

// Sends or receives exactly one byte, retrying on EINTR.
bool one_byte(int fd, bool send) {
  char byte = 'x';
  for (;;) {
    const ssize_t n = send ? ::write(fd, &byte, 1) : ::read(fd, &byte, 1);
    if (n == 1) {
      return true;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    return false;
  }
}

void no_delay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// The echo server's process: a thread per connection echoes each byte back until EOF.
[[noreturn]] void echo_server(const std::string& dir) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 1024) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::fprintf(stderr, "floor-loopback: %s\n", std::strerror(errno));
    ::_exit(1);
  }
  ::signal(SIGTERM, SIG_DFL);
  publish_port(dir, ntohs(addr.sin_port));
  for (;;) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    no_delay(fd);
    std::thread([fd] {
      while (one_byte(fd, false) && one_byte(fd, true)) {
      }
      ::close(fd);
    }).detach();
  }
}

class LoopbackSession final : public Session {
 public:
  explicit LoopbackSession(int fd) : fd_(fd) {}
  ~LoopbackSession() override { ::close(fd_); }

  Result<Acquired> acquire(const std::string& /*key*/, bool /*wait*/,
                           BenchClock::time_point /*give_up*/) override {
    if (Status s = round_trip(); !s.is_ok()) {
      return s;
    }
    return Acquired::Granted;
  }

  Status release() override { return round_trip(); }

 private:
  Status round_trip() {
    return one_byte(fd_, true) && one_byte(fd_, false) ? Status::ok()
                                                       : errno_status("floor-loopback echo");
  }

  int fd_;
};

class LoopbackContender final : public Contender {
 public:
  std::string_view name() const override { return "floor-loopback"; }
  std::string_view guarantees() const override {
    return "a floor, not a lock: one loopback TCP round trip per operation";
  }
  bool is_lock() const override { return false; }

  Status prepare(const std::string& dir) override {
    return server_.start(dir, &echo_server, "floor-loopback");
  }

  Result<std::unique_ptr<Session>> open(const std::string& dir, int /*client*/) override {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(published_port(dir)));
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      Status s = errno_status("floor-loopback: connect");
      if (fd >= 0) {
        ::close(fd);
      }
      return s;
    }
    no_delay(fd);
    return std::unique_ptr<Session>(std::make_unique<LoopbackSession>(fd));
  }

 private:
  ServerProcess server_;
};

class FdatasyncSession final : public Session {
 public:
  explicit FdatasyncSession(int fd) : fd_(fd) {}
  ~FdatasyncSession() override { ::close(fd_); }

  Result<Acquired> acquire(const std::string& /*key*/, bool /*wait*/,
                           BenchClock::time_point /*give_up*/) override {
    if (Status s = flush(); !s.is_ok()) {
      return s;
    }
    return Acquired::Granted;
  }

  Status release() override { return flush(); }

 private:
  // Rewrites the same 64 bytes (a record of its count), flushed: the file's size never changes,
  // so fdatasync has only the data to write, as a database's preallocated log would.
  Status flush() {
    char record[64] = {};
    std::snprintf(record, sizeof record, "%lld", static_cast<long long>(++writes_));
    if (::pwrite(fd_, record, sizeof record, 0) != static_cast<ssize_t>(sizeof record)) {
      return errno_status("floor-fdatasync: pwrite");
    }
    return ::fdatasync(fd_) == 0 ? Status::ok() : errno_status("floor-fdatasync: fdatasync");
  }

  int fd_;
  std::int64_t writes_ = 0;
};

class FdatasyncContender final : public Contender {
 public:
  std::string_view name() const override { return "floor-fdatasync"; }
  std::string_view guarantees() const override {
    return "a floor, not a lock: one pwrite + fdatasync per operation, no group commit";
  }
  bool is_lock() const override { return false; }
  Status prepare(const std::string& /*dir*/) override { return Status::ok(); }

  Result<std::unique_ptr<Session>> open(const std::string& dir, int client) override {
    const std::string path = fmt::format("{}/floor-{}.dat", dir, client);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return errno_status("floor-fdatasync: open " + path);
    }
    return std::unique_ptr<Session>(std::make_unique<FdatasyncSession>(fd));
  }
};

}  // namespace

std::unique_ptr<Contender> make_floor_loopback_contender() {
  return std::make_unique<LoopbackContender>();
}

std::unique_ptr<Contender> make_floor_fdatasync_contender() {
  return std::make_unique<FdatasyncContender>();
}

}  // namespace aec::bench
