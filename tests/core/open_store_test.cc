#include <fstream>

#include <gtest/gtest.h>

#include <aec/open_store.h>

#include "tests/support/temp_dir.h"

namespace aec {
namespace {

TEST(OpenStoreTest, RejectsUnknownAndMalformedUrlsNamingTheSchemes) {
  for (const char* url :
       {"redis://x", "nothing", "", ":x", "sqlite:/tmp/x", "sqlite://",
        "sqlite:///tmp/x.db?mode=ro", "sqlite:///tmp/x.db?sync=FULL",
        "sqlite:///tmp/x.db?sync=full&mode=ro", "sqlite://?sync=full", "sqlite:///tmp/x.db#frag"}) {
    auto r = open_store(url);
    ASSERT_FALSE(r.has_value()) << url;
    EXPECT_EQ(r.error().code(), Code::InvalidArgument) << url;
  }
  EXPECT_NE(open_store("redis://x").error().message().find("memory, sqlite"), std::string::npos);
  EXPECT_NE(open_store("sqlite:///tmp/x.db?mode=ro").error().message().find("sync=full"),
            std::string::npos);
}

TEST(OpenStoreTest, DefaultIsUnderTheStateDirectory) {
  setenv("XDG_STATE_HOME", "/var/tmp/state", 1);
  EXPECT_EQ(default_store_url(), "sqlite:///var/tmp/state/aec/aec.db");
  unsetenv("XDG_STATE_HOME");
  setenv("HOME", "/home/u", 1);
  EXPECT_EQ(default_store_url(), "sqlite:///home/u/.local/state/aec/aec.db");
}

TEST(OpenStoreTest, CorruptOrForeignFilesAreDataLossAndUntouched) {
  testing::TempDir dir;
  std::string garbage = dir.file("garbage.db");
  std::ofstream(garbage) << std::string(4096, 'x');
  auto r = open_store("sqlite://" + garbage);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::DataLoss) << r.error().message();
  std::ifstream in(garbage);
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, std::string(4096, 'x'));
}

TEST(OpenStoreTest, CreatesMissingDirectories) {
  testing::TempDir dir;
  auto r = open_store("sqlite://" + dir.file("a/b/aec.db"));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ((*r)->url(), "sqlite://" + dir.file("a/b/aec.db"));
}

}  // namespace
}  // namespace aec
