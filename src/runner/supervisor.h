// Supervisor: spawns `aec run`'s child in its own process group and supervises it until it exits.
//
// Linux only. The child is forked and exec'd with:
//   - its own process group (its pid is the group id), so signals reach everything it started;
//   - PR_SET_PDEATHSIG = SIGKILL, so it dies if the thread that started it dies;
//   - every signal disposition set to default and an empty signal mask;
//   - the inherited environment plus SpawnSpec::env;
//   - the fds the aec process inherited without O_CLOEXEC (stdin, stdout, stderr and any the
//     caller passed on purpose). aec opens all of its own fds with O_CLOEXEC, so none leak.
//
// Signals: SIGINT, SIGTERM and SIGHUP sent to the aec process are forwarded to the child's process
// group while wait() runs (or queued until it does). They are blocked in every thread and read
// through a signalfd, which requires block_signals() in main() before any thread exists.
//
// When the child (the group leader) exits, wait() SIGKILLs whatever is left of its process group:
// aec leaves no stragglers in the group. Processes that moved to another group or session (setsid,
// setpgid, daemons) are out of reach and are not killed.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <signal.h>
#include <sys/types.h>

#include <aec/clock.h>
#include <aec/status.h>

namespace aec::runner {

// What to run.
struct SpawnSpec {
  // The command and its arguments; argv[0] is looked up in PATH (as execvp does) when it contains
  // no '/'. The PATH searched is the child's: SpawnSpec::env's PATH when it sets one, else the
  // inherited PATH, else "/bin:/usr/bin". Must not be empty.
  std::vector<std::string> argv;
  // Variables added to the inherited environment, or overriding inherited ones of the same name.
  // When a name repeats, the last value wins. Names must be non-empty and contain no '='.
  std::vector<std::pair<std::string, std::string>> env;
};

// How the child ended.
struct ChildExit {
  // The child's exit status 0..255, or 128+N when it was killed by signal N (as a shell reports).
  int exit_code = 0;
  // The signal that killed the child, if one did.
  std::optional<int> signal;
  // True when stop() was called before wait() saw the child exit.
  bool stopped_by_supervisor = false;
  // The signals forwarded to the child's process group, in the order received.
  std::vector<int> forwarded;
};

// One supervised child process. Not copyable or movable; owned through std::unique_ptr.
//
// Thread-safety: wait() must be called by one thread at a time; stop() and pid() may be called
// from any thread at any time, concurrently with wait(). The destructor must not run concurrently
// with any other member.
class Supervisor {
 public:
  // Blocks SIGINT, SIGTERM, SIGHUP and SIGCHLD in the calling thread. Call it in main() before
  // any thread is created, so every thread inherits the mask and these signals stay pending for
  // the supervisor's signalfd instead of killing the process or waking a random thread. While
  // they are blocked, a SIGINT/SIGTERM/SIGHUP that arrives when no Supervisor is waiting stays
  // pending and is forwarded by the next wait(). Idempotent; start() calls it too. Aborts only if
  // pthread_sigmask fails, which cannot happen with valid arguments.
  static void block_signals();
  // SIGINT, SIGTERM and SIGHUP: the signals forwarded to the command (and that end a wait).
  static sigset_t forwarded_signals();

  // Forks and execs spec.argv in its own process group and returns once the exec has succeeded.
  // Errors:
  //   InvalidArgument  — argv is empty, argv[0] is empty, or a string holds a NUL byte, or an env
  //                      name is empty or contains '='.
  //   NotFound         — "command not found: NAME" (the CLI exits 127).
  //   PermissionDenied — the file exists but cannot be executed (the CLI exits 126).
  //   Internal         — fork, pipe, signalfd or another system call failed.
  // No child is left behind when start() fails. Must be called from a thread that outlives the
  // child: PR_SET_PDEATHSIG fires when the thread that forked the child exits, not the process.
  // Calls block_signals() in the calling thread.
  [[nodiscard]] static Result<std::unique_ptr<Supervisor>> start(const SpawnSpec& spec);

  // If the child is still running, SIGKILLs its process group and reaps it.
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Blocks until the child has exited, forwarding SIGINT, SIGTERM and SIGHUP to its process group
  // and carrying out stop()'s SIGKILL deadline meanwhile. Then SIGKILLs what is left of the group,
  // reaps the child and returns how it ended. Later calls return the same ChildExit at once.
  ChildExit wait();

  // Asks the child to stop: sends SIGTERM to its process group now, and makes wait() send SIGKILL
  // to the group once clock.monotonic_now() >= kill_at if the child is still running (stop() sends
  // it itself when kill_at has already passed). A later call with an earlier kill_at moves the
  // SIGKILL earlier; a later kill_at never postpones it. Only the first call sends SIGTERM (a
  // child may treat a second SIGTERM as "hurry"); every call wakes wait() so it re-reads the
  // clock (useful with a manual clock, whose advance() does not wake wait()). A no-op once the
  // child has been reaped. Thread-safe. `clock` must outlive every later wait() call.
  void stop(MonoTime kill_at, Clock& clock);

  // Makes wait() call `due` once, from its own thread, as soon as clock.monotonic_now() >= at
  // while the child runs (at once when `at` has passed); never after the child was reaped. One
  // at a time: a later call replaces an earlier one not yet made. `due` runs with no lock held
  // and may call stop(). Thread-safe. `aec run` starts its lease's renewal threads this way only
  // when the first renewal is near, so a command that ends sooner never creates them.
  void call_at(MonoTime at, Clock& clock, std::function<void()> due);

  // The child's pid, which is also its process group id. Thread-safe.
  pid_t pid() const { return pid_; }

 private:
  Supervisor(pid_t pid, int signal_fd, int wake_fd, int pid_fd);

  void forward_pending_signals(ChildExit& exit);
  bool try_reap(ChildExit& exit);
  void kill_if_due();
  void call_if_due();
  int poll_timeout_ms();
  void wake_wait();  // makes wait()'s poll return
  void drain_wake_fd();

  const pid_t pid_;
  const int signal_fd_;  // signalfd for SIGINT, SIGTERM, SIGHUP, SIGCHLD; non-blocking
  const int wake_fd_;    // eventfd that stop() writes to wake wait()
  const int pid_fd_;     // pidfd of the child, readable once it exits; -1 if the kernel lacks it

  std::mutex mu_;  // guards everything below, and every signal sent to the group
  bool reaped_ = false;
  bool stop_requested_ = false;
  bool kill_sent_ = false;
  MonoTime kill_at_{};
  Clock* clock_ = nullptr;
  std::function<void()> due_;  // call_at()'s, until called
  MonoTime due_at_{};
  Clock* due_clock_ = nullptr;
  std::optional<ChildExit> result_;
};

}  // namespace aec::runner
