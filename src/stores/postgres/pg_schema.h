// The postgres store's schema: tables, indexes and the server-side functions that make each
// store operation one statement (one round trip, one transaction, the server's clock).
#pragma once

#include <string>

#include <aec/status.h>

#include "stores/postgres/pg_conn.h"

namespace aec::pg {

// The schema version this aec writes. A database with a newer one is refused.
inline constexpr int kSchemaVersion = 3;

// Creates or upgrades the schema `schema` (tables, indexes, functions) in one transaction,
// serialised against other aec processes by a transaction-level advisory lock, so it works
// through a transaction-mode pooler. Returns the version found before (0: none).
// FailedPrecondition when the database has a newer schema; NotFound when `create` is false and
// there is none.
Result<int> migrate(Pool& pool, const std::string& schema, bool create);

}  // namespace aec::pg
