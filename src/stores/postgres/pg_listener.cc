#include "stores/postgres/pg_listener.h"

#include <random>

#include <fmt/format.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "stores/postgres/pg_conn.h"

namespace aec::pg {
namespace {

std::string random_id() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

}  // namespace

Listener::Listener(std::string conninfo, std::string shown, std::string channel)
    : conninfo_(std::move(conninfo)),
      shown_(std::move(shown)),
      channel_(std::move(channel)),
      id_(random_id()),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      thread_([this](std::stop_token stop) { run(stop); }) {}

Listener::~Listener() {
  thread_.request_stop();
  std::uint64_t one = 1;
  if (wake_fd_ >= 0 && ::write(wake_fd_, &one, sizeof one) < 0) {
    // The poll below also ends within its timeout.
  }
  thread_.join();
  if (wake_fd_ >= 0) {
    ::close(wake_fd_);
  }
}

Listener::Seen Listener::subscribe(const std::string& key) {
  std::lock_guard lock(mu_);
  Interest& i = keys_[key];
  ++i.waiters;
  return {i.changes, epoch_};
}

void Listener::unsubscribe(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = keys_.find(key);
  if (it != keys_.end() && --it->second.waiters == 0) {
    keys_.erase(it);
  }
}

Listener::Seen Listener::await(const std::string& key, Seen seen, std::chrono::nanoseconds nap,
                               std::stop_token stop) {
  std::unique_lock lock(mu_);
  auto now_seen = [&] { return Seen{keys_[key].changes, epoch_}; };
  cv_.wait_for(lock, stop, nap, [&] { return now_seen() != seen; });
  return now_seen();
}

bool Listener::listening() {
  std::lock_guard lock(mu_);
  return listening_;
}

std::uint64_t Listener::add_feed(Feed on_change) {
  std::lock_guard lock(feeds_mu_);
  feeds_.emplace(next_feed_, std::move(on_change));
  return next_feed_++;
}

void Listener::remove_feed(std::uint64_t id) {
  std::lock_guard lock(feeds_mu_);
  feeds_.erase(id);
}

void Listener::tell_feeds(const std::vector<std::string>& keys) {
  std::lock_guard lock(feeds_mu_);
  for (const auto& [id, feed] : feeds_) {
    for (const std::string& key : keys) {
      feed(key);
    }
  }
}

std::uint64_t Listener::watch_turn(const std::string& key, const std::string& execution_id) {
  std::lock_guard lock(mu_);
  Turn& t = turns_[key + '\x1f' + execution_id];
  ++t.waiters;
  return t.named;
}

void Listener::drop_turn(const std::string& key, const std::string& execution_id) {
  std::lock_guard lock(mu_);
  auto it = turns_.find(key + '\x1f' + execution_id);
  if (it != turns_.end() && --it->second.waiters == 0) {
    turns_.erase(it);
  }
}

std::uint64_t Listener::await_turn(const std::string& key, const std::string& execution_id,
                                   std::uint64_t seen, std::chrono::nanoseconds nap,
                                   std::stop_token stop) {
  std::unique_lock lock(mu_);
  std::string id = key + '\x1f' + execution_id;
  cv_.wait_for(lock, stop, nap, [&] { return turns_[id].named != seen; });
  return turns_[id].named;
}

void Listener::refresh(Conn& conn) {
  std::vector<std::string> keys;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, interest] : keys_) {
      keys.push_back(key);
    }
    for (const auto& [id, turn] : turns_) {
      keys.push_back(id.substr(0, id.find('\x1f')));
    }
  }
  {
    std::lock_guard lock(feeds_mu_);
    if (!feeds_.empty()) {
      keys.emplace_back();
    }
  }
  Statement listen{nullptr, fmt::format("SELECT {}.listen($1, $2, $3)", channel_), 3, true};
  for (const std::string& key : keys) {
    std::vector<std::optional<std::string>> params = {key, id_,
                                                      std::to_string(kRegistration.count())};
    (void)conn.exec(listen, params, false, milliseconds(5000));  // the next round tries again
  }
}

void Listener::set_listening(bool on) {
  std::lock_guard lock(mu_);
  listening_ = on;
  ++epoch_;  // either way every waiter reads the version again
  for (auto& [id, turn] : turns_) {
    ++turn.named;  // and every parked acquire asks again
  }
  cv_.notify_all();
}

void Listener::run(std::stop_token stop) {
  auto backoff = std::chrono::milliseconds(50);
  while (!stop.stop_requested()) {
    listen_once(stop);
    if (stop.stop_requested()) {
      return;
    }
    // The server is away: try again, backing off to a second.
    pollfd p{.fd = wake_fd_, .events = POLLIN, .revents = 0};
    ::poll(&p, 1, static_cast<int>(backoff.count()));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

void Listener::listen_once(std::stop_token stop) {
  Result<std::unique_ptr<Conn>> conn = Conn::open(conninfo_, shown_, milliseconds(5000));
  if (!conn) {
    return;
  }
  if (!(*conn)->exec_text("LISTEN " + channel_, milliseconds(5000))) {
    return;
  }
  set_listening(true);
  tell_feeds({""});  // whatever happened while not listening
  PGconn* raw = (*conn)->raw();
  auto refreshed = std::chrono::steady_clock::time_point();
  while (!stop.stop_requested()) {
    if (std::chrono::steady_clock::now() - refreshed > kRegistration / 3) {
      refresh(**conn);
      refreshed = std::chrono::steady_clock::now();
    }
    pollfd fds[2] = {{.fd = (*conn)->socket(), .events = POLLIN, .revents = 0},
                     {.fd = wake_fd_, .events = POLLIN, .revents = 0}};
    // A bounded poll: a server that vanished without closing the socket is noticed by the
    // TCP keepalives libpq sets (Conn::open).
    if (::poll(fds, 2, 1000) < 0 && errno != EINTR) {
      break;
    }
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
      continue;
    }
    if (PQconsumeInput(raw) == 0 || PQstatus(raw) != CONNECTION_OK) {
      break;
    }
    // Each payload is KEY, then the execution ids whose turn has come (granted a lease a release
    // handed over, or first in the key's line), each after a unit separator.
    std::vector<std::string> changed;
    std::vector<std::string> firsts;  // KEY \x1f EXECUTION_ID
    while (PGnotify* n = PQnotifies(raw)) {
      std::string_view payload = n->extra;
      std::size_t sep = payload.find('\x1f');
      std::string_view key = payload.substr(0, sep);
      changed.emplace_back(key);
      while (sep != std::string_view::npos) {
        std::size_t next = payload.find('\x1f', sep + 1);
        std::string_view id = payload.substr(sep + 1, next - sep - 1);
        if (!id.empty()) {
          firsts.push_back(std::string(key) + '\x1f' + std::string(id));
        }
        sep = next;
      }
      PQfreemem(n);
    }
    {
      std::lock_guard lock(mu_);
      bool woke = false;
      for (const std::string& key : changed) {
        auto it = keys_.find(key);
        if (it != keys_.end()) {
          ++it->second.changes;
          woke = true;
        }
      }
      for (const std::string& first : firsts) {
        auto it = turns_.find(first);
        if (it != turns_.end()) {
          ++it->second.named;
          woke = true;
        }
      }
      if (woke) {
        cv_.notify_all();
      }
    }
    tell_feeds(changed);
  }
  set_listening(false);
}

}  // namespace aec::pg
