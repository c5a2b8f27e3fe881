// Redis contenders, on the server at AEC_BENCH_REDIS_ADDRESS (host:port; or the test servers'
// AEC_TEST_REDIS_ADDRESS in the file $AEC_TEST_SERVERS_ENV, as scripts/dev-servers.sh writes it),
// through hiredis, Redis's own C client:
//   raw-redis      the single-instance lock of Redis's documentation: `SET key token NX PX ttl`
//                  to acquire, a Lua script that deletes the key only while it still holds our
//                  token to release (EVALSHA); a held key is retried with the bare recipes'
//                  backoff. In memory only: no snapshot, no append-only file; a restart loses
//                  every lock.
//   raw-redis-aof  the same with `appendonly yes` and `appendfsync always`: every write is in
//                  the append-only file, flushed, before Redis answers.
// No history, no fencing counter (the token is the client's own), no waiting line, one server.
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <hiredis/hiredis.h>

#include "contender.h"

namespace aec::bench {
namespace {

using namespace std::chrono_literals;

// Deletes KEYS[1] only if it holds ARGV[1]: 1 when it did.
constexpr const char* kReleaseScript =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end";

// A lock outlives any pair of the bench by far; a crashed client's lock frees itself.
constexpr int kTtlMs = 30000;

using Reply = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;

struct Connection {
  std::unique_ptr<redisContext, decltype(&redisFree)> context{nullptr, &redisFree};
  std::string address;

  // Sends one command (hiredis's printf-like format) and returns its reply; an error reply or a
  // broken connection is an error naming the command.
  template <typename... Args>
  Result<Reply> command(const char* format, Args... args) {
    Reply reply(static_cast<redisReply*>(redisCommand(context.get(), format, args...)),
                &freeReplyObject);
    if (!reply) {
      return unavailable(fmt::format("redis {}: {}", address, context->errstr));
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      return unavailable(
          fmt::format("redis {}: {}: {}", address, format, std::string(reply->str, reply->len)));
    }
    return reply;
  }
};

Result<Connection> connect() {
  Result<std::string> address =
      server_setting("Redis", "AEC_BENCH_REDIS_ADDRESS", "AEC_TEST_REDIS_ADDRESS");
  if (!address) {
    return address.error();
  }
  const std::size_t colon = address->rfind(':');
  const int port = colon == std::string::npos ? 0 : std::atoi(address->c_str() + colon + 1);
  if (port <= 0 || port > 65535) {
    return Status(Code::InvalidArgument,
                  fmt::format("redis address '{}' is not HOST:PORT", *address));
  }
  Connection conn;
  conn.address = *address;
  const std::string host = address->substr(0, colon);
  conn.context.reset(redisConnectWithTimeout(host.c_str(), port, timeval{5, 0}));
  if (!conn.context || conn.context->err != 0) {
    return unavailable(fmt::format("redis {}: {}", *address,
                                   conn.context ? conn.context->errstr : "out of memory"));
  }
  return conn;
}

class RedisSession final : public Session {
 public:
  RedisSession(Connection conn, std::string script_sha, int client)
      : conn_(std::move(conn)),
        script_sha_(std::move(script_sha)),
        next_token_(static_cast<std::int64_t>(client) << 40),
        rng_(client) {}

  Result<Acquired> acquire(const std::string& key, bool wait,
                           BenchClock::time_point give_up) override {
    auto attempt = [&]() -> Result<bool> {
      const std::string token = std::to_string(++next_token_);
      Result<Reply> reply = conn_.command("SET %b %b NX PX %d", key.data(), key.size(),
                                          token.data(), token.size(), kTtlMs);
      if (!reply) {
        return reply.error();
      }
      if ((*reply)->type == REDIS_REPLY_NIL) {
        return false;
      }
      held_key_ = key;
      held_token_ = token;
      return true;
    };
    return retry_with_backoff(attempt, wait, give_up, rng_, refused_);
  }

  Status release() override {
    Result<Reply> reply = conn_.command("EVALSHA %s 1 %b %b", script_sha_.c_str(), held_key_.data(),
                                        held_key_.size(), held_token_.data(), held_token_.size());
    if (!reply) {
      return reply.error();
    }
    return (*reply)->type == REDIS_REPLY_INTEGER && (*reply)->integer == 1
               ? Status::ok()
               : internal_error("release: lock not held");
  }

 private:
  Connection conn_;
  std::string script_sha_;
  std::int64_t next_token_;
  std::minstd_rand rng_;
  std::string held_key_;
  std::string held_token_;
};

class RedisContender final : public Contender {
 public:
  explicit RedisContender(bool aof) : aof_(aof) {}

  std::string_view name() const override { return aof_ ? "raw-redis-aof" : "raw-redis"; }
  std::string_view guarantees() const override {
    return aof_ ? "one server; every write in the append-only file, flushed, before the reply; "
                  "expiry; the token is the client's own (no fencing); no line (retries)"
                : "one server, in memory: a restart loses every lock; expiry; the token is the "
                  "client's own (no fencing); no line (retries)";
  }

  // Sets the server's persistence for this contender, then empties it. Turning the append-only
  // file on starts a rewrite in the background: wait for it, or the first writes share the
  // disk with it.
  Status prepare(const std::string& /*dir*/) override {
    Result<Connection> conn = connect();
    if (!conn) {
      return conn.error();
    }
    const std::vector<std::string> settings =
        aof_
            ? std::vector<std::string>{"CONFIG SET appendfsync always", "CONFIG SET appendonly yes"}
            : std::vector<std::string>{"CONFIG SET appendonly no"};
    for (const std::string& command : settings) {
      if (Result<Reply> r = conn->command(command.c_str()); !r) {
        return r.error();
      }
    }
    for (auto deadline = BenchClock::now() + 30s;;) {
      Result<Reply> info = conn->command("INFO persistence");
      if (!info) {
        return info.error();
      }
      const std::string text((*info)->str, (*info)->len);
      if (text.find("aof_rewrite_in_progress:0") != std::string::npos &&
          text.find("aof_rewrite_scheduled:0") != std::string::npos) {
        break;
      }
      if (BenchClock::now() > deadline) {
        return unavailable("redis: the append-only file's rewrite did not end within 30 s");
      }
      std::this_thread::sleep_for(10ms);  // polling Redis's own status: it has no wait for it
    }
    Result<Reply> flushed = conn->command("FLUSHALL");
    return flushed ? Status::ok() : flushed.error();
  }

  Result<std::unique_ptr<Session>> open(const std::string& /*dir*/, int client) override {
    Result<Connection> conn = connect();
    if (!conn) {
      return conn.error();
    }
    Result<Reply> sha = conn->command("SCRIPT LOAD %s", kReleaseScript);
    if (!sha) {
      return sha.error();
    }
    std::string script_sha((*sha)->str, (*sha)->len);
    return std::unique_ptr<Session>(
        std::make_unique<RedisSession>(std::move(*conn), std::move(script_sha), client));
  }

 private:
  bool aof_;
};

}  // namespace

std::unique_ptr<Contender> make_raw_redis_contender() {
  return std::make_unique<RedisContender>(false);
}

std::unique_ptr<Contender> make_raw_redis_aof_contender() {
  return std::make_unique<RedisContender>(true);
}

}  // namespace aec::bench
