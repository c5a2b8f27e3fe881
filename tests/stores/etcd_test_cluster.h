// The real etcd cluster the etcd client's tests run against, started by
// `scripts/dev-servers.sh up --only etcd --dir DIR`: where it is, and its members' processes
// (DIR/etcd-N.pid, DIR/etcd-N.cmd) for the tests that kill and restart one.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include <aec/status.h>

#include "stores/etcd/etcd_client.h"

namespace aec::testing {

struct EtcdCluster {
  std::vector<std::string> endpoints;
  // The folder of dev-servers.sh (pid and command files); empty when only the endpoints are
  // known (AEC_TEST_ETCD_ENDPOINTS), and then no member can be killed.
  std::filesystem::path dir;
};

// AEC_TEST_ETCD_ENDPOINTS, from the environment or the file $AEC_TEST_SERVERS_ENV
// (tests/support/servers.h). nullopt when neither has it: skip with no_etcd_cluster().
std::optional<EtcdCluster> find_etcd_cluster();
std::string no_etcd_cluster();

// Polls `condition` every 20 ms until it holds (true) or `within` has passed (false).
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds within);

// One member of the cluster, as dev-servers.sh started it.
struct EtcdMember {
  int n = 0;             // 1..3: DIR/etcd-N.pid and DIR/etcd-N.cmd
  std::string endpoint;  // its client address
  std::uint64_t id = 0;  // its raft member id
};

// The member whose id is `id` (asking each endpoint for its status).
Result<EtcdMember> member_with_id(const etcd::Client& client, const EtcdCluster& cluster,
                                  std::uint64_t id);
// The member every member follows, once they all agree (waits up to 20 s for that).
Result<EtcdMember> leader(const etcd::Client& client, const EtcdCluster& cluster);

// kill -9 the member (its pid file) and wait until the process is gone.
Status kill_member(const EtcdCluster& cluster, const EtcdMember& member);
// Starts the member again from its command file, in a session of its own with no terminal
// (output to /dev/null: it logs to its own file), writes the new pid to its pid file (so that
// `dev-servers.sh down` stops it), and waits until it answers a status request.
Status restart_member(const EtcdCluster& cluster, const EtcdMember& member,
                      const etcd::Client& client);

}  // namespace aec::testing
