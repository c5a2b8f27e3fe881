// write_termination_message: new files, replacement, devices, FIFOs, links and error codes.
#include "runner/termination_message.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/runner/process_helpers.h"
#include "tests/support/temp_dir.h"

namespace aec::runner {
namespace {

using aec::testing::read_text;
using aec::testing::TempDir;
namespace fs = std::filesystem;

constexpr char kJson[] = R"({"status":"skipped","key":"etl/daily"})";

class TerminationMessageTest : public ::testing::Test {
 protected:
  // Everything in the directory, so a test can check no temporary file was left behind.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_.path())) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  TempDir dir_;
};

TEST_F(TerminationMessageTest, CreatesTheFileWithMode0644WhateverTheUmask) {
  std::string path = dir_.file("termination-log");
  mode_t old_umask = umask(077);
  Status status = write_termination_message(path, kJson);
  umask(old_umask);
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  EXPECT_EQ(read_text(path) + "\n", std::string(kJson) + "\n");
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  EXPECT_EQ(entries(), std::vector<std::string>{"termination-log"});
}

TEST_F(TerminationMessageTest, ReplacesALongerMessageCompletely) {
  std::string path = dir_.file("msg");
  ASSERT_TRUE(write_termination_message(path, std::string(200, 'x')).is_ok());
  ASSERT_TRUE(write_termination_message(path, "{}").is_ok());
  std::ifstream in(path);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all, "{}\n");
  EXPECT_EQ(entries(), std::vector<std::string>{"msg"});
}

TEST_F(TerminationMessageTest, WritesThroughASymlink) {
  std::string target = dir_.file("target");
  std::string link = dir_.file("link");
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);  // dangling: the target is created
  ASSERT_TRUE(write_termination_message(link, kJson).is_ok());
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(read_text(target), kJson);
}

TEST_F(TerminationMessageTest, WritesToACharacterDevice) {
  EXPECT_TRUE(write_termination_message("/dev/null", kJson).is_ok());
}

TEST_F(TerminationMessageTest, WritesToAFifoWithAReaderAndRejectsOneWithout) {
  std::string fifo = dir_.file("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  Status no_reader = write_termination_message(fifo, kJson);
  EXPECT_EQ(no_reader.code(), Code::InvalidArgument) << no_reader.to_string();

  int reader = open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(reader, 0);
  Status status = write_termination_message(fifo, kJson);
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  char buf[256] = {};
  ssize_t n = read(reader, buf, sizeof buf);
  close(reader);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), std::string(kJson) + "\n");
}

TEST_F(TerminationMessageTest, MissingDirectoryIsInvalidArgumentNamingThePath) {
  std::string path = dir_.file("no/such/dir/msg");
  Status status = write_termination_message(path, kJson);
  EXPECT_EQ(status.code(), Code::InvalidArgument);
  EXPECT_NE(status.message().find(path), std::string::npos) << status.message();
  EXPECT_EQ(status.message().find('\n'), std::string::npos);
}

TEST_F(TerminationMessageTest, DirectoryOrEmptyPathIsInvalidArgument) {
  EXPECT_EQ(write_termination_message(dir_.path().string(), kJson).code(), Code::InvalidArgument);
  EXPECT_EQ(write_termination_message("", kJson).code(), Code::InvalidArgument);
}

TEST_F(TerminationMessageTest, UnwritableDirectoryIsPermissionDenied) {
  if (geteuid() == 0) {
    GTEST_SKIP() << "root ignores directory permissions";
  }
  std::string locked = dir_.file("locked");
  ASSERT_EQ(mkdir(locked.c_str(), 0555), 0);
  Status status = write_termination_message(locked + "/msg", kJson);
  EXPECT_EQ(status.code(), Code::PermissionDenied) << status.to_string();
}

TEST_F(TerminationMessageTest, ExistingFileInAReadOnlyDirectoryIsWrittenInPlace) {
  if (geteuid() == 0) {
    GTEST_SKIP() << "root ignores directory permissions";
  }
  std::string locked = dir_.file("locked");
  ASSERT_EQ(mkdir(locked.c_str(), 0755), 0);
  std::string path = locked + "/msg";
  ASSERT_TRUE(write_termination_message(path, "old").is_ok());
  ASSERT_EQ(chmod(locked.c_str(), 0555), 0);
  Status status = write_termination_message(path, kJson);
  chmod(locked.c_str(), 0755);
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  EXPECT_EQ(read_text(path), kJson);
}

TEST(VdkStatusTest, MapsEveryOutcomeToVdksWords) {
  EXPECT_EQ(vdk_status("succeeded", 0), "Success");
  EXPECT_EQ(vdk_status("skipped", std::nullopt), "Skipped");
  EXPECT_EQ(vdk_status("done", std::nullopt), "Skipped");
  EXPECT_EQ(vdk_status("failed", 3), "User error");
  EXPECT_EQ(vdk_status("failed", 127), "User error");  // the command could not start
  EXPECT_EQ(vdk_status("cancelled", std::nullopt), "User error");
  EXPECT_EQ(vdk_status("lost", 143), "Platform error");
  EXPECT_EQ(vdk_status("error", std::nullopt), "Platform error");
  EXPECT_EQ(vdk_status("running", std::nullopt), "Platform error");
  EXPECT_EQ(vdk_status("", std::nullopt), "Platform error");
}

TEST(VdkStatusTest, AnUnprotectedRunIsJudgedByItsExitCode) {
  EXPECT_EQ(vdk_status("unprotected", 0), "Success");
  EXPECT_EQ(vdk_status("unprotected", 1), "User error");
  EXPECT_EQ(vdk_status("unprotected", std::nullopt), "User error");
}

}  // namespace
}  // namespace aec::runner
