// etcd contenders, on the cluster named by AEC_BENCH_ETCD_ENDPOINTS (comma-separated host:port;
// or the test servers' AEC_TEST_ETCD_ENDPOINTS in the file $AEC_TEST_SERVERS_ENV, as
// scripts/dev-servers.sh writes it):
//   raw-etcd  the bare recipe of etcd's users (clientv3/concurrency's, without its watch): one
//             lease per client session, kept alive; acquire is one Txn that puts the key with
//             that lease if the key does not exist, release one Txn that deletes it if it is
//             still the one we put; retried with a short sleep when the key is held;
//   aec-etcd  aec's etcd:// store through aec::Control (history, fencing counter, FIFO line,
//             watch-driven waits), under a prefix of its own per run.
// Both start from an empty key space of their own: prepare() deletes the contender's prefix.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <random>

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <aec/open_store.h>

#include "contender.h"
#include "core/status_macros.h"
#include "stores/etcd/etcd_client.h"
#include "stores/etcd/keep_alive.h"
#include "stores/etcd/txn_ops.h"

namespace aec::bench {
namespace {

using namespace std::chrono_literals;

// Every key the bench writes is under kRoot: raw-etcd's under kRawPrefix, each aec-etcd run's
// under kAecPrefixes + a random suffix.
constexpr const char* kRawPrefix = "aec-bench/raw/";
constexpr const char* kAecPrefixes = "aec-bench/aec-";
// The TTL of raw-etcd's session leases, as the other contenders' leases (kept alive, it only
// matters when a client dies).
constexpr std::chrono::seconds kTtl = 30s;

Result<std::string> endpoint_list() {
  return server_setting("etcd", "AEC_BENCH_ETCD_ENDPOINTS", "AEC_TEST_ETCD_ENDPOINTS");
}

Result<std::vector<std::string>> endpoints() {
  AEC_ASSIGN_OR_RETURN(std::string list, endpoint_list());
  std::vector<std::string> members;
  for (std::size_t start = 0; start <= list.size();) {
    std::size_t comma = std::min(list.find(',', start), list.size());
    if (comma > start) {
      members.push_back(list.substr(start, comma - start));
    }
    start = comma + 1;
  }
  return members;
}

// Runs `work` in a child process and returns what it returned. prepare() runs in the parent,
// which forks the clients afterwards, and gRPC keeps threads of its own that a fork does not
// copy (a client could hang in gRPC): so the parent never calls gRPC itself.
Status in_child(const std::function<Status()>& work) {
  int fds[2];
  if (::pipe(fds) != 0) {
    return internal_error(fmt::format("pipe: {}", std::strerror(errno)));
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return internal_error(fmt::format("fork: {}", std::strerror(errno)));
  }
  if (pid == 0) {
    ::close(fds[0]);
    const Status s = work();
    // The code as one byte, then the message; nothing when all went well.
    const std::string answer = s.is_ok() ? "" : static_cast<char>(s.code()) + s.message();
    const bool sent =
        ::write(fds[1], answer.data(), answer.size()) == static_cast<ssize_t>(answer.size());
    ::_exit(s.is_ok() && sent ? 0 : 1);  // _exit: the parent's stdio buffers are not ours
  }
  ::close(fds[1]);
  std::string answer;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) {
    answer.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  if (::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    return Status::ok();
  }
  if (answer.empty()) {
    return internal_error(fmt::format("the etcd helper process ended with status {:#x}", status));
  }
  return Status(static_cast<Code>(answer[0]), answer.substr(1));
}

// Deletes every key starting with `prefix` (in a child process: see in_child).
Status delete_prefix(const std::string& prefix) {
  AEC_ASSIGN_OR_RETURN(std::vector<std::string> members, endpoints());
  return in_child([&]() -> Status {
    AEC_ASSIGN_OR_RETURN(std::unique_ptr<etcd::Client> client, etcd::Client::connect(members));
    Result<etcd::DeleteRangeResponse> deleted =
        client->delete_range(prefix, etcd::prefix_end(prefix));
    return deleted ? Status::ok() : deleted.error();
  });
}

class RawEtcdSession final : public Session {
 public:
  RawEtcdSession(std::unique_ptr<etcd::Client> client, int id)
      : client_(std::move(client)), id_(std::to_string(id)), rng_(id) {}

  ~RawEtcdSession() override {
    if (keep_alive_ != nullptr) {
      keep_alive_->stop();
      (void)client_->lease_revoke(keep_alive_->lease());  // deletes a key still held at once
    }
  }

  // One lease for the whole session, granted once and kept alive from a background thread, as
  // clientv3/concurrency's Session does: every key the client takes is put with it, so the
  // keys of a client that dies go when the lease lapses. Reusing it (rather than a lease per
  // acquire, revoked when the key is held) makes an attempt one round trip, as for etcd's users.
  Status init() {
    AEC_ASSIGN_OR_RETURN(etcd::LeaseGrantResponse grant, client_->lease_grant(kTtl));
    etcd::KeepAlive::Options options;
    options.ttl = std::chrono::seconds(grant.ttl());
    keep_alive_ = etcd::KeepAlive::start(*client_, grant.id(), std::move(options));
    return Status::ok();
  }

  Result<Acquired> acquire(const std::string& key, bool wait,
                           BenchClock::time_point give_up) override {
    // Granted when the key does not exist (create_revision 0): the put and the check are one
    // transaction, so of two clients racing for a free key exactly one puts it.
    const std::string name = kRawPrefix + key;
    etcd::TxnRequest txn;
    *txn.add_compare() = etcd::compare_create(name, etcd::Compare::EQUAL, 0);
    etcd::PutOptions put;
    put.lease = keep_alive_->lease();
    *txn.add_success() = etcd::op_put(name, id_, put);
    auto attempt = [&]() -> Result<bool> {
      if (keep_alive_->state() == etcd::KeepAlive::State::Lost) {
        return keep_alive_->lost_reason();
      }
      AEC_ASSIGN_OR_RETURN(etcd::TxnResponse response, client_->txn(txn));
      if (response.succeeded()) {
        held_key_ = name;
        held_revision_ = response.header().revision();  // the put's: the key's mod_revision
      }
      return response.succeeded();
    };
    return retry_with_backoff(attempt, wait, give_up, rng_, refused_);
  }

  // Deletes the key only while its mod_revision is still that of our put: the revision is the
  // grant's fencing token, so a key that lapsed and was taken by another client is left alone.
  Status release() override {
    etcd::TxnRequest txn;
    *txn.add_compare() = etcd::compare_mod(held_key_, etcd::Compare::EQUAL, held_revision_);
    *txn.add_success() = etcd::op_delete(held_key_);
    AEC_ASSIGN_OR_RETURN(etcd::TxnResponse response, client_->txn(txn));
    return response.succeeded() ? Status::ok() : internal_error("release: lease not held");
  }

 private:
  std::unique_ptr<etcd::Client> client_;
  std::unique_ptr<etcd::KeepAlive> keep_alive_;
  std::string id_;  // the client's number: the value of the keys it holds
  std::minstd_rand rng_;
  std::string held_key_;
  std::int64_t held_revision_ = 0;
};

class RawEtcdContender final : public Contender {
 public:
  std::string_view name() const override { return "raw-etcd"; }
  std::string_view guarantees() const override {
    return "replicated: each write committed by 2 of 3 members, each flushing its log; lease "
           "expiry; the revision as a token; no line (retries)";
  }

  Status prepare(const std::string& /*dir*/) override { return delete_prefix(kRawPrefix); }

  Result<std::unique_ptr<Session>> open(const std::string& /*dir*/, int client) override {
    AEC_ASSIGN_OR_RETURN(std::vector<std::string> members, endpoints());
    AEC_ASSIGN_OR_RETURN(std::unique_ptr<etcd::Client> etcd, etcd::Client::connect(members));
    auto session = std::make_unique<RawEtcdSession>(std::move(etcd), client);
    AEC_RETURN_IF_ERROR(session->init());
    return std::unique_ptr<Session>(std::move(session));
  }
};

class AecEtcdContender final : public Contender {
 public:
  AecEtcdContender() {
    std::random_device random;
    prefix_ = fmt::format("{}{:08x}{:08x}/", kAecPrefixes, random(), random());
  }

  std::string_view name() const override { return "aec-etcd"; }
  std::string_view guarantees() const override {
    return "replicated as raw-etcd; fencing tokens, history, FIFO line woken by watch";
  }

  // Deletes every earlier run's keys (aec's store keeps each key's counters and history after
  // release). This run's prefix is new anyway, so a client left over from an earlier run
  // cannot meddle with it.
  Status prepare(const std::string& /*dir*/) override { return delete_prefix(kAecPrefixes); }

  Result<std::unique_ptr<Session>> open(const std::string& /*dir*/, int /*client*/) override {
    AEC_ASSIGN_OR_RETURN(std::string members, endpoint_list());
    AEC_ASSIGN_OR_RETURN(std::unique_ptr<Store> store,
                         open_store(fmt::format("etcd://{}?prefix={}", members, prefix_)));
    return make_control_session(std::shared_ptr<Store>(std::move(store)));
  }

 private:
  std::string prefix_;  // this run's: chosen in the parent, before the clients fork
};

}  // namespace

std::unique_ptr<Contender> make_raw_etcd_contender() {
  return std::make_unique<RawEtcdContender>();
}

std::unique_ptr<Contender> make_aec_etcd_contender() {
  return std::make_unique<AecEtcdContender>();
}

}  // namespace aec::bench
