// The dashboard page served at `GET /` (docs/dashboard.md): src/server/dashboard.html, embedded
// into the binary at build time by cmake/AecEmbedFile.cmake.
#pragma once

#include <string_view>

namespace aec::server {

// The whole HTML page (inline CSS and JS, no external assets). Static storage: the view is valid
// for the life of the program. Thread-safe.
std::string_view dashboard_html();

}  // namespace aec::server
