// pragma_text(): what a PRAGMA answers on an SQLite file, read apart from any aec store.
#pragma once

#include <string>

#include <sqlite3.h>

namespace aec::testing {

// Opens the file at `path` with `flags` on a connection of its own, runs `pragma` and returns the
// first column of its rows, concatenated ("" when the file cannot be opened). Header-only: the
// tests that use it link SQLite themselves.
inline std::string pragma_text(const std::string& path, const char* pragma,
                               int flags = SQLITE_OPEN_READWRITE) {
  sqlite3* db = nullptr;
  std::string text;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) == SQLITE_OK) {
    sqlite3_exec(
        db, pragma,
        [](void* out, int, char** values, char**) {
          *static_cast<std::string*>(out) += values[0] == nullptr ? "" : values[0];
          return 0;
        },
        &text, nullptr);
  }
  sqlite3_close(db);
  return text;
}

}  // namespace aec::testing
