// The proxy's poll loop. One thread owns every socket and every connection; the mode calls only
// queue a request and wake the loop through an eventfd, so the loop is the one place that decides
// what happens to each byte and no connection state needs a lock.
#include "tests/fault/fault_proxy.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/text.h"
#include "core/unique_fd.h"

namespace aec::fault {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr std::size_t kReadSize = std::size_t{64} * 1024;
// Reading from a side stops while this many of its bytes wait to be written: a blackhole or a
// long delay holds at most this much here, the rest waits in the kernel's buffers and then in
// the sender, as it would behind a slow link.
constexpr std::size_t kMaxHeld = std::size_t{1024} * 1024;

bool would_block() {
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

// Closes a connection with a RST instead of a FIN: with SO_LINGER {1, 0}, close() drops what
// is unsent and aborts the connection, so the peer's next read fails with ECONNRESET.
void close_with_rst(UniqueFd& fd) {
  if (fd.get() >= 0) {
    const linger abort_on_close{1, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
    fd.reset();
  }
}

enum class Mode { Pass, Blackhole, Delay, Reset, HalfOpen };

struct Settings {
  Mode mode = Mode::Pass;
  std::chrono::milliseconds base{0};
  std::chrono::milliseconds jitter{0};
  std::uint64_t seed = 0;
};

struct Chunk {
  std::string bytes;
  std::size_t sent = 0;
  SteadyClock::time_point due;
};

// One direction of a connection: what was read from one side and waits to be written to the
// other, in order.
struct Flow {
  std::deque<Chunk> chunks;
  std::size_t held = 0;  // bytes read and not yet written
  bool eof = false;      // the sending side closed its half
  bool shut = false;     // ... and that EOF was passed on (shutdown(SHUT_WR))
  SteadyClock::time_point last_due;
  std::mt19937_64 rng;
};

enum class State {
  Waiting,     // accepted during a blackhole: reaches the target once healed
  Connecting,  // a non-blocking connect to the target is under way
  Open,        // both sides connected
  HalfOpen,    // the target side is closed for good; the client's bytes are dropped
};

struct Connection {
  std::uint64_t number = 0;  // in order of acceptance; seeds the connection's delays
  State state = State::Waiting;
  UniqueFd client;
  UniqueFd upstream;
  Flow up;              // client to target
  Flow down;            // target to client
  bool closed = false;  // done or failed; removed at the end of the loop's pass
};

struct Target {
  sockaddr_storage address{};
  socklen_t length = 0;
};

void set_no_delay(int fd) {
  // Each chunk is forwarded as it was read; Nagle's algorithm would add its own delay.
  const int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

Result<Target> resolve(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0) {
    return unavailable(fmt::format("fault proxy: cannot resolve '{}': {}", host, gai_strerror(rc)));
  }
  Target target;
  std::memcpy(&target.address, found->ai_addr, found->ai_addrlen);
  target.length = found->ai_addrlen;
  ::freeaddrinfo(found);
  return target;
}

// A non-blocking listener on 127.0.0.1 and the ephemeral port it got.
Result<std::pair<UniqueFd, int>> listen_on_loopback() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  auto* raw = reinterpret_cast<sockaddr*>(&address);
  if (fd.get() < 0 || ::bind(fd.get(), raw, length) != 0 || ::listen(fd.get(), SOMAXCONN) != 0 ||
      ::getsockname(fd.get(), raw, &length) != 0) {
    return internal_error("fault proxy: cannot listen on 127.0.0.1: " + errno_text(errno));
  }
  return std::pair(std::move(fd), static_cast<int>(ntohs(address.sin_port)));
}

}  // namespace

class FaultProxy::Engine {
 public:
  Engine(UniqueFd listener, UniqueFd wake, Target target)
      : listener_(std::move(listener)), wake_(std::move(wake)), target_(target) {}

  // The loop, on the proxy thread, until stop().
  void run();
  // Both callable from any thread.
  void request(Settings settings) {
    {
      std::lock_guard lock(mu_);
      requests_.push_back(settings);
    }
    wake();
  }
  void stop() {
    stopping_ = true;
    wake();
  }

  std::uint64_t accepted() const { return accepted_.load(); }
  std::uint64_t forwarded() const { return forwarded_.load(); }

 private:
  void wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_.get(), &one, sizeof one);
  }
  short events(const Connection& c, bool client, SteadyClock::time_point now) const;
  bool wants_write(const Connection& c, const Flow& flow, SteadyClock::time_point now) const;
  int timeout_ms(SteadyClock::time_point now) const;
  void apply_requests();
  void apply(const Settings& settings);
  void enter_mode(Connection& c);
  void accept_all();
  void connect_upstream(Connection& c);
  void finish_connect(Connection& c);
  void handle(Connection& c, short client_revents, short upstream_revents);
  void read_into(Connection& c, bool from_client);
  void pump(Connection& c);
  bool write_out(Flow& flow, int fd);
  void seed(Connection& c) const;

  static void abort_connection(Connection& c) {
    close_with_rst(c.client);
    close_with_rst(c.upstream);
    c.closed = true;
  }

  UniqueFd listener_;
  UniqueFd wake_;
  const Target target_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> forwarded_{0};
  std::mutex mu_;
  std::vector<Settings> requests_;  // guarded by mu_; every one is applied, in order
  // The rest belongs to the loop's thread.
  Settings settings_;
  std::list<Connection> connections_;
  std::uint64_t next_number_ = 0;
  std::vector<char> buffer_ = std::vector<char>(kReadSize);
};

void FaultProxy::Engine::run() {
  std::vector<pollfd> fds;
  while (!stopping_) {
    const auto now = SteadyClock::now();
    fds.assign({{wake_.get(), POLLIN, 0}, {listener_.get(), POLLIN, 0}});
    for (const Connection& c : connections_) {
      // A side with nothing to wait for is left out (fd -1): poll reports a hang-up even when
      // not asked, which would spin the loop until the side is wanted again.
      const short ce = events(c, /*client=*/true, now);
      const short ue = events(c, /*client=*/false, now);
      fds.push_back({ce != 0 ? c.client.get() : -1, ce, 0});
      fds.push_back({ue != 0 ? c.upstream.get() : -1, ue, 0});
    }
    if (::poll(fds.data(), fds.size(), timeout_ms(now)) < 0 && errno != EINTR) {
      std::abort();  // poll fails otherwise only on bad arguments: a bug here
    }
    if ((fds[0].revents & POLLIN) != 0) {
      std::uint64_t count = 0;
      [[maybe_unused]] const ssize_t n = ::read(wake_.get(), &count, sizeof count);
    }
    apply_requests();  // a mode change alone, with no byte to carry, must act too
    std::size_t i = 2;
    for (auto it = connections_.begin(); i < fds.size(); ++it, i += 2) {
      handle(*it, fds[i].revents, fds[i + 1].revents);
    }
    if ((fds[1].revents & POLLIN) != 0) {
      accept_all();
    }
    apply_requests();  // a blackhole() that returned must stop even bytes read before it
    for (Connection& c : connections_) {
      pump(c);
    }
    std::erase_if(connections_, [](const Connection& c) { return c.closed; });
  }
}

bool FaultProxy::Engine::wants_write(const Connection& c, const Flow& flow,
                                     SteadyClock::time_point now) const {
  return c.state == State::Open && settings_.mode != Mode::Blackhole && !flow.chunks.empty() &&
         flow.chunks.front().due <= now;
}

// What to poll a side for: reading while its flow has room, writing while bytes for it are due.
short FaultProxy::Engine::events(const Connection& c, bool client,
                                 SteadyClock::time_point now) const {
  if (c.closed || (!client && (c.state == State::Waiting || c.state == State::HalfOpen))) {
    return 0;
  }
  if (!client && c.state == State::Connecting) {
    return POLLOUT;
  }
  const Flow& in = client ? c.up : c.down;
  const bool read = !in.eof && in.held < kMaxHeld;
  return static_cast<short>((read ? POLLIN : 0) |
                            (wants_write(c, client ? c.down : c.up, now) ? POLLOUT : 0));
}

// Until the first held chunk falls due; forever when nothing is pending or all is held.
int FaultProxy::Engine::timeout_ms(SteadyClock::time_point now) const {
  if (settings_.mode == Mode::Blackhole) {
    return -1;
  }
  auto next = SteadyClock::time_point::max();
  for (const Connection& c : connections_) {
    for (const Flow* flow : {&c.up, &c.down}) {
      if (!flow->chunks.empty() && flow->chunks.front().due > now) {
        next = std::min(next, flow->chunks.front().due);
      }
    }
  }
  if (next == SteadyClock::time_point::max()) {
    return -1;
  }
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(next - now).count());
}

void FaultProxy::Engine::apply_requests() {
  std::vector<Settings> requests;
  {
    std::lock_guard lock(mu_);
    requests.swap(requests_);
  }
  for (const Settings& settings : requests) {
    apply(settings);
  }
}

void FaultProxy::Engine::apply(const Settings& settings) {
  settings_ = settings;
  for (Connection& c : connections_) {
    if (!c.closed) {
      if (settings.mode == Mode::Delay) {
        seed(c);  // each delay() restarts every connection's sequence of delays from its seed
      }
      enter_mode(c);
    }
  }
}

// Brings one connection, new (Waiting) or not, into the current mode.
void FaultProxy::Engine::enter_mode(Connection& c) {
  switch (settings_.mode) {
    case Mode::Pass:
    case Mode::Delay:
      if (c.state == State::Waiting) {
        connect_upstream(c);
      }
      break;
    case Mode::Blackhole:
      break;  // nothing is written while it lasts; a new connection waits for the heal
    case Mode::Reset:
      abort_connection(c);
      break;
    case Mode::HalfOpen:
      if (c.state != State::HalfOpen) {
        // What was in flight is lost with the link; the target reads EOF.
        c.upstream.reset();
        c.up = Flow{};
        c.down = Flow{};
        c.state = State::HalfOpen;
      }
      break;
  }
}

void FaultProxy::Engine::accept_all() {
  while (true) {
    const int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == ECONNABORTED || errno == EINTR) {
        continue;
      }
      return;  // EAGAIN: all accepted
    }
    ++accepted_;
    apply_requests();  // see read_into: a mode set before this connection arrived governs it
    Connection& c = connections_.emplace_back();
    c.number = next_number_++;
    c.client = UniqueFd(fd);
    set_no_delay(fd);
    seed(c);
    enter_mode(c);
  }
}

void FaultProxy::Engine::connect_upstream(Connection& c) {
  c.upstream =
      UniqueFd(::socket(target_.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (c.upstream.get() >= 0) {
    set_no_delay(c.upstream.get());
    const auto* address = reinterpret_cast<const sockaddr*>(&target_.address);
    if (::connect(c.upstream.get(), address, target_.length) == 0) {
      c.state = State::Open;
      return;
    }
    if (errno == EINPROGRESS) {
      c.state = State::Connecting;
      return;
    }
  }
  // The target refused or is unreachable: a reset is the nearest a proxy that already accepted
  // the client can come to passing the refusal on.
  abort_connection(c);
}

void FaultProxy::Engine::finish_connect(Connection& c) {
  int error = 0;
  socklen_t length = sizeof error;
  if (::getsockopt(c.upstream.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) {
    abort_connection(c);
    return;
  }
  c.state = State::Open;
}

void FaultProxy::Engine::handle(Connection& c, short client_revents, short upstream_revents) {
  constexpr short kReadable = POLLIN | POLLHUP | POLLERR;
  if (c.closed) {
    return;
  }
  if (c.state == State::Connecting && upstream_revents != 0) {
    finish_connect(c);
  }
  // A mode applied since the poll may have changed what is wanted: ask again.
  const auto now = SteadyClock::now();
  if ((client_revents & kReadable) != 0 && (events(c, true, now) & POLLIN) != 0) {
    read_into(c, /*from_client=*/true);
  }
  if ((upstream_revents & kReadable) != 0 && (events(c, false, now) & POLLIN) != 0) {
    read_into(c, /*from_client=*/false);
  }
}

void FaultProxy::Engine::read_into(Connection& c, bool from_client) {
  Flow& flow = from_client ? c.up : c.down;
  const ssize_t n =
      ::recv(from_client ? c.client.get() : c.upstream.get(), buffer_.data(), buffer_.size(), 0);
  // The poll may have returned, and the last requests been applied, before a mode call whose
  // caller then sent these bytes: applying what is queued now, after they arrived, is what makes
  // every mode govern all the bytes sent after the call returned.
  apply_requests();
  if (c.closed || (!from_client && c.state == State::HalfOpen)) {
    return;  // the bytes (or the error) went down with the link
  }
  if (n < 0) {
    if (!would_block()) {
      abort_connection(c);  // one side was reset: pass the reset on to the other
    }
    return;
  }
  if (n == 0) {
    flow.eof = true;
    return;
  }
  if (c.state == State::HalfOpen) {
    return;  // heard and dropped: nothing on the other side to send it to
  }
  // Each direction draws its own delays, so the sequence a seed gives a direction does not
  // depend on how reads of the two directions interleave.
  auto due = SteadyClock::now();
  if (settings_.mode == Mode::Delay) {
    const std::int64_t jitter = settings_.jitter.count();
    std::uniform_int_distribution<std::int64_t> draw(-jitter, jitter);
    due += std::max(std::chrono::milliseconds(0),
                    settings_.base + std::chrono::milliseconds(draw(flow.rng)));
  }
  // Never before the chunk ahead of it: a jittered delay must not reorder the byte stream.
  flow.last_due = std::max(due, flow.last_due);
  flow.chunks.push_back(
      {std::string(buffer_.data(), static_cast<std::size_t>(n)), 0, flow.last_due});
  flow.held += static_cast<std::size_t>(n);
}

void FaultProxy::Engine::pump(Connection& c) {
  if (c.closed) {
    return;
  }
  if (c.state == State::HalfOpen) {
    if (c.up.eof) {
      c.client.reset();  // the client gave up on the silent connection
      c.closed = true;
    }
    return;
  }
  if (c.state != State::Open || settings_.mode == Mode::Blackhole) {
    return;
  }
  if (!write_out(c.up, c.upstream.get()) || !write_out(c.down, c.client.get())) {
    abort_connection(c);
    return;
  }
  if (c.up.shut && c.down.shut) {
    c.client.reset();
    c.upstream.reset();
    c.closed = true;
  }
}

// Writes the chunks that are due, then passes on an EOF once nothing is left. False when the
// receiving side is gone.
bool FaultProxy::Engine::write_out(Flow& flow, int fd) {
  const auto now = SteadyClock::now();
  while (!flow.chunks.empty() && flow.chunks.front().due <= now) {
    Chunk& chunk = flow.chunks.front();
    const ssize_t n =
        ::send(fd, chunk.bytes.data() + chunk.sent, chunk.bytes.size() - chunk.sent, MSG_NOSIGNAL);
    if (n < 0) {
      return would_block();
    }
    chunk.sent += static_cast<std::size_t>(n);
    flow.held -= static_cast<std::size_t>(n);
    forwarded_ += static_cast<std::uint64_t>(n);
    if (chunk.sent == chunk.bytes.size()) {
      flow.chunks.pop_front();
    }
  }
  if (flow.chunks.empty() && flow.eof && !flow.shut) {
    ::shutdown(fd, SHUT_WR);
    flow.shut = true;
  }
  return true;
}

void FaultProxy::Engine::seed(Connection& c) const {
  const auto low = [](std::uint64_t v) { return static_cast<std::uint32_t>(v); };
  const auto high = [](std::uint64_t v) { return static_cast<std::uint32_t>(v >> 32); };
  const std::uint64_t s = settings_.seed;
  std::seed_seq up{low(s), high(s), low(c.number), high(c.number), 0U};
  std::seed_seq down{low(s), high(s), low(c.number), high(c.number), 1U};
  c.up.rng.seed(up);
  c.down.rng.seed(down);
}

Result<std::unique_ptr<FaultProxy>> FaultProxy::start(std::string target_host, int target_port) {
  if (target_port < 1 || target_port > 65535) {
    return invalid_argument(
        fmt::format("fault proxy: target port {} is not in 1..65535", target_port));
  }
  Result<Target> target = resolve(target_host, target_port);
  if (!target) {
    return target.error();
  }
  Result<std::pair<UniqueFd, int>> listener = listen_on_loopback();
  if (!listener) {
    return listener.error();
  }
  UniqueFd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (wake.get() < 0) {
    return internal_error("fault proxy: eventfd failed: " + errno_text(errno));
  }
  const int port = listener->second;
  auto engine = std::make_unique<Engine>(std::move(listener->first), std::move(wake), *target);
  return std::unique_ptr<FaultProxy>(new FaultProxy(std::move(engine), port));
}

FaultProxy::FaultProxy(std::unique_ptr<Engine> engine, int port)
    : engine_(std::move(engine)), port_(port), thread_([this] { engine_->run(); }) {}

FaultProxy::~FaultProxy() {
  engine_->stop();
  thread_.join();
}

void FaultProxy::pass() {
  engine_->request({.mode = Mode::Pass});
}

void FaultProxy::blackhole() {
  engine_->request({.mode = Mode::Blackhole});
}

void FaultProxy::delay(std::chrono::milliseconds base, std::chrono::milliseconds jitter,
                       std::uint64_t seed) {
  const std::chrono::milliseconds zero(0);
  engine_->request({.mode = Mode::Delay,
                    .base = std::max(base, zero),
                    .jitter = std::max(jitter, zero),
                    .seed = seed});
}

void FaultProxy::reset() {
  engine_->request({.mode = Mode::Reset});
}

void FaultProxy::half_open() {
  engine_->request({.mode = Mode::HalfOpen});
}

std::uint64_t FaultProxy::connections_accepted() const {
  return engine_->accepted();
}

std::uint64_t FaultProxy::bytes_forwarded() const {
  return engine_->forwarded();
}

}  // namespace aec::fault
