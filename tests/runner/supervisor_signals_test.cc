// Supervisor: signal forwarding, stop() and its SIGKILL deadline, and what is left of the group.
#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <aec/clock.h>

#include "runner/supervisor.h"
#include "tests/runner/process_helpers.h"
#include "tests/support/temp_dir.h"

namespace aec::runner {
namespace {

using aec::testing::read_text;
using aec::testing::sh;
using aec::testing::TempDir;
using aec::testing::wait_for_file;
using aec::testing::wait_until_dead;
using std::chrono::milliseconds;
using std::chrono::seconds;

class SupervisorSignalsTest : public ::testing::Test {
 protected:
  void SetUp() override { Supervisor::block_signals(); }

  // Shell that publishes `what` to `path` atomically (write elsewhere, then rename).
  static std::string publish(const std::string& what, const std::string& path) {
    return "echo " + what + " > " + path + ".tmp && mv " + path + ".tmp " + path;
  }

  // Starts a shell that ignores SIGTERM (as does its `sleep`, which inherits the ignored
  // disposition) and waits until the trap is in place.
  std::unique_ptr<Supervisor> start_term_ignoring_child() {
    std::string ready = dir_.file("ready");
    auto sup = Supervisor::start(sh("trap '' TERM; " + publish("ok", ready) + "; sleep 30"));
    EXPECT_TRUE(sup.has_value()) << sup.status().to_string();
    EXPECT_TRUE(wait_for_file(ready));
    return sup ? std::move(*sup) : nullptr;
  }

  Clock& clock_ = *real_clock();
  TempDir dir_;
};

TEST_F(SupervisorSignalsTest, ForwardsSigtermToTheChildsGroup) {
  std::string ready = dir_.file("ready");
  std::string marker = dir_.file("marker");
  auto sup = Supervisor::start(sh("trap '" + publish("got", marker) + "; exit 0' TERM; " +
                                  publish("ok", ready) + "; sleep 30 & wait"));
  ASSERT_TRUE(sup.has_value()) << sup.status().to_string();
  ASSERT_TRUE(wait_for_file(ready));
  // Safe: SIGTERM is blocked in this process, so it stays pending until wait()'s signalfd reads it.
  ASSERT_EQ(kill(getpid(), SIGTERM), 0);
  ChildExit exit = (*sup)->wait();
  EXPECT_EQ(exit.exit_code, 0);
  EXPECT_EQ(read_text(marker), "got");
  EXPECT_EQ(exit.forwarded, std::vector<int>{SIGTERM});
  EXPECT_FALSE(exit.stopped_by_supervisor);
}

TEST_F(SupervisorSignalsTest, ForwardsSigintAndSighup) {
  for (int sig : {SIGINT, SIGHUP}) {
    auto sup = Supervisor::start({{"sleep", "30"}, {}});
    ASSERT_TRUE(sup.has_value()) << sup.status().to_string();
    ASSERT_EQ(kill(getpid(), sig), 0);
    ChildExit exit = (*sup)->wait();
    EXPECT_EQ(exit.exit_code, 128 + sig);
    EXPECT_EQ(exit.signal, sig);
    EXPECT_EQ(exit.forwarded, std::vector<int>{sig});
  }
}

TEST_F(SupervisorSignalsTest, StopSendsSigtermFirst) {
  auto sup = Supervisor::start({{"sleep", "30"}, {}});
  ASSERT_TRUE(sup.has_value()) << sup.status().to_string();
  MonoTime t0 = clock_.monotonic_now();
  (*sup)->stop(t0 + seconds(10), clock_);
  ChildExit exit = (*sup)->wait();
  EXPECT_EQ(exit.exit_code, 143);
  EXPECT_EQ(exit.signal, SIGTERM);
  EXPECT_TRUE(exit.stopped_by_supervisor);
  EXPECT_LT(clock_.monotonic_now() - t0, seconds(2));
}

TEST_F(SupervisorSignalsTest, StopSigkillsAtKillAtAChildThatIgnoresSigterm) {
  auto sup = start_term_ignoring_child();
  ASSERT_NE(sup, nullptr);
  MonoTime t0 = clock_.monotonic_now();
  std::thread stopper([&] { sup->stop(t0 + milliseconds(200), clock_); });
  ChildExit exit = sup->wait();
  auto elapsed = clock_.monotonic_now() - t0;
  stopper.join();
  EXPECT_EQ(exit.exit_code, 137);
  EXPECT_EQ(exit.signal, SIGKILL);
  EXPECT_TRUE(exit.stopped_by_supervisor);
  EXPECT_GE(elapsed, milliseconds(200));
  EXPECT_LT(elapsed, seconds(2));
}

TEST_F(SupervisorSignalsTest, StopWithAPastKillAtSigkillsAtOnce) {
  auto sup = start_term_ignoring_child();
  ASSERT_NE(sup, nullptr);
  MonoTime t0 = clock_.monotonic_now();
  sup->stop(t0 - seconds(1), clock_);
  ChildExit exit = sup->wait();
  EXPECT_EQ(exit.exit_code, 137);
  EXPECT_LT(clock_.monotonic_now() - t0, seconds(1));
}

TEST_F(SupervisorSignalsTest, LaterStopMovesTheKillEarlierAndWakesWait) {
  auto sup = start_term_ignoring_child();
  ASSERT_NE(sup, nullptr);
  ChildExit exit;
  std::thread waiter([&] { exit = sup->wait(); });
  MonoTime t0 = clock_.monotonic_now();
  sup->stop(t0 + seconds(30), clock_);
  sup->stop(t0 + milliseconds(100), clock_);
  sup->stop(t0 + seconds(60), clock_);  // never postpones
  waiter.join();
  auto elapsed = clock_.monotonic_now() - t0;
  EXPECT_EQ(exit.exit_code, 137);
  EXPECT_GE(elapsed, milliseconds(100));
  EXPECT_LT(elapsed, seconds(2));
}

TEST_F(SupervisorSignalsTest, KillsWhatIsLeftOfTheGroupAfterTheLeaderExits) {
  std::string out = dir_.file("pid");
  auto sup = Supervisor::start(sh("sleep 30 & " + std::string("echo $! > ") + out + ".tmp; mv " +
                                  out + ".tmp " + out + "; exit 0"));
  ASSERT_TRUE(sup.has_value()) << sup.status().to_string();
  ChildExit exit = (*sup)->wait();
  EXPECT_EQ(exit.exit_code, 0);
  ASSERT_TRUE(wait_for_file(out, milliseconds(0)));
  EXPECT_TRUE(wait_until_dead(std::stoi(read_text(out))));
  // Once reaped, stop() is a no-op and wait() returns the recorded exit.
  (*sup)->stop(clock_.monotonic_now(), clock_);
  EXPECT_FALSE((*sup)->wait().stopped_by_supervisor);
}

TEST_F(SupervisorSignalsTest, CallAtCallsFromWaitAtItsTimeWhileTheChildRuns) {
  auto sup = Supervisor::start({{"sleep", "30"}, {}});
  ASSERT_TRUE(sup.has_value()) << sup.status().to_string();
  MonoTime t0 = clock_.monotonic_now();
  MonoTime called{};
  int calls = 0;
  (*sup)->call_at(t0 + milliseconds(150), clock_, [&] {
    ++calls;
    called = clock_.monotonic_now();
    (*sup)->stop(called, clock_);  // the callback may stop the child: it runs with no lock held
  });
  ChildExit exit = (*sup)->wait();
  EXPECT_EQ(calls, 1);
  EXPECT_GE(called - t0, milliseconds(150));
  EXPECT_LT(called - t0, seconds(2));
  EXPECT_EQ(exit.signal, SIGTERM);  // stop() sends SIGTERM first; sleep dies of it
  EXPECT_TRUE(exit.stopped_by_supervisor);
}

TEST_F(SupervisorSignalsTest, CallAtReplacesAnEarlierTimeAndAPastOneIsCalledAtOnce) {
  auto sup = Supervisor::start({{"sleep", "30"}, {}});
  ASSERT_TRUE(sup.has_value()) << sup.status().to_string();
  MonoTime t0 = clock_.monotonic_now();
  bool first = false;
  bool second = false;
  (*sup)->call_at(t0 + seconds(20), clock_, [&] { first = true; });
  (*sup)->call_at(t0 - seconds(1), clock_, [&] {
    second = true;
    (*sup)->stop(clock_.monotonic_now(), clock_);
  });
  ChildExit exit = (*sup)->wait();
  EXPECT_FALSE(first);
  EXPECT_TRUE(second);
  EXPECT_TRUE(exit.stopped_by_supervisor);
  EXPECT_LT(clock_.monotonic_now() - t0, seconds(2));
}

TEST_F(SupervisorSignalsTest, CallAtIsNeverCalledOnceTheChildHasExited) {
  auto sup = Supervisor::start({{"true"}, {}});
  ASSERT_TRUE(sup.has_value()) << sup.status().to_string();
  // Due when wait() begins, but the child has exited by then (its exit is awaited first):
  // nothing is left for the callback to look after.
  bool called = false;
  ASSERT_TRUE(wait_until_dead((*sup)->pid()));  // a zombie: exited, not yet reaped
  (*sup)->call_at(clock_.monotonic_now() - seconds(1), clock_, [&] { called = true; });
  EXPECT_EQ((*sup)->wait().exit_code, 0);
  EXPECT_FALSE(called);
  (*sup)->call_at(clock_.monotonic_now(), clock_, [&] { called = true; });
  (*sup)->wait();
  EXPECT_FALSE(called);
}

// Forks a helper process that supervises `exec sleep 30`; returns the helper's pid and the
// sleep's pid. When `exit_on_its_own`, the helper _exit()s once the sleep is running; otherwise it
// waits on the supervisor until killed.
std::pair<pid_t, pid_t> fork_supervising_helper(const std::string& pid_file, bool exit_on_its_own) {
  pid_t helper = fork();
  if (helper == 0) {
    auto sup = Supervisor::start(sh("echo $$ > " + pid_file + ".tmp && mv " + pid_file + ".tmp " +
                                    pid_file + " && exec sleep 30"));
    if (!sup || !wait_for_file(pid_file)) {
      _exit(1);
    }
    if (!exit_on_its_own) {
      (*sup)->wait();
    }
    _exit(0);  // without running ~Supervisor: the death signal alone must kill the sleep
  }
  if (helper < 0 || !wait_for_file(pid_file)) {
    return {helper, 0};
  }
  return {helper, std::stoi(read_text(pid_file))};
}

TEST_F(SupervisorSignalsTest, ChildDiesWithItsSupervisor) {
  for (bool exit_on_its_own : {true, false}) {
    std::string pid_file = dir_.file(exit_on_its_own ? "exited" : "killed");
    auto [helper, sleeper] = fork_supervising_helper(pid_file, exit_on_its_own);
    ASSERT_GT(helper, 0);
    ASSERT_GT(sleeper, 0);
    if (!exit_on_its_own) {
      ASSERT_EQ(kill(helper, SIGKILL), 0);
    }
    ASSERT_EQ(waitpid(helper, nullptr, 0), helper);
    EXPECT_TRUE(wait_until_dead(sleeper)) << (exit_on_its_own ? "after _exit" : "after kill -9");
  }
}

}  // namespace
}  // namespace aec::runner
