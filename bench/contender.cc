#include "contender.h"

namespace aec::bench {

std::vector<std::string> contender_names() {
  return {"raw-sqlite", "flock", "aec-sqlite", "aecd-sqlite", "raw-postgres", "aec-postgres"};
}

std::unique_ptr<Contender> make_contender(std::string_view name) {
  if (name == "aec-sqlite") {
    return make_aec_sqlite_contender();
  }
  if (name == "aecd-sqlite") {
    return make_aecd_sqlite_contender();
  }
  if (name == "raw-sqlite") {
    return make_raw_sqlite_contender();
  }
  if (name == "flock") {
    return make_flock_contender();
  }
  if (name == "raw-postgres") {
    return make_raw_postgres_contender();
  }
  if (name == "aec-postgres") {
    return make_aec_postgres_contender();
  }
  return nullptr;
}

}  // namespace aec::bench
