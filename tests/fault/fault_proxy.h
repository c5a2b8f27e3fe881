// A userspace TCP proxy that injects network faults between a client and one target, for the
// reliability suite: the client connects to 127.0.0.1:port() instead of the target, and a test
// switches the proxy between passing bytes, holding them (a partition that heals), delaying
// them, resetting connections and leaving them half open.
//
// One thread runs a poll loop over non-blocking sockets; every accepted connection gets its own
// connection to the target. The only randomness is the jitter of delay(), drawn from a
// std::mt19937_64 seeded per direction of each connection from (seed, connection number,
// direction), so a seed gives the same sequence of delays on every run (how the kernel cuts the
// byte stream into chunks is the kernel's).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include <aec/status.h>

namespace aec::fault {

class FaultProxy {
 public:
  // Resolves the target, listens on 127.0.0.1 on an ephemeral port and starts the proxy thread,
  // in pass mode. InvalidArgument for a port outside 1..65535, Unavailable when the host does not
  // resolve, Internal when a socket cannot be set up. Nothing connects to the target until a
  // client connects to the proxy.
  static Result<std::unique_ptr<FaultProxy>> start(std::string target_host, int target_port);

  // Stops the thread and closes every socket (the listener and both sides of each connection).
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // The port the proxy listens on (127.0.0.1).
  int port() const { return port_; }

  // The modes. Each call may come from any thread at any time; the proxy applies every call in
  // the order made (a reset() followed at once by pass() still resets), and each takes effect
  // for the bytes the proxy reads after the call returns.

  // Forwards bytes both ways as they arrive. Heals blackhole() (the held bytes, and a held EOF,
  // are delivered in order) and ends delay(), reset() and half_open() for new connections;
  // connections already half open stay dead.
  void pass();
  // A partition: nothing is forwarded in either direction and no connection is closed. Bytes the
  // proxy reads are held (up to 1 MiB a direction, then the kernel buffers and the sender wait);
  // new connections are accepted and reach the target only when healed by pass() or delay().
  void blackhole();
  // Each chunk read from either side is forwarded base ± uniform(jitter) after it was read
  // (never before the chunk before it in the same direction, so byte order holds). Negative
  // durations count as zero.
  void delay(std::chrono::milliseconds base, std::chrono::milliseconds jitter, std::uint64_t seed);
  // Closes both sides of every connection with a RST (SO_LINGER {1, 0}) and resets each new one
  // at once, until the next mode call.
  void reset();
  // Closes the target side of every connection (the target reads EOF) and keeps the client side
  // open and silent: the client's bytes are read and dropped, nothing comes back. New connections
  // are treated alike until the next mode call; half-open connections never recover.
  void half_open();

  // Counters for tests and reports, readable from any thread.
  std::uint64_t connections_accepted() const;
  // Bytes written to either side, both directions together.
  std::uint64_t bytes_forwarded() const;

 private:
  class Engine;  // the sockets, the connections and the poll loop (fault_proxy.cc)

  FaultProxy(std::unique_ptr<Engine> engine, int port);

  std::unique_ptr<Engine> engine_;
  int port_;
  std::thread thread_;  // runs engine_'s loop; joined before engine_ is destroyed
};

}  // namespace aec::fault
