// ProcessTable on Linux: /proc/<pid>/{stat,comm,cmdline} and utmp (getutxent).
#include <signal.h>
#include <unistd.h>
#include <utmpx.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "adapters/process/process_table.h"

namespace instrumeter::adapters::process {
namespace {

// The kernel's TASK_COMM_LEN less the terminating NUL.
constexpr size_t kCommLength = 15;

bool ReadWhole(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  *out = buffer.str();
  return true;
}

// The state letter from /proc/<pid>/stat: "pid (comm) S ..."; comm may hold ')' itself.
char StateLetter(const std::string& stat) {
  const size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() ? stat[close + 2] : '?';
}

class LinuxProcessTable : public ProcessTable {
 public:
  Result<std::vector<ProcessInfo>> ListProcesses() override {
    std::vector<ProcessInfo> out;
    std::error_code ec;
    std::filesystem::directory_iterator it("/proc", ec);
    if (ec) return Status::IoError("cannot list /proc: " + ec.message());
    const int64_t self = ::getpid();
    for (const auto& entry : it) {
      const std::string pid_text = entry.path().filename().string();
      if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos)
        continue;
      ProcessInfo p;
      p.pid = std::stoll(pid_text);
      if (p.pid == self) continue;
      // A process may exit between listing and reading: skip it quietly.
      std::string stat;
      if (!ReadWhole(entry.path().string() + "/stat", &stat) || StateLetter(stat) == 'Z') continue;
      if (!ReadWhole(entry.path().string() + "/comm", &p.name)) continue;
      if (!p.name.empty() && p.name.back() == '\n') p.name.pop_back();
      ReadWhole(entry.path().string() + "/cmdline", &p.cmdline);
      while (!p.cmdline.empty() && p.cmdline.back() == '\0') p.cmdline.pop_back();
      if (p.name.size() == kCommLength) {
        const std::string argv0 = p.cmdline.substr(0, p.cmdline.find('\0'));
        const std::string base = argv0.substr(argv0.rfind('/') + 1);
        if (base.size() > kCommLength && base.compare(0, kCommLength, p.name) == 0) p.name = base;
      }
      out.push_back(std::move(p));
    }
    return out;
  }

  Result<std::vector<LoggedInUser>> LoggedInUsers() override {
    std::vector<LoggedInUser> out;
    // getutxent keeps a process-wide cursor; setutxent/endutxent bracket our use of it.
    setutxent();
    while (const utmpx* u = getutxent()) {
      if (u->ut_type != USER_PROCESS) continue;
      // A crashed session can leave its entry behind: count only sessions whose process lives.
      if (u->ut_pid > 0 && ::kill(u->ut_pid, 0) != 0 && errno == ESRCH) continue;
      out.push_back({std::string(u->ut_user, strnlen(u->ut_user, sizeof u->ut_user)),
                     std::string(u->ut_line, strnlen(u->ut_line, sizeof u->ut_line)),
                     std::string(u->ut_host, strnlen(u->ut_host, sizeof u->ut_host))});
    }
    endutxent();
    return out;
  }
};

}  // namespace

std::unique_ptr<ProcessTable> MakeSystemProcessTable() {
  return std::make_unique<LinuxProcessTable>();
}

}  // namespace instrumeter::adapters::process
