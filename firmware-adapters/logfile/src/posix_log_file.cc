// LogFileSystem on POSIX: the identity is (st_dev, st_ino); an open descriptor keeps reading the
// same inode after the path is renamed or unlinked.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "adapters/logfile/log_file.h"

namespace instrumeter::adapters::logfile {
namespace {

Status Errno(const std::string& what, const std::string& path) {
  const std::string message = what + " " + path + ": " + std::strerror(errno);
  return errno == ENOENT ? Status::NotFound(message) : Status::IoError(message);
}

class PosixLogFile : public OpenLogFile {
 public:
  PosixLogFile(int fd, FileIdentity identity, std::string path)
      : fd_(fd), identity_(identity), path_(std::move(path)) {}
  ~PosixLogFile() override { ::close(fd_); }

  FileIdentity identity() const override { return identity_; }

  Result<int64_t> Size() override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return Errno("cannot stat", path_);
    return static_cast<int64_t>(st.st_size);
  }

  Result<std::string> ReadAt(int64_t offset, size_t max_bytes) override {
    std::string buffer(max_bytes, '\0');
    ssize_t n;
    do {
      n = ::pread(fd_, buffer.data(), max_bytes, offset);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return Errno("cannot read", path_);
    buffer.resize(static_cast<size_t>(n));
    return buffer;
  }

 private:
  int fd_;
  FileIdentity identity_;
  std::string path_;
};

class PosixLogFileSystem : public LogFileSystem {
 public:
  Result<FileIdentity> IdentityOf(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return Errno("cannot stat", path);
    return FileIdentity{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
  }

  Result<std::unique_ptr<OpenLogFile>> Open(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Errno("cannot open", path);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      Status st_error = Errno("cannot stat", path);
      ::close(fd);
      return st_error;
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      return Status::InvalidArgument(path + " is not a regular file");
    }
    return std::unique_ptr<OpenLogFile>(new PosixLogFile(
        fd, FileIdentity{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)},
        path));
  }
};

}  // namespace

std::unique_ptr<LogFileSystem> MakeSystemLogFileSystem() {
  return std::make_unique<PosixLogFileSystem>();
}

}  // namespace instrumeter::adapters::logfile
