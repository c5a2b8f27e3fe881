#include "tests/fault/fenced_sink.h"

#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace aec::fault {

struct FencedSink::Conn {
  int fd = -1;
  std::string buffer;
  bool greeted = false;
  Event hello;  // key, token, pid, client of the child on this connection
};

FencedSink::FencedSink(History& history) : history_(history) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      listen(listen_fd_, 128) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      pipe2(wake_, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("fenced sink: cannot listen: ") + std::strerror(errno));
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { serve(); });
}

FencedSink::~FencedSink() {
  (void)!write(wake_[1], "x", 1);
  thread_.join();
  close(listen_fd_);
  close(wake_[0]);
  close(wake_[1]);
}

void FencedSink::record(Event e) {
  {
    std::lock_guard lock(mu_);
    if (e.kind == EventKind::Start) {
      starts_.push_back(e);
    } else if (e.kind == EventKind::End) {
      ends_.push_back(e);
    } else if (e.kind == EventKind::Accept || e.kind == EventKind::Reject) {
      last_write_[e.pid] = e;
    }
  }
  changed_.notify_all();
  history_.add(std::move(e));
}

void FencedSink::serve() {
  std::vector<std::unique_ptr<Conn>> conns;
  for (;;) {
    std::vector<pollfd> fds = {{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    for (const auto& c : conns) {
      fds.push_back({c->fd, POLLIN, 0});
    }
    if (poll(fds.data(), fds.size(), -1) < 0) {
      continue;  // EINTR
    }
    if (fds[0].revents != 0) {
      break;
    }
    if ((fds[1].revents & POLLIN) != 0) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        auto c = std::make_unique<Conn>();
        c->fd = fd;
        conns.push_back(std::move(c));
      }
    }
    for (std::size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) {
        continue;
      }
      Conn& c = *conns[i - 2];
      char buf[4096];
      ssize_t n = read(c.fd, buf, sizeof buf);
      if (n > 0) {
        c.buffer.append(buf, static_cast<std::size_t>(n));
        for (std::size_t nl; (nl = c.buffer.find('\n')) != std::string::npos;) {
          std::string line = c.buffer.substr(0, nl);
          c.buffer.erase(0, nl + 1);
          on_line(c, line);
        }
        continue;
      }
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        continue;
      }
      // EOF or a reset: the child is gone (a killed process's sockets close as it dies).
      if (c.greeted) {
        Event end = c.hello;
        end.kind = EventKind::End;
        end.t = boot_ns();
        record(std::move(end));
      }
      close(c.fd);
      c.fd = -1;
    }
    std::erase_if(conns, [](const auto& c) { return c->fd < 0; });
  }
  for (const auto& c : conns) {
    close(c->fd);
  }
}

void FencedSink::on_line(Conn& c, const std::string& line) {
  std::istringstream in(line);
  std::string verb;
  in >> verb;
  std::string reply = "ok\n";
  if (verb == "hello" && !c.greeted) {
    Event e;
    in >> e.key >> e.token >> e.pid >> e.client;
    e.t = boot_ns();
    e.kind = EventKind::Start;
    c.greeted = static_cast<bool>(in);
    c.hello = e;
    if (c.greeted) {
      record(std::move(e));
    } else {
      reply = "error bad hello\n";
    }
  } else if (verb == "write" && c.greeted) {
    Event e = c.hello;
    in >> e.value;  // the write's sequence number
    e.t = boot_ns();
    {
      std::lock_guard lock(mu_);
      std::int64_t& highest = highest_[e.key];
      if (e.token >= highest) {
        highest = e.token;
        e.kind = EventKind::Accept;
        ++accepted_;
      } else {
        e.kind = EventKind::Reject;
        reply = "reject " + std::to_string(highest) + "\n";
        ++rejected_;
      }
    }
    record(std::move(e));
  } else {
    reply = "error unknown or out-of-order line\n";
  }
  // The reply is small and the child reads it before its next line: a blocking send is fine.
  (void)!send(c.fd, reply.data(), reply.size(), MSG_NOSIGNAL);
}

std::optional<Event> FencedSink::wait_start(int client, std::int64_t after,
                                            std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  std::optional<Event> found;
  changed_.wait_for(lock, timeout, [&] {
    for (const Event& e : starts_) {
      if (e.client == client && e.token > after) {
        found = e;
        return true;
      }
    }
    return false;
  });
  return found;
}

std::optional<Event> FencedSink::latest_start(int client) const {
  std::lock_guard lock(mu_);
  for (auto it = starts_.rbegin(); it != starts_.rend(); ++it) {
    if (it->client == client) {
      return *it;
    }
  }
  return std::nullopt;
}

std::optional<Event> FencedSink::wait_end(int pid, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  std::optional<Event> found;
  changed_.wait_for(lock, timeout, [&] {
    for (const Event& e : ends_) {
      if (e.pid == pid) {
        found = e;
        return true;
      }
    }
    return false;
  });
  return found;
}

std::optional<Event> FencedSink::wait_write(int pid, std::int64_t after_t,
                                            std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  std::optional<Event> found;
  changed_.wait_for(lock, timeout, [&] {
    auto it = last_write_.find(pid);
    if (it != last_write_.end() && it->second.t > after_t) {
      found = it->second;
      return true;
    }
    return false;
  });
  return found;
}

std::int64_t FencedSink::accepted() const {
  std::lock_guard lock(mu_);
  return accepted_;
}

std::int64_t FencedSink::rejected() const {
  std::lock_guard lock(mu_);
  return rejected_;
}

}  // namespace aec::fault
