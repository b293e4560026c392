// Real child processes for integration tests: start a binary, signal it, wait for it.
//
// Used from the test's thread only. The destructor kills (SIGKILL) and reaps a child that is still
// running, so a failing test never leaves processes behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"

namespace instrumeter::testing {

class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ~ChildProcess();

  // Starts argv[0] (a path) with argv; stdout and stderr are appended to `log_path`. `env` adds
  // or replaces "NAME=value" entries of this process's environment for the child only (fault
  // hooks, LD_PRELOAD), without setenv in a test that may run other threads.
  static Result<ChildProcess> Start(const std::vector<std::string>& argv,
                                    const std::string& log_path,
                                    const std::vector<std::string>& env = {});

  pid_t pid() const { return pid_; }
  bool Running();
  void Signal(int signo);
  // Waits for the child to exit; returns its exit code (128 + signal if killed), or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  // SIGTERM, then SIGKILL after `grace`; returns the exit code.
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

// Runs a command to completion and returns its exit code; stdout+stderr go to *output.
int RunCommand(const std::vector<std::string>& argv, std::string* output,
               std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Polls `done` every 50 ms until it returns true or `timeout` passes.
bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout);

// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A TCP port on 127.0.0.1 that nothing listens on right now.
int FreeLoopbackPort();
// True if something accepts TCP connections on 127.0.0.1:port.
bool PortAcceptsConnections(int port);
// Writes `text` to `path`, replacing it.
void WriteFile(const std::string& path, const std::string& text);
std::string ReadFile(const std::string& path);

}  // namespace instrumeter::testing
