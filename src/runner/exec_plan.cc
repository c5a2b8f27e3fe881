#include "runner/exec_plan.h"

#include <cstdlib>
#include <map>
#include <string_view>
#include <system_error>

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace aec::runner {

namespace {

// glibc's execvp default when PATH is unset (confstr(_CS_PATH)).
constexpr std::string_view kDefaultPath = "/bin:/usr/bin";

bool has_nul(std::string_view s) {
  return s.find('\0') != std::string_view::npos;
}

Status validate(const SpawnSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return invalid_argument("no command to run: give one after `--`");
  }
  for (const auto& arg : spec.argv) {
    if (has_nul(arg)) {
      return invalid_argument("a command argument contains a NUL byte");
    }
  }
  for (const auto& [name, value] : spec.env) {
    if (name.empty() || name.find('=') != std::string::npos || has_nul(name) || has_nul(value)) {
      return invalid_argument("invalid environment variable name for the command: '" + name + "'");
    }
  }
  return Status::ok();
}

// The inherited environment with spec.env applied; also returns the child's PATH, because the
// lookup must search the PATH the child will see (as `env PATH=... cmd` does).
std::vector<std::string> build_env(const SpawnSpec& spec, std::string& path) {
  std::map<std::string, std::string> overrides;  // later entries win
  for (const auto& [name, value] : spec.env) {
    overrides[name] = value;
  }
  std::vector<std::string> env;
  bool have_path = false;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view var(*entry);
    auto name = var.substr(0, var.find('='));
    if (overrides.count(std::string(name)) != 0) {
      continue;
    }
    if (name == "PATH" && var.size() > name.size()) {
      path = std::string(var.substr(name.size() + 1));
      have_path = true;
    }
    env.emplace_back(var);
  }
  for (const auto& [name, value] : overrides) {
    if (name == "PATH") {
      path = value;
      have_path = true;
    }
    env.push_back(name + "=" + value);
  }
  if (!have_path) {
    path = kDefaultPath;
  }
  return env;
}

// The files to try, in execvp's order: the name itself when it has a '/', else each PATH entry
// (an empty entry meaning the current directory).
std::vector<std::string> path_candidates(const std::string& name, std::string_view path) {
  if (name.find('/') != std::string::npos) {
    return {name};
  }
  std::vector<std::string> out;
  while (true) {
    auto colon = path.find(':');
    auto dir = path.substr(0, colon);
    out.push_back((dir.empty() ? std::string(".") : std::string(dir)) + "/" + name);
    if (colon == std::string_view::npos) {
      break;
    }
    path.remove_prefix(colon + 1);
  }
  return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) {
    out.push_back(s.data());
  }
  out.push_back(nullptr);
  return out;
}

// In the child: default dispositions (an ignored signal stays ignored across exec, and the child
// must not inherit whatever aec or its own parent ignored), then an empty mask (aec blocks the
// signals it forwards; a blocked mask would also survive exec).
void reset_signals() noexcept {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) {
      sigaction(sig, &dfl, nullptr);  // fails harmlessly for glibc's reserved real-time signals
    }
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

[[noreturn]] void report_and_exit(int report_fd, ExecFailure failure) noexcept {
  // Nothing to do if the write fails: the parent then sees EOF and a child that exited 127.
  if (write(report_fd, &failure, sizeof failure) < 0) {
    _exit(127);
  }
  _exit(127);
}

bool exists(const char* file) noexcept {
  struct stat st {};
  return stat(file, &st) == 0;  // async-signal-safe
}

bool try_next_candidate(int err) {
  return err == ENOENT || err == ENOTDIR || err == ESTALE || err == ENODEV || err == ETIMEDOUT;
}

}  // namespace

Result<ExecPlan> make_exec_plan(const SpawnSpec& spec) {
  if (auto status = validate(spec); !status.is_ok()) {
    return status;
  }
  ExecPlan plan;
  std::string path;
  plan.name = spec.argv[0];
  plan.args = spec.argv;
  plan.env = build_env(spec, path);
  plan.candidates = path_candidates(plan.name, path);
  plan.searched_path = plan.name.find('/') == std::string::npos;
  plan.argv = pointers(plan.args);
  plan.envp = pointers(plan.env);
  plan.sh_argv = {const_cast<char*>("/bin/sh"), nullptr};
  plan.sh_argv.insert(plan.sh_argv.end(), plan.argv.begin() + 1, plan.argv.end());
  return plan;
}

void exec_child(ExecPlan& plan, pid_t parent, int report_fd) noexcept {
  if (setpgid(0, 0) != 0) {
    report_and_exit(report_fd, {ExecFailure::kSetpgid, errno, 0});
  }
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    report_and_exit(report_fd, {ExecFailure::kPdeathsig, errno, 0});
  }
  // The parent may have died between fork() and prctl(): then no death signal will ever come.
  if (getppid() != parent) {
    _exit(127);
  }
  reset_signals();
  // execvp's search: skip missing files, remember a permission error, stop at any other error.
  // Unlike execvp, and like a shell, a PATH directory we may not search counts as "not there"
  // rather than "permission denied": a typo must still say "command not found".
  int last = 0;
  int denied = -1;
  for (int i = 0; i < static_cast<int>(plan.candidates.size()); ++i) {
    char* file = plan.candidates[i].data();
    execve(file, plan.argv.data(), plan.envp.data());
    int err = errno;
    if (err == ENOEXEC) {
      plan.sh_argv[1] = file;
      execve(plan.sh_argv[0], plan.sh_argv.data(), plan.envp.data());
      err = errno;
    }
    if (err == EACCES && (!plan.searched_path || exists(file))) {
      denied = denied < 0 ? i : denied;
    } else if (err == EACCES || try_next_candidate(err)) {
      last = i;
    } else {
      report_and_exit(report_fd, {ExecFailure::kExec, err, i});
    }
  }
  if (denied >= 0) {
    report_and_exit(report_fd, {ExecFailure::kExec, EACCES, denied});
  }
  report_and_exit(report_fd, {ExecFailure::kExec, ENOENT, last});
}

Status exec_failure_status(const ExecFailure& failure, const ExecPlan& plan) {
  std::string reason = std::generic_category().message(failure.error);
  if (failure.stage == ExecFailure::kSetpgid) {
    return internal_error("could not start " + plan.name + ": setpgid: " + reason);
  }
  if (failure.stage == ExecFailure::kPdeathsig) {
    return internal_error("could not start " + plan.name + ": prctl(PR_SET_PDEATHSIG): " + reason);
  }
  bool known =
      failure.candidate >= 0 && static_cast<size_t>(failure.candidate) < plan.candidates.size();
  const std::string& file = known ? plan.candidates[failure.candidate] : plan.name;
  switch (failure.error) {
    case ENOENT:
    case ENOTDIR:
      return Status(Code::NotFound, "command not found: " + plan.name);
    case EACCES:
    case EPERM:
      return Status(Code::PermissionDenied,
                    "permission denied: cannot execute " + file +
                        " (check its mode and whether its file system is mounted noexec)");
    case E2BIG:
      return invalid_argument("cannot execute " + plan.name + ": argument list too long");
    default:
      return internal_error("cannot execute " + file + ": " + reason);
  }
}

}  // namespace aec::runner
