// Opening a store by URL.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <aec/clock.h>
#include <aec/host_info.h>
#include <aec/status.h>
#include <aec/store.h>

namespace aec {

struct StoreOptions {
  // Time and host for expiry and owner records. Defaults: the real ones.
  std::shared_ptr<Clock> clock = real_clock();
  std::shared_ptr<HostInfo> host = real_host_info();
  // How long a store waits on a lock held by another process before answering Unavailable.
  milliseconds lock_timeout{10'000};
  // Create the store (a database file, its directory) when it does not exist yet. When false, a
  // missing store is NotFound and nothing is created.
  bool create = true;
  // Make every write durable against a power loss before answering it (an fsync per commit,
  // shared by the writes committed together). A server whose clients run on other hosts needs
  // this: a grant forgotten after a power cut would let a second holder in while the first still
  // runs elsewhere. Off, a store may trade that for speed where its callers share its host (they
  // die with it); the sqlite store does. `sqlite://…?sync=full|normal` overrides it.
  bool durable = false;
};

// Opens the store a URL names:
//   memory:                an in-process store (tests, simulation); every open is a new store
//   sqlite:///ABS/PATH     an SQLite file shared by the processes of one host (created if missing)
//   sqlite://REL/PATH      a path relative to the working directory
//                          (?sync=full: fsync every commit; ?sync=normal: survive process crashes
//                          only; the default follows StoreOptions::durable)
//   http://HOST:PORT       an aecd (docs/api.md); sends $AEC_TOKEN as a bearer token
//   https://HOST:PORT      the same over TLS (?cacert=PATH for a private CA)
//   postgres://USER@HOST:PORT/DB   a PostgreSQL database (also postgresql://); parameters
//                          schema=, pool=, pooler=transaction, listen= and libpq's own
//   etcd://HOST:PORT[,HOST:PORT...]   an etcd v3 cluster; parameters prefix= (default aec/),
//                          dial_timeout= and rpc_timeout= (default 5s each)
//   dynamodb://TABLE       a DynamoDB table; parameters region=, endpoint=, profile=, key=,
//                          create=true (docs/dynamodb.md); AWS credentials as AWS tools find them
// Errors: InvalidArgument for an unknown scheme or a malformed URL (naming the schemes built in),
// Unavailable or PermissionDenied when the file cannot be opened, DataLoss when it is not an aec
// database or is corrupt.
Result<std::unique_ptr<Store>> open_store(std::string_view url, const StoreOptions& options = {});

// The default store: sqlite under $XDG_STATE_HOME/aec/aec.db, or ~/.local/state/aec/aec.db.
std::string default_store_url();

// The URL schemes this build supports, e.g. {"memory", "sqlite"}.
std::vector<std::string> built_in_stores();

}  // namespace aec
