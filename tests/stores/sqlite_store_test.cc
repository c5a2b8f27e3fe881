// What only the sqlite store promises: fencing tokens survive a power loss that drops the last
// commits, and its files are shared safely by many processes.
#include <filesystem>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <aec/open_store.h>

#include "tests/support/fake_host.h"
#include "tests/support/manual_clock.h"
#include "tests/support/temp_dir.h"

namespace aec::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class SqliteStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> open() {
    auto store = open_store("sqlite://" + dir_.file("aec.db"), {.clock = clock_, .host = host_});
    EXPECT_TRUE(store.has_value()) << store.error().to_string();
    return store ? std::move(*store) : nullptr;
  }

  std::int64_t grant_and_release(Store& store, const std::string& id) {
    auto r = store.acquire({.key = "k", .execution_id = id, .ttl = 10s});
    EXPECT_EQ(r->outcome, AcquireOutcome::Granted);
    EXPECT_EQ(*store.release("k", r->lease.token, {}), LeaseOutcome::Ok);
    return r->lease.token;
  }

  // Copies the database files (a snapshot of what reached the disk) or puts them back.
  void copy_files(const fs::path& from, const fs::path& to) {
    fs::create_directories(to);
    for (const char* name : {"aec.db", "aec.db-wal", "aec.db-shm"}) {
      fs::remove(to / name);
      if (fs::exists(from / name)) {
        fs::copy_file(from / name, to / name);
      }
    }
  }

  TempDir dir_;
  TempDir saved_;
  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::shared_ptr<FakeHost> host_ = std::make_shared<FakeHost>();
};

TEST_F(SqliteStoreTest, TokensNeverRepeatAfterAPowerLossDropsTheLastCommits) {
  std::int64_t first = grant_and_release(*open(), "e1");
  copy_files(dir_.path(), saved_.path());                // what the disk held when the power went
  std::int64_t lost = grant_and_release(*open(), "e2");  // handed out, then lost with the power
  ASSERT_GT(lost, first);
  copy_files(saved_.path(), dir_.path());
  host_->reboot();  // a power loss is always followed by a new boot
  std::int64_t after = grant_and_release(*open(), "e3");
  EXPECT_GT(after, lost) << "a token handed out before the power loss was issued again";
}

TEST_F(SqliteStoreTest, ReopeningInTheSameBootKeepsTokensDense) {
  std::int64_t a = grant_and_release(*open(), "e1");
  std::int64_t b = grant_and_release(*open(), "e2");
  EXPECT_EQ(b, a + 1);
}

TEST_F(SqliteStoreTest, ANewerSchemaIsRefused) {
  ASSERT_TRUE(open());
  // Pretend a future aec wrote this file.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.file("aec.db").c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "UPDATE aec_meta SET value = '99' WHERE name = 'schema_version'",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  host_->reboot();  // forces the slow path that would write
  auto store = open_store("sqlite://" + dir_.file("aec.db"), {.clock = clock_, .host = host_});
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code(), Code::FailedPrecondition);
  EXPECT_NE(store.error().message().find("upgrade aec"), std::string::npos);
}

}  // namespace
}  // namespace aec::testing
