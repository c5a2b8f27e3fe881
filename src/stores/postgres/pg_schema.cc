#include "stores/postgres/pg_schema.h"

#include <charconv>

#include <fmt/format.h>

#include "core/status_macros.h"

namespace aec::pg {

// The bytes of schema.sql (embedded at build time by cmake/AecEmbedFile.cmake).
std::string_view schema_sql();

namespace {

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  for (std::size_t pos = 0;;) {
    std::size_t hit = text.find(from, pos);
    out.append(text.substr(pos, hit - pos));
    if (hit == std::string_view::npos) {
      return out;
    }
    out.append(to);
    pos = hit + from.size();
  }
}

// The schema version recorded in the database; 0 when there is no aec schema yet.
Result<int> read_version(Pool& pool, const std::string& schema) {
  Statement read{"aec_schema_version",
                 fmt::format("SELECT value FROM {}.meta WHERE name = 'schema_version'", schema), 0,
                 true};
  Result<Rows> rows = pool.run(read, {});
  if (!rows) {
    // 42P01 undefined_table, 3F000 invalid_schema_name: nothing of ours is there yet.
    const std::string& m = rows.error().message();
    if (m.find("SQLSTATE 42P01") != std::string::npos ||
        m.find("SQLSTATE 3F000") != std::string::npos) {
      return 0;
    }
    return rows.error();
  }
  if (rows->size() == 0) {
    return 0;
  }
  std::string_view text = rows->text(0, 0);
  int version = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), version);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return Status(Code::DataLoss, fmt::format("postgres store {}: schema {} has a corrupt "
                                              "schema_version '{}'",
                                              pool.shown(), schema, text));
  }
  return version;
}

}  // namespace

Result<int> migrate(Pool& pool, const std::string& schema, bool create) {
  AEC_ASSIGN_OR_RETURN(int found, read_version(pool, schema));
  if (found == kSchemaVersion) {
    return found;  // every open but the first: one read, no write
  }
  if (found > kSchemaVersion) {
    return Status(Code::FailedPrecondition,
                  fmt::format("postgres store {}: schema {} has version {}, newer than this aec "
                              "({}): upgrade aec",
                              pool.shown(), schema, found, kSchemaVersion));
  }
  if (found == 0 && !create) {
    return Status(Code::NotFound,
                  fmt::format("postgres store {}: schema {} has no aec tables yet; run "
                              "`aec admin migrate --store URL` or open it with create",
                              pool.shown(), schema));
  }
  // One simple-protocol query: all statements in one implicit transaction.
  Result<Rows> done = pool.run_text(replace_all(schema_sql(), "@schema@", schema));
  if (!done) {
    if (done.error().message().find("SQLSTATE 55000") != std::string::npos) {
      return Status(Code::FailedPrecondition, done.error().message());
    }
    return done.error();
  }
  return found;
}

}  // namespace aec::pg
