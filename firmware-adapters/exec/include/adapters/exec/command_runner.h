// The operating-system seam of the exec adapter: run a command to completion with a timeout,
// capturing a bounded amount of its output. The POSIX version (posix_spawnp, its own process
// group, pipes read with poll()) is posix_command_runner.cc; a Windows port adds a file with
// CreateProcessW in a Job Object (TerminateJobObject kills the whole tree) and anonymous pipes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace instrumeter::adapters::exec {

struct CommandResult {
  int exit_code = -1;  // when it exited
  int signal = 0;      // when a signal killed it (not ours)
  std::string output;  // stdout, at most the requested bytes
  bool output_truncated = false;
  std::string error_output;  // the start of stderr, for messages
};

// Used from one thread at a time.
class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  // Runs argv (argv[0] is looked up in PATH when it holds no '/'), stdin from /dev/null, with
  // no shell. Returns when the command has exited and its process group has been cleared of
  // leftovers, or after `timeout_ms`: then the whole process group is killed and the result is
  // Unavailable("timed out after N ms ..."). A command that cannot start is NotFound/IoError.
  virtual Result<CommandResult> Run(const std::vector<std::string>& argv, int64_t timeout_ms,
                                    size_t max_output_bytes) = 0;
};

std::unique_ptr<CommandRunner> MakeSystemCommandRunner();

}  // namespace instrumeter::adapters::exec
