// The operating-system seam of the process adapter: which processes run and who is logged in.
// The Linux version reads /proc and utmp (linux_process_table.cc); a Windows port adds a file
// with CreateToolhelp32Snapshot (process names) and WTSEnumerateSessions/WTSQuerySessionInformation
// (the user of the active console session).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace instrumeter::adapters::process {

struct ProcessInfo {
  int64_t pid = 0;
  // The process name: on Linux /proc/<pid>/comm, which the kernel cuts to 15 characters; when it
  // was cut, the basename of argv[0] is used if it starts with the cut name.
  std::string name;
  std::string cmdline;  // the arguments joined with NUL bytes (empty for kernel threads)
};

struct LoggedInUser {
  std::string user;
  std::string line;  // the terminal: ":0", "tty1", "pts/3"
  std::string host;  // where a remote session comes from; empty for local ones
};

// Used from the adapter's poll thread only.
class ProcessTable {
 public:
  virtual ~ProcessTable() = default;
  // Every live process except the caller itself (and zombies, which no longer run).
  virtual Result<std::vector<ProcessInfo>> ListProcesses() = 0;
  // Interactive sessions whose process still lives.
  virtual Result<std::vector<LoggedInUser>> LoggedInUsers() = 0;
};

// This platform's process table.
std::unique_ptr<ProcessTable> MakeSystemProcessTable();

}  // namespace instrumeter::adapters::process
