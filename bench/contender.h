// The lock services aec-bench compares, behind one small interface so the client loop is the
// same for all of them.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <aec/status.h>
#include <aec/store.h>

namespace aec::bench {

using BenchClock = std::chrono::steady_clock;

enum class Acquired {
  Granted,  // the client holds the key
  Busy,     // not granted: another client holds it (or, when waiting, `give_up` passed)
};

// One client's connection to a lock service. Opened in the client process, used by one thread.
class Session {
 public:
  virtual ~Session() = default;

  // Takes `key`. With `wait`, blocks until granted, retrying the way the service's users would,
  // or until `give_up` passes (then Busy; a contender that cannot time out may ignore it).
  // Without `wait`, answers Busy at once when the key is held. Errors are the service's own.
  virtual Result<Acquired> acquire(const std::string& key, bool wait,
                                   BenchClock::time_point give_up) = 0;

  // Releases the key last granted.
  virtual Status release() = 0;

  // Takes `key` for an hour and keeps it (no release, no renewal): the live leases a scale run
  // preloads. FailedPrecondition for the contenders that cannot (the bare recipes).
  virtual Status hold(const std::string& /*key*/) {
    return Status(Code::FailedPrecondition, "this contender cannot preload leases: use aec's");
  }

  // The attempts the service answered "held" so far: a bare recipe's retries, or aec's acquire
  // calls that came back busy (a parked wait is one call however long it waits).
  std::int64_t refused_attempts() const { return refused_; }

 protected:
  std::int64_t refused_ = 0;
};

// A lock service: prepared once by the parent, then opened by each client process.
class Contender {
 public:
  virtual ~Contender() = default;

  // The name on the command line and in reports ("aec-sqlite", "raw-sqlite", "flock").
  virtual std::string_view name() const = 0;

  // Creates what the clients share under the empty directory `dir` (a database and its schema),
  // in the parent before it forks, so that clients do not race to create it. Must not leave a
  // connection or thread open: the process forks afterwards.
  virtual Status prepare(const std::string& dir) = 0;

  // Opens a session on the service prepared in `dir`. Called in a client process.
  virtual Result<std::unique_ptr<Session>> open(const std::string& dir, int client) = 0;

  // What the contender promises, in one line of the report: where its state lives, what
  // survives a crash, expiry, fencing, how a held key is waited for.
  virtual std::string_view guarantees() const = 0;

  // The resident memory of the contender's server process, in bytes, when it runs one (aecd);
  // nothing otherwise.
  virtual std::optional<std::int64_t> server_rss() const { return std::nullopt; }

  // False for the physical floors, which time the round trips or flushes a lock would need
  // but exclude nobody: they run on distinct keys only.
  virtual bool is_lock() const { return true; }
};

// A server in a process of its own, forked by a contender's prepare() before any thread exists,
// and stopped (SIGTERM, then reaped) by the next start(), stop() or the destructor.
class ServerProcess {
 public:
  ServerProcess() = default;
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess() { stop(); }

  // Forks a child that runs `serve(dir)`, which must call publish_port(dir, ...) once it
  // listens and never return; waits up to 10 s for that. `what` names the server in errors.
  Status start(const std::string& dir, const std::function<void(const std::string&)>& serve,
               std::string_view what);
  void stop();

  // The server's resident memory (VmRSS), in bytes; nothing when it is not running.
  std::optional<std::int64_t> rss() const;

 private:
  int pid_ = -1;
};

// Makes `port` known to the clients of the server serving `dir` (atomically: a client never
// reads half of it), and reads it back.
void publish_port(const std::string& dir, int port);
int published_port(const std::string& dir);

// The bare recipes' wait: calls `attempt` (true: granted) until it grants, or, with `wait`,
// until `give_up`, sleeping between attempts 100 µs doubling to 6.4 ms, jittered with `rng` so
// that clients do not retry in lockstep. Without `wait`, one attempt. Adds the attempts that
// were not granted to `refused`.
Result<Acquired> retry_with_backoff(const std::function<Result<bool>()>& attempt, bool wait,
                                    BenchClock::time_point give_up, std::minstd_rand& rng,
                                    std::int64_t& refused);

// A setting of the servers the bench talks to: the environment variable `bench_var` (e.g.
// AEC_BENCH_POSTGRES_URL), else the line `test_var=...` of the file named by
// $AEC_TEST_SERVERS_ENV, as scripts/dev-servers.sh writes it. FailedPrecondition, one line naming
// both ways to give it, when neither has it; `service` names the server in that line.
Result<std::string> server_setting(std::string_view service, const std::string& bench_var,
                                   const std::string& test_var);

// The contender names aec-bench knows, in the order they are run and reported.
std::vector<std::string> contender_names();

// The contender called `name`; nullptr for an unknown name.
std::unique_ptr<Contender> make_contender(std::string_view name);

std::unique_ptr<Contender> make_aec_sqlite_contender();
// aecd over the same sqlite store, in a server process of its own; clients use the http:// store.
std::unique_ptr<Contender> make_aecd_sqlite_contender();
// aecd over the memory store: nothing written to disk, everything lost when it stops.
std::unique_ptr<Contender> make_aecd_memory_contender();

// A session driving `store` through aec::Control, as a user of the library would (shared by the
// aec contenders).
std::unique_ptr<Session> make_control_session(std::shared_ptr<Store> store);
std::unique_ptr<Contender> make_raw_sqlite_contender();
std::unique_ptr<Contender> make_flock_contender();
// The PostgreSQL lease-row recipe, and aec's postgres:// store (contender_postgres.cc).
std::unique_ptr<Contender> make_raw_postgres_contender();
std::unique_ptr<Contender> make_raw_postgres_async_contender();
std::unique_ptr<Contender> make_pg_advisory_contender();
std::unique_ptr<Contender> make_aec_postgres_contender();
// The etcd lease-and-transaction recipe, and aec's etcd:// store (contender_etcd.cc).
std::unique_ptr<Contender> make_raw_etcd_contender();
std::unique_ptr<Contender> make_aec_etcd_contender();
// The DynamoDB lease-item recipe, and aec's dynamodb:// store (contender_dynamodb.cc).
std::unique_ptr<Contender> make_raw_dynamodb_contender();
std::unique_ptr<Contender> make_aec_dynamodb_contender();
// Redis's single-instance lock, in memory and with every write flushed (contender_redis.cc).
std::unique_ptr<Contender> make_raw_redis_contender();
std::unique_ptr<Contender> make_raw_redis_aof_contender();
// The physical floors (contender_floors.cc): a loopback TCP round trip per operation, and a
// pwrite + fdatasync per operation.
std::unique_ptr<Contender> make_floor_loopback_contender();
std::unique_ptr<Contender> make_floor_fdatasync_contender();

}  // namespace aec::bench
