// The sqlite store's schema: created on first use, versioned, and the boot epoch that keeps
// fencing tokens from repeating after a power loss.
#pragma once

#include <cstdint>
#include <string>

#include <aec/status.h>

#include "stores/sqlite/sqlite_db.h"

namespace aec::sqlite {

inline constexpr int kSchemaVersion = 1;

// Puts the connection in WAL mode, creates the tables if the file is new, checks the schema
// version, and advances the boot epoch when this is the first open since the host booted.
// Returns the current epoch. Errors: DataLoss for a file that is not an aec database,
// FailedPrecondition for a schema newer than this build, and what Db reports.
Result<std::int64_t> prepare_schema(Db& db, const std::string& boot_id);

// The smallest token a grant may use in `epoch`: tokens of later epochs are always larger than
// any token of an earlier one (2^40 grants per key per boot fit below the next epoch's floor).
inline std::int64_t epoch_floor(std::int64_t epoch) {
  return epoch << 40;
}

}  // namespace aec::sqlite
