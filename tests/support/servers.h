// The real servers a test talks to (PostgreSQL, pgbouncer, etcd), started by
// scripts/dev-servers.sh. ctest starts them once per build directory (the `servers` fixture of
// tests/CMakeLists.txt) and points AEC_TEST_SERVERS_ENV at the file of their URLs.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace aec::testing {

// The value of NAME (e.g. "AEC_TEST_POSTGRES_URL"): from the environment, else from the file
// $AEC_TEST_SERVERS_ENV. nullopt when neither has it.
std::optional<std::string> server_setting(std::string_view name);

// Why a test cannot run for want of NAME, for GTEST_SKIP.
std::string missing_server(std::string_view name);

// The folder the servers keep their files in (pid files, etcd-N.cmd): that of
// $AEC_TEST_SERVERS_ENV. Empty when unknown.
std::string servers_dir();

}  // namespace aec::testing
