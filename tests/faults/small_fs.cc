#include "small_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <vector>

namespace instrumeter::testing {

Result<std::unique_ptr<SmallFilesystem>> SmallFilesystem::Mount(size_t bytes) {
  std::unique_ptr<SmallFilesystem> fs(new SmallFilesystem());
  fs->path_ = fs->parent_.File("fs");
  std::filesystem::create_directories(fs->path_);
  const std::string options = "size=" + std::to_string(bytes) + ",mode=0755";
  if (::mount("instrumeter-test", fs->path_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
              options.c_str()) != 0)
    return Status::FailedPrecondition("cannot mount a tmpfs on " + fs->path_ + ": " +
                                      std::strerror(errno));
  fs->mounted_ = true;
  return fs;
}

SmallFilesystem::~SmallFilesystem() {
  if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
}

Result<size_t> SmallFilesystem::Fill() {
  const std::string filler = path_ + "/filler";
  const int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError("cannot create " + filler + ": " + std::strerror(errno));
  const std::vector<char> block(4096, 'x');
  size_t written = 0;
  while (true) {
    const ssize_t n = ::write(fd, block.data(), block.size());
    if (n > 0) {
      written += static_cast<size_t>(n);
      continue;
    }
    const int error = errno;
    ::close(fd);
    if (n < 0 && error == ENOSPC) return written;
    return Status::IoError("filling " + filler + ": " + std::strerror(error));
  }
}

void SmallFilesystem::Free() { ::unlink((path_ + "/filler").c_str()); }

}  // namespace instrumeter::testing
