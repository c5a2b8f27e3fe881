// What only the sqlite store promises: fencing tokens survive a power loss that drops the last
// commits, its files are shared safely by many processes, and with sync=full every commit is on
// the disk before it is answered, concurrent writes sharing one fsync.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <aec/open_store.h>

#include "core/status_macros.h"
#include "stores/sqlite/sqlite_db.h"
#include "stores/sqlite/sqlite_write_queue.h"
#include "tests/support/fake_host.h"
#include "tests/support/manual_clock.h"
#include "tests/support/sqlite_pragma.h"
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

// Frames of the WAL's current generation: those after the header that carry its salts, which
// is what the next process to open the store reads and checksums (SQLite's WAL format: a 32-byte
// header with the page size at 8 and the salts at 16; then frames, each a 24-byte header with
// the salts at 8, and a page).
int wal_frames(const fs::path& wal) {
  std::ifstream in(wal, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto u32 = [&](std::size_t at) {
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data() + at);
    return std::uint32_t(b[0]) << 24 | std::uint32_t(b[1]) << 16 | std::uint32_t(b[2]) << 8 | b[3];
  };
  if (bytes.size() < 32) {
    return 0;
  }
  const std::size_t frame = 24 + u32(8);
  int n = 0;
  for (std::size_t at = 32; at + frame <= bytes.size(); at += frame, ++n) {
    if (u32(at + 8) != u32(16) || u32(at + 12) != u32(20)) {
      break;
    }
  }
  return n;
}

// The next process to open the store after the last one closed rebuilds SQLite's index of the
// WAL by reading and checksumming every frame of its current generation: the last connection to
// close starts a WAL that grew long over (a passive checkpoint alone left the frames, and
// `aec run` read thousands of them at every start), and does not wait for a connection that is
// still busy.
TEST_F(SqliteStoreTest, ClosingTheLastConnectionStartsALongWalOver) {
  const fs::path wal = dir_.file("aec.db-wal");
  auto store = open();
  for (int i = 0; i < 100; ++i) {
    grant_and_release(*store, "e" + std::to_string(i));
  }
  ASSERT_GT(wal_frames(wal), 128) << "the test needs a WAL past the close threshold";
  store.reset();
  EXPECT_LE(wal_frames(wal), 1);

  // With another connection in a read transaction the checkpoint gives up at once.
  store = open();
  for (int i = 0; i < 100; ++i) {
    grant_and_release(*store, "f" + std::to_string(i));
  }
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.file("aec.db").c_str(), &reader), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM aec_meta;", nullptr, nullptr, nullptr),
      SQLITE_OK);
  const auto start = std::chrono::steady_clock::now();
  store.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s) << "the close waited for the reader";
  EXPECT_GT(wal_frames(wal), 128);
  sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(reader);
  EXPECT_EQ(grant_and_release(*open(), "g"), 201);
}

TEST_F(SqliteStoreTest, AStoreTakenOutOfWalModeIsPutBackOnOpen) {
  auto journal_mode = [&] { return pragma_text(dir_.file("aec.db"), "PRAGMA journal_mode"); };
  grant_and_release(*open(), "e1");
  EXPECT_EQ(journal_mode(), "wal");
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.file("aec.db").c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "PRAGMA journal_mode=DELETE", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  ASSERT_EQ(journal_mode(), "delete");
  grant_and_release(*open(), "e2");
  EXPECT_EQ(journal_mode(), "wal");
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

TEST_F(SqliteStoreTest, AnOlderSchemaIsUpgradedInTheBootThatWroteIt) {
  std::int64_t first = grant_and_release(*open(), "e1");
  const std::string current =
      pragma_text(dir_.file("aec.db"), "SELECT value FROM aec_meta WHERE name = 'schema_version'");
  // Pretend an older aec wrote this file in this boot: an earlier version, without the queue's
  // table (what version 1 lacked at first).
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.file("aec.db").c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw,
                         "DROP TABLE aec_queue; "
                         "UPDATE aec_meta SET value = '0' WHERE name = 'schema_version'",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  auto store = open();
  ASSERT_TRUE(store);
  EXPECT_EQ(
      pragma_text(dir_.file("aec.db"), "SELECT value FROM aec_meta WHERE name = 'schema_version'"),
      current);
  auto r = store->acquire({.key = "k", .execution_id = "e2", .ttl = 10s, .queue = true});
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->outcome, AcquireOutcome::Granted);
  // The same boot, so no new epoch: the token follows on.
  EXPECT_EQ(r->lease.token, first + 1);
}

// A write whose body throws (std::bad_alloc, say) gets that as its error; the queue is not left
// waiting for a leader that is gone, and the writes queued with it still get their verdicts.
TEST(SqliteWriteQueueTest, AWriteThatThrowsFailsAloneAndTheQueueGoesOn) {
  TempDir dir;
  auto db = sqlite::Db::open(dir.file("q.db"), 1000);
  ASSERT_TRUE(db.has_value()) << db.error().to_string();
  ASSERT_TRUE((*db)->exec("CREATE TABLE t (x INTEGER)").is_ok());
  std::mutex mu;
  std::condition_variable_any committed;
  sqlite::WriteQueue queue(**db, mu, committed);
  auto insert = [&](int x) {
    auto body = [&, x]() -> Result<int> {
      std::string sql = "INSERT INTO t VALUES (" + std::to_string(x) + ")";
      AEC_RETURN_IF_ERROR((*db)->exec(sql.c_str()));
      return x;
    };
    return queue.write(body);
  };
  auto rows = [&] { return pragma_text(dir.file("q.db"), "SELECT group_concat(x) FROM t"); };

  auto thrower = []() -> Result<int> { throw std::runtime_error("out of luck"); };
  Result<int> thrown = queue.write(thrower);
  ASSERT_FALSE(thrown.has_value());
  EXPECT_EQ(thrown.error().code(), Code::Internal);
  EXPECT_NE(thrown.error().message().find("out of luck"), std::string::npos);
  ASSERT_TRUE(insert(1).has_value());
  EXPECT_EQ(rows(), "1");

  // Several writers at once, every other one throwing: whichever groups they fall into, each
  // gets its own verdict and only the others' rows are committed.
  constexpr int kWriters = 16;
  std::vector<int> ok(kWriters, -1);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kWriters; ++i) {
      threads.emplace_back([&, i] {
        ok[i] = i % 2 == 0 ? insert(100 + i).has_value() : queue.write(thrower).has_value();
      });
    }
  }
  for (int i = 0; i < kWriters; ++i) {
    EXPECT_EQ(ok[i], i % 2 == 0 ? 1 : 0) << "writer " << i;
  }
  EXPECT_EQ(pragma_text(dir.file("q.db"), "SELECT count(*) FROM t WHERE x >= 100"),
            std::to_string(kWriters / 2));
  ASSERT_TRUE(insert(2).has_value());
}

// A VFS that counts xSync calls and passes everything else to the default (unix) VFS: how many
// times SQLite asked the OS to put data on the disk.
std::atomic<int> g_syncs{0};
sqlite3_vfs* g_real = nullptr;

// Our file object, with the default VFS's own right after it.
struct CountingFile {
  sqlite3_file base;
  sqlite3_file* real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
};

sqlite3_file* real(sqlite3_file* f) {
  return reinterpret_cast<CountingFile*>(f)->real();
}

#define AEC_FORWARD(m) \
  methods.m = [](sqlite3_file* f, auto... a) { return real(f)->pMethods->m(real(f), a...); }

const sqlite3_io_methods* counting_methods() {
  static const sqlite3_io_methods table = [] {
    sqlite3_io_methods methods{};
    methods.iVersion = 3;
    AEC_FORWARD(xClose);
    AEC_FORWARD(xRead);
    AEC_FORWARD(xWrite);
    AEC_FORWARD(xTruncate);
    methods.xSync = [](sqlite3_file* f, int flags) {
      g_syncs.fetch_add(1);
      return real(f)->pMethods->xSync(real(f), flags);
    };
    AEC_FORWARD(xFileSize);
    AEC_FORWARD(xLock);
    AEC_FORWARD(xUnlock);
    AEC_FORWARD(xCheckReservedLock);
    AEC_FORWARD(xFileControl);
    AEC_FORWARD(xSectorSize);
    AEC_FORWARD(xDeviceCharacteristics);
    AEC_FORWARD(xShmMap);
    AEC_FORWARD(xShmLock);
    AEC_FORWARD(xShmBarrier);
    AEC_FORWARD(xShmUnmap);
    AEC_FORWARD(xFetch);
    AEC_FORWARD(xUnfetch);
    return methods;
  }();
  return &table;
}
#undef AEC_FORWARD

int counting_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out) {
  auto* f = reinterpret_cast<CountingFile*>(file);
  f->base.pMethods = nullptr;
  f->real()->pMethods = nullptr;
  int rc = g_real->xOpen(g_real, name, f->real(), flags, out);
  if (f->real()->pMethods != nullptr) {
    f->base.pMethods = counting_methods();  // closed through us even when the open failed
  }
  return rc;
}

// Makes the counting VFS the default for every connection this process opens from now on.
void install_counting_vfs() {
  static sqlite3_vfs vfs;
  if (g_real != nullptr) {
    return;
  }
  g_real = sqlite3_vfs_find(nullptr);
  ASSERT_GE(g_real->iVersion, 2);
  vfs = *g_real;
  vfs.zName = "aec-counting";
  vfs.szOsFile = static_cast<int>(sizeof(CountingFile)) + g_real->szOsFile;
  vfs.xOpen = counting_open;
  ASSERT_EQ(sqlite3_vfs_register(&vfs, /*makeDflt=*/1), SQLITE_OK);
}

class SqliteSyncTest : public SqliteStoreTest {
 protected:
  void SetUp() override { install_counting_vfs(); }

  // xSync calls made while `body` runs.
  template <typename F>
  int syncs_during(F body) {
    int before = g_syncs.load();
    body();
    return g_syncs.load() - before;
  }
};

TEST_F(SqliteSyncTest, DurableStoresSyncEveryCommitOthersDoNot) {
  std::string url = "sqlite://" + dir_.file("aec.db");
  auto durable = open_store(url, {.clock = clock_, .host = host_, .durable = true});
  ASSERT_TRUE(durable.has_value()) << durable.error().to_string();
  int full = syncs_during([&] {
    for (int i = 0; i < 10; ++i) {
      grant_and_release(**durable, "d" + std::to_string(i));
    }
  });
  EXPECT_GE(full, 20) << "20 commits made durable with fewer fsyncs";

  // ?sync=normal in the URL overrides the option: the WAL is synced at checkpoints only.
  auto normal = open_store(url + "?sync=normal", {.clock = clock_, .host = host_, .durable = true});
  ASSERT_TRUE(normal.has_value()) << normal.error().to_string();
  int relaxed = syncs_during([&] {
    for (int i = 0; i < 10; ++i) {
      grant_and_release(**normal, "n" + std::to_string(i));
    }
  });
  EXPECT_LT(relaxed, 10);

  auto by_url = open_store(url + "?sync=full", {.clock = clock_, .host = host_});
  ASSERT_TRUE(by_url.has_value()) << by_url.error().to_string();
  EXPECT_GE(syncs_during([&] { grant_and_release(**by_url, "u"); }), 2);
}

TEST_F(SqliteSyncTest, ConcurrentWritesShareOneCommit) {
  auto store = open_store("sqlite://" + dir_.file("aec.db") + "?sync=full",
                          {.clock = clock_, .host = host_});
  ASSERT_TRUE(store.has_value()) << store.error().to_string();
  constexpr int kThreads = 16;
  constexpr int kPairs = 25;
  std::atomic<int> granted{0};
  std::atomic<int> released{0};
  std::atomic<int> gaps{0};  // a key's token that did not follow its previous one
  int syncs = syncs_during([&] {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::string key = "k" + std::to_string(t);
        std::int64_t last = 0;
        for (int i = 0; i < kPairs; ++i) {
          auto r = (*store)->acquire(
              {.key = key, .execution_id = key + "-" + std::to_string(i), .ttl = 10s});
          if (!r || r->outcome != AcquireOutcome::Granted) {
            continue;
          }
          ++granted;
          gaps += last != 0 && r->lease.token != last + 1 ? 1 : 0;
          last = r->lease.token;
          auto out = (*store)->release(key, r->lease.token, {});
          released += out && *out == LeaseOutcome::Ok ? 1 : 0;
        }
      });
    }
  });
  // Every write was answered as if it had been alone…
  EXPECT_EQ(granted.load(), kThreads * kPairs);
  EXPECT_EQ(released.load(), kThreads * kPairs);
  EXPECT_EQ(gaps.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    auto state = (*store)->get("k" + std::to_string(t));
    ASSERT_TRUE(state.has_value());
    EXPECT_TRUE(state->holders.empty());
    EXPECT_EQ(state->version, 2 * kPairs);
  }
  // …while its 800 commits took fewer fsyncs: writers that queued behind a commit in progress
  // were committed together with the next one.
  EXPECT_LT(syncs, 2 * kThreads * kPairs);
}

}  // namespace
}  // namespace aec::testing
