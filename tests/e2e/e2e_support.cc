#include "tests/e2e/e2e_support.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace aec::e2e {
namespace {

int decode(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

}  // namespace

std::string aec_binary() {
  return AEC_BINARY;
}

namespace {

[[noreturn]] void exec_binary(std::string bin, const std::vector<std::string>& args,
                              const Env& env) {
  for (const auto& [k, v] : env) {
    setenv(k.c_str(), v.c_str(), 1);
  }
  std::vector<char*> argv{bin.data()};
  std::vector<std::string> copy = args;
  for (std::string& a : copy) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  execv(bin.c_str(), argv.data());
  _exit(127);
}

}  // namespace

void exec_aec(const std::vector<std::string>& args, const Env& env) {
  exec_binary(aec_binary(), args, env);
}

Output run_aec(const std::vector<std::string>& args, const Env& env) {
  return run_binary(aec_binary(), args, env);
}

Output run_binary(const std::string& binary, const std::vector<std::string>& args, const Env& env) {
  char out_path[] = "/tmp/aec-e2e-out-XXXXXX";
  char err_path[] = "/tmp/aec-e2e-err-XXXXXX";
  int out_fd = mkstemp(out_path);
  int err_fd = mkstemp(err_path);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    exec_binary(binary, args, env);
  }
  close(out_fd);
  close(err_fd);
  Output o;
  o.exit_code = wait_exit(pid);
  o.out = read_file(out_path);
  o.err = read_file(err_path);
  unlink(out_path);
  unlink(err_path);
  return o;
}

pid_t spawn_aec(const std::vector<std::string>& args, const Env& env, const std::string& log_path) {
  pid_t pid = fork();
  if (pid == 0) {
    int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(log, 1);
    dup2(log, 2);
    exec_aec(args, env);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return -1;
    }
  }
  return decode(status);
}

bool wait_for_file(const std::string& path, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (access(path.c_str(), F_OK) != 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  return lines;
}

long long boot_ns() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

}  // namespace aec::e2e
