// The `sqlite://PATH` store: the embedded default. Many processes on one host share one database
// file in WAL mode.
//
// How the guarantees hold:
// - Atomic acquire: every write runs in a BEGIN IMMEDIATE transaction, which holds SQLite's
//   single writer lock from the first read of a key's state to the commit of the grant.
// - Expiry by the host's boot clock: a lease stores CLOCK_BOOTTIME at expiry and the boot id it
//   was written under. A lease of another boot is expired, so a reboot frees every lease, and a
//   wall-clock step changes none.
// - Fencing tokens: aec_keys.last_token per key, never deleted by purge; plus the boot epoch of
//   sqlite_schema.h, which keeps tokens increasing even when a power loss drops the last commits.
#pragma once

#include <memory>
#include <string>

#include <aec/open_store.h>
#include <aec/store.h>

namespace aec {

// Opens or creates the database at `path`. Errors as open_store() documents.
Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path,
                                                 const StoreOptions& options);

}  // namespace aec
