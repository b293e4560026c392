// A small tmpfs that a fault test mounts (it needs root, as tests and CI run here) to fill the
// disk under a hub database or an agent's state_dir, and free it again.
//
// Test-thread only. The destructor unmounts lazily (MNT_DETACH), so a process still holding a
// file there does not keep the test from finishing.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "common/status.h"
#include "test_support/process.h"

namespace instrumeter::testing {

class SmallFilesystem {
 public:
  // Mounts a tmpfs of `bytes` on a new folder. FailedPrecondition when mounting is not allowed
  // (not root, or no CAP_SYS_ADMIN in a container).
  static Result<std::unique_ptr<SmallFilesystem>> Mount(size_t bytes);
  ~SmallFilesystem();
  SmallFilesystem(const SmallFilesystem&) = delete;
  SmallFilesystem& operator=(const SmallFilesystem&) = delete;

  const std::string& path() const { return path_; }
  // Writes a filler file until the filesystem is full (ENOSPC); returns the bytes it took.
  Result<size_t> Fill();
  // Removes the filler: the space is back.
  void Free();

 private:
  SmallFilesystem() = default;
  TempDir parent_;
  std::string path_;
  bool mounted_ = false;
};

}  // namespace instrumeter::testing
