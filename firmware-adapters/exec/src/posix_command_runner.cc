// CommandRunner on POSIX. The command runs in a process group of its own, so that a timeout can
// kill everything it started (`sh -c "a | b"`, background children) with one kill(-pgid).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "adapters/exec/command_runner.h"

extern char** environ;

namespace instrumeter::adapters::exec {
namespace {

constexpr size_t kMaxErrorBytes = 4096;
// How long to wait for a SIGKILLed group leader to be reaped before giving up on it for now.
constexpr int64_t kReapBoundMs = 2000;

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Pipe {
  int read = -1;
  int write = -1;
  ~Pipe() {
    if (read >= 0) ::close(read);
    if (write >= 0) ::close(write);
  }
};

class PosixCommandRunner : public CommandRunner {
 public:
  ~PosixCommandRunner() override { ReapLeftovers(); }

  Result<CommandResult> Run(const std::vector<std::string>& argv, int64_t timeout_ms,
                            size_t max_output_bytes) override {
    ReapLeftovers();
    if (argv.empty() || argv[0].empty()) return Status::InvalidArgument("empty command");
    const int64_t deadline = SteadyMs() + timeout_ms;
    Pipe out, err;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      return Status::IoError(std::string("pipe: ") + strerror(errno));
    out.read = fds[0];
    out.write = fds[1];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      return Status::IoError(std::string("pipe: ") + strerror(errno));
    err.read = fds[0];
    err.write = fds[1];

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out.write, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err.write, STDERR_FILENO);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Its own process group; default signal dispositions and an empty mask, whatever the agent
    // blocked or ignored for itself (a command must die of SIGTERM/SIGPIPE as usual).
    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      const std::string message = "cannot run '" + argv[0] + "': " + std::strerror(rc);
      return rc == ENOENT ? Status::NotFound(message) : Status::IoError(message);
    }
    ::close(out.write);
    out.write = -1;
    ::close(err.write);
    err.write = -1;

    CommandResult result;
    bool timed_out = !Collect(out.read, err.read, deadline, max_output_bytes, &result);
    int status = 0;
    if (!timed_out) timed_out = !WaitExit(pid, deadline);
    // The leader has exited (a zombie keeps its pid and group id from being reused) or timed out:
    // either way, nothing it started may outlive it.
    ::kill(-pid, SIGKILL);
    if (!Reap(pid, SteadyMs() + kReapBoundMs, &status)) leftovers_.push_back(pid);
    if (timed_out)
      return Status::Unavailable("timed out after " + std::to_string(timeout_ms) +
                                 " ms; its process group was killed");
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
    return result;
  }

 private:
  // Reads both pipes until both close; false on timeout. Output past the limit is read and
  // dropped, so the command never blocks on a full pipe.
  static bool Collect(int out_fd, int err_fd, int64_t deadline, size_t max_output_bytes,
                      CommandResult* result) {
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    int open = 2;
    char buffer[8192];
    while (open > 0) {
      const int64_t left = deadline - SteadyMs();
      if (left <= 0) return false;
      const int rc = ::poll(fds, 2, static_cast<int>(left));
      if (rc < 0 && errno != EINTR) return false;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          fds[i].fd = -1;
          --open;
          continue;
        }
        std::string& sink = i == 0 ? result->output : result->error_output;
        const size_t limit = i == 0 ? max_output_bytes : kMaxErrorBytes;
        const size_t take = std::min(limit - std::min(limit, sink.size()), static_cast<size_t>(n));
        sink.append(buffer, take);
        if (i == 0 && take < static_cast<size_t>(n)) result->output_truncated = true;
      }
    }
    return true;
  }

  // Waits until `pid` has exited, without reaping it; false on timeout.
  static bool WaitExit(pid_t pid, int64_t deadline) {
    while (true) {
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0)
        return errno != EINTR;  // nothing to wait for (reaped elsewhere): treat as exited
      if (info.si_pid == pid) return true;
      if (SteadyMs() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  static bool Reap(pid_t pid, int64_t deadline, int* status) {
    while (true) {
      const pid_t r = ::waitpid(pid, status, WNOHANG);
      if (r == pid || (r < 0 && errno == ECHILD)) return true;
      if (SteadyMs() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  // Leaders that did not die within the bound of an earlier run (stuck in the kernel).
  void ReapLeftovers() {
    std::vector<pid_t> still;
    for (pid_t pid : leftovers_) {
      int status = 0;
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == 0) still.push_back(pid);
    }
    leftovers_ = std::move(still);
  }

  std::vector<pid_t> leftovers_;
};

}  // namespace

std::unique_ptr<CommandRunner> MakeSystemCommandRunner() {
  return std::make_unique<PosixCommandRunner>();
}

}  // namespace instrumeter::adapters::exec
