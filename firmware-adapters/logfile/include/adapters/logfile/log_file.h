// The operating-system seam of the logfile adapter: what a path names now, and an open file that
// keeps reading the same file after it is renamed (rotated) or truncated. The Linux/POSIX version
// is posix_log_file.cc; a Windows port adds a file with CreateFileW(FILE_SHARE_READ |
// FILE_SHARE_WRITE | FILE_SHARE_DELETE, so the instrument software can still rotate its log) and
// GetFileInformationByHandle (volume serial number + file index as the identity).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace instrumeter::adapters::logfile {

// Which file a path named: stays the same across renames, changes when a new file takes the path.
struct FileIdentity {
  uint64_t device = 0;
  uint64_t inode = 0;
  friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
};

// One open file. Used from the adapter's poll thread only.
class OpenLogFile {
 public:
  virtual ~OpenLogFile() = default;
  virtual FileIdentity identity() const = 0;
  // The file's current size (of this file, wherever it has been renamed to).
  virtual Result<int64_t> Size() = 0;
  // Up to `max_bytes` from `offset`; fewer at the end of the file.
  virtual Result<std::string> ReadAt(int64_t offset, size_t max_bytes) = 0;
};

class LogFileSystem {
 public:
  virtual ~LogFileSystem() = default;
  // What `path` names now; NotFound when nothing does.
  virtual Result<FileIdentity> IdentityOf(const std::string& path) = 0;
  // NotFound when the path does not exist, IoError on other failures.
  virtual Result<std::unique_ptr<OpenLogFile>> Open(const std::string& path) = 0;
};

// This platform's files.
std::unique_ptr<LogFileSystem> MakeSystemLogFileSystem();

}  // namespace instrumeter::adapters::logfile
