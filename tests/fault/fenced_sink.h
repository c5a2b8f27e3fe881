// The fenced sink (B.1 of RELIABILITY.md): a resource on 127.0.0.1 that checks fencing tokens.
// It keeps, per key, the highest token it has accepted, accepts a write only with a token at
// least that high, and records every accept and reject, every child's hello (Start) and every
// closed connection (End: the child exited or was killed; the kernel closes a dead process's
// sockets, so End is the moment it died) in the run's History.
//
// The protocol, one line each way (fault_child.cc speaks it):
//   hello KEY TOKEN PID CLIENT  ->  ok
//   write SEQ                   ->  ok | reject HIGHEST
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "tests/fault/history.h"

namespace aec::fault {

class FencedSink {
 public:
  // Listens on 127.0.0.1 (a free port) and serves on its own thread until destroyed. Throws
  // std::runtime_error when it cannot listen.
  explicit FencedSink(History& history);
  ~FencedSink();
  FencedSink(const FencedSink&) = delete;
  FencedSink& operator=(const FencedSink&) = delete;

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // The Start of the child of runner `client` with a token above `after`, once its hello
  // arrives; nullopt if none arrives within `timeout`.
  std::optional<Event> wait_start(int client, std::int64_t after,
                                  std::chrono::milliseconds timeout);
  // The latest Start of a child of runner `client`, if any.
  std::optional<Event> latest_start(int client) const;
  // The End of the child with pid `pid` (its connection closed); nullopt after `timeout`.
  std::optional<Event> wait_end(int pid, std::chrono::milliseconds timeout);
  // A write (Accept or Reject) of the child with pid `pid` made after `after_t` (boot ns): the
  // latest, once there is one; nullopt if none arrives within `timeout`.
  std::optional<Event> wait_write(int pid, std::int64_t after_t, std::chrono::milliseconds timeout);

  std::int64_t accepted() const;
  std::int64_t rejected() const;

 private:
  struct Conn;
  void serve();
  void on_line(Conn& c, const std::string& line);
  void record(Event e);

  History& history_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  int port_ = 0;
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, std::int64_t> highest_;  // key -> highest accepted token
  std::vector<Event> starts_;
  std::vector<Event> ends_;
  std::map<int, Event> last_write_;  // pid -> its latest write
  std::int64_t accepted_ = 0;
  std::int64_t rejected_ = 0;
};

}  // namespace aec::fault
