#include "runner/supervisor.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <system_error>
#include <utility>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/unique_fd.h"
#include "runner/exec_plan.h"

namespace aec::runner {

namespace {

sigset_t supervised_signals() {
  sigset_t set = Supervisor::forwarded_signals();
  sigaddset(&set, SIGCHLD);
  return set;
}

bool is_forwarded(int sig) {
  return sig == SIGINT || sig == SIGTERM || sig == SIGHUP;
}

Status sys_error(const char* call) {
  return internal_error(std::string("cannot start the command: ") + call + ": " +
                        std::generic_category().message(errno));
}

pid_t reap_blocking(pid_t pid, int* status) {
  pid_t got;
  do {
    got = waitpid(pid, status, 0);
  } while (got < 0 && errno == EINTR);
  return got;
}

// Reads the child's ExecFailure, if any. Returns 0 on EOF (the exec succeeded and closed the
// CLOEXEC write end), sizeof(ExecFailure) when the child reported a failure, -1 otherwise.
ssize_t read_report(int fd, ExecFailure& failure) {
  ssize_t n;
  do {
    n = read(fd, &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  return n == 0 || n == static_cast<ssize_t>(sizeof failure) ? n : -1;
}

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr const char* kStartCall = "fork";
// The sanitizers cannot follow a child that shares memory on a stack of its own (ASan warns
// about the unknown stack; TSan takes it for a thread it never saw start): fork() under them.
pid_t start_child(ExecPlan& plan, pid_t parent, int report_fd) {
  pid_t pid = fork();
  if (pid == 0) {
    exec_child(plan, parent, report_fd);
  }
  return pid;
}
#else
constexpr const char* kStartCall = "clone";
struct ChildArgs {
  ExecPlan* plan;
  pid_t parent;
  int report_fd;
};

int child_main(void* arg) {
  auto* a = static_cast<ChildArgs*>(arg);
  exec_child(*a->plan, a->parent, a->report_fd);
}

// Starts the child as posix_spawn does: it shares this process's memory, on a stack of its own,
// until it execs (or _exits), and this thread waits until then (CLONE_VM | CLONE_VFORK). Unlike
// fork(), nothing is copied: no page tables, and no copy-on-write faults for every page this
// process writes afterwards (bench/RESULTS.md: `aec run -- true` 3.8 -> 3.5 ms). Every signal is
// blocked meanwhile, so no handler of ours runs in the child before exec_child() resets them.
pid_t start_child(ExecPlan& plan, pid_t parent, int report_fd) {
  constexpr std::size_t kStack = 64 * 1024;  // exec_child() needs a few hundred bytes
  void* stack =
      mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    return -1;
  }
  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  ChildArgs args{&plan, parent, report_fd};
  pid_t pid = clone(child_main, static_cast<char*>(stack) + kStack,
                    CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
  const int err = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  munmap(stack, kStack);
  errno = err;
  return pid;
}
#endif

// Starts the child and waits until it has exec'd or reported why it could not.
Result<pid_t> spawn(ExecPlan& plan) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return sys_error("pipe2");
  }
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  pid_t pid = start_child(plan, getpid(), write_end.get());
  if (pid < 0) {
    return sys_error(kStartCall);
  }
  // The child calls setpgid too; doing it here as well means the group exists when start()
  // returns, whoever ran first. EACCES (the child already exec'd) and ESRCH are fine: the child's
  // own call already succeeded or it reports its failure.
  setpgid(pid, pid);
  write_end.reset();
  ExecFailure failure;
  ssize_t n = read_report(read_end.get(), failure);
  if (n == 0) {
    return pid;
  }
  if (n < 0) {
    kill(pid, SIGKILL);
  }
  reap_blocking(pid, nullptr);
  if (n < 0) {
    return internal_error("cannot start the command: lost track of the child before its exec");
  }
  return exec_failure_status(failure, plan);
}

// pidfd_open(2) (Linux 5.3): readable once the child exits, a wake-up nobody else can consume,
// unlike SIGCHLD. -1 on older kernels; SIGCHLD through the signalfd then suffices.
int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  return -1;
#endif
}

void fill_exit(int status, ChildExit& exit) {
  if (WIFSIGNALED(status)) {
    exit.signal = WTERMSIG(status);
    exit.exit_code = 128 + WTERMSIG(status);
  } else {
    exit.exit_code = WEXITSTATUS(status);
  }
}

}  // namespace

sigset_t Supervisor::forwarded_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

void Supervisor::block_signals() {
  sigset_t set = supervised_signals();
  if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) {
    std::abort();
  }
  // An ignored SIGCHLD (inheritable across exec from whoever started aec) makes the kernel reap
  // children itself, and wait() could never read the child's status.
  struct sigaction old {};
  if (sigaction(SIGCHLD, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGCHLD, &dfl, nullptr);
  }
}

Result<std::unique_ptr<Supervisor>> Supervisor::start(const SpawnSpec& spec) {
  block_signals();
  auto plan = make_exec_plan(spec);
  if (!plan) {
    return plan.error();
  }
  // Opened before fork() so that a failure here leaves no child behind.
  sigset_t set = supervised_signals();
  UniqueFd signal_fd(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (signal_fd.get() < 0) {
    return sys_error("signalfd");
  }
  UniqueFd wake_fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (wake_fd.get() < 0) {
    return sys_error("eventfd");
  }
  auto pid = spawn(*plan);
  if (!pid) {
    return pid.error();
  }
  int pid_fd = open_pidfd(*pid);
  return std::unique_ptr<Supervisor>(
      new Supervisor(*pid, signal_fd.release(), wake_fd.release(), pid_fd));
}

Supervisor::Supervisor(pid_t pid, int signal_fd, int wake_fd, int pid_fd)
    : pid_(pid), signal_fd_(signal_fd), wake_fd_(wake_fd), pid_fd_(pid_fd) {}

Supervisor::~Supervisor() {
  if (!reaped_) {
    // The unreaped leader keeps the group id reserved, so this cannot hit a recycled group.
    kill(-pid_, SIGKILL);
    reap_blocking(pid_, nullptr);
  }
  for (int fd : {signal_fd_, wake_fd_, pid_fd_}) {
    if (fd >= 0) {
      close(fd);
    }
  }
}

ChildExit Supervisor::wait() {
  {
    std::lock_guard lock(mu_);
    if (result_) {
      return *result_;
    }
  }
  ChildExit exit;
  while (!try_reap(exit)) {
    kill_if_due();
    call_if_due();
    pollfd fds[] = {{signal_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}, {pid_fd_, POLLIN, 0}};
    // EINTR (a signal outside our set, e.g. a profiler's) only means: look again.
    poll(fds, pid_fd_ >= 0 ? 3 : 2, poll_timeout_ms());
    forward_pending_signals(exit);
    drain_wake_fd();
  }
  return exit;
}

void Supervisor::stop(MonoTime kill_at, Clock& clock) {
  {
    std::lock_guard lock(mu_);
    if (reaped_) {
      return;
    }
    if (!stop_requested_) {
      kill(-pid_, SIGTERM);
    }
    if (!stop_requested_ || kill_at < kill_at_) {
      kill_at_ = kill_at;
    }
    stop_requested_ = true;
    clock_ = &clock;
  }
  kill_if_due();
  wake_wait();  // to recompute its poll timeout from the new deadline
}

void Supervisor::call_at(MonoTime at, Clock& clock, std::function<void()> due) {
  {
    std::lock_guard lock(mu_);
    if (reaped_) {
      return;
    }
    due_ = std::move(due);
    due_at_ = at;
    due_clock_ = &clock;
  }
  wake_wait();  // to take the new time into its poll timeout
}

void Supervisor::call_if_due() {
  std::function<void()> due;
  {
    std::lock_guard lock(mu_);
    if (!due_ || due_clock_->monotonic_now() < due_at_) {
      return;
    }
    due = std::move(due_);
    due_ = nullptr;
  }
  due();
}

// Returns true, with `exit` filled in, once the leader has exited and been reaped.
bool Supervisor::try_reap(ChildExit& exit) {
  // WNOWAIT: look without reaping. The zombie keeps the process group id reserved, so the
  // straggler SIGKILL below, and stop()'s signals, cannot reach a recycled group.
  siginfo_t info{};
  if (waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno == EINTR) {
      return false;
    }
    // ECHILD: someone else in this process reaped our child; its status is lost.
    std::lock_guard lock(mu_);
    exit.exit_code = 255;
    exit.stopped_by_supervisor = stop_requested_;
    reaped_ = true;
    result_ = exit;
    return true;
  }
  if (info.si_pid == 0) {
    return false;
  }
  std::lock_guard lock(mu_);
  kill(-pid_, SIGKILL);  // aec leaves no stragglers in the group
  int status = 0;
  reap_blocking(pid_, &status);
  fill_exit(status, exit);
  exit.stopped_by_supervisor = stop_requested_;
  reaped_ = true;
  result_ = exit;
  return true;
}

void Supervisor::forward_pending_signals(ChildExit& exit) {
  signalfd_siginfo info;
  while (read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    int sig = static_cast<int>(info.ssi_signo);
    // SIGCHLD is only a wake-up: try_reap() checks our child. Only wait() reaps, and this runs
    // inside wait(), so the group id is still ours.
    if (is_forwarded(sig)) {
      kill(-pid_, sig);
      exit.forwarded.push_back(sig);
    }
  }
}

void Supervisor::kill_if_due() {
  std::lock_guard lock(mu_);
  if (stop_requested_ && !kill_sent_ && !reaped_ && clock_->monotonic_now() >= kill_at_) {
    kill(-pid_, SIGKILL);
    kill_sent_ = true;
  }
}

// Milliseconds until the SIGKILL deadline or call_at()'s time, whichever is first, rounded up so
// that poll never wakes before it; -1 (no timeout) when neither is pending.
int Supervisor::poll_timeout_ms() {
  std::lock_guard lock(mu_);
  std::optional<std::chrono::nanoseconds> left;
  if (stop_requested_ && !kill_sent_) {
    left = kill_at_ - clock_->monotonic_now();
  }
  if (due_) {
    auto until_due = due_at_ - due_clock_->monotonic_now();
    left = left ? std::min(*left, until_due) : until_due;
  }
  if (!left) {
    return -1;
  }
  if (*left <= std::chrono::nanoseconds::zero()) {
    return 0;
  }
  // poll() counts on CLOCK_MONOTONIC, which stops while the host is suspended: look again at
  // least every kSuspendCheck, so a kill or a renewal start that fell due meanwhile is not late.
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(
                              std::min<std::chrono::nanoseconds>(*left, kSuspendCheck))
                              .count());
}

void Supervisor::wake_wait() {
  uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof one) < 0) {
    // EAGAIN: the counter is saturated, so wait() is already due to wake.
  }
}

void Supervisor::drain_wake_fd() {
  uint64_t count;
  if (read(wake_fd_, &count, sizeof count) < 0) {
    // EAGAIN: nothing to drain.
  }
}

}  // namespace aec::runner
