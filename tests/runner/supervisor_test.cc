// Supervisor: spawning, exit status, exec errors, environment, process group, inherited state.
#include "runner/supervisor.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/runner/process_helpers.h"
#include "tests/support/temp_dir.h"

namespace aec::runner {
namespace {

using aec::testing::read_text;
using aec::testing::sh;
using aec::testing::TempDir;
using aec::testing::wait_for_file;

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override { Supervisor::block_signals(); }

  // Starts `spec`, which must succeed, and waits for it.
  static ChildExit run(const SpawnSpec& spec) {
    auto sup = Supervisor::start(spec);
    EXPECT_TRUE(sup.has_value()) << sup.status().to_string();
    if (!sup) {
      return {};
    }
    return (*sup)->wait();
  }

  // Writes `text` to `path` with `mode`.
  static void write_file(const std::string& path, const std::string& text, mode_t mode) {
    std::ofstream(path) << text;
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
  }

  TempDir dir_;
};

TEST_F(SupervisorTest, PassesExitCodeThrough) {
  ChildExit exit = run(sh("exit 7"));
  EXPECT_EQ(exit.exit_code, 7);
  EXPECT_FALSE(exit.signal.has_value());
  EXPECT_FALSE(exit.stopped_by_supervisor);
  EXPECT_TRUE(exit.forwarded.empty());
}

TEST_F(SupervisorTest, ReportsDeathBySignalAs128PlusSignal) {
  ChildExit exit = run(sh("kill -KILL $$"));
  EXPECT_EQ(exit.exit_code, 137);
  EXPECT_EQ(exit.signal, SIGKILL);
}

TEST_F(SupervisorTest, WaitAgainReturnsTheSameExit) {
  auto sup = Supervisor::start(sh("exit 3"));
  ASSERT_TRUE(sup.has_value()) << sup.status().to_string();
  EXPECT_EQ((*sup)->wait().exit_code, 3);
  EXPECT_EQ((*sup)->wait().exit_code, 3);
}

TEST_F(SupervisorTest, LooksUpTheCommandInPath) {
  ChildExit exit = run({{"true"}, {}});
  EXPECT_EQ(exit.exit_code, 0);
  EXPECT_EQ(run({{"false"}, {}}).exit_code, 1);
}

TEST_F(SupervisorTest, UnknownCommandIsNotFound) {
  auto sup = Supervisor::start({{"aec-no-such-command-xyz", "arg"}, {}});
  ASSERT_FALSE(sup.has_value());
  EXPECT_EQ(sup.error().code(), Code::NotFound);
  EXPECT_EQ(sup.error().message(), "command not found: aec-no-such-command-xyz");

  auto by_path = Supervisor::start({{dir_.file("missing")}, {}});
  ASSERT_FALSE(by_path.has_value());
  EXPECT_EQ(by_path.error().code(), Code::NotFound);
}

TEST_F(SupervisorTest, NonExecutableFileIsPermissionDenied) {
  std::string script = dir_.file("script");
  write_file(script, "#!/bin/sh\nexit 0\n", 0644);
  auto sup = Supervisor::start({{script}, {}});
  ASSERT_FALSE(sup.has_value());
  EXPECT_EQ(sup.error().code(), Code::PermissionDenied);
  EXPECT_NE(sup.error().message().find(script), std::string::npos) << sup.error().message();
}

TEST_F(SupervisorTest, SearchesTheChildsPathAndReportsPermissionFoundThere) {
  write_file(dir_.file("aec-tool"), "#!/bin/sh\nexit 0\n", 0644);
  auto sup = Supervisor::start({{"aec-tool"}, {{"PATH", dir_.path().string()}}});
  ASSERT_FALSE(sup.has_value());
  EXPECT_EQ(sup.error().code(), Code::PermissionDenied);

  ASSERT_EQ(chmod(dir_.file("aec-tool").c_str(), 0755), 0);
  EXPECT_EQ(run({{"aec-tool"}, {{"PATH", "/nonexistent:" + dir_.path().string()}}}).exit_code, 0);
}

TEST_F(SupervisorTest, UnsearchablePathDirectoryDoesNotTurnNotFoundIntoPermissionDenied) {
  if (geteuid() == 0) {
    GTEST_SKIP() << "root may search any directory";
  }
  std::string locked = dir_.file("locked");
  ASSERT_EQ(mkdir(locked.c_str(), 0), 0);
  auto sup = Supervisor::start({{"aec-no-such-command-xyz"}, {{"PATH", locked + ":/usr/bin"}}});
  ASSERT_FALSE(sup.has_value());
  EXPECT_EQ(sup.error().code(), Code::NotFound) << sup.error().to_string();
}

TEST_F(SupervisorTest, RunsAnExecutableWithoutShebangWithSh) {
  write_file(dir_.file("plain"), "exit 5\n", 0755);
  EXPECT_EQ(run({{dir_.file("plain")}, {}}).exit_code, 5);
}

TEST_F(SupervisorTest, RejectsInvalidSpecs) {
  for (const SpawnSpec& spec :
       {SpawnSpec{{}, {}}, SpawnSpec{{""}, {}}, SpawnSpec{{"true"}, {{"A=B", "x"}}},
        SpawnSpec{{"true"}, {{"", "x"}}}, SpawnSpec{{std::string("tr\0ue", 5)}, {}}}) {
    auto sup = Supervisor::start(spec);
    ASSERT_FALSE(sup.has_value());
    EXPECT_EQ(sup.error().code(), Code::InvalidArgument) << sup.error().to_string();
  }
}

TEST_F(SupervisorTest, ChildGetsInheritedEnvironmentWithOverrides) {
  ASSERT_EQ(setenv("AEC_TEST_KEEP", "kept", 1), 0);
  ASSERT_EQ(setenv("AEC_TEST_REPLACE", "old", 1), 0);
  std::string out = dir_.file("env");
  SpawnSpec spec =
      sh("printf '%s|%s|%s' \"$AEC_KEY\" \"$AEC_TEST_KEEP\" \"$AEC_TEST_REPLACE\" > " + out);
  spec.env = {
      {"AEC_KEY", "etl/2024-01-01"}, {"AEC_TEST_REPLACE", "first"}, {"AEC_TEST_REPLACE", "new"}};
  EXPECT_EQ(run(spec).exit_code, 0);
  EXPECT_EQ(read_text(out), "etl/2024-01-01|kept|new");
  unsetenv("AEC_TEST_KEEP");
  unsetenv("AEC_TEST_REPLACE");
}

TEST_F(SupervisorTest, ChildLeadsItsOwnProcessGroup) {
  std::string out = dir_.file("ids");
  // Field 5 of /proc/PID/stat is the process group id ("sh" has no space in its comm).
  auto sup = Supervisor::start(sh("echo $$ $(cut -d' ' -f5 /proc/$$/stat) > " + out));
  ASSERT_TRUE(sup.has_value()) << sup.status().to_string();
  EXPECT_EQ((*sup)->wait().exit_code, 0);
  std::istringstream ids(read_text(out));
  pid_t pid = 0;
  pid_t pgid = 0;
  ids >> pid >> pgid;
  EXPECT_EQ(pid, (*sup)->pid());
  EXPECT_EQ(pgid, (*sup)->pid());
  EXPECT_NE(pgid, getpgrp());
}

TEST_F(SupervisorTest, ChildStartsWithDefaultSignalsAndEmptyMask) {
  // The test process blocks SIGTERM & co (block_signals) and now ignores SIGPIPE; neither may
  // reach the child.
  struct sigaction ignore {};
  struct sigaction old {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGPIPE, &ignore, &old), 0);
  std::string out = dir_.file("status");
  ChildExit exit = run(sh("grep -E '^Sig(Blk|Ign):' /proc/self/status > " + out));
  sigaction(SIGPIPE, &old, nullptr);
  EXPECT_EQ(exit.exit_code, 0);
  EXPECT_EQ(read_text(out), "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000");
}

TEST_F(SupervisorTest, SupervisorFdsDoNotLeakIntoChild) {
  std::string out = dir_.file("fds");
  ChildExit exit = run(sh("ls -l /proc/$$/fd/ > " + out));
  ASSERT_EQ(exit.exit_code, 0);
  std::string fds = read_text(out);
  EXPECT_EQ(fds.find("signalfd"), std::string::npos) << fds;
  EXPECT_EQ(fds.find("eventfd"), std::string::npos) << fds;
  EXPECT_EQ(fds.find("pidfd"), std::string::npos) << fds;
}

TEST_F(SupervisorTest, DestructorKillsTheRunningGroup) {
  std::string out = dir_.file("pids");
  pid_t leader = 0;
  {
    auto sup = Supervisor::start(
        sh("sleep 30 & echo $! > " + out + ".tmp; mv " + out + ".tmp " + out + "; wait"));
    ASSERT_TRUE(sup.has_value()) << sup.status().to_string();
    leader = (*sup)->pid();
    ASSERT_TRUE(wait_for_file(out));
  }
  EXPECT_NE(kill(leader, 0), 0) << "the leader was not reaped";
  pid_t sleeper = std::stoi(read_text(out));
  EXPECT_TRUE(aec::testing::wait_until_dead(sleeper));
}

}  // namespace
}  // namespace aec::runner
