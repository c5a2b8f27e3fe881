// The `postgres://` store: a PostgreSQL database shared by many hosts (pg_url.h for the URL).
//
// How the guarantees hold:
// - One statement per operation: each is a server-side function (schema.sql), so an operation
//   is one round trip and one transaction, and needs no session state: it works through a
//   transaction-mode pooler.
// - Atomic acquire: a grant takes the key's row lock (SELECT ... FOR UPDATE) and decides under
//   it; every writer takes that lock first. A refused caller is answered from a plain read.
// - Expiry by the server's clock (clock_timestamp()), never a client's.
// - Fencing tokens: keys.last_token per key, never deleted by purge; grants and renewals commit
//   with synchronous_commit=on whatever the server's default.
// - Waits: NOTIFY at commit, one LISTEN connection per store (pg_listener.h).
#pragma once

#include <memory>
#include <string>

#include <aec/open_store.h>
#include <aec/store.h>

namespace aec {

// Opens the store `url` names, creating its schema when options.create. Errors: InvalidArgument
// (a malformed URL), Unavailable (the server cannot be reached), PermissionDenied, NotFound (no
// schema and !create), FailedPrecondition (a newer schema).
Result<std::unique_ptr<Store>> open_postgres_store(std::string_view url,
                                                   const StoreOptions& options);

}  // namespace aec
